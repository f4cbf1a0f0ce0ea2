/* Per-address accounting: connections and failed hellos. */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "addrs.h"
#include "config.h"
#include "idtable.h"
#include "timerq.h"
#include "util.h"

#define FAIL_WINDOW_MS 60000 /* failed hellos refill over a minute */

struct addr {
	uint8_t key[SESSION_ID_BYTES]; /* IPv6 address, IPv4-mapped for IPv4 */
	struct idnode node;
	size_t nconns;
	double fail_left;         /* failed hellos still allowed */
	int64_t fail_at;          /* when fail_left was last brought up to date */
	struct timer_entry timer; /* forget an idle address once forgiven */
};

static struct idtable table;
static struct timerq *idle;

_Static_assert(sizeof(struct in6_addr) == SESSION_ID_BYTES, "addresses key the id table");

static void
addr_free(struct addr *a)
{
	idtable_remove(&table, &a->node);
	timerq_cancel(idle, &a->timer);
	free(a);
}

static void
addr_on_idle(struct timer_entry *e, int64_t now, void *arg)
{
	struct addr *a = container_of(e, struct addr, timer);

	(void)now;
	(void)arg;
	if (a->nconns == 0)
		addr_free(a);
}

int
addrs_init(struct event_base *base)
{
	if (idtable_init(&table, (ptrdiff_t)offsetof(struct addr, key) -
					 (ptrdiff_t)offsetof(struct addr, node)) != 0)
		return -1;
	idle = timerq_create(base, addr_on_idle, NULL);
	return idle != NULL ? 0 : -1;
}

static void
addr_free_node(struct idnode *n, void *arg)
{
	(void)arg;
	addr_free(container_of(n, struct addr, node));
}

void
addrs_finish(void)
{
	idtable_foreach(&table, addr_free_node, NULL);
	idtable_finish(&table);
	timerq_destroy(idle);
	idle = NULL;
}

static void
addr_key(const struct sockaddr *sa, uint8_t key[SESSION_ID_BYTES])
{
	memset(key, 0, SESSION_ID_BYTES);
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		       SESSION_ID_BYTES);
	} else if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} /* else (a Unix socket): all zeros, one "address" */
}

/* Refill the failure bucket for the time passed. */
static void
addr_refill(struct addr *a, int64_t now)
{
	double cap = (double)config.max_auth_failures;

	if (now > a->fail_at) {
		a->fail_left += (double)(now - a->fail_at) * cap / FAIL_WINDOW_MS;
		if (a->fail_left > cap)
			a->fail_left = cap;
	}
	a->fail_at = now;
}

struct addr *
addr_connect(const struct sockaddr *sa)
{
	uint8_t key[SESSION_ID_BYTES];
	struct idnode *n;
	struct addr *a;

	addr_key(sa, key);
	n = idtable_find(&table, key);
	if (n != NULL) {
		a = container_of(n, struct addr, node);
		if (config.max_conns_per_address > 0 && a->nconns >= config.max_conns_per_address) {
			errno = EAGAIN;
			return NULL;
		}
		timerq_cancel(idle, &a->timer);
	} else {
		a = calloc(1, sizeof *a);
		if (a == NULL) {
			errno = ENOMEM;
			return NULL;
		}
		memcpy(a->key, key, sizeof key);
		a->fail_left = (double)config.max_auth_failures;
		a->fail_at = now_ms();
		idtable_insert(&table, &a->node);
	}
	a->nconns++;
	return a;
}

void
addr_disconnect(struct addr *a)
{
	int64_t now = now_ms(), forgiven;

	if (--a->nconns > 0)
		return;
	addr_refill(a, now);
	if (a->fail_left >= (double)config.max_auth_failures) {
		addr_free(a);
		return;
	}
	forgiven = now +
		   (int64_t)(((double)config.max_auth_failures - a->fail_left) * FAIL_WINDOW_MS /
			     (double)config.max_auth_failures) +
		   1;
	if (timerq_set(idle, &a->timer, forgiven) != 0)
		addr_free(a); /* out of memory: forget it now rather than never */
}

bool
addr_auth_blocked(struct addr *a)
{
	addr_refill(a, now_ms());
	return a->fail_left < 1.0;
}

bool
addr_auth_failed(struct addr *a)
{
	addr_refill(a, now_ms());
	if (a->fail_left >= 1.0)
		a->fail_left -= 1.0;
	return a->fail_left < 1.0;
}

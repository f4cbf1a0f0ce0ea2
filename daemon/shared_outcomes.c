/* Outcomes kept in Redis (see shared_outcomes.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "redis.h"
#include "redis_scripts.h"
#include "shared_outcomes.h"

static struct {
	struct event_base *base;
	struct redis_link *cmd; /* shared.c's */
} so;

/* Someone waiting for Redis: a read, or an acknowledgement. */
struct call {
	shared_outcomes_fn read;
	shared_outcomes_count_fn count;
	void *arg;
	long long n; /* what call_soon() answers */
};

void
shared_outcomes_start(struct event_base *base, struct redis_link *cmd)
{
	so.base = base;
	so.cmd = cmd;
}

void
shared_outcomes_stop(void)
{
	so.base = NULL;
	so.cmd = NULL;
}

bool
shared_outcomes_on(void)
{
	return so.cmd != NULL;
}

/* The user's keys: "rv:od:USER" (devices) and "rv:o:USER" (outcomes); NULL when too long. */
static bool
user_keys(const char *user, char dkey[300], char okey[300])
{
	return (size_t)snprintf(dkey, 300, "rv:od:%s", user) < 300 &&
	       (size_t)snprintf(okey, 300, "rv:o:%s", user) < 300;
}

/* Why a reply is not the one wanted, for the log. */
static const char *
reply_why(const redisReply *r, const char *err)
{
	return r == NULL ? err : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
}

static void
call_answer(struct call *c, const struct shared_outcomes *o, long long n)
{
	if (c->read != NULL)
		c->read(c->arg, o);
	else if (c->count != NULL)
		c->count(c->arg, n);
	free(c);
}

static void
on_soon(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;

	(void)fd;
	(void)what;
	call_answer(c, NULL, c->n);
}

/* Answer c with n (-1: Redis did not answer) from the loop, not from inside the caller. */
static void
call_soon(struct call *c, long long n)
{
	struct timeval now = {0, 0};

	c->n = n;
	if (so.base != NULL && event_base_once(so.base, -1, EV_TIMEOUT, on_soon, c, &now) == 0)
		return;
	call_answer(c, NULL, n); /* no loop to come back to */
}

static struct call *
call_new(shared_outcomes_fn read, shared_outcomes_count_fn count, void *arg)
{
	struct call *c = calloc(1, sizeof *c);

	if (c == NULL) {
		log_error("redis: out of memory reading outcomes");
		if (read != NULL)
			read(arg, NULL);
		else
			count(arg, -1);
		return NULL;
	}
	c->read = read;
	c->count = count;
	c->arg = arg;
	return c;
}

static void
on_read(void *arg, const redisReply *r, const char *err)
{
	struct call *c = arg;
	struct shared_outcomes o = {0};
	const char **params = NULL;
	size_t *lens = NULL;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		log_warn("redis: reading outcomes: %s", reply_why(r, err));
		call_answer(c, NULL, -1);
		return;
	}
	o.dropped = r->element[0]->integer;
	o.n = r->elements - 1;
	if (o.n > 0 && ((params = calloc(o.n, sizeof *params)) == NULL ||
			(lens = calloc(o.n, sizeof *lens)) == NULL)) {
		log_error("redis: out of memory reading outcomes");
		free(params);
		call_answer(c, NULL, -1);
		return;
	}
	for (size_t i = 0; i < o.n; i++) {
		const redisReply *e = r->element[i + 1];
		params[i] = e->type == REDIS_REPLY_STRING ? e->str : "null";
		lens[i] = e->type == REDIS_REPLY_STRING ? e->len : 4;
	}
	o.params = params;
	o.lens = lens;
	call_answer(c, &o, 0);
	free(params);
	free(lens);
}

void
shared_outcomes_read(const char *user, const char *device, bool hello, shared_outcomes_fn fn,
		     void *arg)
{
	char dkey[300], okey[300], now[24], keep[24];
	const char *argv[6] = {dkey, okey, device, now, keep, hello ? "1" : "0"};
	size_t lens[6];
	struct call *c = call_new(fn, NULL, arg);

	if (c == NULL)
		return;
	if (so.cmd == NULL || !user_keys(user, dkey, okey)) {
		call_soon(c, -1);
		return;
	}
	snprintf(now, sizeof now, "%" PRId64, now_ms());
	snprintf(keep, sizeof keep, "%" PRId64, config.outcome_retention_ms);
	for (size_t i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	if (redis_link_eval(so.cmd, &redis_script_outcomes, on_read, c, 2, 6, argv, lens) != 0)
		call_soon(c, -1);
}

static void
on_count(void *arg, const redisReply *r, const char *err)
{
	struct call *c = arg;

	if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
		log_warn("redis: forgetting outcomes: %s", reply_why(r, err));
		call_answer(c, NULL, -1);
		return;
	}
	call_answer(c, NULL, r->integer);
}

static void
on_ignored(void *arg, const redisReply *r, const char *err)
{
	(void)arg;
	if (r == NULL || r->type == REDIS_REPLY_ERROR)
		log_warn("redis: forgetting a learned outcome: %s", r == NULL ? err : r->str);
}

/* The field of user's device's outcome of sid: "<session id>\n<device>", into buf. */
static size_t
outcome_field(const uint8_t *sid, const char *device, char *buf)
{
	size_t dlen = strlen(device);

	session_id_format(sid, buf);
	buf[SESSION_ID_HEX] = '\n';
	memcpy(buf + SESSION_ID_HEX + 1, device, dlen + 1);
	return SESSION_ID_HEX + 1 + dlen;
}

/* HDEL of n fields of user's device's outcomes (n >= 1); fn as redis_link_command's. */
static int
forget(const char *user, const char *device, const uint8_t (*sids)[SESSION_ID_BYTES], size_t n,
       redis_reply_fn fn, void *arg)
{
	char dkey[300], okey[300];
	size_t dlen = strlen(device), flen = SESSION_ID_HEX + 1 + dlen + 1;
	const char **argv = calloc(n + 2, sizeof *argv);
	size_t *lens = calloc(n + 2, sizeof *lens);
	char *fields = malloc(n * flen);
	int rc = -1;

	if (argv != NULL && lens != NULL && fields != NULL && so.cmd != NULL &&
	    user_keys(user, dkey, okey)) {
		argv[0] = "HDEL", lens[0] = 4;
		argv[1] = okey, lens[1] = strlen(okey);
		for (size_t i = 0; i < n; i++) {
			argv[i + 2] = fields + i * flen;
			lens[i + 2] = outcome_field(sids[i], device, fields + i * flen);
		}
		rc = redis_link_command(so.cmd, fn, arg, (int)n + 2, argv, lens);
	}
	free(argv);
	free(lens);
	free(fields);
	return rc;
}

void
shared_outcomes_ack(const char *user, const char *device, const uint8_t (*sids)[SESSION_ID_BYTES],
		    size_t n, shared_outcomes_count_fn fn, void *arg)
{
	struct call *c = call_new(NULL, fn, arg);

	if (c == NULL)
		return;
	if (n == 0)
		call_soon(c, 0);
	else if (forget(user, device, sids, n, on_count, c) != 0)
		call_soon(c, -1);
}

void
shared_outcomes_learned(const char *user, const char *device, const uint8_t *sid)
{
	const uint8_t(*sids)[SESSION_ID_BYTES] = (const uint8_t(*)[SESSION_ID_BYTES])sid;

	if (forget(user, device, sids, 1, on_ignored, NULL) != 0)
		log_warn("redis: %s's device %s learned an outcome, not forgotten (Redis down): "
			 "it comes again after the device's next hello",
			 user, device);
}

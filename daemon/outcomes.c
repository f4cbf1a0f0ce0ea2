/* Outcomes a device has not learned, by user and device, oldest first. */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include <utlist.h>
#include <uthash.h>

#include "commit.h"
#include "config.h"
#include "conn.h"
#include "hub.h"
#include "log.h"
#include "msgbuf.h"
#include "outcomes.h"
#include "shared_outcomes.h"
#include "stats.h"
#include "store.h"
#include "users.h"
#include "util.h"

struct outcome {
	uint8_t sid[SESSION_ID_BYTES];
	int64_t time; /* when the session ended */
	char *params; /* session.outcome's params, compact JSON */
	struct outcome *prev, *next;
};

struct odev {
	char *name;
	int64_t seen;    /* its last hello */
	int64_t stored;  /* seen, as the store has it (it lags by at most SEEN_LAG) */
	int64_t dropped; /* outcomes dropped since its last hello */
	struct outcome *pending;
	struct odev *next;
};

struct ouser {
	char *name;
	size_t count; /* outcomes pending on all its devices */
	struct odev *devs;
	UT_hash_handle hh;
};

static struct ouser *users;
static struct event *sweep_ev; /* forgets what is older than --outcome-retention */

/* How far a device's last hello in the store may lag the true one (fewer writes). */
#define SEEN_LAG (config.outcome_retention_ms / 16)

static const struct commit_participant outcomes_participant;

static struct ouser *
ouser_get(const char *name, bool create)
{
	struct ouser *u;

	HASH_FIND_STR(users, name, u);
	if (u != NULL || !create)
		return u;
	u = calloc(1, sizeof *u);
	if (u == NULL || (u->name = strdup(name)) == NULL) {
		free(u);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, users, u->name, strlen(u->name), u);
	return u;
}

static struct odev *
odev_find(const struct ouser *u, const char *name)
{
	struct odev *d;

	for (d = u != NULL ? u->devs : NULL; d != NULL; d = d->next) {
		if (strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

static void
outcome_free(struct ouser *u, struct odev *d, struct outcome *o)
{
	DL_DELETE(d->pending, o);
	u->count--;
	stats.outcomes_kept--;
	free(o->params);
	free(o);
}

/* Free a device taken out of its user's list, with nothing kept. */
static void
odev_free(struct odev *d)
{
	free(d->name);
	free(d);
	stats.outcome_devices--;
}

/* Persist one outcome, or (o NULL) the device's own row. */
static void
odev_store(const struct ouser *u, struct odev *d, const struct outcome *o, bool gone)
{
	struct store_outcome so = {
		.user = u->name,
		.device = d->name,
		.session = o != NULL ? o->sid : NULL,
		.time = o != NULL ? o->time : d->seen,
		.params = o != NULL ? o->params : NULL,
		.dropped = o != NULL ? 0 : d->dropped,
	};

	if (o == NULL && !gone)
		d->stored = d->seen;
	if (!store_durable())
		return;
	if (gone)
		store_delete_outcome(&so);
	else
		store_put_outcome(&so);
}

static void
ousers_clear(void)
{
	struct ouser *u, *tmp;

	HASH_ITER (hh, users, u, tmp) {
		struct odev *d;
		while ((d = u->devs) != NULL) {
			u->devs = d->next;
			while (d->pending != NULL)
				outcome_free(u, d, d->pending);
			odev_free(d);
		}
		HASH_DEL(users, u);
		free(u->name);
		free(u);
	}
}

/* Add an outcome to d (no store write); NULL when memory ran out. */
static struct outcome *
odev_add(struct ouser *u, struct odev *d, const uint8_t *sid, int64_t time, const char *params)
{
	struct outcome *o = calloc(1, sizeof *o);

	if (o == NULL || (o->params = strdup(params)) == NULL) {
		free(o);
		return NULL;
	}
	memcpy(o->sid, sid, SESSION_ID_BYTES);
	o->time = time;
	DL_APPEND(d->pending, o);
	u->count++;
	stats.outcomes_kept++;
	return o;
}

static struct odev *
odev_add_device(struct ouser *u, const char *name, int64_t seen, int64_t dropped)
{
	struct odev *d = calloc(1, sizeof *d);

	if (d == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		return NULL;
	}
	d->seen = d->stored = seen;
	d->dropped = dropped;
	stats.outcome_devices++;
	d->next = u->devs;
	u->devs = d;
	return d;
}

/* Whether user's device has a connection now. */
static bool
device_connected(const char *user, const char *device)
{
	const struct device *d = device_find(user_find(user), device);

	return d != NULL && d->nconns > 0;
}

/*
 * Forget what is older than --outcome-retention, in u: outcomes, and
 * devices not seen for as long, with nothing kept and no connection (from
 * its next hello such a device is new). u itself stays.
 */
static void
ouser_expire(struct ouser *u, int64_t now)
{
	int64_t before = now - config.outcome_retention_ms;
	struct odev **dp = &u->devs, *d;

	while ((d = *dp) != NULL) {
		while (d->pending != NULL && d->pending->time < before) {
			odev_store(u, d, d->pending, true);
			outcome_free(u, d, d->pending);
		}
		if (d->pending == NULL && d->seen < before && !device_connected(u->name, d->name)) {
			odev_store(u, d, NULL, true);
			*dp = d->next;
			odev_free(d);
			continue;
		}
		dp = &d->next;
	}
}

/* Every so often: forget what is too old, in every user; users left with nothing go. */
static void
outcomes_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = now_ms();
	struct ouser *u, *tmp;

	(void)fd;
	(void)what;
	(void)arg;
	HASH_ITER (hh, users, u, tmp) {
		ouser_expire(u, now);
		if (u->devs == NULL) {
			HASH_DEL(users, u);
			free(u->name);
			free(u);
		}
	}
}

static int
outcomes_on_rolled_back(void *arg)
{
	(void)arg;
	ousers_clear();
	return outcomes_recover();
}

static const struct commit_participant outcomes_participant = {
	.name = "outcomes",
	.rolled_back = outcomes_on_rolled_back,
};

static void outcomes_on_final(const struct hub_peer *p, const uint8_t *sid);

int
outcomes_init(struct event_base *base)
{
	/* Often enough that nothing outlives the retention by more than a minute. */
	int64_t every = config.outcome_retention_ms < 60000 ? config.outcome_retention_ms : 60000;
	struct timeval tv = {(time_t)(every / 1000), (suseconds_t)(every % 1000) * 1000};

	users = NULL;
	sweep_ev = event_new(base, -1, EV_PERSIST, outcomes_on_sweep, NULL);
	if (sweep_ev == NULL || event_add(sweep_ev, &tv) != 0)
		return -1;
	hub_on_final_delivered(outcomes_on_final);
	commit_register(COMMIT_OUTCOMES, &outcomes_participant);
	return 0;
}

void
outcomes_finish(void)
{
	if (sweep_ev != NULL)
		event_free(sweep_ev);
	sweep_ev = NULL;
	ousers_clear();
}

static int
outcomes_recover_one(const struct store_outcome *so, void *arg)
{
	struct ouser *u = ouser_get(so->user, true);
	struct odev *d = u != NULL ? odev_find(u, so->device) : NULL;

	(void)arg;
	if (u == NULL)
		return -1;
	if (so->session == NULL) {
		if (d != NULL) {
			d->seen = d->stored = so->time;
			d->dropped = so->dropped;
			return 0;
		}
		return odev_add_device(u, so->device, so->time, so->dropped) != NULL ? 0 : -1;
	}
	if (d == NULL && (d = odev_add_device(u, so->device, so->time, 0)) == NULL)
		return -1;
	return odev_add(u, d, so->session, so->time, so->params) != NULL ? 0 : -1;
}

int
outcomes_recover(void)
{
	return store_load_outcomes(outcomes_recover_one, NULL);
}

int64_t
outcomes_hello(const char *user, const char *device, int64_t now)
{
	struct ouser *u = ouser_get(user, true);
	struct odev *d;
	int64_t dropped;

	if (u == NULL)
		return 0;
	ouser_expire(u, now);
	if ((d = odev_find(u, device)) == NULL) {
		if ((d = odev_add_device(u, device, now, 0)) == NULL) {
			log_error("outcomes: out of memory adding a device");
			return 0;
		}
		odev_store(u, d, NULL, false);
		return 0;
	}
	d->seen = now;
	dropped = d->dropped;
	d->dropped = 0;
	if (dropped != 0 || now - d->stored >= SEEN_LAG)
		odev_store(u, d, NULL, false);
	return dropped;
}

/* Make room under --max-outcomes: drop u's oldest outcome, counted on its device. */
static void
ouser_drop_oldest(struct ouser *u)
{
	struct odev *oldest = NULL;

	for (struct odev *d = u->devs; d != NULL; d = d->next) {
		if (d->pending != NULL &&
		    (oldest == NULL || d->pending->time < oldest->pending->time))
			oldest = d;
	}
	if (oldest == NULL)
		return;
	odev_store(u, oldest, oldest->pending, true);
	outcome_free(u, oldest, oldest->pending);
	oldest->dropped++;
	stats.outcomes_dropped++;
	odev_store(u, oldest, NULL, false);
}

/* One party's devices that said hello before the end learn it later. */
static void
party_ended(const char *name, const uint8_t *sid, int64_t time, const char *params)
{
	struct ouser *u = ouser_get(name, false);

	if (u == NULL)
		return;
	ouser_expire(u, time);
	for (struct odev *d = u->devs; d != NULL; d = d->next) {
		struct outcome *o;

		if (d->seen > time)
			continue;
		while (config.max_outcomes > 0 && u->count >= config.max_outcomes)
			ouser_drop_oldest(u);
		o = odev_add(u, d, sid, time, params);
		if (o == NULL) {
			log_error("outcomes: out of memory keeping an outcome");
			store_fail(); /* rather than lose it silently */
			return;
		}
		odev_store(u, d, o, false);
	}
}

bool
outcomes_wanted(const char *user)
{
	const struct ouser *u = ouser_get(user, false);

	if (shared_outcomes_on())
		return false; /* the script that ends a session keeps them */

	return u != NULL && u->devs != NULL;
}

void
outcomes_session_ended(const char *inviter, const char *invitee, const uint8_t *sid, int64_t time,
		       const char *params)
{
	party_ended(inviter, sid, time, params);
	if (invitee != NULL)
		party_ended(invitee, sid, time, params);
}

/* user's device's pending outcome of sid, or NULL (*u and *d set when found). */
static struct outcome *
outcome_find(const char *user, const char *device, const uint8_t *sid, struct ouser **u,
	     struct odev **d)
{
	struct outcome *o;

	*u = ouser_get(user, false);
	*d = odev_find(*u, device);
	if (*d == NULL)
		return NULL;
	DL_FOREACH ((*d)->pending, o) {
		if (memcmp(o->sid, sid, SESSION_ID_BYTES) == 0)
			return o;
	}
	return NULL;
}

/*
 * A session's final event queued to a device's connection, waiting to be
 * written: the device learns the outcome only if the kernel takes it. If the
 * connection goes first (or cuts a slow reader off), the outcome stays kept
 * and comes as session.outcome after the device's next hello.
 */
struct learning {
	struct conn_receipt receipt; /* first: the receipt is the learning */
	uint8_t sid[SESSION_ID_BYTES];
	char *device; /* in names, after user */
	char names[];
};

static void
outcomes_on_written(struct conn_receipt *r, bool written)
{
	struct learning *l = (struct learning *)r;
	struct ouser *u;
	struct odev *d;
	struct outcome *o;

	if (written && shared_outcomes_on())
		shared_outcomes_learned(l->names, l->device, l->sid);
	else if (written && (o = outcome_find(l->names, l->device, l->sid, &u, &d)) != NULL) {
		odev_store(u, d, o, true);
		outcome_free(u, d, o);
	}
	free(l);
}

/* A session's final event was queued to a connection: its device learns it once written. */
static void
outcomes_on_final(const struct hub_peer *p, const uint8_t *sid)
{
	const char *user = p->who->user->name, *device = p->who->device->name;
	size_t ulen = strlen(user), dlen = strlen(device);
	struct ouser *u;
	struct odev *d;
	struct learning *l;

	if (shared_outcomes_on() ? !p->who->device->named
				 : outcome_find(user, device, sid, &u, &d) == NULL)
		return; /* nothing kept for it */
	if ((l = malloc(sizeof *l + ulen + dlen + 2)) == NULL) {
		log_error("outcomes: out of memory; %s's device %s gets the outcome again", user,
			  device);
		return;
	}
	memcpy(l->sid, sid, SESSION_ID_BYTES);
	memcpy(l->names, user, ulen + 1);
	l->device = l->names + ulen + 1;
	memcpy(l->device, device, dlen + 1);
	l->receipt.fn = outcomes_on_written;
	conn_receipt(p->conn, &l->receipt);
}

void
outcomes_send(struct conn *c, const char *user, const char *device)
{
	struct ouser *u = ouser_get(user, false);
	struct odev *d = odev_find(u, device);
	struct outcome *o;

	DL_FOREACH (d != NULL ? d->pending : NULL, o) {
		static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"session.outcome\","
					   "\"params\":";
		conn_send_parts(c, head, sizeof head - 1, o->params, strlen(o->params), "}\n", 2);
		stats.outcomes_sent++;
	}
}

size_t
outcomes_ack(const char *user, const char *device, const json_t *sessions)
{
	size_t i, n = 0;
	json_t *v;

	json_array_foreach (sessions, i, v) {
		uint8_t sid[SESSION_ID_BYTES];
		struct ouser *u;
		struct odev *d;
		struct outcome *o;

		if (!session_id_parse(json_string_value(v), sid))
			continue;
		if ((o = outcome_find(user, device, sid, &u, &d)) != NULL) {
			odev_store(u, d, o, true);
			outcome_free(u, d, o);
			n++;
		}
	}
	return n;
}

json_t *
outcomes_list(const char *user, const char *device)
{
	struct ouser *u = ouser_get(user, false);
	struct odev *d = odev_find(u, device);
	json_t *list = json_array();
	struct outcome *o;

	DL_FOREACH (d != NULL && list != NULL ? d->pending : NULL, o) {
		if (json_array_append_new(list, json_loads(o->params, 0, NULL)) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

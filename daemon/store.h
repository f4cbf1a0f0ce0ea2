/*
 * The store: where sessions and the event history are kept so that a
 * restart loses nothing acknowledged. One interface (struct store_backend);
 * the backends are "memory" (keeps nothing) and "sqlite" (store_sqlite.c).
 *
 * Writes go into one open transaction, begun by the first write after a
 * commit; commit.c decides when it commits. A failed write poisons the
 * transaction: the next store_commit() rolls it back and fails. Loop thread
 * only.
 */
#ifndef RV_STORE_H
#define RV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h" /* enum store_durability, and the settings the store reads */
#include "rendezvous.h"
#include "util.h"

/* Everything durable about a session. Strings are borrowed. */
struct store_session {
	uint64_t seq; /* creation order, unique: the key */
	uint8_t id[SESSION_ID_BYTES];
	const char *inviter, *invitee;
	struct rv_machine m;
	int64_t created, updated, expires; /* Unix ms */
	uint64_t event;                    /* its latest event */
	const char *reason;                /* or NULL */
	bool has_code;
	int64_t code;
	const char *data, *app_data;     /* compact JSON, or NULL */
	const char *inviter_device;      /* the inviter's device that created it, or NULL */
	const char *answered_by;         /* the invitee's device that accepted, or NULL */
	const char *by_user, *by_device; /* who took its latest action; NULL: the daemon */
	const char *topic;               /* NULL for "" */
	bool replaced;                   /* ended by glare, replaced by the session replaced_by */
	uint8_t replaced_by[SESSION_ID_BYTES];
};

/* One event of the history. Strings are borrowed. */
struct store_event {
	uint64_t id;
	int64_t time; /* Unix ms */
	uint8_t sid[SESSION_ID_BYTES];
	const char *inviter, *invitee;
	bool invitee_visible;
	const char *line; /* the notification line, "\n" included */
	size_t len;
};

/*
 * A request's idempotency key and the reply it got (idempotency.c). Strings
 * are borrowed.
 */
struct store_key {
	const char *user, *method, *key;
	uint8_t params[32]; /* SHA-256 of the request's params, canonical */
	const char *reply;  /* {"result": ...} or {"error": ...}, compact JSON */
	int64_t time;       /* Unix ms of the first call */
};

/*
 * An outcome a device has not learned yet (outcomes.c), or (session NULL) a
 * device known to have said hello since 'time', with the outcomes dropped
 * for it. Strings are borrowed.
 */
struct store_outcome {
	const char *user, *device;
	const uint8_t *session; /* NULL: the device's own row */
	int64_t time;           /* when the session ended; the device: its first hello */
	const char *params;     /* session.outcome's params, compact JSON */
	int64_t dropped;        /* the device: outcomes dropped since it last said hello */
};

/* Called for each record read; a non-zero return stops the read with it. */
typedef int (*store_session_fn)(const struct store_session *rec, void *arg);
typedef int (*store_event_fn)(const struct store_event *ev, void *arg);
typedef int (*store_key_fn)(const struct store_key *k, void *arg);
typedef int (*store_outcome_fn)(const struct store_outcome *o, void *arg);

/*
 * A backend. Every function returns 0 on success, -1 on failure (after
 * logging it), except where said. h is what open returned.
 */
struct store_backend {
	const char *name;
	/* NULL (after logging why) when the store cannot be used. */
	void *(*open)(const char *path, enum store_durability d, bool check_only);
	void (*close)(void *h);
	/* The id of the newest event ever committed. */
	int (*last_event)(void *h, uint64_t *id);
	/* Every session, in seq order. */
	int (*load_sessions)(void *h, store_session_fn fn, void *arg);
	/* Events with id > after, in id order. */
	int (*load_events)(void *h, uint64_t after, store_event_fn fn, void *arg);
	/* The session with this seq: 1 if found (fn called), 0 if not, -1. */
	int (*get_session)(void *h, uint64_t seq, store_session_fn fn, void *arg);
	/* Writes, in the open transaction (begin opens it). */
	int (*begin)(void *h);
	int (*put_session)(void *h, const struct store_session *rec, bool insert);
	int (*delete_session)(void *h, uint64_t seq);
	int (*add_event)(void *h, const struct store_event *ev);
	/* Forget events with id < below (last_event still counts them). */
	int (*trim_events)(void *h, uint64_t below);
	/* last_event: the newest event id, for a backend that keeps it apart. */
	int (*commit)(void *h, uint64_t last_event);
	void (*rollback)(void *h);
	/* Idempotency keys: every one (any order), one more, and those older than before. */
	int (*load_keys)(void *h, store_key_fn fn, void *arg);
	int (*put_key)(void *h, const struct store_key *k);
	int (*trim_keys)(void *h, int64_t before);
	/* Outcomes and devices: every one; one more (or its new state); one gone. */
	int (*load_outcomes)(void *h, store_outcome_fn fn, void *arg);
	int (*put_outcome)(void *h, const struct store_outcome *o);
	int (*delete_outcome)(void *h, const struct store_outcome *o);
	/* Verify the whole store offline; print a summary to out. */
	int (*check)(void *h, FILE *out);
	/* Recovery read everything: let go of what only it needed. May be NULL. */
	void (*recovered)(void *h);
};

/*
 * Open the store config names (--store, --state-dir, --durability); -1
 * after logging why. check_only: for --check-store (no creation, no
 * migration).
 */
int store_open(bool check_only);
void store_close(void);
/* The backend's name and, for files, the path ("sqlite:/var/lib/..."). */
const char *store_describe(void);
/* Whether writes go anywhere (false for memory). */
bool store_durable(void);

int store_last_event(uint64_t *id);
int store_load_sessions(store_session_fn fn, void *arg);
int store_load_events(uint64_t after, store_event_fn fn, void *arg);
int store_get_session(uint64_t seq, store_session_fn fn, void *arg);
int store_load_keys(store_key_fn fn, void *arg);
int store_load_outcomes(store_outcome_fn fn, void *arg);

/* Writes: each begins the transaction if none is open. */
void store_put_session(const struct store_session *rec, bool insert);
void store_delete_session(uint64_t seq);
void store_add_event(const struct store_event *ev);
void store_trim_events(uint64_t below);
void store_put_key(const struct store_key *k);
void store_trim_keys(int64_t before);
void store_put_outcome(const struct store_outcome *o);
void store_delete_outcome(const struct store_outcome *o);

/* Fail the open transaction (opening one if needed): the next commit rolls back. */
void store_fail(void);
/* Whether a transaction is open (something was written since the last commit). */
bool store_in_txn(void);
/* Commit the open transaction; -1 if it failed and was rolled back. */
int store_commit(void);
/*
 * Call fn(arg) each time a transaction opens, before its first write (for
 * commit.c: the store reaches its coordinator only through this).
 */
void store_on_begin(void (*fn)(void *arg), void *arg);
/* The daemon has read what it recovers (main.c, once, after the loads). */
void store_recovered(void);
/* --check-store: verify and summarise; 0 if sound. */
int store_check(FILE *out);

extern const struct store_backend store_sqlite;

#endif

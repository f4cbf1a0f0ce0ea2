/*
 * Sessions shared through Redis (--store redis://...): every daemon given
 * the same Redis is a node of one service (daemon/REDIS.md).
 *
 * Each node holds every session (sessions.c) as a copy that only the feed
 * changes: Redis numbers every change on one counter and publishes it, with
 * the session's record and its event line, on one channel; the node applies
 * each message in order, filling a gap from the history Redis keeps before
 * going on. A change requested here is decided here (the state machine,
 * lib/machine.c, on the node's copy), then checked and applied in Redis by
 * one script (the session's version must not have moved); the request is
 * answered once Redis took it, before its event goes out.
 *
 * Called by core.c (start, stop), rpc_session.c (changes), metrics.c and
 * rpc_admin.c (state). Loop thread only.
 */
#ifndef RV_SHARED_H
#define RV_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rendezvous.h"

struct event_base;
struct jsonw;

/* Whether --store names Redis. */
bool shared_enabled(void);

/*
 * Connect, subscribe to the feed and load every session and the newest
 * history, turning the loop until that is done (Redis unreachable: it
 * keeps trying, logging why). 0, or -1 after logging (a signal to stop).
 */
int shared_start(struct event_base *base);
/* Leave: give up the node's lease, close the links. */
void shared_stop(void);

/* Whether the node serves: commands answered, the feed up and caught up. */
bool shared_ready(void);
/* Why not, for logs and /readyz (borrowed), or NULL when ready. */
const char *shared_why_not_ready(void);

/* What became of a proposed change, or a wait. */
enum shared_result {
	SHARED_APPLIED,     /* Redis took it: the session table holds it; its event follows */
	SHARED_CONFLICT,    /* another change came first: the table holds that; decide again */
	SHARED_UNAVAILABLE, /* Redis did not answer in time, or is unreachable */
	SHARED_KEPT,        /* nothing applied: the request's idempotency key holds value */
	SHARED_LIMIT,       /* nothing applied: the inviter has --max-sessions-per-user live */
};
/* value (borrowed for the call): with SHARED_KEPT, and from shared_sync() with a key. */
typedef void (*shared_done_fn)(void *arg, enum shared_result r, const char *value, size_t len);

/* A keyed request's idempotency key in Redis, and what it holds until the reply is kept. */
struct shared_key {
	const char *name, *pending;
	size_t name_len, pending_len;
};

/* A change proposed to Redis; everything is borrowed for the call. */
struct shared_change {
	const uint8_t *sid;
	uint64_t version;    /* the version it was decided from (0: a new session) */
	const char *inviter; /* the session's (its live sessions are counted across the service) */
	const struct jsonw *rec;  /* the new record (store_record.h) */
	const struct jsonw *line; /* its event's line without the id, or NULL for none */
	size_t at;                /* where the id goes in line */
	bool final;               /* the session ends (Redis keeps it for --linger) */
	/* final: session.outcome's params without the event id (at outcome_at), or NULL */
	const struct jsonw *outcome;
	size_t outcome_at;
	int64_t ended;                /* when it ended */
	const char *invitee;          /* NULL: only the inviter's devices keep the outcome */
	const struct shared_key *key; /* the request's idempotency key, or NULL */
};

/*
 * Propose a change decided from a version of the session. The parties'
 * devices that Redis knows (shared_outcomes.h) keep the outcome of a
 * session that ends. A key must not exist yet (SHARED_KEPT, nothing
 * applied, if it does) and is set to its pending value with the change, for
 * --idempotency-window. fn(arg, ..) is called once, later (never from
 * inside this call); NULL for a change nobody waits for (a deadline).
 */
void shared_propose(const struct shared_change *c, shared_done_fn fn, void *arg);
/*
 * Call fn(arg, SHARED_APPLIED, value, len) once this node holds every
 * change Redis had taken when this was called (a read after a write on
 * another node sees it), with what key (NULL: none) held then (value NULL:
 * nothing), or SHARED_UNAVAILABLE when Redis does not answer, or the feed
 * does not catch up, within --store-timeout. Later, never from inside this
 * call.
 */
void shared_sync(const char *key, size_t key_len, shared_done_fn fn, void *arg);
/* Keep value under key for ms (a keyed request's reply; nobody waits). */
void shared_put(const char *key, size_t key_len, const char *value, size_t len, int64_t ms);
/*
 * Call fn(last_event) when events this node's subscribers may have been
 * sent, or may be waiting for, are gone (Redis lost changes, or a gap the
 * history no longer holds): every subscriber must resync (4100).
 */
void shared_on_history_lost(void (*fn)(uint64_t last_event));
/* After SHARED_UNAVAILABLE: when to try again, in ms from now. */
int64_t shared_retry_after_ms(void);

/* This node's name (--node-name, or host:port). */
const char *shared_node_name(void);

/* Counters, for metrics and admin.stats. */
struct shared_stats {
	uint64_t proposed, applied, conflicts, unavailable; /* changes proposed here */
	uint64_t messages;                                  /* feed messages applied */
	uint64_t gaps, gap_messages;                        /* gaps filled, messages they held */
	uint64_t resyncs;  /* gaps the history no longer held: snapshot taken again */
	uint64_t position; /* the feed position applied */
	uint64_t connects; /* times the command link came up */
	bool lease;        /* this node's lease is held */
	size_t nodes;      /* nodes whose lease lives, this one included */
};
void shared_stats(struct shared_stats *out);

#endif

/*
 * Group commit: durable before acknowledged. Everything one pass of the
 * event loop writes goes into one store transaction. commit knows only the
 * store; what else depends on the transaction registers as a participant
 * and is told, in a fixed order (sessions, hub, output), when one opens,
 * when it is about to commit, and whether it committed or was rolled back.
 * The output participant (client.c) holds replies and notifications on the
 * transport's fence until the commit, and answers each write request 5003
 * (commit_failed_error()) when it fails; writes are then refused for a
 * moment.
 *
 * Loop thread only. Participants are borrowed and must outlive commit.
 */
#ifndef RV_COMMIT_H
#define RV_COMMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* How long writes are refused after a failed commit, in ms. */
#define COMMIT_RETRY_MS 1000

/* A participant's place in the fixed order in which participants are called. */
enum commit_slot {
	COMMIT_SESSIONS, /* sessions.c: frees what was deleted, or reloads what was undone */
	COMMIT_HUB,      /* hub.c: trims the stored history, or reloads it */
	COMMIT_KEYS,     /* idempotency.c: forgets the keys the pass recorded, if it failed */
	COMMIT_OUTCOMES, /* outcomes.c: reloads what the store holds, if it failed */
	COMMIT_OUTPUT,   /* client.c: the output fence: released, or dropped and 5003 sent */
	COMMIT_SLOTS,
};

/* What a participant is told. Any may be NULL. */
struct commit_participant {
	const char *name;
	/* A transaction opened (the pass's first write). */
	void (*begin)(void *arg);
	/* It is about to commit: last writes of its own (it may still fail). */
	void (*prepare)(void *arg);
	/* It committed. */
	void (*committed)(void *arg);
	/*
	 * It failed and was rolled back: make memory what the store holds.
	 * -1 when that cannot be done: the daemon then exits, so that a
	 * restart recovers from what was committed.
	 */
	int (*rolled_back)(void *arg);
	void *arg;
};

/* Start listening for the store's transactions. */
void commit_init(void);
/* Take p (borrowed) into slot, replacing whatever was there. */
void commit_register(enum commit_slot slot, const struct commit_participant *p);

/*
 * Commit what was written since the last commit, if anything. main.c calls
 * it at the end of each pass; rpc.c before any request whose reply must
 * only reflect committed state.
 */
void commit_pass(void);
/* Whether writes may be tried now (not in the pause after a failure). */
bool commit_writable(void);
/* When writes may be tried again (Unix ms). */
int64_t commit_retry_at(void);
/* How many commits have failed so far. */
uint64_t commit_failures(void);
/*
 * The one answer to a write request whose commit failed (5003), for the
 * request id (borrowed; NULL for null): a new reference, or NULL when
 * memory ran out. Counts the error.
 */
json_t *commit_failed_error(json_t *id);

/* The answer to a write refused in the pause after a failure (5003): its message... */
#define COMMIT_PAUSED_MESSAGE "unavailable: the store cannot save changes now; nothing was applied"
/* ...and its data, {retry_after_ms}: a new reference, or NULL. */
json_t *commit_paused_data(void);

#endif

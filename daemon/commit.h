/*
 * Group commit: durable before acknowledged. Everything one pass of the
 * event loop writes goes into one store transaction; replies and
 * notifications are held (conn.c) until it commits. If the commit fails,
 * the pass's changes are undone in memory, their output dropped and each
 * write request answered with 5003; writes are then refused for a moment.
 * Loop thread only.
 */
#ifndef RV_COMMIT_H
#define RV_COMMIT_H

#include <stdbool.h>
#include <stdint.h>

/* The answer to a change whose commit failed (error 5003). */
#define COMMIT_FAILED_MESSAGE \
	"unavailable: the store could not save the change; nothing was applied"

/* How long writes are refused after a failed commit, in ms. */
#define COMMIT_RETRY_MS 1000

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

#endif

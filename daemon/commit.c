/* Group commit, and the undo of a pass whose commit failed. */
#include <stdlib.h>

#include "commit.h"
#include "conn.h"
#include "hub.h"
#include "log.h"
#include "sessions.h"
#include "stats.h"
#include "store.h"
#include "util.h"

/* Trim the stored history once this many events have left memory. */
#define TRIM_STEP 1024

static struct {
	int64_t retry_at;  /* writes refused until then; 0: not refused */
	uint64_t failures; /* failed commits */
	uint64_t trimmed;  /* events below this were deleted from the store */
} cm;

/* A commit failed: make memory what the store holds again. */
static void
commit_undo(void)
{
	if (sessions_undo() != 0 || hub_recover() != 0) {
		/*
		 * Memory cannot be made to match the store: exit without
		 * sending anything, so that a restart recovers from what
		 * was committed.
		 */
		log_error("store %s: cannot read back what was committed; exiting so that a "
			  "restart recovers it",
			  store_describe());
		exit(EXIT_FAILURE);
	}
	conns_txn_end(false);
}

void
commit_pass(void)
{
	uint64_t first;
	double t0;
	int rc;

	if (!store_in_txn())
		return;
	first = hub_first_held();
	if (first > cm.trimmed + TRIM_STEP) {
		store_trim_events(first);
		cm.trimmed = first;
	}
	t0 = stats_clock();
	rc = store_commit(hub_last_event());
	histogram_observe(&stats.commit_seconds, stats_clock() - t0);
	if (rc == 0) {
		sessions_committed();
		conns_txn_end(true);
		cm.retry_at = 0;
		return;
	}
	cm.failures++;
	stats.store_failures++;
	cm.retry_at = now_ms() + COMMIT_RETRY_MS;
	log_error("store %s: commit failed: this pass's changes are undone and answered with "
		  "5003; writes resume in %d ms",
		  store_describe(), COMMIT_RETRY_MS);
	commit_undo();
}

bool
commit_writable(void)
{
	return cm.retry_at == 0 || now_ms() >= cm.retry_at;
}

int64_t
commit_retry_at(void)
{
	return cm.retry_at;
}

uint64_t
commit_failures(void)
{
	return cm.failures;
}

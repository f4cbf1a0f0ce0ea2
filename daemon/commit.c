/* Group commit: the store's transaction, and the participants told of its end. */
#include <stdlib.h>

#include "commit.h"
#include "log.h"
#include "rendezvous.h"
#include "stats.h"
#include "store.h"
#include "util.h"

/* The answer to a change whose commit failed (error 5003). */
#define COMMIT_FAILED_MESSAGE \
	"unavailable: the store could not save the change; nothing was applied"

static struct {
	const struct commit_participant *parts[COMMIT_SLOTS];
	int64_t retry_at;  /* writes refused until then; 0: not refused */
	uint64_t failures; /* failed commits */
} cm;

/* The store opened a transaction: tell every participant, in order. */
static void
commit_on_begin(void *arg)
{
	(void)arg;
	for (int i = 0; i < COMMIT_SLOTS; i++) {
		const struct commit_participant *p = cm.parts[i];
		if (p != NULL && p->begin != NULL)
			p->begin(p->arg);
	}
}

void
commit_init(void)
{
	store_on_begin(commit_on_begin, NULL);
}

void
commit_register(enum commit_slot slot, const struct commit_participant *p)
{
	cm.parts[slot] = p;
}

/* A commit failed: make memory what the store holds again. */
static void
commit_undo(void)
{
	for (int i = 0; i < COMMIT_SLOTS; i++) {
		const struct commit_participant *p = cm.parts[i];
		if (p == NULL || p->rolled_back == NULL || p->rolled_back(p->arg) == 0)
			continue;
		/*
		 * Memory cannot be made to match the store: exit without
		 * sending anything, so that a restart recovers from what was
		 * committed.
		 */
		log_error("store %s: %s cannot read back what was committed; exiting so that a "
			  "restart recovers it",
			  store_describe(), p->name);
		exit(EXIT_FAILURE);
	}
}

void
commit_pass(void)
{
	double t0;
	int rc;

	if (!store_in_txn())
		return;
	for (int i = 0; i < COMMIT_SLOTS; i++) {
		const struct commit_participant *p = cm.parts[i];
		if (p != NULL && p->prepare != NULL)
			p->prepare(p->arg);
	}
	t0 = stats_clock();
	rc = store_commit();
	histogram_observe(&stats.commit_seconds, stats_clock() - t0);
	if (rc == 0) {
		for (int i = 0; i < COMMIT_SLOTS; i++) {
			const struct commit_participant *p = cm.parts[i];
			if (p != NULL && p->committed != NULL)
				p->committed(p->arg);
		}
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

json_t *
commit_paused_data(void)
{
	int64_t wait = cm.retry_at - now_ms();

	return json_pack("{s:I}", "retry_after_ms", (json_int_t)(wait > 0 ? wait : 0));
}

json_t *
commit_failed_error(json_t *id)
{
	stats_error(RV_ERR_UNAVAILABLE);
	return rv_msg_error(id, RV_ERR_UNAVAILABLE, COMMIT_FAILED_MESSAGE, NULL);
}

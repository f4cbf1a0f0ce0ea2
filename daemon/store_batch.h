/*
 * A batch: journal frames (store_codec.h) folded into what they leave
 * behind, so that writing them into the database costs what the result
 * holds, not what happened on the way. Per session, only its final row
 * (or its removal; nothing for one created and removed within the batch);
 * only the events no trim in the batch removed; keys and outcomes as they
 * came (they are few).
 *
 * Any thread; a batch belongs to one at a time. It borrows the frames'
 * bytes, which must outlive it.
 */
#ifndef RV_STORE_BATCH_H
#define RV_STORE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct batch;

/* NULL when memory ran out. */
struct batch *batch_new(void);
void batch_free(struct batch *b);

/* Take in one frame's operations; -1 (after logging) when they do not decode or memory ran out. */
int batch_add(struct batch *b, uint64_t seq, const uint8_t *payload, size_t len);
/* The frames taken in: how many, and the number of the last (0: none). */
size_t batch_frames(const struct batch *b);
uint64_t batch_last(const struct batch *b);
/* The oldest event the batch adds (0: none). */
uint64_t batch_first_event(const struct batch *b);
/* The newest event id the batch writes or trims past (0: none). */
uint64_t batch_last_event(const struct batch *b);

/*
 * Write the result through be's write functions (h: be's handle), inside a
 * transaction the caller opened; 0, or -1 when one of them failed.
 */
int batch_apply(const struct batch *b, const struct store_backend *be, void *h);

/* The highest trim of events the batch holds (0: none): the tables' events below it are gone. */
uint64_t batch_below(const struct batch *b);
/* The events the batch adds with id > after and not trimmed, in order; fn as store_load_events. */
int batch_events(const struct batch *b, uint64_t after, store_event_fn fn, void *arg);

/*
 * Outcomes, for reading the tables through the batch: batch_seal() (after
 * the last batch_add; 0, or -1 when memory ran out) sorts what the batch
 * does to each; then whether it touches one (the tables' row no longer
 * counts), and every outcome it leaves (fn as store_load_outcomes).
 */
int batch_seal(struct batch *b);
bool batch_outcome_touched(const struct batch *b, const struct store_outcome *o);
int batch_outcomes(const struct batch *b, store_outcome_fn fn, void *arg);

/*
 * Idempotency keys, the same way (after batch_seal): whether the batch
 * writes one again, the keys it leaves (none older than its highest trim),
 * and whether a key of the tables is older than that trim.
 */
bool batch_key_touched(const struct batch *b, const struct store_key *k);
bool batch_key_trimmed(const struct batch *b, const struct store_key *k);
int batch_keys(const struct batch *b, store_key_fn fn, void *arg);

enum batch_session_state {
	BATCH_UNTOUCHED, /* the batch does not change the session */
	BATCH_REMOVED,   /* it removes it */
	BATCH_WHOLE,     /* it creates it: *r is the whole row */
	BATCH_UPDATED,   /* it updates it: *r has what an update changes (codec_apply_update) */
};

/* The sessions the batch creates and leaves, in seq order (fn as store_load_sessions). */
int batch_new_sessions(const struct batch *b, store_session_fn fn, void *arg);

/* What the batch does to session seq; *r borrows from the frames. */
enum batch_session_state batch_session(const struct batch *b, uint64_t seq,
				       struct store_session *r);

#endif

/*
 * The store's writes as bytes: what one journal frame holds (journal.h).
 * A frame is a sequence of operations, each a tag byte and its fields:
 * unsigned integers as LEB128 varints, signed ones zigzagged, strings as
 * varint (length + 1, 0 for none), the bytes and a NUL (so that a decoded
 * string can point into the frame), session ids as 16 raw bytes.
 *
 * A session update carries only what an update can change (the columns of
 * the SQLite UPDATE): the rest was written by its insert.
 *
 * Any thread (no shared state). Decoded records borrow from the frame.
 */
#ifndef RV_STORE_CODEC_H
#define RV_STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum codec_op {
	CODEC_INSERT_SESSION = 1,
	CODEC_UPDATE_SESSION,
	CODEC_DELETE_SESSION,
	CODEC_EVENT,
	CODEC_TRIM_EVENTS,
	CODEC_KEY,
	CODEC_TRIM_KEYS,
	CODEC_PUT_OUTCOME,
	CODEC_DELETE_OUTCOME,
};

/* A growable buffer; failed is set (and stays) when memory ran out. */
struct codec_buf {
	uint8_t *p;
	size_t len, cap;
	bool failed;
};

void codec_buf_free(struct codec_buf *b);

void codec_put_session(struct codec_buf *b, const struct store_session *r, bool insert);
void codec_delete_session(struct codec_buf *b, uint64_t seq);
void codec_add_event(struct codec_buf *b, const struct store_event *ev);
void codec_trim_events(struct codec_buf *b, uint64_t below);
void codec_put_key(struct codec_buf *b, const struct store_key *k);
void codec_trim_keys(struct codec_buf *b, int64_t before);
void codec_outcome(struct codec_buf *b, const struct store_outcome *o, bool remove);

/* One decoded operation. */
struct codec_rec {
	enum codec_op op;
	union {
		struct store_session session; /* insert; update: seq and what an update changes */
		uint64_t seq;                 /* delete */
		struct store_event event;
		uint64_t below; /* trim events */
		struct store_key key;
		int64_t before; /* trim keys */
		struct store_outcome outcome;
	} u;
	uint8_t outcome_session[SESSION_ID_BYTES]; /* what u.outcome.session points to */
};

/*
 * Decode the operation at *p, before end, and move *p past it: 1, 0 at
 * end, -1 when the bytes are not an operation.
 */
int codec_next(const uint8_t **p, const uint8_t *end, struct codec_rec *r);

/* Copy an update's fields (those an update carries) onto a whole record. */
void codec_apply_update(struct store_session *whole, const struct store_session *update);

#endif

/*
 * Encoded message lines shared by every connection they are sent to:
 * encoded once, in a reference-counted block shared by history and every
 * receiver. A block holds one line, or (events) many side by side, so that
 * the lines one receiver is sent in a pass are one run of bytes.
 *
 * Loop thread only. A block is owned by its references: msgbuf_unref()
 * frees it with the last one.
 */
#ifndef RV_MSGBUF_H
#define RV_MSGBUF_H

#include <stddef.h>
#include <stdlib.h>

#include <jansson.h>

struct msgbuf {
	unsigned refs;
	size_t len; /* bytes used: one line ("\n" included), or lines side by side */
	size_t cap; /* bytes data has room for */
	char data[];
};

/* Encode msg (borrowed) as one line in a block of its own, with one reference, or NULL. */
struct msgbuf *msgbuf_from_json(const json_t *msg);
/* Copy an already encoded line (with its "\n") into a block of its own, or NULL. */
struct msgbuf *msgbuf_from_bytes(const char *line, size_t len);
/*
 * Copy a line to the end of the block lines are appended to (a new one once
 * it is full): lines appended one after another lie side by side. Returns
 * that block with a reference for the caller, the copy at *at; NULL when
 * memory ran out.
 */
struct msgbuf *msgbuf_append(const char *line, size_t len, const char **at);
/* Let go of the block being appended to (shutdown; appending starts a new one). */
void msgbuf_finish(void);

/* Inline: fan-out takes and gives back references per receiver. */
static inline struct msgbuf *
msgbuf_ref(struct msgbuf *mb)
{
	mb->refs++;
	return mb;
}

static inline void
msgbuf_unref(struct msgbuf *mb)
{
	if (mb != NULL && --mb->refs == 0)
		free(mb);
}

#endif

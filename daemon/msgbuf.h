/*
 * An encoded message line shared by every connection it is sent to: encoded
 * once, reference-counted, shared by history and every receiver.
 *
 * Loop thread only. A msgbuf is owned by its references: msgbuf_unref()
 * frees it with the last one.
 */
#ifndef RV_MSGBUF_H
#define RV_MSGBUF_H

#include <stddef.h>

#include <jansson.h>

struct msgbuf {
	unsigned refs;
	size_t len; /* including the final "\n" */
	char data[];
};

/* Encode msg (borrowed) as one line. New buffer with one reference, or NULL. */
struct msgbuf *msgbuf_from_json(const json_t *msg);
/* Copy an already encoded line (with its "\n"). New buffer, or NULL. */
struct msgbuf *msgbuf_from_bytes(const char *line, size_t len);
struct msgbuf *msgbuf_ref(struct msgbuf *mb);
void msgbuf_unref(struct msgbuf *mb);

#endif

/* Encoded message lines shared, without copies, by all their receivers. */
#include <stdlib.h>
#include <string.h>

#include "msgbuf.h"
#include "rendezvous.h"

/*
 * Lines appended go to blocks of this size (a longer line gets a block of its
 * own). Big enough for a pass's events to lie side by side; history holds
 * its events' blocks, and the transport holds none past a pass.
 */
#define BLOCK_SIZE (64 * 1024)

static struct msgbuf *open_block; /* being appended to: one reference, or NULL */

static struct msgbuf *
block_new(size_t cap)
{
	struct msgbuf *mb = malloc(sizeof *mb + cap);

	if (mb != NULL) {
		mb->refs = 1;
		mb->len = 0;
		mb->cap = cap;
	}
	return mb;
}

struct msgbuf *
msgbuf_from_json(const json_t *msg)
{
	struct msgbuf *mb;
	size_t len;
	char *line = rv_msg_encode(msg, &len);

	if (line == NULL)
		return NULL;
	mb = msgbuf_from_bytes(line, len);
	free(line);
	return mb;
}

struct msgbuf *
msgbuf_from_bytes(const char *line, size_t len)
{
	struct msgbuf *mb = block_new(len);

	if (mb != NULL) {
		memcpy(mb->data, line, len);
		mb->len = len;
	}
	return mb;
}

struct msgbuf *
msgbuf_append(const char *line, size_t len, const char **at)
{
	struct msgbuf *mb;

	if (len > BLOCK_SIZE / 4) {
		/* Long lines would waste the rest of a block: one of their own. */
		mb = msgbuf_from_bytes(line, len);
		if (mb != NULL)
			*at = mb->data;
		return mb;
	}
	if (open_block == NULL || open_block->cap - open_block->len < len) {
		if ((mb = block_new(BLOCK_SIZE)) == NULL)
			return NULL;
		msgbuf_unref(open_block);
		open_block = mb;
	}
	mb = open_block;
	*at = mb->data + mb->len;
	memcpy(mb->data + mb->len, line, len);
	mb->len += len;
	return msgbuf_ref(mb);
}

void
msgbuf_finish(void)
{
	msgbuf_unref(open_block);
	open_block = NULL;
}

/* Encoded message lines shared, without copies, by all their receivers. */
#include <stdlib.h>
#include <string.h>

#include "msgbuf.h"
#include "rendezvous.h"

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
	struct msgbuf *mb = malloc(sizeof *mb + len);

	if (mb != NULL) {
		mb->refs = 1;
		mb->len = len;
		memcpy(mb->data, line, len);
	}
	return mb;
}

struct msgbuf *
msgbuf_ref(struct msgbuf *mb)
{
	mb->refs++;
	return mb;
}

void
msgbuf_unref(struct msgbuf *mb)
{
	if (mb != NULL && --mb->refs == 0)
		free(mb);
}

/*
 * libFuzzer target: reading the journal back (daemon/journal.c,
 * store_codec.c, store_batch.c), the code that runs on whatever a crash,
 * a full disk or a damaged disk left in the store's directory at start-up.
 *
 * The first input byte picks a mode:
 *   0: the rest is a frame's payload (past its checksum): decoded and
 *      folded into a batch, which is then written out to a backend that
 *      only checks what it is given, and asked about sessions and outcomes;
 *   1: the rest is a segment file: its whole frames are walked, each
 *      payload handled as in mode 0.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "store.h"
#include "store_batch.h"
#include "store_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A string the decoder handed out must be NUL-terminated where it says. */
static void
touch(const char *s)
{
	if (s != NULL && strlen(s) > JOURNAL_MAX_FRAME)
		abort();
}

static int
put_session(void *h, const struct store_session *r, bool insert)
{
	(void)h;
	(void)insert;
	touch(r->inviter);
	touch(r->invitee);
	touch(r->reason);
	touch(r->data);
	touch(r->app_data);
	touch(r->inviter_device);
	touch(r->answered_by);
	touch(r->by_user);
	touch(r->by_device);
	touch(r->topic);
	return 0;
}

static int
delete_session(void *h, uint64_t seq)
{
	(void)h;
	(void)seq;
	return 0;
}

static int
add_event(void *h, const struct store_event *ev)
{
	(void)h;
	touch(ev->inviter);
	touch(ev->invitee);
	if (ev->line == NULL || strlen(ev->line) != ev->len)
		abort();
	return 0;
}

static int
trim_events(void *h, uint64_t below)
{
	(void)h;
	(void)below;
	return 0;
}

static int
put_key(void *h, const struct store_key *k)
{
	(void)h;
	touch(k->user);
	touch(k->method);
	touch(k->key);
	touch(k->reply);
	return 0;
}

static int
trim_keys(void *h, int64_t before)
{
	(void)h;
	(void)before;
	return 0;
}

static int
put_outcome(void *h, const struct store_outcome *o)
{
	(void)h;
	touch(o->user);
	touch(o->device);
	touch(o->params);
	return 0;
}

static int
one_outcome(const struct store_outcome *o, void *arg)
{
	return put_outcome(arg, o);
}

static int
one_event(const struct store_event *ev, void *arg)
{
	return add_event(arg, ev);
}

static int
one_session(const struct store_session *r, void *arg)
{
	return put_session(arg, r, true);
}

static const struct store_backend checker = {
	.name = "fuzz",
	.put_session = put_session,
	.delete_session = delete_session,
	.add_event = add_event,
	.trim_events = trim_events,
	.put_key = put_key,
	.trim_keys = trim_keys,
	.put_outcome = put_outcome,
	.delete_outcome = put_outcome,
};

static int
frame(uint64_t seq, const uint8_t *payload, size_t len, void *arg)
{
	return batch_add(arg, seq, payload, len) == 0 ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct batch *b;
	struct store_session r;
	uint8_t *copy;

	if (size < 1 || (b = batch_new()) == NULL)
		return 0;
	/* A copy of exactly the input's length: reading past it is caught. */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (copy == NULL) {
		batch_free(b);
		return 0;
	}
	memcpy(copy, data + 1, size - 1);
	if (data[0] == 0) {
		if (batch_add(b, 1, copy, size - 1) != 0)
			goto done;
	} else {
		struct journal_file f = {copy, size - 1};
		uint64_t next = 0;
		if (journal_scan(&f, &next, frame, b) < 0)
			goto done;
	}
	if (batch_seal(b) != 0)
		goto done;
	batch_apply(b, &checker, NULL);
	batch_events(b, 0, one_event, NULL);
	batch_outcomes(b, one_outcome, NULL);
	batch_new_sessions(b, one_session, NULL);
	for (uint64_t seq = 0; seq < 8; seq++)
		if (batch_session(b, seq, &r) == BATCH_WHOLE)
			put_session(NULL, &r, true);
done:
	batch_free(b);
	free(copy);
	return 0;
}

/* Journal frames folded into their result (store_batch.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_batch.h"
#include "store_codec.h"

/* Where an operation's bytes are: enough to decode it again. */
struct opref {
	const uint8_t *p, *end;
};

/* A session the batch touches (seq 0: an empty slot). */
struct bsession {
	uint64_t seq;
	struct opref ins, upd; /* its insert and its last update (p NULL: none) */
	bool removed;
};

/* An outcome operation's key, and where it is (batch_seal). */
struct okey {
	const char *user, *device;
	uint8_t session[SESSION_ID_BYTES];
	bool has_session;
	size_t at; /* index in other[] */
};

/* An idempotency key's name, and where its write is (batch_seal). */
struct ikey {
	const char *user, *method, *key;
	size_t at; /* index in other[] */
};

struct batch {
	struct bsession *map; /* open addressing, a power of two */
	size_t cap, used;
	struct opref *events, *other; /* events; keys and outcomes, in order */
	size_t nevents, evcap, nother, othercap;
	uint64_t below;     /* the highest trim of events (0: none) */
	struct okey *okeys; /* batch_seal(): the last operation on each outcome, sorted */
	size_t nokeys;
	struct ikey *ikeys; /* batch_seal(): the last write of each idempotency key, sorted */
	size_t nikeys;
	bool keys_trimmed;
	int64_t keys_before; /* the highest trim of keys */
	uint64_t first_event, last_event;
	size_t frames;
	uint64_t last;
};

struct batch *
batch_new(void)
{
	return calloc(1, sizeof(struct batch));
}

void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	free(b->map);
	free(b->events);
	free(b->other);
	free(b->okeys);
	free(b->ikeys);
	free(b);
}

static size_t
slot_of(uint64_t seq, size_t cap)
{
	seq *= 0x9e3779b97f4a7c15ull;
	return (size_t)(seq >> 32) & (cap - 1);
}

/* The slot for seq, added if missing; NULL when memory ran out. */
static struct bsession *
session_slot(struct batch *b, uint64_t seq)
{
	size_t i;

	if (b->used * 2 >= b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct bsession *map = calloc(cap, sizeof *map);
		if (map == NULL)
			return NULL;
		for (size_t k = 0; k < b->cap; k++) {
			if (b->map[k].seq == 0)
				continue;
			for (i = slot_of(b->map[k].seq, cap); map[i].seq != 0;
			     i = (i + 1) & (cap - 1))
				;
			map[i] = b->map[k];
		}
		free(b->map);
		b->map = map;
		b->cap = cap;
	}
	for (i = slot_of(seq, b->cap); b->map[i].seq != 0; i = (i + 1) & (b->cap - 1))
		if (b->map[i].seq == seq)
			return &b->map[i];
	b->map[i].seq = seq;
	b->used++;
	return &b->map[i];
}

static const struct bsession *
session_find(const struct batch *b, uint64_t seq)
{
	if (b->cap == 0)
		return NULL;
	for (size_t i = slot_of(seq, b->cap); b->map[i].seq != 0; i = (i + 1) & (b->cap - 1))
		if (b->map[i].seq == seq)
			return &b->map[i];
	return NULL;
}

static int
push(struct opref **v, size_t *n, size_t *cap, struct opref r)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct opref *g = realloc(*v, c * sizeof *g);
		if (g == NULL)
			return -1;
		*v = g;
		*cap = c;
	}
	(*v)[(*n)++] = r;
	return 0;
}

int
batch_add(struct batch *b, uint64_t seq, const uint8_t *payload, size_t len)
{
	const uint8_t *p = payload, *end = payload + len;
	struct codec_rec r;
	int rc;

	for (;;) {
		struct opref at = {p, end};
		struct bsession *s;
		int err = 0;

		if ((rc = codec_next(&p, end, &r)) <= 0)
			break;
		switch (r.op) {
		case CODEC_INSERT_SESSION:
		case CODEC_UPDATE_SESSION:
		case CODEC_DELETE_SESSION:
			s = session_slot(b,
					 r.op == CODEC_DELETE_SESSION ? r.u.seq : r.u.session.seq);
			if (s == NULL) {
				err = -1;
				break;
			}
			if (r.op == CODEC_INSERT_SESSION) {
				s->ins = at;
				s->upd.p = NULL;
				s->removed = false;
			} else if (r.op == CODEC_UPDATE_SESSION) {
				s->upd = at;
			} else {
				s->removed = true;
			}
			break;
		case CODEC_EVENT:
			err = push(&b->events, &b->nevents, &b->evcap, at);
			if (b->first_event == 0 || r.u.event.id < b->first_event)
				b->first_event = r.u.event.id;
			if (r.u.event.id > b->last_event)
				b->last_event = r.u.event.id;
			break;
		case CODEC_TRIM_EVENTS:
			if (r.u.below > b->below)
				b->below = r.u.below;
			if (r.u.below > 0 && r.u.below - 1 > b->last_event)
				b->last_event = r.u.below - 1;
			break;
		default: err = push(&b->other, &b->nother, &b->othercap, at);
		}
		if (err != 0) {
			log_error("journal: out of memory reading frame %llu",
				  (unsigned long long)seq);
			return -1;
		}
	}
	if (rc < 0) {
		log_error("journal: frame %llu is damaged: an operation does not decode",
			  (unsigned long long)seq);
		return -1;
	}
	b->frames++;
	b->last = seq;
	return 0;
}

size_t
batch_frames(const struct batch *b)
{
	return b->frames;
}

uint64_t
batch_last(const struct batch *b)
{
	return b->last;
}

uint64_t
batch_first_event(const struct batch *b)
{
	return b->first_event;
}

uint64_t
batch_last_event(const struct batch *b)
{
	return b->last_event;
}

/* Decode an operation batch_add() already decoded once. */
static void
decode(struct opref at, struct codec_rec *r)
{
	codec_next(&at.p, at.end, r);
}

/* What one session's operations leave; 0 or -1. */
static int
apply_session(const struct bsession *s, const struct store_backend *be, void *h)
{
	struct codec_rec ins, upd;

	if (s->removed)
		return s->ins.p != NULL ? 0 : be->delete_session(h, s->seq);
	if (s->upd.p != NULL)
		decode(s->upd, &upd);
	if (s->ins.p == NULL)
		return be->put_session(h, &upd.u.session, false);
	decode(s->ins, &ins);
	if (s->upd.p != NULL)
		codec_apply_update(&ins.u.session, &upd.u.session);
	return be->put_session(h, &ins.u.session, true);
}

static int
bsession_cmp(const void *x, const void *y)
{
	uint64_t a = (*(const struct bsession *const *)x)->seq;
	uint64_t b = (*(const struct bsession *const *)y)->seq;

	return a < b ? -1 : a > b;
}

int
batch_apply(const struct batch *b, const struct store_backend *be, void *h)
{
	const struct bsession **order;
	struct codec_rec r;
	size_t n = 0;

	if (b->below > 0 && be->trim_events(h, b->below) != 0)
		return -1;
	for (size_t i = 0; i < b->nother; i++) {
		int rc;

		decode(b->other[i], &r);
		switch (r.op) {
		case CODEC_KEY: rc = be->put_key(h, &r.u.key); break;
		case CODEC_TRIM_KEYS: rc = be->trim_keys(h, r.u.before); break;
		case CODEC_PUT_OUTCOME: rc = be->put_outcome(h, &r.u.outcome); break;
		default: rc = be->delete_outcome(h, &r.u.outcome);
		}
		if (rc != 0)
			return -1;
	}
	/* In seq order: the table's key, so rows go in (or are found) page after page. */
	order = calloc(b->used ? b->used : 1, sizeof *order);
	for (size_t i = 0; order != NULL && i < b->cap; i++)
		if (b->map[i].seq != 0)
			order[n++] = &b->map[i];
	if (order != NULL)
		qsort(order, n, sizeof *order, bsession_cmp);
	for (size_t i = 0; order != NULL && i < n; i++)
		if (apply_session(order[i], be, h) != 0)
			goto fail;
	/* Out of memory for the order: the map's order does the same, slower. */
	for (size_t i = 0; order == NULL && i < b->cap; i++)
		if (b->map[i].seq != 0 && apply_session(&b->map[i], be, h) != 0)
			return -1;
	free(order);
	for (size_t i = 0; i < b->nevents; i++) {
		decode(b->events[i], &r);
		if (r.u.event.id >= b->below && be->add_event(h, &r.u.event) != 0)
			return -1;
	}
	return 0;
fail:
	free(order);
	return -1;
}

enum batch_session_state
batch_session(const struct batch *b, uint64_t seq, struct store_session *out)
{
	const struct bsession *s = session_find(b, seq);
	struct codec_rec ins, upd;

	if (s == NULL)
		return BATCH_UNTOUCHED;
	if (s->removed)
		return BATCH_REMOVED;
	if (s->upd.p != NULL)
		decode(s->upd, &upd);
	if (s->ins.p == NULL) {
		*out = upd.u.session;
		return BATCH_UPDATED;
	}
	decode(s->ins, &ins);
	if (s->upd.p != NULL)
		codec_apply_update(&ins.u.session, &upd.u.session);
	*out = ins.u.session;
	return BATCH_WHOLE;
}

uint64_t
batch_below(const struct batch *b)
{
	return b->below;
}

int
batch_events(const struct batch *b, uint64_t after, store_event_fn fn, void *arg)
{
	struct codec_rec r;

	for (size_t i = 0; i < b->nevents; i++) {
		decode(b->events[i], &r);
		if (r.u.event.id > after && r.u.event.id >= b->below && fn(&r.u.event, arg) != 0)
			return -1;
	}
	return 0;
}

/* By name only (bsearch); okey_cmp: then by place, so that the last write sorts last. */
static int
okey_name_cmp(const void *x, const void *y)
{
	const struct okey *a = x, *b = y;
	int c = strcmp(a->user, b->user);

	if (c == 0)
		c = strcmp(a->device, b->device);
	if (c == 0)
		c = (int)a->has_session - (int)b->has_session;
	if (c == 0 && a->has_session)
		c = memcmp(a->session, b->session, SESSION_ID_BYTES);
	return c;
}

static int
okey_cmp(const void *x, const void *y)
{
	const struct okey *a = x, *b = y;
	int c = okey_name_cmp(a, b);

	return c != 0 ? c : a->at < b->at ? -1 : a->at > b->at;
}

static void
okey_of(struct okey *k, const struct store_outcome *o, size_t at)
{
	k->user = o->user;
	k->device = o->device;
	k->has_session = o->session != NULL;
	if (o->session != NULL)
		memcpy(k->session, o->session, SESSION_ID_BYTES);
	else
		memset(k->session, 0, SESSION_ID_BYTES);
	k->at = at;
}

/* As okey_name_cmp and okey_cmp, for idempotency keys. */
static int
ikey_name_cmp(const void *x, const void *y)
{
	const struct ikey *a = x, *b = y;
	int c = strcmp(a->user, b->user);

	if (c == 0)
		c = strcmp(a->method, b->method);
	return c != 0 ? c : strcmp(a->key, b->key);
}

static int
ikey_cmp(const void *x, const void *y)
{
	const struct ikey *a = x, *b = y;
	int c = ikey_name_cmp(a, b);

	return c != 0 ? c : a->at < b->at ? -1 : a->at > b->at;
}

int
batch_seal(struct batch *b)
{
	struct codec_rec r;
	size_t n = 0, kept = 0, nk = 0;

	free(b->okeys);
	free(b->ikeys);
	b->okeys = calloc(b->nother ? b->nother : 1, sizeof *b->okeys);
	b->ikeys = calloc(b->nother ? b->nother : 1, sizeof *b->ikeys);
	if (b->okeys == NULL || b->ikeys == NULL)
		return -1;
	for (size_t i = 0; i < b->nother; i++) {
		decode(b->other[i], &r);
		if (r.op == CODEC_PUT_OUTCOME || r.op == CODEC_DELETE_OUTCOME) {
			okey_of(&b->okeys[n++], &r.u.outcome, i);
		} else if (r.op == CODEC_KEY) {
			b->ikeys[nk++] =
				(struct ikey){r.u.key.user, r.u.key.method, r.u.key.key, i};
		} else if (r.op == CODEC_TRIM_KEYS &&
			   (!b->keys_trimmed || r.u.before > b->keys_before)) {
			b->keys_trimmed = true;
			b->keys_before = r.u.before;
		}
	}
	qsort(b->ikeys, nk, sizeof *b->ikeys, ikey_cmp);
	b->nikeys = 0;
	for (size_t i = 0; i < nk; i++)
		if (i + 1 == nk || ikey_name_cmp(&b->ikeys[i], &b->ikeys[i + 1]) != 0)
			b->ikeys[b->nikeys++] = b->ikeys[i];
	qsort(b->okeys, n, sizeof *b->okeys, okey_cmp);
	/* The last operation on each outcome is what the batch leaves. */
	for (size_t i = 0; i < n; i++)
		if (i + 1 == n || okey_name_cmp(&b->okeys[i], &b->okeys[i + 1]) != 0)
			b->okeys[kept++] = b->okeys[i];
	b->nokeys = kept;
	return 0;
}

bool
batch_outcome_touched(const struct batch *b, const struct store_outcome *o)
{
	struct okey k;

	okey_of(&k, o, 0);
	return b->nokeys > 0 &&
	       bsearch(&k, b->okeys, b->nokeys, sizeof *b->okeys, okey_name_cmp) != NULL;
}

int
batch_outcomes(const struct batch *b, store_outcome_fn fn, void *arg)
{
	struct codec_rec r;

	for (size_t i = 0; i < b->nokeys; i++) {
		decode(b->other[b->okeys[i].at], &r);
		if (r.op == CODEC_PUT_OUTCOME && fn(&r.u.outcome, arg) != 0)
			return -1;
	}
	return 0;
}

static int
seq_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

int
batch_new_sessions(const struct batch *b, store_session_fn fn, void *arg)
{
	uint64_t *seqs = calloc(b->used ? b->used : 1, sizeof *seqs);
	size_t n = 0;
	int rc = 0;

	if (seqs == NULL) {
		log_error("journal: out of memory listing sessions");
		return -1;
	}
	for (size_t i = 0; i < b->cap; i++)
		if (b->map[i].seq != 0 && b->map[i].ins.p != NULL && !b->map[i].removed)
			seqs[n++] = b->map[i].seq;
	qsort(seqs, n, sizeof *seqs, seq_cmp);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct store_session r;

		batch_session(b, seqs[i], &r);
		if (fn(&r, arg) != 0)
			rc = -1;
	}
	free(seqs);
	return rc;
}

bool
batch_key_touched(const struct batch *b, const struct store_key *k)
{
	struct ikey want = {k->user, k->method, k->key, 0};

	return b->nikeys > 0 &&
	       bsearch(&want, b->ikeys, b->nikeys, sizeof *b->ikeys, ikey_name_cmp) != NULL;
}

bool
batch_key_trimmed(const struct batch *b, const struct store_key *k)
{
	return b->keys_trimmed && k->time < b->keys_before;
}

int
batch_keys(const struct batch *b, store_key_fn fn, void *arg)
{
	struct codec_rec r;

	for (size_t i = 0; i < b->nikeys; i++) {
		decode(b->other[b->ikeys[i].at], &r);
		if (!batch_key_trimmed(b, &r.u.key) && fn(&r.u.key, arg) != 0)
			return -1;
	}
	return 0;
}

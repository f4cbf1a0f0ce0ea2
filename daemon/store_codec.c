/* The store's writes as journal bytes (store_codec.h). */
#include <stdlib.h>
#include <string.h>

#include "store_codec.h"

void
codec_buf_free(struct codec_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Room for n more bytes; false (and failed set) when memory ran out. */
static bool
reserve(struct codec_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->failed)
		return false;
	if (b->cap - b->len >= n)
		return true;
	cap = b->cap ? b->cap : 512;
	while (cap - b->len < n)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void
put_u(struct codec_buf *b, uint64_t v)
{
	if (!reserve(b, 10))
		return;
	while (v >= 0x80) {
		b->p[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->p[b->len++] = (uint8_t)v;
}

static void
put_i(struct codec_buf *b, int64_t v)
{
	put_u(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void
put_bytes(struct codec_buf *b, const void *p, size_t n)
{
	if (reserve(b, n)) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	}
}

/* A string of n bytes (s NULL: none), then its NUL. */
static void
put_strn(struct codec_buf *b, const char *s, size_t n)
{
	if (s == NULL) {
		put_u(b, 0);
		return;
	}
	put_u(b, (uint64_t)n + 1);
	put_bytes(b, s, n);
	put_bytes(b, "", 1);
}

static void
put_str(struct codec_buf *b, const char *s)
{
	put_strn(b, s, s != NULL ? strlen(s) : 0);
}

/* What an update changes: the columns of store_sqlite.c's UPDATE. */
static void
put_changes(struct codec_buf *b, const struct store_session *r)
{
	put_u(b, (uint64_t)r->m.state);
	for (int i = 0; i < RV_ROLE_COUNT; i++)
		put_u(b, r->m.done[i]);
	put_i(b, r->updated);
	put_i(b, r->expires);
	put_u(b, r->event);
	put_str(b, r->reason);
	put_u(b, r->has_code);
	if (r->has_code)
		put_i(b, r->code);
	put_str(b, r->app_data);
	put_str(b, r->answered_by);
	put_str(b, r->by_user);
	put_str(b, r->by_device);
	put_u(b, r->replaced);
	if (r->replaced)
		put_bytes(b, r->replaced_by, SESSION_ID_BYTES);
}

void
codec_put_session(struct codec_buf *b, const struct store_session *r, bool insert)
{
	put_u(b, insert ? CODEC_INSERT_SESSION : CODEC_UPDATE_SESSION);
	put_u(b, r->seq);
	if (insert) {
		put_bytes(b, r->id, SESSION_ID_BYTES);
		put_str(b, r->inviter);
		put_str(b, r->invitee);
		put_i(b, r->created);
		put_str(b, r->data);
		put_str(b, r->inviter_device);
		put_str(b, r->topic);
	}
	put_changes(b, r);
}

void
codec_delete_session(struct codec_buf *b, uint64_t seq)
{
	put_u(b, CODEC_DELETE_SESSION);
	put_u(b, seq);
}

void
codec_add_event(struct codec_buf *b, const struct store_event *ev)
{
	put_u(b, CODEC_EVENT);
	put_u(b, ev->id);
	put_i(b, ev->time);
	put_bytes(b, ev->sid, SESSION_ID_BYTES);
	put_str(b, ev->inviter);
	put_str(b, ev->invitee);
	put_u(b, ev->invitee_visible);
	put_strn(b, ev->line, ev->len);
}

void
codec_trim_events(struct codec_buf *b, uint64_t below)
{
	put_u(b, CODEC_TRIM_EVENTS);
	put_u(b, below);
}

void
codec_put_key(struct codec_buf *b, const struct store_key *k)
{
	put_u(b, CODEC_KEY);
	put_str(b, k->user);
	put_str(b, k->method);
	put_str(b, k->key);
	put_bytes(b, k->params, sizeof k->params);
	put_str(b, k->reply);
	put_i(b, k->time);
}

void
codec_trim_keys(struct codec_buf *b, int64_t before)
{
	put_u(b, CODEC_TRIM_KEYS);
	put_i(b, before);
}

void
codec_outcome(struct codec_buf *b, const struct store_outcome *o, bool remove)
{
	put_u(b, remove ? CODEC_DELETE_OUTCOME : CODEC_PUT_OUTCOME);
	put_str(b, o->user);
	put_str(b, o->device);
	put_u(b, o->session != NULL);
	if (o->session != NULL)
		put_bytes(b, o->session, SESSION_ID_BYTES);
	if (remove)
		return;
	put_i(b, o->time);
	put_str(b, o->params);
	put_i(b, o->dropped);
}

/* Decoding: each reader sets *bad and returns 0 when the bytes run out or are wrong. */
struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t
get_u(struct rd *d)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t c;
		if (d->p >= d->end)
			break;
		c = *d->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	d->bad = true;
	return 0;
}

static int64_t
get_i(struct rd *d)
{
	uint64_t u = get_u(d);

	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static bool
get_bool(struct rd *d)
{
	uint64_t v = get_u(d);

	if (v > 1)
		d->bad = true;
	return v == 1;
}

static void
get_bytes(struct rd *d, void *out, size_t n)
{
	if ((size_t)(d->end - d->p) < n) {
		d->bad = true;
		memset(out, 0, n);
		return;
	}
	memcpy(out, d->p, n);
	d->p += n;
}

/* A string (NULL for none); *len its length. */
static const char *
get_strn(struct rd *d, size_t *len)
{
	uint64_t n = get_u(d);
	const char *s;

	*len = 0;
	if (n == 0 || d->bad)
		return NULL;
	if ((uint64_t)(d->end - d->p) < n || d->p[n - 1] != '\0' ||
	    memchr(d->p, '\0', n - 1) != NULL) {
		d->bad = true;
		return NULL;
	}
	s = (const char *)d->p;
	*len = n - 1;
	d->p += n;
	return s;
}

static const char *
get_str(struct rd *d)
{
	size_t len;

	return get_strn(d, &len);
}

static void
get_changes(struct rd *d, struct store_session *r)
{
	uint64_t state = get_u(d);

	if (state > RSS_TERMINATED || state == RSS_UNKNOWN)
		d->bad = true;
	r->m.state = (enum rv_state)state;
	for (int i = 0; i < RV_ROLE_COUNT; i++) {
		uint64_t done = get_u(d);
		if (done > UINT16_MAX)
			d->bad = true;
		r->m.done[i] = (uint16_t)done;
	}
	r->updated = get_i(d);
	r->expires = get_i(d);
	r->event = get_u(d);
	r->reason = get_str(d);
	r->has_code = get_bool(d);
	if (r->has_code)
		r->code = get_i(d);
	r->app_data = get_str(d);
	r->answered_by = get_str(d);
	r->by_user = get_str(d);
	r->by_device = get_str(d);
	r->replaced = get_bool(d);
	if (r->replaced)
		get_bytes(d, r->replaced_by, SESSION_ID_BYTES);
}

int
codec_next(const uint8_t **p, const uint8_t *end, struct codec_rec *r)
{
	struct rd d = {*p, end, false};
	struct store_session *s = &r->u.session;
	uint64_t op;

	if (*p >= end)
		return 0;
	memset(r, 0, sizeof *r);
	op = get_u(&d);
	r->op = (enum codec_op)op;
	switch (op) {
	case CODEC_INSERT_SESSION:
	case CODEC_UPDATE_SESSION:
		s->seq = get_u(&d);
		if (op == CODEC_INSERT_SESSION) {
			get_bytes(&d, s->id, SESSION_ID_BYTES);
			s->inviter = get_str(&d);
			s->invitee = get_str(&d);
			s->created = get_i(&d);
			s->data = get_str(&d);
			s->inviter_device = get_str(&d);
			s->topic = get_str(&d);
			if (s->inviter == NULL || s->invitee == NULL)
				d.bad = true;
		}
		get_changes(&d, s);
		break;
	case CODEC_DELETE_SESSION: r->u.seq = get_u(&d); break;
	case CODEC_EVENT:
		r->u.event.id = get_u(&d);
		r->u.event.time = get_i(&d);
		get_bytes(&d, r->u.event.sid, SESSION_ID_BYTES);
		r->u.event.inviter = get_str(&d);
		r->u.event.invitee = get_str(&d);
		r->u.event.invitee_visible = get_bool(&d);
		r->u.event.line = get_strn(&d, &r->u.event.len);
		if (r->u.event.inviter == NULL || r->u.event.invitee == NULL ||
		    r->u.event.line == NULL)
			d.bad = true;
		break;
	case CODEC_TRIM_EVENTS: r->u.below = get_u(&d); break;
	case CODEC_KEY:
		r->u.key.user = get_str(&d);
		r->u.key.method = get_str(&d);
		r->u.key.key = get_str(&d);
		get_bytes(&d, r->u.key.params, sizeof r->u.key.params);
		r->u.key.reply = get_str(&d);
		r->u.key.time = get_i(&d);
		if (r->u.key.user == NULL || r->u.key.method == NULL || r->u.key.key == NULL ||
		    r->u.key.reply == NULL)
			d.bad = true;
		break;
	case CODEC_TRIM_KEYS: r->u.before = get_i(&d); break;
	case CODEC_PUT_OUTCOME:
	case CODEC_DELETE_OUTCOME:
		r->u.outcome.user = get_str(&d);
		r->u.outcome.device = get_str(&d);
		if (get_bool(&d)) {
			get_bytes(&d, r->outcome_session, SESSION_ID_BYTES);
			r->u.outcome.session = r->outcome_session;
		}
		if (op == CODEC_PUT_OUTCOME) {
			r->u.outcome.time = get_i(&d);
			r->u.outcome.params = get_str(&d);
			r->u.outcome.dropped = get_i(&d);
		}
		if (r->u.outcome.user == NULL || r->u.outcome.device == NULL)
			d.bad = true;
		break;
	default: d.bad = true;
	}
	if (d.bad)
		return -1;
	*p = d.p;
	return 1;
}

void
codec_apply_update(struct store_session *whole, const struct store_session *u)
{
	whole->m = u->m;
	whole->updated = u->updated;
	whole->expires = u->expires;
	whole->event = u->event;
	whole->reason = u->reason;
	whole->has_code = u->has_code;
	whole->code = u->code;
	whole->app_data = u->app_data;
	whole->answered_by = u->answered_by;
	whole->by_user = u->by_user;
	whole->by_device = u->by_device;
	whole->replaced = u->replaced;
	memcpy(whole->replaced_by, u->replaced_by, SESSION_ID_BYTES);
}

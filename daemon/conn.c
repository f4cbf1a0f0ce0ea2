/*
 * The transport: reading and framing, output buffering, backpressure,
 * output bounds, the output fence, TLS, teardown.
 *
 * Output is a queue of pieces per connection, written by conns_flush(), which
 * main.c runs once per pass of the event loop: every reply and notification
 * a pass produced leaves in one send() (or writev()) per connection, and a
 * write event is armed only for a socket that did not take everything
 * (Redis's "write before sleep").
 *
 * A shared line (an event, encoded once into a struct msgbuf block where the
 * pass's events lie side by side) is queued by reference, and the next line
 * of the same block joins the same piece: fanning a pass's events out to N
 * subscribers copies nothing per subscriber, and each gets one run of bytes
 * that the kernel copies from the one block. Output a socket does not take
 * by the end of the pass is copied into the connection's own buffer
 * (out_privatize()), so a slow reader holds no block. Replies, encoded per
 * connection, are copied into that buffer (conn->out) at once, and
 * consecutive ones share a piece.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "msgbuf.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "ws.h"

/* Stop reading requests while this much output waits; resume below LOW. */
#define OUT_HIGH (1024 * 1024)
#define OUT_LOW (64 * 1024)
/*
 * Emptied output buffers are kept for the next pass by a subscriber (up to
 * these sizes), so that fan-out does not reallocate them every pass; other
 * connections give theirs back, so idle connections cost little.
 */
#define OUT_KEEP (256 * 1024)
#define SEGS_KEEP 1024
/* Pieces handed to the kernel per writev(). */
#define IOV_BATCH 64

/*
 * Pieces of output (struct out_seg) in conn->out lie in order and touch:
 * each starts where the one before ended (the first may start later, past
 * bytes sent), and the last ends at conn->out_len. The ring of pieces is
 * conn->seg1 until a second piece is queued.
 */
/* How much to read from a socket per readiness event. */
#define READ_MAX 16384

/*
 * Where reads land when a connection has no partial line: complete lines are
 * handled in place, and only what is left of a line is copied to conn->in, so
 * neither a request nor an idle connection costs an input allocation.
 */
static char read_buf[READ_MAX];
/* How long a closing connection may take to take its last output. */
#define FLUSH_TIMEOUT_SEC 5

TAILQ_HEAD(conn_list, conn);

static struct event_base *base;
static struct conn_list live = TAILQ_HEAD_INITIALIZER(live);
static struct conn_list draining = TAILQ_HEAD_INITIALIZER(draining);
static struct conn_list closing = TAILQ_HEAD_INITIALIZER(closing);
static struct conn_list pending = TAILQ_HEAD_INITIALIZER(pending); /* output to flush */
static struct conn_list fenced = TAILQ_HEAD_INITIALIZER(fenced);   /* output held */
/* WebSocket connections not closing: the keepalive's, so that it walks no other. */
static struct conn_list websockets = TAILQ_HEAD_INITIALIZER(websockets);
static bool fence_up; /* output queued now is held */
static struct event *reaper;
static struct event *ws_pinger;     /* WebSocket keepalive, every --ws-ping */
static struct timerq *flush_timers; /* how long a closing connection may take to flush */
static size_t nlive;
static uint64_t next_id = 1;
static bool draining_input; /* hand up what was read, whatever the backpressure */

static const char *const state_names[] = {"open", "closing"};

static void conn_process(struct conn *c);
static void conn_write(struct conn *c);
/* Cold: kept out of the queueing path that every delivery takes. */
static void conn_cut_off(struct conn *c) __attribute__((cold));

static void
conn_set_state(struct conn *c, enum conn_state state)
{
	log_debug("conn %llu %s: %s -> %s", (unsigned long long)c->id, c->peer,
		  state_names[c->state], state_names[state]);
	c->state = state;
}

/* The i-th piece of unsent output (0: the next to send). */
static struct out_seg *
seg_at(const struct conn *c, size_t i)
{
	return &c->segs[(c->seg_head + i) & (c->seg_cap - 1)];
}

static const char *
seg_data(const struct conn *c, const struct out_seg *s)
{
	return (s->mb != NULL ? s->mb->data : c->out) + s->off;
}

/* Output not yet taken by the kernel: ours, and (TLS) what the bufferevent holds. */
size_t
conn_unsent(const struct conn *c)
{
	return c->unsent +
	       (c->bev != NULL ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0);
}

/* Bytes the kernel has taken from c, ever. */
static uint64_t
conn_taken(const struct conn *c)
{
	return c->handed -
	       (c->bev != NULL ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0);
}

static bool receipts_told; /* a receipt was told during this conns_flush() */

void
conn_receipt(struct conn *c, struct conn_receipt *r)
{
	r->at = c->handed + c->unsent;
	TAILQ_INSERT_TAIL(&c->receipts, r, entry);
}

/* Tell the receipts the kernel's progress completed. */
static void
conn_receipts_taken(struct conn *c)
{
	struct conn_receipt *r;
	uint64_t taken;

	if (TAILQ_EMPTY(&c->receipts))
		return;
	taken = conn_taken(c);
	while ((r = TAILQ_FIRST(&c->receipts)) != NULL && r->at <= taken) {
		TAILQ_REMOVE(&c->receipts, r, entry);
		receipts_told = true;
		r->fn(r, true);
	}
}

/* Output was dropped: the receipts past byte count past (0: all) will never be. */
static void
conn_receipts_lost(struct conn *c, uint64_t past)
{
	struct conn_receipt *r;

	while ((r = TAILQ_LAST(&c->receipts, conn_receipt_list)) != NULL && r->at > past) {
		TAILQ_REMOVE(&c->receipts, r, entry);
		receipts_told = true;
		r->fn(r, false);
	}
}

/* Start or stop reading requests. */
static void
conn_reading(struct conn *c, bool on)
{
	if (c->bev != NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	} else if (on) {
		event_add(c->rev, NULL);
	} else {
		event_del(c->rev);
	}
}

/*
 * Make *buf (holding len bytes, capacity *cap) hold n more, at least doubling
 * so that a long stream grows in O(length). 0, or -1 when memory runs out.
 */
static int
buf_reserve(char **buf, size_t *cap, size_t len, size_t n)
{
	size_t want = *cap ? *cap : 1024;
	char *p;

	if (n <= *cap - len)
		return 0;
	if (n > SIZE_MAX / 2 - len)
		return -1;
	while (want < len + n)
		want *= 2;
	p = realloc(*buf, want);
	if (p == NULL)
		return -1;
	*buf = p;
	*cap = want;
	return 0;
}

/* Room for one more piece. 0, or -1 when memory runs out. */
static int
seg_grow(struct conn *c)
{
	size_t cap = c->seg_cap * 2 > 8 ? c->seg_cap * 2 : 8;
	struct out_seg *segs;

	if (cap > SIZE_MAX / 2 / sizeof *segs || (segs = malloc(cap * sizeof *segs)) == NULL)
		return -1;
	for (size_t i = 0; i < c->nsegs; i++)
		segs[i] = *seg_at(c, i);
	if (c->segs != &c->seg1)
		free(c->segs);
	c->segs = segs;
	c->seg_cap = cap;
	c->seg_head = 0;
	return 0;
}

static inline int
seg_reserve(struct conn *c)
{
	return c->nsegs < c->seg_cap ? 0 : seg_grow(c);
}

/* Move the unsent bytes of conn->out to its front, dropping those sent. */
static void
out_compact(struct conn *c)
{
	size_t lo = c->out_len;

	for (size_t i = 0; i < c->nsegs; i++) {
		if (seg_at(c, i)->mb == NULL) {
			lo = seg_at(c, i)->off;
			break;
		}
	}
	if (lo == 0)
		return;
	memmove(c->out, c->out + lo, c->out_len - lo);
	c->out_len -= lo;
	for (size_t i = 0; i < c->nsegs; i++)
		if (seg_at(c, i)->mb == NULL)
			seg_at(c, i)->off -= lo;
}

/* Make room to copy n more bytes of output in. 0, or -1 when memory runs out. */
static int
out_reserve(struct conn *c, size_t n)
{
	if (seg_reserve(c) != 0)
		return -1;
	if (n <= c->out_cap - c->out_len)
		return 0;
	out_compact(c);
	return buf_reserve(&c->out, &c->out_cap, c->out_len, n);
}

/* Queue the n bytes written at conn->out + out_len (room made by out_reserve()). */
static void
out_add_copied(struct conn *c, size_t n)
{
	struct out_seg *t = c->nsegs > 0 ? seg_at(c, c->nsegs - 1) : NULL;

	if (n == 0)
		return;
	if (t != NULL && t->mb == NULL) {
		t->len += n; /* the last piece is the end of conn->out: extend it */
	} else {
		t = seg_at(c, c->nsegs++);
		t->mb = NULL;
		t->off = c->out_len;
		t->len = n;
	}
	c->out_len += n;
	c->unsent += n;
}

/* Forget the first piece, sent (or dropped). */
static void
seg_shift(struct conn *c)
{
	struct out_seg *s = seg_at(c, 0);

	if (s->mb != NULL)
		msgbuf_unref(s->mb);
	c->seg_head = (c->seg_head + 1) & (c->seg_cap - 1);
	if (--c->nsegs == 0)
		c->out_len = 0;
}

/* The kernel (or the TLS bufferevent) took the first n unsent bytes. */
static void
out_taken(struct conn *c, size_t n)
{
	c->unsent -= n;
	c->handed += n;
	while (n > 0) {
		struct out_seg *s = seg_at(c, 0);

		if (n < s->len) {
			s->off += n;
			s->len -= n;
			return;
		}
		n -= s->len;
		seg_shift(c);
	}
}

/* Keep the first keep unsent bytes; drop the rest, from the end. */
static void
out_truncate(struct conn *c, size_t keep)
{
	while (c->unsent > keep) {
		struct out_seg *t = seg_at(c, c->nsegs - 1);
		size_t drop = c->unsent - keep;

		if (drop < t->len) {
			t->len -= drop;
			if (t->mb == NULL)
				c->out_len -= drop;
			c->unsent = keep;
			return;
		}
		c->unsent -= t->len;
		if (t->mb != NULL)
			msgbuf_unref(t->mb);
		else
			c->out_len = t->off;
		c->nsegs--;
	}
	if (c->nsegs == 0)
		c->out_len = 0;
}

/*
 * Copy the shared lines still queued into conn->out, letting go of their
 * blocks: the socket did not take them, and a slow reader must not hold
 * blocks (their other lines) for longer than a pass. Only what was queued
 * since the last copy is copied. 0, or -1 when memory runs out.
 */
static int
out_privatize(struct conn *c)
{
	size_t k = 0, tail = 0, end = 0;
	char *tmp, *o;

	while (k < c->nsegs && seg_at(c, k)->mb == NULL)
		k++;
	if (k == c->nsegs)
		return 0;
	/* The pieces from k on, copied out in order; those before k stay where they are. */
	for (size_t i = k; i < c->nsegs; i++)
		tail += seg_at(c, i)->len;
	if ((tmp = malloc(tail)) == NULL)
		return -1;
	o = tmp;
	for (size_t i = k; i < c->nsegs; i++) {
		const struct out_seg *s = seg_at(c, i);

		memcpy(o, seg_data(c, s), s->len);
		o += s->len;
	}
	if (k > 0) /* pieces 0 .. k-1 are in conn->out, and end where k-1 ends */
		end = seg_at(c, k - 1)->off + seg_at(c, k - 1)->len;
	out_truncate(c, c->unsent - tail);
	c->out_len = end;
	if (out_reserve(c, tail) != 0) {
		free(tmp);
		return -1;
	}
	memcpy(c->out + c->out_len, tmp, tail);
	out_add_copied(c, tail);
	free(tmp);
	return 0;
}

/* Schedule the connection for the end-of-pass flush. */
static void
conn_mark_pending(struct conn *c)
{
	if (!c->pending) {
		c->pending = true;
		TAILQ_INSERT_TAIL(&pending, c, pending_entry);
	}
}

static void
conn_unmark_pending(struct conn *c)
{
	if (c->pending) {
		c->pending = false;
		TAILQ_REMOVE(&pending, c, pending_entry);
	}
}

/* Free a connection that is no longer referenced by any callback stack. */
static void
conn_free(struct conn *c)
{
	conn_receipts_taken(c);
	conn_receipts_lost(c, 0);
	c->ops->on_close(c->arg);
	conn_unmark_pending(c);
	if (c->fenced)
		TAILQ_REMOVE(&fenced, c, fence_entry);
	timerq_cancel(flush_timers, &c->flush_by);
	ws_free(c->ws);
	if (c->bev != NULL) {
		bufferevent_free(c->bev); /* closes the socket */
	} else {
		event_free(c->rev);
		event_free(c->wev);
		evutil_closesocket(c->fd);
	}
	free(c->in);
	out_truncate(c, 0); /* gives the shared lines back */
	if (c->segs != &c->seg1)
		free(c->segs);
	free(c->out);
	free(c);
}

static void
conns_on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c;

	(void)fd;
	(void)what;
	(void)arg;
	while ((c = TAILQ_FIRST(&closing)) != NULL) {
		TAILQ_REMOVE(&closing, c, all);
		conn_free(c);
	}
}

/* Leave the live list: no more input, nothing new queued. Logs why. */
static void
conn_begin_close(struct conn *c, const char *reason)
{
	conn_set_state(c, CONN_CLOSING);
	TAILQ_REMOVE(&live, c, all);
	nlive--;
	if (c->ws != NULL)
		TAILQ_REMOVE(&websockets, c, ws_entry);
	log_info("conn %llu %s%s%s closed: %s", (unsigned long long)c->id, c->peer,
		 c->who != NULL ? " " : "", c->who != NULL ? c->who : "", reason);
	conn_reading(c, false);
}

/* Hand the connection to the reaper, which frees it after this callback. */
static void
conn_reap(struct conn *c)
{
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	} else {
		event_del(c->rev);
		event_del(c->wev);
	}
	conn_unmark_pending(c);
	TAILQ_INSERT_TAIL(&closing, c, all);
	event_active(reaper, EV_TIMEOUT, 0);
}

void
conn_close(struct conn *c, const char *reason)
{
	if (c->flushing) {
		/* Closing already; stop waiting for the output to drain. */
		c->flushing = false;
		TAILQ_REMOVE(&draining, c, all);
		conn_reap(c);
		return;
	}
	if (c->state == CONN_CLOSING)
		return;
	conn_begin_close(c, reason);
	conn_reap(c);
}

/* Whether a WebSocket's close frame is still to be sent. */
static bool
conn_ws_owes_close(const struct conn *c)
{
	return c->ws != NULL && ws_open(c->ws) && !ws_closing(c->ws);
}

/*
 * Close once the output is sent (and, for a WebSocket, a close frame with
 * code), or timeout_ms from now, whichever comes first.
 */
static void
conn_close_flush_code(struct conn *c, const char *reason, int64_t timeout_ms, uint16_t code)
{
	if (c->state == CONN_CLOSING)
		return;
	c->ws_code = code;
	conn_begin_close(c, reason);
	if (conn_unsent(c) == 0 && !conn_ws_owes_close(c)) {
		conn_reap(c);
		return;
	}
	c->flushing = true;
	TAILQ_INSERT_TAIL(&draining, c, all);
	/* Fixed from now, however the client reads. */
	if (timerq_set(flush_timers, &c->flush_by, now_ms() + timeout_ms) != 0) {
		conn_close(c, "out of memory");
		return;
	}
	conn_mark_pending(c);
}

void
conn_close_flush_within(struct conn *c, const char *reason, int64_t timeout_ms)
{
	conn_close_flush_code(c, reason, timeout_ms, WS_NORMAL);
}

void
conn_close_flush(struct conn *c, const char *reason)
{
	conn_close_flush_code(c, reason, FLUSH_TIMEOUT_SEC * 1000, WS_POLICY);
}

/*
 * A client stopped reading: keep the rest of the line it is partway through
 * (up to the first newline), drop everything after, let the layer above
 * append one last line, and close once that much is sent or the flush
 * timeout passes. Nothing new is queued for it meanwhile, so its memory is
 * bounded.
 */
static void
conn_cut_off(struct conn *c)
{
	size_t keep = 0;

	stats.slow_consumers++;
	log_warn("conn %llu %s%s%s: slow consumer cut off with %zu bytes unsent (max-pending %zu)",
		 (unsigned long long)c->id, c->peer, c->who != NULL ? " " : "",
		 c->who != NULL ? c->who : "", c->unsent, config.max_pending);
	for (size_t i = 0; i < c->nsegs; i++) {
		const struct out_seg *s = seg_at(c, i);
		const char *p = seg_data(c, s), *nl = memchr(p, '\n', s->len);

		if (nl != NULL) {
			keep += (size_t)(nl - p) + 1;
			break;
		}
		keep += s->len;
	}
	out_truncate(c, keep);
	/* Of the output behind the fence, nothing is kept: it may yet be taken back. */
	if (c->fenced && c->unsent > c->fence_at)
		out_truncate(c, c->fence_at);
	conn_receipts_lost(c, c->handed + c->unsent);
	c->cut_off = true;
	c->ops->on_cut_off(c->arg, config.max_pending);
	/* The last line is not the fence's: dropping the fence keeps it whole. */
	if (c->fenced)
		c->fence_at = c->unsent;
	conn_close_flush(c, "slow consumer");
}

/* Output was added: flush it at the end of this pass, unless it is too much. */
static void
conn_queued(struct conn *c)
{
	conn_mark_pending(c);
	if (!c->cut_off && (c->unsent > config.max_pending ||
			    (c->bev != NULL && conn_unsent(c) > config.max_pending)))
		conn_cut_off(c);
}

/* Output is about to be added: while the fence is up, from here on it is held. */
static void
conn_hold(struct conn *c)
{
	if (!c->fenced && fence_up) {
		c->fenced = true;
		c->fence_at = c->unsent;
		TAILQ_INSERT_TAIL(&fenced, c, fence_entry);
	}
}

void
conn_send(struct conn *c, const void *data, size_t n)
{
	if (!conn_live(c))
		return;
	if (out_reserve(c, n) != 0) {
		log_error("conn %llu: out of memory queueing %zu bytes", (unsigned long long)c->id,
			  n);
		conn_close(c, "out of memory");
		return;
	}
	conn_hold(c);
	memcpy(c->out + c->out_len, data, n);
	out_add_copied(c, n);
	conn_queued(c);
}

void
conns_fence_raise(void)
{
	fence_up = true;
}

void
conns_fence_release(void)
{
	struct conn *c;

	fence_up = false;
	while ((c = TAILQ_FIRST(&fenced)) != NULL) {
		TAILQ_REMOVE(&fenced, c, fence_entry);
		c->fenced = false;
	}
}

void
conns_fence_drop(void)
{
	struct conn *c;

	fence_up = false;
	while ((c = TAILQ_FIRST(&fenced)) != NULL) {
		TAILQ_REMOVE(&fenced, c, fence_entry);
		c->fenced = false;
		out_truncate(c, c->fence_at);
		conn_receipts_lost(c, c->handed + c->unsent);
		c->ops->on_fence_dropped(c->arg);
	}
}

void
conn_send_shared(struct conn *c, struct msgbuf *mb, const char *line, size_t len)
{
	struct out_seg *t = c->nsegs > 0 ? seg_at(c, c->nsegs - 1) : NULL;
	size_t off = (size_t)(line - mb->data);

	if (!conn_live(c) || len == 0)
		return;
	conn_hold(c);
	if (t != NULL && t->mb == mb && t->off + t->len == off) {
		t->len += len; /* the next line of the block: the same run */
	} else {
		if (seg_reserve(c) != 0) {
			log_error("conn %llu: out of memory queueing %zu bytes",
				  (unsigned long long)c->id, len);
			conn_close(c, "out of memory");
			return;
		}
		t = seg_at(c, c->nsegs++);
		t->mb = msgbuf_ref(mb);
		t->off = off;
		t->len = len;
	}
	c->unsent += len;
	conn_queued(c);
}

void
conn_send_msgbuf(struct conn *c, struct msgbuf *mb)
{
	conn_send_shared(c, mb, mb->data, mb->len);
}

void
conn_send_parts(struct conn *c, const char *a, size_t alen, const char *b, size_t blen,
		const char *z, size_t zlen)
{
	char *o;

	if (!conn_live(c))
		return;
	if (out_reserve(c, alen + blen + zlen) != 0) {
		conn_close(c, "out of memory");
		return;
	}
	conn_hold(c);
	o = c->out + c->out_len;
	memcpy(o, a, alen);
	memcpy(o + alen, b, blen);
	memcpy(o + alen + blen, z, zlen);
	out_add_copied(c, alen + blen + zlen);
	conn_queued(c);
}

void
conn_set_max_line(struct conn *c, const size_t *max)
{
	c->max_line = max;
}

void
conn_set_who(struct conn *c, const char *who)
{
	c->who = who;
}

char *
conn_reserve(struct conn *c, size_t n)
{
	if (!conn_live(c))
		return NULL;
	if (out_reserve(c, n) != 0) {
		log_error("conn %llu: out of memory queueing %zu bytes", (unsigned long long)c->id,
			  n);
		conn_close(c, "out of memory");
		return NULL;
	}
	return c->out + c->out_len;
}

void
conn_queue_reserved(struct conn *c, size_t n)
{
	conn_hold(c);
	out_add_copied(c, n);
	conn_queued(c);
}

void
conn_hold_input(struct conn *c, bool hold)
{
	bool was = c->input_held;

	c->input_held = hold;
	if (hold == was || !conn_live(c))
		return;
	if (hold) {
		conn_reading(c, false);
	} else if (!c->paused) {
		conn_reading(c, true);
		conn_process(c);
	}
}

void
conn_keep_output(struct conn *c, bool keep)
{
	c->keep_out = keep;
}

/*
 * Hand the complete lines in buf[0 .. len) up until none is left, the
 * connection closes or its output backs up. Returns the bytes used; a line
 * over max_line is reported and skipped up to its newline.
 */
static size_t
conn_consume(struct conn *c, char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len && conn_live(c) && !c->paused && !c->input_held) {
		char *line = buf + pos;
		size_t used, n = 0;
		enum rv_frame r;

		c->framer.max = *c->max_line;
		r = rv_frame_scan(&c->framer, line, len - pos, &used, &n);
		pos += used;
		if (r == RV_FRAME_NONE) {
			if (used == 0)
				break; /* the rest of a line is to come */
			continue;
		}
		if (r == RV_FRAME_TOO_LONG)
			c->ops->on_line_too_long(c->arg, c->framer.max);
		else
			c->ops->on_line(c->arg, line, n);
		if (conn_live(c) && !draining_input && conn_unsent(c) > OUT_HIGH) {
			/* Backpressure: read no more requests until the client reads. */
			c->paused = true;
			conn_reading(c, false);
		}
	}
	return pos;
}

/* Make room for n bytes of input after what conn->in holds. */
static int
in_reserve(struct conn *c, size_t n)
{
	return buf_reserve(&c->in, &c->in_cap, c->in_len, n);
}

/* Keep buf[used .. have) in conn->in for later (buf is read_buf or conn->in). */
static int
in_keep(struct conn *c, char *buf, size_t used, size_t have)
{
	size_t rest = have - used;

	if (rest == 0) {
		free(c->in);
		c->in = NULL;
		c->in_len = c->in_cap = 0;
		return 0;
	}
	if (buf == c->in) {
		memmove(c->in, c->in + used, rest);
		c->in_len = rest;
		return 0;
	}
	c->in_len = 0;
	if (in_reserve(c, rest) != 0)
		return -1;
	memcpy(c->in, buf + used, rest);
	c->in_len = rest;
	return 0;
}

/* Handle the lines waiting in conn->in (after a pause ends). */
static void
conn_process(struct conn *c)
{
	size_t used;

	if (c->in_len == 0)
		return;
	used = conn_consume(c, c->in, c->in_len);
	if (in_keep(c, c->in, used, c->in_len) != 0)
		conn_close(c, "out of memory");
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	char *buf = read_buf;
	size_t have, used;
	ssize_t n;

	(void)what;
	/* One read() per readiness event: no FIONREAD round trip as evbuffer_read() makes. */
	if (c->in_len > 0) {
		if (in_reserve(c, READ_MAX) != 0) {
			conn_close(c, "out of memory");
			return;
		}
		buf = c->in;
	}
	n = read(fd, buf + c->in_len, READ_MAX);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c, strerror(errno));
		return;
	}
	if (n == 0) {
		/* Half-close: what was read has been answered; flush it, then close. */
		conn_close_flush(c, "client closed the connection");
		return;
	}
	have = c->in_len + (size_t)n;
	used = conn_consume(c, buf, have);
	if (in_keep(c, buf, used, have) != 0)
		conn_close(c, "out of memory");
}

void
conn_received(struct conn *c, const char *data, size_t len)
{
	while (len > 0 && conn_live(c)) {
		size_t n = len < READ_MAX ? len : READ_MAX, have, used;
		char *buf = read_buf;

		if (c->in_len > 0) {
			if (in_reserve(c, n) != 0) {
				conn_close(c, "out of memory");
				return;
			}
			buf = c->in;
		}
		memcpy(buf + c->in_len, data, n);
		have = c->in_len + n;
		used = conn_consume(c, buf, have);
		if (in_keep(c, buf, used, have) != 0) {
			conn_close(c, "out of memory");
			return;
		}
		data += n;
		len -= n;
	}
}

/* Give back emptied output buffers unless a subscriber will refill them soon. */
static void
conn_out_emptied(struct conn *c)
{
	if (!c->keep_out || c->out_cap > OUT_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	if ((!c->keep_out || c->seg_cap > SEGS_KEEP) && c->segs != &c->seg1) {
		free(c->segs);
		c->segs = &c->seg1;
		c->seg_cap = 1;
	}
	c->seg_head = 0;
}

/* TLS or WebSocket output drained (or moved on): finish a flush, or resume reading. */
static void
conn_tls_drained(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t left = evbuffer_get_length(out);

	conn_receipts_taken(c);
	if (c->flushing && c->unsent == 0 && conn_ws_owes_close(c)) {
		/* The last line is out: the close frame follows it. */
		if (ws_close(c->ws, c->ws_code, out) != 0)
			conn_close(c, "out of memory");
		return; /* drained again once that is sent */
	}
	if (c->flushing && left == 0 && c->unsent == 0) {
		conn_close(c, "flushed");
		return;
	}
	if (c->paused && conn_live(c) && left <= OUT_LOW) {
		c->paused = false;
		conn_reading(c, !c->input_held);
		conn_process(c);
	}
}

/*
 * TLS and WebSocket: hand the pass's output to the bufferevent, which sends
 * it (encrypted for TLS); a WebSocket's lines go as text frames, once its
 * handshake is done (a closing one that never completed it sends none).
 */
static void
conn_write_tls(struct conn *c)
{
	if (c->ws != NULL && !ws_open(c->ws)) {
		if (c->flushing && c->unsent > 0)
			out_truncate(c, 0);
		else if (c->unsent > 0)
			return; /* sent once the handshake is done */
	}
	if (c->unsent > 0) {
		while (c->nsegs > 0) {
			const struct out_seg *s = seg_at(c, 0);

			if (c->ws != NULL
				    ? ws_lines(c->ws, seg_data(c, s), s->len,
					       bufferevent_get_output(c->bev)) != 0
				    : bufferevent_write(c->bev, seg_data(c, s), s->len) != 0) {
				out_truncate(c, 0);
				conn_close(c, "out of memory");
				return;
			}
			out_taken(c, s->len);
		}
		conn_out_emptied(c);
	}
	conn_tls_drained(c);
}

/* A WebSocket's message, as a line (ws.h): handled as if read. */
static void
conn_ws_line(void *arg, const char *line, size_t len)
{
	conn_received(arg, line, len);
}

/* Bytes of a WebSocket: the handshake, then frames, whose messages come up as lines. */
static void
conn_ws_received(struct conn *c, const char *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	bool was_open = ws_open(c->ws);
	const char *why = NULL;
	enum ws_result r = ws_input(c->ws, data, len, *c->max_line, out, &why);

	if (r == WS_CLOSE_NOW) {
		conn_close(c, why);
		return;
	}
	if (r == WS_CLOSE_AFTER_FLUSH) {
		if (!ws_open(c->ws))
			log_info("conn %llu %s: WebSocket handshake refused: %s",
				 (unsigned long long)c->id, c->peer, why);
		conn_close_flush_code(c, why, FLUSH_TIMEOUT_SEC * 1000, WS_POLICY);
		return;
	}
	if (!was_open && ws_open(c->ws) && c->unsent > 0)
		conn_mark_pending(c); /* lines queued meanwhile may go now */
}

static void
conn_tls_on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v;

	while (conn_live(c) && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
		size_t n = v.iov_len;
		if (c->ws != NULL)
			conn_ws_received(c, v.iov_base, n);
		else
			conn_received(c, v.iov_base, n);
		evbuffer_drain(in, n);
	}
}

static void
conn_tls_on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_tls_drained(arg);
}

static void
conn_tls_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		log_debug("conn %llu %s: TLS handshake done", (unsigned long long)c->id, c->peer);
		return;
	}
	e = bufferevent_get_openssl_error(bev);
	if (e != 0) {
		char reason[200]; /* logged at once by conn_close(), not kept */
		ERR_error_string_n(e, reason, sizeof reason);
		conn_close(c, reason);
		return;
	}
	conn_close(c, what & BEV_EVENT_EOF ? "client closed the connection" : "connection error");
}

/* Send what the socket takes now; arm the write event for the rest. */
static void
conn_write(struct conn *c)
{
	if (fence_up) {
		/* Nothing leaves before the fence falls: the end of the pass writes it. */
		conn_mark_pending(c);
		return;
	}
	if (c->bev != NULL) {
		conn_write_tls(c);
		return;
	}
	while (c->unsent > 0) {
		struct iovec iov[IOV_BATCH];
		struct msghdr mh = {.msg_iov = iov};
		size_t want = 0;
		ssize_t n;

		for (; mh.msg_iovlen < IOV_BATCH && mh.msg_iovlen < c->nsegs; mh.msg_iovlen++) {
			const struct out_seg *s = seg_at(c, mh.msg_iovlen);

			iov[mh.msg_iovlen].iov_base = (void *)seg_data(c, s);
			iov[mh.msg_iovlen].iov_len = s->len;
			want += s->len;
		}
		if (mh.msg_iovlen == 1) /* the common case, without sendmsg()'s extra work */
			n = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
		else
			n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			out_truncate(c, 0);
			conn_close(c, strerror(errno));
			return;
		}
		out_taken(c, (size_t)n);
		if ((size_t)n < want)
			break; /* the socket is full */
	}
	conn_receipts_taken(c);
	if (c->unsent == 0) {
		conn_out_emptied(c);
		if (c->flushing) {
			conn_close(c, "flushed");
			return;
		}
		event_del(c->wev);
	} else {
		if (out_privatize(c) != 0) {
			out_truncate(c, 0);
			conn_close(c, "out of memory");
			return;
		}
		if (!event_pending(c->wev, EV_WRITE, NULL))
			event_add(c->wev, NULL);
	}
	if (c->paused && conn_live(c) && c->unsent <= OUT_LOW) {
		c->paused = false;
		conn_reading(c, !c->input_held);
		conn_process(c);
	}
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_write(c);
}

bool
conns_flush(void)
{
	struct conn_list now = TAILQ_HEAD_INITIALIZER(now);
	struct conn *c;

	/*
	 * Write the connections pending now; a resumed one may queue more
	 * (and write to the store), which the caller commits first.
	 */
	receipts_told = false;
	TAILQ_CONCAT(&now, &pending, pending_entry);
	while ((c = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, c, pending_entry);
		c->pending = false;
		conn_write(c);
	}
	return !TAILQ_EMPTY(&pending) || receipts_told;
}

struct conn *
conn_create(evutil_socket_t fd, const struct sockaddr *sa, enum conn_kind kind,
	    const struct conn_ops *ops, void *arg)
{
	bool tls = kind == CONN_TLS || kind == CONN_WSS;
	struct conn *c = calloc(1, sizeof *c);
	int one = 1;

	if (c == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	c->fd = fd;
	c->segs = &c->seg1;
	c->seg_cap = 1;
	TAILQ_INIT(&c->receipts);
	c->ops = ops;
	c->arg = arg;
	c->max_line = &config.max_line;
	c->since = now_ms();
	sockaddr_format(sa, c->peer, sizeof c->peer);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	evutil_make_socket_nonblocking(fd);
	c->tls = tls;
	c->ws_code = WS_POLICY;
	if (kind == CONN_WS || kind == CONN_WSS) {
		c->ws = ws_create(conn_ws_line, c);
		if (c->ws == NULL) {
			evutil_closesocket(fd);
			free(c);
			return NULL;
		}
	}
	if (kind != CONN_TCP) {
		/* tls_accept() owns fd, even on failure; a bufferevent once it is made. */
		c->bev = tls ? tls_accept(base, fd)
			     : bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL && !tls)
			evutil_closesocket(fd);
		if (c->bev == NULL || bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0) {
			log_warn("conn %s: cannot set up %s: %s", c->peer,
				 tls ? "TLS" : "WebSocket", tls ? tls_error() : "out of memory");
			if (c->bev != NULL)
				bufferevent_free(c->bev);
			ws_free(c->ws);
			free(c);
			return NULL;
		}
		bufferevent_setcb(c->bev, conn_tls_on_read, conn_tls_on_write, conn_tls_on_event,
				  c);
	} else {
		c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
		c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
		if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) != 0) {
			if (c->rev != NULL)
				event_free(c->rev);
			if (c->wev != NULL)
				event_free(c->wev);
			evutil_closesocket(fd);
			free(c);
			return NULL;
		}
	}
	c->id = next_id++;
	TAILQ_INSERT_TAIL(&live, c, all);
	nlive++;
	if (c->ws != NULL)
		TAILQ_INSERT_TAIL(&websockets, c, ws_entry);
	log_debug("conn %llu %s: accepted%s%s", (unsigned long long)c->id, c->peer,
		  tls ? " (TLS)" : "", c->ws != NULL ? " (WebSocket)" : "");
	return c;
}

size_t
conns_count(void)
{
	return nlive;
}

/* A closing connection did not take its last output in time. */
static void
conn_on_flush_timeout(struct timer_entry *e, int64_t now, void *arg)
{
	struct conn *c = container_of(e, struct conn, flush_by);

	(void)now;
	(void)arg;
	if (!c->flushing)
		return;
	log_warn("conn %llu %s: closed with %zu bytes unsent: the client did not read them in time",
		 (unsigned long long)c->id, c->peer, conn_unsent(c));
	conn_close(c, "timed out flushing output");
}

/* Ping every open WebSocket; close those silent since the previous ping. */
static void
conns_on_ws_ping(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c, *next;

	(void)fd;
	(void)what;
	(void)arg;
	for (c = TAILQ_FIRST(&websockets); c != NULL; c = next) {
		next = TAILQ_NEXT(c, ws_entry);
		if (ws_open(c->ws) && !ws_ping(c->ws, bufferevent_get_output(c->bev)))
			conn_close(c, "WebSocket peer silent since the last ping");
	}
}

int
conns_init(struct event_base *b)
{
	struct timeval every = {(time_t)(config.ws_ping_ms / 1000),
				(suseconds_t)(config.ws_ping_ms % 1000 * 1000)};

	base = b;
	reaper = event_new(base, -1, 0, conns_on_reap, NULL);
	flush_timers = timerq_create(base, conn_on_flush_timeout, NULL);
	if (reaper == NULL || flush_timers == NULL)
		return -1;
	if (config.ws_ping_ms > 0) {
		ws_pinger = event_new(base, -1, EV_PERSIST, conns_on_ws_ping, NULL);
		if (ws_pinger == NULL || event_add(ws_pinger, &every) != 0)
			return -1;
	}
	return 0;
}

void
conns_drain_input(void)
{
	struct conn *c, *next;

	draining_input = true;
	for (c = TAILQ_FIRST(&live); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all);
		if (c->paused) {
			c->paused = false;
			conn_process(c);
		}
	}
}

bool
conns_gone(void)
{
	return TAILQ_EMPTY(&live) && TAILQ_EMPTY(&draining);
}

void
conns_finish(void)
{
	struct conn *c;

	/* Offer each client what it has not been sent yet, without blocking. */
	conns_flush();
	while ((c = TAILQ_FIRST(&draining)) != NULL)
		conn_close(c, "daemon shutting down");
	while ((c = TAILQ_FIRST(&live)) != NULL)
		conn_close(c, "daemon shutting down");
	conns_on_reap(-1, 0, NULL);
	if (reaper != NULL)
		event_free(reaper);
	reaper = NULL;
	if (ws_pinger != NULL)
		event_free(ws_pinger);
	ws_pinger = NULL;
	timerq_destroy(flush_timers);
	flush_timers = NULL;
	draining_input = false;
}

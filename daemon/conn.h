/*
 * The transport: a connection's bytes. Reading and line framing, output
 * buffering and backpressure, a bound on unsent output, TLS, and one
 * teardown path. It knows no protocol: whatever is above (client.c) gives
 * it a struct conn_ops when creating it and is handed each line through
 * it, as tmux's proc_add_peer() hands each message to its dispatch
 * callback.
 *
 * Output is a per-connection queue of pieces, written by conns_flush() once
 * per pass of the event loop: a shared line (an event sent to every
 * subscriber) is queued by reference, never copied per receiver that takes
 * it at once; replies are copied into a per-connection buffer. A fence, driven from
 * above (group commit), holds the output queued while it is raised: it
 * is released (written) or dropped (taken back) as a whole.
 *
 * Loop thread only. The transport owns every struct conn: it frees one
 * after on_close, once the callback stack that closed it has returned.
 * Fields are the transport's; above it they are read-only.
 */
#ifndef RV_CONN_H
#define RV_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "rendezvous.h"
#include "timerq.h"

struct bufferevent;
struct event;
struct event_base;
struct msgbuf;
struct ws;

/*
 * One piece of unsent output: shared lines (a run of one block's bytes), or
 * bytes in conn->out. The transport's.
 */
struct out_seg {
	struct msgbuf *mb; /* one reference, or NULL: the bytes are in conn->out */
	size_t off;        /* where the unsent bytes start, in mb->data or conn->out */
	size_t len;        /* unsent bytes, never 0 */
};

/* What the layer above is told. arg is what it gave conn_create(). */
struct conn_ops {
	/*
	 * A complete line, without its "\n" (or "\r\n"); borrowed for the
	 * call. The callee may queue output and close the connection.
	 */
	void (*on_line)(void *arg, const char *line, size_t len);
	/* A line longer than max bytes began: it is skipped up to its newline. */
	void (*on_line_too_long)(void *arg, size_t max);
	/*
	 * The peer fell behind: unsent output passed max bytes. Everything
	 * after the line being sent was dropped; the callee may queue one last
	 * line, then the connection closes once that is sent.
	 */
	void (*on_cut_off)(void *arg, size_t max);
	/* The output queued while the fence was raised was taken back. */
	void (*on_fence_dropped)(void *arg);
	/* The connection is about to be freed: the last call for it. */
	void (*on_close)(void *arg);
};

/*
 * A write receipt: fn is told once the output queued before the receipt was
 * taken by the kernel (written: true), or that it never will be (false): the
 * connection closed first, or that output was dropped (a slow consumer's
 * cut-off, a dropped fence). The caller owns it; it must live until fn,
 * which is called exactly once, from the transport, never inside
 * conn_receipt(), and may queue output and write to the store.
 */
struct conn_receipt {
	void (*fn)(struct conn_receipt *r, bool written);
	uint64_t at; /* the transport's: the byte count that completes it */
	TAILQ_ENTRY(conn_receipt) entry;
};

/* What a connection speaks under the lines: set when it is accepted. */
enum conn_kind {
	CONN_TCP = 0, /* lines on the socket */
	CONN_TLS,     /* lines inside TLS */
	CONN_WS,      /* WebSocket (ws.h): one text frame per line */
	CONN_WSS,     /* WebSocket inside TLS */
};

enum conn_state {
	CONN_OPEN = 0, /* reading and writing */
	CONN_CLOSING,  /* being torn down; no more input, no new output */
};

struct conn {
	uint64_t id;
	enum conn_state state;
	evutil_socket_t fd;
	struct event *rev, *wev; /* read always; write only while the socket is full */
	struct bufferevent *bev; /* TLS and WebSocket connections: a bufferevent, no rev/wev */
	struct ws *ws;           /* WebSocket connections: the framing (ws.h), else NULL */
	bool tls;
	uint16_t ws_code; /* WebSocket: the close code its close frame will carry */
	char peer[64];    /* "ADDR:PORT" */
	const char *who;  /* for logs, set from above ("user alice"); borrowed, or NULL */
	int64_t since;    /* when accepted (Unix ms) */

	const struct conn_ops *ops;
	void *arg;

	char *in; /* input not handled yet: a partial line (or more, while paused); NULL if none */
	size_t in_len, in_cap;
	const size_t *max_line;  /* longest line handed up (a setting: reloads apply) */
	struct rv_framer framer; /* lib's line framer: its state between reads */
	struct out_seg *segs;    /* unsent output, in order: a ring of seg_cap (a power of 2) */
	size_t seg_head, nsegs, seg_cap;
	struct out_seg seg1; /* the ring while one piece is enough (most replies) */
	size_t unsent;       /* bytes in segs */
	char *out;           /* bytes copied in for segs: out[0 .. out_len) */
	size_t out_len, out_cap;
	bool keep_out;   /* keep emptied output buffers (they will be refilled soon) */
	bool pending;    /* queued for conns_flush() */
	bool paused;     /* reading stopped until output drains */
	bool input_held; /* reading stopped from above (conn_hold_input()) */
	bool flushing;   /* CLOSING, but waiting for output to drain (until 'flush_by') */
	bool cut_off;    /* past the output bound: one last line, then close */
	struct timer_entry flush_by;

	bool fenced;     /* given output while the fence was raised */
	size_t fence_at; /* unsent bytes before that output */

	uint64_t handed; /* bytes handed on: to send() (TCP), to the TLS bufferevent */
	TAILQ_HEAD(conn_receipt_list, conn_receipt) receipts; /* waiting, in the order queued */

	TAILQ_ENTRY(conn) all;           /* the live, draining or closing list */
	TAILQ_ENTRY(conn) pending_entry; /* connections with output to flush */
	TAILQ_ENTRY(conn) fence_entry;   /* connections given output behind the fence */
	TAILQ_ENTRY(conn) ws_entry;      /* open WebSocket connections (keepalive) */
};

int conns_init(struct event_base *base);
/* Close and free every connection (shutdown), offering each its unsent output. */
void conns_finish(void);
/*
 * Write the output every connection gathered during this pass of the event
 * loop. main.c calls it after each pass (after commit_pass()), before the
 * loop waits again. Nothing is written while the fence is raised. Returns
 * whether more output is waiting (a connection that resumed reading
 * handled lines), or a receipt was told (and may have written to the
 * store): commit and call it again.
 */
bool conns_flush(void);
/* Open connections (closing ones excluded). */
size_t conns_count(void);
/* Whether no connection is left, not even one still sending its last output. */
bool conns_gone(void);

/*
 * Take over an accepted socket of the given kind: TCP, a TLS server whose
 * handshake starts now, or a WebSocket server (in TLS with CONN_WSS) whose
 * opening handshake is read first. Lines go to ops (borrowed, must outlive
 * the connection) with arg. NULL on failure: the socket is closed, and ops
 * is never called.
 */
struct conn *conn_create(evutil_socket_t fd, const struct sockaddr *sa, enum conn_kind kind,
			 const struct conn_ops *ops, void *arg);

/*
 * Handle bytes received other than by the connection's own read() (a TLS
 * layer, the fuzzer), exactly as if read: framed, handed up, kept if partial.
 */
void conn_received(struct conn *c, const char *data, size_t len);
/* The longest line handed up from now on: *max (borrowed, read at each line). */
void conn_set_max_line(struct conn *c, const size_t *max);
/* Name the connection in its log lines ("user alice"); who is borrowed and must outlive it. */
void conn_set_who(struct conn *c, const char *who);
/*
 * Stop handing lines up (and reading) until released; released, the lines
 * read meanwhile are handed up at once. For a request answered later: the
 * next one waits for it. Release it outside the connection's own on_line.
 */
void conn_hold_input(struct conn *c, bool hold);
/* Keep the output buffer when emptied: more will come soon (a subscriber). */
void conn_keep_output(struct conn *c, bool keep);

/* Queue one line (or several), "\n" included. Ignored once closing. */
void conn_send(struct conn *c, const void *data, size_t n);
/*
 * Room for n more bytes at the end of the output, to write in place and
 * then queue with conn_queue_reserved(); NULL when closing or out of memory (the
 * connection is then closed).
 */
char *conn_reserve(struct conn *c, size_t n);
/* Queue the n bytes written at conn_reserve()'s pointer. */
void conn_queue_reserved(struct conn *c, size_t n);
/* Queue a shared line: the whole of mb (a block of one line). */
void conn_send_msgbuf(struct conn *c, struct msgbuf *mb);
/*
 * Queue the len bytes at line, which lie in mb, by reference: lines of one
 * block queued one after another in a pass leave as one run of bytes. The
 * transport holds mb no longer than the pass: output the socket does not
 * take at the end of the pass is copied.
 */
void conn_send_shared(struct conn *c, struct msgbuf *mb, const char *line, size_t len);
/* Queue one line given in three parts (the last ends with "\n"). */
void conn_send_parts(struct conn *c, const char *a, size_t alen, const char *b, size_t blen,
		     const char *z, size_t zlen);
/* Bytes queued to c and not yet taken by the kernel. */
size_t conn_unsent(const struct conn *c);
/*
 * Tell r->fn when what is queued to c now has been taken by the kernel, or
 * that it never will be (see struct conn_receipt).
 */
void conn_receipt(struct conn *c, struct conn_receipt *r);

/*
 * The fence. Raised, every connection's output queued from then on is held
 * (not written); released, it may go; dropped, it is taken back and each
 * connection that had some is told (on_fence_dropped), after the fence
 * fell. What a connection was sent before the fence rose is never touched.
 */
void conns_fence_raise(void);
void conns_fence_release(void);
void conns_fence_drop(void);

/*
 * Shutdown: hand up every line already read, also those of a connection
 * paused by backpressure, and from now on whatever the backpressure.
 */
void conns_drain_input(void);

/*
 * The one teardown path. Stops input at once; the connection is freed after
 * the current callback returns, never inside it. conn_close() drops unsent
 * output; conn_close_flush() first sends it, for at most 5 s from the call
 * however slowly the client reads (conn_close_flush_within(): timeout_ms).
 * A WebSocket is then sent a close frame after its output: code 1000 from
 * conn_close_flush_within() (the daemon drains), 1008 from
 * conn_close_flush() and a slow consumer's cut-off (policy).
 */
void conn_close(struct conn *c, const char *reason);
void conn_close_flush(struct conn *c, const char *reason);
void conn_close_flush_within(struct conn *c, const char *reason, int64_t timeout_ms);

/* Whether the connection can be sent to (not closing). */
static inline bool
conn_live(const struct conn *c)
{
	return c->state != CONN_CLOSING;
}

#endif

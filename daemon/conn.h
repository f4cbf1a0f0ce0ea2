/*
 * A client connection: bytes in, lines out to rpc, encoded lines back, with
 * backpressure and a bound on unsent output. Loop thread only.
 */
#ifndef RV_CONN_H
#define RV_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/util.h>
#include <jansson.h>

#include "rendezvous.h"
#include "timerq.h"

struct addr;
struct bufferevent;
struct event;
struct identity;
struct event_base;
struct evbuffer;
struct msgbuf;
struct sub;
struct user;

enum conn_state {
	CONN_HANDSHAKE = 0, /* connected, no hello yet */
	CONN_READY,         /* hello done: conn->user is set */
	CONN_CLOSING,       /* being torn down; no more input, no new output */
};

struct conn {
	uint64_t id;
	enum conn_state state;
	evutil_socket_t fd;
	struct event *rev, *wev; /* read always; write only while the socket is full */
	struct bufferevent *bev; /* TLS connections: an OpenSSL bufferevent, no rev/wev */
	char peer[64];           /* "ADDR:PORT" */
	char *in; /* input not handled yet: a partial line (or more, while paused); NULL if none */
	size_t in_len, in_cap;
	bool discarding; /* inside a line longer than max-line */
	char *out;       /* unsent output: out[out_off .. out_len) */
	size_t out_off, out_len, out_cap;
	bool pending;  /* queued for conns_flush() */
	bool paused;   /* reading stopped until output drains */
	bool flushing; /* CLOSING, but waiting for output to drain (until 'deadline') */

	struct addr *addr;           /* the remote address's accounting */
	struct timer_entry deadline; /* hello's, the credential's expiry, then the flush's */
	const char *close_after;     /* close once the current request is answered */
	double rate_tokens;          /* requests allowed now (--max-request-rate) */
	int64_t rate_at;             /* when rate_tokens was brought up to date (ms) */

	struct user *user;              /* after hello; a reference */
	bool observer;                  /* reads everything, changes nothing */
	bool admin;                     /* also lists and terminates every session */
	bool cred_observer, cred_admin; /* the roles its credential grants (for reloads) */
	char *client;                   /* hello's client string, or NULL */

	struct sub *subs; /* this connection's subscriptions (hub.c) */
	size_t nsubs;
	uint32_t next_sub_id;
	uint64_t mark; /* last event delivered (hub.c dedupe) */

	int64_t since;     /* when accepted (Unix ms) */
	uint64_t requests; /* requests handled (batch elements each) */

	/* Output since the store's transaction opened is held until it commits. */
	bool txn_touched; /* on the list of connections given output in it */
	size_t txn_mark;  /* unsent bytes before that output */
	json_t *unacked;  /* ids of write requests answered in it, or NULL */

	TAILQ_ENTRY(conn) all;           /* the live, draining or closing list */
	TAILQ_ENTRY(conn) by_user;       /* user->conns */
	TAILQ_ENTRY(conn) pending_entry; /* connections with output to flush */
	TAILQ_ENTRY(conn) txn_entry;     /* connections given output in the transaction */
};

int conns_init(struct event_base *base);
/* Close and free every connection (shutdown), flushing what it can. */
void conns_finish(void);
/*
 * Write the output every connection gathered during this pass of the event
 * loop. main.c calls it after each pass (after commit_pass()), before the
 * loop waits again. Output is never written while the store has a
 * transaction open. Returns whether more output is waiting (a connection
 * that resumed reading handled requests): commit and call it again.
 */
bool conns_flush(void);

/*
 * The id (borrowed) of a write request answered in the store's open
 * transaction: if the commit fails, the answer becomes a 5003 error.
 */
void conn_note_reply(struct conn *c, json_t *id);
/*
 * The store's transaction ended. Committed: the held output may go.
 * Rolled back: drop the output given since it opened, and answer each
 * noted request with 5003.
 */
void conns_txn_end(bool committed);
size_t conns_count(void);
/* The live connection after c in id order (NULL: the first), or NULL. */
struct conn *conns_next(const struct conn *c);
/* Bytes queued to c and not yet sent. */
size_t conn_unsent(const struct conn *c);
/* Work out every authenticated connection's roles again (the lists were reloaded). */
void conns_reauthorize(void);
/*
 * Shutdown: answer every request already read (also those a connection
 * paused by backpressure had not handled yet), commit, then send every
 * connection a server.shutdown notification and close it once its output
 * is sent (each within the flush timeout).
 */
void conns_shutdown(const char *reason);
/* Whether no connection is left, not even one still sending its last output. */
bool conns_gone(void);

/*
 * Take over an accepted socket and the reference to its address (from
 * addr_connect()). NULL on failure: the socket is closed, addr released.
 */
struct conn *conn_create(evutil_socket_t fd, const struct sockaddr *sa, struct addr *addr);
/* The same, for a socket accepted by a TLS listener: the handshake starts now. */
struct conn *conn_create_tls(evutil_socket_t fd, const struct sockaddr *sa, struct addr *addr);

/*
 * Handle bytes received other than by the connection's own read() (a TLS
 * layer, the fuzzer), exactly as if read: framed, handled, kept if partial.
 */
void conn_received(struct conn *c, const char *data, size_t len);

/* Queue msg (borrowed) as one line. Ignored once closing. */
void conn_send_json(struct conn *c, const json_t *msg);
/* Queue a shared encoded line. */
void conn_send_msgbuf(struct conn *c, struct msgbuf *mb);
/* Queue one line given in three parts (the last ends with "\n"). */
void conn_send_parts(struct conn *c, const char *a, size_t alen, const char *b, size_t blen,
		     const char *z, size_t zlen);
/* Queue an error with id null (not tied to a request). */
void conn_send_error(struct conn *c, int code, const char *message, json_t *data /* stolen */);

/* Tie the connection to user (reference stolen) after a successful hello. */
void conn_authenticate(struct conn *c, struct user *u, const struct identity *id);
/* Close the connection when its credential expires (Unix ms); 0: never. */
void conn_set_expiry(struct conn *c, int64_t expires_ms);
/* Close (flushing) once the request being handled has been answered. */
void conn_close_after_reply(struct conn *c, const char *reason);

/*
 * The one teardown path. Stops input at once; the connection is freed after
 * the current callback returns, never inside it. conn_close() drops unsent
 * output; conn_close_flush() first sends it, for at most 5 s from the call
 * however slowly the client reads.
 */
void conn_close(struct conn *c, const char *reason);
void conn_close_flush(struct conn *c, const char *reason);

/* Whether the connection can be sent to (not closing). */
static inline bool
conn_live(const struct conn *c)
{
	return c->state != CONN_CLOSING;
}

#endif

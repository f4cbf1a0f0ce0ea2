/*
 * A client: the protocol state of one connection. Its user, roles and
 * credential (with their expiry), hello's client string, the hello
 * deadline, the request rate bucket, its subscriptions (as the hub sees
 * them), and the write requests answered in the store's open transaction.
 * The listener creates clients; a client owns its transport (conn.h),
 * registers itself as its conn_ops, and is freed with it. Lines go to the
 * handler given to clients_init() (rpc.c), which may hold its own state
 * only through the functions here.
 *
 * The client layer is also group commit's output participant (commit.h):
 * it raises the transport's fence when a transaction opens, releases it
 * when it commits, and drops it when it fails, answering each write
 * request noted with client_note_reply() with 5003.
 *
 * Loop thread only. Every struct client is owned by this layer; pointers
 * handed out are borrowed and valid until the client's connection closes
 * (client_live() turns false) and the current callback returns.
 */
#ifndef RV_CLIENT_H
#define RV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/util.h>
#include <jansson.h>

#include "authz.h"
#include "conn.h"
#include "hub.h"
#include "timerq.h"

struct addr;
struct event_base;
struct identity;
struct rpc_req;
struct user;

enum client_state {
	CLIENT_HANDSHAKE = 0, /* connected, no hello yet */
	CLIENT_READY,         /* hello done: who.user is set */
};

struct client {
	struct conn *conn; /* its transport, owned through it */
	enum client_state state;
	struct addr *addr;              /* the remote address's accounting (a reference) */
	struct principal who;           /* user (a reference, after hello) and roles */
	bool cred_observer, cred_admin; /* the roles its credential grants (for reloads) */
	char *client;                   /* hello's client string, or NULL */
	char *label;                    /* "user NAME", for the transport's logs, or NULL */
	struct timer_entry deadline;    /* hello's, then the credential's expiry */
	const char *close_after;        /* close once the current request is answered */
	double rate_tokens;             /* requests allowed now (--max-request-rate) */
	int64_t rate_at;                /* when rate_tokens was brought up to date (ms) */
	uint64_t requests;              /* requests handled (batch elements each) */
	struct hub_peer peer;           /* subscriptions and delivery (hub.h) */
	json_t *unacked;      /* ids of write requests answered in the open transaction, or NULL */
	struct rpc_req *held; /* rpc.c's: a request answered later; its input waits */
	bool device_chosen;   /* hello named the device (it gets outcomes) */
	bool outcomes_due;    /* send its outcomes after the hello reply */
	bool outcomes_known;  /* a shared store knows its device (rpc_outcomes.c) */
	char *outcomes_lines; /* the session.outcome lines read from it for that, or NULL */
	size_t outcomes_len, outcomes_n;

	TAILQ_ENTRY(client) all;           /* every client, in id order */
	TAILQ_ENTRY(client) unacked_entry; /* clients with unacked != NULL */
};

/* What clients_init() is given: handle one line a client sent (without "\n"). */
typedef void (*client_line_fn)(struct client *c, const char *line, size_t len);
/* And: a client is about to be freed (the handler's state of it must go). */
typedef void (*client_gone_fn)(struct client *c);

/* Set up the client layer; lines go to on_line, and on_gone hears of each client freed. */
int clients_init(struct event_base *base, client_line_fn on_line, client_gone_fn on_gone);
/* Free what clients_init() made (after conns_finish() closed every client). */
void clients_finish(void);

/*
 * Take over an accepted socket of a kind (TCP, TLS, WebSocket: conn.h) and
 * the reference to its address (from addr_connect()). NULL on failure: the
 * socket is closed, addr released.
 */
struct client *client_create(evutil_socket_t fd, const struct sockaddr *sa, struct addr *addr,
			     enum conn_kind kind);

/* The live client after c in id order (NULL: the first), or NULL. */
struct client *clients_next(const struct client *c);
/* Work out every authenticated client's roles again (the lists were reloaded). */
void clients_reauthorize(void);
/*
 * Shutdown: answer every request already read (also those a connection
 * paused by backpressure had not handled yet), commit, then send every
 * client a server.shutdown notification and close it once its output is
 * sent (each within the flush timeout).
 */
void clients_shutdown(const char *reason);
/*
 * The events of a shared store up to some point are gone (shared.h): every
 * client with a subscription gets one 4100 error line (id null, data
 * {last_event}) and is closed once it is sent.
 */
void clients_history_lost(uint64_t last_event);

/* Tie the client to user u and its device (references stolen) after a successful hello. */
void client_authenticate(struct client *c, struct user *u, struct device *device,
			 const struct identity *id);
/* Close the client when its credential expires (Unix ms); 0: never. */
void client_set_expiry(struct client *c, int64_t expires_ms);
/* Close (flushing) once the request being handled has been answered. */
void client_close_after_reply(struct client *c, const char *reason);
/*
 * The id (borrowed) of a write request answered in the store's open
 * transaction: if the commit fails, the answer becomes a 5003 error.
 */
void client_note_reply(struct client *c, json_t *id);

/* Queue msg (borrowed) as one line. Ignored once closing. */
void client_send_json(struct client *c, const json_t *msg);
/* Queue an error with id null (not tied to a request); data is stolen. Counted. */
void client_send_error(struct client *c, int code, const char *message, json_t *data);

/* Whether the client can be sent to (its connection is not closing). */
static inline bool
client_live(const struct client *c)
{
	return conn_live(c->conn);
}

#endif

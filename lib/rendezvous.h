/*
 * librendezvous: the public API of rendezvous.
 *
 * Three parts: the session state machine (pure, no I/O), the JSON-RPC 2.0
 * line codec shared by the daemon and clients, and an asynchronous client
 * that runs on a caller-supplied libevent event_base.
 *
 * Reference rules follow jansson's: a parameter documented as "stolen" is
 * owned by the callee after the call (even on failure); "borrowed" values
 * stay owned by their giver and are valid only for the duration of a call
 * or callback.
 */
#ifndef RENDEZVOUS_H
#define RENDEZVOUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RV_VERSION, "MAJOR.MINOR.PATCH": meson.build's project version, said once. */
#include "rendezvous_version.h"
/* The port rendezvousd listens on by default, on 127.0.0.1. */
#define RV_DEFAULT_PORT 7420
#define RV_DEFAULT_PORT_STR "7420"

/* RENDEZVOUS_SESSION_STATE, values as in the Windows Remote Assistance API. */
enum rv_state {
	RSS_UNKNOWN = 0,
	RSS_READY = 1,
	RSS_INVITATION = 2,
	RSS_ACCEPTED = 3,
	RSS_CONNECTED = 4,
	RSS_CANCELLED = 5,
	RSS_DECLINED = 6,
	RSS_TERMINATED = 7,
};
#define RV_STATE_COUNT 8

/* RENDEZVOUS_SESSION_FLAGS, from the point of view of one party. */
#define RSF_NONE 0x0
#define RSF_INVITER 0x1
#define RSF_INVITEE 0x2
#define RSF_ORIGINAL_INVITER 0x4

/* Who performs an action on a session. */
enum rv_role {
	RV_ROLE_NONE = 0, /* not a party */
	RV_ROLE_INVITER = 1,
	RV_ROLE_INVITEE = 2,
	RV_ROLE_DAEMON = 3, /* the daemon itself: expiry, peer loss, an admin's terminate */
};
#define RV_ROLE_COUNT 4

enum rv_action {
	RV_ACT_INVITE = 0,
	RV_ACT_ACCEPT,
	RV_ACT_DECLINE,
	RV_ACT_CANCEL,
	RV_ACT_CONNECT,
	RV_ACT_TERMINATE,
	RV_ACT_EXPIRE,    /* daemon: ttl passed before RSS_CONNECTED */
	RV_ACT_PEER_LOST, /* daemon: an engaged party stayed away too long */
};
#define RV_ACTION_COUNT 8

/* What rv_machine_apply did. */
enum rv_outcome {
	RV_CHANGED = 0, /* the state changed */
	RV_RECORDED,    /* recorded (a first connect), state unchanged */
	RV_REPEATED,    /* this role already did this action: nothing changed */
	RV_FORBIDDEN,   /* this role may never take this action */
	RV_INVALID,     /* not allowed in the current state: nothing changed */
};

/*
 * One session's state machine. Plain data: copy it, store it, compare it.
 * done[role] is a bitmask of (1 << action) the role has performed, which is
 * what makes a retried request recognisable.
 */
struct rv_machine {
	enum rv_state state;
	uint16_t done[RV_ROLE_COUNT];
};

/* Start a machine in RSS_READY, as session creation does. */
void rv_machine_init(struct rv_machine *m);

/*
 * Apply action a taken by role r. On RV_CHANGED, *prev (if not NULL) gets
 * the state before. The machine is unchanged unless the outcome is
 * RV_CHANGED or RV_RECORDED.
 */
enum rv_outcome rv_machine_apply(struct rv_machine *m, enum rv_action a, enum rv_role r,
				 enum rv_state *prev);

/* Whether role r has confirmed its link (session.connect) in this machine. */
bool rv_machine_confirmed(const struct rv_machine *m, enum rv_role r);

/* Whether the state is one of CANCELLED, DECLINED, TERMINATED. */
bool rv_state_is_final(enum rv_state s);

/* "RSS_READY", ... or NULL for an out-of-range value. */
const char *rv_state_name(enum rv_state s);

/* Parse a state name; returns 0 and sets *s, or -1. */
int rv_state_from_name(const char *name, enum rv_state *s);

/* "invite", "accept", ... or NULL. */
const char *rv_action_name(enum rv_action a);

/* Error codes on the wire (proto/PROTOCOL.md). Never renumbered. */
enum rv_error {
	RV_ERR_PARSE = -32700,
	RV_ERR_INVALID_REQUEST = -32600,
	RV_ERR_METHOD_NOT_FOUND = -32601,
	RV_ERR_INVALID_PARAMS = -32602,
	RV_ERR_INTERNAL = -32603,
	RV_ERR_UNAUTHENTICATED = 4001,
	RV_ERR_FORBIDDEN = 4003,
	RV_ERR_NO_SESSION = 4004,
	RV_ERR_INVALID_TRANSITION = 4009,
	RV_ERR_PEER_UNAVAILABLE = 4010,
	RV_ERR_CROSSING = 4091, /* a crossing invitation (glare): the earlier one won */
	RV_ERR_TOO_LARGE = 4013,
	RV_ERR_KEY_REUSED = 4022, /* an idempotency key used again with other params */
	RV_ERR_LIMIT = 4029,
	RV_ERR_HISTORY_GONE = 4100,
	RV_ERR_UNAVAILABLE = 5003, /* the store cannot save changes now: nothing was applied */
};

/* The standard message for an error code, or "unknown error". */
const char *rv_error_message(int code);

/* ---- Wire codec: one JSON-RPC 2.0 message per line ---- */

enum rv_msg_kind {
	RV_MSG_INVALID = 0,
	RV_MSG_REQUEST,      /* method and id */
	RV_MSG_NOTIFICATION, /* method, no id */
	RV_MSG_RESPONSE,     /* result or error, and id */
};

/* A classified message. Every pointer is borrowed from the json_t given. */
struct rv_msg {
	enum rv_msg_kind kind;
	const char *method;
	json_t *params; /* object, array or NULL */
	json_t *id;     /* NULL for a notification */
	json_t *result;
	json_t *error;
	const char *why; /* RV_MSG_INVALID: what is wrong */
};

/* Classify one decoded message (not a batch) per JSON-RPC 2.0. */
enum rv_msg_kind rv_msg_classify(json_t *msg, struct rv_msg *out);

/*
 * Decode one line (without its end of line) as json_loadb(line, len,
 * JSON_DECODE_ANY, err) would: the same tree, the same errors in err (may be
 * NULL), about 5x faster for ordinary messages. New reference or NULL.
 */
json_t *rv_msg_decode(const char *line, size_t len, json_error_t *err);

/*
 * Encode a message as one compact line ending in "\n". Returns a buffer to
 * free() with its length in *len, or NULL on allocation failure.
 */
char *rv_msg_encode(const json_t *msg, size_t *len);
/*
 * The same, into buf: writes the line (its "\n" included) if it fits in
 * size bytes. Returns the line's length, which is more than size when it
 * did not fit (nothing useful was written: try again with that much), or 0
 * if msg cannot be encoded. The one encoder of the daemon and the library.
 */
size_t rv_msg_encode_into(const json_t *msg, char *buf, size_t size);

/* Builders; each returns a new reference, or NULL on allocation failure. */
json_t *rv_msg_request(const char *method, json_t *params /* stolen */, json_int_t id);
json_t *rv_msg_notification(const char *method, json_t *params /* stolen */);
json_t *rv_msg_result(json_t *id /* borrowed */, json_t *result /* stolen */);
json_t *rv_msg_error(json_t *id /* borrowed */, int code, const char *message,
		     json_t *data /* stolen */);

/*
 * Line framer over a libevent evbuffer: finds '\n'-terminated lines (a
 * trailing '\r' is dropped) no longer than max bytes. A longer line is
 * reported once as RV_FRAME_TOO_LONG and then discarded up to its newline.
 */
struct evbuffer;
struct rv_framer {
	size_t max;      /* longest line accepted, without its "\n" */
	size_t scanned;  /* bytes already searched for "\n" (after a line: its length) */
	bool discarding; /* inside a line that was too long */
};
enum rv_frame {
	RV_FRAME_NONE = 0, /* no complete line yet */
	RV_FRAME_LINE,     /* a line is ready */
	RV_FRAME_TOO_LONG, /* a line over max started; it is being dropped */
};
void rv_framer_init(struct rv_framer *f, size_t max);

/*
 * Look for the next line in buf. On RV_FRAME_LINE, *line points at len
 * contiguous bytes inside buf, valid until rv_framer_consume() is called,
 * which must be called before the next rv_framer_next().
 */
enum rv_frame rv_framer_next(struct rv_framer *f, struct evbuffer *buf, char **line, size_t *len);
void rv_framer_consume(struct rv_framer *f, struct evbuffer *buf);

/*
 * The framing rule itself, on flat bytes: the one framer of the library
 * (rv_framer_next() runs it over an evbuffer) and of the daemon. Looks at
 * buf[0 .. len), the input not taken yet; f->scanned of it are known to
 * hold no newline. *used is how many bytes to take off the front:
 *   RV_FRAME_LINE: the line is buf[0 .. *n), a trailing '\r' dropped;
 *     *used counts it and its "\n".
 *   RV_FRAME_TOO_LONG: a line over f->max, reported once; *used bytes of it
 *     are dropped now, the rest as it arrives.
 *   RV_FRAME_NONE: *used bytes (of a line being dropped) go; if 0, more
 *     input is needed.
 */
enum rv_frame rv_frame_scan(struct rv_framer *f, const char *buf, size_t len, size_t *used,
			    size_t *n);

/* ---- Asynchronous client ---- */

struct event_base;
struct rv_client;

/* A reply: exactly one of result and error is non-NULL (both borrowed).
 * On a lost connection error is a synthesised -32603 error object (or, when
 * memory ran out building it, JSON null): every call is answered once. */
typedef void (*rv_reply_cb)(struct rv_client *c, json_t *result, json_t *error, void *arg);
/*
 * A notification from the daemon; params is borrowed. An error reply with a
 * null id (a line too long, a refused connection, a slow-consumer cut-off)
 * arrives here too, as method "error" with the error object as params.
 */
typedef void (*rv_notify_cb)(struct rv_client *c, const char *method, json_t *params, void *arg);
/* The connection ended; reason is a human-readable string. */
typedef void (*rv_close_cb)(struct rv_client *c, const char *reason, void *arg);

struct rv_client_callbacks {
	rv_notify_cb on_notify;
	rv_close_cb on_close;
	void *arg;
};

/*
 * Connect to host:port on base. host is a name or a numeric address; a name
 * is resolved with libevent's evdns (/etc/hosts, then the servers of
 * /etc/resolv.conf), never blocking the loop, and each address it resolves
 * to is tried in order (10 s each at most) until one accepts. Calls may be
 * made at once; they are sent, in order, when the connection is up. No
 * callback runs before this returns. NULL (with errno set) on failure.
 */
struct rv_client *rv_client_create(struct event_base *base, const char *host, const char *port,
				   const struct rv_client_callbacks *cbs);

/* TLS for rv_client_create_tls(). Every field may be NULL. */
struct rv_tls_options {
	const char *ca_file;     /* PEM CAs that verify the daemon; NULL: the system's */
	const char *cert_file;   /* a client certificate (PEM), for mutual TLS */
	const char *key_file;    /* its private key (PEM) */
	const char *server_name; /* the name the daemon's certificate must carry; NULL: host */
};

/*
 * The same over TLS 1.2 or later: the daemon's certificate must chain to a
 * trusted CA and name the host (a DNS name or an IP address), or the
 * connection fails (on_close says why). NULL with errno set on failure.
 */
struct rv_client *rv_client_create_tls(struct event_base *base, const char *host, const char *port,
				       const struct rv_tls_options *tls,
				       const struct rv_client_callbacks *cbs);

/*
 * Several daemons sharing one service (a Redis store): connect to the first
 * of addresses ("HOST:PORT,HOST:PORT,...", a HOST without a port taking
 * default_port; "[V6]:PORT") that accepts, each tried in turn (every
 * address its name resolves to). tls: NULL for plain TCP. Once connected,
 * it is one connection like rv_client_create()'s: when it is lost, create
 * another (resuming subscriptions with since, PROTOCOL.md section 5);
 * starting the list after rv_client_address() tries the others first.
 * NULL with errno set (EINVAL: a bad address) on failure.
 */
struct rv_client *rv_client_create_any(struct event_base *base, const char *addresses,
				       const char *default_port, const struct rv_tls_options *tls,
				       const struct rv_client_callbacks *cbs);
/* The host being tried, or connected to (borrowed; for logs, and for rotating the list). */
const char *rv_client_address(const struct rv_client *c);

/* Close the connection and free the client. Pending calls are not called. */
void rv_client_destroy(struct rv_client *c);

/*
 * Whether the connection has ended: true from the moment pending calls are
 * answered with the synthesised error, before on_close, so that a reply
 * callback can tell a lost connection from an error the daemon sent.
 */
bool rv_client_closed(const struct rv_client *c);

/*
 * Send a request. params is stolen (NULL for none). cb may be NULL to send
 * a notification. Returns 0, or -1 if the client is closed or out of memory.
 */
int rv_client_call(struct rv_client *c, const char *method, json_t *params, rv_reply_cb cb,
		   void *arg);

/* Longest line the client accepts from the daemon (default 16 MiB). */
void rv_client_set_max_line(struct rv_client *c, size_t max);

/* Split "HOST:PORT", "[V6]:PORT" or "HOST" into parts (malloc'd). */
int rv_parse_hostport(const char *s, char **host, char **port, const char *default_port);

#ifdef __cplusplus
}
#endif

#endif /* RENDEZVOUS_H */

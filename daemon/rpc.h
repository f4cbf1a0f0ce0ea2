/*
 * JSON-RPC 2.0 on a connection: decode a line, validate, dispatch single
 * requests and batches to the method handlers, and answer, now or later
 * (rpc_defer()).
 *
 * Loop thread only. Handlers get params and the client borrowed; what they
 * return is a new reference the dispatcher takes.
 */
#ifndef RV_RPC_H
#define RV_RPC_H

#include <stddef.h>

#include <jansson.h>

#include "jsonw.h"
#include "util.h"

struct client;

/*
 * What a handler reports besides its result: an error (data is a new
 * reference or NULL), or a result already written as JSON text into raw
 * (see rpc_raw()).
 */
struct rpc_error {
	int code;
	char message[256];
	json_t *data;
	struct jsonw raw;
	struct rpc_req *req;      /* the request being answered (rpc.c's) */
	struct rpc_req *deferred; /* set by rpc_defer() */
};

/* Fill err (data stolen) and return NULL, for "return rpc_fail(...)". */
json_t *rpc_fail(struct rpc_error *err, int code, json_t *data, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* 5003 with retry_after_ms: a shared store did not answer in time; for "return ...". */
json_t *rpc_unavailable(struct rpc_error *err);

/*
 * A method: params is a borrowed object (empty when absent). Returns the
 * result (new reference) or NULL with err filled.
 */
typedef json_t *(*rpc_handler)(struct client *c, json_t *params, struct rpc_error *err);

/*
 * Handle one line a client sent (without its "\n"): the handler given to
 * clients_init().
 */
void rpc_handle_line(struct client *c, const char *line, size_t len);
/* The client is being freed: a request of its held open is answered to nobody. */
void rpc_client_gone(struct client *c);

/*
 * A request may complete later (an asynchronous store's round trip). Its
 * handler calls rpc_defer(err), starts the operation, and returns
 * rpc_later(err); when the operation ends, rpc_complete() answers it with
 * a result (new reference) or NULL and the error in err, exactly as the
 * handler would have. Reply order per connection is kept: its next request
 * (and a batch's next element) is not read until this one is answered. An
 * answer given before the handler returned is sent as a synchronous one.
 * rpc_defer() returns NULL when memory ran out (the handler then fails).
 */
struct rpc_req;
struct rpc_req *rpc_defer(struct rpc_error *err);
json_t *rpc_later(struct rpc_error *err);
/* err (its data and raw text) is taken over; r is freed. */
void rpc_complete(struct rpc_req *r, json_t *result, struct rpc_error *err);
/* The client a deferred request came from, or NULL once it is gone. */
struct client *rpc_req_client(const struct rpc_req *r);

/* A keyed request's idempotency key in a shared store, and its value while the change is made. */
struct rpc_keybuf {
	char name[400];
	char pending[120]; /* "p DIGEST SESSION" */
	size_t name_len, pending_len;
};
/* For a change of session sid: 1 and *kb when r has an idempotency key, else 0. */
int rpc_req_key(const struct rpc_req *r, const uint8_t sid[SESSION_ID_BYTES],
		struct rpc_keybuf *kb);
/*
 * The answer to a retry of r (from c) from what its key holds in a shared
 * store: the first reply again, 4022 when the params differ, or (value
 * "p ...": the change was made but its reply not kept) the session now.
 */
json_t *rpc_kept_answer(struct rpc_req *r, struct client *c, const char *value, size_t len,
			struct rpc_error *err);

/* rpc_conn.c */
/* hello's result; dropped: the outcomes dropped for a device that named itself, or -1. */
json_t *rpc_hello_result(const struct client *c, int64_t dropped);
json_t *rpc_hello(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_ping(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_subscribe(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_unsubscribe(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_presence_get(struct client *c, json_t *params, struct rpc_error *err);

/* rpc_admin.c */
json_t *rpc_admin_stats(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_admin_connections(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_admin_kick(struct client *c, json_t *params, struct rpc_error *err);

/* rpc_session.c */
json_t *rpc_session_create(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_invite(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_accept(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_decline(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_cancel(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_connect(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_terminate(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_send(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_get(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_list(struct client *c, json_t *params, struct rpc_error *err);

/* rpc_outcomes.c */
json_t *rpc_session_ack(struct client *c, json_t *params, struct rpc_error *err);
json_t *rpc_session_outcomes(struct client *c, json_t *params, struct rpc_error *err);
/*
 * The end of a hello that named its device: hello's result with the
 * outcomes dropped, the outcomes themselves queued for after the reply.
 */
json_t *rpc_hello_outcomes(struct client *c, struct rpc_error *err);
/* After a hello's reply: the outcomes its device has not learned. */
void rpc_send_outcomes(struct client *c);

/*
 * For handlers whose result is written with jsonw into err->raw: return
 * rpc_raw(err). The text is sent as the result without a jansson tree.
 */
json_t *rpc_raw(struct rpc_error *err);

/* For handlers: unpack params with json_unpack_ex(fmt); -32602 on mismatch. */
int rpc_unpack(json_t *params, struct rpc_error *err, const char *fmt, ...);

/*
 * The session named sid_hex, if c may read it (authz.c); else NULL with err
 * filled: 4004 (also for an invitee before the invitation) or 4003.
 */
struct session *rpc_session_find(struct client *c, const char *sid_hex, struct rpc_error *err);

/* 0 if data (may be NULL) is within --max-data; else fills err (4029) and returns -1. */
int rpc_check_data(const json_t *data, struct rpc_error *err);

/* The methods, for metrics: how many, and the name of the i-th. */
size_t rpc_method_count(void);
const char *rpc_method_name(size_t i);

#endif

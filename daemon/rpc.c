/* JSON-RPC 2.0: decode, validate, dispatch, batches, error replies. */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "commit.h"
#include "config.h"
#include "hub.h"
#include "idempotency.h"
#include "log.h"
#include "outcomes.h"
#include "rendezvous.h"
#include "rpc.h"
#include "shared.h"
#include "stats.h"
#include "users.h"
#include "store.h"
#include "util.h"

static const struct method {
	const char *name;
	rpc_handler handler;
	bool before_hello; /* allowed before hello */
	bool writes;       /* changes sessions: answered once the change is committed */
	bool keyed;        /* takes an idempotency_key (then it writes, the key at least) */
	/* Reads sessions: with a shared store, first waits until this node holds every change
	   Redis had taken when it arrived (shared_sync()). Changes wait only when they would
	   be refused on this node's copy (rpc_session.c), or carry an idempotency key. */
	bool synced;
} methods[] = {
	{"hello", rpc_hello, true, false, false, false},
	{"ping", rpc_ping, true, false, false, false},
	{"session.create", rpc_session_create, false, true, true, false},
	{"session.invite", rpc_session_invite, false, true, true, false},
	{"session.accept", rpc_session_accept, false, true, true, false},
	{"session.decline", rpc_session_decline, false, true, true, false},
	{"session.cancel", rpc_session_cancel, false, true, true, false},
	{"session.connect", rpc_session_connect, false, true, true, false},
	{"session.terminate", rpc_session_terminate, false, true, true, false},
	{"session.send", rpc_session_send, false, false, true, true},
	{"session.get", rpc_session_get, false, false, false, true},
	{"session.list", rpc_session_list, false, false, false, true},
	{"session.ack", rpc_session_ack, false, true, false, false},
	{"session.outcomes", rpc_session_outcomes, false, false, false, false},
	{"subscribe", rpc_subscribe, false, false, false, true},
	{"unsubscribe", rpc_unsubscribe, false, false, false, false},
	{"presence.get", rpc_presence_get, false, false, false, false},
	{"admin.stats", rpc_admin_stats, false, false, false, false},
	{"admin.connections", rpc_admin_connections, false, false, false, false},
	{"admin.kick", rpc_admin_kick, false, false, false, false},
};

json_t *
rpc_unavailable(struct rpc_error *err)
{
	return rpc_fail(err, RV_ERR_UNAVAILABLE,
			json_pack("{s:I}", "retry_after_ms", (json_int_t)shared_retry_after_ms()),
			"unavailable: the shared store did not answer in time; try again (with the "
			"same idempotency_key: the change may have been applied)");
}

json_t *
rpc_fail(struct rpc_error *err, int code, json_t *data, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	json_decref(err->data);
	err->data = data;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return NULL;
}

int
rpc_check_data(const json_t *data, struct rpc_error *err)
{
	/*
	 * json_dumpb() with no buffer returns the size the encoding needs;
	 * JSON_ENCODE_ANY, or it returns 0 for a string or a number.
	 */
	if (data == NULL ||
	    json_dumpb(data, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) <= config.max_data)
		return 0;
	stats.limit_data++;
	rpc_fail(err, RV_ERR_LIMIT, json_pack("{s:I}", "max_data", (json_int_t)config.max_data),
		 "limit exceeded: data larger than %zu bytes", config.max_data);
	return -1;
}

/* Take one request from the connection's token bucket (--max-request-rate). */
static bool
rpc_rate_ok(struct client *c)
{
	int64_t now;

	if (config.max_request_rate == 0)
		return true;
	now = now_ms();
	if (now > c->rate_at) {
		c->rate_tokens +=
			(double)(now - c->rate_at) * (double)config.max_request_rate / 1000.0;
		if (c->rate_tokens > (double)config.max_request_burst)
			c->rate_tokens = (double)config.max_request_burst;
		c->rate_at = now;
	}
	if (c->rate_tokens < 1.0) {
		stats.limit_request_rate++;
		return false;
	}
	c->rate_tokens -= 1.0;
	return true;
}

int
rpc_unpack(json_t *params, struct rpc_error *err, const char *fmt, ...)
{
	json_error_t jerr;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = json_vunpack_ex(params, &jerr, 0, fmt, ap);
	va_end(ap);
	if (rc != 0)
		rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL, "invalid params: %s", jerr.text);
	return rc;
}

json_t *
rpc_raw(struct rpc_error *err)
{
	if (!jsonw_ok(&err->raw)) {
		jsonw_free(&err->raw);
		return NULL;
	}
	return json_true(); /* a placeholder: rpc_dispatch() sends err->raw */
}

static const struct method *
method_find(const char *name)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		if (strcmp(methods[i].name, name) == 0)
			return &methods[i];
	}
	return NULL;
}

/* Count a request handled, and its time, under its method (if it has one). */
static void
rpc_observe(const struct method *m, double t0)
{
	size_t i = m != NULL ? (size_t)(m - methods) : STATS_METHODS;

	stats.requests++;
	if (i < STATS_METHODS)
		histogram_observe(&stats.request_seconds[i], stats_clock() - t0);
}

size_t
rpc_method_count(void)
{
	return sizeof methods / sizeof methods[0];
}

const char *
rpc_method_name(size_t i)
{
	return methods[i].name;
}

/* The error reply for err, or NULL when memory runs out. */
static json_t *
error_reply(json_t *id, struct rpc_error *err)
{
	json_t *reply = rv_msg_error(id, err->code, err->message, err->data);

	stats_error(err->code);
	err->data = NULL;
	return reply;
}

/*
 * Answer id with -32603 when memory ran out building its reply: written
 * without jansson, so that the client still learns which request failed.
 */
static void
rpc_send_oom(struct client *c, json_t *id)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":"
				   "\"internal error: out of memory\"},\"id\":";
	char tail[160];
	size_t idlen = json_dumpb(id != NULL ? id : json_null(), tail, sizeof tail - 2,
				  JSON_COMPACT | JSON_ENCODE_ANY);

	stats_error(RV_ERR_INTERNAL);
	if (idlen == 0 || idlen > sizeof tail - 2) {
		conn_close(c->conn, "out of memory");
		return;
	}
	memcpy(tail + idlen, "}\n", 2);
	conn_send_parts(c->conn, head, sizeof head - 1, tail, idlen + 2, "", 0);
}

/* Send a raw result as the reply to id, without building a tree. */
static void
rpc_send_raw(struct client *c, json_t *id, struct jsonw *raw)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"result\":";
	char tail[96];
	size_t idlen;
	struct jsonw w;

	/* Most ids are integers: written here, without jansson's snprintf(). */
	if (json_is_integer(id))
		idlen = jsonw_int_text(json_integer_value(id), tail + 6);
	else
		idlen = json_dumpb(id != NULL ? id : json_null(), tail + 6, sizeof tail - 8,
				   JSON_COMPACT | JSON_ENCODE_ANY);

	if (idlen > 0 && idlen <= sizeof tail - 8) {
		/* The common case, a short id: one copy into the connection's buffer. */
		memcpy(tail, ",\"id\":", 6);
		memcpy(tail + 6 + idlen, "}\n", 2);
		conn_send_parts(c->conn, head, sizeof head - 1, raw->buf, raw->len, tail,
				idlen + 8);
		return;
	}
	jsonw_init(&w);
	jsonw_lit(&w, ",\"id\":");
	jsonw_json(&w, id);
	jsonw_lit(&w, "}\n");
	if (jsonw_ok(&w))
		conn_send_parts(c->conn, head, sizeof head - 1, raw->buf, raw->len, w.buf, w.len);
	else
		rpc_send_oom(c, id);
	jsonw_free(&w);
}

/* A batch being run: its elements one after another, each perhaps answered later. */
struct rpc_batch {
	json_t *msg;     /* the batch (a reference) */
	size_t next;     /* the element to run next */
	json_t *replies; /* the replies so far; NULL when memory ran out */
};

/*
 * A request being answered. Most are answered before rpc_dispatch()
 * returns, from this struct on its stack; one whose handler called
 * rpc_defer() moves to the heap and is answered by rpc_complete().
 */
struct rpc_req {
	struct client *c; /* NULL once the client is gone */
	const struct method *m;
	json_t *msg; /* the request (a reference: keeps its id alive) */
	json_t *id;  /* borrowed from msg, or NULL */
	bool notification;
	const char *key;    /* its idempotency_key (borrowed from msg), or NULL */
	uint8_t digest[32]; /* of its params, without the key */
	double t0;
	struct rpc_batch *batch; /* the batch it belongs to, or NULL */
	/* Deferred: set while its handler runs; an answer given meanwhile waits here. */
	bool in_handler, answered;
	json_t *params; /* waiting for shared_sync(): the params its handler gets */
	json_t *result;
	struct rpc_error err;
};

static void rpc_batch_run(struct client *c, struct rpc_batch *b);

/* The SHA-256 digest of a request's params, in hex. */
static void
digest_hex(const uint8_t d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A keyed request's key in a shared store: "rv:k:USER\nMETHOD\nKEY"; 0 if it does not fit. */
static size_t
rpc_key_name(const struct rpc_req *r, const char *user, char *buf, size_t len)
{
	int n = snprintf(buf, len, "rv:k:%s\n%s\n%s", user, r->m->name, r->key);

	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

int
rpc_req_key(const struct rpc_req *r, const uint8_t sid[SESSION_ID_BYTES], struct rpc_keybuf *kb)
{
	char hex[65], sid_hex[SESSION_ID_HEX + 1];
	int n;

	if (r->key == NULL || r->c == NULL)
		return 0;
	kb->name_len = rpc_key_name(r, r->c->who.user->name, kb->name, sizeof kb->name);
	digest_hex(r->digest, hex);
	session_id_format(sid, sid_hex);
	n = snprintf(kb->pending, sizeof kb->pending, "p %s %s", hex, sid_hex);
	kb->pending_len = n > 0 ? (size_t)n : 0;
	return kb->name_len > 0 ? 1 : 0;
}

json_t *
rpc_kept_answer(struct rpc_req *r, struct client *c, const char *value, size_t len,
		struct rpc_error *err)
{
	char hex[65];
	json_t *kept, *result, *error, *params;
	const char *key = r->key;

	digest_hex(r->digest, hex);
	if (len < 67 || (value[0] != 'r' && value[0] != 'p') || value[1] != ' ' || value[66] != ' ')
		return rpc_fail(err, RV_ERR_INTERNAL, NULL,
				"internal error: a kept reply is damaged");
	r->key = NULL; /* a retry: nothing more to keep */
	if (memcmp(value + 2, hex, 64) != 0)
		return rpc_fail(err, RV_ERR_KEY_REUSED, json_pack("{s:s}", "idempotency_key", key),
				"idempotency key reused: %s was called with it and other params",
				r->m->name);
	if (value[0] == 'p') {
		/* Applied, its reply not kept yet (its node stopped): the session as it is now. */
		params = json_pack("{s:s%}", "session", value + 67, len - 67);
		result = params != NULL ? rpc_session_get(c, params, err) : NULL;
		json_decref(params);
		return result;
	}
	kept = json_loadb(value + 67, len - 67, 0, NULL);
	result = json_object_get(kept, "result");
	error = json_object_get(kept, "error");
	if (result != NULL) {
		json_incref(result);
	} else if (error != NULL) {
		json_t *data = json_object_get(error, "data");
		rpc_fail(err, (int)json_integer_value(json_object_get(error, "code")),
			 data != NULL ? json_incref(data) : NULL, "%s",
			 json_string_value(json_object_get(error, "message")) != NULL
				 ? json_string_value(json_object_get(error, "message"))
				 : "");
	} else {
		rpc_fail(err, RV_ERR_INTERNAL, NULL, "internal error: a kept reply is damaged");
	}
	json_decref(kept);
	return result;
}

/*
 * Remember the reply to a keyed request for its retries: a result or an
 * error, unless nothing was applied (out of memory, the store unavailable).
 */
static void
rpc_record_key(const struct rpc_req *r, const json_t *reply)
{
	json_t *result = json_object_get(reply, "result"), *error = json_object_get(reply, "error"),
	       *kept;
	json_int_t code = json_integer_value(json_object_get(error, "code"));

	if (r->c == NULL || (result == NULL && error == NULL) || code == RV_ERR_INTERNAL ||
	    code == RV_ERR_UNAVAILABLE)
		return;
	kept = json_pack("{s:O}", result != NULL ? "result" : "error",
			 result != NULL ? result : error);
	if (kept != NULL && shared_enabled()) {
		/* In Redis, for every node: "r DIGEST REPLY". */
		char name[sizeof((struct rpc_keybuf *)0)->name], hex[65];
		char *text = json_dumps(kept, JSON_COMPACT), *value = NULL;
		size_t len = rpc_key_name(r, r->c->who.user->name, name, sizeof name);
		digest_hex(r->digest, hex);
		if (text != NULL && len > 0 && asprintf(&value, "r %s %s", hex, text) > 0)
			shared_put(name, len, value, strlen(value), config.idempotency_window_ms);
		else
			log_error("rpc: cannot keep the reply to a keyed request: out of memory");
		free(text);
		free(value);
	} else if (kept != NULL) {
		idempotency_record(r->c->who.user->name, r->m->name, r->key, r->digest, kept);
	} else {
		store_fail(); /* not remembered: fail the pass rather than act twice */
	}
	json_decref(kept);
}

/*
 * The reply to r: a result (new reference, may be NULL) or the error in
 * err. In a batch the reply is returned (or NULL for none); otherwise it is
 * sent, and NULL returned. Sync and deferred requests both end here.
 */
static json_t *
rpc_finish(struct rpc_req *r, json_t *result, struct rpc_error *err)
{
	struct client *c = r->c;
	bool in_batch = r->batch != NULL;
	json_t *reply = NULL;

	if (result != NULL) {
		if (r->notification && r->key == NULL) {
			reply = NULL;
		} else if (err->raw.buf == NULL) {
			reply = rv_msg_result(r->id, json_incref(result));
		} else if (!in_batch && r->key == NULL) {
			rpc_send_raw(c, r->id, &err->raw);
			json_decref(result);
			jsonw_free(&err->raw);
			json_decref(err->data);
			rpc_observe(r->m, r->t0);
			return NULL;
		} else {
			json_t *j = json_loadb(err->raw.buf, err->raw.len, 0, NULL);
			reply = j != NULL ? rv_msg_result(r->id, j) : NULL;
		}
		json_decref(result);
		jsonw_free(&err->raw);
		json_decref(err->data);
		err->data = NULL;
	} else {
		jsonw_free(&err->raw);
		if (err->code == 0)
			rpc_fail(err, RV_ERR_INTERNAL, NULL, "internal error: out of memory");
		if (r->notification && r->key == NULL) {
			json_decref(err->data);
			rpc_observe(r->m, r->t0);
			return NULL;
		}
		reply = error_reply(r->id, err);
	}
	if (r->key != NULL)
		rpc_record_key(r, reply);
	if (r->notification) {
		json_decref(reply);
		reply = NULL;
	} else if (!in_batch) {
		if (reply != NULL)
			client_send_json(c, reply);
		else if (!r->notification)
			rpc_send_oom(c, r->id);
		json_decref(reply);
		reply = NULL;
	}
	rpc_observe(r->m, r->t0);
	return reply;
}

struct rpc_req *
rpc_defer(struct rpc_error *err)
{
	struct rpc_req *r = malloc(sizeof *r);

	if (r == NULL)
		return NULL;
	*r = *err->req;
	r->in_handler = true;
	json_incref(r->msg);
	err->deferred = r;
	return r;
}

struct client *
rpc_req_client(const struct rpc_req *r)
{
	return r->c;
}

json_t *
rpc_later(struct rpc_error *err)
{
	return err->deferred != NULL ? json_true() : NULL; /* a placeholder, as rpc_raw()'s */
}

/*
 * A request that waited for shared_sync(): run its handler now (it may
 * defer again: the new request then takes r's place), or answer 5003.
 */
static void
rpc_on_synced(void *arg, enum shared_result res, const char *value, size_t len)
{
	struct rpc_req *r = arg, *d;
	struct rpc_error err = {.req = r};
	json_t *params = r->params, *result = NULL;
	struct client *c = r->c;

	r->params = NULL;
	if (c != NULL && res != SHARED_APPLIED) {
		rpc_fail(&err, RV_ERR_UNAVAILABLE,
			 json_pack("{s:I}", "retry_after_ms", (json_int_t)shared_retry_after_ms()),
			 "unavailable: the shared store did not answer in time; nothing was "
			 "applied");
	} else if (c != NULL && value != NULL) {
		result = rpc_kept_answer(r, c, value, len, &err); /* a retry */
	} else if (c != NULL) {
		result = r->m->handler(c, params, &err);
		if ((d = err.deferred) != NULL) {
			json_decref(result); /* rpc_later()'s placeholder */
			d->in_handler = false;
			json_decref(r->msg);
			free(r);
			r = d;
			if (!d->answered) {
				c->held = d;
				json_decref(params);
				return;
			}
			result = d->result;
			jsonw_free(&err.raw);
			json_decref(err.data);
			err = d->err;
			err.deferred = NULL;
		}
	}
	json_decref(params);
	rpc_complete(r, result, &err);
}

/* Whether a request for m with params writes: m changes sessions, or records a key. */
static bool
method_writes(const struct method *m, const json_t *params)
{
	return m != NULL &&
	       (m->writes || (m->keyed && json_object_get(params, "idempotency_key") != NULL));
}

/* Whether msg is one request (not a batch) that writes. */
static bool
rpc_writes(json_t *msg)
{
	const char *name = json_string_value(json_object_get(msg, "method"));

	return method_writes(name != NULL ? method_find(name) : NULL,
			     json_object_get(msg, "params"));
}

/*
 * A keyed request: take its idempotency_key out of *params (replacing it
 * with a copy without it), and work out the digest of the rest. 0 (r->key
 * set), or -1 with err filled.
 */
static int
rpc_key_take(struct rpc_req *r, json_t **params, struct rpc_error *err)
{
	json_t *k = json_object_get(*params, "idempotency_key"), *rest;
	const char *key = json_string_value(k);

	if (key == NULL || json_string_length(k) < 1 ||
	    json_string_length(k) > IDEMPOTENCY_KEY_MAX || strlen(key) != json_string_length(k)) {
		rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
			 "invalid params: idempotency_key must be a string of 1 to %d bytes",
			 IDEMPOTENCY_KEY_MAX);
		return -1;
	}
	rest = json_copy(*params);
	if (rest == NULL || json_object_del(rest, "idempotency_key") != 0) {
		json_decref(rest);
		return -1; /* -32603 */
	}
	json_decref(*params);
	*params = rest;
	idempotency_digest(rest, r->digest);
	r->key = key;
	return 0;
}

/*
 * A keyed request: take its idempotency_key out of *params (replacing it
 * with a copy without it), and look it up. 0: go ahead (r->key set); 1: a
 * retry, answered from *reply (new reference); -1: err filled.
 */
static int
rpc_key(struct client *c, struct rpc_req *r, json_t **params, struct rpc_error *err, json_t **reply)
{
	json_t *kept = NULL;
	const char *key;

	if (rpc_key_take(r, params, err) != 0)
		return -1;
	key = r->key;
	r->key = NULL;
	switch (idempotency_find(c->who.user->name, r->m->name, key, r->digest, &kept)) {
	case 0: r->key = key; return 0;
	case 1:
		if (kept == NULL)
			return -1; /* -32603 */
		json_object_set_new(kept, "jsonrpc", json_string("2.0"));
		json_object_set(kept, "id", r->id != NULL ? r->id : json_null());
		*reply = kept;
		return 1;
	default:
		rpc_fail(err, RV_ERR_KEY_REUSED, json_pack("{s:s}", "idempotency_key", key),
			 "idempotency key reused: %s was called with it and other params",
			 r->m->name);
		return -1;
	}
}

/*
 * What follows a single request's reply: outcomes after a hello, its
 * events, and its note for commit: a request that wrote anything (other
 * requests were answered from committed state, 8) is answered 5003 if the
 * commit fails.
 */
static void
rpc_single_done(struct client *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");

	rpc_send_outcomes(c);
	hub_flush();
	if (id != NULL && store_in_txn())
		client_note_reply(c, id);
}

/* A batch element was answered: commit it, keep its reply. */
static void
rpc_batch_element_done(struct rpc_batch *b, json_t *elem, json_t *reply)
{
	/* Replays wait for the end of the batch, unless a change needs fanning out. */
	if (hub_unflushed())
		hub_flush();
	if (store_in_txn()) {
		/* A batch's reply is sent whole: commit each write on its own. */
		uint64_t failures = commit_failures();
		commit_pass();
		if (commit_failures() != failures && reply != NULL) {
			json_decref(reply);
			reply = commit_failed_error(json_object_get(elem, "id"));
		}
	}
	if (reply != NULL && b->replies != NULL)
		json_array_append_new(b->replies, reply);
	else
		json_decref(reply);
}

static void
rpc_batch_free(struct rpc_batch *b)
{
	json_decref(b->replies);
	json_decref(b->msg);
	free(b);
}

/*
 * Run one message of a request or batch (b: NULL for a single request).
 * Returns false if its handler deferred the answer (rpc_complete() gives
 * it); otherwise the answer was given: sent, or for b returned in *reply.
 */
static bool
rpc_dispatch(struct client *c, json_t *msg, struct rpc_batch *b, json_t **reply)
{
	struct rpc_req r = {.c = c, .msg = msg, .batch = b, .t0 = stats_clock()};
	struct rpc_error err = {.req = &r};
	struct rv_msg rm;
	json_t *params, *result = NULL;

	c->requests++;
	*reply = NULL;
	if (rv_msg_classify(msg, &rm) == RV_MSG_INVALID || rm.kind == RV_MSG_RESPONSE) {
		rpc_fail(&err, RV_ERR_INVALID_REQUEST, NULL, "invalid request: %s",
			 rm.kind == RV_MSG_RESPONSE ? "the daemon takes requests, not responses"
						    : rm.why);
		r.id = rm.id;
		*reply = rpc_finish(&r, NULL, &err);
		return true;
	}
	r.id = rm.id;
	r.notification = rm.kind == RV_MSG_NOTIFICATION;
	r.m = method_find(rm.method);
	if (!rpc_rate_ok(c)) {
		rpc_fail(&err, RV_ERR_LIMIT,
			 json_pack("{s:I, s:I}", "max_request_rate",
				   (json_int_t)config.max_request_rate, "max_request_burst",
				   (json_int_t)config.max_request_burst),
			 "limit exceeded: more than %zu requests per second",
			 config.max_request_rate);
	} else if (r.m == NULL) {
		rpc_fail(&err, RV_ERR_METHOD_NOT_FOUND, json_pack("{s:s}", "method", rm.method),
			 "method not found: %s", rm.method);
	} else if (!r.m->before_hello && c->state != CLIENT_READY) {
		rpc_fail(&err, RV_ERR_UNAUTHENTICATED, json_pack("{s:s}", "method", rm.method),
			 "not authenticated: send hello first");
	} else if (json_is_array(rm.params)) {
		rpc_fail(&err, RV_ERR_INVALID_PARAMS, NULL,
			 "invalid params: pass params by name, as an object");
	} else if (method_writes(r.m, rm.params) && store_durable() && !commit_writable()) {
		rpc_fail(&err, RV_ERR_UNAVAILABLE, commit_paused_data(), "%s",
			 COMMIT_PAUSED_MESSAGE);
	} else {
		json_t *replayed = NULL;
		int keyed = 0;

		params = rm.params != NULL ? json_incref(rm.params) : json_object();
		if (params != NULL && r.m->keyed &&
		    json_object_get(params, "idempotency_key") != NULL && shared_enabled()) {
			/* The key is in Redis: read it as this node catches up (rpc_on_synced()).
			 */
			struct rpc_req *d = NULL;
			char name[sizeof((struct rpc_keybuf *)0)->name];
			size_t len = 0;

			keyed = rpc_key_take(&r, &params, &err);
			if (keyed == 0 &&
			    (len = rpc_key_name(&r, c->who.user->name, name, sizeof name)) == 0) {
				rpc_fail(&err, RV_ERR_INVALID_PARAMS, NULL,
					 "invalid params: idempotency_key is too long with the "
					 "user's "
					 "name");
				keyed = -1;
			}
			if (keyed == 0 && (d = rpc_defer(&err)) != NULL) {
				d->in_handler = false;
				d->params = params;
				c->held = d;
				conn_hold_input(c->conn, true);
				shared_sync(name, len, rpc_on_synced, d);
				return false;
			}
			if (keyed == 0)
				keyed = -1; /* -32603 */
		} else if (params != NULL && r.m->keyed &&
			   json_object_get(params, "idempotency_key") != NULL) {
			keyed = rpc_key(c, &r, &params, &err, &replayed);
		}
		if (keyed == 1) {
			/* A retry: the first call's reply again, nothing done. */
			json_decref(params);
			rpc_observe(r.m, r.t0);
			if (r.notification) {
				json_decref(replayed);
			} else if (b == NULL) {
				client_send_json(c, replayed);
				json_decref(replayed);
			} else {
				*reply = replayed;
			}
			return true;
		}
		if (params != NULL && keyed == 0 && r.m->synced && shared_enabled()) {
			/* Run once this node caught up with Redis (rpc_on_synced()). */
			struct rpc_req *d = rpc_defer(&err);
			if (d != NULL) {
				d->in_handler = false;
				d->params = params;
				c->held = d;
				conn_hold_input(c->conn, true);
				shared_sync(NULL, 0, rpc_on_synced, d);
				return false;
			}
		}
		result = params != NULL && keyed == 0 ? r.m->handler(c, params, &err) : NULL;
		json_decref(params);
		if (err.deferred != NULL) {
			struct rpc_req *d = err.deferred;

			json_decref(result); /* rpc_later()'s placeholder */
			d->in_handler = false;
			if (!d->answered) {
				/* Answered later: the connection's next request waits for it. */
				c->held = d;
				conn_hold_input(c->conn, true);
				return false;
			}
			/* Answered before its handler returned: as if it had not deferred. */
			result = d->result;
			jsonw_free(&err.raw);
			json_decref(err.data);
			err = d->err;
			json_decref(d->msg);
			free(d);
		}
	}
	*reply = rpc_finish(&r, result, &err);
	return true;
}

void
rpc_complete(struct rpc_req *r, json_t *result, struct rpc_error *err)
{
	struct client *c = r->c;
	struct rpc_batch *b = r->batch;
	json_t *reply;

	if (r->in_handler) {
		/* Its handler has not returned yet: rpc_dispatch() answers it. */
		r->answered = true;
		r->result = result;
		r->err = *err;
		return;
	}
	if (c == NULL) {
		/* The client is gone: nobody to answer. */
		json_decref(result);
		json_decref(err->data);
		jsonw_free(&err->raw);
		if (b != NULL)
			rpc_batch_free(b);
		json_decref(r->msg);
		free(r);
		return;
	}
	c->held = NULL;
	reply = rpc_finish(r, result, err);
	if (b == NULL) {
		rpc_single_done(c, r->msg);
	} else {
		rpc_batch_element_done(b, r->msg, reply);
		rpc_batch_run(c, b); /* the rest of it, or its reply */
	}
	json_decref(r->msg);
	free(r);
	if (c->held == NULL)
		conn_hold_input(c->conn, false); /* the requests that waited */
}

void
rpc_client_gone(struct client *c)
{
	if (c->held != NULL) {
		c->held->c = NULL;
		c->held = NULL;
	}
}

static void
rpc_parse_error(struct client *c, const json_error_t *jerr)
{
	json_t *data = json_pack("{s:i, s:i, s:i, s:s}", "line", jerr->line, "column", jerr->column,
				 "position", jerr->position, "text", jerr->text);

	if (data == NULL) /* the text quoted bytes that are not UTF-8 */
		data = json_pack("{s:i, s:i, s:i}", "line", jerr->line, "column", jerr->column,
				 "position", jerr->position);
	client_send_error(c, RV_ERR_PARSE, "parse error: not valid JSON", data);
}

/* Run a batch's elements from b->next until one is answered later or none is left. */
static void
rpc_batch_run(struct client *c, struct rpc_batch *b)
{
	while (b->next < json_array_size(b->msg) && client_live(c)) {
		json_t *elem = json_array_get(b->msg, b->next++), *reply;

		if (!rpc_dispatch(c, elem, b, &reply))
			return; /* rpc_complete() goes on from here */
		rpc_batch_element_done(b, elem, reply);
	}
	if (b->replies != NULL && json_array_size(b->replies) > 0)
		client_send_json(c, b->replies);
	else if (b->replies == NULL)
		client_send_error(c, RV_ERR_INTERNAL, "internal error: out of memory", NULL);
	rpc_send_outcomes(c);
	hub_flush(); /* the batch's replays, after its reply as for a single subscribe */
	rpc_batch_free(b);
}

void
rpc_handle_line(struct client *c, const char *line, size_t len)
{
	json_error_t jerr;
	struct rpc_batch *b;
	json_t *msg, *reply;

	if (len == 0)
		return; /* blank lines are keep-alives */
	msg = rv_msg_decode(line, len, &jerr);
	if (store_in_txn() && (msg == NULL || !rpc_writes(msg))) {
		/*
		 * Only writes join the pass's transaction: anything else is
		 * answered from committed state, and its answer is never
		 * taken back.
		 */
		commit_pass();
	}
	if (msg == NULL) {
		rpc_parse_error(c, &jerr);
		return;
	}
	if (!json_is_array(msg)) {
		if (rpc_dispatch(c, msg, NULL, &reply))
			rpc_single_done(c, msg);
		json_decref(msg);
		return;
	}
	if (json_array_size(msg) == 0) {
		client_send_error(c, RV_ERR_INVALID_REQUEST, "invalid request: empty batch", NULL);
		json_decref(msg);
		return;
	}
	b = calloc(1, sizeof *b);
	if (b == NULL) {
		client_send_error(c, RV_ERR_INTERNAL, "internal error: out of memory", NULL);
		json_decref(msg);
		return;
	}
	b->msg = msg; /* the reference moves to the batch */
	b->replies = json_array();
	rpc_batch_run(c, b);
}

/* JSON-RPC 2.0 message codec and line framing, shared by daemon and clients. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "jsonparse.h"
#include "rendezvous.h"

enum rv_msg_kind
rv_msg_classify(json_t *msg, struct rv_msg *out)
{
	json_t *version, *method, *id, *params;

	memset(out, 0, sizeof *out);
	out->kind = RV_MSG_INVALID;
	if (!json_is_object(msg)) {
		out->why = "a message must be a JSON object";
		return out->kind;
	}
	id = json_object_get(msg, "id");
	if (id != NULL && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id) &&
	    !json_is_real(id)) {
		out->why = "\"id\" must be a string, a number or null";
		return out->kind;
	}
	out->id = id;
	version = json_object_get(msg, "jsonrpc");
	if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0) {
		out->why = "\"jsonrpc\" must be \"2.0\"";
		return out->kind;
	}
	method = json_object_get(msg, "method");
	if (method == NULL) {
		out->result = json_object_get(msg, "result");
		out->error = json_object_get(msg, "error");
		if (id == NULL || (out->result == NULL) == (out->error == NULL)) {
			out->why = "\"method\" is missing";
			return out->kind;
		}
		out->kind = RV_MSG_RESPONSE;
		return out->kind;
	}
	if (!json_is_string(method)) {
		out->why = "\"method\" must be a string";
		return out->kind;
	}
	params = json_object_get(msg, "params");
	if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
		out->why = "\"params\" must be an object or an array";
		return out->kind;
	}
	out->method = json_string_value(method);
	out->params = params;
	out->kind = id == NULL ? RV_MSG_NOTIFICATION : RV_MSG_REQUEST;
	return out->kind;
}

json_t *
rv_msg_decode(const char *line, size_t len, json_error_t *err)
{
	return jsonparse_loadb(line, len, err);
}

size_t
rv_msg_encode_into(const json_t *msg, char *buf, size_t size)
{
	size_t need = json_dumpb(msg, buf, size > 0 ? size - 1 : 0, JSON_COMPACT | JSON_ENCODE_ANY);

	if (need == 0)
		return 0;
	if (need < size)
		buf[need] = '\n';
	return need + 1;
}

char *
rv_msg_encode(const json_t *msg, size_t *len)
{
	size_t room = 512, need;
	char *buf = NULL;

	/* Encode into a buffer; a second try with the exact size if it did not fit. */
	for (int attempt = 0; attempt < 2; attempt++) {
		char *p = realloc(buf, room + 1);
		if (p == NULL)
			break;
		buf = p;
		need = rv_msg_encode_into(msg, buf, room);
		if (need == 0)
			break;
		if (need <= room) {
			buf[need] = '\0';
			*len = need;
			return buf;
		}
		room = need;
	}
	free(buf);
	return NULL;
}

static json_t *
msg_new(void)
{
	json_t *m = json_object();

	if (m != NULL && json_object_set_new(m, "jsonrpc", json_string("2.0")) != 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/*
 * Give m a member; the value is stolen, also when m is NULL or the call
 * fails (json_object_set_new() releases it then). 0, or -1.
 */
static int
msg_set(json_t *m, const char *key, json_t *value)
{
	if (m == NULL || value == NULL) {
		json_decref(value);
		return -1;
	}
	return json_object_set_new(m, key, value);
}

/* A message with a method and params (stolen, may be NULL); NULL on failure. */
static json_t *
msg_method(const char *method, json_t *params)
{
	json_t *m = msg_new();

	if (msg_set(m, "method", json_string(method)) != 0 ||
	    (params != NULL && msg_set(m, "params", params) != 0)) {
		if (m == NULL || json_object_get(m, "method") == NULL)
			json_decref(params); /* not handed over yet */
		json_decref(m);
		return NULL;
	}
	return m;
}

json_t *
rv_msg_request(const char *method, json_t *params, json_int_t id)
{
	json_t *m = msg_method(method, params);

	if (m != NULL && msg_set(m, "id", json_integer(id)) != 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

json_t *
rv_msg_notification(const char *method, json_t *params)
{
	return msg_method(method, params);
}

json_t *
rv_msg_result(json_t *id, json_t *result)
{
	json_t *m = msg_new();

	if (msg_set(m, "result", result) != 0 ||
	    msg_set(m, "id", json_incref(id != NULL ? id : json_null())) != 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

json_t *
rv_msg_error(json_t *id, int code, const char *message, json_t *data)
{
	json_t *m = msg_new(), *e = json_object();

	if (message == NULL)
		message = rv_error_message(code);
	if (m == NULL || e == NULL || msg_set(e, "code", json_integer(code)) != 0 ||
	    msg_set(e, "message", json_string(message)) != 0) {
		json_decref(data); /* not handed over */
		json_decref(e);
		json_decref(m);
		return NULL;
	}
	if (data != NULL && msg_set(e, "data", data) != 0) { /* data is gone either way */
		json_decref(e);
		json_decref(m);
		return NULL;
	}
	if (msg_set(m, "error", e) != 0 || /* and e, with data, is m's or gone */
	    msg_set(m, "id", json_incref(id != NULL ? id : json_null())) != 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

void
rv_framer_init(struct rv_framer *f, size_t max)
{
	f->max = max;
	f->scanned = 0;
	f->discarding = false;
}

enum rv_frame
rv_frame_scan(struct rv_framer *f, const char *buf, size_t len, size_t *used, size_t *n)
{
	const char *nl = f->scanned < len ? memchr(buf + f->scanned, '\n', len - f->scanned) : NULL;
	size_t line;

	*used = 0;
	if (nl == NULL) {
		f->scanned = len;
		if (f->discarding) {
			*used = len;
			f->scanned = 0;
			return RV_FRAME_NONE;
		}
		if (len > f->max + 1) {
			/* Too long even if a "\r\n" ended it right here. */
			*used = len;
			f->scanned = 0;
			f->discarding = true;
			return RV_FRAME_TOO_LONG;
		}
		return RV_FRAME_NONE;
	}
	line = (size_t)(nl - buf);
	*used = line + 1;
	f->scanned = 0;
	if (f->discarding) {
		f->discarding = false;
		return RV_FRAME_NONE;
	}
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	if (line > f->max)
		return RV_FRAME_TOO_LONG;
	*n = line;
	return RV_FRAME_LINE;
}

enum rv_frame
rv_framer_next(struct rv_framer *f, struct evbuffer *buf, char **line, size_t *len)
{
	for (;;) {
		size_t have = evbuffer_get_length(buf), used, n;
		unsigned char *p;
		enum rv_frame r;

		if (have == 0 || have <= f->scanned)
			return RV_FRAME_NONE;
		p = evbuffer_pullup(buf, -1);
		if (p == NULL)
			return RV_FRAME_NONE;
		r = rv_frame_scan(f, (const char *)p, have, &used, &n);
		if (r == RV_FRAME_LINE) {
			f->scanned = used; /* what rv_framer_consume() drains */
			*line = (char *)p;
			*len = n;
			return r;
		}
		evbuffer_drain(buf, used);
		if (r == RV_FRAME_TOO_LONG || used == 0)
			return r;
	}
}

void
rv_framer_consume(struct rv_framer *f, struct evbuffer *buf)
{
	evbuffer_drain(buf, f->scanned);
	f->scanned = 0;
}

int
rv_parse_hostport(const char *s, char **host, char **port, const char *default_port)
{
	const char *colon, *h = s;
	size_t hlen;

	*host = *port = NULL;
	if (s == NULL || *s == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL) {
			errno = EINVAL;
			return -1;
		}
		h = s + 1;
		hlen = (size_t)(end - h);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL) {
			errno = EINVAL;
			return -1;
		}
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
	}
	if (colon != NULL && colon[1] == '\0') {
		errno = EINVAL;
		return -1;
	}
	*host = strndup(h, hlen);
	*port = strdup(colon != NULL ? colon + 1 : default_port);
	if (*host == NULL || *port == NULL) {
		free(*host);
		free(*port);
		*host = *port = NULL;
		return -1;
	}
	return 0;
}

/* WebSocket (RFC 6455): the opening handshake, and frames through libwslay. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "config.h"
#include "ws.h"

/* The handshake's request may be at most this long (a browser's is under 1 KiB). */
#define WS_REQUEST_MAX 8192
/* RFC 6455 1.3: appended to the client's key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws {
	ws_line_cb on_line;
	void *arg;
	wslay_frame_context_ptr fc;
	bool open;       /* the 101 was sent */
	bool close_sent; /* a close frame went out: nothing after it */
	bool heard;      /* something came since the last ping */

	char *req; /* the handshake's request so far */
	size_t req_len;

	/* Feeding wslay_frame_recv() from ws_input()'s bytes. */
	const char *rd;
	size_t rd_len;
	/* Sending into this buffer (wslay_frame_send()'s callback). */
	struct evbuffer *wr;

	/* The frame being read. */
	uint64_t frame_off; /* payload bytes of it seen so far */
	uint8_t ctl[125];   /* a control frame's payload */
	size_t ctl_len;

	/* The message being read (its text frames so far), as a line. */
	char *msg;
	size_t msg_len, msg_cap;
	bool in_msg;
};

static ssize_t
ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user_data)
{
	struct ws *ws = user_data;
	size_t n = len < ws->rd_len ? len : ws->rd_len;

	(void)flags;
	if (n == 0)
		return 0; /* wslay_frame_recv() answers WSLAY_ERR_WANT_READ */
	memcpy(buf, ws->rd, n);
	ws->rd += n;
	ws->rd_len -= n;
	return (ssize_t)n;
}

static ssize_t
ws_send_cb(const uint8_t *data, size_t len, int flags, void *user_data)
{
	struct ws *ws = user_data;

	(void)flags;
	if (evbuffer_add(ws->wr, data, len) != 0)
		return -1;
	return (ssize_t)len;
}

static int
ws_genmask_cb(uint8_t *buf, size_t len, void *user_data)
{
	(void)buf;
	(void)len;
	(void)user_data;
	return -1; /* a server never masks */
}

struct ws *
ws_create(ws_line_cb on_line, void *arg)
{
	static const struct wslay_frame_callbacks cbs = {ws_send_cb, ws_recv_cb, ws_genmask_cb};
	struct ws *ws = calloc(1, sizeof *ws);

	if (ws == NULL)
		return NULL;
	if (wslay_frame_context_init(&ws->fc, &cbs, ws) != 0) {
		free(ws);
		return NULL;
	}
	ws->on_line = on_line;
	ws->arg = arg;
	ws->heard = true;
	return ws;
}

void
ws_free(struct ws *ws)
{
	if (ws == NULL)
		return;
	wslay_frame_context_free(ws->fc);
	free(ws->req);
	free(ws->msg);
	free(ws);
}

bool
ws_open(const struct ws *ws)
{
	return ws->open;
}

bool
ws_closing(const struct ws *ws)
{
	return ws->close_sent;
}

/* One frame, whole, into out. */
static int
ws_frame(struct ws *ws, uint8_t opcode, const void *data, size_t len, struct evbuffer *out)
{
	struct wslay_frame_iocb io = {.fin = 1,
				      .opcode = opcode,
				      .payload_length = len,
				      .data = data,
				      .data_length = len};

	ws->wr = out;
	do {
		ssize_t n = wslay_frame_send(ws->fc, &io);

		if (n < 0 || (n == 0 && io.data_length > 0))
			return -1; /* (the callback takes everything: no progress is an error) */
		io.data += n;
		io.data_length -= (size_t)n;
	} while (io.data_length > 0);
	return 0;
}

int
ws_lines(struct ws *ws, const char *data, size_t len, struct evbuffer *out)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl != NULL ? (size_t)(nl - data) : len;

		if (!ws->close_sent && ws_frame(ws, WSLAY_TEXT_FRAME, data, n, out) != 0)
			return -1;
		n += nl != NULL;
		data += n;
		len -= n;
	}
	return 0;
}

int
ws_close(struct ws *ws, uint16_t code, struct evbuffer *out)
{
	uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};

	if (ws->close_sent || !ws->open)
		return 0;
	ws->close_sent = true;
	return ws_frame(ws, WSLAY_CONNECTION_CLOSE, payload, sizeof payload, out);
}

bool
ws_ping(struct ws *ws, struct evbuffer *out)
{
	if (!ws->heard)
		return false;
	ws->heard = false;
	if (ws->open && !ws->close_sent)
		ws_frame(ws, WSLAY_PING, "", 0, out);
	return true;
}

/* A refusal of the handshake: a status and a line saying why; then close. */
static enum ws_result
ws_refuse(struct evbuffer *out, const char *status, const char *extra, const char *why,
	  const char **whyp)
{
	evbuffer_add_printf(out,
			    "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			    "Connection: close\r\n%s\r\n%s\n",
			    status, strlen(why) + 1, extra, why);
	*whyp = why;
	return WS_CLOSE_AFTER_FLUSH;
}

/* Whether the comma-separated list value holds token (case-insensitive). */
static bool
has_token(const char *value, size_t len, const char *token)
{
	size_t tl = strlen(token);

	while (len > 0) {
		const char *comma = memchr(value, ',', len);
		size_t n = comma != NULL ? (size_t)(comma - value) : len;
		const char *s = value, *e = value + n;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
			return true;
		n += comma != NULL;
		value += n;
		len -= n;
	}
	return false;
}

/* Whether a browser from origin may connect (--ws-origin, compared case-insensitively). */
static bool
origin_allowed(const char *origin, size_t len)
{
	for (size_t i = 0; i < config.nws_origins; i++)
		if (strlen(config.ws_origins[i]) == len &&
		    strncasecmp(config.ws_origins[i], origin, len) == 0)
			return true;
	return false;
}

/* The request is whole (it ends with an empty line): answer it. */
static enum ws_result
ws_handshake(struct ws *ws, struct evbuffer *out, const char **why)
{
	const char *p = ws->req, *end = ws->req + ws->req_len;
	const char *key = NULL, *origin = NULL, *version = NULL;
	size_t key_len = 0, origin_len = 0, version_len = 0;
	bool upgrade = false, connection = false, host = false;
	unsigned char digest[EVP_MAX_MD_SIZE], accept[64];
	char keyed[128];
	unsigned int dlen = 0;
	const char *eol = memchr(p, '\n', (size_t)(end - p));

	if (eol == NULL || strncmp(p, "GET ", 4) != 0)
		return ws_refuse(out, "405 Method Not Allowed", "Allow: GET\r\n",
				 "a WebSocket handshake is a GET", why);
	if (eol - p < 14 || strncmp(eol - (eol[-1] == '\r' ? 9 : 8), "HTTP/1.1", 8) != 0)
		return ws_refuse(out, "400 Bad Request", "", "expected HTTP/1.1", why);
	for (p = eol + 1; p < end; p = eol + 1) {
		const char *colon, *v, *ve;

		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		ve = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if (ve == p)
			break; /* the empty line */
		colon = memchr(p, ':', (size_t)(ve - p));
		if (colon == NULL)
			return ws_refuse(out, "400 Bad Request", "", "a header line without ':'",
					 why);
		for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
			;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
#define IS(name) \
	((size_t)(colon - p) == sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
		if (IS("Host")) {
			host = true;
		} else if (IS("Upgrade")) {
			upgrade = upgrade || has_token(v, (size_t)(ve - v), "websocket");
		} else if (IS("Connection")) {
			connection = connection || has_token(v, (size_t)(ve - v), "upgrade");
		} else if (IS("Sec-WebSocket-Key")) {
			key = v;
			key_len = (size_t)(ve - v);
		} else if (IS("Sec-WebSocket-Version")) {
			version = v;
			version_len = (size_t)(ve - v);
		} else if (IS("Origin")) {
			origin = v;
			origin_len = (size_t)(ve - v);
		}
#undef IS
	}
	if (!host || !upgrade || !connection || key == NULL)
		return ws_refuse(out, "400 Bad Request", "",
				 "expected a WebSocket handshake (Host, Upgrade: websocket, "
				 "Connection: Upgrade, Sec-WebSocket-Key)",
				 why);
	if (version == NULL || version_len != 2 || strncmp(version, "13", 2) != 0)
		return ws_refuse(out, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
				 "WebSocket version 13 only", why);
	/* The key: 16 bytes in base64 (RFC 6455 4.1). */
	if (key_len != 24 || EVP_DecodeBlock(accept, (const unsigned char *)key, 24) != 18 ||
	    key[22] != '=' || key[23] != '=')
		return ws_refuse(out, "400 Bad Request", "", "Sec-WebSocket-Key is not 16 bytes",
				 why);
	if (origin != NULL && !origin_allowed(origin, origin_len))
		return ws_refuse(out, "403 Forbidden", "",
				 "this origin may not connect (--ws-origin lists those that may)",
				 why);
	memcpy(keyed, key, key_len);
	memcpy(keyed + key_len, WS_GUID, sizeof WS_GUID - 1);
	if (EVP_Digest(keyed, key_len + sizeof WS_GUID - 1, digest, &dlen, EVP_sha1(), NULL) != 1 ||
	    EVP_EncodeBlock(accept, digest, (int)dlen) != 28) {
		*why = "out of memory";
		return WS_CLOSE_NOW;
	}
	if (evbuffer_add_printf(out,
				"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				(const char *)accept) < 0) {
		*why = "out of memory";
		return WS_CLOSE_NOW;
	}
	ws->open = true;
	free(ws->req);
	ws->req = NULL;
	ws->req_len = 0;
	return WS_OK;
}

/* Append to the message being read; false beyond max (or out of memory: *oom). */
static bool
msg_append(struct ws *ws, const uint8_t *data, size_t n, size_t max, bool *oom)
{
	if (ws->msg_len + n > max)
		return false;
	if (ws->msg_len + n + 1 > ws->msg_cap) {
		size_t cap = ws->msg_cap ? ws->msg_cap : 256;
		char *m;

		while (cap < ws->msg_len + n + 1)
			cap *= 2;
		if ((m = realloc(ws->msg, cap)) == NULL) {
			*oom = true;
			return false;
		}
		ws->msg = m;
		ws->msg_cap = cap;
	}
	memcpy(ws->msg + ws->msg_len, data, n);
	ws->msg_len += n;
	return true;
}

/* Close with code: a close frame, then close once it is sent. */
static enum ws_result
ws_fail(struct ws *ws, uint16_t code, const char *reason, struct evbuffer *out, const char **why)
{
	*why = reason;
	if (ws_close(ws, code, out) != 0) {
		*why = "out of memory";
		return WS_CLOSE_NOW;
	}
	return WS_CLOSE_AFTER_FLUSH;
}

/* A control frame, whole. */
static enum ws_result
ws_control(struct ws *ws, uint8_t opcode, struct evbuffer *out, const char **why)
{
	if (opcode == WSLAY_PING) {
		if (!ws->close_sent && ws_frame(ws, WSLAY_PONG, ws->ctl, ws->ctl_len, out) != 0) {
			*why = "out of memory";
			return WS_CLOSE_NOW;
		}
		return WS_OK;
	}
	if (opcode == WSLAY_CONNECTION_CLOSE) {
		/* Answer with the peer's code (1000 if it gave none), then close. */
		uint16_t code = ws->ctl_len >= 2 ? (uint16_t)(ws->ctl[0] << 8 | ws->ctl[1]) : 1000;

		return ws_fail(ws, code, "client closed the WebSocket", out, why);
	}
	return WS_OK; /* a pong: ws->heard is set already */
}

enum ws_result
ws_input(struct ws *ws, const char *data, size_t len, size_t max_message, struct evbuffer *out,
	 const char **why)
{
	if (!ws->open) {
		/* The handshake's request, up to its empty line. */
		const char *start = data;
		char *r;
		size_t n;

		if (len > WS_REQUEST_MAX + 4 - ws->req_len)
			len = WS_REQUEST_MAX + 4 - ws->req_len; /* req_len <= WS_REQUEST_MAX here */
		if ((r = realloc(ws->req, ws->req_len + len + 1)) == NULL) {
			*why = "out of memory";
			return WS_CLOSE_NOW;
		}
		ws->req = r;
		memcpy(r + ws->req_len, data, len);
		r[ws->req_len + len] = '\0';
		/* Where the request ends: its first empty line. */
		for (n = ws->req_len > 3 ? ws->req_len - 3 : 0; n + 4 <= ws->req_len + len; n++)
			if (memcmp(r + n, "\r\n\r\n", 4) == 0)
				break;
		if (n + 4 > ws->req_len + len) {
			ws->req_len += len;
			if (ws->req_len > WS_REQUEST_MAX)
				return ws_refuse(out, "431 Request Header Fields Too Large", "",
						 "the handshake's request is too long", why);
			return WS_OK; /* the rest is to come */
		}
		/* Frames may follow the request in the same read. */
		data = start + (n + 4 - ws->req_len);
		len -= (size_t)(data - start);
		ws->req_len = n + 4;
		enum ws_result res = ws_handshake(ws, out, why);
		if (res != WS_OK)
			return res;
	}
	if (ws->close_sent)
		return WS_OK; /* nothing more is read after our close */
	ws->heard = ws->heard || len > 0;
	ws->rd = data;
	ws->rd_len = len;
	for (;;) {
		struct wslay_frame_iocb io = {0};
		ssize_t r = wslay_frame_recv(ws->fc, &io);
		bool first, whole, oom = false;

		if (r == WSLAY_ERR_WANT_READ)
			return WS_OK;
		if (r < 0)
			return ws_fail(ws, WS_PROTOCOL, "a WebSocket frame against RFC 6455", out,
				       why);
		if (!io.mask || io.rsv != 0)
			return ws_fail(ws, WS_PROTOCOL,
				       io.mask ? "a WebSocket frame with reserved bits"
					       : "an unmasked WebSocket frame",
				       out, why);
		first = ws->frame_off == 0;
		ws->frame_off += io.data_length;
		whole = ws->frame_off == io.payload_length;
		if (whole)
			ws->frame_off = 0;
		if (wslay_is_ctrl_frame(io.opcode)) {
			memcpy(ws->ctl + ws->ctl_len, io.data, io.data_length);
			ws->ctl_len += io.data_length;
			if (whole) {
				enum ws_result res = ws_control(ws, io.opcode, out, why);

				ws->ctl_len = 0;
				if (res != WS_OK)
					return res;
			}
			continue;
		}
		if (io.opcode == WSLAY_BINARY_FRAME)
			return ws_fail(ws, WS_UNSUPPORTED, "a binary WebSocket message", out, why);
		if (io.opcode == WSLAY_TEXT_FRAME && ws->in_msg && first)
			return ws_fail(ws, WS_PROTOCOL, "a new message inside a fragmented one",
				       out, why);
		if (io.opcode == WSLAY_CONTINUATION_FRAME && !ws->in_msg)
			return ws_fail(ws, WS_PROTOCOL, "a continuation outside a message", out,
				       why);
		if (io.opcode != WSLAY_TEXT_FRAME && io.opcode != WSLAY_CONTINUATION_FRAME)
			return ws_fail(ws, WS_PROTOCOL, "an unknown WebSocket opcode", out, why);
		ws->in_msg = true;
		if (io.payload_length > max_message ||
		    !msg_append(ws, io.data, io.data_length, max_message, &oom)) {
			if (oom) {
				*why = "out of memory";
				return WS_CLOSE_NOW;
			}
			return ws_fail(ws, WS_TOO_BIG, "a WebSocket message over --max-line", out,
				       why);
		}
		if (whole && io.fin) {
			/* The message, whole: one line (raw CR and LF are JSON whitespace). */
			for (size_t i = 0; i < ws->msg_len; i++)
				if (ws->msg[i] == '\n' || ws->msg[i] == '\r')
					ws->msg[i] = ' ';
			ws->msg[ws->msg_len++] = '\n';
			ws->in_msg = false;
			ws->on_line(ws->arg, ws->msg, ws->msg_len);
			ws->msg_len = 0;
			if (ws->close_sent)
				return WS_OK;
		}
	}
}

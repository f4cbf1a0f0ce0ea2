/*
 * WebSocket (RFC 6455), the server's side, for the transport: the opening
 * handshake (the accept key with OpenSSL's SHA-1 and base64, the browser
 * origins allowed), and messages in and out as frames through libwslay's
 * frame API (masking, lengths, fragments), with the control frames: a pong
 * for each ping, a close answered with a close.
 *
 * conn.c owns one struct ws per WebSocket connection (plain, or inside TLS)
 * and is its only caller: it gives ws_input() the bytes it reads and sends
 * what ws_input() and ws_lines() append to its output buffer. A text
 * message comes back through on_line as one line (its raw CR and LF made
 * spaces, which JSON reads as whitespace, then "\n"), so that everything
 * above the transport reads a WebSocket client as it reads a TCP one, and
 * each line the layer above sends leaves as one text frame.
 *
 * Loop thread only.
 */
#ifndef RV_WS_H
#define RV_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct ws;

/* Close codes (RFC 6455 7.4.1). */
#define WS_NORMAL 1000      /* the daemon drains */
#define WS_PROTOCOL 1002    /* a frame against RFC 6455 */
#define WS_UNSUPPORTED 1003 /* a binary message: the protocol is text */
#define WS_POLICY 1008      /* cut off, kicked, no hello in time, ... */
#define WS_TOO_BIG 1009     /* a message over --max-line */

enum ws_result {
	WS_OK = 0,
	WS_CLOSE_AFTER_FLUSH, /* an answer is in out (a refusal, a close): send it, then close */
	WS_CLOSE_NOW,         /* out of memory */
};

/* Called with each text message, as one line ending in "\n" (borrowed for the call). */
typedef void (*ws_line_cb)(void *arg, const char *line, size_t len);

/* A WebSocket connection before its handshake; NULL when out of memory. */
struct ws *ws_create(ws_line_cb on_line, void *arg);
void ws_free(struct ws *ws);

/*
 * Bytes read from the peer: the handshake's request, then frames. What the
 * daemon answers (101 or a refusal, pongs, a close) is appended to out.
 * max_message bounds a message (WS_TOO_BIG beyond it). *why says, for the
 * log, why the connection is to close.
 */
enum ws_result ws_input(struct ws *ws, const char *data, size_t len, size_t max_message,
			struct evbuffer *out, const char **why);
/* Whether the handshake is done: lines may be sent. */
bool ws_open(const struct ws *ws);
/*
 * The lines data[0 .. len) (each ended by "\n", which is not sent) as text
 * frames, appended to out. -1 when out of memory.
 */
int ws_lines(struct ws *ws, const char *data, size_t len, struct evbuffer *out);
/* A close frame with code, once (later calls add nothing). -1 when out of memory. */
int ws_close(struct ws *ws, uint16_t code, struct evbuffer *out);
/* Whether a close frame was sent. */
bool ws_closing(const struct ws *ws);
/*
 * Keepalive: a ping appended to out. Returns false, sending nothing, when
 * nothing came from the peer since the previous ping (it is gone).
 */
bool ws_ping(struct ws *ws, struct evbuffer *out);

#endif

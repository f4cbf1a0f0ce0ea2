/*
 * libFuzzer target: the WebSocket transport's reading (daemon/ws.c), what a
 * client sends before anything else knows who it is: the opening handshake
 * (its request line, headers, key, origin) and then frames through libwslay
 * (lengths, masks, fragments, control frames, close).
 *
 * The first input byte picks a mode:
 *   0: the rest is the whole input, handshake included;
 *   1: a valid handshake, then the rest as frames, in one read;
 *   2: the same, the rest handed over in reads of (byte % 16 + 1) bytes, each
 *      read's length taken from the input, to cut frames anywhere.
 * Every message must come back as one line ending in its only "\n"; what the
 * daemon writes back (101, pongs, a close) goes to a buffer that is then
 * dropped. Lines are also sent back through ws_lines(), as replies would be.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char handshake[] =
	"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Version: 13\r\nOrigin: https://app.example\r\n\r\n";

struct sink {
	struct ws *ws;
	struct evbuffer *out;
};

static void
on_line(void *arg, const char *line, size_t len)
{
	struct sink *s = arg;
	const char *nl = memchr(line, '\n', len);

	/* One line: its only newline is its last byte, and no CR is left in it. */
	if (len == 0 || nl != line + len - 1 || memchr(line, '\r', len) != NULL)
		abort();
	if (ws_lines(s->ws, line, len, s->out) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *origins[] = {"https://app.example"};
	struct sink s;
	const char *why = NULL;
	enum ws_result r = WS_OK;
	uint8_t mode;

	if (size == 0)
		return 0;
	config.ws_origins = origins;
	config.nws_origins = 1;
	mode = data[0] % 3;
	data++;
	size--;
	s.out = evbuffer_new();
	s.ws = ws_create(on_line, &s);
	if (s.out == NULL || s.ws == NULL)
		abort();
	if (mode == 0) {
		r = ws_input(s.ws, (const char *)data, size, 4096, s.out, &why);
	} else {
		r = ws_input(s.ws, handshake, sizeof handshake - 1, 4096, s.out, &why);
		if (r != WS_OK || !ws_open(s.ws))
			abort(); /* a valid handshake is taken */
		if (mode == 1) {
			r = ws_input(s.ws, (const char *)data, size, 4096, s.out, &why);
		} else {
			while (size > 0 && r == WS_OK) {
				size_t n = (size_t)(data[0] % 16) + 1;

				data++;
				size--;
				if (n > size)
					n = size;
				r = ws_input(s.ws, (const char *)data, n, 4096, s.out, &why);
				data += n;
				size -= n;
			}
		}
	}
	if (r != WS_OK && why == NULL)
		abort(); /* a close always says why */
	ws_ping(s.ws, s.out);
	ws_close(s.ws, WS_NORMAL, s.out);
	ws_free(s.ws);
	evbuffer_free(s.out);
	return 0;
}

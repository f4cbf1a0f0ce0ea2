/* The JSON-RPC codec and the line framer of lib/codec.c. */
#include <string.h>

#include <event2/buffer.h>

#include "check.h"
#include "rendezvous.h"

static enum rv_msg_kind
classify(const char *text, struct rv_msg *m, json_t **keep)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	enum rv_msg_kind k;

	if (j == NULL) {
		fprintf(stderr, "bad test JSON: %s\n", text);
		exit(1);
	}
	k = rv_msg_classify(j, m);
	*keep = j;
	return k;
}

static void
test_classify(void)
{
	static const struct {
		const char *text;
		enum rv_msg_kind kind;
	} cases[] = {
		{"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}", RV_MSG_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":\"a\"}", RV_MSG_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":null}", RV_MSG_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}", RV_MSG_NOTIFICATION},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{}}", RV_MSG_NOTIFICATION},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":[1],\"id\":2}", RV_MSG_REQUEST},
		{"{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":2}", RV_MSG_RESPONSE},
		{"{\"jsonrpc\":\"2.0\",\"error\":{},\"id\":null}", RV_MSG_RESPONSE},
		{"{\"jsonrpc\":\"2.0\",\"result\":1,\"error\":{},\"id\":2}", RV_MSG_INVALID},
		{"{\"jsonrpc\":\"1.0\",\"method\":\"ping\",\"id\":1}", RV_MSG_INVALID},
		{"{\"method\":\"ping\",\"id\":1}", RV_MSG_INVALID},
		{"{\"jsonrpc\":2.0,\"method\":\"ping\",\"id\":1}", RV_MSG_INVALID},
		{"{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}", RV_MSG_INVALID},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":\"s\",\"id\":1}",
		 RV_MSG_INVALID},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":{}}", RV_MSG_INVALID},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":true}", RV_MSG_INVALID},
		{"{\"jsonrpc\":\"2.0\"}", RV_MSG_INVALID},
		{"[1]", RV_MSG_INVALID},
		{"\"ping\"", RV_MSG_INVALID},
		{"null", RV_MSG_INVALID},
	};
	struct rv_msg m;
	json_t *j;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum rv_msg_kind k = classify(cases[i].text, &m, &j);
		CHECK_MSG(k == cases[i].kind, "%s: got %d want %d", cases[i].text, k,
			  cases[i].kind);
		CHECK(k != RV_MSG_INVALID || m.why != NULL);
		json_decref(j);
	}
	classify("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"a\":1},\"id\":7}", &m, &j);
	CHECK(strcmp(m.method, "m") == 0);
	CHECK(json_integer_value(json_object_get(m.params, "a")) == 1);
	CHECK(json_integer_value(m.id) == 7);
	json_decref(j);
}

static void
test_builders(void)
{
	json_t *id = json_integer(5), *m;
	size_t len;
	char *line;

	m = rv_msg_result(id, json_string("pong"));
	line = rv_msg_encode(m, &len);
	CHECK(line != NULL &&
	      strcmp(line, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":5}\n") == 0);
	CHECK(len == strlen(line));
	free(line);
	json_decref(m);

	m = rv_msg_error(NULL, RV_ERR_PARSE, NULL, json_pack("{s:i}", "position", 3));
	line = rv_msg_encode(m, &len);
	CHECK(line != NULL &&
	      strcmp(line, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":"
			   "\"Parse error\",\"data\":{\"position\":3}},\"id\":null}\n") == 0);
	free(line);
	json_decref(m);

	m = rv_msg_request("hello", json_pack("{s:s}", "user", "ann"), 9);
	line = rv_msg_encode(m, &len);
	CHECK(line != NULL &&
	      strcmp(line,
		     "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"user\":\"ann\"},"
		     "\"id\":9}\n") == 0);
	free(line);
	json_decref(m);

	m = rv_msg_notification("session.state_changed", NULL);
	line = rv_msg_encode(m, &len);
	CHECK(line != NULL &&
	      strcmp(line, "{\"jsonrpc\":\"2.0\",\"method\":\"session.state_changed\"}\n") == 0);
	free(line);
	json_decref(m);
	json_decref(id);

	/* Decoding: what jansson refuses comes back NULL with a position. */
	json_error_t err;
	CHECK(rv_msg_decode("{\"a\":", 5, &err) == NULL && err.position > 0);
	CHECK(rv_msg_decode("\"\\u0000\"", 8, &err) == NULL);
	CHECK(rv_msg_decode("\xff", 1, &err) == NULL);
	m = rv_msg_decode("[1,2]", 5, &err);
	CHECK(json_is_array(m));
	json_decref(m);
}

static void
test_framer(void)
{
	struct evbuffer *b = evbuffer_new();
	struct rv_framer f;
	char *line;
	size_t len;

	rv_framer_init(&f, 8);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_NONE);
	evbuffer_add(b, "abc", 3);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_NONE);
	evbuffer_add(b, "d\r\nxy\n", 6);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_LINE);
	CHECK(len == 4 && memcmp(line, "abcd", 4) == 0);
	rv_framer_consume(&f, b);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_LINE);
	CHECK(len == 2 && memcmp(line, "xy", 2) == 0);
	rv_framer_consume(&f, b);
	CHECK(evbuffer_get_length(b) == 0);

	/* Exactly max bytes passes; max + 1 does not, and is skipped to its end. */
	evbuffer_add(b, "12345678\n123456789\nok\n", 22);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_LINE && len == 8);
	rv_framer_consume(&f, b);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_TOO_LONG);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_LINE);
	CHECK(len == 2 && memcmp(line, "ok", 2) == 0);
	rv_framer_consume(&f, b);

	/* A long line arriving in pieces is reported once and dropped. */
	evbuffer_add(b, "0123456789", 10);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_TOO_LONG);
	evbuffer_add(b, "0123456789", 10);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_NONE);
	CHECK(evbuffer_get_length(b) == 0);
	evbuffer_add(b, "tail\nnext\n", 10);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_LINE);
	CHECK(len == 4 && memcmp(line, "next", 4) == 0);
	rv_framer_consume(&f, b);

	/* Bytes, even NUL, are passed through: JSON decoding judges them. */
	evbuffer_add(b, "a\0b\n", 4);
	CHECK(rv_framer_next(&f, b, &line, &len) == RV_FRAME_LINE && len == 3 && line[1] == '\0');
	rv_framer_consume(&f, b);
	evbuffer_free(b);
}

/* The framing rule on flat bytes, as the daemon runs it over its read buffer. */
static void
test_frame_scan(void)
{
	struct rv_framer f;
	size_t used, n;

	rv_framer_init(&f, 8);
	CHECK(rv_frame_scan(&f, "abc", 3, &used, &n) == RV_FRAME_NONE && used == 0);
	CHECK(f.scanned == 3); /* the next call searches only what came since */
	CHECK(rv_frame_scan(&f, "abcd\r\nxy", 9, &used, &n) == RV_FRAME_LINE);
	CHECK(used == 6 && n == 4);
	CHECK(rv_frame_scan(&f, "xy", 2, &used, &n) == RV_FRAME_NONE && used == 0);
	/* Over max with no newline yet: reported once, dropped as it arrives. */
	CHECK(rv_frame_scan(&f, "0123456789", 10, &used, &n) == RV_FRAME_TOO_LONG && used == 10);
	CHECK(rv_frame_scan(&f, "01234", 5, &used, &n) == RV_FRAME_NONE && used == 5);
	CHECK(rv_frame_scan(&f, "56\nok\n", 6, &used, &n) == RV_FRAME_NONE && used == 3);
	CHECK(rv_frame_scan(&f, "ok\n", 3, &used, &n) == RV_FRAME_LINE && used == 3 && n == 2);
	/* Over max with its newline: reported, taken whole, the next line intact. */
	CHECK(rv_frame_scan(&f, "123456789\nz\n", 12, &used, &n) == RV_FRAME_TOO_LONG);
	CHECK(used == 10 && !f.discarding);
	CHECK(rv_frame_scan(&f, "z\n", 2, &used, &n) == RV_FRAME_LINE && n == 1);
}

static void
test_hostport(void)
{
	char *h, *p;

	CHECK(rv_parse_hostport("127.0.0.1:80", &h, &p, "1") == 0);
	CHECK(strcmp(h, "127.0.0.1") == 0 && strcmp(p, "80") == 0);
	free(h), free(p);
	CHECK(rv_parse_hostport("localhost", &h, &p, "7420") == 0);
	CHECK(strcmp(h, "localhost") == 0 && strcmp(p, "7420") == 0);
	free(h), free(p);
	CHECK(rv_parse_hostport("[::1]:9", &h, &p, "1") == 0);
	CHECK(strcmp(h, "::1") == 0 && strcmp(p, "9") == 0);
	free(h), free(p);
	CHECK(rv_parse_hostport("::1", &h, &p, "5") == 0);
	CHECK(strcmp(h, "::1") == 0 && strcmp(p, "5") == 0);
	free(h), free(p);
	CHECK(rv_parse_hostport("host:", &h, &p, "1") == -1);
	CHECK(rv_parse_hostport("[::1", &h, &p, "1") == -1);
	CHECK(rv_parse_hostport("", &h, &p, "1") == -1);
}

int
main(void)
{
	test_classify();
	test_builders();
	test_framer();
	test_frame_scan();
	test_hostport();
	return check_done("test_codec");
}

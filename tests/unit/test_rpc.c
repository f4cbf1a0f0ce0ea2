/*
 * A request may complete later (daemon/rpc.h, rpc_defer()): its reply and
 * those of the requests after it keep the connection's order, single or in
 * a batch; an answer given before its handler returned goes out as a
 * synchronous one; a client that leaves first gets nothing, and nothing
 * leaks. The method that defers is ping, wrapped at link time
 * (-Wl,--wrap=rpc_ping): with params {"later": true} it holds the request
 * until the test answers it, with {"now": true} it defers and answers at
 * once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "inproc.h"
#include "rpc.h"

json_t *__real_rpc_ping(struct client *c, json_t *params, struct rpc_error *err);
json_t *__wrap_rpc_ping(struct client *c, json_t *params, struct rpc_error *err);

static struct rpc_req *held; /* the request the test answers */

json_t *
__wrap_rpc_ping(struct client *c, json_t *params, struct rpc_error *err)
{
	struct rpc_req *r;

	if (json_object_get(params, "later") == NULL && json_object_get(params, "now") == NULL)
		return __real_rpc_ping(c, params, err);
	r = rpc_defer(err);
	if (r == NULL)
		return NULL;
	if (json_object_get(params, "now") != NULL) {
		struct rpc_error e = {0};
		rpc_complete(r, json_string("at once"), &e);
	} else {
		held = r;
	}
	return rpc_later(err);
}

/* What the peer can read now, waiting up to a second for want bytes. */
static size_t
peer_read(int fd, char *buf, size_t cap, size_t want)
{
	size_t len = 0;

	for (int i = 0; i < 100 && len < want; i++) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n > 0)
			len += (size_t)n;
		else
			inproc_pass();
	}
	buf[len] = '\0';
	return len;
}

/* Answer the held request: with result (a new reference), or with error code if result is NULL. */
static void
answer_held(json_t *result, int code)
{
	struct rpc_error e = {0};
	struct rpc_req *r = held;

	held = NULL;
	if (result == NULL)
		rpc_fail(&e, code, NULL, "unavailable: test");
	rpc_complete(r, result, &e);
}

static void
send_line(int peer, const char *line)
{
	CHECK(write(peer, line, strlen(line)) == (ssize_t)strlen(line));
	for (int i = 0; i < 5; i++)
		inproc_pass();
}

/* A held request, then one behind it: nothing until the first is answered, then both in order. */
static void
test_single_keeps_order(void)
{
	char out[4096];
	int peer;

	inproc_start();
	inproc_connect(&peer, 0);
	send_line(peer,
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"later\":true}}\n"
		  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
	CHECK(held != NULL);
	CHECK_MSG(peer_read(peer, out, sizeof out, 1) == 0, "answered out of turn: %s", out);
	answer_held(json_string("later"), 0);
	peer_read(peer, out, sizeof out, 100);
	CHECK_MSG(strcmp(out, "{\"jsonrpc\":\"2.0\",\"result\":\"later\",\"id\":1}\n"
			      "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2}\n") == 0,
		  "got: %s", out);
	close(peer);
	inproc_stop();
}

/* In a batch: the elements after a held one wait; one reply, in order, error included. */
static void
test_batch_keeps_order(void)
{
	char out[4096];
	int peer;

	inproc_start();
	inproc_connect(&peer, 0);
	send_line(peer,
		  "[{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"params\":{\"later\":true}},"
		  "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}]\n");
	CHECK(held != NULL);
	CHECK_MSG(peer_read(peer, out, sizeof out, 1) == 0, "answered out of turn: %s", out);
	answer_held(NULL, RV_ERR_UNAVAILABLE);
	peer_read(peer, out, sizeof out, 100);
	CHECK_MSG(strcmp(out, "[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":5003,\"message\":"
			      "\"unavailable: test\"},\"id\":3},"
			      "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":4}]\n") == 0,
		  "got: %s", out);
	close(peer);
	inproc_stop();
}

/* Deferred and answered before the handler returned: a plain reply, and the next one follows. */
static void
test_answered_at_once(void)
{
	char out[4096];
	int peer;

	inproc_start();
	inproc_connect(&peer, 0);
	send_line(peer,
		  "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":{\"now\":true}}\n"
		  "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}\n");
	CHECK(held == NULL);
	peer_read(peer, out, sizeof out, 100);
	CHECK_MSG(strcmp(out, "{\"jsonrpc\":\"2.0\",\"result\":\"at once\",\"id\":5}\n"
			      "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":6}\n") == 0,
		  "got: %s", out);
	close(peer);
	inproc_stop();
}

/* The client leaves while its request is held: the late answer goes nowhere, and leaks nothing. */
static void
test_client_gone(void)
{
	int peer;

	inproc_start();
	inproc_connect(&peer, 0);
	send_line(peer,
		  "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":{\"later\":true}},"
		  "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}]\n");
	CHECK(held != NULL);
	close(peer);
	for (int i = 0; i < 5; i++)
		inproc_pass(); /* the daemon sees the end of input, and frees the client */
	answer_held(json_string("too late"), 0);
	inproc_stop();
}

int
main(void)
{
	char *args[] = {"rendezvousd-test", "--store",   "memory", "--log-level", "error",
			"--config",         "/dev/null", NULL};

	inproc_init((int)(sizeof args / sizeof args[0]) - 1, args);
	test_single_keeps_order();
	test_batch_keeps_order();
	test_answered_at_once();
	test_client_gone();
	inproc_finish();
	return check_done("test_rpc");
}

/* Client connections: framing, backpressure, output bounds, teardown. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "hub.h"
#include "log.h"
#include "msgbuf.h"
#include "rpc.h"
#include "sessions.h"
#include "users.h"

/* Stop reading requests while this much output waits; resume below LOW. */
#define OUT_HIGH (1024 * 1024)
#define OUT_LOW (64 * 1024)
/* How long a closing connection may take to take its last output. */
#define FLUSH_TIMEOUT_SEC 5

static struct event_base *base;
static struct conn_list live = TAILQ_HEAD_INITIALIZER(live);
static struct conn_list draining = TAILQ_HEAD_INITIALIZER(draining);
static struct conn_list closing = TAILQ_HEAD_INITIALIZER(closing);
static struct event *reaper;
static size_t nlive;
static uint64_t next_id = 1;

static const char *const state_names[] = {"handshake", "ready", "closing"};

static void conn_process(struct conn *c);

static void
conn_set_state(struct conn *c, enum conn_state state)
{
	log_debug("conn %llu %s: %s -> %s", (unsigned long long)c->id, c->peer,
		  state_names[c->state], state_names[state]);
	c->state = state;
}

/* Free a connection that is no longer referenced by any callback stack. */
static void
conn_free(struct conn *c)
{
	hub_conn_gone(c);
	if (c->user != NULL) {
		struct user *u = c->user;
		TAILQ_REMOVE(&u->conns, c, by_user);
		if (--u->nconns == 0)
			sessions_user_offline(u);
		user_unref(u);
	}
	bufferevent_free(c->bev);
	free(c->client);
	free(c);
}

static void
conns_on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c;

	(void)fd;
	(void)what;
	(void)arg;
	while ((c = TAILQ_FIRST(&closing)) != NULL) {
		TAILQ_REMOVE(&closing, c, all);
		conn_free(c);
	}
}

/* Leave the live list: no more input, nothing new queued. Logs why. */
static void
conn_begin_close(struct conn *c, const char *reason)
{
	conn_set_state(c, CONN_CLOSING);
	c->close_reason = reason;
	TAILQ_REMOVE(&live, c, all);
	nlive--;
	log_info("conn %llu %s%s%s closed: %s", (unsigned long long)c->id, c->peer,
		 c->user ? " user " : "", c->user ? c->user->name : "", reason);
	bufferevent_disable(c->bev, EV_READ);
}

/* Hand the connection to the reaper, which frees it after this callback. */
static void
conn_reap(struct conn *c)
{
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&closing, c, all);
	event_active(reaper, EV_TIMEOUT, 0);
}

void
conn_close(struct conn *c, const char *reason)
{
	if (c->flushing) {
		/* Closing already; stop waiting for the output to drain. */
		c->flushing = false;
		TAILQ_REMOVE(&draining, c, all);
		conn_reap(c);
		return;
	}
	if (c->state == CONN_CLOSING)
		return;
	conn_begin_close(c, reason);
	conn_reap(c);
}

void
conn_close_flush(struct conn *c, const char *reason)
{
	struct timeval tv = {FLUSH_TIMEOUT_SEC, 0};

	if (c->state == CONN_CLOSING)
		return;
	conn_begin_close(c, reason);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_reap(c);
		return;
	}
	c->flushing = true;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	TAILQ_INSERT_TAIL(&draining, c, all);
}

/*
 * A client stopped reading: keep the rest of the line it is partway through
 * (up to the first newline), drop everything after, append one error line,
 * and close once that much is sent or the flush timeout passes. Nothing new
 * is queued for it meanwhile, so its memory is bounded.
 */
static void
conn_cut_off(struct conn *c, size_t pending)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_ptr nl = evbuffer_search(out, "\n", 1, NULL);
	struct evbuffer *tmp = evbuffer_new();
	char line[256];
	int n;

	log_warn("conn %llu %s%s%s: slow consumer cut off with %zu bytes unsent (max-pending %zu)",
		 (unsigned long long)c->id, c->peer, c->user ? " user " : "",
		 c->user ? c->user->name : "", pending, config.max_pending);
	if (tmp != NULL) {
		/* Move the kept prefix out, drop the rest, put the prefix back. */
		evbuffer_remove_buffer(out, tmp, nl.pos >= 0 ? (size_t)nl.pos + 1 : 0);
		evbuffer_drain(out, evbuffer_get_length(out));
		evbuffer_add_buffer(out, tmp);
		evbuffer_free(tmp);
	} else {
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	n = snprintf(
		line, sizeof line,
		"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"slow consumer: "
		"unsent output passed %zu bytes\",\"data\":{\"max_pending\":%zu}},\"id\":null}\n",
		RV_ERR_LIMIT, config.max_pending, config.max_pending);
	evbuffer_add(out, line, (size_t)n);
	conn_close_flush(c, "slow consumer");
}

static void
conn_after_output(struct conn *c)
{
	size_t pending = evbuffer_get_length(bufferevent_get_output(c->bev));

	if (pending > config.max_pending)
		conn_cut_off(c, pending);
}

static void
line_release(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)(uintptr_t)data);
}

void
conn_send_json(struct conn *c, const json_t *msg)
{
	size_t len;
	char *line;

	if (!conn_live(c))
		return;
	line = rv_msg_encode(msg, &len);
	if (line == NULL) {
		log_error("conn %llu: out of memory encoding a reply", (unsigned long long)c->id);
		conn_close(c, "out of memory");
		return;
	}
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), line, len, line_release, NULL) !=
	    0) {
		free(line);
		conn_close(c, "out of memory");
		return;
	}
	conn_after_output(c);
}

static void
msgbuf_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	msgbuf_unref(arg);
}

void
conn_send_msgbuf(struct conn *c, struct msgbuf *mb)
{
	if (!conn_live(c))
		return;
	msgbuf_ref(mb);
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), mb->data, mb->len,
				   msgbuf_release, mb) != 0) {
		msgbuf_unref(mb);
		conn_close(c, "out of memory");
		return;
	}
	conn_after_output(c);
}

void
conn_send_error(struct conn *c, int code, const char *message, json_t *data)
{
	json_t *msg = rv_msg_error(NULL, code, message, data);

	if (msg == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	conn_send_json(c, msg);
	json_decref(msg);
}

void
conn_authenticate(struct conn *c, struct user *u, bool observer)
{
	c->user = u;
	c->observer = observer;
	TAILQ_INSERT_TAIL(&u->conns, c, by_user);
	if (u->nconns++ == 0)
		sessions_user_online(u);
	conn_set_state(c, CONN_READY);
}

/* Run complete lines through rpc until none is left or output backs up. */
static void
conn_process(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char *line;
	size_t len;

	while (conn_live(c) && !c->paused) {
		switch (rv_framer_next(&c->framer, in, &line, &len)) {
		case RV_FRAME_NONE: return;
		case RV_FRAME_TOO_LONG:
			conn_send_error(
				c, RV_ERR_TOO_LARGE, "line too long",
				json_pack("{s:I}", "max_line", (json_int_t)config.max_line));
			break;
		case RV_FRAME_LINE:
			rpc_handle_line(c, line, len);
			rv_framer_consume(&c->framer, in);
			break;
		}
		if (conn_live(c) && evbuffer_get_length(out) > OUT_HIGH) {
			c->paused = true;
			bufferevent_disable(c->bev, EV_READ);
		}
	}
}

static void
conn_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

static void
conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));

	if (c->flushing) {
		if (pending == 0)
			conn_close(c, c->close_reason);
		return;
	}
	if (c->paused && conn_live(c) && pending <= OUT_LOW) {
		c->paused = false;
		bufferevent_enable(bev, EV_READ);
		conn_process(c);
	}
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		/* Half-close: answer what was read, then close. */
		if (c->flushing)
			conn_close(c, c->close_reason);
		else
			conn_close_flush(c, "client closed the connection");
	} else if (what & BEV_EVENT_ERROR) {
		conn_close(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	} else if (what & BEV_EVENT_TIMEOUT) {
		conn_close(c, "timed out flushing output");
	}
}

static void
format_peer(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		port = ntohs(sin->sin_port);
		snprintf(buf, len, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		port = ntohs(sin6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "local");
	}
}

struct conn *
conn_create(evutil_socket_t fd, const struct sockaddr *sa, int socklen)
{
	struct conn *c;
	int one = 1;

	(void)socklen;
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	c->id = next_id++;
	format_peer(sa, c->peer, sizeof c->peer);
	rv_framer_init(&c->framer, config.max_line);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&live, c, all);
	nlive++;
	log_debug("conn %llu %s: accepted", (unsigned long long)c->id, c->peer);
	return c;
}

size_t
conns_count(void)
{
	return nlive;
}

int
conns_init(struct event_base *b)
{
	base = b;
	reaper = event_new(base, -1, 0, conns_on_reap, NULL);
	return reaper != NULL ? 0 : -1;
}

void
conns_finish(void)
{
	struct conn *c;

	/* Offer each client what it has not been sent yet, without blocking. */
	TAILQ_FOREACH (c, &live, all)
		evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
	TAILQ_FOREACH (c, &draining, all)
		evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
	while ((c = TAILQ_FIRST(&draining)) != NULL)
		conn_close(c, "daemon shutting down");
	while ((c = TAILQ_FIRST(&live)) != NULL)
		conn_close(c, "daemon shutting down");
	conns_on_reap(-1, 0, NULL);
	if (reaper != NULL)
		event_free(reaper);
	reaper = NULL;
}

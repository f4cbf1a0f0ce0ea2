/*
 * Clients: a connection's protocol state, its teardown, its deadlines, and
 * group commit's hold on output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "addrs.h"
#include "client.h"
#include "commit.h"
#include "config.h"
#include "identity.h"
#include "log.h"
#include "presence.h"
#include "rendezvous.h"
#include "sessions.h"
#include "shared.h"
#include "shared_nodes.h"
#include "stats.h"
#include "store.h"
#include "users.h"

/* How long a closing connection may take to take its last output, in ms. */
#define FLUSH_TIMEOUT_MS 5000

TAILQ_HEAD(client_list, client);

static struct {
	struct client_list all;     /* every client not yet freed, in id order */
	struct client_list unacked; /* clients with write requests answered in the transaction */
	struct timerq *deadlines;   /* hello timeouts and credential expiries */
	client_line_fn on_line;
	client_gone_fn on_gone;
} cl = {
	.all = TAILQ_HEAD_INITIALIZER(cl.all),
	.unacked = TAILQ_HEAD_INITIALIZER(cl.unacked),
};

static void
client_forget_unacked(struct client *c)
{
	if (c->unacked != NULL) {
		TAILQ_REMOVE(&cl.unacked, c, unacked_entry);
		json_decref(c->unacked);
		c->unacked = NULL;
	}
}

static void
client_on_line(void *arg, const char *line, size_t len)
{
	struct client *c = arg;

	cl.on_line(c, line, len);
	if (c->close_after != NULL && client_live(c))
		conn_close_flush(c->conn, c->close_after);
}

static void
client_on_line_too_long(void *arg, size_t max)
{
	struct client *c = arg;

	stats.lines_too_long++;
	commit_pass(); /* an error that does not go back with the pass */
	client_send_error(c, RV_ERR_TOO_LARGE, "line too long",
			  json_pack("{s:I}", "max_line", (json_int_t)max));
}

static void
client_on_cut_off(void *arg, size_t max)
{
	struct client *c = arg;
	char message[96];

	snprintf(message, sizeof message, "slow consumer: unsent output passed %zu bytes", max);
	client_send_error(c, RV_ERR_LIMIT, message,
			  json_pack("{s:I}", "max_pending", (json_int_t)max));
}

/* The output held since the transaction opened was taken back with it. */
static void
client_on_fence_dropped(void *arg)
{
	struct client *c = arg;
	json_t *id;
	size_t i;

	c->peer.mark = 0; /* event ids not committed will be used again */
	json_array_foreach (c->unacked, i, id) {
		json_t *msg = commit_failed_error(id);
		if (msg == NULL) {
			conn_close(c->conn, "out of memory");
			break;
		}
		client_send_json(c, msg);
		json_decref(msg);
	}
	client_forget_unacked(c);
}

/* The connection is being freed: so is the client. */
static void
client_on_close(void *arg)
{
	struct client *c = arg;

	cl.on_gone(c);
	hub_peer_gone(&c->peer);
	if (c->who.user != NULL) {
		struct user *u = c->who.user;
		TAILQ_REMOVE(&u->conns, &c->peer, by_user);
		u->nconns--;
		c->who.device->nconns--;
		if (c->who.device->nconns == 0 && shared_enabled())
			shared_device_here(u, c->who.device, false);
		sessions_presence_changed(u);
		if (c->who.device->nconns == 0)
			presence_changed(u); /* its last connection from this device went */
		device_unref(c->who.device);
		user_unref(u);
	}
	client_forget_unacked(c);
	timerq_cancel(cl.deadlines, &c->deadline);
	addr_disconnect(c->addr);
	TAILQ_REMOVE(&cl.all, c, all);
	free(c->client);
	free(c->label);
	free(c->outcomes_lines);
	free(c);
}

static const struct conn_ops client_ops = {
	.on_line = client_on_line,
	.on_line_too_long = client_on_line_too_long,
	.on_cut_off = client_on_cut_off,
	.on_fence_dropped = client_on_fence_dropped,
	.on_close = client_on_close,
};

/* A client's deadline: no hello in time, or its credential expired. */
static void
client_on_deadline(struct timer_entry *e, int64_t now, void *arg)
{
	struct client *c = container_of(e, struct client, deadline);

	(void)now;
	(void)arg;
	if (!client_live(c))
		return;
	commit_pass(); /* what it is told must not be taken back with the pass */
	if (c->state == CLIENT_HANDSHAKE) {
		stats.hello_timeouts++;
		client_send_error(c, RV_ERR_UNAUTHENTICATED, "not authenticated: no hello in time",
				  json_pack("{s:f}", "hello_timeout",
					    (double)config.hello_timeout_ms / 1000.0));
		conn_close_flush(c->conn, "no hello in time");
	} else {
		client_send_error(c, RV_ERR_UNAUTHENTICATED,
				  "not authenticated: credential expired", NULL);
		conn_close_flush(c->conn, "credential expired");
	}
}

/* Group commit's output participant: hold output while a transaction is open. */
static void
output_on_begin(void *arg)
{
	(void)arg;
	conns_fence_raise();
}

static void
output_on_committed(void *arg)
{
	struct client *c;

	(void)arg;
	conns_fence_release();
	while ((c = TAILQ_FIRST(&cl.unacked)) != NULL)
		client_forget_unacked(c);
}

static int
output_on_rolled_back(void *arg)
{
	struct client *c;

	(void)arg;
	conns_fence_drop(); /* each client whose output it held answers 5003 */
	while ((c = TAILQ_FIRST(&cl.unacked)) != NULL)
		client_forget_unacked(c);
	return 0;
}

static const struct commit_participant output_participant = {
	.name = "output",
	.begin = output_on_begin,
	.committed = output_on_committed,
	.rolled_back = output_on_rolled_back,
};

int
clients_init(struct event_base *base, client_line_fn on_line, client_gone_fn on_gone)
{
	cl.on_line = on_line;
	cl.on_gone = on_gone;
	cl.deadlines = timerq_create(base, client_on_deadline, NULL);
	if (cl.deadlines == NULL)
		return -1;
	commit_register(COMMIT_OUTPUT, &output_participant);
	return 0;
}

void
clients_finish(void)
{
	timerq_destroy(cl.deadlines);
	cl.deadlines = NULL;
}

struct client *
client_create(evutil_socket_t fd, const struct sockaddr *sa, struct addr *addr, enum conn_kind kind)
{
	struct client *c = calloc(1, sizeof *c);

	if (c == NULL ||
	    timerq_set(cl.deadlines, &c->deadline, now_ms() + config.hello_timeout_ms) != 0) {
		free(c);
		addr_disconnect(addr);
		evutil_closesocket(fd);
		return NULL;
	}
	c->conn = conn_create(fd, sa, kind, &client_ops, c);
	if (c->conn == NULL) {
		timerq_cancel(cl.deadlines, &c->deadline);
		addr_disconnect(addr);
		free(c);
		return NULL;
	}
	c->addr = addr;
	c->rate_tokens = (double)config.max_request_burst;
	c->peer.conn = c->conn;
	c->peer.who = &c->who;
	conn_set_max_line(c->conn, &config.max_hello_line);
	TAILQ_INSERT_TAIL(&cl.all, c, all);
	return c;
}

struct client *
clients_next(const struct client *c)
{
	struct client *n = c == NULL ? TAILQ_FIRST(&cl.all) : TAILQ_NEXT(c, all);

	while (n != NULL && !client_live(n))
		n = TAILQ_NEXT(n, all);
	return n;
}

void
client_authenticate(struct client *c, struct user *u, struct device *device,
		    const struct identity *id)
{
	bool first;

	c->who.user = u;
	c->who.device = device;
	c->who.observer = id->observer;
	c->who.admin = id->admin;
	c->cred_observer = id->cred_observer;
	c->cred_admin = id->cred_admin;
	client_set_expiry(c, id->expires_ms);
	first = device->nconns++ == 0;
	TAILQ_INSERT_TAIL(&u->conns, &c->peer, by_user);
	u->nconns++;
	if (first && shared_enabled())
		shared_device_here(u, device, true);
	sessions_presence_changed(u);
	if (first)
		presence_changed(u); /* a device came */
	c->state = CLIENT_READY;
	conn_set_max_line(c->conn, &config.max_line);
	if (asprintf(&c->label, "user %s", u->name) >= 0)
		conn_set_who(c->conn, c->label);
	else
		c->label = NULL; /* logs go without the name */
	log_debug("conn %llu %s: handshake -> ready", (unsigned long long)c->conn->id,
		  c->conn->peer);
}

void
client_set_expiry(struct client *c, int64_t expires_ms)
{
	if (expires_ms == 0)
		timerq_cancel(cl.deadlines, &c->deadline);
	else if (timerq_set(cl.deadlines, &c->deadline, expires_ms) != 0)
		client_close_after_reply(c, "out of memory");
}

void
client_close_after_reply(struct client *c, const char *reason)
{
	if (c->close_after == NULL)
		c->close_after = reason;
}

void
client_note_reply(struct client *c, json_t *id)
{
	if (!c->conn->fenced || !client_live(c))
		return;
	if (c->unacked == NULL && (c->unacked = json_array()) != NULL)
		TAILQ_INSERT_TAIL(&cl.unacked, c, unacked_entry);
	if (c->unacked == NULL ||
	    json_array_append(c->unacked, id != NULL ? id : json_null()) != 0) {
		log_error("conn %llu: out of memory noting a reply",
			  (unsigned long long)c->conn->id);
		/*
		 * It could not be taken back: fail the transaction, and close
		 * rather than leave the client waiting for an answer.
		 */
		store_fail();
		conn_close(c->conn, "out of memory");
	}
}

void
client_send_json(struct client *c, const json_t *msg)
{
	size_t room = 512;

	/* Encode straight into the output buffer; a second try if it did not fit. */
	for (int attempt = 0; attempt < 2; attempt++) {
		char *buf = conn_reserve(c->conn, room);
		size_t need;

		if (buf == NULL)
			return; /* closing, or closed for want of memory */
		need = rv_msg_encode_into(msg, buf, room);
		if (need == 0)
			break;
		if (need <= room) {
			conn_queue_reserved(c->conn, need);
			return;
		}
		room = need;
	}
	log_error("conn %llu: out of memory encoding a reply", (unsigned long long)c->conn->id);
	conn_close(c->conn, "out of memory");
}

void
client_send_error(struct client *c, int code, const char *message, json_t *data)
{
	json_t *msg = rv_msg_error(NULL, code, message, data);

	stats_error(code);
	if (msg == NULL) {
		conn_close(c->conn, "out of memory");
		return;
	}
	client_send_json(c, msg);
	json_decref(msg);
}

void
clients_history_lost(uint64_t last_event)
{
	struct client *c, *next;

	/* Each may close as it is told: take the next one first. */
	for (c = TAILQ_FIRST(&cl.all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all);
		if (c->state != CLIENT_READY || !client_live(c) || c->peer.nsubs == 0)
			continue;
		client_send_error(c, RV_ERR_HISTORY_GONE,
				  "history gone: the shared store lost events this connection was "
				  "sent or was to be sent; reconnect, list the sessions again and "
				  "subscribe",
				  json_pack("{s:I}", "last_event", (json_int_t)last_event));
		conn_close_flush(c->conn, "history gone");
	}
}

void
clients_reauthorize(void)
{
	struct client *c;

	TAILQ_FOREACH (c, &cl.all, all) {
		bool observer, admin;

		if (c->state != CLIENT_READY || !client_live(c))
			continue;
		identity_roles(c->who.user->name, c->cred_observer, c->cred_admin, &observer,
			       &admin);
		if (observer != c->who.observer || admin != c->who.admin)
			log_info("%s: user %s is now%s%s%s", c->conn->peer, c->who.user->name,
				 admin ? " admin" : "", observer && !admin ? " observer" : "",
				 !observer ? " neither observer nor admin" : "");
		c->who.observer = observer;
		c->who.admin = admin;
	}
}

void
clients_shutdown(const char *reason)
{
	struct client *c, *next;
	json_t *msg = json_pack("{s:s, s:s, s:{s:s, s:I}}", "jsonrpc", "2.0", "method",
				"server.shutdown", "params", "reason", reason, "timeout_ms",
				(json_int_t)config.shutdown_timeout_ms);

	/*
	 * First answer every request already read: a connection paused by
	 * backpressure may hold complete lines it has not handled. The output
	 * they add is bounded by --max-pending, like any other.
	 */
	conns_drain_input();
	commit_pass(); /* so that server.shutdown follows committed answers */
	for (c = TAILQ_FIRST(&cl.all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all);
		if (!client_live(c))
			continue;
		if (msg != NULL)
			client_send_json(c, msg);
		/* main.c's drain timer bounds the whole; this only outlasts it. */
		conn_close_flush_within(c->conn, "daemon shutting down",
					config.shutdown_timeout_ms + FLUSH_TIMEOUT_MS);
	}
	json_decref(msg);
}

/* The admin role's methods: admin.stats, admin.connections, admin.kick. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "client.h"
#include "hub.h"
#include "log.h"
#include "rpc.h"
#include "sessions.h"
#include "shared.h"
#include "shared_nodes.h"
#include "stats.h"
#include "store.h"
#include "users.h"
#include "util.h"

/* Most connections admin.connections returns at once, and without a limit. */
#define CONNECTIONS_MAX 10000
#define CONNECTIONS_DEFAULT 1000

#define ADMIN_ONLY(c, err)                                                               \
	do {                                                                             \
		if (!(c)->who.admin)                                                     \
			return rpc_fail(err, RV_ERR_FORBIDDEN, NULL,                     \
					"forbidden: admin methods need the admin role"); \
	} while (0)

/* {state: sessions held in it}. */
static json_t *
states_object(void)
{
	json_t *o = json_object();
	size_t states[RV_STATE_COUNT];

	sessions_count_states(states);
	for (int st = 0; o != NULL && st < RV_STATE_COUNT; st++)
		json_object_set_new(o, rv_state_name((enum rv_state)st),
				    json_integer((json_int_t)states[st]));
	return o;
}

json_t *
rpc_admin_stats(struct client *c, json_t *params, struct rpc_error *err)
{
	json_t *r, *ended, *errors, *limits, *transitions;
	int64_t now = now_ms();

	ADMIN_ONLY(c, err);
	if (rpc_unpack(params, err, "{!}") != 0)
		return NULL;
	ended = json_object();
	errors = json_object();
	limits = json_object();
	transitions = json_array();
	for (int e = 0; ended != NULL && e < END_COUNT; e++)
		json_object_set_new(ended, stats_end_names[e],
				    json_integer((json_int_t)stats.ended[e]));
	for (size_t i = 0; errors != NULL && i <= STATS_ERRORS; i++) {
		char code[16];
		if (stats.errors[i] == 0)
			continue;
		if (i < STATS_ERRORS)
			snprintf(code, sizeof code, "%d", stats_error_codes[i]);
		else
			snprintf(code, sizeof code, "other");
		json_object_set_new(errors, code, json_integer((json_int_t)stats.errors[i]));
	}
	for (size_t i = 0; limits != NULL && i < STATS_LIMITS; i++)
		json_object_set_new(limits, stats_limits[i].name,
				    json_integer((json_int_t)*stats_limits[i].value));
	for (int from = 0; transitions != NULL && from < RV_STATE_COUNT; from++) {
		for (int to = 0; to < RV_STATE_COUNT; to++) {
			if (stats.transitions[from][to] == 0)
				continue;
			json_array_append_new(transitions,
					      json_pack("{s:s, s:s, s:I}", "from",
							rv_state_name((enum rv_state)from), "to",
							rv_state_name((enum rv_state)to), "count",
							(json_int_t)stats.transitions[from][to]));
		}
	}
	r = json_pack("{s:s, s:I, s:I, s:o*, s:I, s:o*, s:o*, s:I, s:I, s:I, s:{s:I, s:I, s:I}, "
		      "s:I, s:I, s:I, s:o*, s:o*, s:{s:s, s:b, s:I, s:I}, s:{s:I, s:I}, "
		      "s:{s:I, s:I, s:I, s:I}}",
		      "version", RV_VERSION, "started", (json_int_t)stats.started_ms, "uptime_ms",
		      (json_int_t)(now - stats.started_ms), "sessions", states_object(),
		      "sessions_created", (json_int_t)stats.sessions_created, "transitions",
		      transitions, "ended", ended, "connections", (json_int_t)conns_count(),
		      "connections_accepted", (json_int_t)stats.connections_accepted,
		      "subscriptions", (json_int_t)hub_subscriptions(), "events", "published",
		      (json_int_t)stats.events_published, "delivered",
		      (json_int_t)stats.events_delivered, "last", (json_int_t)hub_last_event(),
		      "context_delivered", (json_int_t)stats.contexts_relayed, "bytes_delivered",
		      (json_int_t)stats.bytes_delivered, "requests", (json_int_t)stats.requests,
		      "errors", errors, "limits", limits, "store", "store", store_describe(),
		      "durable", store_durable(), "commits", (json_int_t)stats.commit_seconds.count,
		      "commit_failures", (json_int_t)stats.store_failures, "reloads", "ok",
		      (json_int_t)stats.reloads, "failed", (json_int_t)stats.reload_failures,
		      "outcomes", "kept", (json_int_t)stats.outcomes_kept, "devices",
		      (json_int_t)stats.outcome_devices, "sent", (json_int_t)stats.outcomes_sent,
		      "dropped", (json_int_t)stats.outcomes_dropped);
	if (r != NULL && shared_enabled()) {
		/* Kept in Redis for the whole service: not this node's to count. */
		json_t *o = json_object_get(r, "outcomes");
		json_object_set_new(o, "kept", json_null());
		json_object_set_new(o, "devices", json_null());
	}
	if (r != NULL && shared_enabled()) {
		struct shared_stats ss;
		json_t *nodes = json_array();
		shared_stats(&ss);
		for (size_t i = 0; nodes != NULL && i < ss.nodes; i++)
			json_array_append_new(nodes, json_string(shared_node(i)));
		json_object_set_new(
			json_object_get(r, "store"), "shared",
			json_pack("{s:s, s:o*, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
				  "s:I}",
				  "node", shared_node_name(), "nodes", nodes, "lease", ss.lease,
				  "ready", shared_ready(), "position", (json_int_t)ss.position,
				  "proposed", (json_int_t)ss.proposed, "applied",
				  (json_int_t)ss.applied, "conflicts", (json_int_t)ss.conflicts,
				  "unavailable", (json_int_t)ss.unavailable, "messages",
				  (json_int_t)ss.messages, "gaps", (json_int_t)ss.gaps,
				  "gap_messages", (json_int_t)ss.gap_messages, "resyncs",
				  (json_int_t)ss.resyncs));
	}
	if (r == NULL)
		return rpc_fail(err, RV_ERR_INTERNAL, NULL, "internal error: out of memory");
	return r;
}

static json_t *
connection_record(const struct client *c, int64_t now)
{
	const struct conn *t = c->conn;
	json_t *r = json_pack(
		"{s:I, s:s, s:s, s:b, s:I, s:I, s:I, s:I}", "connection", (json_int_t)t->id, "peer",
		t->peer, "state", c->state == CLIENT_READY ? "ready" : "handshake", "tls", t->tls,
		"since", (json_int_t)t->since, "age_ms", (json_int_t)(now - t->since), "requests",
		(json_int_t)c->requests, "unsent_bytes", (json_int_t)conn_unsent(t));

	if (r == NULL)
		return NULL;
	json_object_set_new(r, "subscriptions", json_integer((json_int_t)c->peer.nsubs));
	if (c->who.user != NULL) {
		json_object_set_new(r, "user", json_string(c->who.user->name));
		json_object_set_new(r, "device", json_string(c->who.device->name));
		json_object_set_new(r, "observer", json_boolean(c->who.observer));
		json_object_set_new(r, "admin", json_boolean(c->who.admin));
	}
	if (c->client != NULL)
		json_object_set_new(r, "client", json_string(c->client));
	return r;
}

json_t *
rpc_admin_connections(struct client *c, json_t *params, struct rpc_error *err)
{
	json_int_t limit = CONNECTIONS_DEFAULT, after = 0;
	const char *user = NULL;
	const struct client *it;
	json_t *list, *r;
	int64_t now = now_ms();

	ADMIN_ONLY(c, err);
	if (rpc_unpack(params, err, "{s?I, s?I, s?s !}", "limit", &limit, "after", &after, "user",
		       &user) != 0)
		return NULL;
	if (limit < 1 || limit > CONNECTIONS_MAX)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS,
				json_pack("{s:i}", "max", CONNECTIONS_MAX),
				"invalid params: limit must be 1 to %d", CONNECTIONS_MAX);
	list = json_array();
	r = json_object();
	if (list == NULL || r == NULL) {
		json_decref(list);
		json_decref(r);
		return rpc_fail(err, RV_ERR_INTERNAL, NULL, "internal error: out of memory");
	}
	for (it = clients_next(NULL); it != NULL; it = clients_next(it)) {
		if ((json_int_t)it->conn->id <= after)
			continue;
		if (user != NULL && (it->who.user == NULL || strcmp(it->who.user->name, user) != 0))
			continue;
		if ((json_int_t)json_array_size(list) == limit) {
			json_object_set_new(r, "next",
					    json_integer(json_integer_value(json_object_get(
						    json_array_get(list, json_array_size(list) - 1),
						    "connection"))));
			break;
		}
		if (json_array_append_new(list, connection_record(it, now)) != 0) {
			json_decref(list);
			json_decref(r);
			return rpc_fail(err, RV_ERR_INTERNAL, NULL,
					"internal error: out of memory");
		}
	}
	json_object_set_new(r, "connections", list);
	return r;
}

json_t *
rpc_admin_kick(struct client *c, json_t *params, struct rpc_error *err)
{
	json_int_t id = -1;
	const char *user = NULL;
	struct client *it, *next;
	size_t n = 0;

	ADMIN_ONLY(c, err);
	if (rpc_unpack(params, err, "{s?I, s?s !}", "connection", &id, "user", &user) != 0)
		return NULL;
	if ((id < 0) == (user == NULL))
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: give either connection or user");
	for (it = clients_next(NULL); it != NULL; it = next) {
		next = clients_next(it);
		if (id >= 0 ? (json_int_t)it->conn->id != id
			    : it->who.user == NULL || strcmp(it->who.user->name, user) != 0)
			continue;
		log_info("conn %llu %s: kicked by admin %s", (unsigned long long)it->conn->id,
			 it->conn->peer, c->who.user->name);
		n++;
		if (it == c) {
			/* Kicking oneself: after this reply. */
			client_close_after_reply(c, "kicked by an admin");
			continue;
		}
		client_send_error(it, RV_ERR_FORBIDDEN, "disconnected by an admin", NULL);
		conn_close_flush(it->conn, "kicked by an admin");
	}
	return json_pack("{s:I}", "kicked", (json_int_t)n);
}

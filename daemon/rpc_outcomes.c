/*
 * Outcomes on the wire: those a device gets after its hello, session.ack
 * and session.outcomes, from outcomes.c's table or, when sessions are
 * shared, from Redis (shared_outcomes.h).
 */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "conn.h"
#include "outcomes.h"
#include "rpc.h"
#include "shared_outcomes.h"
#include "stats.h"
#include "users.h"

static const char outcome_head[] =
	"{\"jsonrpc\":\"2.0\",\"method\":\"session.outcome\",\"params\":";

/* Keep o's outcomes as session.outcome lines, sent after the hello's reply. 0, or -1. */
static int
keep_lines(struct client *c, const struct shared_outcomes *o)
{
	size_t len = 0, at = 0;
	char *lines;

	for (size_t i = 0; i < o->n; i++)
		len += sizeof outcome_head - 1 + o->lens[i] + 2;
	free(c->outcomes_lines);
	c->outcomes_lines = NULL;
	c->outcomes_len = c->outcomes_n = 0;
	if (o->n == 0)
		return 0;
	if ((lines = malloc(len)) == NULL)
		return -1;
	for (size_t i = 0; i < o->n; i++) {
		memcpy(lines + at, outcome_head, sizeof outcome_head - 1);
		at += sizeof outcome_head - 1;
		memcpy(lines + at, o->params[i], o->lens[i]);
		at += o->lens[i];
		memcpy(lines + at, "}\n", 2);
		at += 2;
	}
	c->outcomes_lines = lines;
	c->outcomes_len = len;
	c->outcomes_n = o->n;
	return 0;
}

/* Redis read the device's outcomes for its hello (o NULL: it did not answer). */
static void
on_hello_read(void *arg, const struct shared_outcomes *o)
{
	struct rpc_req *r = arg;
	struct client *c = rpc_req_client(r);
	struct rpc_error err = {0};
	json_t *result = NULL;

	if (c != NULL && o == NULL) {
		/* Answered 5003: a retried hello asks Redis again. */
		c->outcomes_due = false;
		result = rpc_unavailable(&err);
	} else if (c != NULL && keep_lines(c, o) == 0) {
		c->outcomes_known = true;
		result = rpc_hello_result(c, o->dropped);
	}
	rpc_complete(r, result, &err);
}

json_t *
rpc_hello_outcomes(struct client *c, struct rpc_error *err)
{
	const char *user = c->who.user->name, *device = c->who.device->name;
	struct rpc_req *r;

	c->who.device->named = true;
	c->outcomes_due = true;
	if (!shared_outcomes_on()) {
		c->outcomes_known = true;
		return rpc_hello_result(c, outcomes_hello(user, device, now_ms()));
	}
	if ((r = rpc_defer(err)) == NULL)
		return NULL;
	shared_outcomes_read(user, device, true, on_hello_read, r);
	return rpc_later(err);
}

void
rpc_send_outcomes(struct client *c)
{
	if (!c->outcomes_due || !client_live(c))
		return;
	c->outcomes_due = false;
	if (c->outcomes_lines != NULL) {
		conn_send(c->conn, c->outcomes_lines, c->outcomes_len);
		stats.outcomes_sent += c->outcomes_n;
		free(c->outcomes_lines);
		c->outcomes_lines = NULL;
		c->outcomes_len = c->outcomes_n = 0;
	} else if (!shared_outcomes_on()) {
		outcomes_send(c->conn, c->who.user->name, c->who.device->name);
	}
}

/* Redis forgot the acknowledged outcomes (n of them; -1: it did not answer). */
static void
on_acked(void *arg, long long n)
{
	struct rpc_req *r = arg;
	struct rpc_error err = {0};

	rpc_complete(r, n < 0 ? rpc_unavailable(&err) : json_pack("{s:I}", "acked", (json_int_t)n),
		     &err);
}

json_t *
rpc_session_ack(struct client *c, json_t *params, struct rpc_error *err)
{
	uint8_t(*sids)[SESSION_ID_BYTES] = NULL;
	json_t *sessions, *v;
	struct rpc_req *r;
	size_t i;

	if (rpc_unpack(params, err, "{s:o !}", "sessions", &sessions) != 0)
		return NULL;
	if (!json_is_array(sessions))
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: sessions must be an array of session ids");
	if (shared_outcomes_on() && json_array_size(sessions) > 0 &&
	    (sids = calloc(json_array_size(sessions), sizeof *sids)) == NULL)
		return NULL;
	json_array_foreach (sessions, i, v) {
		uint8_t sid[SESSION_ID_BYTES];
		if (!json_is_string(v) || !session_id_parse(json_string_value(v), sid)) {
			free(sids);
			return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
					"invalid params: sessions[%zu] is not a session id", i);
		}
		if (sids != NULL)
			memcpy(sids[i], sid, SESSION_ID_BYTES);
	}
	if (!shared_outcomes_on())
		return json_pack(
			"{s:I}", "acked",
			(json_int_t)outcomes_ack(c->who.user->name, c->who.device->name, sessions));
	if ((r = rpc_defer(err)) == NULL) {
		free(sids);
		return NULL;
	}
	shared_outcomes_ack(c->who.user->name, c->who.device->name,
			    (const uint8_t(*)[SESSION_ID_BYTES])sids, json_array_size(sessions),
			    on_acked, r);
	free(sids);
	return rpc_later(err);
}

/* Redis read the device's outcomes for session.outcomes (o NULL: it did not answer). */
static void
on_listed(void *arg, const struct shared_outcomes *o)
{
	struct rpc_req *r = arg;
	struct rpc_error err = {0};
	json_t *list = o != NULL ? json_array() : NULL;

	for (size_t i = 0; list != NULL && i < o->n; i++) {
		if (json_array_append_new(list, json_loadb(o->params[i], o->lens[i], 0, NULL)) !=
		    0) {
			json_decref(list);
			list = NULL;
		}
	}
	rpc_complete(r,
		     o == NULL      ? rpc_unavailable(&err)
		     : list != NULL ? json_pack("{s:o}", "outcomes", list)
				    : NULL,
		     &err);
}

json_t *
rpc_session_outcomes(struct client *c, json_t *params, struct rpc_error *err)
{
	struct rpc_req *r;
	json_t *list;

	if (rpc_unpack(params, err, "{!}") != 0)
		return NULL;
	if (shared_outcomes_on()) {
		if ((r = rpc_defer(err)) == NULL)
			return NULL;
		shared_outcomes_read(c->who.user->name, c->who.device->name, false, on_listed, r);
		return rpc_later(err);
	}
	list = outcomes_list(c->who.user->name, c->who.device->name);
	return list != NULL ? json_pack("{s:o}", "outcomes", list) : NULL;
}

/* session.* methods: parameters, permissions, and error replies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "config.h"
#include "client.h"
#include "hub.h"
#include "log.h"
#include "rpc.h"
#include "sessions.h"
#include "shared.h"
#include "shared_nodes.h"
#include "stats.h"
#include "users.h"

#define REASON_MAX 1024
#define LIST_DEFAULT 100
#define LIST_MAX 1000

/*
 * A session id as the daemon writes it (lower-case hex) into buf, whatever
 * case the caller used; what is not an id at all comes back as given.
 */
static const char *
sid_canonical(const char *given, char buf[SESSION_ID_HEX + 1])
{
	uint8_t sid[SESSION_ID_BYTES];

	if (!session_id_parse(given, sid))
		return given;
	session_id_format(sid, buf);
	return buf;
}

struct session *
rpc_session_find(struct client *c, const char *sid_hex, struct rpc_error *err)
{
	uint8_t sid[SESSION_ID_BYTES];
	char canon[SESSION_ID_HEX + 1];
	struct session *s = session_id_parse(sid_hex, sid) ? session_find(sid) : NULL;
	struct authz_parties parties;
	int rc = RV_ERR_NO_SESSION;

	if (s != NULL) {
		parties = session_parties(s);
		rc = authz_read(&c->who, &parties);
	}

	sid_hex = sid_canonical(sid_hex, canon);
	if (rc == RV_ERR_NO_SESSION)
		rpc_fail(err, rc, json_pack("{s:s}", "session", sid_hex), "no such session");
	else if (rc != 0)
		rpc_fail(err, rc, json_pack("{s:s}", "session", sid_hex),
			 "forbidden: not a party to this session");
	return rc == 0 ? s : NULL;
}

static const char *
role_name(enum rv_role r)
{
	switch (r) {
	case RV_ROLE_INVITER: return "inviter";
	case RV_ROLE_INVITEE: return "invitee";
	case RV_ROLE_DAEMON: return "daemon";
	default: return "none";
	}
}

/* A change sent to the shared store (shared.h): answered once Redis took it. */
struct shared_call {
	struct rpc_req *req;
	uint8_t sid[SESSION_ID_BYTES];
	bool create;                  /* session.create: nothing to decide again */
	enum rv_action a;             /* else the action, decided again after a conflict */
	struct session_act_args args; /* reason (owned) and data (a reference) */
	bool glare;                   /* the change ends the session: winner came first */
	uint8_t winner[SESSION_ID_BYTES];
	int tries;
	char sid_hex[SESSION_ID_HEX + 1]; /* as the caller gave it, while the node catches up */
	bool pending;                     /* proposed again (from on_shared_done()) */
	struct session_change ch;         /* what was decided, for the counters once applied */
	char *kept; /* a retry's key held this: answered once the node caught up */
	size_t kept_len;
};

/* How many times a change is decided again when other changes keep coming first. */
#define SHARED_TRIES 8

static void
shared_call_free(struct shared_call *call)
{
	free((char *)call->args.reason);
	json_decref(call->args.data);
	free(call->kept);
	free(call);
}

static void on_shared_done(void *arg, enum shared_result r, const char *value, size_t len);
static json_t *limit_reply(const char *limit, struct rpc_error *err);

/*
 * Send a decided change (or creation: ch NULL, rec and line already
 * written) to the shared store. From a handler (call NULL) the request is
 * deferred; from on_shared_done() it stays so.
 */
static json_t *
shared_send(const struct session *s, const uint8_t *sid, const char *inviter,
	    const struct session_change *ch, struct shared_call *call, struct rpc_error *err,
	    struct jsonw *rec, struct jsonw *line, size_t at)
{
	bool event = ch == NULL || ch->outcome == RV_CHANGED;
	struct rpc_keybuf kb;
	struct shared_key key;
	struct jsonw outcome;
	struct shared_change sc = {
		.sid = sid,
		.version = s != NULL ? s->version : 0,
		.inviter = inviter,
		.rec = rec,
		.line = event ? line : NULL,
		.final = ch != NULL && rv_state_is_final(ch->m.state),
		.ended = ch != NULL ? ch->updated : 0,
		.invitee = ch != NULL && session_change_invited(ch) ? s->invitee->name : NULL,
	};

	jsonw_init(&outcome);
	if (ch != NULL &&
	    session_change_encode(s, ch, rec, line, &at, &outcome, &sc.outcome_at) != 0) {
		jsonw_free(&outcome);
		return NULL; /* -32603 */
	}
	sc.at = at;
	sc.outcome = outcome.len > 0 ? &outcome : NULL;
	if (call->req == NULL && (call->req = rpc_defer(err)) == NULL) {
		jsonw_free(&outcome);
		return NULL;
	}
	memcpy(call->sid, sid, SESSION_ID_BYTES);
	call->pending = true;
	if (ch != NULL) {
		/* For the counters: its outcome, states, action and the daemon's reason. */
		call->ch = *ch;
		if (call->ch.daemon_reason != NULL && call->args.reason != NULL)
			call->ch.daemon_reason =
				call->args.reason; /* the request's is gone by then */
	}
	if (rpc_req_key(call->req, sid, &kb)) {
		key = (struct shared_key){kb.name, kb.pending, kb.name_len, kb.pending_len};
		sc.key = &key;
	}
	shared_propose(&sc, on_shared_done, call);
	jsonw_free(&outcome);
	return rpc_later(err);
}

/* A new shared_call for an action (args copied), or NULL when memory ran out. */
static struct shared_call *
shared_call_new(enum rv_action a, const struct session_act_args *args)
{
	struct shared_call *call = calloc(1, sizeof *call);

	if (call == NULL)
		return NULL;
	call->a = a;
	if (args != NULL) {
		call->args = *args;
		call->args.data = args->data != NULL ? json_incref(args->data) : NULL;
		call->args.reason = NULL;
		if (args->reason != NULL && (call->args.reason = strdup(args->reason)) == NULL) {
			shared_call_free(call);
			return NULL;
		}
	}
	return call;
}

/* The reply to an action the state machine answered (outcome o). */
static json_t *
act_reply(struct client *c, const struct session *s, enum rv_outcome o, enum rv_action a,
	  enum rv_role role, enum rv_state before, struct rpc_error *err)
{
	char sid_hex[SESSION_ID_HEX + 1];

	session_id_format(s->id, sid_hex);
	switch (o) {
	case RV_CHANGED:
	case RV_RECORDED:
	case RV_REPEATED: session_record_write(&err->raw, s, c->who.user); return rpc_raw(err);
	case RV_FORBIDDEN:
		if (role == RV_ROLE_NONE)
			return rpc_fail(err, RV_ERR_FORBIDDEN,
					json_pack("{s:s, s:s, s:s}", "session", sid_hex, "action",
						  rv_action_name(a), "role", "none"),
					"forbidden: only the parties may %s", rv_action_name(a));
		return rpc_fail(err, RV_ERR_FORBIDDEN,
				json_pack("{s:s, s:s, s:s}", "session", sid_hex, "action",
					  rv_action_name(a), "role", role_name(role)),
				"forbidden: the %s may not %s", role_name(role), rv_action_name(a));
	case RV_INVALID: break;
	}
	return rpc_fail(err, RV_ERR_INVALID_TRANSITION,
			json_pack("{s:s, s:s, s:s}", "session", sid_hex, "state",
				  rv_state_name(before), "action", rv_action_name(a)),
			"invalid transition: cannot %s in %s", rv_action_name(a),
			rv_state_name(before));
}

/* The answer to an invitation that crossed an earlier one (s lost to won). */
static json_t *
glare_reply(const struct session *s, const uint8_t won[SESSION_ID_BYTES], struct rpc_error *err)
{
	char won_hex[SESSION_ID_HEX + 1];

	session_id_format(won, won_hex);
	return rpc_fail(err, RV_ERR_CROSSING, json_pack("{s:s}", "session", won_hex),
			"crossing invitation: %s invited you first (the session in data stands; "
			"yours ended)",
			s->invitee->name);
}

/*
 * Apply an action for the caller and turn the outcome into a reply. With a
 * shared store the change is decided here and sent (call: the request, when
 * decided again after a conflict).
 */
static json_t *
session_run(struct client *c, struct session *s, enum rv_action a, struct session_act_args *args,
	    struct rpc_error *err, struct shared_call *call)
{
	char sid_hex[SESSION_ID_HEX + 1];
	const char *reason = NULL;
	struct authz_parties parties;
	enum rv_role role;
	enum rv_state before;
	struct session_change ch;
	struct jsonw rec, line;
	bool own = call == NULL;
	json_t *result = NULL;

	session_id_format(s->id, sid_hex);
	parties = session_parties(s);
	role = authz_role(&c->who, &parties, a, &reason);
	if (reason != NULL && args != NULL && own)
		args->reason = reason; /* the handler's args: borrowed for the call */
	else if (reason != NULL && args != NULL && args->reason == NULL)
		args->reason =
			strdup(reason); /* a shared_call's own copy (a retry has it already) */
	/* A party's terminate carries a code (0 by default); an admin's only one it gave. */
	if (a == RV_ACT_TERMINATE && role != RV_ROLE_DAEMON && args != NULL)
		args->has_code = true;
	before = s->m.state;
	if (a == RV_ACT_INVITE && role == RV_ROLE_INVITER && before == RSS_READY) {
		/* Crossing invitations (glare): the one invited first wins. */
		struct session *won = session_crossing(s);
		if (won != NULL && !shared_enabled()) {
			session_lose_glare(s, won);
			return glare_reply(s, won->id, err);
		}
		if (won != NULL && session_decide_glare(s, won, &ch) == RV_CHANGED) {
			if (call == NULL && (call = shared_call_new(a, args)) == NULL)
				return NULL;
			call->glare = true;
			memcpy(call->winner, won->id, SESSION_ID_BYTES);
			goto send;
		}
	}
	if (session_answered_elsewhere(s, a, role, c->who.device))
		return rpc_fail(err, RV_ERR_INVALID_TRANSITION,
				json_pack("{s:s, s:s, s:s, s:s, s:s}", "session", sid_hex, "state",
					  rv_state_name(before), "action", rv_action_name(a),
					  "answered_by", s->answered_by->name, "reason",
					  "answered_elsewhere"),
				"invalid transition: answered on another device (%s)",
				s->answered_by->name);
	if (!shared_enabled())
		return act_reply(c, s, session_act(s, a, role, c->who.user, c->who.device, args), a,
				 role, before, err);
	if (session_decide(s, a, role, c->who.user, c->who.device, args, &ch) != RV_CHANGED &&
	    ch.outcome != RV_RECORDED)
		return act_reply(c, s, ch.outcome, a, role, before, err);
	if (call == NULL && (call = shared_call_new(a, args)) == NULL)
		return NULL;
	call->glare = false;
send:
	jsonw_init(&rec);
	jsonw_init(&line);
	result = shared_send(s, s->id, s->inviter->name, &ch, call, err, &rec, &line, 0);
	jsonw_free(&rec);
	jsonw_free(&line);
	if (result == NULL && own)
		shared_call_free(call);
	return result;
}

/* Redis answered a change sent by shared_send(): answer its request, or decide again. */
static void
on_shared_done(void *arg, enum shared_result r, const char *value, size_t len)
{
	struct shared_call *call = arg;
	struct client *c = rpc_req_client(call->req);
	struct rpc_error err = {0};
	json_t *result = NULL;
	struct session *s = session_find(call->sid);

	call->pending = false;
	if (r == SHARED_KEPT && c != NULL && (call->kept = malloc(len + 1)) != NULL) {
		/*
		 * A retry, racing the first call (on another node, perhaps): its
		 * change is in Redis; answer once this node holds it too.
		 */
		memcpy(call->kept, value, len + 1);
		call->kept_len = len;
		call->pending = true;
		shared_sync(NULL, 0, on_shared_done, call);
		return;
	}
	if (r == SHARED_APPLIED && call->kept == NULL) {
		/* Counted here, the node that made the change. */
		if (call->create) {
			stats.sessions_created++;
			stats.transitions[RSS_UNKNOWN][RSS_READY]++;
		} else {
			session_count_change(&call->ch);
		}
	}
	if (c == NULL) {
		/* Nobody to answer. */
	} else if (call->kept != NULL) {
		result = r == SHARED_APPLIED
				 ? rpc_kept_answer(call->req, c, call->kept, call->kept_len, &err)
				 : rpc_unavailable(&err);
	} else if (r == SHARED_KEPT) {
		rpc_fail(&err, RV_ERR_INTERNAL, NULL, "internal error: out of memory");
	} else if (r == SHARED_UNAVAILABLE) {
		result = rpc_unavailable(&err);
	} else if (r == SHARED_LIMIT) {
		result = limit_reply("max_sessions_per_user", &err);
	} else if (s == NULL) {
		rpc_fail(&err, RV_ERR_INTERNAL, NULL, "internal error: the session is gone");
	} else if (r == SHARED_APPLIED && call->glare) {
		result = glare_reply(s, call->winner, &err);
	} else if (r == SHARED_APPLIED) {
		session_record_write(&err.raw, s, c->who.user);
		result = rpc_raw(&err);
	} else if (call->create || ++call->tries >= SHARED_TRIES) {
		/* A conflict, again and again: other changes kept coming first. */
		result = rpc_unavailable(&err);
	} else {
		/* A conflict: decide again on what the table holds now. */
		result = session_run(c, s, call->a, &call->args, &err, call);
		if (call->pending)
			return; /* proposed again */
	}
	rpc_complete(call->req, result, &err);
	shared_call_free(call);
}

/*
 * Whether, on this node's copy, action a by c changes s with no other
 * answer to give first (no glare, not answered elsewhere): then it can go
 * to Redis at once, whose version check makes a stale copy harmless.
 */
static bool
shared_quick(struct client *c, const struct session *s, enum rv_action a,
	     const struct session_act_args *args)
{
	struct authz_parties parties = session_parties(s);
	struct session_act_args copy = args != NULL ? *args : (struct session_act_args){0};
	const char *reason = NULL;
	enum rv_role role = authz_role(&c->who, &parties, a, &reason);
	struct session_change ch;

	if (authz_read(&c->who, &parties) != 0 ||
	    (a == RV_ACT_INVITE && role == RV_ROLE_INVITER && s->m.state == RSS_READY &&
	     session_crossing(s) != NULL) ||
	    session_answered_elsewhere(s, a, role, c->who.device))
		return false;
	if (reason != NULL)
		copy.reason = reason;
	session_decide(s, a, role, c->who.user, c->who.device, &copy, &ch);
	return ch.outcome == RV_CHANGED || ch.outcome == RV_RECORDED;
}

/* The node caught up with Redis: decide on its copy now, and answer (or send the change). */
static void
on_caught_up(void *arg, enum shared_result r, const char *value, size_t len)
{
	struct shared_call *call = arg;
	struct client *c = rpc_req_client(call->req);
	struct rpc_error err = {0};
	json_t *result = NULL;
	struct session *s;

	(void)value;
	(void)len;
	call->pending = false;
	if (c != NULL && r != SHARED_APPLIED) {
		result = rpc_unavailable(&err);
	} else if (c != NULL && (s = rpc_session_find(c, call->sid_hex, &err)) != NULL) {
		result = session_run(c, s, call->a, &call->args, &err, call);
		if (call->pending)
			return; /* sent to Redis: on_shared_done() answers */
	}
	rpc_complete(call->req, result, &err);
	shared_call_free(call);
}

/* Apply an action for the caller and turn the outcome into a reply. */
static json_t *
session_do(struct client *c, const char *sid_hex, enum rv_action a, struct session_act_args *args,
	   struct rpc_error *err)
{
	struct session *s;
	struct shared_call *call;
	uint8_t sid[SESSION_ID_BYTES];

	if (!shared_enabled()) {
		s = rpc_session_find(c, sid_hex, err);
		return s != NULL ? session_run(c, s, a, args, err, NULL) : NULL;
	}
	/* A change, as far as this node knows: to Redis at once. */
	s = session_id_parse(sid_hex, sid) ? session_find(sid) : NULL;
	if (s != NULL && shared_quick(c, s, a, args))
		return session_run(c, s, a, args, err, NULL);
	/* Any other answer only once the node holds what Redis had when the request came. */
	if (strlen(sid_hex) > SESSION_ID_HEX) {
		rpc_session_find(c, sid_hex, err); /* not a session id at all: 4004 */
		return NULL;
	}
	call = shared_call_new(a, args);
	if (call == NULL || (call->req = rpc_defer(err)) == NULL) {
		if (call != NULL)
			shared_call_free(call);
		return NULL;
	}
	snprintf(call->sid_hex, sizeof call->sid_hex, "%s", sid_hex);
	call->pending = true;
	shared_sync(NULL, 0, on_caught_up, call);
	return rpc_later(err);
}

static json_t *shared_create(struct client *c, struct user *invitee, const char *topic,
			     int64_t ttl_ms, json_t *data, struct rpc_error *err);
json_t *
rpc_session_create(struct client *c, json_t *params, struct rpc_error *err)
{
	const char *invitee_name, *topic = NULL;
	double ttl = -1;
	json_t *data = NULL, *ttl_json;
	const char *limit = NULL;
	int64_t ttl_ms = config.invite_ttl_ms;
	struct user *invitee;
	struct session *s;
	int rc;

	if (rpc_unpack(params, err, "{s:s, s?F, s?o, s?s !}", "invitee", &invitee_name, "ttl", &ttl,
		       "data", &data, "topic", &topic) != 0 ||
	    rpc_check_data(data, err) != 0)
		return NULL;
	if (topic != NULL && strlen(topic) > TOPIC_MAX)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: topic is longer than %d bytes", TOPIC_MAX);
	if (!user_name_valid(invitee_name))
		return rpc_fail(
			err, RV_ERR_INVALID_PARAMS, NULL,
			"invalid params: invitee must be 1 to 256 bytes, no control characters");
	if (strcmp(invitee_name, c->who.user->name) == 0)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: a user cannot invite itself");
	ttl_json = json_object_get(params, "ttl");
	if (ttl_json != NULL) {
		if (!isfinite(ttl) || ttl <= 0)
			return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
					"invalid params: ttl must be a number of seconds > 0");
		ttl_ms = ttl * 1000.0 >= (double)config.max_ttl_ms ? config.max_ttl_ms
								   : (int64_t)ceil(ttl * 1000.0);
	}
	invitee = user_get(invitee_name);
	if (invitee == NULL)
		return NULL;
	if (shared_enabled())
		return shared_create(c, invitee, topic, ttl_ms, data, err);
	rc = session_create(c->who.user, c->who.device, invitee, topic, ttl_ms, data, &s, &limit);
	user_unref(invitee);
	if (rc == RV_ERR_LIMIT)
		return limit_reply(limit, err);
	if (rc != 0)
		return NULL;
	session_record_write(&err->raw, s, c->who.user);
	return rpc_raw(err);
}

/* session.create with a shared store: decided here, created once Redis took it. */
static json_t *
shared_create(struct client *c, struct user *invitee, const char *topic, int64_t ttl_ms,
	      json_t *data, struct rpc_error *err)
{
	struct shared_call *call = shared_call_new(RV_ACT_INVITE, NULL);
	struct jsonw rec, line;
	uint8_t sid[SESSION_ID_BYTES];
	const char *limit = NULL;
	size_t at = 0;
	json_t *result = NULL;
	int rc;

	if (call == NULL) {
		user_unref(invitee);
		return NULL;
	}
	call->create = true;
	jsonw_init(&rec);
	jsonw_init(&line);
	rc = session_create_encode(c->who.user, c->who.device, invitee, topic, ttl_ms, data, &rec,
				   &line, &at, sid, &limit);
	user_unref(invitee);
	if (rc == RV_ERR_LIMIT)
		result = limit_reply(limit, err);
	else if (rc == 0)
		result =
			shared_send(NULL, sid, c->who.user->name, NULL, call, err, &rec, &line, at);
	jsonw_free(&rec);
	jsonw_free(&line);
	if (call->req == NULL)
		shared_call_free(call);
	return result;
}

/* The answer to a session.create over a limit. */
static json_t *
limit_reply(const char *limit, struct rpc_error *err)
{
	int rc = RV_ERR_LIMIT;

	if (strcmp(limit, "max_user_bytes") == 0) {
		stats.limit_user_bytes++;
		return rpc_fail(
			err, rc,
			json_pack("{s:I}", "max_user_bytes", (json_int_t)config.max_user_bytes),
			"limit exceeded: this user's sessions, live and ended ones not yet "
			"freed, hold more than %zu bytes",
			config.max_user_bytes);
	}
	stats.limit_sessions_per_user++;
	return rpc_fail(err, rc,
			json_pack("{s:I}", "max_sessions_per_user",
				  (json_int_t)config.max_sessions_per_user),
			"limit exceeded: too many live sessions for this user");
}

/* Methods that take {session} alone. */
static json_t *
session_simple(struct client *c, json_t *params, enum rv_action a, struct rpc_error *err)
{
	const char *sid;

	if (rpc_unpack(params, err, "{s:s !}", "session", &sid) != 0)
		return NULL;
	return session_do(c, sid, a, NULL, err);
}

/* Methods that take {session, reason?}. */
static json_t *
session_with_reason(struct client *c, json_t *params, enum rv_action a, struct rpc_error *err)
{
	struct session_act_args args = {0};
	const char *sid;

	if (rpc_unpack(params, err, "{s:s, s?s !}", "session", &sid, "reason", &args.reason) != 0)
		return NULL;
	if (args.reason != NULL && strlen(args.reason) > REASON_MAX)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: reason is longer than %d bytes", REASON_MAX);
	return session_do(c, sid, a, &args, err);
}

json_t *
rpc_session_invite(struct client *c, json_t *params, struct rpc_error *err)
{
	return session_simple(c, params, RV_ACT_INVITE, err);
}

json_t *
rpc_session_accept(struct client *c, json_t *params, struct rpc_error *err)
{
	return session_simple(c, params, RV_ACT_ACCEPT, err);
}

json_t *
rpc_session_connect(struct client *c, json_t *params, struct rpc_error *err)
{
	return session_simple(c, params, RV_ACT_CONNECT, err);
}

json_t *
rpc_session_decline(struct client *c, json_t *params, struct rpc_error *err)
{
	return session_with_reason(c, params, RV_ACT_DECLINE, err);
}

json_t *
rpc_session_cancel(struct client *c, json_t *params, struct rpc_error *err)
{
	return session_with_reason(c, params, RV_ACT_CANCEL, err);
}

json_t *
rpc_session_terminate(struct client *c, json_t *params, struct rpc_error *err)
{
	struct session_act_args args = {0};
	const char *sid;

	if (rpc_unpack(params, err, "{s:s, s?I, s?o !}", "session", &sid, "code", &args.code,
		       "data", &args.data) != 0 ||
	    rpc_check_data(args.data, err) != 0)
		return NULL;
	args.has_code = json_object_get(params, "code") != NULL;
	return session_do(c, sid, RV_ACT_TERMINATE, &args, err);
}

/* Whether u has a live connection from any device. */
static bool
user_live(const struct user *u)
{
	const struct hub_peer *p;

	TAILQ_FOREACH (p, &u->conns, by_user) {
		if (conn_live(p->conn))
			return true;
	}
	return false;
}

json_t *
rpc_session_send(struct client *c, json_t *params, struct rpc_error *err)
{
	char canon[SESSION_ID_HEX + 1];
	const char *sid;
	json_t *data;
	struct session *s;
	enum rv_role role;
	struct user *peer;
	size_t n;

	if (rpc_unpack(params, err, "{s:s, s:o !}", "session", &sid, "data", &data) != 0 ||
	    rpc_check_data(data, err) != 0)
		return NULL;
	s = rpc_session_find(c, sid, err);
	if (s == NULL)
		return NULL;
	session_id_format(s->id, canon);
	sid = canon;
	role = session_role(s, c->who.user);
	if (role == RV_ROLE_NONE)
		return rpc_fail(err, RV_ERR_FORBIDDEN, json_pack("{s:s}", "session", sid),
				"forbidden: only the parties may send context data");
	if (s->m.state != RSS_ACCEPTED && s->m.state != RSS_CONNECTED)
		return rpc_fail(err, RV_ERR_INVALID_TRANSITION,
				json_pack("{s:s, s:s, s:s}", "session", sid, "state",
					  rv_state_name(s->m.state), "action", "send"),
				"invalid transition: cannot send in %s", rv_state_name(s->m.state));
	peer = role == RV_ROLE_INVITER ? s->invitee : s->inviter;
	/* Only to the device that takes part: the answering one, or the creating one. */
	if (hub_send_context(s->id, c->who.user->name, peer, session_engaged_device(s, peer), data,
			     &n) != 0)
		return NULL;    /* -32603 */
	if (shared_enabled()) { /* and to its connections on other nodes */
		size_t remote;
		if (shared_send_context(s->id, c->who.user->name, peer,
					session_engaged_device(s, peer), data, &remote) != 0)
			return NULL;
		n += remote;
	}
	if (n == 0 && (user_live(peer) || peer->remote > 0) &&
	    session_engaged_device(s, peer) != NULL)
		return rpc_fail(err, RV_ERR_PEER_UNAVAILABLE,
				json_pack("{s:s, s:s, s:s}", "session", sid, "peer", peer->name,
					  "device", session_engaged_device(s, peer)->name),
				"peer unavailable: %s has no live connection from the device "
				"that answered or created the session",
				peer->name);
	if (n == 0)
		return rpc_fail(err, RV_ERR_PEER_UNAVAILABLE,
				json_pack("{s:s, s:s}", "session", sid, "peer", peer->name),
				"peer unavailable: %s has no live connection", peer->name);
	return json_pack("{s:I}", "delivered", (json_int_t)n);
}

json_t *
rpc_session_get(struct client *c, json_t *params, struct rpc_error *err)
{
	const char *sid;
	struct session *s;

	if (rpc_unpack(params, err, "{s:s !}", "session", &sid) != 0)
		return NULL;
	s = rpc_session_find(c, sid, err);
	if (s == NULL)
		return NULL;
	session_record_write(&err->raw, s, c->who.user);
	return rpc_raw(err);
}

json_t *
rpc_session_list(struct client *c, json_t *params, struct rpc_error *err)
{
	const char *state_name = NULL, *after_hex = NULL;
	char canon[SESSION_ID_HEX + 1];
	json_int_t limit = LIST_DEFAULT;
	enum rv_state state = RSS_UNKNOWN;
	const struct session *after = NULL;
	int all = 0;

	if (rpc_unpack(params, err, "{s?s, s?I, s?s, s?b !}", "state", &state_name, "limit", &limit,
		       "after", &after_hex, "all", &all) != 0)
		return NULL;
	if (all && !authz_list_all(&c->who))
		return rpc_fail(err, RV_ERR_FORBIDDEN, json_pack("{s:s}", "role", "admin"),
				"forbidden: listing every session needs the admin role");
	if (state_name != NULL && rv_state_from_name(state_name, &state) != 0)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, json_pack("{s:s}", "state", state_name),
				"invalid params: unknown state %s", state_name);
	if (limit < 1 || limit > LIST_MAX)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: limit must be from 1 to %d", LIST_MAX);
	if (after_hex != NULL) {
		uint8_t sid[SESSION_ID_BYTES];
		struct authz_parties parties;

		after = session_id_parse(after_hex, sid) ? session_find(sid) : NULL;
		if (after != NULL)
			parties = session_parties(after);
		if (after == NULL || (!all && authz_read(&c->who, &parties) != 0) ||
		    (all && authz_hidden(&c->who, &parties)))
			return rpc_fail(
				err, RV_ERR_NO_SESSION,
				json_pack("{s:s}", "after", sid_canonical(after_hex, canon)),
				"no such session: the 'after' cursor names no session "
				"of yours; list again from the start");
	}
	sessions_list_write(&err->raw, &c->who, all, state_name != NULL, state, (size_t)limit,
			    after);
	return rpc_raw(err);
}

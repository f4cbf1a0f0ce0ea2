/* Connection-level methods: hello, ping, subscribe, unsubscribe. */
#include <stdio.h>
#include <string.h>

#include "addrs.h"
#include "authz.h"
#include "config.h"
#include "client.h"
#include "hub.h"
#include "identity.h"
#include "log.h"
#include "presence.h"
#include "rpc.h"
#include "sessions.h"
#include "shared.h"
#include "stats.h"
#include "users.h"
#include "util.h"

/* The longest client string hello takes (it goes into logs and admin.connections). */
#define CLIENT_MAX 256

json_t *
rpc_hello_result(const struct client *c, int64_t dropped)
{
	json_t *r = json_pack("{s:s, s:s, s:b, s:b, s:s, s:s, s:I, s:I}", "user", c->who.user->name,
			      "device", c->who.device->name, "observer", c->who.observer, "admin",
			      c->who.admin, "server", "rendezvousd", "version", RV_VERSION,
			      "connection", (json_int_t)c->conn->id, "last_event",
			      (json_int_t)hub_last_event());

	if (r != NULL && dropped >= 0)
		json_object_set_new(r, "outcomes_dropped", json_integer(dropped));
	return r;
}

/* A failed hello: counted against the address; the client learns only 4001. */
static json_t *
hello_failed(struct client *c, int rc, const char *why, const char *detail, struct rpc_error *err)
{
	if (rc == RV_ERR_UNAUTHENTICATED) {
		stats.auth_failures++;
		log_warn("conn %llu %s: authentication failed: %s", (unsigned long long)c->conn->id,
			 c->conn->peer, detail != NULL ? detail : why);
		if (c->state == CLIENT_HANDSHAKE)
			addr_auth_failed(c->addr);
	}
	return rpc_fail(err, rc, NULL, "%s", why);
}

json_t *
rpc_hello(struct client *c, json_t *params, struct rpc_error *err)
{
	const char *user = NULL, *token = NULL, *client = NULL, *device = NULL, *why = NULL,
		   *detail = NULL;
	char assigned[DEVICE_NAME_MAX + 1];
	struct identity id;
	struct device *d;
	struct user *u;
	int rc;

	if (rpc_unpack(params, err, "{s?s, s?s, s?s, s?s !}", "user", &user, "token", &token,
		       "client", &client, "device", &device) != 0)
		return NULL;
	if (client != NULL && strlen(client) > CLIENT_MAX)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: client is longer than %d bytes", CLIENT_MAX);
	if (device != NULL && !device_name_valid(device))
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: device must be 1-%d bytes of A-Z a-z 0-9 . _ : -",
				DEVICE_NAME_MAX);
	if (c->state == CLIENT_HANDSHAKE && addr_auth_blocked(c->addr)) {
		stats.auth_blocked++;
		log_warn("conn %llu %s: hello refused: too many failed hellos from this address",
			 (unsigned long long)c->conn->id, c->conn->peer);
		client_close_after_reply(c, "too many failed hellos");
		return rpc_fail(err, RV_ERR_LIMIT,
				json_pack("{s:I}", "max_auth_failures",
					  (json_int_t)config.max_auth_failures),
				"limit exceeded: too many failed hellos from this address");
	}
	rc = identity_authenticate(user, token, &id, &why, &detail);
	if (rc != 0)
		return hello_failed(c, rc, why, detail, err);
	if (c->state == CLIENT_READY) {
		json_t *r;
		if (strcmp(c->who.user->name, id.user) == 0 && device != NULL &&
		    strcmp(device, c->who.device->name) != 0) {
			r = rpc_fail(err, RV_ERR_FORBIDDEN,
				     json_pack("{s:s}", "device", c->who.device->name),
				     "this connection is already another device's");
		} else if (strcmp(c->who.user->name, id.user) == 0) {
			/* A retried hello; a fresh token extends the connection's life. */
			client_set_expiry(c, id.expires_ms);
			r = c->device_chosen && !c->outcomes_known
				    ? rpc_hello_outcomes(c, err) /* its first failed (5003) */
				    : rpc_hello_result(c, c->device_chosen ? 0 : -1);
		} else {
			r = rpc_fail(err, RV_ERR_FORBIDDEN,
				     json_pack("{s:s}", "user", c->who.user->name),
				     "this connection is already authenticated as another user");
		}
		identity_clear(&id);
		return r;
	}
	c->device_chosen = device != NULL;
	if (device == NULL) {
		/* One for this connection: random, so never a device of another connection. */
		uint8_t r[8];
		if (random_bytes(r, sizeof r) != 0) {
			identity_clear(&id);
			return NULL;
		}
		snprintf(assigned, sizeof assigned, "conn-%02x%02x%02x%02x%02x%02x%02x%02x", r[0],
			 r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
		device = assigned;
	}
	u = user_get(id.user);
	d = u != NULL ? device_get(u, device) : NULL;
	if (d == NULL || (client != NULL && (c->client = strdup(client)) == NULL)) {
		device_unref(d);
		user_unref(u);
		identity_clear(&id);
		return NULL;
	}
	client_authenticate(c, u, d, &id);
	log_info("conn %llu %s: hello user %s device %s%s%s%s", (unsigned long long)c->conn->id,
		 c->conn->peer, u->name, d->name,
		 id.admin      ? " (admin)"
		 : id.observer ? " (observer)"
			       : "",
		 c->client ? " client " : "", c->client ? c->client : "");
	identity_clear(&id);
	if (!c->device_chosen)
		return rpc_hello_result(c, -1);
	/* A device that names itself is known from now on; its outcomes follow the reply. */
	return rpc_hello_outcomes(c, err);
}

json_t *
rpc_ping(struct client *c, json_t *params, struct rpc_error *err)
{
	(void)c;
	(void)params;
	(void)err;
	return json_string("pong");
}

/* Whether c may subscribe no more (--max-subscriptions); err filled if so. */
static bool
subscriptions_full(const struct client *c, struct rpc_error *err)
{
	if (c->peer.nsubs < config.max_subscriptions)
		return false;
	stats.limit_subscriptions++;
	rpc_fail(err, RV_ERR_LIMIT,
		 json_pack("{s:I}", "max_subscriptions", (json_int_t)config.max_subscriptions),
		 "limit exceeded: too many subscriptions on this connection");
	return true;
}

/* The user named name, if p may see its presence; else NULL with err filled. */
static struct user *
presence_target(struct client *c, const char *name, struct rpc_error *err)
{
	struct user *u;

	if (!user_name_valid(name)) {
		rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL, "invalid params: not a valid user name");
		return NULL;
	}
	if ((u = user_get(name)) == NULL)
		return NULL;
	if (!presence_may_see(&c->who, u)) {
		user_unref(u);
		rpc_fail(err, RV_ERR_FORBIDDEN, json_pack("{s:s}", "user", name),
			 "forbidden: only the user, a user in a live session with it, observers "
			 "and admins see its presence");
		return NULL;
	}
	return u;
}

json_t *
rpc_presence_get(struct client *c, json_t *params, struct rpc_error *err)
{
	const char *name;
	struct user *u;
	json_t *r;

	if (rpc_unpack(params, err, "{s:s !}", "user", &name) != 0 ||
	    (u = presence_target(c, name, err)) == NULL)
		return NULL;
	r = presence_of(u);
	user_unref(u);
	return r;
}

/* subscribe {presence: name}: presence.changed from now on; the presence now in the result. */
static json_t *
subscribe_presence(struct client *c, const char *name, json_t *params, struct rpc_error *err)
{
	struct user *u;
	struct sub *s;
	json_t *now;
	int rc;

	if (json_object_get(params, "since") != NULL)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: since is for events, not presence");
	if (subscriptions_full(c, err))
		return NULL;
	if ((u = presence_target(c, name, err)) == NULL)
		return NULL;
	rc = hub_subscribe(&c->peer, SUB_PRESENCE, NULL, u, false, 0, &s);
	now = rc == 0 ? presence_of(u) : NULL;
	user_unref(u);
	if (now == NULL)
		return NULL;
	return json_pack("{s:i, s:I, s:o}", "subscription", (int)s->id, "last_event",
			 (json_int_t)hub_last_event(), "presence", now);
}

json_t *
rpc_subscribe(struct client *c, json_t *params, struct rpc_error *err)
{
	const char *sid_hex = NULL, *user = NULL, *presence = NULL;
	json_int_t since = -1;
	int all = 0, rc;
	uint8_t sid[SESSION_ID_BYTES];
	enum sub_kind kind;
	struct user *target = NULL;
	struct sub *s;

	if (rpc_unpack(params, err, "{s?s, s?s, s?b, s?I, s?s !}", "session", &sid_hex, "user",
		       &user, "all", &all, "since", &since, "presence", &presence) != 0)
		return NULL;
	if ((sid_hex != NULL) + (user != NULL) + (all != 0) + (presence != NULL) != 1)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: give exactly one of session, user, all: true, "
				"presence");
	if (presence != NULL)
		return subscribe_presence(c, presence, params, err);
	if (json_object_get(params, "since") != NULL && since < 0)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
				"invalid params: since must be an event id >= 0");
	if (sid_hex != NULL) {
		const struct session *ses = rpc_session_find(c, sid_hex, err);
		if (ses == NULL)
			return NULL;
		memcpy(sid, ses->id, SESSION_ID_BYTES);
		kind = SUB_SESSION;
	} else if (user != NULL) {
		if (!authz_subscribe_user(&c->who, user))
			return rpc_fail(err, RV_ERR_FORBIDDEN, json_pack("{s:s}", "user", user),
					"forbidden: only observers may subscribe to other users");
		if (!user_name_valid(user))
			return rpc_fail(err, RV_ERR_INVALID_PARAMS, NULL,
					"invalid params: not a valid user name");
		kind = SUB_USER;
	} else {
		if (!authz_subscribe_all(&c->who))
			return rpc_fail(err, RV_ERR_FORBIDDEN, NULL,
					"forbidden: only observers may subscribe to all");
		kind = SUB_ALL;
	}
	if (subscriptions_full(c, err))
		return NULL;
	if (kind == SUB_USER && (target = user_get(user)) == NULL)
		return NULL;
	rc = hub_subscribe(&c->peer, kind, sid, target, since >= 0,
			   (uint64_t)(since >= 0 ? since : 0), &s);
	user_unref(target);
	switch (rc) {
	case 0:
		return json_pack("{s:i, s:I}", "subscription", (int)s->id, "last_event",
				 (json_int_t)hub_last_event());
	case RV_ERR_HISTORY_GONE:
		return rpc_fail(err, rc,
				json_pack("{s:I, s:I}", "since", since, "last_event",
					  (json_int_t)hub_last_event()),
				"history gone: events after %lld are no longer held",
				(long long)since);
	case RV_ERR_INVALID_PARAMS:
		if (shared_enabled()) /* this node is caught up: Redis lost what the client saw */
			return rpc_fail(err, RV_ERR_HISTORY_GONE,
					json_pack("{s:I, s:I}", "since", since, "last_event",
						  (json_int_t)hub_last_event()),
					"history gone: the shared store lost events after %lld "
					"(a failover); list the sessions again",
					(long long)hub_last_event());
		return rpc_fail(err, rc,
				json_pack("{s:I}", "last_event", (json_int_t)hub_last_event()),
				"invalid params: since is ahead of the last event");
	default: return NULL;
	}
}

json_t *
rpc_unsubscribe(struct client *c, json_t *params, struct rpc_error *err)
{
	json_int_t id;

	if (rpc_unpack(params, err, "{s:I !}", "subscription", &id) != 0)
		return NULL;
	if (id <= 0 || id > UINT32_MAX || hub_unsubscribe(&c->peer, (uint32_t)id) != 0)
		return rpc_fail(err, RV_ERR_INVALID_PARAMS, json_pack("{s:I}", "subscription", id),
				"invalid params: no such subscription on this connection");
	return json_true();
}

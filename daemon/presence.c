/* Presence: a user's connected devices, who may see them, and their changes. */
#include <string.h>

#include "hub.h"
#include "log.h"
#include "msgbuf.h"
#include "presence.h"
#include "sessions.h"
#include "stats.h"
#include "users.h"

json_t *
presence_of(const struct user *u)
{
	static uint64_t listing; /* this call's mark on the devices it listed */
	json_t *devices = json_array(), *p;
	const struct hub_peer *peer;

	if (devices == NULL)
		return NULL;
	listing++;
	/* Each device once, in the order its first connection came. */
	TAILQ_FOREACH (peer, &u->conns, by_user) {
		struct device *d = peer->who->device;

		if (d->mark == listing)
			continue;
		d->mark = listing;
		if (json_array_append_new(devices, json_string(d->name)) != 0) {
			json_decref(devices);
			return NULL;
		}
	}
	/* Then those connected only to other nodes (a shared store). */
	for (struct device *d = u->devices; d != NULL; d = d->next) {
		if (d->remote == 0 || d->mark == listing)
			continue;
		d->mark = listing;
		if (json_array_append_new(devices, json_string(d->name)) != 0) {
			json_decref(devices);
			return NULL;
		}
	}
	p = json_pack("{s:s, s:b, s:o}", "user", u->name, "online", json_array_size(devices) > 0,
		      "devices", devices);
	return p;
}

bool
presence_may_see(const struct principal *p, const struct user *u)
{
	return p->user == u || p->observer || p->admin || sessions_share_live(p->user, u);
}

void
presence_changed(struct user *u)
{
	json_t *msg;
	struct msgbuf *mb;

	if (u->presence_subs == NULL)
		return;
	msg = rv_msg_notification("presence.changed", presence_of(u));
	mb = msg != NULL ? msgbuf_from_json(msg) : NULL;
	json_decref(msg);
	if (mb == NULL) {
		log_error("presence: out of memory telling %s's presence", u->name);
		return;
	}
	hub_presence(u, mb, presence_may_see);
	msgbuf_unref(mb);
}

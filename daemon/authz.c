/* The authorization matrix (PROTOCOL.md 4.2). */
#include <string.h>

#include "authz.h"
#include "conn.h"
#include "sessions.h"
#include "users.h"

int
authz_session(const struct conn *c, const struct session *s)
{
	enum rv_role role = session_role(s, c->user);

	if (c->observer || role == RV_ROLE_INVITER)
		return 0;
	if (role == RV_ROLE_INVITEE)
		/* An invitee learns nothing of a session before it is invited. */
		return session_invited(s) ? 0 : RV_ERR_NO_SESSION;
	return RV_ERR_FORBIDDEN;
}

bool
authz_event(const struct conn *c, const struct user *inviter, const struct user *invitee,
	    bool invitee_visible)
{
	return c->observer || c->user == inviter || (c->user == invitee && invitee_visible);
}

bool
authz_subscribe_user(const struct conn *c, const char *name)
{
	return c->observer || strcmp(name, c->user->name) == 0;
}

bool
authz_subscribe_all(const struct conn *c)
{
	return c->observer;
}

bool
authz_list_all(const struct conn *c)
{
	return c->admin;
}

enum rv_role
authz_role(const struct conn *c, const struct session *s, enum rv_action a, const char **reason)
{
	enum rv_role role = session_role(s, c->user);

	if (role == RV_ROLE_NONE && c->admin && a == RV_ACT_TERMINATE) {
		*reason = "admin";
		return RV_ROLE_DAEMON;
	}
	return role;
}

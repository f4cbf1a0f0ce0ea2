/* The authorization matrix (PROTOCOL.md 4.2). */
#include <string.h>

#include "authz.h"
#include "conn.h"
#include "sessions.h"
#include "users.h"

bool
authz_session_hidden(const struct conn *c, const struct session *s)
{
	return session_role(s, c->user) == RV_ROLE_INVITEE && !session_invited(s);
}

int
authz_session(const struct conn *c, const struct session *s)
{
	/* Party rules win: an invitee learns nothing of a session before it is invited. */
	if (authz_session_hidden(c, s))
		return RV_ERR_NO_SESSION;
	if (c->observer || session_role(s, c->user) != RV_ROLE_NONE)
		return 0;
	return RV_ERR_FORBIDDEN;
}

bool
authz_event(const struct conn *c, const struct user *inviter, const struct user *invitee,
	    bool invitee_visible)
{
	if (c->user == invitee)
		return invitee_visible; /* whatever its roles */
	return c->observer || c->user == inviter;
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

/* The authorization matrix (PROTOCOL.md 4.2). */
#include <string.h>

#include "authz.h"
#include "users.h"

enum rv_role
authz_party_role(const struct authz_parties *s, const struct user *u)
{
	if (u == s->inviter)
		return RV_ROLE_INVITER;
	if (u == s->invitee)
		return RV_ROLE_INVITEE;
	return RV_ROLE_NONE;
}

bool
authz_hidden(const struct principal *p, const struct authz_parties *s)
{
	return p->user == s->invitee && !s->invited;
}

int
authz_read(const struct principal *p, const struct authz_parties *s)
{
	/* Party rules win: an invitee learns nothing of a session before it is invited. */
	if (authz_hidden(p, s))
		return RV_ERR_NO_SESSION;
	if (p->observer || authz_party_role(s, p->user) != RV_ROLE_NONE)
		return 0;
	return RV_ERR_FORBIDDEN;
}

bool
authz_subscribe_user(const struct principal *p, const char *name)
{
	return p->observer || strcmp(name, p->user->name) == 0;
}

bool
authz_subscribe_all(const struct principal *p)
{
	return p->observer;
}

bool
authz_list_all(const struct principal *p)
{
	return p->admin;
}

enum rv_role
authz_role(const struct principal *p, const struct authz_parties *s, enum rv_action a,
	   const char **reason)
{
	enum rv_role role = authz_party_role(s, p->user);

	if (role == RV_ROLE_NONE && p->admin && a == RV_ACT_TERMINATE) {
		*reason = "admin";
		return RV_ROLE_DAEMON;
	}
	return role;
}

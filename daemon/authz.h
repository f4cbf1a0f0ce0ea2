/*
 * Authorization: what a principal may see and do, decided here and only
 * here. This is the matrix of proto/PROTOCOL.md 4.2: parties act on their own
 * sessions as the state machine allows; observers read and subscribe to
 * everything and change nothing (unless a party); admins also list every
 * session and terminate any. Knowing a session id grants nothing. Party
 * rules win: an invitee learns nothing of a session before it is invited,
 * whatever its roles.
 *
 * rpc (requests), sessions (lists) and the hub (fan-out and replay) ask it;
 * it knows users and the facts of a session it is given, nothing above.
 * Pure functions: any thread; nothing returned is owned.
 */
#ifndef RV_AUTHZ_H
#define RV_AUTHZ_H

#include <stdbool.h>

#include "rendezvous.h"

struct user;

/* Who acts: an authenticated connection's user and roles. */
struct principal {
	struct user *user;     /* a reference, held by the client; NULL before hello */
	bool observer;         /* reads everything, changes nothing */
	bool admin;            /* also lists and terminates every session */
	struct device *device; /* what it acts from (hello's, or one assigned; a reference) */
};

/* What authorization needs to know of a session. Borrowed. */
struct authz_parties {
	const struct user *inviter, *invitee;
	bool invited; /* the invitee has been invited: it may know the session */
};

/* The role u has in a session with these parties (RV_ROLE_NONE: not a party). */
enum rv_role authz_party_role(const struct authz_parties *s, const struct user *u);

/* Whether s is hidden from p whatever its roles: p is the invitee, not yet invited. */
bool authz_hidden(const struct principal *p, const struct authz_parties *s);

/*
 * May p read s (get, subscribe to it, see its events)? 0, or the error:
 * RV_ERR_NO_SESSION (it may not even know s exists) or RV_ERR_FORBIDDEN.
 */
int authz_read(const struct principal *p, const struct authz_parties *s);

/* May p subscribe to every session of the user named name? */
bool authz_subscribe_user(const struct principal *p, const char *name);
/* May p subscribe to every session? */
bool authz_subscribe_all(const struct principal *p);
/* May p list every session? */
bool authz_list_all(const struct principal *p);

/*
 * The role p acts in when taking action a on s (the state machine then
 * decides). An admin that is not a party terminates as the daemon: *reason
 * is then set to "admin". RV_ROLE_NONE is refused with 4003.
 */
enum rv_role authz_role(const struct principal *p, const struct authz_parties *s, enum rv_action a,
			const char **reason);

#endif

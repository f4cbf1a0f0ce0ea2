/*
 * Authorization: what a connection may see and do, decided here and only
 * here. This is the matrix of proto/PROTOCOL.md 4.2: parties act on their own
 * sessions as the state machine allows; observers read and subscribe to
 * everything and change nothing (unless a party); admins also list every
 * session and terminate any. Knowing a session id grants nothing.
 */
#ifndef RV_AUTHZ_H
#define RV_AUTHZ_H

#include <stdbool.h>

#include "rendezvous.h"

struct conn;
struct session;
struct user;

/*
 * Whether s is hidden from c whatever its roles: c is the invitee and the
 * invitation has not been sent (party rules win over observer and admin).
 */
bool authz_session_hidden(const struct conn *c, const struct session *s);

/* May c read s? 0, or the error: RV_ERR_NO_SESSION (it may not even know s exists) or
 * RV_ERR_FORBIDDEN. */
int authz_session(const struct conn *c, const struct session *s);

/* May c see an event of a session with these parties? */
bool authz_event(const struct conn *c, const struct user *inviter, const struct user *invitee,
		 bool invitee_visible);

/* May c subscribe to every session of the user named name? */
bool authz_subscribe_user(const struct conn *c, const char *name);
/* May c subscribe to every session? */
bool authz_subscribe_all(const struct conn *c);
/* May c list every session? */
bool authz_list_all(const struct conn *c);

/*
 * The role c acts in when taking action a on s (the state machine then
 * decides). An admin that is not a party terminates as the daemon: *reason
 * is then set to "admin". RV_ROLE_NONE is refused with 4003.
 */
enum rv_role authz_role(const struct conn *c, const struct session *s, enum rv_action a,
			const char **reason);

#endif

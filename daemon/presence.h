/*
 * Presence: which of a user's devices are connected now. presence.get and
 * subscribe {presence} show it to the user itself, to a user with a live
 * session with it, to observers and admins; presence.changed goes out when
 * a device comes or goes.
 *
 * Loop thread only. What is returned is a new reference.
 */
#ifndef RV_PRESENCE_H
#define RV_PRESENCE_H

#include <stdbool.h>

#include <jansson.h>

struct principal;
struct user;

/* {user, online, devices: [...]} for u now; NULL when memory ran out. */
json_t *presence_of(const struct user *u);
/* May p see u's presence? */
bool presence_may_see(const struct principal *p, const struct user *u);
/* The devices u is on changed (one came or went): tell its presence subscribers. */
void presence_changed(struct user *u);

#endif

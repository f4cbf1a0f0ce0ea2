/*
 * Identity: who a connection is, decided in one place. The backend today is
 * "none" (the claimed user name is trusted); token-checking backends plug in
 * behind the same call.
 */
#ifndef RV_IDENTITY_H
#define RV_IDENTITY_H

#include <stdbool.h>

struct identity {
	const char *user; /* borrowed from the request */
	bool observer;    /* may read and subscribe to everything */
};

/*
 * Decide who presents user (may be NULL) and token (may be NULL). Returns 0
 * and fills id, or an rv_error code with *why set to a static message.
 */
int identity_authenticate(const char *user, const char *token, struct identity *id,
			  const char **why);

#endif

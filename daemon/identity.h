/*
 * Identity: who a connection is, decided in one place. Backends: "none" (the
 * claimed user name is trusted) and "jwt" (hello carries a JSON Web Token,
 * token.c). Roles come from the token and from --observer / --admin.
 *
 * Loop thread only. A filled struct identity owns its strings until
 * identity_clear().
 */
#ifndef RV_IDENTITY_H
#define RV_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

struct identity {
	char *user;    /* owned */
	bool observer; /* may read and subscribe to everything, change nothing */
	bool admin;    /* observer's rights, and lists and terminates any session */
	bool cred_observer, cred_admin; /* the roles the credential itself grants */
	int64_t expires_ms;             /* when the credential ends (Unix ms); 0: never */
};

/* Set up the configured backend (loads keys). -1 after logging why. */
int identity_init(void);
void identity_finish(void);

/*
 * Decide who presents user and token (either may be NULL). Returns 0 and
 * fills id (clear it with identity_clear()), or an rv_error code with *why a
 * static message for the client. *detail, for the log only, says more.
 */
int identity_authenticate(const char *user, const char *token, struct identity *id,
			  const char **why, const char **detail);
void identity_clear(struct identity *id);
/* The roles of user, from its credential's and from --observer and --admin (now). */
void identity_roles(const char *user, bool cred_observer, bool cred_admin, bool *observer,
		    bool *admin);

#endif

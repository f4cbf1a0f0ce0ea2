/* Identity backends: "none" trusts the claimed name; "jwt" verifies a token. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "identity.h"
#include "rendezvous.h"
#include "token.h"
#include "users.h"
#include "util.h"

static bool
listed(char **names, size_t n, const char *user)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], user) == 0)
			return true;
	}
	return false;
}

int
identity_init(void)
{
	return config.auth == AUTH_JWT ? tokens_load() : 0;
}

void
identity_finish(void)
{
	tokens_finish();
}

static int
identity_none(const char *user, struct identity *id, const char **why)
{
	if (user == NULL) {
		*why = "hello needs \"user\"";
		return RV_ERR_INVALID_PARAMS;
	}
	if (!user_name_valid(user)) {
		*why = "\"user\" must be 1 to 256 bytes with no control characters";
		return RV_ERR_INVALID_PARAMS;
	}
	id->user = strdup(user);
	if (id->user == NULL) {
		*why = "out of memory";
		return RV_ERR_INTERNAL;
	}
	return 0;
}

/* Every failure is the same 4001 to the client; the log says which. */
static int
identity_jwt(const char *user, const char *token, struct identity *id, const char **why,
	     const char **detail)
{
	struct token_claims claims;

	*why = "authentication failed";
	if (token == NULL) {
		*detail = "no token";
		return RV_ERR_UNAUTHENTICATED;
	}
	if (token_verify(token, now_ms(), &claims, detail) != 0)
		return RV_ERR_UNAUTHENTICATED;
	if (user != NULL && strcmp(user, claims.sub) != 0) {
		*detail = "user is not the token's sub";
		token_claims_clear(&claims);
		return RV_ERR_UNAUTHENTICATED;
	}
	id->user = claims.sub; /* taken over */
	claims.sub = NULL;
	id->cred_observer = claims.observer;
	id->cred_admin = claims.admin;
	id->expires_ms = claims.exp_ms;
	return 0;
}

int
identity_authenticate(const char *user, const char *token, struct identity *id, const char **why,
		      const char **detail)
{
	int rc;

	memset(id, 0, sizeof *id);
	*detail = NULL;
	rc = config.auth == AUTH_JWT ? identity_jwt(user, token, id, why, detail)
				     : identity_none(user, id, why);
	if (rc != 0)
		return rc;
	identity_roles(id->user, id->cred_observer, id->cred_admin, &id->observer, &id->admin);
	return 0;
}

void
identity_roles(const char *user, bool cred_observer, bool cred_admin, bool *observer, bool *admin)
{
	*admin = cred_admin || listed(config.admins, config.nadmins, user);
	*observer = cred_observer || *admin || listed(config.observers, config.nobservers, user);
}

void
identity_clear(struct identity *id)
{
	free(id->user);
	memset(id, 0, sizeof *id);
}

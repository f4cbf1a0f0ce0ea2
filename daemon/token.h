/*
 * JSON Web Tokens (RFC 7519) for --auth jwt: the verification keys, and the
 * check of one token (header, signature, claims). libjwt verifies the
 * signature; this module decides which key may, refuses "none" and any
 * algorithm other than the key's, and checks HMACs in constant time first.
 *
 * Loop thread only. Keys from token_keys_load() are owned by the caller
 * until token_keys_use() takes them; claims filled by token_verify() own
 * their strings until token_claims_clear().
 */
#ifndef RV_TOKEN_H
#define RV_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

/* What a valid token says. */
struct token_claims {
	char *sub; /* the user; owned */
	int64_t exp_ms;
	bool observer, admin; /* from the "roles" claim */
};

/* Load every --jwt-key and verify with them. Logs what is wrong and returns -1. */
int tokens_load(void);
void tokens_finish(void);

/* A set of verification keys, for reloads: load, then use (or free). */
struct token_keys;
/* Load keys from "[KID=]ALG:FILE" specs; NULL after logging what is wrong. */
struct token_keys *token_keys_load(char **specs, size_t n);
/* Verify with k from now on (owned); frees the keys used until now. */
void token_keys_use(struct token_keys *k);
void token_keys_free(struct token_keys *k);

/*
 * Verify token at now_ms. 0 and fills claims (clear it with
 * token_claims_clear()), or -1 with *why set to a static reason for the
 * log. The reason is never sent to the client.
 */
int token_verify(const char *token, int64_t now_ms, struct token_claims *claims, const char **why);
void token_claims_clear(struct token_claims *claims);

#endif

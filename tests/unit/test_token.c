/*
 * JWT checks at their boundaries, with the clock given: exp and nbf to the
 * millisecond, leeway, audience and issuer, roles, kid selection, and
 * tokens that are not well-formed. Tokens are minted here with libjwt.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jwt.h>

#include "check.h"
#include "config.h"
#include "token.h"

static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
static const char other[] = "another secret, also long enough for HS256 keys";
#define T0 INT64_C(1795488000) /* the tokens' reference time, seconds */

/* An HS256 token; extra is a JSON object of claims merged over sub/exp. */
static char *
mint(const char *key, const char *kid, const char *extra)
{
	jwt_t *jwt = NULL;
	char *tok;

	if (jwt_new(&jwt) != 0)
		abort();
	jwt_add_grant(jwt, "sub", "alice");
	jwt_add_grant_int(jwt, "exp", T0 + 60);
	if (extra != NULL && jwt_add_grants_json(jwt, extra) != 0)
		abort();
	if (kid != NULL)
		jwt_add_header(jwt, "kid", kid);
	if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key)) != 0)
		abort();
	tok = jwt_encode_str(jwt);
	jwt_free(jwt);
	return tok;
}

/* Verify at time t (ms); 0 on success. */
static int
verify_at(const char *tok, int64_t t, struct token_claims *c)
{
	const char *why = NULL;
	int rc = token_verify(tok, t, c, &why);

	if (rc != 0 && why == NULL)
		return 99; /* a failure must say why (for the log) */
	return rc;
}

static int
verify(const char *tok, int64_t t)
{
	struct token_claims c;
	int rc = verify_at(tok, t, &c);

	token_claims_clear(&c);
	return rc;
}

static char *
write_file(const char *content)
{
	char *path = strdup("/tmp/rv-test-token-XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
		abort();
	close(fd);
	return path;
}

int
main(void)
{
	char *f1 = write_file(secret), *f2 = write_file(other);
	char spec1[256], spec2[256];
	char *keys[2] = {spec1, spec2};
	struct token_claims c;
	char *tok;
	int64_t exp_ms = (int64_t)(T0 + 60) * 1000;

	snprintf(spec1, sizeof spec1, "HS256:%s", f1);
	snprintf(spec2, sizeof spec2, "k2=HS256:%s", f2);
	config.jwt_keys = keys;
	config.njwt_keys = 2;
	CHECK(tokens_load() == 0);

	/* exp: valid up to the millisecond before, not at it. */
	tok = mint(secret, NULL, NULL);
	CHECK(verify_at(tok, exp_ms - 1, &c) == 0);
	CHECK(c.sub != NULL && strcmp(c.sub, "alice") == 0 && c.exp_ms == exp_ms);
	CHECK(!c.observer && !c.admin);
	token_claims_clear(&c);
	CHECK(verify(tok, exp_ms) != 0);
	config.jwt_leeway_ms = 5000;
	CHECK(verify(tok, exp_ms + 4999) == 0);
	CHECK(verify(tok, exp_ms + 5000) != 0);
	config.jwt_leeway_ms = 0;
	free(tok);

	/* nbf: from that moment on. */
	tok = mint(secret, NULL, "{\"nbf\": 1795488030}");
	CHECK(verify(tok, (int64_t)1795488030 * 1000 - 1) != 0);
	CHECK(verify(tok, (int64_t)1795488030 * 1000) == 0);
	free(tok);

	/* A fractional NumericDate is allowed (RFC 7519 2). */
	tok = mint(secret, NULL, "{\"exp\": 1795488010.5}");
	CHECK(verify(tok, (int64_t)1795488010 * 1000 + 499) == 0);
	CHECK(verify(tok, (int64_t)1795488010 * 1000 + 500) != 0);
	free(tok);

	/* Audience: refused when present and none is configured; a list may name it. */
	tok = mint(secret, NULL, "{\"aud\": [\"x\", \"rv\"]}");
	CHECK(verify(tok, T0 * 1000) != 0);
	config.jwt_audience = "rv";
	CHECK(verify(tok, T0 * 1000) == 0);
	free(tok);
	tok = mint(secret, NULL, "{\"aud\": \"rvx\"}");
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);
	tok = mint(secret, NULL, NULL); /* no aud at all, one configured */
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);
	config.jwt_audience = NULL;

	/* Issuer. */
	config.jwt_issuer = "https://auth.example";
	tok = mint(secret, NULL, "{\"iss\": \"https://auth.example\"}");
	CHECK(verify(tok, T0 * 1000) == 0);
	free(tok);
	tok = mint(secret, NULL, "{\"iss\": \"https://evil.example\"}");
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);
	config.jwt_issuer = NULL;

	/* Roles. */
	tok = mint(secret, NULL, "{\"roles\": [\"observer\", \"admin\", \"x\"]}");
	CHECK(verify_at(tok, T0 * 1000, &c) == 0 && c.observer && c.admin);
	token_claims_clear(&c);
	free(tok);
	tok = mint(secret, NULL, "{\"roles\": [\"observer\", 7]}");
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);

	/* kid: with one, only that key; without, only the keys without one. */
	tok = mint(other, "k2", NULL);
	CHECK(verify(tok, T0 * 1000) == 0);
	free(tok);
	tok = mint(other, NULL, NULL);
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);
	tok = mint(secret, "k2", NULL);
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);
	tok = mint(secret, "k9", NULL);
	CHECK(verify(tok, T0 * 1000) != 0);
	free(tok);

	/* Not well-formed. */
	tok = mint(secret, NULL, NULL);
	{
		size_t n = strlen(tok);
		char *bad = malloc(n + 2);
		const char *cases[] = {"", ".", "..", "a.b", "a.b.c.d"};

		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
			CHECK(verify(cases[i], T0 * 1000) != 0);
		/* Padding or a character outside base64url anywhere: refused. */
		memcpy(bad, tok, n + 1);
		bad[n - 1] = '=';
		CHECK(verify(bad, T0 * 1000) != 0);
		memcpy(bad, tok, n + 1);
		bad[3] = '+';
		CHECK(verify(bad, T0 * 1000) != 0);
		/* The signature of another token. */
		memcpy(bad, tok, n + 1);
		bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
		CHECK(verify(bad, T0 * 1000) != 0);
		free(bad);
	}
	CHECK(verify(tok, T0 * 1000) == 0); /* and the original still passes */
	free(tok);

	tokens_finish();
	unlink(f1);
	unlink(f2);
	free(f1);
	free(f2);
	return check_done("token");
}

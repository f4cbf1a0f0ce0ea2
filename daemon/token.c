/* JWT verification: keys from --jwt-key, then header, signature and claims. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "config.h"
#include "log.h"
#include "token.h"
#include "users.h"

#define TOKEN_MAX 8192      /* longest token accepted, bytes */
#define KEY_FILE_MAX 65536  /* largest key file read */
#define HS256_MIN_SECRET 32 /* bytes (RFC 7518 3.2: at least the hash size) */

struct key {
	char *kid;            /* NULL: none */
	jwt_alg_t alg;        /* JWT_ALG_HS256, _RS256 or _ES256 */
	unsigned char *bytes; /* the secret, or the public key's PEM text */
	size_t len;
};

struct token_keys {
	struct key *keys;
	size_t n;
};

static struct token_keys *current; /* the keys tokens are verified with */

static int
fail(const char **why, const char *reason)
{
	*why = reason;
	return -1;
}

static int
read_file(const char *path, unsigned char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (f == NULL)
		return -1;
	buf = malloc(KEY_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, KEY_FILE_MAX + 1, f);
	if (ferror(f) || n > KEY_FILE_MAX) {
		if (!ferror(f))
			errno = EFBIG;
		fclose(f);
		OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
		free(buf);
		return -1;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* A PEM public key of the kind alg needs; the reason it is not, or NULL. */
static const char *
check_public_key(const struct key *k)
{
	BIO *bio = BIO_new_mem_buf(k->bytes, (int)k->len);
	EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	const char *why = NULL;

	if (pkey == NULL)
		why = "not a PEM public key (the daemon needs only the public half)";
	else if (k->alg == JWT_ALG_RS256 &&
		 (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 2048))
		why = "RS256 needs an RSA public key of at least 2048 bits";
	else if (k->alg == JWT_ALG_ES256 &&
		 (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC || EVP_PKEY_get_bits(pkey) != 256))
		why = "ES256 needs an EC P-256 public key";
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return why;
}

/* Parse "[KID=]ALG:FILE" and load the file. */
static int
key_load(const char *spec, struct key *k)
{
	const char *colon = strchr(spec, ':'), *eq = strchr(spec, '=');
	const char *alg = spec, *why = NULL;
	char name[16];
	struct stat st;

	memset(k, 0, sizeof *k);
	if (eq != NULL && colon != NULL && eq < colon) {
		if (eq == spec) {
			log_error("--jwt-key %s: empty key id", spec);
			return -1;
		}
		k->kid = strndup(spec, (size_t)(eq - spec));
		if (k->kid == NULL)
			return -1;
		alg = eq + 1;
	}
	if (colon == NULL || colon[1] == '\0' || (size_t)(colon - alg) >= sizeof name) {
		log_error("--jwt-key %s: expected [KID=]ALG:FILE", spec);
		return -1;
	}
	memcpy(name, alg, (size_t)(colon - alg));
	name[colon - alg] = '\0';
	if (strcasecmp(name, "HS256") == 0)
		k->alg = JWT_ALG_HS256;
	else if (strcasecmp(name, "RS256") == 0)
		k->alg = JWT_ALG_RS256;
	else if (strcasecmp(name, "ES256") == 0)
		k->alg = JWT_ALG_ES256;
	else {
		log_error("--jwt-key %s: algorithm must be HS256, RS256 or ES256", spec);
		return -1;
	}
	if (read_file(colon + 1, &k->bytes, &k->len) != 0) {
		log_error("--jwt-key %s: cannot read %s: %s", spec, colon + 1, strerror(errno));
		return -1;
	}
	if (k->alg == JWT_ALG_HS256) {
		/* A trailing newline, as editors and echo leave, is not part of the secret. */
		if (k->len > 0 && k->bytes[k->len - 1] == '\n')
			k->len--;
		if (k->len > 0 && k->bytes[k->len - 1] == '\r')
			k->len--;
		if (k->len < HS256_MIN_SECRET)
			why = "an HS256 secret must be at least 32 bytes";
		else if (stat(colon + 1, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
			log_warn("--jwt-key %s: the secret is readable by other users (chmod 600)",
				 spec);
	} else {
		why = check_public_key(k);
	}
	if (why != NULL) {
		log_error("--jwt-key %s: %s", spec, why);
		return -1;
	}
	return 0;
}

static void
key_clear(struct key *k)
{
	if (k->bytes != NULL)
		OPENSSL_cleanse(k->bytes, k->len);
	free(k->bytes);
	free(k->kid);
}

void
token_keys_free(struct token_keys *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->n; i++)
		key_clear(&k->keys[i]);
	free(k->keys);
	free(k);
}

struct token_keys *
token_keys_load(char **specs, size_t n)
{
	struct token_keys *k;

	if (n == 0) {
		log_error("--auth jwt needs at least one --jwt-key");
		return NULL;
	}
	k = calloc(1, sizeof *k);
	if (k == NULL || (k->keys = calloc(n, sizeof *k->keys)) == NULL) {
		free(k);
		log_error("cannot load keys: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (key_load(specs[i], &k->keys[k->n]) != 0) {
			key_clear(&k->keys[k->n]);
			token_keys_free(k);
			return NULL;
		}
		k->n++;
		for (size_t j = 0; j + 1 < k->n; j++) {
			const char *a = k->keys[j].kid, *b = k->keys[k->n - 1].kid;
			if (a != NULL && b != NULL && strcmp(a, b) == 0) {
				log_error("--jwt-key: key id '%s' given twice", a);
				token_keys_free(k);
				return NULL;
			}
		}
	}
	return k;
}

void
token_keys_use(struct token_keys *k)
{
	token_keys_free(current);
	current = k;
}

int
tokens_load(void)
{
	struct token_keys *k = token_keys_load(config.jwt_keys, config.njwt_keys);

	if (k == NULL)
		return -1;
	token_keys_use(k);
	return 0;
}

void
tokens_finish(void)
{
	token_keys_use(NULL);
}

/* Decode base64url without padding (RFC 7515 2); -1 unless s is exactly that. */
static int
b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t bits = 0, n = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v;
		char ch = s[i];
		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '-')
			v = 62;
		else if (ch == '_')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return -1;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		return -1; /* non-canonical: leftover bits must be zero */
	*outlen = n;
	return 0;
}

/* The header's alg and kid (borrowed from *header, which the caller frees). */
static int
parse_header(const char *seg, size_t len, json_t **header, jwt_alg_t *alg, const char **kid)
{
	unsigned char buf[TOKEN_MAX];
	size_t n;
	json_t *a, *k;

	if (b64url_decode(seg, len, buf, sizeof buf, &n) != 0)
		return -1;
	*header = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(*header) || json_object_get(*header, "crit") != NULL)
		return -1;
	a = json_object_get(*header, "alg");
	k = json_object_get(*header, "kid");
	if (!json_is_string(a) || (k != NULL && !json_is_string(k)))
		return -1;
	if (strcmp(json_string_value(a), "HS256") == 0)
		*alg = JWT_ALG_HS256;
	else if (strcmp(json_string_value(a), "RS256") == 0)
		*alg = JWT_ALG_RS256;
	else if (strcmp(json_string_value(a), "ES256") == 0)
		*alg = JWT_ALG_ES256;
	else
		return -1; /* "none" among them: never accepted */
	*kid = k != NULL ? json_string_value(k) : NULL;
	return 0;
}

/* HMAC-SHA256 of the signing input against the signature, in constant time. */
static bool
hs256_matches(const struct key *k, const char *token, size_t signed_len, const char *sig,
	      size_t sig_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE], given[64];
	unsigned int mac_len = 0;
	size_t given_len;
	bool ok;

	if (b64url_decode(sig, sig_len, given, sizeof given, &given_len) != 0 || given_len != 32)
		return false;
	if (HMAC(EVP_sha256(), k->bytes, (int)k->len, (const unsigned char *)token, signed_len, mac,
		 &mac_len) == NULL ||
	    mac_len != 32)
		return false;
	ok = CRYPTO_memcmp(mac, given, 32) == 0;
	OPENSSL_cleanse(mac, sizeof mac);
	return ok;
}

/* A NumericDate claim in ms; -1 if absent, -2 if not a number. */
static int64_t
claim_time(json_t *claims, const char *name)
{
	json_t *v = json_object_get(claims, name);
	double d;

	if (v == NULL)
		return -1;
	if (!json_is_number(v))
		return -2;
	d = json_number_value(v);
	if (!isfinite(d) || d < 0 || d > 1e13)
		return -2;
	return (int64_t)(d * 1000.0);
}

static bool
audience_ok(json_t *aud)
{
	const char *want = config.jwt_audience;
	size_t i;
	json_t *v;

	if (aud == NULL)
		return want == NULL;
	if (want == NULL)
		return false; /* RFC 7519 4.1.3: an audience we are not in */
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach (aud, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return true;
	}
	return false;
}

static int
check_claims(json_t *claims, int64_t now, struct token_claims *out, const char **why)
{
	json_t *sub = json_object_get(claims, "sub"), *roles = json_object_get(claims, "roles");
	json_t *iss = json_object_get(claims, "iss"), *v;
	int64_t exp = claim_time(claims, "exp"), nbf = claim_time(claims, "nbf");
	int64_t leeway = config.jwt_leeway_ms;
	size_t i;

	if (!json_is_string(sub) || !user_name_valid(json_string_value(sub)))
		return fail(why, "no valid sub claim");
	if (exp == -1)
		return fail(why, "no exp claim");
	if (exp < 0 || nbf == -2)
		return fail(why, "exp or nbf is not a NumericDate");
	if (now >= exp + leeway)
		return fail(why, "expired");
	if (nbf >= 0 && now + leeway < nbf)
		return fail(why, "not valid yet (nbf)");
	if (!audience_ok(json_object_get(claims, "aud")))
		return fail(why, "wrong audience");
	if (config.jwt_issuer != NULL &&
	    (!json_is_string(iss) || strcmp(json_string_value(iss), config.jwt_issuer) != 0))
		return fail(why, "wrong issuer");
	if (roles != NULL && !json_is_array(roles))
		return fail(why, "roles is not an array");
	memset(out, 0, sizeof *out);
	json_array_foreach (roles, i, v) {
		if (!json_is_string(v))
			return fail(why, "roles holds a non-string");
		if (strcmp(json_string_value(v), "observer") == 0)
			out->observer = true;
		else if (strcmp(json_string_value(v), "admin") == 0)
			out->admin = true;
	}
	out->exp_ms = exp;
	out->sub = strdup(json_string_value(sub));
	if (out->sub == NULL)
		return fail(why, "out of memory");
	return 0;
}

/* Verify the signature with k through libjwt; the claims as JSON, or NULL. */
static json_t *
verify_with(const struct key *k, const char *token, size_t signed_len, const char *sig,
	    size_t sig_len)
{
	jwt_t *jwt = NULL;
	char *text;
	json_t *claims = NULL;

	/* Constant time first: libjwt's own comparison then sees only good MACs. */
	if (k->alg == JWT_ALG_HS256 && !hs256_matches(k, token, signed_len, sig, sig_len))
		return NULL;
	if (jwt_decode(&jwt, token, k->bytes, (int)k->len) != 0 || jwt == NULL)
		return NULL;
	if (jwt_get_alg(jwt) == k->alg && (text = jwt_get_grants_json(jwt, NULL)) != NULL) {
		claims = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
		free(text);
	}
	jwt_free(jwt);
	if (!json_is_object(claims)) {
		json_decref(claims);
		return NULL;
	}
	return claims;
}

int
token_verify(const char *token, int64_t now, struct token_claims *out, const char **why)
{
	size_t len = strnlen(token, TOKEN_MAX + 1);
	const char *dot1, *dot2, *kid = NULL;
	json_t *header = NULL, *claims = NULL;
	jwt_alg_t alg;
	bool kid_known = false;
	int rc;

	memset(out, 0, sizeof *out);
	if (len > TOKEN_MAX)
		return fail(why, "token too long");
	dot1 = memchr(token, '.', len);
	dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot1 == NULL || dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
		return fail(why, "not a compact JWS (three parts)");
	if (dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == token + len)
		return fail(why, "an empty part");
	if (parse_header(token, (size_t)(dot1 - token), &header, &alg, &kid) != 0) {
		json_decref(header);
		return fail(why, "bad header or algorithm not accepted");
	}
	for (size_t i = 0; current != NULL && i < current->n && claims == NULL; i++) {
		const struct key *k = &current->keys[i];
		/* With a kid, only that key; without, any key without a kid. */
		if (kid != NULL ? k->kid == NULL || strcmp(k->kid, kid) != 0 : k->kid != NULL)
			continue;
		kid_known = true;
		if (k->alg != alg)
			continue; /* never verify with another kind of key (HS/RS confusion) */
		claims = verify_with(k, token, (size_t)(dot2 - token), dot2 + 1,
				     len - (size_t)(dot2 + 1 - token));
	}
	json_decref(header);
	if (claims == NULL)
		return fail(why, kid_known ? "bad signature or wrong algorithm for the key"
					   : "unknown key id");
	rc = check_claims(claims, now, out, why);
	json_decref(claims);
	return rc;
}

void
token_claims_clear(struct token_claims *c)
{
	free(c->sub);
	memset(c, 0, sizeof *c);
}

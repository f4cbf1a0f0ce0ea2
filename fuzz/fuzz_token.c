/*
 * libFuzzer target: JSON Web Token verification (daemon/token.c), the code
 * that reads what an unauthenticated client sends in hello {token}: the
 * compact form, base64url, the header, key choice, libjwt's decoding and the
 * claim checks.
 *
 * The first input byte picks a mode, so that mutations of JSON text reach
 * the header and claim checks as well as the parser of the compact form:
 *   0: the rest is the token, as a client would send it;
 *   1: the rest is HEADER \0 CLAIMS (JSON text): encoded, then signed with
 *      the daemon's own HS256 key, so the signature is good;
 *   2: the rest is HEADER \0 CLAIMS \0 SIGNATURE (raw bytes), all encoded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"
#include "token.h"

#define FUZZ_SECRET "rendezvous-fuzz-secret-0123456789abcdef"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char path[] = "/tmp/rv-fuzz-token-XXXXXX";
	static char spec[64];
	static char *keys[1] = {spec};
	int fd = mkstemp(path);

	(void)argc;
	(void)argv;
	if (fd < 0 || write(fd, FUZZ_SECRET, strlen(FUZZ_SECRET)) != (ssize_t)strlen(FUZZ_SECRET))
		abort();
	close(fd);
	snprintf(spec, sizeof spec, "HS256:%s", path);
	config.auth = AUTH_JWT;
	config.jwt_keys = keys;
	config.njwt_keys = 1;
	config.jwt_audience = "rendezvous";
	if (tokens_load() != 0)
		abort();
	unlink(path);
	return 0;
}

static size_t
b64url(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	return o;
}

/* Build a token from parts (mode 1 signs it); the caller frees it. */
static char *
assemble(const uint8_t *data, size_t size, int mode)
{
	const uint8_t *parts[3] = {data, NULL, NULL};
	size_t lens[3] = {size, 0, 0}, o = 0, nparts = 1;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *tok = malloc(size * 2 + 128);

	for (size_t i = 0; i < size && nparts < (size_t)(mode == 1 ? 2 : 3); i++) {
		if (data[i] == '\0') {
			lens[nparts - 1] = (size_t)(data + i - parts[nparts - 1]);
			parts[nparts] = data + i + 1;
			lens[nparts] = size - i - 1;
			nparts++;
		}
	}
	if (tok == NULL)
		return NULL;
	o = b64url(parts[0], lens[0], tok);
	tok[o++] = '.';
	if (parts[1] != NULL)
		o += b64url(parts[1], lens[1], tok + o);
	if (mode == 1) {
		HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (unsigned char *)tok, o,
		     mac, &maclen);
		tok[o++] = '.';
		o += b64url(mac, maclen, tok + o);
	} else {
		tok[o++] = '.';
		if (parts[2] != NULL)
			o += b64url(parts[2], lens[2], tok + o);
	}
	tok[o] = '\0';
	return tok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct token_claims claims;
	const char *why = NULL;
	char *tok;

	if (size < 1 || size > 16384)
		return 0;
	if (data[0] % 3 == 0) {
		tok = malloc(size);
		if (tok == NULL)
			return 0;
		memcpy(tok, data + 1, size - 1);
		tok[size - 1] = '\0';
	} else {
		tok = assemble(data + 1, size - 1, data[0] % 3);
		if (tok == NULL)
			return 0;
	}
	if (token_verify(tok, INT64_C(1795488000000), &claims, &why) == 0) {
		/* A token that passes carries what hello relies on. */
		if (claims.sub == NULL || claims.exp_ms <= INT64_C(1795488000000))
			abort();
		token_claims_clear(&claims);
	} else if (why == NULL) {
		abort(); /* every refusal says why, for the log */
	}
	free(tok);
	return 0;
}

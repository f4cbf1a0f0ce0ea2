/*
 * Idempotency keys: a change retried with the same key (per user and
 * method) within --idempotency-window gets the first call's reply again and
 * changes nothing; the same key with other params is refused (4022). Keys
 * and replies are kept in the store, so they survive a restart, and take
 * part in group commit (a key recorded in a pass whose commit fails is
 * forgotten with it).
 *
 * Loop thread only. Strings passed in are borrowed; replies handed out are
 * new references.
 */
#ifndef RV_IDEMPOTENCY_H
#define RV_IDEMPOTENCY_H

#include <stdint.h>

#include <jansson.h>

/* Longest idempotency key, in bytes. */
#define IDEMPOTENCY_KEY_MAX 64

int idempotency_init(void);
void idempotency_finish(void);
/* Load the keys the store holds (at start-up). 0, or -1 after logging. */
int idempotency_recover(void);

/* The digest of a request's params (without its key), to tell a retry from a reuse. */
void idempotency_digest(const json_t *params, uint8_t out[32]);

/*
 * Look up user's key for method. 0: not seen (the call goes ahead); 1: a
 * retry, *reply is the first call's {"result": ...} or {"error": ...} (new
 * reference, NULL when memory ran out); -1: the key was used with other
 * params.
 */
int idempotency_find(const char *user, const char *method, const char *key,
		     const uint8_t digest[32], json_t **reply);
/* Remember the first call's reply ({"result": ...} or {"error": ...}, borrowed). */
void idempotency_record(const char *user, const char *method, const char *key,
			const uint8_t digest[32], const json_t *reply);

#endif

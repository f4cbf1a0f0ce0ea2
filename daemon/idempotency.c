/* Idempotency keys: the first call's reply, by user, method and key, for a window. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <utlist.h>
#include <uthash.h>

#include "commit.h"
#include "config.h"
#include "idempotency.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* Free what json_dumps() returned, with jansson's own free (a test may set another). */
static void
dumps_free(char *text)
{
	json_free_t f;

	json_get_alloc_funcs(NULL, &f);
	f(text);
}

struct idem {
	char *id; /* user '\0' method '\0' key: the hash key (idlen bytes) */
	size_t idlen;
	const char *user, *method, *key; /* inside id */
	uint8_t digest[32];
	char *reply;              /* compact JSON */
	int64_t time;             /* Unix ms of the first call */
	bool fresh;               /* recorded in the open transaction */
	struct idem *prev, *next; /* by time, oldest first */
	struct idem *fresh_next;
	UT_hash_handle hh;
};

static struct {
	struct idem *by_id;   /* uthash */
	struct idem *by_time; /* utlist, oldest first */
	struct idem *fresh;   /* recorded since the last commit */
} ik;

static void
idem_free(struct idem *e)
{
	HASH_DEL(ik.by_id, e);
	DL_DELETE(ik.by_time, e);
	free(e->id);
	free(e->reply);
	free(e);
}

/* Forget the keys older than the window, in memory (the store's go with the next write). */
static bool
idem_expire(int64_t now)
{
	bool any = false;

	while (ik.by_time != NULL && ik.by_time->time < now - config.idempotency_window_ms &&
	       !ik.by_time->fresh) {
		idem_free(ik.by_time);
		any = true;
	}
	return any;
}

static void
idem_on_committed(void *arg)
{
	struct idem *e;

	(void)arg;
	while ((e = ik.fresh) != NULL) {
		ik.fresh = e->fresh_next;
		e->fresh = false;
	}
}

/* The pass's keys were not saved: they were never recorded. */
static int
idem_on_rolled_back(void *arg)
{
	struct idem *e;

	(void)arg;
	while ((e = ik.fresh) != NULL) {
		ik.fresh = e->fresh_next;
		idem_free(e);
	}
	return 0;
}

static const struct commit_participant idem_participant = {
	.name = "idempotency keys",
	.committed = idem_on_committed,
	.rolled_back = idem_on_rolled_back,
};

int
idempotency_init(void)
{
	memset(&ik, 0, sizeof ik);
	commit_register(COMMIT_KEYS, &idem_participant);
	return 0;
}

void
idempotency_finish(void)
{
	while (ik.by_time != NULL)
		idem_free(ik.by_time);
	ik.fresh = NULL;
}

/* The hash key for user, method and key into buf; its length, or 0 if too long. */
static size_t
idem_id(char *buf, size_t size, const char *user, const char *method, const char *key)
{
	size_t u = strlen(user) + 1, m = strlen(method) + 1, k = strlen(key) + 1;

	if (u + m + k > size)
		return 0;
	memcpy(buf, user, u);
	memcpy(buf + u, method, m);
	memcpy(buf + u + m, key, k);
	return u + m + k;
}

static struct idem *
idem_find(const char *user, const char *method, const char *key)
{
	char id[1024];
	size_t n = idem_id(id, sizeof id, user, method, key);
	struct idem *e = NULL;

	if (n > 0)
		HASH_FIND(hh, ik.by_id, id, n, e);
	return e;
}

/* Add an entry (not fresh); NULL when memory ran out. */
static struct idem *
idem_add(const char *user, const char *method, const char *key, const uint8_t digest[32],
	 const char *reply, int64_t time)
{
	char id[1024];
	size_t n = idem_id(id, sizeof id, user, method, key);
	struct idem *e = n > 0 ? calloc(1, sizeof *e) : NULL, *old;

	if (e == NULL || (e->id = malloc(n)) == NULL || (e->reply = strdup(reply)) == NULL) {
		if (e != NULL)
			free(e->id);
		free(e);
		return NULL;
	}
	memcpy(e->id, id, n);
	e->idlen = n;
	e->user = e->id;
	e->method = e->id + strlen(user) + 1;
	e->key = e->method + strlen(method) + 1;
	memcpy(e->digest, digest, sizeof e->digest);
	e->time = time;
	HASH_FIND(hh, ik.by_id, e->id, n, old);
	if (old != NULL) {
		/* Replaced (never while the window holds it, but keep the lists sound). */
		for (struct idem **p = &ik.fresh; *p != NULL; p = &(*p)->fresh_next) {
			if (*p == old) {
				*p = old->fresh_next;
				break;
			}
		}
		idem_free(old);
	}
	HASH_ADD_KEYPTR(hh, ik.by_id, e->id, n, e);
	DL_APPEND(ik.by_time, e);
	return e;
}

void
idempotency_digest(const json_t *params, uint8_t out[32])
{
	char *text = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	unsigned len = 32;

	memset(out, 0, 32);
	if (text == NULL || EVP_Digest(text, strlen(text), out, &len, EVP_sha256(), NULL) != 1)
		log_error("idempotency: cannot digest a request's params");
	if (text != NULL)
		dumps_free(text);
}

int
idempotency_find(const char *user, const char *method, const char *key, const uint8_t digest[32],
		 json_t **reply)
{
	struct idem *e;

	idem_expire(now_ms());
	e = idem_find(user, method, key);
	if (e == NULL)
		return 0;
	if (memcmp(e->digest, digest, sizeof e->digest) != 0)
		return -1;
	*reply = json_loads(e->reply, 0, NULL);
	return 1;
}

void
idempotency_record(const char *user, const char *method, const char *key, const uint8_t digest[32],
		   const json_t *reply)
{
	int64_t now = now_ms();
	char *text = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
	struct idem *e = text != NULL ? idem_add(user, method, key, digest, text, now) : NULL;
	struct store_key k = {
		.user = user, .method = method, .key = key, .reply = text, .time = now};

	if (e == NULL) {
		/* Not remembered: a retry would act again. Fail the pass instead. */
		log_error("idempotency: out of memory recording a key");
		if (text != NULL)
			dumps_free(text);
		store_fail();
		return;
	}
	if (store_durable()) {
		e->fresh = true;
		e->fresh_next = ik.fresh;
		ik.fresh = e;
		memcpy(k.params, digest, sizeof k.params);
		store_put_key(&k);
		if (idem_expire(now))
			store_trim_keys(now - config.idempotency_window_ms);
	} else {
		idem_expire(now);
	}
	dumps_free(text);
}

static int
idem_recover_one(const struct store_key *k, void *arg)
{
	(void)arg;
	return idem_add(k->user, k->method, k->key, k->params, k->reply, k->time) != NULL ? 0 : -1;
}

static int
idem_older(const struct idem *a, const struct idem *b)
{
	return (a->time > b->time) - (a->time < b->time);
}

int
idempotency_recover(void)
{
	if (store_load_keys(idem_recover_one, NULL) != 0)
		return -1;
	/* Loaded in no particular order: put them back in time order for expiry. */
	DL_SORT(ik.by_time, idem_older);
	return 0;
}

/* A hash table of session ids that resizes a few buckets at a time. */
#include <stdlib.h>
#include <string.h>

#include "idtable.h"

#define MIN_BUCKETS 16
#define STEP_BUCKETS 4 /* non-empty buckets moved per insert or remove */

static const uint8_t *
key_of(const struct idtable *t, const struct idnode *n)
{
	return (const uint8_t *)n + t->key_off;
}

/* Ids are random, but a client may choose the ids it looks up: mix with a secret seed. */
static uint64_t
hash(const struct idtable *t, const uint8_t *key)
{
	uint64_t a, b, x;

	memcpy(&a, key, sizeof a);
	memcpy(&b, key + sizeof a, sizeof b);
	x = (a ^ t->seed) + ((b << 32) | (b >> 32));
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static struct idnode **
bucket(const struct idtable *t, int i, uint64_t h)
{
	return &t->t[i][h & (t->size[i] - 1)];
}

int
idtable_init(struct idtable *t, ptrdiff_t key_off)
{
	memset(t, 0, sizeof *t);
	t->key_off = key_off;
	if (random_bytes(&t->seed, sizeof t->seed) != 0)
		t->seed = UINT64_C(0x9e3779b97f4a7c15);
	t->t[0] = calloc(MIN_BUCKETS, sizeof *t->t[0]);
	if (t->t[0] == NULL)
		return -1;
	t->size[0] = MIN_BUCKETS;
	return 0;
}

void
idtable_finish(struct idtable *t)
{
	free(t->t[0]);
	free(t->t[1]);
	memset(t, 0, sizeof *t);
}

size_t
idtable_count(const struct idtable *t)
{
	return t->used[0] + t->used[1];
}

/* Move up to STEP_BUCKETS non-empty buckets (visiting at most ten times as many) to t[1]. */
static void
step(struct idtable *t)
{
	int moved = 0, visited = 0;

	if (t->t[1] == NULL || t->paused)
		return;
	while (moved < STEP_BUCKETS && visited < 10 * STEP_BUCKETS && t->moved < t->size[0]) {
		struct idnode *n = t->t[0][t->moved], *next;

		t->t[0][t->moved++] = NULL;
		visited++;
		if (n == NULL)
			continue;
		moved++;
		for (; n != NULL; n = next) {
			struct idnode **b = bucket(t, 1, hash(t, key_of(t, n)));
			next = n->next;
			n->next = *b;
			*b = n;
			t->used[0]--;
			t->used[1]++;
		}
	}
	if (t->moved == t->size[0]) {
		free(t->t[0]);
		t->t[0] = t->t[1];
		t->size[0] = t->size[1];
		t->used[0] = t->used[1];
		t->t[1] = NULL;
		t->size[1] = t->used[1] = 0;
		t->moved = 0;
	}
}

/* Start growing at one entry per bucket, shrinking below one per eight. */
static void
maybe_resize(struct idtable *t)
{
	size_t n = t->used[0], size = t->size[0], want;

	if (t->t[1] != NULL || t->paused)
		return;
	if (n >= size && size <= SIZE_MAX / 2 / sizeof *t->t[0])
		want = size * 2;
	else if (size > MIN_BUCKETS && n < size / 8)
		want = MIN_BUCKETS;
	else
		return;
	while (want < n * 2)
		want *= 2;
	/* If this fails, chains grow longer and the next insert tries again. */
	t->t[1] = calloc(want, sizeof *t->t[1]);
	if (t->t[1] != NULL)
		t->size[1] = want;
}

void
idtable_insert(struct idtable *t, struct idnode *n)
{
	int i;
	struct idnode **b;

	maybe_resize(t);
	step(t);
	i = t->t[1] != NULL ? 1 : 0;
	b = bucket(t, i, hash(t, key_of(t, n)));
	n->next = *b;
	*b = n;
	t->used[i]++;
}

void
idtable_remove(struct idtable *t, struct idnode *n)
{
	uint64_t h = hash(t, key_of(t, n));

	for (int i = 0; i < 2 && t->t[i] != NULL; i++) {
		for (struct idnode **p = bucket(t, i, h); *p != NULL; p = &(*p)->next) {
			if (*p == n) {
				*p = n->next;
				n->next = NULL;
				t->used[i]--;
				step(t);
				maybe_resize(t);
				return;
			}
		}
	}
}

struct idnode *
idtable_find(const struct idtable *t, const uint8_t key[SESSION_ID_BYTES])
{
	uint64_t h = hash(t, key);

	for (int i = 0; i < 2 && t->t[i] != NULL; i++) {
		for (struct idnode *n = *bucket(t, i, h); n != NULL; n = n->next) {
			if (memcmp(key_of(t, n), key, SESSION_ID_BYTES) == 0)
				return n;
		}
	}
	return NULL;
}

void
idtable_foreach(struct idtable *t, void (*fn)(struct idnode *n, void *arg), void *arg)
{
	t->paused++;
	for (int i = 0; i < 2; i++) {
		for (size_t j = 0; t->t[i] != NULL && j < t->size[i]; j++) {
			struct idnode *n = t->t[i][j], *next;
			for (; n != NULL; n = next) {
				next = n->next;
				fn(n, arg);
			}
		}
	}
	t->paused--;
}

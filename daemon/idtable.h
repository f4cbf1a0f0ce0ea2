/*
 * idtable: objects keyed by a session id (SESSION_ID_BYTES random bytes),
 * in a chained hash table that grows and shrinks a few buckets at a time.
 *
 * uthash rehashes every entry at once when it doubles: 65-105 ms of a frozen
 * event loop on the way to 1M sessions, measured. Here a resize allocates the
 * new bucket array and then moves a few old buckets on every insert and
 * remove (Redis's dict does the same); lookups search both arrays meanwhile.
 *
 * Intrusive: the object embeds a struct idnode, and its key sits at a fixed
 * offset from that node (given to idtable_init()). Not thread-safe; the event
 * loop owns it.
 */
#ifndef RV_IDTABLE_H
#define RV_IDTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct idnode {
	struct idnode *next;
};

struct idtable {
	struct idnode **t[2]; /* t[1] is non-NULL only while resizing */
	size_t size[2];       /* buckets, a power of two */
	size_t used[2];
	size_t moved;      /* while resizing: buckets of t[0] already moved */
	ptrdiff_t key_off; /* key address minus node address */
	uint64_t seed;     /* keeps bucket choice unpredictable to clients */
	int paused;        /* idtable_foreach() running: do not move buckets */
};

/* Set up an empty table; key_off is offsetof(T, key) - offsetof(T, node). 0 or -1. */
int idtable_init(struct idtable *t, ptrdiff_t key_off);
/* Free the bucket arrays (not the objects). */
void idtable_finish(struct idtable *t);

/*
 * Add n, whose key must not be in the table. Never fails: if a larger bucket
 * array cannot be allocated, chains grow longer until one can.
 */
void idtable_insert(struct idtable *t, struct idnode *n);
/* Remove n, which must be in the table. */
void idtable_remove(struct idtable *t, struct idnode *n);
/* The node whose key is key, or NULL. */
struct idnode *idtable_find(const struct idtable *t, const uint8_t key[SESSION_ID_BYTES]);
size_t idtable_count(const struct idtable *t);

/* Call fn on every node; fn may remove (and free) the node it is given, no other. */
void idtable_foreach(struct idtable *t, void (*fn)(struct idnode *n, void *arg), void *arg);

#endif

/*
 * Users by name: who is connected, which sessions they are in, and who
 * subscribed to them. A user lives while anything holds a reference.
 *
 * Loop thread only. A user is owned by its references (user_get(),
 * user_ref(), user_unref()); user_find() returns a borrowed pointer.
 */
#ifndef RV_USERS_H
#define RV_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <uthash.h>

struct device;
struct hub_peer;
struct session;
struct sub;

TAILQ_HEAD(peer_list, hub_peer);

struct user {
	char *name;
	unsigned refs;
	size_t nconns;             /* authenticated connections, closing excluded */
	size_t remote;             /* its devices' connections to other nodes (shared.c) */
	struct peer_list conns;    /* those connections, as the hub sees them (hub.h) */
	struct session *inviting;  /* sessions this user created (utlist, by age) */
	struct session *invited;   /* sessions this user was invited to */
	size_t live_created;       /* live sessions in 'inviting', for the limit */
	size_t held_bytes;         /* what every session in 'inviting' holds (sessions.c) */
	struct sub *subs;          /* subscribe {user: name} targeting this user */
	struct sub *presence_subs; /* subscribe {presence: name} */
	struct device *devices;    /* its devices that something refers to */
	UT_hash_handle hh;
};

/*
 * One of a user's devices (hello's device). Shared, reference-counted: the
 * connections from it and the sessions it created, answered or acted in
 * hold references, so a session costs a pointer per device, and comparing
 * devices is comparing pointers. A device holds a reference to its user.
 */
struct device {
	unsigned refs;
	unsigned nconns; /* authenticated connections from it, as user->nconns (client.c) */
	unsigned remote; /* other nodes it is connected to, with a shared store (shared.c) */
	uint64_t mark;   /* presence_of()'s, to list each device once */
	bool named;      /* a hello chose its name: it keeps outcomes (rpc_outcomes.c) */
	struct user *user;
	struct device *next; /* user->devices */
	char name[];
};

/* Longest device name accepted, in bytes. */
#define DEVICE_NAME_MAX 64

/* Find or create u's device name; a new reference, or NULL (out of memory). */
struct device *device_get(struct user *u, const char *name);
/* Find without creating or referencing (borrowed); NULL if none or u is NULL. */
struct device *device_find(const struct user *u, const char *name);
struct device *device_ref(struct device *d);
void device_unref(struct device *d);
/* Whether name is acceptable as a device: 1-64 bytes of [A-Za-z0-9._:-]. */
int device_name_valid(const char *name);

/* Longest user name accepted, in bytes. */
#define USER_NAME_MAX 256

/* Find or create the user; returns it with a new reference, or NULL. */
struct user *user_get(const char *name);
/* Find without creating or referencing (borrowed), or NULL. */
struct user *user_find(const char *name);
struct user *user_ref(struct user *u);
void user_unref(struct user *u);
/* Whether name is acceptable as a user name (non-empty, short, printable). */
int user_name_valid(const char *name);

#endif

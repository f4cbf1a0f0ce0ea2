/* The table of users by name, reference-counted. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "users.h"

static struct user *users;

struct user *
user_find(const char *name)
{
	struct user *u;

	HASH_FIND_STR(users, name, u);
	return u;
}

struct user *
user_get(const char *name)
{
	struct user *u = user_find(name);

	if (u != NULL)
		return user_ref(u);
	u = calloc(1, sizeof *u);
	if (u == NULL || (u->name = strdup(name)) == NULL) {
		free(u);
		log_error("users: out of memory adding user");
		return NULL;
	}
	u->refs = 1;
	TAILQ_INIT(&u->conns);
	HASH_ADD_KEYPTR(hh, users, u->name, strlen(u->name), u);
	return u;
}

struct user *
user_ref(struct user *u)
{
	u->refs++;
	return u;
}

void
user_unref(struct user *u)
{
	if (u == NULL || --u->refs > 0)
		return;
	HASH_DEL(users, u);
	free(u->name);
	free(u);
}

int
user_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > USER_NAME_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	}
	return 1;
}

struct device *
device_find(const struct user *u, const char *name)
{
	struct device *d;

	for (d = u != NULL ? u->devices : NULL; d != NULL; d = d->next) {
		if (strcmp(d->name, name) == 0)
			return d;
	}
	return NULL;
}

struct device *
device_get(struct user *u, const char *name)
{
	size_t len = strlen(name);
	struct device *d = device_find(u, name);

	if (d != NULL)
		return device_ref(d);
	d = malloc(sizeof *d + len + 1);
	if (d == NULL) {
		log_error("users: out of memory adding a device");
		return NULL;
	}
	d->refs = 1;
	d->nconns = 0;
	d->remote = 0;
	d->mark = 0;
	d->named = false;
	d->user = user_ref(u);
	memcpy(d->name, name, len + 1);
	d->next = u->devices;
	u->devices = d;
	return d;
}

struct device *
device_ref(struct device *d)
{
	if (d != NULL)
		d->refs++;
	return d;
}

void
device_unref(struct device *d)
{
	struct device **p;

	if (d == NULL || --d->refs > 0)
		return;
	for (p = &d->user->devices; *p != d; p = &(*p)->next)
		;
	*p = d->next;
	user_unref(d->user);
	free(d);
}

int
device_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > DEVICE_NAME_MAX)
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") ==
	       len;
}

/* The store front end: picks the backend, keeps the open transaction. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "store.h"

#define STORE_FILE "rendezvous.db"

static struct {
	const struct store_backend *be; /* NULL: memory, nothing kept */
	void *h;
	char *desc;          /* "memory" or "sqlite:PATH" */
	bool in_txn;         /* begun and not yet committed or rolled back */
	bool poisoned;       /* a write of the open transaction failed */
	uint64_t last_event; /* the newest event id written */
} st;

/* Told when a transaction opens (commit.c); kept across store_open()s. */
static struct {
	void (*fn)(void *arg);
	void *arg;
} on_begin;

void
store_on_begin(void (*fn)(void *arg), void *arg)
{
	on_begin.fn = fn;
	on_begin.arg = arg;
}

/*
 * The file --store sqlite:PATH names: PATH, relative to --state-dir (created
 * unless only checking).
 */
static char *
store_path(const char *arg, bool check_only)
{
	const char *dir = config.state_dir;
	char *path;

	if (arg[0] == '/')
		return strdup(arg);
	if (!check_only && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_error("store: cannot create the state directory %s: %s", dir, strerror(errno));
		return NULL;
	}
	if (asprintf(&path, "%s/%s", dir, arg) < 0)
		return NULL;
	return path;
}

int
store_open(bool check_only)
{
	const char *spec = config.store != NULL ? config.store : "sqlite:" STORE_FILE;
	char *path;

	memset(&st, 0, sizeof st);
	if (strcmp(spec, "memory") == 0 || strncmp(spec, "redis", 5) == 0) {
		/* Redis: nothing is written here; shared.c keeps the sessions there. */
		st.desc = strdup(spec);
		return st.desc != NULL ? 0 : -1;
	}
	/* options.c accepted nothing else. */
	path = store_path(spec + strlen("sqlite:"), check_only);
	if (path == NULL)
		return -1;
	st.be = &store_sqlite;
	if (asprintf(&st.desc, "sqlite:%s", path) < 0)
		st.desc = NULL;
	st.h = st.be->open(path, config.durability, check_only);
	free(path);
	if (st.h == NULL || st.desc == NULL) {
		store_close();
		return -1;
	}
	return 0;
}

void
store_close(void)
{
	if (st.be != NULL && st.h != NULL) {
		if (st.in_txn)
			st.be->rollback(st.h);
		st.be->close(st.h);
	}
	free(st.desc);
	memset(&st, 0, sizeof st);
}

const char *
store_describe(void)
{
	return st.desc != NULL ? st.desc : "none";
}

bool
store_durable(void)
{
	return st.be != NULL;
}

int
store_last_event(uint64_t *id)
{
	*id = 0;
	return st.be != NULL ? st.be->last_event(st.h, id) : 0;
}

int
store_load_sessions(store_session_fn fn, void *arg)
{
	return st.be != NULL ? st.be->load_sessions(st.h, fn, arg) : 0;
}

int
store_load_events(uint64_t after, store_event_fn fn, void *arg)
{
	return st.be != NULL ? st.be->load_events(st.h, after, fn, arg) : 0;
}

int
store_get_session(uint64_t seq, store_session_fn fn, void *arg)
{
	return st.be != NULL ? st.be->get_session(st.h, seq, fn, arg) : 0;
}

/* Open the transaction for a write; false if the write must not be tried. */
static bool
store_begin(void)
{
	if (st.be == NULL || st.poisoned)
		return false;
	if (!st.in_txn) {
		st.in_txn = true;
		if (on_begin.fn != NULL)
			on_begin.fn(on_begin.arg);
		if (st.be->begin(st.h) != 0) {
			st.poisoned = true;
			return false;
		}
	}
	return true;
}

void
store_put_session(const struct store_session *rec, bool insert)
{
	if (store_begin() && st.be->put_session(st.h, rec, insert) != 0)
		st.poisoned = true;
}

void
store_delete_session(uint64_t seq)
{
	if (store_begin() && st.be->delete_session(st.h, seq) != 0)
		st.poisoned = true;
}

void
store_add_event(const struct store_event *ev)
{
	if (ev->id > st.last_event)
		st.last_event = ev->id;
	if (store_begin() && st.be->add_event(st.h, ev) != 0)
		st.poisoned = true;
}

void
store_put_key(const struct store_key *k)
{
	if (store_begin() && st.be->put_key(st.h, k) != 0)
		st.poisoned = true;
}

void
store_trim_keys(int64_t before)
{
	if (store_begin() && st.be->trim_keys(st.h, before) != 0)
		st.poisoned = true;
}

void
store_put_outcome(const struct store_outcome *o)
{
	if (store_begin() && st.be->put_outcome(st.h, o) != 0)
		st.poisoned = true;
}

void
store_delete_outcome(const struct store_outcome *o)
{
	if (store_begin() && st.be->delete_outcome(st.h, o) != 0)
		st.poisoned = true;
}

int
store_load_outcomes(store_outcome_fn fn, void *arg)
{
	return st.be != NULL ? st.be->load_outcomes(st.h, fn, arg) : 0;
}

int
store_load_keys(store_key_fn fn, void *arg)
{
	return st.be != NULL ? st.be->load_keys(st.h, fn, arg) : 0;
}

void
store_trim_events(uint64_t below)
{
	if (store_begin() && st.be->trim_events(st.h, below) != 0)
		st.poisoned = true;
}

void
store_fail(void)
{
	if (st.be != NULL) {
		store_begin();
		st.in_txn = st.poisoned = true;
	}
}

bool
store_in_txn(void)
{
	return st.in_txn;
}

int
store_commit(void)
{
	int rc = -1;

	if (!st.in_txn)
		return 0;
	if (!st.poisoned && st.be->commit(st.h, st.last_event) == 0)
		rc = 0;
	else
		st.be->rollback(st.h);
	st.in_txn = st.poisoned = false;
	return rc;
}

void
store_recovered(void)
{
	if (st.be != NULL && st.be->recovered != NULL)
		st.be->recovered(st.h);
}

int
store_check(FILE *out)
{
	if (st.be == NULL) {
		fprintf(out, "store: memory: nothing to check\n");
		return 0;
	}
	return st.be->check(st.h, out);
}

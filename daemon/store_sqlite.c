/*
 * The SQLite backend: one database file in WAL mode, locked (flock) so that
 * no second daemon can share it, a versioned schema with migrations, and
 * prepared statements for the writes of every transition.
 *
 * Checkpoints (copying the WAL into the database, with an fsync of each)
 * run on a thread of their own with its own connection, so that the event
 * loop never waits for them; only if the WAL passes CKPT_CAP frames does
 * the loop checkpoint itself, to bound the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"

/* 'RDVZ' in the file header: marks a rendezvous store. */
#define APPLICATION_ID 0x5244565a

/* Migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[] = {
	/* 1: sessions, events, and the event counter. */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"INSERT INTO meta VALUES ('last_event', 0);"
	"CREATE TABLE sessions ("
	"  seq INTEGER PRIMARY KEY," /* creation order */
	"  id BLOB NOT NULL,"        /* 16 random bytes */
	"  inviter TEXT NOT NULL,"
	"  invitee TEXT NOT NULL,"
	"  state TEXT NOT NULL,"           /* RSS_* */
	"  done_inviter INTEGER NOT NULL," /* actions taken: bit (1 << enum rv_action) */
	"  done_invitee INTEGER NOT NULL,"
	"  done_daemon INTEGER NOT NULL,"
	"  created INTEGER NOT NULL," /* Unix ms */
	"  updated INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  event INTEGER NOT NULL," /* its latest event */
	"  reason TEXT,"
	"  code INTEGER,"
	"  data TEXT," /* JSON */
	"  app_data TEXT"
	");"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY,"
	"  time INTEGER NOT NULL,"
	"  session BLOB NOT NULL,"
	"  inviter TEXT NOT NULL,"
	"  invitee TEXT NOT NULL,"
	"  invitee_visible INTEGER NOT NULL,"
	"  line TEXT NOT NULL" /* the session.state_changed notification */
	");",
	/* 2: devices (issue 14): who created, answered and last acted in a session. */
	"ALTER TABLE sessions ADD COLUMN inviter_device TEXT;"
	"ALTER TABLE sessions ADD COLUMN answered_by TEXT;"
	"ALTER TABLE sessions ADD COLUMN by_user TEXT;"
	"ALTER TABLE sessions ADD COLUMN by_device TEXT;",
	/* 3: topics and glare (issue 14). */
	"ALTER TABLE sessions ADD COLUMN topic TEXT;"
	"ALTER TABLE sessions ADD COLUMN replaced_by BLOB;",
	/* 4: idempotency keys (issue 14): a request's key, and the reply it got. */
	"CREATE TABLE idempotency ("
	"  user TEXT NOT NULL,"
	"  method TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  params BLOB NOT NULL," /* SHA-256 of the params */
	"  reply TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  PRIMARY KEY (user, method, key)"
	") WITHOUT ROWID;",
	/*
	 * 5: outcomes (issue 14): what each device has not learned yet; and
	 * the devices that said hello, with session '' (a zero-length blob).
	 */
	"CREATE TABLE outcomes ("
	"  user TEXT NOT NULL,"
	"  device TEXT NOT NULL,"
	"  session BLOB NOT NULL," /* empty for the device's own row */
	"  time INTEGER NOT NULL,"
	"  params TEXT,"
	"  dropped INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (user, device, session)"
	") WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define SESSION_COLUMNS                                                                        \
	"seq, id, inviter, invitee, state, done_inviter, done_invitee, done_daemon, created, " \
	"updated, expires, event, reason, code, data, app_data, inviter_device, answered_by, " \
	"by_user, by_device, topic, replaced_by"
#define EVENT_COLUMNS "id, time, session, inviter, invitee, invitee_visible, line"

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_SESSION,
	ST_UPDATE_SESSION,
	ST_DELETE_SESSION,
	ST_GET_SESSION,
	ST_LOAD_SESSIONS,
	ST_ADD_EVENT,
	ST_TRIM_EVENTS,
	ST_LOAD_EVENTS,
	ST_GET_LAST_EVENT,
	ST_SET_LAST_EVENT,
	ST_PUT_KEY,
	ST_LOAD_KEYS,
	ST_TRIM_KEYS,
	ST_PUT_OUTCOME,
	ST_DELETE_OUTCOME,
	ST_LOAD_OUTCOMES,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT_SESSION] =
		"INSERT INTO sessions (" SESSION_COLUMNS ") VALUES "
		"(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
		"?19, ?20, ?21, ?22)",
	[ST_UPDATE_SESSION] =
		"UPDATE sessions SET state = ?5, done_inviter = ?6, done_invitee = ?7, "
		"done_daemon = ?8, updated = ?10, expires = ?11, event = ?12, "
		"reason = ?13, code = ?14, app_data = ?16, answered_by = ?18, by_user = ?19, "
		"by_device = ?20, replaced_by = ?22 WHERE seq = ?1",
	[ST_DELETE_SESSION] = "DELETE FROM sessions WHERE seq = ?1",
	[ST_GET_SESSION] = "SELECT " SESSION_COLUMNS " FROM sessions WHERE seq = ?1",
	[ST_LOAD_SESSIONS] = "SELECT " SESSION_COLUMNS " FROM sessions ORDER BY seq",
	[ST_ADD_EVENT] =
		"INSERT INTO events (" EVENT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_TRIM_EVENTS] = "DELETE FROM events WHERE id < ?1",
	[ST_LOAD_EVENTS] = "SELECT " EVENT_COLUMNS " FROM events WHERE id > ?1 ORDER BY id",
	/* The newest event held, or (all trimmed) the newest trimmed. */
	[ST_GET_LAST_EVENT] = ("SELECT max(value, (SELECT ifnull(max(id), 0) FROM events)) "
			       "FROM meta WHERE key = 'last_event'"),
	[ST_SET_LAST_EVENT] = "UPDATE meta SET value = max(value, ?1) WHERE key = 'last_event'",
	[ST_PUT_KEY] =
		"INSERT OR REPLACE INTO idempotency (user, method, key, params, reply, time) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_LOAD_KEYS] = "SELECT user, method, key, params, reply, time FROM idempotency",
	[ST_TRIM_KEYS] = "DELETE FROM idempotency WHERE time < ?1",
	[ST_PUT_OUTCOME] = "INSERT OR REPLACE INTO outcomes (user, device, session, time, params, "
			   "dropped) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_DELETE_OUTCOME] =
		"DELETE FROM outcomes WHERE user = ?1 AND device = ?2 AND session = ?3",
	[ST_LOAD_OUTCOMES] = "SELECT user, device, session, time, params, dropped FROM outcomes "
			     "ORDER BY time",
};

static bool log_configured;

/* Wake the checkpointer each time the WAL grows by this many frames (16 MiB). */
#define CKPT_FRAMES 4000
/* It checkpoints up to this many times in a row while more than CKPT_LEFT frames are left. */
#define CKPT_ROUNDS 4
#define CKPT_LEFT 64
/* Have it flush the WAL each time it grows by this many (1 MiB). */
#define FLUSH_FRAMES 256
/* Past this many (256 MiB), start the WAL again once the checkpointer has caught up. */
#define CKPT_RESTART 64000
/* Past this many (1 GiB), start it again whatever that costs the loop. */
#define CKPT_CAP 256000

struct sq {
	sqlite3 *db; /* the loop's connection */
	char *path;
	int lock_fd; /* flock()ed for as long as the store is open, or -1 */
	sqlite3_stmt *st[ST_COUNT];

	/* The checkpointer: its thread, its connection, and what it is asked. */
	sqlite3 *ckpt_db;
	pthread_t ckpt_thread;
	bool ckpt_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool ckpt_wanted, flush_wanted, ckpt_stop;
	bool ckpt_idle;  /* a checkpoint finished, and none was asked for since */
	int wal_frames;  /* frames in the WAL after the last commit (loop thread) */
	int ckpt_asked;  /* frames in the WAL when a checkpoint was last asked for */
	int flush_asked; /* ... and a flush */
	bool check_only, had_wal, had_shm; /* --check-store, and what was there before */
	bool flush; /* flush between checkpoints (not when every commit is fsync()ed) */
};

/* SQLite's own diagnostics (the errno behind an I/O error, WAL recovery). */
static void
sq_on_log(void *arg, int code, const char *msg)
{
	(void)arg;
	if ((code & 0xff) == SQLITE_NOTICE)
		log_info("sqlite: %s", msg);
	else
		log_warn("sqlite: %s (%s)", msg, sqlite3_errstr(code));
}

static void
sq_error(struct sq *q, const char *what)
{
	if ((sqlite3_extended_errcode(q->db) & 0xff) == SQLITE_BUSY) {
		log_error("store %s: in use by another process (is another rendezvousd running "
			  "on it?)",
			  q->path);
		return;
	}
	log_error("store %s: %s: %s (%s)", q->path, what, sqlite3_errmsg(q->db),
		  sqlite3_errstr(sqlite3_extended_errcode(q->db)));
}

/* Run SQL with no results; 0 or -1 after logging. */
static int
sq_exec(struct sq *q, const char *sql, const char *what)
{
	if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	sq_error(q, what);
	return -1;
}

/* One integer a statement such as a PRAGMA returns; 0 or -1. */
static int
sq_int(struct sq *q, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(q->db, sql, -1, &s, NULL) != SQLITE_OK) {
		sq_error(q, sql);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		*out = 0;
	else
		sq_error(q, sql);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Step a write statement to completion and reset it; 0 or -1. */
static int
sq_run(struct sq *q, enum stmt i)
{
	int rc = sqlite3_step(q->st[i]);

	sqlite3_reset(q->st[i]);
	if (rc == SQLITE_DONE)
		return 0;
	sq_error(q, stmt_sql[i]);
	return -1;
}

/* Whether PATH followed by suffix ("-wal") exists. */
static bool
sq_exists(const char *path, const char *suffix)
{
	char name[PATH_MAX];
	struct stat sb;

	snprintf(name, sizeof name, "%s%s", path, suffix);
	return stat(name, &sb) == 0;
}

static void
sq_remove(const char *path, const char *suffix)
{
	char name[PATH_MAX];

	snprintf(name, sizeof name, "%s%s", path, suffix);
	unlink(name);
}

/*
 * The checkpointer thread: copy the WAL into the database whenever asked,
 * and in between flush what was appended to the WAL, so that the loop's
 * own checkpoints (sq_commit) find little left to flush.
 */
static void *
sq_checkpointer(void *arg)
{
	struct sq *q = arg;
	char *wal = NULL;
	int wal_fd = -1;

	if (asprintf(&wal, "%s-wal", q->path) < 0)
		wal = NULL;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		bool ckpt, flush;
		int rc;

		while (!q->ckpt_wanted && !q->flush_wanted && !q->ckpt_stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->ckpt_stop)
			break;
		ckpt = q->ckpt_wanted;
		flush = q->flush_wanted;
		q->ckpt_wanted = q->flush_wanted = false;
		q->ckpt_idle = false;
		pthread_mutex_unlock(&q->mu);
		if (ckpt) {
			/*
			 * PASSIVE: never blocks the loop's commits, which go on
			 * meanwhile. Again while they left much behind, so that
			 * the loop's restart of the WAL (sq_commit) finds little.
			 */
			int log = 0, done = 0;
			for (int i = 0; i < CKPT_ROUNDS; i++) {
				rc = sqlite3_wal_checkpoint_v2(
					q->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
				if (rc != SQLITE_OK) {
					if (rc != SQLITE_BUSY)
						log_warn("store %s: checkpoint: %s", q->path,
							 sqlite3_errmsg(q->ckpt_db));
					break;
				}
				if (log - done < CKPT_LEFT)
					break;
			}
		} else if (flush && wal != NULL) {
			if (wal_fd < 0)
				wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
			if (wal_fd >= 0 && fdatasync(wal_fd) != 0)
				log_warn("store %s: fdatasync: %s", wal, strerror(errno));
		}
		pthread_mutex_lock(&q->mu);
		q->ckpt_idle = ckpt && !q->ckpt_wanted;
	}
	pthread_mutex_unlock(&q->mu);
	if (wal_fd >= 0)
		close(wal_fd);
	free(wal);
	return NULL;
}

/*
 * After each commit (loop thread): ask for a checkpoint each time the WAL
 * has grown by CKPT_FRAMES since the last request, for a flush each time it
 * has grown by FLUSH_FRAMES.
 */
static int
sq_on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sq *q = arg;
	bool ckpt, flush;

	(void)db;
	(void)name;
	q->wal_frames = frames;
	if (frames < q->ckpt_asked || frames < q->flush_asked)
		q->ckpt_asked = q->flush_asked = 0; /* the WAL started again */
	ckpt = frames - q->ckpt_asked >= CKPT_FRAMES;
	flush = q->flush && frames - q->flush_asked >= FLUSH_FRAMES;
	if (!ckpt && !flush)
		return SQLITE_OK;
	if (ckpt)
		q->ckpt_asked = frames;
	if (flush)
		q->flush_asked = frames;
	pthread_mutex_lock(&q->mu);
	q->ckpt_wanted |= ckpt;
	q->flush_wanted |= flush;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return SQLITE_OK;
}

static void
sq_close(void *h)
{
	struct sq *q = h;

	if (q->ckpt_started) {
		pthread_mutex_lock(&q->mu);
		q->ckpt_stop = true;
		pthread_cond_signal(&q->cv);
		pthread_mutex_unlock(&q->mu);
		pthread_join(q->ckpt_thread, NULL);
	}
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	sqlite3_close(q->ckpt_db);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	/* Closing checkpoints the WAL into the database and removes it. */
	if (sqlite3_close(q->db) != SQLITE_OK)
		sq_error(q, "close");
	if (q->check_only) {
		if (!q->had_wal)
			sq_remove(q->path, "-wal");
		if (!q->had_shm)
			sq_remove(q->path, "-shm");
	}
	/* Only now: closing a descriptor of the file drops SQLite's POSIX locks on it. */
	if (q->lock_fd >= 0)
		close(q->lock_fd);
	free(q->path);
	free(q);
}

/*
 * Lock the store for this process (exclusive for the daemon, shared for
 * --check-store); 0, or -1 after saying who holds it.
 */
static int
sq_lock(struct sq *q, bool check_only)
{
	q->lock_fd = open(q->path, (check_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0600);
	if (q->lock_fd < 0) {
		log_error("store %s: %s", q->path, strerror(errno));
		return -1;
	}
	if (flock(q->lock_fd, (check_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			log_error("store %s: in use by another process (is another rendezvousd "
				  "running on it?)",
				  q->path);
		else
			log_error("store %s: cannot lock it: %s", q->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Start the checkpointer on a connection of its own; 0 or -1. */
static int
sq_start_checkpointer(struct sq *q, enum store_durability d)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;

	if (sqlite3_open_v2(q->path, &q->ckpt_db, flags, NULL) != SQLITE_OK ||
	    sqlite3_exec(q->ckpt_db,
			 d == STORE_STRICT ? "PRAGMA synchronous = FULL"
					   : "PRAGMA synchronous = NORMAL",
			 NULL, NULL, NULL) != SQLITE_OK) {
		log_error("store %s: cannot open a connection for checkpoints: %s", q->path,
			  sqlite3_errmsg(q->ckpt_db));
		return -1;
	}
	if (pthread_create(&q->ckpt_thread, NULL, sq_checkpointer, q) != 0) {
		log_error("store %s: cannot start the checkpoint thread", q->path);
		return -1;
	}
	q->ckpt_started = true;
	q->flush = d != STORE_STRICT;
	/* Replaces SQLite's automatic checkpoints on the loop's connection. */
	sqlite3_wal_hook(q->db, sq_on_wal, q);
	return 0;
}

/*
 * Bring an empty file to the current schema, an older one up to date;
 * refuse anything else.
 */
static int
sq_schema(struct sq *q, bool check_only)
{
	int64_t app, version, tables;
	char sql[96];

	if (sq_int(q, "PRAGMA application_id", &app) != 0 ||
	    sq_int(q, "PRAGMA user_version", &version) != 0 ||
	    sq_int(q, "SELECT count(*) FROM sqlite_schema", &tables) != 0)
		return -1;
	if (app != APPLICATION_ID && (app != 0 || version != 0 || tables != 0)) {
		log_error("store %s: not a rendezvous store (application id %#llx); refusing to "
			  "touch it",
			  q->path, (unsigned long long)app);
		return -1;
	}
	if (version > SCHEMA_VERSION) {
		log_error(
			"store %s: schema version %lld is newer than this rendezvousd knows (%d); "
			"run the newer version, or restore a backup",
			q->path, (long long)version, SCHEMA_VERSION);
		return -1;
	}
	if (version == SCHEMA_VERSION)
		return 0;
	if (check_only) {
		log_error("store %s: schema version %lld; rendezvousd migrates it to %d when it "
			  "starts",
			  q->path, (long long)version, SCHEMA_VERSION);
		return -1;
	}
	if (sq_exec(q, "BEGIN IMMEDIATE", "begin migration") != 0)
		return -1;
	for (int64_t v = version; v < SCHEMA_VERSION; v++) {
		if (sq_exec(q, migrations[v], "migrate") != 0)
			goto fail;
		snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)v + 1);
		if (sq_exec(q, sql, "migrate") != 0)
			goto fail;
	}
	snprintf(sql, sizeof sql, "PRAGMA application_id = %d", APPLICATION_ID);
	if (sq_exec(q, sql, "migrate") != 0 || sq_exec(q, "COMMIT", "commit migration") != 0)
		goto fail;
	if (version == 0)
		log_info("store %s: created (schema version %d)", q->path, SCHEMA_VERSION);
	else
		log_info("store %s: migrated from schema version %lld to %d", q->path,
			 (long long)version, SCHEMA_VERSION);
	return 0;
fail:
	sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void *
sq_open(const char *path, enum store_durability d, bool check_only)
{
	struct sq *q = calloc(1, sizeof *q);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	struct stat sb;
	char *sql;

	if (q == NULL || (q->path = strdup(path)) == NULL) {
		free(q);
		log_error("store %s: out of memory", path);
		return NULL;
	}
	q->lock_fd = -1;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (check_only && stat(path, &sb) != 0) {
		log_error("store %s: %s", path, strerror(errno));
		goto fail;
	}
	/* Users' data: created readable by the daemon only (SQLite gives the WAL the same mode). */
	if (sq_lock(q, check_only) != 0)
		goto fail;
	if (!log_configured) {
		/* Only before SQLite initialises itself (at the first open). */
		sqlite3_config(SQLITE_CONFIG_LOG, sq_on_log, NULL);
		log_configured = true;
	}
	if (sqlite3_open_v2(path, &q->db, flags | (check_only ? 0 : SQLITE_OPEN_CREATE), NULL) !=
	    SQLITE_OK) {
		sq_error(q, "cannot open");
		goto fail;
	}
	/*
	 * A check leaves the files as it found them: a WAL that was there stays
	 * as it was (no checkpoint at close), and sq_close() removes what
	 * opening it added.
	 */
	if (check_only) {
		q->check_only = true;
		q->had_wal = sq_exists(q->path, "-wal");
		q->had_shm = sq_exists(q->path, "-shm");
		if (q->had_wal)
			sqlite3_db_config(q->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	}
	/* The header is checked before anything is written: a foreign file is never touched. */
	if (sq_schema(q, check_only) != 0)
		goto fail;
	if (asprintf(&sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
		     d == STORE_STRICT ? "FULL" : "NORMAL") < 0)
		goto fail;
	if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		sq_error(q, "cannot switch to WAL mode");
		free(sql);
		goto fail;
	}
	free(sql);
	if (!check_only) {
		/* A damaged file is refused, never written over. */
		sqlite3_stmt *s;
		const char *res = NULL;
		if (sqlite3_prepare_v2(q->db, "PRAGMA quick_check", -1, &s, NULL) == SQLITE_OK &&
		    sqlite3_step(s) == SQLITE_ROW)
			res = (const char *)sqlite3_column_text(s, 0);
		if (res == NULL || strcmp(res, "ok") != 0) {
			log_error("store %s: damaged: %s; refusing to start (rendezvousd "
				  "--check-store tells more)",
				  path, res != NULL ? res : sqlite3_errmsg(q->db));
			sqlite3_finalize(s);
			goto fail;
		}
		sqlite3_finalize(s);
	}
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i],
				       NULL) != SQLITE_OK) {
			sq_error(q, stmt_sql[i]);
			goto fail;
		}
	}
	if (!check_only && sq_start_checkpointer(q, d) != 0)
		goto fail;
	return q;
fail:
	sq_close(q);
	return NULL;
}

static int
sq_last_event(void *h, uint64_t *id)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_GET_LAST_EVENT];
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		*id = (uint64_t)sqlite3_column_int64(s, 0);
	else
		sq_error(q, "read the last event id");
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

static const char *
col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* Decode the current row of a session query; -1 if it is not a valid session. */
static int
sq_session_row(struct sq *q, sqlite3_stmt *s, struct store_session *r)
{
	const char *state = col_text(s, 4);
	const char *why = NULL;
	int64_t done[3];

	memset(r, 0, sizeof *r);
	r->seq = (uint64_t)sqlite3_column_int64(s, 0);
	if (sqlite3_column_type(s, 1) != SQLITE_BLOB ||
	    sqlite3_column_bytes(s, 1) != SESSION_ID_BYTES)
		why = "its id is not 16 bytes";
	else
		memcpy(r->id, sqlite3_column_blob(s, 1), SESSION_ID_BYTES);
	r->inviter = col_text(s, 2);
	r->invitee = col_text(s, 3);
	if (r->inviter == NULL || r->invitee == NULL)
		why = "a party is missing";
	if (state == NULL || rv_state_from_name(state, &r->m.state) != 0 ||
	    r->m.state == RSS_UNKNOWN)
		why = "its state is not valid";
	for (int i = 0; i < 3; i++) {
		done[i] = sqlite3_column_int64(s, 5 + i);
		if (done[i] < 0 || done[i] > UINT16_MAX)
			why = "its actions are not valid";
	}
	r->m.done[RV_ROLE_INVITER] = (uint16_t)done[0];
	r->m.done[RV_ROLE_INVITEE] = (uint16_t)done[1];
	r->m.done[RV_ROLE_DAEMON] = (uint16_t)done[2];
	r->created = sqlite3_column_int64(s, 8);
	r->updated = sqlite3_column_int64(s, 9);
	r->expires = sqlite3_column_int64(s, 10);
	r->event = (uint64_t)sqlite3_column_int64(s, 11);
	r->reason = col_text(s, 12);
	r->has_code = sqlite3_column_type(s, 13) != SQLITE_NULL;
	r->code = sqlite3_column_int64(s, 13);
	r->data = col_text(s, 14);
	r->app_data = col_text(s, 15);
	r->inviter_device = col_text(s, 16);
	r->answered_by = col_text(s, 17);
	r->by_user = col_text(s, 18);
	r->by_device = col_text(s, 19);
	r->topic = col_text(s, 20);
	if (sqlite3_column_type(s, 21) == SQLITE_BLOB) {
		if (sqlite3_column_bytes(s, 21) != SESSION_ID_BYTES)
			why = "its replaced_by is not a session id";
		else
			memcpy(r->replaced_by, sqlite3_column_blob(s, 21), SESSION_ID_BYTES);
		r->replaced = true;
	}
	if (why != NULL) {
		log_error("store %s: session %llu is damaged: %s", q->path,
			  (unsigned long long)r->seq, why);
		return -1;
	}
	return 0;
}

/* Step a session query, calling fn for each row; the number of rows, or -1. */
static int
sq_sessions(struct sq *q, sqlite3_stmt *s, store_session_fn fn, void *arg)
{
	struct store_session r;
	int rc, n = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sq_session_row(q, s, &r) != 0 || fn(&r, arg) != 0) {
			sqlite3_reset(s);
			return -1;
		}
		n++;
	}
	if (rc != SQLITE_DONE)
		sq_error(q, "read sessions");
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? n : -1;
}

static int
sq_load_sessions(void *h, store_session_fn fn, void *arg)
{
	struct sq *q = h;

	return sq_sessions(q, q->st[ST_LOAD_SESSIONS], fn, arg) < 0 ? -1 : 0;
}

static int
sq_get_session(void *h, uint64_t seq, store_session_fn fn, void *arg)
{
	struct sq *q = h;

	sqlite3_bind_int64(q->st[ST_GET_SESSION], 1, (sqlite3_int64)seq);
	return sq_sessions(q, q->st[ST_GET_SESSION], fn, arg);
}

static int
sq_load_events(void *h, uint64_t after, store_event_fn fn, void *arg)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_LOAD_EVENTS];
	struct store_event ev;
	int rc;

	sqlite3_bind_int64(s, 1, (sqlite3_int64)after);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&ev, 0, sizeof ev);
		ev.id = (uint64_t)sqlite3_column_int64(s, 0);
		ev.time = sqlite3_column_int64(s, 1);
		ev.inviter = col_text(s, 3);
		ev.invitee = col_text(s, 4);
		ev.invitee_visible = sqlite3_column_int(s, 5) != 0;
		ev.line = col_text(s, 6);
		ev.len = (size_t)sqlite3_column_bytes(s, 6);
		if (sqlite3_column_bytes(s, 2) != SESSION_ID_BYTES || ev.inviter == NULL ||
		    ev.invitee == NULL || ev.line == NULL || ev.len == 0 ||
		    ev.line[ev.len - 1] != '\n') {
			log_error("store %s: event %llu is damaged", q->path,
				  (unsigned long long)ev.id);
			sqlite3_reset(s);
			return -1;
		}
		memcpy(ev.sid, sqlite3_column_blob(s, 2), SESSION_ID_BYTES);
		if (fn(&ev, arg) != 0) {
			sqlite3_reset(s);
			return -1;
		}
	}
	if (rc != SQLITE_DONE)
		sq_error(q, "read events");
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
sq_begin(void *h)
{
	return sq_run(h, ST_BEGIN);
}

static void
bind_text(sqlite3_stmt *s, int i, const char *text)
{
	if (text != NULL)
		sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static int
sq_put_session(void *h, const struct store_session *r, bool insert)
{
	struct sq *q = h;
	enum stmt i = insert ? ST_INSERT_SESSION : ST_UPDATE_SESSION;
	sqlite3_stmt *s = q->st[i];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)r->seq);
	if (insert) {
		sqlite3_bind_blob(s, 2, r->id, SESSION_ID_BYTES, SQLITE_STATIC);
		bind_text(s, 3, r->inviter);
		bind_text(s, 4, r->invitee);
		sqlite3_bind_int64(s, 9, r->created);
		bind_text(s, 15, r->data);
		bind_text(s, 17, r->inviter_device);
		bind_text(s, 21, r->topic);
	}
	bind_text(s, 5, rv_state_name(r->m.state));
	sqlite3_bind_int(s, 6, r->m.done[RV_ROLE_INVITER]);
	sqlite3_bind_int(s, 7, r->m.done[RV_ROLE_INVITEE]);
	sqlite3_bind_int(s, 8, r->m.done[RV_ROLE_DAEMON]);
	sqlite3_bind_int64(s, 10, r->updated);
	sqlite3_bind_int64(s, 11, r->expires);
	sqlite3_bind_int64(s, 12, (sqlite3_int64)r->event);
	bind_text(s, 13, r->reason);
	if (r->has_code)
		sqlite3_bind_int64(s, 14, r->code);
	else
		sqlite3_bind_null(s, 14);
	bind_text(s, 16, r->app_data);
	bind_text(s, 18, r->answered_by);
	bind_text(s, 19, r->by_user);
	bind_text(s, 20, r->by_device);
	if (r->replaced)
		sqlite3_bind_blob(s, 22, r->replaced_by, SESSION_ID_BYTES, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 22);
	return sq_run(q, i);
}

static int
sq_delete_session(void *h, uint64_t seq)
{
	struct sq *q = h;

	sqlite3_bind_int64(q->st[ST_DELETE_SESSION], 1, (sqlite3_int64)seq);
	return sq_run(q, ST_DELETE_SESSION);
}

static int
sq_add_event(void *h, const struct store_event *ev)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_ADD_EVENT];

	sqlite3_bind_int64(s, 1, (sqlite3_int64)ev->id);
	sqlite3_bind_int64(s, 2, ev->time);
	sqlite3_bind_blob(s, 3, ev->sid, SESSION_ID_BYTES, SQLITE_STATIC);
	bind_text(s, 4, ev->inviter);
	bind_text(s, 5, ev->invitee);
	sqlite3_bind_int(s, 6, ev->invitee_visible);
	sqlite3_bind_text(s, 7, ev->line, (int)ev->len, SQLITE_STATIC);
	return sq_run(q, ST_ADD_EVENT);
}

static int
sq_put_key(void *h, const struct store_key *k)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_PUT_KEY];

	bind_text(s, 1, k->user);
	bind_text(s, 2, k->method);
	bind_text(s, 3, k->key);
	sqlite3_bind_blob(s, 4, k->params, sizeof k->params, SQLITE_STATIC);
	bind_text(s, 5, k->reply);
	sqlite3_bind_int64(s, 6, k->time);
	return sq_run(q, ST_PUT_KEY);
}

static int
sq_trim_keys(void *h, int64_t before)
{
	struct sq *q = h;

	sqlite3_bind_int64(q->st[ST_TRIM_KEYS], 1, before);
	return sq_run(q, ST_TRIM_KEYS);
}

static int
sq_load_keys(void *h, store_key_fn fn, void *arg)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_LOAD_KEYS];
	struct store_key k;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&k, 0, sizeof k);
		k.user = col_text(s, 0);
		k.method = col_text(s, 1);
		k.key = col_text(s, 2);
		k.reply = col_text(s, 4);
		k.time = sqlite3_column_int64(s, 5);
		if (k.user == NULL || k.method == NULL || k.key == NULL || k.reply == NULL ||
		    sqlite3_column_bytes(s, 3) != (int)sizeof k.params) {
			log_error("store %s: an idempotency key is damaged", q->path);
			sqlite3_reset(s);
			return -1;
		}
		memcpy(k.params, sqlite3_column_blob(s, 3), sizeof k.params);
		if (fn(&k, arg) != 0) {
			sqlite3_reset(s);
			return -1;
		}
	}
	if (rc != SQLITE_DONE)
		sq_error(q, "read idempotency keys");
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Bind an outcome's key: user, device, and the session (empty for the device's row). */
static void
bind_outcome(sqlite3_stmt *s, const struct store_outcome *o)
{
	static const uint8_t none[1];

	bind_text(s, 1, o->user);
	bind_text(s, 2, o->device);
	if (o->session != NULL)
		sqlite3_bind_blob(s, 3, o->session, SESSION_ID_BYTES, SQLITE_STATIC);
	else
		sqlite3_bind_blob(s, 3, none, 0, SQLITE_STATIC);
}

static int
sq_put_outcome(void *h, const struct store_outcome *o)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_PUT_OUTCOME];

	bind_outcome(s, o);
	sqlite3_bind_int64(s, 4, o->time);
	bind_text(s, 5, o->params);
	sqlite3_bind_int64(s, 6, o->dropped);
	return sq_run(q, ST_PUT_OUTCOME);
}

static int
sq_delete_outcome(void *h, const struct store_outcome *o)
{
	struct sq *q = h;

	bind_outcome(q->st[ST_DELETE_OUTCOME], o);
	return sq_run(q, ST_DELETE_OUTCOME);
}

static int
sq_load_outcomes(void *h, store_outcome_fn fn, void *arg)
{
	struct sq *q = h;
	sqlite3_stmt *s = q->st[ST_LOAD_OUTCOMES];
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_outcome o = {0};
		int n = sqlite3_column_bytes(s, 2);

		o.user = col_text(s, 0);
		o.device = col_text(s, 1);
		o.session = n == SESSION_ID_BYTES ? sqlite3_column_blob(s, 2) : NULL;
		o.time = sqlite3_column_int64(s, 3);
		o.params = col_text(s, 4);
		o.dropped = sqlite3_column_int64(s, 5);
		if (o.user == NULL || o.device == NULL || (n != 0 && n != SESSION_ID_BYTES) ||
		    (o.session != NULL && o.params == NULL)) {
			log_error("store %s: an outcome is damaged", q->path);
			sqlite3_reset(s);
			return -1;
		}
		if (fn(&o, arg) != 0) {
			sqlite3_reset(s);
			return -1;
		}
	}
	if (rc != SQLITE_DONE)
		sq_error(q, "read outcomes");
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
sq_trim_events(void *h, uint64_t below)
{
	struct sq *q = h;

	/* What is trimmed keeps counting: meta remembers the newest of it. */
	sqlite3_bind_int64(q->st[ST_SET_LAST_EVENT], 1, (sqlite3_int64)below - 1);
	if (sq_run(q, ST_SET_LAST_EVENT) != 0)
		return -1;
	sqlite3_bind_int64(q->st[ST_TRIM_EVENTS], 1, (sqlite3_int64)below);
	return sq_run(q, ST_TRIM_EVENTS);
}

static int
sq_commit(void *h, uint64_t last_event)
{
	struct sq *q = h;
	bool ckpt_idle;
	int rc;

	/* The events table holds last_event (trims keep the counter in meta). */
	(void)last_event;
	if (sq_run(q, ST_COMMIT) != 0)
		return -1;
	if (q->wal_frames < CKPT_RESTART)
		return 0;
	pthread_mutex_lock(&q->mu);
	ckpt_idle = q->ckpt_idle;
	pthread_mutex_unlock(&q->mu);
	if (!ckpt_idle && q->wal_frames < CKPT_CAP)
		return 0;
	/*
	 * A passive checkpoint never finds the WAL without new frames under a
	 * steady load, and the WAL only starts again from its beginning once
	 * all of it is in the database. So the loop finishes the job: cheaply
	 * right after the thread's checkpoint (little is left to copy and to
	 * flush), or, past the cap, whatever it costs.
	 */
	rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	if (rc == SQLITE_OK) {
		q->wal_frames = q->ckpt_asked = q->flush_asked = 0;
		pthread_mutex_lock(&q->mu);
		q->ckpt_idle = false;
		pthread_mutex_unlock(&q->mu);
	} else if (rc != SQLITE_BUSY) {
		sq_error(q, "checkpoint");
	}
	return 0;
}

static void
sq_rollback(void *h)
{
	struct sq *q = h;

	/* SQLite may have rolled back already after an I/O error or a full disk. */
	if (!sqlite3_get_autocommit(q->db))
		sq_run(q, ST_ROLLBACK);
}

struct check_counts {
	uint64_t sessions, live, max_event;
};

static int
check_session(const struct store_session *r, void *arg)
{
	struct check_counts *c = arg;

	c->sessions++;
	c->live += !rv_state_is_final(r->m.state);
	if (r->event > c->max_event)
		c->max_event = r->event;
	return 0;
}

static int
sq_check(void *h, FILE *out)
{
	struct sq *q = h;
	struct check_counts c = {0};
	sqlite3_stmt *s;
	int64_t version, nevents, first, last;
	uint64_t last_event;
	int problems = 0, rc;

	if (sqlite3_prepare_v2(q->db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK) {
		sq_error(q, "integrity check");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *msg = col_text(s, 0);
		if (msg != NULL && strcmp(msg, "ok") != 0) {
			fprintf(out, "store %s: damaged: %s\n", q->path, msg);
			problems++;
		}
	}
	if (rc != SQLITE_DONE) {
		fprintf(out, "store %s: damaged: %s\n", q->path, sqlite3_errmsg(q->db));
		problems++;
	}
	sqlite3_finalize(s);
	if (problems > 0)
		return -1;
	if (sq_int(q, "PRAGMA user_version", &version) != 0 || sq_last_event(q, &last_event) != 0 ||
	    sq_load_sessions(q, check_session, &c) != 0 ||
	    sq_int(q, "SELECT count(*) FROM events", &nevents) != 0 ||
	    sq_int(q, "SELECT min(id) FROM events", &first) != 0 ||
	    sq_int(q, "SELECT max(id) FROM events", &last) != 0) {
		fprintf(out, "store %s: cannot be read (the log says why)\n", q->path);
		return -1;
	}
	if (nevents > 0 && last - first + 1 != nevents) {
		fprintf(out, "store %s: events %lld to %lld have gaps (%lld held)\n", q->path,
			(long long)first, (long long)last, (long long)nevents);
		problems++;
	}
	if ((uint64_t)last > last_event || c.max_event > last_event) {
		fprintf(out, "store %s: an event is newer than the last event id %llu\n", q->path,
			(unsigned long long)last_event);
		problems++;
	}
	fprintf(out,
		"store %s: schema %lld, %llu sessions (%llu live, %llu ended), %lld events "
		"held (%lld to %lld), last event %llu: %s\n",
		q->path, (long long)version, (unsigned long long)c.sessions,
		(unsigned long long)c.live, (unsigned long long)(c.sessions - c.live),
		(long long)nevents, (long long)first, (long long)last,
		(unsigned long long)last_event, problems ? "DAMAGED" : "ok");
	return problems ? -1 : 0;
}

const struct store_backend store_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.last_event = sq_last_event,
	.load_sessions = sq_load_sessions,
	.load_events = sq_load_events,
	.get_session = sq_get_session,
	.begin = sq_begin,
	.put_session = sq_put_session,
	.delete_session = sq_delete_session,
	.add_event = sq_add_event,
	.trim_events = sq_trim_events,
	.load_keys = sq_load_keys,
	.put_key = sq_put_key,
	.trim_keys = sq_trim_keys,
	.load_outcomes = sq_load_outcomes,
	.put_outcome = sq_put_outcome,
	.delete_outcome = sq_delete_outcome,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.check = sq_check,
};

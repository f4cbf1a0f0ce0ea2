/*
 * The SQLite backend: a journal (journal.h) that every commit appends one
 * frame to, and one database file in WAL mode that the applier thread
 * folds finished journal segments into; locked (flock) so that no second
 * daemon can share it, with a versioned schema, migrations, and prepared
 * statements for the writes a fold makes. The loop never writes the
 * database; it reads it, with the unfolded journal on top (the overlay),
 * at start-up and after a failed commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"
#include "log.h"
#include "store.h"
#include "store_batch.h"
#include "store_codec.h"

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
	/* 6: the journal (issue 17): the number of the last frame folded into the tables. */
	"INSERT INTO meta VALUES ('journal', 0);",
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
	ST_GET_JOURNAL,
	ST_SET_JOURNAL,
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
	[ST_GET_JOURNAL] = "SELECT value FROM meta WHERE key = 'journal'",
	[ST_SET_JOURNAL] = "UPDATE meta SET value = ?1 WHERE key = 'journal'",
};

static bool log_configured;

/* Past this size the journal starts a new segment, and the applier folds the old one in. */
#define SEGMENT_BYTES (64u << 20)
/* The tests' way to see many segments folded: RV_TEST_SEGMENT_BYTES in the environment. */
#define SEGMENT_ENV "RV_TEST_SEGMENT_BYTES"
/* With --durability normal, the applier flushes the journal each time it grows by this much. */
#define FLUSH_BYTES (1u << 20)
/* ...and at most this long (ms) after an append, as Redis's appendfsync everysec. */
#define FLUSH_MS 1000
/*
 * While fewer than this many finished segments wait, the applier runs only
 * when nothing else wants the core (SCHED_IDLE); beyond, as any thread.
 */
#define FOLD_BACKLOG 2
/* After a failed fold, the applier tries again this much later (ms). */
#define FOLD_RETRY_MS 1000

/* A finished segment waiting to be folded into the tables. */
struct pending {
	char *path;
	struct pending *next;
};

/*
 * Two copies of what is stored: the tables, and the journal of what
 * changed since they were last brought up to date. The loop appends each
 * transaction to the journal as one frame (journal.h, store_codec.h) and
 * never writes the tables; the applier thread folds each finished segment
 * into them (store_batch.h) in one SQLite transaction, and then removes it.
 */
struct sq {
	sqlite3 *db;  /* the loop's at start-up, then the applier's */
	sqlite3 *rdb; /* the loop's reads once the applier runs (start-up, reloads) */
	sqlite3_stmt *rst[ST_COUNT]; /* the reads, on rdb */
	char *path;
	int lock_fd; /* flock()ed for as long as the store is open, or -1 */
	sqlite3_stmt *st[ST_COUNT];
	enum store_durability durability;

	/* The loop's: the journal, the transaction being encoded, when to ask for a flush. */
	struct journal *jnl;
	struct codec_buf txn;
	uint64_t segment_bytes; /* start a new segment past this size */
	uint64_t flush_asked;   /* the journal's size when a flush was last asked for */
	/* The overlay: what the unfolded journal changes, put on the tables by reads. */
	struct batch *overlay;
	struct journal_file *overlay_files;
	size_t noverlay;
	uint64_t overlay_next; /* the journal's next frame when it was read */

	/* The applier: its thread, what it is asked, and what it did. */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_mutex_t fold_mu; /* held while a segment is folded in and removed */
	struct pending *queue, **queue_tail;
	char *flush_path;          /* flush this segment */
	char *current;             /* the segment being appended to */
	_Atomic uint64_t appended; /* bytes appended under normal durability (loop: adds) */
	bool stop;
	int applier_policy; /* the applier's scheduling policy now (its own) */
	size_t inherited;   /* segments a start found, first in the queue, not folded yet */
	bool check_only, had_wal, had_shm; /* --check-store, and what was there before */
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

static void sq_stop_applier(struct sq *q);
static void sq_overlay_free(struct sq *q);

static void
sq_close(void *h)
{
	struct sq *q = h;

	sq_stop_applier(q);
	sq_overlay_free(q);
	codec_buf_free(&q->txn);
	free(q->flush_path);
	free(q->current);
	pthread_mutex_destroy(&q->mu);
	pthread_mutex_destroy(&q->fold_mu);
	pthread_cond_destroy(&q->cv);
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(q->st[i]);
		sqlite3_finalize(q->rst[i]);
	}
	sqlite3_close(q->rdb);
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

/* A read statement: the loop's own connection's once the applier has the other. */
static sqlite3_stmt *
rd(struct sq *q, enum stmt i)
{
	return q->rdb != NULL ? q->rst[i] : q->st[i];
}

static int sq_recover_journal(struct sq *q);
static int sq_start_applier(struct sq *q);

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
	q->durability = d;
	q->queue_tail = &q->queue;
	q->segment_bytes = SEGMENT_BYTES;
	if (getenv(SEGMENT_ENV) != NULL && atoll(getenv(SEGMENT_ENV)) > 0)
		q->segment_bytes = (uint64_t)atoll(getenv(SEGMENT_ENV));
	pthread_mutex_init(&q->mu, NULL);
	pthread_mutex_init(&q->fold_mu, NULL);
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
	/*
	 * The tables are written only when a journal segment is folded in,
	 * which must be on disk before the segment goes: FULL whatever the
	 * durability (it is the journal that makes a reply wait, or not).
	 */
	if (asprintf(&sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
			   "PRAGMA cache_size = -32768;") < 0)
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
	if (!check_only && (sq_recover_journal(q) != 0 || sq_start_applier(q) != 0))
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
	sqlite3_stmt *s = rd(q, ST_GET_LAST_EVENT);
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
sq_load_events(void *h, uint64_t after, store_event_fn fn, void *arg)
{
	struct sq *q = h;
	sqlite3_stmt *s = rd(q, ST_LOAD_EVENTS);
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
		if (q->overlay != NULL &&
		    (ev.id < batch_below(q->overlay) || (batch_first_event(q->overlay) != 0 &&
							 ev.id >= batch_first_event(q->overlay))))
			continue; /* trimmed by the journal, or folded in since: it has them */
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
	sqlite3_stmt *s = rd(q, ST_LOAD_KEYS);
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
		if (q->overlay != NULL &&
		    (batch_key_touched(q->overlay, &k) || batch_key_trimmed(q->overlay, &k)))
			continue; /* written again, or trimmed, since */
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
	sqlite3_stmt *s = rd(q, ST_LOAD_OUTCOMES);
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
		if (q->overlay != NULL && batch_outcome_touched(q->overlay, &o))
			continue; /* the journal has its newer state */
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

static void
sq_rollback(void *h)
{
	struct sq *q = h;

	/* SQLite may have rolled back already after an I/O error or a full disk. */
	if (!sqlite3_get_autocommit(q->db))
		sq_run(q, ST_ROLLBACK);
}

/* What batch_apply() writes the tables with (the applier's connection). */
static const struct store_backend sql_writes = {
	.name = "sqlite tables",
	.put_session = sq_put_session,
	.delete_session = sq_delete_session,
	.add_event = sq_add_event,
	.trim_events = sq_trim_events,
	.put_key = sq_put_key,
	.trim_keys = sq_trim_keys,
	.put_outcome = sq_put_outcome,
	.delete_outcome = sq_delete_outcome,
};

/* ---- folding the journal into the tables ---- */

/* Segments read into one batch: the frames after 'folded', with no gap. */
struct fold {
	struct batch *b;
	uint64_t folded;        /* the tables hold every frame up to this one */
	uint64_t next;          /* the number the next frame must carry (0: any) */
	uint64_t next_unfolded; /* count_frame(): after the last frame the tables lack */
	bool gap;               /* the first frame after 'folded' is missing */
};

static int
fold_frame(uint64_t seq, const uint8_t *payload, size_t len, void *arg)
{
	struct fold *f = arg;

	if (seq <= f->folded)
		return 0; /* folded in before; its segment was not removed yet */
	if (batch_frames(f->b) == 0 && seq != f->folded + 1) {
		f->gap = true;
		return -1;
	}
	return batch_add(f->b, seq, payload, len);
}

/* The number of the last frame the tables hold; 0 or -1. */
static int
sq_folded(struct sq *q, sqlite3_stmt *s, uint64_t *out)
{
	int rc = sqlite3_step(s);

	*out = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	sq_error(q, "read the journal's position");
	return -1;
}

/*
 * Read segments (n of them, in order) into f->b, from f->next on. tail:
 * the last one may end in a torn frame (a crash while appending), which
 * is dropped with a warning; anywhere else, a frame that does not check is
 * damage. 0 or -1 after logging.
 */
static int
sq_read_segments(struct sq *q, struct journal_segment *segs, size_t n, struct journal_file *files,
		 struct fold *f, bool tail)
{
	for (size_t i = 0; i < n; i++) {
		long long whole;

		if (journal_load(segs[i].path, &files[i]) != 0)
			return -1;
		whole = journal_scan(&files[i], &f->next, fold_frame, f);
		if (f->gap) {
			log_error("store %s: journal frame %llu is missing (%s starts later); the "
				  "store is damaged",
				  q->path, (unsigned long long)f->folded + 1, segs[i].path);
			return -1;
		}
		if (whole < 0)
			return -1;
		if ((size_t)whole == files[i].len)
			continue;
		if (!tail || i + 1 < n) {
			log_error("store %s: journal %s is damaged at byte %lld of %zu", q->path,
				  segs[i].path, whole, files[i].len);
			return -1;
		}
		log_warn("store %s: journal %s ends in %zu bytes of a change that was never "
			 "whole (the daemon stopped while writing it); dropped",
			 q->path, segs[i].path, files[i].len - (size_t)whole);
	}
	return 0;
}

/* Write a batch into the tables in one transaction (the applier's connection); 0 or -1. */
static int
sq_apply(struct sq *q, const struct batch *b)
{
	if (batch_frames(b) == 0)
		return 0;
	if (sq_run(q, ST_BEGIN) != 0)
		return -1;
	sqlite3_bind_int64(q->st[ST_SET_JOURNAL], 1, (sqlite3_int64)batch_last(b));
	if (batch_apply(b, &sql_writes, q) != 0 || sq_run(q, ST_SET_JOURNAL) != 0 ||
	    sq_run(q, ST_COMMIT) != 0) {
		sq_rollback(q);
		return -1;
	}
	/* The WAL back into the database file while nobody reads: it stays small. */
	if (sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) !=
	    SQLITE_OK)
		log_info("store %s: checkpoint deferred: %s", q->path, sqlite3_errmsg(q->db));
	return 0;
}

/*
 * Fold segments into the tables and remove them; *last gets the number of
 * the last whole frame (0: none). 0 or -1 (nothing removed).
 */
static int
sq_fold(struct sq *q, struct journal_segment *segs, size_t n, bool tail, uint64_t *last)
{
	struct journal_file *files = calloc(n ? n : 1, sizeof *files);
	struct fold f = {.b = batch_new()};
	int rc = -1;

	*last = 0;
	if (files == NULL || f.b == NULL) {
		log_error("store %s: out of memory reading the journal", q->path);
		goto done;
	}
	if (sq_folded(q, q->st[ST_GET_JOURNAL], &f.folded) != 0 ||
	    sq_read_segments(q, segs, n, files, &f, tail) != 0 || sq_apply(q, f.b) != 0)
		goto done;
	*last = f.next > 0 ? f.next - 1 : f.folded;
	if (*last < f.folded)
		*last = f.folded;
	for (size_t i = 0; i < n; i++)
		unlink(segs[i].path);
	rc = 0;
done:
	for (size_t i = 0; files != NULL && i < n; i++)
		journal_file_free(&files[i]);
	free(files);
	batch_free(f.b);
	return rc;
}

/* Counting frames (sq_recover_journal): the first unfolded one must follow the tables. */
static int
count_frame(uint64_t seq, const uint8_t *payload, size_t len, void *arg)
{
	struct fold *f = arg;

	(void)payload;
	(void)len;
	if (seq <= f->folded)
		return 0;
	if (f->gap || (f->next_unfolded == 0 && seq != f->folded + 1)) {
		f->gap = true;
		return -1;
	}
	f->next_unfolded = seq + 1;
	return 0;
}

/*
 * At start-up: check the journal, cut off a torn last frame, and hand its
 * segments to the applier, which folds them in once the daemon runs; until
 * then reads see them through the overlay, as after a failed commit. So a
 * start costs reading the journal, not writing it into the tables first.
 * Then start a new segment.
 */
static int
sq_recover_journal(struct sq *q)
{
	struct journal_segment *segs;
	struct fold f = {0};
	uint64_t last;
	size_t n, queued = 0;
	int rc = -1;

	if (journal_list(q->path, &segs, &n) != 0)
		return -1;
	if (sq_folded(q, q->st[ST_GET_JOURNAL], &f.folded) != 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		struct journal_file file;
		uint64_t before = f.next_unfolded;
		long long whole;
		size_t len;

		if (journal_load(segs[i].path, &file) != 0)
			goto done;
		whole = journal_scan(&file, &f.next, count_frame, &f);
		len = file.len;
		journal_file_free(&file);
		if (f.gap) {
			log_error("store %s: journal frame %llu is missing (%s starts later); the "
				  "store is damaged",
				  q->path, (unsigned long long)f.folded + 1, segs[i].path);
			goto done;
		}
		if (whole < 0 || (size_t)whole < len) {
			if (i + 1 < n || whole < 0) {
				log_error("store %s: journal %s is damaged at byte %lld of %zu",
					  q->path, segs[i].path, whole, len);
				goto done;
			}
			log_warn("store %s: journal %s ends in %zu bytes of a change that was "
				 "never whole (the daemon stopped while writing it); cut off",
				 q->path, segs[i].path, len - (size_t)whole);
			if (truncate(segs[i].path, (off_t)whole) != 0) {
				log_error("store %s: cannot cut %s short: %s", q->path,
					  segs[i].path, strerror(errno));
				goto done;
			}
		}
		if (f.next_unfolded == before) {
			/* Nothing the tables lack (folded, or empty): not needed. */
			unlink(segs[i].path);
			continue;
		}
		struct pending *p = calloc(1, sizeof *p);
		if (p == NULL) {
			log_error("store %s: out of memory", q->path);
			goto done;
		}
		p->path = segs[i].path;
		segs[i].path = NULL;
		*q->queue_tail = p;
		q->queue_tail = &p->next;
		queued++;
	}
	last = f.next > 0 ? f.next - 1 : 0;
	if (last < f.folded)
		last = f.folded;
	q->inherited = queued;
	if (queued > 0)
		log_info("store %s: %zu journal segments to fold in (changes %llu to %llu)",
			 q->path, queued, (unsigned long long)f.folded + 1,
			 (unsigned long long)last);
	q->jnl = journal_open(q->path, last + 1);
	rc = q->jnl != NULL ? 0 : -1;
done:
	journal_segments_free(segs, n);
	return rc;
}

/*
 * A fold runs below the loop: on a shared core it waits for the replies
 * rather than the other way round. SCHED_IDLE, because a nice value is not
 * enough: a woken loop still waited for the end of the fold's time slice
 * (lifecycle p99 3.8-5.2 ms with folds, 1.3-1.9 ms without, nice 10 or
 * not). urgent (the backlog grows): an ordinary thread again, so that a
 * loop that never rests cannot starve the folds for ever.
 */
static void
sq_applier_priority(struct sq *q, bool urgent)
{
	struct sched_param sp = {0};
	struct rlimit rl;
	int policy = urgent ? SCHED_OTHER : SCHED_IDLE, rc;

	if (q->applier_policy == policy)
		return;
	/*
	 * Leaving SCHED_IDLE takes CAP_SYS_NICE or an RLIMIT_NICE that allows
	 * nice 0 (the unit sets LimitNICE=20); without either, never enter it.
	 */
	if (policy == SCHED_IDLE && geteuid() != 0 &&
	    (getrlimit(RLIMIT_NICE, &rl) != 0 || rl.rlim_cur < 20))
		return;
	rc = pthread_setschedparam(pthread_self(), policy, &sp);
	if (rc != 0)
		log_info("store %s: the applier keeps its priority: %s", q->path, strerror(rc));
	q->applier_policy = policy;
}

/* The applier thread: folds finished segments in, flushes the current one. */
static void *
sq_applier(void *arg)
{
	struct sq *q = arg;
	char *synced = NULL;
	int sync_fd = -1;
	bool retry = false;
	uint64_t flushed = 0; /* q->appended at the last flush */
	size_t backlog = 0;   /* finished segments waiting */

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct pending *p;
		char *flush = NULL;
		int rc = 0;

		while (!q->stop && q->flush_path == NULL && (q->queue == NULL || retry)) {
			struct timespec ts;
			uint64_t a;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += FLUSH_MS / 1000; /* also FOLD_RETRY_MS */
			if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) != ETIMEDOUT)
				continue;
			retry = false;
			/* Nothing flushed what was appended in the last second: now. */
			a = atomic_load_explicit(&q->appended, memory_order_relaxed);
			if (a != flushed && q->current != NULL) {
				flush = strdup(q->current);
				break;
			}
		}
		if (q->stop) {
			free(flush);
			break;
		}
		if (q->flush_path != NULL) {
			free(flush);
			flush = q->flush_path;
			q->flush_path = NULL;
		}
		p = retry ? NULL : q->queue;
		/* Only this run's backlog is urgent: what a start found waits for idle moments. */
		backlog = 0;
		for (struct pending *w = q->queue; w != NULL; w = w->next)
			backlog++;
		backlog -= q->inherited < backlog ? q->inherited : backlog;
		pthread_mutex_unlock(&q->mu);
		if (flush != NULL) {
			flushed = atomic_load_explicit(&q->appended, memory_order_relaxed);
			if (synced == NULL || strcmp(synced, flush) != 0) {
				if (sync_fd >= 0)
					close(sync_fd);
				sync_fd = open(flush, O_RDONLY | O_CLOEXEC);
				free(synced);
				synced = flush;
			} else {
				free(flush);
			}
			if (sync_fd >= 0 && fdatasync(sync_fd) != 0)
				log_warn("journal %s: fdatasync: %s", synced, strerror(errno));
		}
		if (p != NULL) {
			struct journal_segment seg = {.path = p->path};
			uint64_t last;

			sq_applier_priority(q, backlog > FOLD_BACKLOG);
			pthread_mutex_lock(&q->fold_mu);
			rc = sq_fold(q, &seg, 1, false, &last);
			pthread_mutex_unlock(&q->fold_mu);
			if (rc != 0)
				log_error(
					"store %s: cannot fold %s into the tables; it is kept, and "
					"tried again in %d ms",
					q->path, p->path, FOLD_RETRY_MS);
		}
		pthread_mutex_lock(&q->mu);
		if (p != NULL && rc == 0) {
			q->queue = p->next;
			if (q->queue == NULL)
				q->queue_tail = &q->queue;
			free(p->path);
			free(p);
			if (q->inherited > 0)
				q->inherited--;
		}
		/* A flush in the pause after a failed fold does not end the pause. */
		if (p != NULL)
			retry = rc != 0;
	}
	pthread_mutex_unlock(&q->mu);
	if (sync_fd >= 0)
		close(sync_fd);
	free(synced);
	return NULL;
}

static int
sq_start_applier(struct sq *q)
{
	int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;

	static const enum stmt reads[] = {ST_GET_SESSION,    ST_LOAD_SESSIONS, ST_LOAD_EVENTS,
					  ST_GET_LAST_EVENT, ST_LOAD_OUTCOMES, ST_LOAD_KEYS,
					  ST_GET_JOURNAL};
	sqlite3 *rdb;

	if (sqlite3_open_v2(q->path, &rdb, flags, NULL) != SQLITE_OK) {
		log_error("store %s: cannot open a connection for reads: %s", q->path,
			  sqlite3_errmsg(rdb));
		sqlite3_close(rdb);
		return -1;
	}
	for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
		if (sqlite3_prepare_v3(rdb, stmt_sql[reads[i]], -1, SQLITE_PREPARE_PERSISTENT,
				       &q->rst[reads[i]], NULL) != SQLITE_OK) {
			log_error("store %s: %s: %s", q->path, stmt_sql[reads[i]],
				  sqlite3_errmsg(rdb));
			sqlite3_close(rdb);
			return -1;
		}
	}
	q->rdb = rdb;
	if ((q->current = strdup(journal_path(q->jnl))) == NULL) {
		log_error("store %s: out of memory", q->path);
		return -1;
	}
	if (pthread_create(&q->thread, NULL, sq_applier, q) != 0) {
		log_error("store %s: cannot start the applier thread", q->path);
		return -1;
	}
	q->started = true;
	return 0;
}

/* Stop the applier; then fold in the rest, so that a clean stop leaves the tables alone. */
static void
sq_stop_applier(struct sq *q)
{
	struct journal_segment *segs;
	size_t n;
	uint64_t last;

	if (q->started) {
		pthread_mutex_lock(&q->mu);
		q->stop = true;
		pthread_cond_signal(&q->cv);
		pthread_mutex_unlock(&q->mu);
		pthread_join(q->thread, NULL);
		q->started = false;
	}
	while (q->queue != NULL) {
		struct pending *p = q->queue;
		q->queue = p->next;
		free(p->path);
		free(p);
	}
	if (q->jnl == NULL)
		return;
	journal_close(q->jnl);
	q->jnl = NULL;
	if (journal_list(q->path, &segs, &n) == 0) {
		if (sq_fold(q, segs, n, true, &last) != 0)
			log_warn("store %s: the journal is kept; the next start folds it in",
				 q->path);
		journal_segments_free(segs, n);
	}
}

/* ---- the loop's writes: one journal frame per transaction ---- */

static int
jn_begin(void *h)
{
	struct sq *q = h;

	q->txn.len = 0;
	q->txn.failed = false;
	return 0;
}

/* Whether the encoding so far still fits in memory. */
static int
jn_ok(struct sq *q)
{
	if (!q->txn.failed)
		return 0;
	log_error("store %s: out of memory encoding a change", q->path);
	return -1;
}

static int
jn_put_session(void *h, const struct store_session *r, bool insert)
{
	codec_put_session(&((struct sq *)h)->txn, r, insert);
	return jn_ok(h);
}

static int
jn_delete_session(void *h, uint64_t seq)
{
	codec_delete_session(&((struct sq *)h)->txn, seq);
	return jn_ok(h);
}

static int
jn_add_event(void *h, const struct store_event *ev)
{
	codec_add_event(&((struct sq *)h)->txn, ev);
	return jn_ok(h);
}

static int
jn_trim_events(void *h, uint64_t below)
{
	codec_trim_events(&((struct sq *)h)->txn, below);
	return jn_ok(h);
}

static int
jn_put_key(void *h, const struct store_key *k)
{
	codec_put_key(&((struct sq *)h)->txn, k);
	return jn_ok(h);
}

static int
jn_trim_keys(void *h, int64_t before)
{
	codec_trim_keys(&((struct sq *)h)->txn, before);
	return jn_ok(h);
}

static int
jn_put_outcome(void *h, const struct store_outcome *o)
{
	codec_outcome(&((struct sq *)h)->txn, o, false);
	return jn_ok(h);
}

static int
jn_delete_outcome(void *h, const struct store_outcome *o)
{
	codec_outcome(&((struct sq *)h)->txn, o, true);
	return jn_ok(h);
}

/* Hand the applier a finished segment, or the current one to flush. */
static void
sq_ask(struct sq *q, char *closed, char *flush, char *current)
{
	struct pending *p = NULL;

	if (closed != NULL && (p = calloc(1, sizeof *p)) == NULL) {
		/* Kept on disk all the same: the next start folds it in. */
		log_error("store %s: out of memory; %s waits for the next start", q->path, closed);
		free(closed);
	} else if (p != NULL) {
		p->path = closed;
	}
	pthread_mutex_lock(&q->mu);
	if (p != NULL) {
		*q->queue_tail = p;
		q->queue_tail = &p->next;
	}
	if (flush != NULL) {
		free(q->flush_path);
		q->flush_path = flush;
	}
	if (current != NULL) {
		free(q->current);
		q->current = current;
	}
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static int
jn_commit(void *h, uint64_t last_event)
{
	struct sq *q = h;
	char *closed = NULL, *flush = NULL, *current = NULL;

	(void)last_event; /* the events the frame holds, or its trims, say it */
	if (q->txn.len == 0)
		return 0;
	if (journal_append(q->jnl, q->txn.p, q->txn.len) != 0)
		return -1;
	/* A reload's view of the journal is stale now; let go of what it maps. */
	if (q->overlay != NULL)
		sq_overlay_free(q);
	if (q->durability == STORE_STRICT && journal_sync(q->jnl) != 0) {
		/* Perhaps not on disk: the change fails, and must not come back at a restart. */
		journal_unappend(q->jnl);
		return -1;
	}
	if (q->durability != STORE_STRICT)
		atomic_fetch_add_explicit(&q->appended, q->txn.len, memory_order_relaxed);
	if (journal_size(q->jnl) >= q->segment_bytes) {
		if (journal_rotate(q->jnl, &closed) != 0)
			log_warn("store %s: the journal cannot start a new segment yet", q->path);
		else
			current = strdup(journal_path(q->jnl));
		q->flush_asked = 0;
	} else if (q->durability != STORE_STRICT &&
		   journal_size(q->jnl) - q->flush_asked >= FLUSH_BYTES) {
		q->flush_asked = journal_size(q->jnl);
		flush = strdup(journal_path(q->jnl));
	}
	if (closed != NULL || flush != NULL || current != NULL)
		sq_ask(q, closed, flush, current);
	return 0;
}

static void
jn_rollback(void *h)
{
	struct sq *q = h;

	q->txn.len = 0;
	q->txn.failed = false;
}

/* ---- reading after a failure: the tables, with what the journal did since ---- */

static void
sq_overlay_free(struct sq *q)
{
	batch_free(q->overlay);
	q->overlay = NULL;
	for (size_t i = 0; i < q->noverlay; i++)
		journal_file_free(&q->overlay_files[i]);
	free(q->overlay_files);
	q->overlay_files = NULL;
	q->noverlay = 0;
}

/* Read every segment not folded in yet, unless what was read is still good; 0 or -1. */
static int
sq_overlay(struct sq *q)
{
	struct journal_segment *segs;
	struct fold f = {0};
	size_t n;
	int rc = -1;

	/*
	 * Still good after a fold: what the applier folds in is what the
	 * overlay holds too, and the merge (tables, then the overlay on top)
	 * comes out the same either way. Only an append makes it stale.
	 */
	if (q->overlay != NULL && q->overlay_next == journal_next(q->jnl))
		return 0;
	sq_overlay_free(q);
	/* No segment is folded and removed while they are read. */
	pthread_mutex_lock(&q->fold_mu);
	if (journal_list(q->path, &segs, &n) != 0) {
		pthread_mutex_unlock(&q->fold_mu);
		return -1;
	}
	q->overlay_files = calloc(n ? n : 1, sizeof *q->overlay_files);
	f.b = q->overlay = batch_new();
	if (q->overlay_files != NULL && f.b != NULL &&
	    sq_folded(q, q->rst[ST_GET_JOURNAL], &f.folded) == 0) {
		q->noverlay = n;
		rc = sq_read_segments(q, segs, n, q->overlay_files, &f, false);
		if (rc == 0 && batch_seal(f.b) != 0) {
			log_error("store %s: out of memory reading the journal", q->path);
			rc = -1;
		}
	}
	pthread_mutex_unlock(&q->fold_mu);
	journal_segments_free(segs, n);
	if (rc != 0) {
		sq_overlay_free(q);
		return -1;
	}
	q->overlay_next = journal_next(q->jnl);
	return 0;
}

struct reload {
	const struct store_session *update; /* or NULL */
	store_session_fn fn;
	void *arg;
	const struct batch *overlay; /* rd_load_sessions() */
};

static int
reload_row(const struct store_session *row, void *arg)
{
	struct reload *r = arg;
	struct store_session whole = *row;

	if (r->update != NULL)
		codec_apply_update(&whole, r->update);
	return r->fn(&whole, r->arg);
}

static int
sq_get_session(void *h, uint64_t seq, store_session_fn fn, void *arg)
{
	struct sq *q = h;
	struct store_session r;
	struct reload rl = {NULL, fn, arg, NULL};
	int rc = -1;

	if (!q->started) {
		sqlite3_bind_int64(q->st[ST_GET_SESSION], 1, (sqlite3_int64)seq);
		return sq_sessions(q, q->st[ST_GET_SESSION], fn, arg);
	}
	if (sq_overlay(q) != 0)
		goto done;
	switch (batch_session(q->overlay, seq, &r)) {
	case BATCH_REMOVED: rc = 0; goto done;
	case BATCH_WHOLE: rc = fn(&r, arg) == 0 ? 1 : -1; goto done;
	case BATCH_UPDATED: rl.update = &r; break;
	case BATCH_UNTOUCHED: break;
	}
	sqlite3_bind_int64(q->rst[ST_GET_SESSION], 1, (sqlite3_int64)seq);
	rc = sq_sessions(q, q->rst[ST_GET_SESSION], reload_row, &rl);
done:
	return rc;
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

/* --check-store: read and check the journal; *last_event takes in its events. */
static int
sq_check_journal(struct sq *q, FILE *out, uint64_t *last_event)
{
	struct journal_segment *segs;
	struct journal_file *files;
	struct fold f = {0};
	size_t n;
	int rc = -1;

	if (journal_list(q->path, &segs, &n) != 0)
		return -1;
	files = calloc(n ? n : 1, sizeof *files);
	f.b = batch_new();
	if (files != NULL && f.b != NULL && sq_folded(q, q->st[ST_GET_JOURNAL], &f.folded) == 0)
		rc = sq_read_segments(q, segs, n, files, &f, true);
	if (rc == 0) {
		if (batch_last_event(f.b) > *last_event)
			*last_event = batch_last_event(f.b);
		fprintf(out, "store %s: journal: %zu segments, %zu changes not yet in the tables",
			q->path, n, batch_frames(f.b));
		if (batch_frames(f.b) > 0)
			fprintf(out, " (%llu to %llu)", (unsigned long long)f.folded + 1,
				(unsigned long long)batch_last(f.b));
		fprintf(out, "\n");
	} else {
		fprintf(out, "store %s: journal: DAMAGED (the log says where)\n", q->path);
	}
	for (size_t i = 0; files != NULL && i < n; i++)
		journal_file_free(&files[i]);
	free(files);
	batch_free(f.b);
	journal_segments_free(segs, n);
	return rc;
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
	/* What the journal holds beyond the tables: read, checked, never folded in here. */
	if (sq_check_journal(q, out, &last_event) != 0)
		problems++;
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

/*
 * The reads once the applier runs (at start-up, and when a failed commit's
 * participants reload what they hold): the tables, then the overlay on top.
 */

/* A table row through the overlay: gone, updated, replaced (the overlay has it whole), or as it is.
 */
static int
overlay_row(const struct store_session *row, void *arg)
{
	struct reload *r = arg;
	struct store_session upd;

	switch (batch_session(r->overlay, row->seq, &upd)) {
	case BATCH_REMOVED:
	case BATCH_WHOLE: return 0; /* BATCH_WHOLE: folded in since; batch_new_sessions() has it */
	case BATCH_UPDATED: r->update = &upd; break;
	default: r->update = NULL;
	}
	return reload_row(row, r);
}

static int
rd_load_sessions(void *h, store_session_fn fn, void *arg)
{
	struct sq *q = h;
	struct reload rl = {NULL, fn, arg, NULL};
	int rc = -1;

	if (!q->started)
		return sq_load_sessions(q, fn, arg);
	if (sq_overlay(q) == 0) {
		rl.overlay = q->overlay;
		if (sq_sessions(q, q->rst[ST_LOAD_SESSIONS], overlay_row, &rl) >= 0)
			rc = batch_new_sessions(q->overlay, fn, arg);
	}
	return rc;
}

static int
rd_last_event(void *h, uint64_t *id)
{
	struct sq *q = h;
	int rc;

	if (!q->started)
		return sq_last_event(q, id);
	rc = sq_overlay(q) == 0 ? sq_last_event(q, id) : -1;
	if (rc == 0 && batch_last_event(q->overlay) > *id)
		*id = batch_last_event(q->overlay);
	return rc;
}

static int
rd_load_events(void *h, uint64_t after, store_event_fn fn, void *arg)
{
	struct sq *q = h;
	int rc = -1;

	if (!q->started)
		return sq_load_events(q, after, fn, arg);
	if (sq_overlay(q) == 0 && sq_load_events(q, after, fn, arg) == 0)
		rc = batch_events(q->overlay, after, fn, arg);
	return rc;
}

static int
rd_load_keys(void *h, store_key_fn fn, void *arg)
{
	struct sq *q = h;
	int rc = -1;

	if (!q->started)
		return sq_load_keys(q, fn, arg);
	if (sq_overlay(q) == 0 && sq_load_keys(q, fn, arg) == 0)
		rc = batch_keys(q->overlay, fn, arg);
	return rc;
}

static int
rd_load_outcomes(void *h, store_outcome_fn fn, void *arg)
{
	struct sq *q = h;
	int rc = -1;

	if (!q->started)
		return sq_load_outcomes(q, fn, arg);
	if (sq_overlay(q) == 0 && sq_load_outcomes(q, fn, arg) == 0)
		rc = batch_outcomes(q->overlay, fn, arg);
	return rc;
}

/*
 * The overlay a start read the journal into can be large (a million
 * sessions: their index, and the segments mapped): gone now, not at the
 * first commit, which an idle daemon may not make for hours.
 */
static void
sq_recovered(void *h)
{
	sq_overlay_free(h);
}

const struct store_backend store_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.last_event = rd_last_event,
	.load_sessions = rd_load_sessions,
	.load_events = rd_load_events,
	.get_session = sq_get_session,
	.begin = jn_begin,
	.put_session = jn_put_session,
	.delete_session = jn_delete_session,
	.add_event = jn_add_event,
	.trim_events = jn_trim_events,
	.load_keys = rd_load_keys,
	.put_key = jn_put_key,
	.trim_keys = jn_trim_keys,
	.load_outcomes = rd_load_outcomes,
	.put_outcome = jn_put_outcome,
	.delete_outcome = jn_delete_outcome,
	.commit = jn_commit,
	.rollback = jn_rollback,
	.check = sq_check,
	.recovered = sq_recovered,
};

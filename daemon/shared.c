/* Sessions shared through Redis: the feed, changes proposed, the snapshot (see shared.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <uthash.h>

#include "config.h"
#include "hub.h"
#include "jsonw.h"
#include "log.h"
#include "presence.h"
#include "redis.h"
#include "redis_scripts.h"
#include "sessions.h"
#include "shared.h"
#include "shared_nodes.h"
#include "shared_outcomes.h"
#include "stats.h"
#include "store_record.h"
#include "users.h"

#define FEED_CHANNEL "rv:events"
#define HEARTBEAT_CHANNEL "rv:hb"
#define HEARTBEAT_MS 1000
/* A feed silent this long is dead (every node publishes a heartbeat each second). */
#define FEED_SILENCE_MS 3000
/* How long a failed gap fill waits before it is tried again. */
#define FILL_RETRY_MS 500

/* A change proposed here, until Redis answered its script. */
struct op {
	uint64_t n; /* its tag's number */
	shared_done_fn fn;
	void *arg;
	bool answered; /* fn called (from the feed, or the script's answer) */
	uint8_t sid[SESSION_ID_BYTES];
	char *rec; /* the proposed record */
	size_t rec_len;
	double t0;
	UT_hash_handle hh;
};

/* A request waiting until the node applied the feed up to a position (shared_sync()). */
struct waiter {
	struct waiter *next;
	char *value; /* what the key read with the position held, or NULL */
	size_t len;
	uint64_t pos;
	int64_t deadline; /* Unix ms: then it is answered SHARED_UNAVAILABLE */
	shared_done_fn fn;
	void *arg;
};

/* A feed message waiting for a gap before it to be filled. */
struct queued {
	struct queued *next;
	uint64_t pos;
	size_t len;
	char data[];
};

static struct {
	struct event_base *base;
	struct redis_addr addr;
	char *password;
	char name[128];
	char tag[20];            /* this process's tag prefix: random, hex */
	struct redis_link *cmd;  /* commands and scripts */
	struct redis_link *feed; /* the subscriber */
	bool feed_up;
	bool loaded;  /* the snapshot was applied */
	bool filling; /* a snapshot or gap fill is in flight */
	uint64_t applied;
	struct queued *queue, **queue_tail;
	struct op *ops;
	uint64_t next_op;
	struct waiter *waiters;
	struct waiter *batch, **batch_tail; /* shared_sync()s for the next read of the position */
	bool batch_busy;                    /* a read of the position is in flight */
	bool stopping;                      /* shared_stop(): answer, send nothing more */
	bool lost;      /* the snapshot being taken follows a loss: tell subscribers */
	bool recheck;   /* the feed came back: its position must be read again */
	char epoch[40]; /* Redis's epoch when loaded (rv:epoch) */
	struct event *heartbeat, *retry, *sweep;
	struct shared_stats st;
} sh;

static void take_snapshot(void);
static void catch_up(void);

/* Told when subscribers must resync (kept across shared_start()). */
static void (*on_lost)(uint64_t last_event);

bool
shared_enabled(void)
{
	return config.store != NULL && strncmp(config.store, "redis", 5) == 0;
}

const char *
shared_node_name(void)
{
	return sh.name;
}

void
shared_on_history_lost(void (*fn)(uint64_t last_event))
{
	on_lost = fn;
}

void
shared_stats(struct shared_stats *out)
{
	*out = sh.st;
	out->position = sh.applied;
	out->nodes = nodes_count();
	out->lease = nodes_lease();
}

int64_t
shared_retry_after_ms(void)
{
	return 1000;
}

bool
shared_ready(void)
{
	return shared_why_not_ready() == NULL;
}

const char *
shared_why_not_ready(void)
{
	if (!redis_link_up(sh.cmd))
		return "redis: not connected";
	if (!sh.feed_up)
		return "redis: the feed is not subscribed";
	if (!sh.loaded)
		return "redis: sessions not loaded yet";
	if (sh.filling || sh.queue != NULL)
		return "redis: catching up with the feed";
	return NULL;
}

/* The first line of --redis-password-file; NULL (after logging) if unreadable. */
static char *
read_password(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL) {
		log_error("redis: cannot read the password file %s: %s", path, strerror(errno));
		return NULL;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		log_error("redis: the password file %s is empty", path);
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return line;
}

/* --node-name, or the host's name and the first listening port. */
static void
node_name_default(void)
{
	char host[64] = "localhost";
	const char *port = NULL;

	if (config.node_name != NULL) {
		snprintf(sh.name, sizeof sh.name, "%s", config.node_name);
		return;
	}
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	if (config.nlisten > 0 && strncmp(config.listen[0], "unix:", 5) != 0)
		port = strrchr(config.listen[0], ':');
	if (port != NULL && strcmp(port, ":0") != 0) /* port 0: not known yet */
		snprintf(sh.name, sizeof sh.name, "%s%s", host, port);
	else
		snprintf(sh.name, sizeof sh.name, "%s:%ld", host, (long)getpid());
}

/*
 * Answer the waiters the feed has caught up with (all: every one, as
 * unavailable, when they are out of time or the node stops). Taken off the
 * list first: an answer may start another wait.
 */
static void
wake_waiters(bool all)
{
	struct waiter *w, **p = &sh.waiters, *ready = NULL, **tail = &ready;
	int64_t now = now_ms();

	while ((w = *p) != NULL) {
		if (w->pos <= sh.applied || all || now >= w->deadline) {
			*p = w->next;
			w->next = NULL;
			*tail = w;
			tail = &w->next;
		} else {
			p = &w->next;
		}
	}
	while ((w = ready) != NULL) {
		ready = w->next;
		w->fn(w->arg, w->pos <= sh.applied && !all ? SHARED_APPLIED : SHARED_UNAVAILABLE,
		      w->value, w->len);
		free(w->value);
		free(w);
	}
}

/* The event a feed message carries (line borrowed), for the hub. */
static void
record_event(const struct store_session *r, uint64_t id, const char *line, size_t len,
	     struct store_event *ev)
{
	*ev = (struct store_event){
		.id = id,
		.time = r->updated,
		.inviter = r->inviter,
		.invitee = r->invitee,
		.invitee_visible = (r->m.done[RV_ROLE_INVITER] & (1u << RV_ACT_INVITE)) != 0,
		.line = line,
		.len = len,
	};
	memcpy(ev->sid, r->id, SESSION_ID_BYTES);
}

/*
 * One feed message, in order: the record into the table, then (a change
 * made here) the request's answer, then the event to the hub, which fans it
 * out at the next hub_flush(): the answer goes first.
 */
static void
feed_apply(const char *data, size_t len)
{
	uint64_t pos, id, version, seq, event;
	char tag[64];
	int off = 0;
	const char *rec, *nl, *line;
	struct store_record r;
	struct op *op = NULL;

	if (sscanf(data, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %63s%n", &pos,
		   &id, &version, &seq, &event, tag, &off) != 6 ||
	    (size_t)off >= len || data[off] != '\n') {
		log_error("redis: a feed message is damaged: %.*s", (int)(len < 80 ? len : 80),
			  data);
		return;
	}
	rec = data + off + 1;
	nl = memchr(rec, '\n', len - (size_t)(rec - data));
	if (nl == NULL || store_record_parse(rec, (size_t)(nl - rec), &r) != 0) {
		log_error("redis: feed message %" PRIu64 ": its record is damaged", pos);
		sh.applied = pos;
		return;
	}
	line = nl + 1;
	r.s.seq = seq;
	r.s.event = event;
	if (sessions_apply_record(&r.s, version) != 0)
		log_error("redis: feed message %" PRIu64 ": the session could not be applied", pos);
	/* A change proposed here, answered from the feed when that comes first. */
	if (strncmp(tag, sh.tag, strlen(sh.tag)) == 0 && tag[strlen(sh.tag)] == '.') {
		uint64_t n = strtoull(tag + strlen(sh.tag) + 1, NULL, 10);
		HASH_FIND(hh, sh.ops, &n, sizeof n, op);
		if (op != NULL && !op->answered) {
			op->answered = true;
			sh.st.applied++;
			if (op->fn != NULL)
				op->fn(op->arg, SHARED_APPLIED, NULL, 0);
		}
	}
	if (id != 0 && id > hub_last_event()) {
		struct store_event ev;
		record_event(&r.s, id, line, len - (size_t)(line - data), &ev);
		if (id != hub_last_event() + 1) {
			/* Only after a resync that lost history: subscribers were told. */
			log_warn("redis: event %" PRIu64 " follows %" PRIu64 ": history restarts",
				 id, hub_last_event());
			hub_restart(id - 1);
		}
		hub_publish_stored(&ev);
	}
	store_record_free(&r);
	sh.applied = pos;
	sh.st.messages++;
	if (sh.waiters != NULL)
		wake_waiters(false);
}

/* The feed position a message starts with (0 if damaged). */
static uint64_t
message_pos(const char *data)
{
	return strtoull(data, NULL, 10);
}

static void fill_gap(uint64_t upto);

/* Apply queued messages while they follow in order; fill the next gap if one remains. */
static void
drain_queue(void)
{
	struct queued *q;

	while (!sh.filling && (q = sh.queue) != NULL) {
		if (q->pos > sh.applied + 1) {
			fill_gap(q->pos - 1);
			break;
		}
		sh.queue = q->next;
		if (sh.queue == NULL)
			sh.queue_tail = &sh.queue;
		sh.batch_tail = &sh.batch;
		if (q->pos == sh.applied + 1)
			feed_apply(q->data, q->len);
		free(q);
	}
	catch_up(); /* asked for while a fill was in flight */
	hub_flush();
}

static void
enqueue(uint64_t pos, const char *data, size_t len)
{
	struct queued *q = malloc(sizeof *q + len + 1);

	if (q == NULL) {
		/* Dropped: the gap it leaves is filled from the history. */
		log_error("redis: out of memory holding a feed message");
		return;
	}
	q->next = NULL;
	q->pos = pos;
	q->len = len;
	memcpy(q->data, data, len);
	q->data[len] = '\0';
	*sh.queue_tail = q;
	sh.queue_tail = &q->next;
}

static void
on_feed(void *arg, const char *channel, const char *data, size_t len)
{
	uint64_t pos;

	(void)arg;
	if (strcmp(channel, PRESENCE_CHANNEL) == 0 || strcmp(channel, CONTEXT_CHANNEL) == 0) {
		nodes_on_message(channel, data, len);
		hub_flush();
		return;
	}
	if (strcmp(channel, FEED_CHANNEL) != 0)
		return; /* a heartbeat: it only proves the link alive */
	pos = message_pos(data);
	if (pos <= sh.applied && sh.loaded)
		return;
	if (!sh.loaded || sh.filling || sh.queue != NULL || pos != sh.applied + 1) {
		enqueue(pos, data, len);
		if (sh.loaded)
			drain_queue();
		return;
	}
	feed_apply(data, len);
	hub_flush();
}

/* Try a failed fill (or snapshot) again. */
static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (!sh.loaded)
		take_snapshot();
	else if (sh.recheck)
		catch_up();
	else
		drain_queue();
}

static void
retry_later(void)
{
	struct timeval tv = {0, FILL_RETRY_MS * 1000};

	sh.filling = false;
	evtimer_add(sh.retry, &tv);
}

/* The history's answer to a gap fill: each message in order, or a resync when some are gone. */
static void
on_filled(void *arg, const redisReply *r, const char *err)
{
	uint64_t *want = arg, from = want[0], upto = want[1];
	size_t got = 0;

	free(want);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		log_warn("redis: cannot fill the feed's gap from %" PRIu64 ": %s", from,
			 err != NULL                   ? err
			 : r != NULL && r->str != NULL ? r->str
						       : "?");
		retry_later();
		return;
	}
	sh.filling = false;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		const redisReply *m;

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements != 2)
			break;
		m = e->element[1]->element[1];
		if (m->type != REDIS_REPLY_STRING || message_pos(m->str) != sh.applied + 1)
			break;
		feed_apply(m->str, m->len);
		got++;
	}
	if (sh.applied < upto) {
		/* The history no longer holds what was missed: start again from a snapshot. */
		log_warn("redis: feed messages %" PRIu64 " to %" PRIu64
			 " are no longer in the history: loading everything again",
			 sh.applied + 1, upto);
		sh.st.resyncs++;
		sh.lost = true;
		take_snapshot();
		return;
	}
	sh.st.gaps++;
	sh.st.gap_messages += got;
	log_info("redis: filled a gap in the feed: %zu messages from %" PRIu64, got, from);
	drain_queue();
}

/* Fetch messages applied+1 .. upto from the history. */
static void
fill_gap(uint64_t upto)
{
	char a[32], b[32];
	const char *argv[4] = {"XRANGE", "rv:log", a, b};
	size_t lens[4];
	uint64_t *want = malloc(2 * sizeof *want);

	if (want == NULL) {
		retry_later();
		return;
	}
	want[0] = sh.applied + 1;
	want[1] = upto;
	snprintf(a, sizeof a, "%" PRIu64 "-1", want[0]);
	snprintf(b, sizeof b, "%" PRIu64 "-1", upto);
	for (int i = 0; i < 4; i++)
		lens[i] = strlen(argv[i]);
	sh.filling = true;
	if (redis_link_command(sh.cmd, on_filled, want, 4, argv, lens) != 0) {
		free(want);
		retry_later();
	}
}

/*
 * Redis lost changes this node applied (a failover to a replica that had
 * not got them, a restart without persistence, a flush): forget every
 * session, load everything again, and tell every subscriber (4100).
 */
static void
history_lost(const char *why)
{
	log_error("redis: %s: Redis lost acknowledged changes; loading everything again, and "
		  "telling subscribers to resync (4100)",
		  why);
	sh.st.resyncs++;
	sh.lost = true;
	sh.loaded = false;
	sessions_forget_all();
	take_snapshot();
}

/* The feed counter and epoch, after the feed came back: fill whatever was published meanwhile. */
static void
on_position(void *arg, const redisReply *r, const char *err)
{
	const redisReply *epoch;
	uint64_t pos;

	(void)arg;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		log_warn("redis: cannot read the feed's position: %s", err != NULL ? err : "?");
		sh.recheck = true;
		retry_later();
		return;
	}
	sh.filling = false;
	pos = r->element[0]->type == REDIS_REPLY_STRING ? strtoull(r->element[0]->str, NULL, 10)
							: 0;
	epoch = r->element[1];
	if (epoch->type != REDIS_REPLY_STRING || strcmp(epoch->str, sh.epoch) != 0) {
		history_lost("the store's epoch changed");
		return;
	}
	if (pos < sh.applied) {
		char why[96];
		snprintf(why, sizeof why, "the feed went back from %" PRIu64 " to %" PRIu64,
			 sh.applied, pos);
		history_lost(why);
		return;
	}
	if (pos > sh.applied)
		fill_gap(pos);
	else
		drain_queue();
}

/*
 * After the feed came back: read Redis's position and epoch, then fill what
 * was missed (or find it lost). Waits while a fill is in flight, and for the
 * command link.
 */
static void
catch_up(void)
{
	const char *argv[3] = {"MGET", "rv:fs", "rv:epoch"};
	size_t lens[3] = {4, 5, 8};

	if (!sh.recheck || sh.filling || !sh.loaded || !redis_link_up(sh.cmd))
		return;
	sh.recheck = false;
	sh.filling = true;
	if (redis_link_command(sh.cmd, on_position, NULL, 3, argv, lens) != 0) {
		sh.recheck = true;
		retry_later();
	}
}

/* How much one snapshot page holds: sessions, history messages. */
#define PAGE_SESSIONS 1000
#define PAGE_HISTORY 1000

/* A snapshot being read, page after page. */
static struct {
	bool started;       /* the first page came: pos, last and epoch are set */
	uint64_t pos, last; /* the feed position and last event of the first page */
	char epoch[40];
	uint64_t after; /* sessions: the creation order read up to */
	bool sessions_done;
	uint64_t oldest; /* history: the oldest position read (0: none yet) */
	bool history_done;
	size_t events; /* history messages with an event, kept */
	char **msgs;   /* the history, newest first (copies) */
	size_t *lens, nmsgs, cap;
} ld;

static void
snapshot_reset(void)
{
	for (size_t i = 0; i < ld.nmsgs; i++)
		free(ld.msgs[i]);
	free(ld.msgs);
	free(ld.lens);
	memset(&ld, 0, sizeof ld);
}

/* Keep a page of history messages (oldest first in the page) before those kept. */
static int
snapshot_keep_history(const redisReply *log)
{
	size_t n = log->elements;

	if (ld.nmsgs + n > ld.cap) {
		size_t cap = ld.cap * 2 + n;
		char **m = realloc(ld.msgs, cap * sizeof *m);
		size_t *l = m != NULL ? realloc(ld.lens, cap * sizeof *l) : NULL;
		if (m != NULL)
			ld.msgs = m;
		if (l == NULL)
			return -1;
		ld.lens = l;
		ld.cap = cap;
	}
	/* Newest first: this page's newest goes after what is kept (older pages come later). */
	for (size_t i = n; i-- > 0;) {
		const redisReply *e = log->element[i];
		uint64_t pos, id;
		char *copy;

		if (e->type != REDIS_REPLY_STRING ||
		    sscanf(e->str, "%" SCNu64 " %" SCNu64, &pos, &id) != 2)
			continue;
		if ((copy = malloc(e->len + 1)) == NULL)
			return -1;
		memcpy(copy, e->str, e->len + 1);
		ld.msgs[ld.nmsgs] = copy;
		ld.lens[ld.nmsgs++] = e->len;
		ld.oldest = pos;
		ld.events += id != 0;
	}
	return 0;
}

/* One event of the kept history into the hub; -1 if it does not follow. */
static int
snapshot_history_event(const char *m, size_t len)
{
	const char *nl, *line;
	uint64_t p, id;
	struct store_record rec;
	struct store_event e;
	int rc;

	if (sscanf(m, "%" SCNu64 " %" SCNu64, &p, &id) != 2 || id == 0 ||
	    (nl = strchr(m, '\n')) == NULL || (line = strchr(nl + 1, '\n')) == NULL ||
	    store_record_parse(nl + 1, (size_t)(line - nl - 1), &rec) != 0)
		return 0; /* no event, or damaged: skipped */
	line++;
	record_event(&rec.s, id, line, len - (size_t)(line - m), &e);
	rc = hub_history_add(&e);
	store_record_free(&rec);
	return rc;
}

static void snapshot_page(void);

/* The snapshot is read: the history into the hub, and the node goes on from its position. */
static void
snapshot_done(void)
{
	bool first = !sh.loaded;
	uint64_t pos = ld.pos, last = ld.last;

	if (first || last != hub_last_event()) {
		/* The newest --history events at most (ld.msgs is newest first)... */
		size_t keep = 0, events = 0;
		while (keep < ld.nmsgs && events < config.history) {
			uint64_t p, id;
			if (sscanf(ld.msgs[keep], "%" SCNu64 " %" SCNu64, &p, &id) == 2 && id != 0)
				events++;
			keep++;
		}
		/* ...into the hub, oldest first. */
		hub_restart(last);
		for (size_t i = keep; i-- > 0;) {
			if (snapshot_history_event(ld.msgs[i], ld.lens[i]) != 0)
				hub_restart(last);
		}
	}
	if (!first && strcmp(ld.epoch, sh.epoch) != 0 && !sh.lost) {
		/* Lost since the position was read: start again, as a loss. */
		snprintf(sh.epoch, sizeof sh.epoch, "%s", ld.epoch);
		snapshot_reset();
		history_lost("the store's epoch changed");
		return;
	}
	snprintf(sh.epoch, sizeof sh.epoch, "%s", ld.epoch);
	snapshot_reset();
	sh.filling = false;
	sh.applied = pos;
	sh.loaded = true;
	log_info("redis: %zu sessions held, feed at %" PRIu64 ", event %" PRIu64, sessions_count(),
		 pos, last);
	if (sh.lost) {
		sh.lost = false;
		if (on_lost != NULL)
			on_lost(last);
	}
	drain_queue();
}

/* A page of the snapshot: its sessions into the table, its history kept; then the next. */
static void
on_snapshot(void *arg, const redisReply *r, const char *err)
{
	const redisReply *sessions, *log;

	(void)arg;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 7 ||
	    r->element[2]->type != REDIS_REPLY_ARRAY || r->element[3]->type != REDIS_REPLY_ARRAY ||
	    r->element[4]->type != REDIS_REPLY_STRING) {
		log_warn("redis: cannot load the sessions: %s", err != NULL ? err
								: r != NULL && r->str != NULL
									? r->str
									: "?");
		snapshot_reset();
		retry_later();
		return;
	}
	if (!ld.started) {
		ld.started = true;
		ld.pos = (uint64_t)r->element[0]->integer;
		ld.last = (uint64_t)r->element[1]->integer;
		snprintf(ld.epoch, sizeof ld.epoch, "%s", r->element[4]->str);
	}
	sessions = r->element[2];
	log = r->element[3];
	for (size_t i = 0; i < sessions->elements; i++) {
		const char *text = sessions->element[i]->str, *nl;
		uint64_t version, seq, event;
		struct store_record rec;

		nl = text != NULL ? strchr(text, '\n') : NULL;
		if (nl == NULL ||
		    sscanf(text, "%" SCNu64 " %" SCNu64 " %" SCNu64, &version, &seq, &event) != 3 ||
		    store_record_parse(nl + 1, strlen(nl + 1), &rec) != 0) {
			log_error("redis: a stored session is damaged: %.60s",
				  text != NULL ? text : "");
			continue;
		}
		rec.s.seq = seq;
		rec.s.event = event;
		if (sessions_apply_record(&rec.s, version) != 0)
			log_error("redis: session %" PRIu64 " could not be loaded", seq);
		store_record_free(&rec);
	}
	ld.after = (uint64_t)r->element[5]->integer;
	ld.sessions_done = r->element[6]->integer < PAGE_SESSIONS;
	if (!ld.history_done) {
		if (snapshot_keep_history(log) != 0) {
			log_error("redis: out of memory loading the history");
			snapshot_reset();
			retry_later();
			return;
		}
		ld.history_done = log->elements < PAGE_HISTORY || ld.events >= config.history ||
				  ld.oldest <= 1;
	}
	if (ld.sessions_done && ld.history_done)
		snapshot_done();
	else
		snapshot_page();
}

/* Ask for the next page of the snapshot. */
static void
snapshot_page(void)
{
	char history[32], epoch[40], after[32], page[32], end[48];
	const char *argv[] = {"rv:fs", "rv:ev", "rv:sessions", "rv:log", "rv:epoch", history,
			      "rv:s:", epoch,   after,         page,     end};
	size_t lens[11];
	uint8_t rnd[16];

	snprintf(history, sizeof history, "%d", PAGE_HISTORY);
	snprintf(after, sizeof after, "%" PRIu64, ld.after);
	snprintf(page, sizeof page, "%d", ld.sessions_done ? 0 : PAGE_SESSIONS);
	if (ld.history_done)
		end[0] = '\0';
	else if (ld.oldest == 0)
		snprintf(end, sizeof end, "+");
	else
		snprintf(end, sizeof end, "(%" PRIu64 "-1", ld.oldest);
	if (random_bytes(rnd, sizeof rnd) != 0) {
		snapshot_reset();
		retry_later();
		return;
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(epoch + 2 * i, 3, "%02x", rnd[i]);
	for (int i = 0; i < 11; i++)
		lens[i] = strlen(argv[i]);
	if (redis_link_eval(sh.cmd, &redis_script_snapshot, on_snapshot, NULL, 5, 11, argv, lens) !=
	    0) {
		snapshot_reset();
		retry_later();
	}
}

/* Read everything again, from the first page. */
static void
take_snapshot(void)
{
	snapshot_reset();
	sh.filling = true;
	snapshot_page();
}

/* The command link is up: load everything, the first time. */
static void
on_cmd_up(void *arg)
{
	char where[300];

	(void)arg;
	log_info("redis: connected to %s", redis_link_where(sh.cmd, where, sizeof where));
	sh.st.connects++;
	nodes_on_cmd_up();
	if (!sh.loaded && sh.feed_up && !sh.filling)
		take_snapshot();
	catch_up();
}

static void
on_cmd_down(void *arg, const char *why)
{
	(void)arg;
	log_warn("redis: %s", why);
}

/* The feed is subscribed: load everything (the first time), or fill what it missed. */
static void
on_feed_up(void *arg)
{
	(void)arg;
	sh.feed_up = true;
	if (!sh.loaded) {
		if (redis_link_up(sh.cmd) && !sh.filling)
			take_snapshot();
		return;
	}
	/* Presence messages may have been missed too: read every node's devices again. */
	nodes_on_feed_up();
	sh.recheck = true;
	catch_up();
}

static void
on_feed_down(void *arg, const char *why)
{
	(void)arg;
	sh.feed_up = false;
	log_warn("redis: the feed: %s", why);
}

static const struct redis_link_ops cmd_ops = {.on_up = on_cmd_up, .on_down = on_cmd_down};
static const struct redis_link_ops feed_ops = {.on_up = on_feed_up, .on_down = on_feed_down};

static void
on_published(void *arg, const redisReply *r, const char *err)
{
	(void)arg;
	(void)r;
	(void)err;
}

/* Every second: a heartbeat on the feed's link, so that every node can tell it is alive. */
static void
on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	const char *argv[3] = {"PUBLISH", HEARTBEAT_CHANNEL, sh.name};
	size_t lens[3] = {7, strlen(HEARTBEAT_CHANNEL), strlen(sh.name)};

	(void)fd;
	(void)what;
	(void)arg;
	if (redis_link_up(sh.cmd))
		redis_link_command(sh.cmd, on_published, NULL, 3, argv, lens);
	nodes_heartbeat();
}

/* The answer to a proposed change's script. */
static void
on_proposed(void *arg, const redisReply *r, const char *err)
{
	struct op *op = arg;
	enum shared_result res = SHARED_UNAVAILABLE;

	HASH_DEL(sh.ops, op);
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 6 &&
	    r->element[0]->integer == 1) {
		res = SHARED_APPLIED;
		stats.outcomes_dropped += (uint64_t)r->element[5]->integer;
		histogram_observe(&stats.redis_seconds, stats_clock() - op->t0);
		if (!op->answered) {
			/* Before the feed brings it: hold it now, so that the answer shows it. */
			struct store_record rec;
			if (store_record_parse(op->rec, op->rec_len, &rec) == 0) {
				struct session *s = session_find(op->sid);
				uint64_t id = (uint64_t)r->element[2]->integer;
				rec.s.seq = (uint64_t)r->element[4]->integer;
				if (id != 0)
					rec.s.event = id;
				else if (s != NULL)
					rec.s.event = s->event;
				sessions_apply_record(&rec.s, (uint64_t)r->element[3]->integer);
				store_record_free(&rec);
			}
		}
	} else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		   r->element[0]->integer == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
		/* The idempotency key exists: a retry, answered from it. */
		if (!op->answered) {
			op->answered = true;
			if (op->fn != NULL)
				op->fn(op->arg, SHARED_KEPT, r->element[1]->str,
				       r->element[1]->len);
		}
	} else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		   r->element[0]->integer == 3) {
		res = SHARED_LIMIT;
	} else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 5 &&
		   r->element[0]->integer == 0) {
		res = SHARED_CONFLICT;
		histogram_observe(&stats.redis_seconds, stats_clock() - op->t0);
		if (r->element[2]->type == REDIS_REPLY_STRING) {
			struct store_record rec;
			if (store_record_parse(r->element[2]->str, r->element[2]->len, &rec) == 0) {
				rec.s.seq = (uint64_t)r->element[3]->integer;
				rec.s.event = (uint64_t)r->element[4]->integer;
				sessions_apply_record(&rec.s, (uint64_t)r->element[1]->integer);
				store_record_free(&rec);
			}
		}
	} else {
		log_warn("redis: a change was not answered: %s", err != NULL ? err
								 : r != NULL && r->str != NULL
									 ? r->str
									 : "bad answer");
	}
	if (!op->answered) {
		op->answered = true;
		if (res == SHARED_APPLIED)
			sh.st.applied++;
		else if (res == SHARED_CONFLICT)
			sh.st.conflicts++;
		else if (res == SHARED_UNAVAILABLE)
			sh.st.unavailable++;
		if (op->fn != NULL)
			op->fn(op->arg, res, NULL, 0);
	}
	free(op->rec);
	free(op);
	hub_flush();
}

/* fn(arg, SHARED_UNAVAILABLE) from the loop, not from inside shared_propose(). */
struct failed {
	shared_done_fn fn;
	void *arg;
};

static void
on_failed(evutil_socket_t fd, short what, void *arg)
{
	struct failed f = *(struct failed *)arg;

	(void)fd;
	(void)what;
	free(arg);
	f.fn(f.arg, SHARED_UNAVAILABLE, NULL, 0);
	hub_flush();
}

static void
fail_soon(shared_done_fn fn, void *arg)
{
	struct failed *f = malloc(sizeof *f);
	struct timeval now = {0, 0};

	sh.st.unavailable++;
	if (fn == NULL || sh.stopping) {
		free(f);
		if (fn != NULL)
			fn(arg, SHARED_UNAVAILABLE, NULL, 0); /* no more turns of the loop */
		return;
	}
	if (f != NULL) {
		f->fn = fn;
		f->arg = arg;
		if (event_base_once(sh.base, -1, EV_TIMEOUT, on_failed, f, &now) == 0)
			return;
		free(f);
	}
	log_error("redis: out of memory failing a change");
	fn(arg, SHARED_UNAVAILABLE, NULL, 0); /* the one way left to answer it */
}

/*
 * The feed's position when the request arrived (and the key's value):
 * answer now, or wait for the feed.
 */
static void
sync_settle(struct waiter *w, const redisReply *r, const char *err)
{
	const redisReply *pos = r, *value = NULL;

	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		pos = r->element[0];
		value = r->element[1];
	}
	if (pos == NULL || (pos->type != REDIS_REPLY_STRING && pos->type != REDIS_REPLY_NIL)) {
		log_warn("redis: cannot read the feed's position: %s", err != NULL ? err : "?");
		w->fn(w->arg, SHARED_UNAVAILABLE, NULL, 0);
		free(w);
		hub_flush();
		return;
	}
	w->pos = pos->type == REDIS_REPLY_STRING ? strtoull(pos->str, NULL, 10) : 0;
	if (value != NULL && value->type == REDIS_REPLY_STRING) {
		w->value = malloc(value->len + 1);
		if (w->value == NULL) {
			w->fn(w->arg, SHARED_UNAVAILABLE, NULL, 0);
			free(w);
			return;
		}
		memcpy(w->value, value->str, value->len + 1);
		w->len = value->len;
	}
	if (w->pos <= sh.applied && sh.loaded) {
		w->fn(w->arg, SHARED_APPLIED, w->value, w->len);
		free(w->value);
		free(w);
		hub_flush();
		return;
	}
	w->deadline = now_ms() + config.store_timeout_ms;
	w->next = sh.waiters;
	sh.waiters = w;
}

/* A keyed request's read: the position and its key. */
static void
on_sync_position(void *arg, const redisReply *r, const char *err)
{
	sync_settle(arg, r, err);
}

static void send_batch(void);

/* One read of the position, for every request of the batch. */
static void
on_batch_position(void *arg, const redisReply *r, const char *err)
{
	struct waiter *w = arg, *next;

	sh.batch_busy = false;
	for (; w != NULL; w = next) {
		next = w->next;
		w->next = NULL;
		sync_settle(w, r, err);
	}
	if (sh.batch != NULL && !sh.batch_busy)
		send_batch(); /* those that came meanwhile */
	hub_flush();
}

/* Read the position for the requests waiting in the batch. */
static void
send_batch(void)
{
	const char *argv[2] = {"GET", "rv:fs"};
	size_t lens[2] = {3, 5};
	struct waiter *w = sh.batch, *next;

	if (sh.stopping)
		return; /* shared_stop() answers them */
	sh.batch = NULL;
	sh.batch_tail = &sh.batch;
	if (redis_link_command(sh.cmd, on_batch_position, w, 2, argv, lens) == 0) {
		sh.batch_busy = true;
		return;
	}
	for (; w != NULL; w = next) {
		next = w->next;
		fail_soon(w->fn, w->arg);
		free(w);
	}
}

void
shared_sync(const char *key, size_t key_len, shared_done_fn fn, void *arg)
{
	const char *argv[3] = {"MGET", "rv:fs", key};
	size_t lens[3] = {4, 5, key_len};
	struct waiter *w = calloc(1, sizeof *w);

	if (w == NULL) {
		fail_soon(fn, arg);
		return;
	}
	w->fn = fn;
	w->arg = arg;
	if (key == NULL) {
		/*
		 * Batched: one read serves every request that came before it was
		 * sent; while one is in flight, the next waits to be sent after it.
		 */
		*sh.batch_tail = w;
		sh.batch_tail = &w->next;
		if (!sh.batch_busy)
			send_batch();
		return;
	}
	if (redis_link_command(sh.cmd, on_sync_position, w, 3, argv, lens) != 0) {
		free(w);
		fail_soon(fn, arg);
	}
}

void
shared_put(const char *key, size_t key_len, const char *value, size_t len, int64_t ms)
{
	char px[24];
	const char *argv[5] = {"SET", key, value, "PX", px};
	size_t lens[5] = {3, key_len, len, 2, 0};

	lens[4] = (size_t)snprintf(px, sizeof px, "%lld", (long long)(ms > 0 ? ms : 1));
	if (redis_link_up(sh.cmd))
		redis_link_command(sh.cmd, on_published, NULL, 5, argv, lens);
}

/* Every quarter second: answer the waiters whose time is up. */
static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (sh.waiters != NULL)
		wake_waiters(false);
}

/* "rv:od:USER" or "rv:o:USER" (prefix) into buf, or "" when too long. */
static const char *
user_key(char *buf, size_t len, const char *prefix, const char *user)
{
	if ((size_t)snprintf(buf, len, "%s%s", prefix, user) >= len)
		buf[0] = '\0';
	return buf;
}

void
shared_propose(const struct shared_change *c, shared_done_fn fn, void *arg)
{
	char skey[8 + SESSION_ID_HEX], hex[SESSION_ID_HEX + 1], ver[24], keep[24], history[24],
		tag[48], ended[24], retention[24], max[24];
	char live[300], idev[300], iout[300], edev[300], eout[300];
	const char *invitee = c->invitee != NULL ? c->invitee : c->inviter;
	const char *argv[32];
	size_t lens[32];
	char window[24], limit[24];
	struct op *op = calloc(1, sizeof *op);
	const struct jsonw *line = c->line, *outcome = c->outcome;
	int n = 0;

	sh.st.proposed++;
	if (op == NULL || (op->rec = malloc(c->rec->len)) == NULL || !redis_link_up(sh.cmd) ||
	    *user_key(live, sizeof live, "rv:live:", c->inviter) == '\0' ||
	    *user_key(idev, sizeof idev, "rv:od:", c->inviter) == '\0' ||
	    *user_key(iout, sizeof iout, "rv:o:", c->inviter) == '\0' ||
	    *user_key(edev, sizeof edev, "rv:od:", invitee) == '\0' ||
	    *user_key(eout, sizeof eout, "rv:o:", invitee) == '\0') {
		if (op != NULL)
			free(op->rec);
		free(op);
		fail_soon(fn, arg);
		return;
	}
	op->n = ++sh.next_op;
	op->fn = fn;
	op->arg = arg;
	op->t0 = stats_clock();
	memcpy(op->sid, c->sid, SESSION_ID_BYTES);
	memcpy(op->rec, c->rec->buf, c->rec->len);
	op->rec_len = c->rec->len;
	session_id_format(c->sid, hex);
	snprintf(skey, sizeof skey, "rv:s:%s", hex);
	snprintf(ver, sizeof ver, "%" PRIu64, c->version);
	snprintf(keep, sizeof keep, "%" PRId64, config.linger_ms + 60000);
	snprintf(history, sizeof history, "%zu", config.history);
	snprintf(tag, sizeof tag, "%s.%" PRIu64, sh.tag, op->n);
	snprintf(window, sizeof window, "%lld", (long long)config.idempotency_window_ms);
	snprintf(limit, sizeof limit, "%zu", config.max_sessions_per_user);
	snprintf(ended, sizeof ended, "%" PRId64, c->ended);
	snprintf(retention, sizeof retention, "%" PRId64, config.outcome_retention_ms);
	snprintf(max, sizeof max, "%zu", config.max_outcomes);
#define ARG(s, l) (argv[n] = (s), lens[n++] = (l))
#define ARGS(s) ARG((s), strlen(s))
	/* KEYS */
	ARGS(skey);
	ARG("rv:ev", 5);
	ARG("rv:fs", 5);
	ARG("rv:log", 6);
	ARG("rv:sessions", 11);
	ARG(c->key != NULL ? c->key->name : "rv:k:", c->key != NULL ? c->key->name_len : 5);
	ARGS(live);
	ARGS(idev);
	ARGS(iout);
	ARGS(edev);
	ARGS(eout);
	/* ARGV */
	ARGS(ver);
	ARG(c->rec->buf, c->rec->len);
	ARG(line != NULL ? line->buf : "", line != NULL ? c->at : 0);
	ARG(line != NULL ? line->buf + c->at : "", line != NULL ? line->len - c->at : 0);
	ARGS(c->final ? keep : "");
	ARG(hex, SESSION_ID_HEX);
	ARGS(history);
	ARGS(FEED_CHANNEL);
	ARGS(tag);
	ARG(c->key != NULL ? c->key->pending : "", c->key != NULL ? c->key->pending_len : 0);
	ARGS(window);
	ARGS(limit);
	ARGS(c->version == 0 ? "+" : c->final ? "-" : "");
	ARG(outcome != NULL ? outcome->buf : "", outcome != NULL ? c->outcome_at : 0);
	ARG(outcome != NULL ? outcome->buf + c->outcome_at : "",
	    outcome != NULL ? outcome->len - c->outcome_at : 0);
	ARGS(ended);
	ARGS(retention);
	ARGS(max);
	ARGS(c->invitee != NULL ? "1" : "");
#undef ARGS
#undef ARG
	HASH_ADD(hh, sh.ops, n, sizeof op->n, op);
	if (redis_link_eval(sh.cmd, &redis_script_transition, on_proposed, op, 11, n, argv, lens) !=
	    0) {
		HASH_DEL(sh.ops, op);
		free(op->rec);
		free(op);
		fail_soon(fn, arg);
	}
}

/* A daemon's change Redis answered: counted by the node whose change was applied. */
static void
on_daemon_done(void *arg, enum shared_result r, const char *value, size_t len)
{
	struct session_change *ch = arg;

	(void)value;
	(void)len;
	if (r == SHARED_APPLIED)
		session_count_change(ch);
	free(ch);
}

/* A deadline of a session fell due here: propose the daemon's change (every node does). */
static void
on_daemon_change(struct session *s, const struct session_change *ch)
{
	struct session_change *count = malloc(sizeof *count);
	struct jsonw rec, line, outcome;
	struct shared_change c = {
		.sid = s->id,
		.version = s->version,
		.inviter = s->inviter->name,
		.rec = &rec,
		.line = ch->outcome == RV_CHANGED ? &line : NULL,
		.final = rv_state_is_final(ch->m.state),
		.ended = ch->updated,
		.invitee = session_change_invited(ch) ? s->invitee->name : NULL,
	};

	if (count != NULL) {
		*count = *ch; /* its reason is the daemon's own, a literal */
		count->by = NULL;
		count->by_device = count->answered_by = NULL;
		count->app_data = count->event_data = NULL;
	}
	jsonw_init(&rec);
	jsonw_init(&line);
	jsonw_init(&outcome);
	if (session_change_encode(s, ch, &rec, &line, &c.at, &outcome, &c.outcome_at) == 0) {
		c.outcome = outcome.len > 0 ? &outcome : NULL;
		shared_propose(&c, count != NULL ? on_daemon_done : NULL, count);
	} else {
		log_error("redis: out of memory proposing a change");
		free(count);
	}
	jsonw_free(&rec);
	jsonw_free(&line);
	jsonw_free(&outcome);
}

int
shared_start(struct event_base *base)
{
	struct timeval hb = {HEARTBEAT_MS / 1000, (HEARTBEAT_MS % 1000) * 1000};
	struct timeval sweep = {0, 250000};
	uint8_t rnd[8];
	char why[256], where[300];

	memset(&sh, 0, sizeof sh);
	sh.base = base;
	sh.queue_tail = &sh.queue;
	sh.batch_tail = &sh.batch;
	node_name_default();
	if (redis_addr_parse(config.store, &sh.addr, why, sizeof why) != 0) {
		log_error("redis: %s", why);
		return -1;
	}
	if (config.redis_password_file != NULL &&
	    (sh.password = read_password(config.redis_password_file)) == NULL)
		return -1;
	if (random_bytes(rnd, sizeof rnd) != 0)
		return -1;
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(sh.tag + 2 * i, 3, "%02x", rnd[i]);
	redis_scripts_init();
	sh.cmd = redis_link_new(base, &sh.addr, sh.password, config.store_timeout_ms, &cmd_ops,
				NULL);
	sh.feed = redis_link_new(base, &sh.addr, sh.password, config.store_timeout_ms, &feed_ops,
				 NULL);
	sh.heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, NULL);
	sh.sweep = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
	sh.retry = evtimer_new(base, on_retry, NULL);
	if (sh.cmd == NULL || sh.feed == NULL || sh.heartbeat == NULL || sh.retry == NULL ||
	    sh.sweep == NULL || redis_link_add_script(sh.cmd, &redis_script_transition) != 0 ||
	    redis_link_add_script(sh.cmd, &redis_script_snapshot) != 0 ||
	    redis_link_subscribe(sh.feed, FEED_CHANNEL, on_feed, NULL) != 0 ||
	    redis_link_subscribe(sh.feed, HEARTBEAT_CHANNEL, on_feed, NULL) != 0 ||
	    redis_link_subscribe(sh.feed, PRESENCE_CHANNEL, on_feed, NULL) != 0 ||
	    redis_link_subscribe(sh.feed, CONTEXT_CHANNEL, on_feed, NULL) != 0 ||
	    redis_link_add_script(sh.cmd, &redis_script_lease) != 0 ||
	    redis_link_add_script(sh.cmd, &redis_script_outcomes) != 0) {
		log_error("redis: out of memory");
		shared_stop();
		return -1;
	}
	shared_outcomes_start(base, sh.cmd);
	if (nodes_start(base, sh.cmd, sh.name) != 0) {
		log_error("redis: out of memory");
		shared_stop();
		return -1;
	}
	redis_link_expect(sh.feed, FEED_SILENCE_MS);
	event_add(sh.heartbeat, &hb);
	event_add(sh.sweep, &sweep);
	sessions_on_daemon_change(on_daemon_change);
	log_info("redis: node %s, store %s", sh.name,
		 redis_addr_format(&sh.addr, where, sizeof where));
	/* Serve nothing before every session, and every other node's devices, are here. */
	while (!sh.loaded || !nodes_ready()) {
		if (event_base_loop(base, EVLOOP_ONCE) != 0) {
			shared_stop();
			return -1;
		}
	}
	return 0;
}

void
shared_stop(void)
{
	struct op *op, *tmp;
	struct queued *q;

	nodes_leave();
	sh.stopping = true;
	sessions_on_daemon_change(NULL);
	/* Links first: they fail what is in flight, answering each op. */
	if (sh.cmd != NULL)
		redis_link_free(sh.cmd);
	if (sh.feed != NULL)
		redis_link_free(sh.feed);
	shared_outcomes_stop();
	HASH_ITER (hh, sh.ops, op, tmp) {
		HASH_DEL(sh.ops, op);
		free(op->rec);
		free(op);
	}
	while ((q = sh.queue) != NULL) {
		sh.queue = q->next;
		free(q);
	}
	wake_waiters(true);
	while (sh.batch != NULL) { /* never sent */
		struct waiter *w = sh.batch;
		sh.batch = w->next;
		w->fn(w->arg, SHARED_UNAVAILABLE, NULL, 0);
		free(w);
	}
	nodes_stop();
	if (sh.heartbeat != NULL)
		event_free(sh.heartbeat);
	if (sh.sweep != NULL)
		event_free(sh.sweep);
	if (sh.retry != NULL)
		event_free(sh.retry);
	free(sh.password);
	memset(&sh, 0, sizeof sh);
}

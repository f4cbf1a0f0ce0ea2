/* Events: numbering, one encoding, bounded history, fan-out, replay. */
#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <utlist.h>

#include "authz.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "hub.h"
#include "idtable.h"
#include "jsonw.h"
#include "log.h"
#include "msgbuf.h"
#include "stats.h"
#include "store.h"
#include "users.h"

/* One event in history: what replay needs to match it, and its encoding. */
struct hist {
	uint64_t id;
	int64_t time; /* Unix ms */
	uint8_t sid[SESSION_ID_BYTES];
	struct user *inviter, *invitee; /* references */
	bool invitee_visible;
	bool final;        /* the session's last event: into a final state */
	struct msgbuf *mb; /* one reference on the block holding its line */
	const char *line;  /* in mb: "\n" included */
	size_t len;
};

/* Told when a session's final event reaches a peer (outcomes.c). */
static void (*final_hook)(const struct hub_peer *p, const uint8_t *sid);

void
hub_on_final_delivered(void (*fn)(const struct hub_peer *p, const uint8_t *sid))
{
	final_hook = fn;
}

/* Whether h is a session's final event and p one of its parties (outcomes are theirs). */
static bool
final_for_party(const struct hub_peer *p, const struct hist *h)
{
	const struct user *u = p->who->user;

	return h->final && final_hook != NULL &&
	       (u == h->inviter || (h->invitee_visible && u == h->invitee));
}

/* Whether a stored event line moves its session into a final state (at recovery). */
static bool
line_final(const char *text, size_t len)
{
	static const char *const finals[] = {"\"state\":\"RSS_CANCELLED\"",
					     "\"state\":\"RSS_DECLINED\"",
					     "\"state\":\"RSS_TERMINATED\""};
	char line[256];
	size_t n = len < sizeof line - 1 ? len : sizeof line - 1;

	/* "state" comes early in every event line, after session and prev. */
	memcpy(line, text, n);
	line[n] = '\0';
	for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
		if (strstr(line, finals[i]) != NULL)
			return true;
	}
	return false;
}

/* Subscriptions to one session. */
struct bucket {
	uint8_t sid[SESSION_ID_BYTES];
	struct sub *subs;
	struct idnode node; /* hub.buckets */
};

static size_t nsubs_all; /* subscriptions of every connection */

static struct {
	uint64_t last;     /* newest event id */
	struct hist *ring; /* history, oldest at 'head' */
	size_t cap, len, head;
	size_t bytes;           /* encoded events held, for --history-bytes */
	struct idtable buckets; /* struct bucket by session id */
	struct sub *all;        /* subscribe {all: true} */
	uint64_t delivered;     /* events up to this one have been fanned out */
	struct sub *replays;    /* subscriptions whose replay is not sent yet */
	uint64_t trimmed;       /* events below this were deleted from the store */
} hub;

static void hub_flush_replays(void);

/* Trim the stored history once this many events have left memory. */
#define TRIM_STEP 1024

/* Before a commit: forget, in the store, what history no longer holds. */
static void
hub_on_prepare(void *arg)
{
	uint64_t first = hub_first_held();

	(void)arg;
	if (first > hub.trimmed + TRIM_STEP) {
		store_trim_events(first);
		hub.trimmed = first;
	}
}

static int
hub_on_rolled_back(void *arg)
{
	(void)arg;
	return hub_recover();
}

/* The hub's part in group commit (commit.h). */
static const struct commit_participant hub_participant = {
	.name = "the hub",
	.prepare = hub_on_prepare,
	.rolled_back = hub_on_rolled_back,
};

int
hub_init(size_t history)
{
	memset(&hub, 0, sizeof hub);
	if (history > SIZE_MAX / sizeof *hub.ring)
		return -1;
	hub.ring = calloc(history, sizeof *hub.ring);
	if (hub.ring == NULL)
		return -1;
	hub.cap = history;
	if (idtable_init(&hub.buckets, (ptrdiff_t)offsetof(struct bucket, sid) -
					       (ptrdiff_t)offsetof(struct bucket, node)) != 0) {
		free(hub.ring);
		return -1;
	}
	commit_register(COMMIT_HUB, &hub_participant);
	return 0;
}

static struct bucket *
bucket_find(const uint8_t sid[SESSION_ID_BYTES])
{
	struct idnode *n = idtable_find(&hub.buckets, sid);

	return n != NULL ? container_of(n, struct bucket, node) : NULL;
}

static void
bucket_free(struct idnode *n, void *arg)
{
	(void)arg;
	idtable_remove(&hub.buckets, n);
	free(container_of(n, struct bucket, node));
}

static void
hist_clear(struct hist *h)
{
	user_unref(h->inviter);
	user_unref(h->invitee);
	msgbuf_unref(h->mb);
	memset(h, 0, sizeof *h);
}

/* Forget every event held. */
static void
hub_clear_history(void)
{
	for (size_t i = 0; i < hub.len; i++)
		hist_clear(&hub.ring[(hub.head + i) % hub.cap]);
	hub.len = hub.head = hub.bytes = 0;
}

void
hub_finish(void)
{
	hub_clear_history();
	free(hub.ring);
	/* Subscriptions go with their connections (conns_finish runs first). */
	idtable_foreach(&hub.buckets, bucket_free, NULL);
	idtable_finish(&hub.buckets);
	memset(&hub, 0, sizeof hub);
	msgbuf_finish();
}

size_t
hub_subscriptions(void)
{
	return nsubs_all;
}

uint64_t
hub_last_event(void)
{
	return hub.last;
}

bool
hub_unflushed(void)
{
	return hub.delivered < hub.last;
}

uint64_t
hub_first_held(void)
{
	return hub.len > 0 ? hub.ring[hub.head].id : hub.last + 1;
}

/* Whether p may see h (authz.c decides). */
static bool
hist_visible(const struct hub_peer *p, const struct hist *h)
{
	const struct authz_parties parties = {h->inviter, h->invitee, h->invitee_visible};

	return authz_read(p->who, &parties) == 0;
}

static bool
sub_matches(const struct sub *s, const struct hist *h)
{
	if (!hist_visible(s->peer, h))
		return false;
	switch (s->kind) {
	case SUB_ALL: return true;
	case SUB_SESSION: return memcmp(s->sid, h->sid, SESSION_ID_BYTES) == 0;
	case SUB_USER:
		return s->user == h->inviter || (s->user == h->invitee && h->invitee_visible);
	case SUB_PRESENCE: return false; /* presence.changed only */
	}
	return false;
}

/* Queue an event's line to c, counted. */
static void
hub_deliver(struct conn *c, const struct hist *h)
{
	stats.events_delivered++;
	stats.bytes_delivered += h->len;
	conn_send_shared(c, h->mb, h->line, h->len);
}

static void
deliver_list(struct sub *list, const struct hist *h)
{
	struct sub *s;

	DL_FOREACH (list, s) {
		struct hub_peer *p = s->peer;

		if (!conn_live(p->conn) || p->mark == h->id || !hist_visible(p, h))
			continue;
		p->mark = h->id;
		hub_deliver(p->conn, h);
		if (final_for_party(p, h))
			final_hook(p, h->sid);
	}
}

/*
 * Encode the notification line for one state change, once for every
 * receiver: the block holding it (a reference), the line at *line.
 */
/* Write the line for ev into w, with id, or (at not NULL) without it, *at where it goes. */
static void
event_write(struct jsonw *w, const struct hub_event *ev, uint64_t id, size_t *at)
{
	char sid[SESSION_ID_HEX + 1];

	session_id_format(ev->sid, sid);
	jsonw_lit(w, "{\"jsonrpc\":\"2.0\",\"method\":\"session.state_changed\",\"params\":"
		     "{\"session\":\"");
	jsonw_raw(w, sid, SESSION_ID_HEX);
	jsonw_lit(w, "\",\"prev\":\"");
	jsonw_str_plain(w, rv_state_name(ev->prev));
	jsonw_lit(w, "\",\"state\":\"");
	jsonw_str_plain(w, rv_state_name(ev->state));
	jsonw_lit(w, "\",\"event\":");
	if (at != NULL)
		*at = w->len;
	else
		jsonw_int(w, (long long)id);
	jsonw_lit(w, ",\"time\":");
	jsonw_int(w, ev->time);
	jsonw_lit(w, ",\"by\":");
	jsonw_str(w, ev->by);
	jsonw_lit(w, ",\"by_device\":");
	jsonw_str(w, ev->by_device);
	jsonw_lit(w, ",\"inviter\":");
	jsonw_str(w, ev->inviter->name);
	jsonw_lit(w, ",\"invitee\":");
	jsonw_str(w, ev->invitee->name);
	jsonw_lit(w, ",\"topic\":");
	jsonw_str(w, ev->topic);
	if (ev->reason != NULL) {
		jsonw_lit(w, ",\"reason\":");
		jsonw_str(w, ev->reason);
	}
	if (ev->has_code) {
		jsonw_lit(w, ",\"code\":");
		jsonw_int(w, ev->code);
	}
	if (ev->replaced_by != NULL) {
		char won[SESSION_ID_HEX + 1];
		session_id_format(ev->replaced_by, won);
		jsonw_lit(w, ",\"replaced_by\":\"");
		jsonw_raw(w, won, SESSION_ID_HEX);
		jsonw_lit(w, "\"");
	}
	if (ev->data != NULL) {
		jsonw_lit(w, ",\"data\":");
		jsonw_json(w, ev->data);
	}
	jsonw_lit(w, "}}\n");
}

int
hub_event_line(const struct hub_event *ev, struct jsonw *w, size_t *at)
{
	event_write(w, ev, 0, at);
	return jsonw_ok(w) ? 0 : -1;
}

static struct msgbuf *
event_encode(const struct hub_event *ev, uint64_t id, const char **line, size_t *len)
{
	struct msgbuf *mb = NULL;
	struct jsonw w;

	jsonw_init(&w);
	event_write(&w, ev, id, NULL);
	if (jsonw_ok(&w)) {
		mb = msgbuf_append(w.buf, w.len, line);
		*len = w.len;
	}
	jsonw_free(&w);
	return mb;
}

/* Drop the oldest event held. */
static void
hub_drop_oldest(void)
{
	hub.bytes -= hub.ring[hub.head].len;
	hist_clear(&hub.ring[hub.head]);
	hub.head = (hub.head + 1) % hub.cap;
	hub.len--;
}

/* Drop events older than --history-age. */
static void
hub_trim_age(int64_t now)
{
	if (hub.replays != NULL)
		return; /* a replay waiting to be sent may need them */
	while (hub.len > 0 && hub.ring[hub.head].time < now - config.history_age_ms &&
	       hub.ring[hub.head].id <= hub.delivered)
		hub_drop_oldest();
}

/* Append an event to history, dropping the oldest when full. */
static void
hub_append(uint64_t id, int64_t time, const uint8_t *sid, struct user *inviter,
	   struct user *invitee, bool invitee_visible, bool final, struct msgbuf *mb,
	   const char *line, size_t len)
{
	struct hist *h;

	if (hub.len == hub.cap)
		hub_drop_oldest();
	/* Within --history-bytes too, but never dropping what is not fanned out yet. */
	while (hub.len > 0 && hub.bytes + len > config.history_bytes &&
	       hub.ring[hub.head].id <= hub.delivered)
		hub_drop_oldest();
	hub.bytes += len;
	h = &hub.ring[(hub.head + hub.len) % hub.cap];
	hub.len++;
	h->id = id;
	h->time = time;
	memcpy(h->sid, sid, SESSION_ID_BYTES);
	h->inviter = user_ref(inviter);
	h->invitee = user_ref(invitee);
	h->invitee_visible = invitee_visible;
	h->final = final;
	h->mb = mb;
	h->line = line;
	h->len = len;
}

uint64_t
hub_publish(const struct hub_event *ev)
{
	uint64_t id = hub.last + 1;
	struct msgbuf *mb;
	const char *line = NULL;
	size_t len = 0;

	/* Replays go first: they may need the event that makes room for this one. */
	hub_flush_replays();
	mb = event_encode(ev, id, &line, &len);

	if (mb == NULL) {
		log_error("hub: out of memory encoding event %llu", (unsigned long long)id);
		store_fail(); /* the session changed without its event: undo it */
		return 0;
	}
	hub.last = id;
	hub_trim_age(ev->time);
	hub_append(id, ev->time, ev->sid, ev->inviter, ev->invitee, ev->invitee_visible,
		   rv_state_is_final(ev->state), mb, line, len);
	stats.events_published++;
	if (store_durable()) {
		struct store_event sev = {
			.id = id,
			.time = ev->time,
			.inviter = ev->inviter->name,
			.invitee = ev->invitee->name,
			.invitee_visible = ev->invitee_visible,
			.line = line,
			.len = len,
		};
		memcpy(sev.sid, ev->sid, SESSION_ID_BYTES);
		store_add_event(&sev);
	}
	return id;
}

/* An encoded event (ev->line) into history with its users; -1 when memory ran out. */
static int
hub_append_stored(const struct store_event *ev)
{
	struct user *inviter = user_get(ev->inviter), *invitee = user_get(ev->invitee);
	const char *line = NULL;
	struct msgbuf *mb = msgbuf_append(ev->line, ev->len, &line);

	if (mb != NULL && inviter != NULL && invitee != NULL)
		hub_append(ev->id, ev->time, ev->sid, inviter, invitee, ev->invitee_visible,
			   line_final(ev->line, ev->len), mb, line, ev->len);
	user_unref(inviter);
	user_unref(invitee);
	if (mb == NULL || inviter == NULL || invitee == NULL) {
		msgbuf_unref(mb);
		log_error("hub: out of memory holding event %llu", (unsigned long long)ev->id);
		return -1;
	}
	return 0;
}

/* The id of the newest event held, or 0. */
static uint64_t
hub_last_held(void)
{
	return hub.len > 0 ? hub.ring[(hub.head + hub.len - 1) % hub.cap].id : 0;
}

int
hub_history_add(const struct store_event *ev)
{
	if ((hub.len > 0 && ev->id != hub_last_held() + 1) || ev->id > hub.last) {
		log_error("hub: event %llu is out of sequence (after %llu, last %llu)",
			  (unsigned long long)ev->id, (unsigned long long)hub_last_held(),
			  (unsigned long long)hub.last);
		return -1;
	}
	return hub_append_stored(ev);
}

/* One stored event back into history (arg unused). */
static int
hub_recover_one(const struct store_event *ev, void *arg)
{
	(void)arg;
	return hub_history_add(ev);
}

void
hub_restart(uint64_t last)
{
	hub_clear_history();
	hub.last = hub.delivered = last;
}

int
hub_publish_stored(const struct store_event *ev)
{
	if (ev->id != hub.last + 1) {
		log_error("hub: event %llu does not follow %llu", (unsigned long long)ev->id,
			  (unsigned long long)hub.last);
		return -1;
	}
	hub_flush_replays(); /* as hub_publish() */
	hub_trim_age(ev->time);
	if (hub_append_stored(ev) != 0)
		return -1;
	hub.last = ev->id;
	stats.events_published++;
	return 0;
}

int
hub_recover(void)
{
	uint64_t last;

	hub_clear_history();
	if (store_last_event(&last) != 0)
		return -1;
	hub.last = hub.delivered = last;
	if (store_load_events(last > hub.cap ? last - hub.cap : 0, hub_recover_one, NULL) != 0)
		return -1;
	if (hub.len > 0 && hub_last_held() != last) {
		log_error("store: the newest event held is %llu, the last event id %llu",
			  (unsigned long long)hub_last_held(), (unsigned long long)last);
		return -1;
	}
	hub_trim_age(now_ms());
	return 0;
}

/* Send one event to every connection with a matching subscription, once. */
static void
hub_fan_out(const struct hist *h)
{
	struct bucket *b = bucket_find(h->sid);

	deliver_list(hub.all, h);
	if (b != NULL)
		deliver_list(b->subs, h);
	deliver_list(h->inviter->subs, h);
	if (h->invitee_visible)
		deliver_list(h->invitee->subs, h);
}

void
hub_flush(void)
{
	uint64_t first;

	hub_flush_replays(); /* older than anything live: they go first */
	first = hub_first_held();

	if (hub.delivered < first - 1) {
		log_error("hub: events %llu to %llu left history before fan-out",
			  (unsigned long long)hub.delivered + 1, (unsigned long long)first - 1);
		hub.delivered = first - 1;
	}
	while (hub.delivered < hub.last) {
		uint64_t id = ++hub.delivered;
		hub_fan_out(&hub.ring[(hub.head + (id - first)) % hub.cap]);
	}
}

static struct sub **
sub_target_list(struct sub *s, bool create)
{
	struct bucket *b;

	switch (s->kind) {
	case SUB_ALL: return &hub.all;
	case SUB_USER: return &s->user->subs;
	case SUB_PRESENCE: return &s->user->presence_subs;
	case SUB_SESSION:
		b = bucket_find(s->sid);
		if (b == NULL && create) {
			b = calloc(1, sizeof *b);
			if (b == NULL)
				return NULL;
			memcpy(b->sid, s->sid, SESSION_ID_BYTES);
			idtable_insert(&hub.buckets, &b->node);
		}
		return b != NULL ? &b->subs : NULL;
	}
	return NULL;
}

static void
sub_free(struct sub *s)
{
	struct sub **list = sub_target_list(s, false);

	if (list != NULL) {
		DL_DELETE(*list, s);
		if (s->kind == SUB_SESSION && *list == NULL) {
			struct bucket *b = bucket_find(s->sid);
			idtable_remove(&hub.buckets, &b->node);
			free(b);
		}
	}
	if (s->replaying)
		LL_DELETE2(hub.replays, s, replay_next);
	user_unref(s->user);
	if (--s->peer->nsubs == 0)
		conn_keep_output(s->peer->conn, false);
	nsubs_all--;
	free(s);
}

size_t
hub_presence(struct user *u, struct msgbuf *mb,
	     bool (*may_see)(const struct principal *p, const struct user *u))
{
	struct sub *s;
	size_t n = 0;

	DL_FOREACH (u->presence_subs, s) {
		if (!conn_live(s->peer->conn) || !may_see(s->peer->who, u))
			continue;
		conn_send_msgbuf(s->peer->conn, mb);
		n++;
	}
	return n;
}

int
hub_subscribe(struct hub_peer *p, enum sub_kind kind, const uint8_t *sid, struct user *user,
	      bool has_since, uint64_t since, struct sub **out)
{
	struct sub *s, **list;

	if (hub_unflushed())
		hub_flush(); /* so that 'start' splits replayed from live exactly */
	hub_trim_age(now_ms());
	if (has_since && since > hub.last)
		return RV_ERR_INVALID_PARAMS;
	if (has_since && since + 1 < hub_first_held())
		return RV_ERR_HISTORY_GONE;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return RV_ERR_INTERNAL;
	s->id = ++p->next_sub_id;
	s->kind = kind;
	s->peer = p;
	s->start = hub.last;
	s->from = has_since ? since : hub.last;
	if (kind == SUB_SESSION)
		memcpy(s->sid, sid, SESSION_ID_BYTES);
	if (kind == SUB_USER || kind == SUB_PRESENCE)
		s->user = user_ref(user);
	list = sub_target_list(s, true);
	if (list == NULL) {
		user_unref(s->user);
		free(s);
		return RV_ERR_INTERNAL;
	}
	DL_APPEND(*list, s);
	LL_PREPEND2(p->subs, s, conn_next);
	if (p->nsubs++ == 0)
		conn_keep_output(p->conn, true); /* it will be refilled soon */
	nsubs_all++;
	if (has_since && since < hub.last) {
		s->replaying = true;
		LL_APPEND2(hub.replays, s, replay_next);
	}
	*out = s;
	return 0;
}

/*
 * What a connection's other subscriptions already delivered, indexed so a
 * replay costs O(history + subscriptions), not their product: for each
 * target, the lowest 'from' among the subscriptions to it.
 */
struct seen_key {
	const struct user *user;
	uint8_t sid[SESSION_ID_BYTES];
};
struct seen {
	struct seen_key key;
	uint64_t from;
	UT_hash_handle hh;
};
struct seen_index {
	uint64_t all_from; /* lowest 'from' of an {all} subscription */
	struct seen *by_key;
	struct seen *slab; /* one entry per subscription, freed at once */
};

static int
seen_build(struct seen_index *ix, const struct hub_peer *c)
{
	size_t n = 0;

	memset(ix, 0, sizeof *ix);
	ix->all_from = UINT64_MAX;
	ix->slab = calloc(c->nsubs ? c->nsubs : 1, sizeof *ix->slab);
	if (ix->slab == NULL)
		return -1;
	for (const struct sub *o = c->subs; o != NULL; o = o->conn_next) {
		struct seen key = {0}, *e;

		if (o->replaying || o->kind == SUB_PRESENCE)
			continue; /* being replayed itself; or no events at all */
		if (o->kind == SUB_ALL) {
			if (o->from < ix->all_from)
				ix->all_from = o->from;
			continue;
		}
		if (o->kind == SUB_USER)
			key.key.user = o->user;
		else
			memcpy(key.key.sid, o->sid, SESSION_ID_BYTES);
		HASH_FIND(hh, ix->by_key, &key.key, sizeof key.key, e);
		if (e == NULL) {
			e = &ix->slab[n++];
			e->key = key.key;
			e->from = o->from;
			HASH_ADD(hh, ix->by_key, key, sizeof e->key, e);
		} else if (o->from < e->from) {
			e->from = o->from;
		}
	}
	return 0;
}

static uint64_t
seen_from(const struct seen_index *ix, const struct user *user, const uint8_t *sid)
{
	struct seen_key key;
	struct seen *e;

	memset(&key, 0, sizeof key);
	key.user = user;
	if (sid != NULL)
		memcpy(key.sid, sid, SESSION_ID_BYTES);
	HASH_FIND(hh, ix->by_key, &key, sizeof key, e);
	return e != NULL ? e->from : UINT64_MAX;
}

/* Whether another subscription of the connection already sent h (h is visible to it). */
static bool
seen_already(const struct seen_index *ix, const struct hist *h)
{
	return ix->all_from < h->id || seen_from(ix, NULL, h->sid) < h->id ||
	       seen_from(ix, h->inviter, NULL) < h->id ||
	       (h->invitee_visible && seen_from(ix, h->invitee, NULL) < h->id);
}

static void
seen_free(struct seen_index *ix)
{
	HASH_CLEAR(hh, ix->by_key);
	free(ix->slab);
}

/* Queue an event's line to c as replayed: the same bytes with "replay":true added. */
static void
hub_deliver_replayed(struct conn *c, const struct hist *h)
{
	static const char mark[] = ",\"replay\":true";

	stats.events_delivered++;
	stats.bytes_delivered += h->len + sizeof mark - 1;
	/* Every event line ends with the end of its params and of the message. */
	if (h->len < 3 || memcmp(h->line + h->len - 3, "}}\n", 3) != 0) {
		conn_send_shared(c, h->mb, h->line, h->len);
		return;
	}
	conn_send_parts(c, h->line, h->len - 3, mark, sizeof mark - 1, "}}\n", 3);
}

/*
 * Send the replays waiting on p as one run in increasing event id order:
 * an event goes out once if any of them asked for it and no other
 * subscription of p has sent it already.
 */
static void
hub_replay_peer(struct hub_peer *p)
{
	struct conn *c = p->conn;
	struct seen_index seen;
	struct sub *s, *tmp;
	uint64_t first = hub_first_held(), id = UINT64_MAX, last = 0;
	int rc = seen_build(&seen, p);

	LL_FOREACH2(hub.replays, s, replay_next)
	{
		if (s->peer != p)
			continue;
		if (s->from + 1 < id)
			id = s->from + 1;
		if (s->start > last)
			last = s->start;
	}
	/* Only what history holds now (each subscribe checked it was enough). */
	if (id < first)
		id = first;
	for (; rc == 0 && id <= last && conn_live(c); id++) {
		const struct hist *h = &hub.ring[(hub.head + (id - first)) % hub.cap];
		bool wanted = false;

		LL_FOREACH2(hub.replays, s, replay_next)
		{
			if (s->peer == p && s->from < id && id <= s->start && sub_matches(s, h)) {
				wanted = true;
				break;
			}
		}
		if (wanted && !seen_already(&seen, h)) {
			hub_deliver_replayed(c, h);
			if (final_for_party(p, h))
				final_hook(p, h->sid);
		}
	}
	LL_FOREACH_SAFE2(hub.replays, s, tmp, replay_next)
	{
		if (s->peer == p) {
			LL_DELETE2(hub.replays, s, replay_next);
			s->replaying = false;
		}
	}
	if (rc != 0) {
		log_error("hub: out of memory replaying events to conn %llu",
			  (unsigned long long)c->id);
		conn_close(c, "out of memory");
		return;
	}
	seen_free(&seen);
}

/* Send every replay waiting, connection by connection. */
static void
hub_flush_replays(void)
{
	while (hub.replays != NULL)
		hub_replay_peer(hub.replays->peer);
}

int
hub_unsubscribe(struct hub_peer *p, uint32_t id)
{
	struct sub *s;

	LL_SEARCH_SCALAR2(p->subs, s, id, id, conn_next);
	if (s == NULL)
		return -1;
	LL_DELETE2(p->subs, s, conn_next);
	sub_free(s);
	return 0;
}

void
hub_peer_gone(struct hub_peer *p)
{
	struct sub *s;

	while ((s = p->subs) != NULL) {
		p->subs = s->conn_next;
		sub_free(s);
	}
}

/* Whether p is a live connection from device (any device if NULL). */
static bool
peer_from(const struct hub_peer *p, const struct device *device)
{
	return conn_live(p->conn) && (device == NULL || p->who->device == device);
}

int
hub_send_context(const uint8_t *sid, const char *from, struct user *to, const struct device *device,
		 json_t *data, size_t *out)
{
	char sid_hex[SESSION_ID_HEX + 1];
	struct msgbuf *mb;
	struct hub_peer *p;
	json_t *msg;
	size_t n = 0;

	*out = 0;
	TAILQ_FOREACH (p, &to->conns, by_user)
		n += peer_from(p, device);
	if (n == 0)
		return 0;
	session_id_format(sid, sid_hex);
	msg = rv_msg_notification(
		"session.context_data",
		json_pack("{s:s, s:s, s:O}", "session", sid_hex, "from", from, "data", data));
	mb = msg != NULL ? msgbuf_from_json(msg) : NULL;
	json_decref(msg);
	if (mb == NULL) {
		log_error("hub: out of memory encoding context data");
		return -1;
	}
	n = 0;
	TAILQ_FOREACH (p, &to->conns, by_user) {
		if (peer_from(p, device)) {
			stats.contexts_relayed++;
			stats.bytes_delivered += mb->len;
			conn_send_msgbuf(p->conn, mb);
			n++;
		}
	}
	msgbuf_unref(mb);
	*out = n;
	return 0;
}

/* The session table, transitions with their effects, and deadlines. */
#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "commit.h"
#include "config.h"
#include "hub.h"
#include "jsonw.h"
#include "log.h"
#include "outcomes.h"
#include "sessions.h"
#include "stats.h"
#include "store.h"
#include "store_record.h"
#include "users.h"

static struct idtable table;         /* by id */
static struct session *all_sessions; /* in creation order (utlist) */
static struct session *touched;      /* written in the store's open transaction */
static struct timerq *deadlines;
static uint64_t next_seq = 1;
static size_t held[RV_STATE_COUNT]; /* sessions in the table, by state */
/* A shared store's taker of the daemon's own changes (sessions_on_daemon_change()). */
static void (*daemon_change)(struct session *s, const struct session_change *ch);
/* How soon a deadline handed to it is looked at again, if nothing moved it. */
#define DAEMON_CHANGE_RETRY_MS 1000

static void session_on_deadline(struct timer_entry *e, int64_t now, void *arg);

static void sessions_on_committed(void *arg);
static int sessions_on_rolled_back(void *arg);

/* Sessions' part in group commit (commit.h). */
static const struct commit_participant sessions_participant = {
	.name = "sessions",
	.committed = sessions_on_committed,
	.rolled_back = sessions_on_rolled_back,
};

int
sessions_init(struct event_base *base)
{
	if (idtable_init(&table, (ptrdiff_t)offsetof(struct session, id) -
					 (ptrdiff_t)offsetof(struct session, node)) != 0)
		return -1;
	deadlines = timerq_create(base, session_on_deadline, NULL);
	if (deadlines == NULL)
		return -1;
	commit_register(COMMIT_SESSIONS, &sessions_participant);
	return 0;
}

/* Encoded size of a JSON value (0 for none). */
static size_t
json_bytes(const json_t *j)
{
	return j != NULL ? json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
}

/* Bring what s counts against its inviter's --max-user-bytes up to date. */
static void
session_charge(struct session *s)
{
	size_t bytes = SESSION_BYTES + json_bytes(s->data) + json_bytes(s->app_data) +
		       (s->reason != NULL ? strlen(s->reason) : 0);

	s->inviter->held_bytes = s->inviter->held_bytes - s->bytes + bytes;
	s->bytes = bytes;
}

static void
session_free(struct session *s)
{
	s->inviter->held_bytes -= s->bytes;
	idtable_remove(&table, &s->node);
	held[s->m.state]--;
	timerq_cancel(deadlines, &s->timer);
	DL_DELETE2(s->inviter->inviting, s, inv_prev, inv_next);
	DL_DELETE2(s->invitee->invited, s, vee_prev, vee_next);
	DL_DELETE2(all_sessions, s, all_prev, all_next);
	if (!rv_state_is_final(s->m.state))
		s->inviter->live_created--;
	user_unref(s->inviter);
	user_unref(s->invitee);
	json_decref(s->data);
	json_decref(s->app_data);
	free(s->reason);
	device_unref(s->inviter_device);
	device_unref(s->answered_by);
	device_unref(s->by_device);
	free(s->topic);
	free(s);
}

static void
session_free_node(struct idnode *n, void *arg)
{
	(void)arg;
	session_free(container_of(n, struct session, node));
}

void
sessions_finish(void)
{
	touched = NULL; /* main.c committed or rolled back first */
	idtable_foreach(&table, session_free_node, NULL);
	/* Each session was counted in and out by state: anything left is a bug (fuzz_rpc looks). */
	for (size_t i = 0; i < RV_STATE_COUNT; i++)
		assert(held[i] == 0);
	idtable_finish(&table);
	timerq_destroy(deadlines);
	deadlines = NULL;
}

void
sessions_forget_all(void)
{
	touched = NULL;
	idtable_foreach(&table, session_free_node, NULL);
}

size_t
sessions_count(void)
{
	return idtable_count(&table);
}

void
sessions_count_states(size_t counts[RV_STATE_COUNT])
{
	memcpy(counts, held, sizeof held);
}

struct session *
session_find(const uint8_t id[SESSION_ID_BYTES])
{
	struct idnode *n = idtable_find(&table, id);

	return n != NULL ? container_of(n, struct session, node) : NULL;
}

enum rv_role
session_role(const struct session *s, const struct user *u)
{
	struct authz_parties parties = session_parties(s);

	return authz_party_role(&parties, u);
}

bool
session_invited(const struct session *s)
{
	return (s->m.done[RV_ROLE_INVITER] & (1u << RV_ACT_INVITE)) != 0;
}

bool
sessions_share_live(const struct user *a, const struct user *b)
{
	const struct session *s;

	DL_FOREACH2 (a->inviting, s, inv_next) {
		if (s->invitee == b && session_invited(s) && !rv_state_is_final(s->m.state))
			return true;
	}
	DL_FOREACH2 (a->invited, s, vee_next) {
		if (s->inviter == b && session_invited(s) && !rv_state_is_final(s->m.state))
			return true;
	}
	return false;
}

struct authz_parties
session_parties(const struct session *s)
{
	return (struct authz_parties){s->inviter, s->invitee, session_invited(s)};
}

const struct device *
session_engaged_device(const struct session *s, const struct user *u)
{
	if (s->answered_by == NULL)
		return NULL;
	return u == s->inviter ? s->inviter_device : s->answered_by;
}

bool
session_answered_elsewhere(const struct session *s, enum rv_action a, enum rv_role r,
			   const struct device *device)
{
	if (s->answered_by == NULL)
		return false;
	if (r == RV_ROLE_INVITEE && (a == RV_ACT_ACCEPT || a == RV_ACT_DECLINE))
		return device != s->answered_by;
	if (a == RV_ACT_CONNECT && r == RV_ROLE_INVITER)
		return device != s->inviter_device;
	if (a == RV_ACT_CONNECT && r == RV_ROLE_INVITEE)
		return device != s->answered_by;
	return false;
}

/* The invitee counts as engaged, for peer loss, once it has accepted. */
static bool
invitee_engaged(const struct session *s)
{
	return (s->m.done[RV_ROLE_INVITEE] & (1u << RV_ACT_ACCEPT)) != 0;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Put the session's next deadline (expiry, peer loss or end of linger) in the queue. */
static void
session_reschedule(struct session *s)
{
	int64_t d = INT64_MAX;

	if (rv_state_is_final(s->m.state)) {
		d = s->updated + config.linger_ms;
	} else {
		if (s->m.state != RSS_CONNECTED)
			d = s->expires;
		if (s->inviter_away != 0)
			d = min64(d, s->inviter_away + config.peer_grace_ms);
		if (invitee_engaged(s) && s->invitee_away != 0)
			d = min64(d, s->invitee_away + config.peer_grace_ms);
	}
	if (d == INT64_MAX) {
		timerq_cancel(deadlines, &s->timer);
	} else if (timerq_set(deadlines, &s->timer, d) != 0) {
		char sid[SESSION_ID_HEX + 1];
		session_id_format(s->id, sid);
		log_error("session %s: cannot schedule its deadline: out of memory", sid);
	}
}

/* Tell the hub; returns the event id or 0. */
static uint64_t
session_publish(struct session *s, enum rv_state prev, const struct user *by, json_t *data)
{
	struct hub_event ev = {
		.sid = s->id,
		.inviter = s->inviter,
		.invitee = s->invitee,
		.invitee_visible = session_invited(s),
		.prev = prev,
		.state = s->m.state,
		.time = s->updated,
		.by = by != NULL ? by->name : NULL,
		.by_device = s->by_device != NULL ? s->by_device->name : NULL,
		.topic = s->topic != NULL ? s->topic : "",
		.replaced_by = s->replaced && rv_state_is_final(s->m.state) ? s->replaced_by : NULL,
		.reason = rv_state_is_final(s->m.state) ? s->reason : NULL,
		.has_code = rv_state_is_final(s->m.state) && s->has_code,
		.code = s->code,
		.data = data,
	};
	uint64_t id = hub_publish(&ev);

	if (id != 0)
		s->event = id;
	return id;
}

/* Note s as written in the store's open transaction. */
static void
session_touch(struct session *s)
{
	if (!s->txn_touched) {
		s->txn_touched = true;
		s->txn_next = touched;
		touched = s;
	}
}

/* Write s to the store (insert: it is new); the next commit makes it durable. */
/* The durable fields of s as a record (strings borrowed from s; data not included). */
static void
session_to_record(const struct session *s, struct store_session *r)
{
	memset(r, 0, sizeof *r);
	r->seq = s->seq;
	memcpy(r->id, s->id, SESSION_ID_BYTES);
	r->inviter = s->inviter->name;
	r->invitee = s->invitee->name;
	r->m = s->m;
	r->created = s->created;
	r->updated = s->updated;
	r->expires = s->expires;
	r->event = s->event;
	r->reason = s->reason;
	r->has_code = s->has_code;
	r->code = s->code;
	r->inviter_device = s->inviter_device != NULL ? s->inviter_device->name : NULL;
	r->answered_by = s->answered_by != NULL ? s->answered_by->name : NULL;
	r->by_user = s->by_device != NULL ? s->by_device->user->name : NULL;
	r->by_device = s->by_device != NULL ? s->by_device->name : NULL;
	r->topic = s->topic;
	r->replaced = s->replaced;
	memcpy(r->replaced_by, s->replaced_by, SESSION_ID_BYTES);
}

static void
session_store(struct session *s, bool insert)
{
	struct store_session r;
	char *data = NULL, *app = NULL;

	if (!store_durable())
		return;
	session_touch(s);
	session_to_record(s, &r);
	if (insert && s->data != NULL)
		data = json_dumps(s->data, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s->app_data != NULL)
		app = json_dumps(s->app_data, JSON_COMPACT | JSON_ENCODE_ANY);
	if ((insert && s->data != NULL && data == NULL) || (s->app_data != NULL && app == NULL)) {
		log_error("sessions: out of memory encoding a session for the store");
		store_fail();
	} else {
		r.data = data;
		r.app_data = app;
		store_put_session(&r, insert);
	}
	free(data);
	free(app);
}

/*
 * Whether a new session with data would take inviter past --max-user-bytes
 * (ended sessions count too until they are freed: memory, not only live ones).
 */
static bool
over_bytes(const struct user *inviter, const json_t *data)
{
	return config.max_user_bytes != 0 &&
	       inviter->held_bytes + SESSION_BYTES + json_bytes(data) > config.max_user_bytes;
}

/* Whether a new session would take inviter over a limit: *limit says which. */
static bool
session_limited(const struct user *inviter, const json_t *data, const char **limit)
{
	if (inviter->live_created >= config.max_sessions_per_user) {
		*limit = "max_sessions_per_user";
		return true;
	}
	if (over_bytes(inviter, data)) {
		*limit = "max_user_bytes";
		return true;
	}
	return false;
}

int
session_create(struct user *inviter, struct device *device, struct user *invitee, const char *topic,
	       int64_t ttl_ms, json_t *data, struct session **out, const char **limit)
{
	struct session *s;

	if (session_limited(inviter, data, limit))
		return RV_ERR_LIMIT;
	s = calloc(1, sizeof *s);
	if (s == NULL || random_bytes(s->id, sizeof s->id) != 0 ||
	    (topic != NULL && *topic != '\0' && (s->topic = strdup(topic)) == NULL)) {
		log_error("sessions: cannot create a session: %s",
			  s != NULL && s->topic == NULL && topic != NULL && *topic != '\0'
				  ? "out of memory"
			  : s == NULL ? "out of memory"
				      : "no randomness");
		free(s);
		return RV_ERR_INTERNAL;
	}
	s->inviter_device = device_ref(device);
	s->by_device = device_ref(device);
	rv_machine_init(&s->m);
	s->inviter = user_ref(inviter);
	s->invitee = user_ref(invitee);
	s->created = s->updated = now_ms();
	s->expires = s->created + ttl_ms;
	s->invitee_away = invitee->nconns == 0 ? s->created : 0;
	s->seq = next_seq++;
	s->data = data != NULL ? json_incref(data) : NULL;
	idtable_insert(&table, &s->node);
	held[s->m.state]++;
	DL_APPEND2(inviter->inviting, s, inv_prev, inv_next);
	DL_APPEND2(invitee->invited, s, vee_prev, vee_next);
	DL_APPEND2(all_sessions, s, all_prev, all_next);
	inviter->live_created++;
	session_charge(s);
	session_reschedule(s);
	stats.sessions_created++;
	stats.transitions[RSS_UNKNOWN][s->m.state]++;
	session_publish(s, RSS_UNKNOWN, inviter, s->data);
	session_store(s, true);
	*out = s;
	return 0;
}

static void session_presence(struct session *s, int64_t now);

/*
 * session.outcome's params for the session r describes, once ended by by
 * (NULL: the daemon), into w; with at, its event id is left out (*at: where
 * it goes).
 */
static void
outcome_write(struct jsonw *w, const struct store_session *r, const char *by, size_t *at)
{
	char sid[SESSION_ID_HEX + 1];

	session_id_format(r->id, sid);
	jsonw_lit(w, "{\"session\":\"");
	jsonw_raw(w, sid, SESSION_ID_HEX);
	jsonw_lit(w, "\",\"state\":\"");
	jsonw_str_plain(w, rv_state_name(r->m.state));
	jsonw_lit(w, "\"");
	if (by != NULL) {
		jsonw_lit(w, ",\"by\":");
		jsonw_str(w, by);
	}
	if (r->by_device != NULL) {
		jsonw_lit(w, ",\"by_device\":");
		jsonw_str(w, r->by_device);
	}
	jsonw_lit(w, ",\"event\":");
	if (at != NULL)
		*at = w->len;
	else
		jsonw_int(w, (long long)r->event);
	jsonw_lit(w, ",\"time\":");
	jsonw_int(w, r->updated);
	jsonw_lit(w, ",\"topic\":");
	jsonw_str(w, r->topic != NULL ? r->topic : "");
	if (r->reason != NULL) {
		jsonw_lit(w, ",\"reason\":");
		jsonw_str(w, r->reason);
	}
	if (r->has_code) {
		jsonw_lit(w, ",\"code\":");
		jsonw_int(w, r->code);
	}
	if (r->app_data != NULL) {
		jsonw_lit(w, ",\"data\":");
		jsonw_raw(w, r->app_data, strlen(r->app_data));
	}
	jsonw_lit(w, "}");
}

/* A session ended: its parties' devices that do not see it end learn it later. */
static void
session_outcome(const struct session *s, const char *by)
{
	struct store_session r;
	struct jsonw w;
	char *app = NULL;

	/* Most sessions have no party with a device that keeps outcomes: nothing to build. */
	if (!outcomes_wanted(s->inviter->name) &&
	    !(session_invited(s) && outcomes_wanted(s->invitee->name)))
		return;
	session_to_record(s, &r);
	if (s->app_data != NULL &&
	    (app = json_dumps(s->app_data, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		goto failed;
	r.app_data = app;
	jsonw_init(&w);
	outcome_write(&w, &r, by, NULL);
	jsonw_raw(&w, "", 1); /* a C string */
	free(app);
	if (!jsonw_ok(&w)) {
		jsonw_free(&w);
		goto failed;
	}
	/* The invitee only of a session it may see (party rules). */
	outcomes_session_ended(s->inviter->name, session_invited(s) ? s->invitee->name : NULL,
			       s->id, s->updated, w.buf);
	jsonw_free(&w);
	return;
failed:
	log_error("sessions: out of memory describing an outcome");
	store_fail();
}

/* Whether a and b have the same topic. */
static bool
same_topic(const struct session *a, const struct session *b)
{
	return strcmp(a->topic != NULL ? a->topic : "", b->topic != NULL ? b->topic : "") == 0;
}

struct session *
session_crossing(const struct session *s)
{
	struct session *o;

	/* Sessions the inviter was invited to, by the invitee, already invited. */
	DL_FOREACH2 (s->inviter->invited, o, vee_next) {
		if (o->inviter == s->invitee &&
		    (o->m.state == RSS_INVITATION || o->m.state == RSS_ACCEPTED) &&
		    same_topic(o, s))
			return o;
	}
	return NULL;
}

/* session_decide() from machine m instead of the session's. */
static enum rv_outcome
decide_from(const struct session *s, const struct rv_machine *m, enum rv_action a, enum rv_role r,
	    const struct user *by, struct device *by_device, const struct session_act_args *args,
	    struct session_change *ch)
{
	memset(ch, 0, sizeof *ch);
	ch->m = *m;
	ch->outcome = rv_machine_apply(&ch->m, a, r, &ch->prev);
	if (ch->outcome != RV_CHANGED && ch->outcome != RV_RECORDED)
		return ch->outcome;
	ch->action = a;
	ch->role = r;
	ch->by = by;
	ch->by_device = by_device;
	ch->answered_by = s->answered_by;
	if (ch->outcome == RV_CHANGED && a == RV_ACT_ACCEPT && s->answered_by == NULL)
		ch->answered_by = by_device; /* the first device to accept wins */
	ch->updated = now_ms();
	ch->reason = s->reason;
	ch->has_code = s->has_code;
	ch->code = s->code;
	ch->app_data = s->app_data;
	if (ch->outcome == RV_CHANGED && rv_state_is_final(ch->m.state) && args != NULL) {
		if (args->reason != NULL)
			ch->reason = args->reason;
		if (args->has_code) {
			ch->has_code = true;
			ch->code = args->code;
		}
		if (args->data != NULL)
			ch->app_data = args->data;
	}
	if (r == RV_ROLE_DAEMON && args != NULL)
		ch->daemon_reason = args->reason;
	if (ch->outcome == RV_CHANGED && a == RV_ACT_INVITE)
		ch->event_data = s->data;
	else if (ch->outcome == RV_CHANGED && rv_state_is_final(ch->m.state))
		ch->event_data = ch->app_data;
	return ch->outcome;
}

enum rv_outcome
session_decide(const struct session *s, enum rv_action a, enum rv_role r, const struct user *by,
	       struct device *by_device, const struct session_act_args *args,
	       struct session_change *ch)
{
	return decide_from(s, &s->m, a, r, by, by_device, args, ch);
}

void
session_count_change(const struct session_change *ch)
{
	if (ch->outcome != RV_CHANGED)
		return;
	stats.transitions[ch->prev][ch->m.state]++;
	if (rv_state_is_final(ch->m.state))
		stats_ended(ch->action, ch->daemon_reason);
}

/* Make the change session_decide() described; s is as it was then. */
static void
session_change_apply(struct session *s, const struct session_change *ch)
{
	device_unref(s->by_device);
	s->by_device = device_ref(ch->by_device);
	if (s->answered_by == NULL && ch->answered_by != NULL)
		s->answered_by = device_ref(ch->answered_by);
	s->updated = ch->updated;
	s->m = ch->m;
	if (ch->replaced_by != NULL) {
		memcpy(s->replaced_by, ch->replaced_by, SESSION_ID_BYTES);
		s->replaced = true;
	}
	if (ch->outcome == RV_RECORDED) {
		session_store(s, false);
		return;
	}
	if (ch->action == RV_ACT_ACCEPT) /* from now on the engaged devices count */
		session_presence(s, s->updated);
	session_count_change(ch);
	held[ch->prev]--;
	held[s->m.state]++;
	if (rv_state_is_final(s->m.state)) {
		s->inviter->live_created--;
		if (ch->reason != s->reason) {
			free(s->reason);
			s->reason = strdup(ch->reason);
		}
		s->has_code = ch->has_code;
		s->code = ch->code;
		if (ch->app_data != s->app_data) {
			json_decref(s->app_data);
			s->app_data = json_incref(ch->app_data);
		}
		session_charge(s);
	}
	session_reschedule(s);
	session_publish(s, ch->prev, ch->by, ch->event_data);
	session_store(s, false);
	if (rv_state_is_final(s->m.state))
		session_outcome(s, ch->by != NULL ? ch->by->name : NULL);
}

enum rv_outcome
session_decide_glare(const struct session *s, const struct session *winner,
		     struct session_change *ch)
{
	struct session_act_args args = {.reason = "glare"};
	struct rv_machine m = s->m;

	/*
	 * Its invitation was sent, and is answered at once by the one that came
	 * first: recorded as sent, so that the invitee may see how it ended
	 * (the one event, RSS_READY -> RSS_TERMINATED, goes to both parties).
	 */
	m.done[RV_ROLE_INVITER] |= (uint16_t)(1u << RV_ACT_INVITE);
	decide_from(s, &m, RV_ACT_TERMINATE, RV_ROLE_DAEMON, NULL, NULL, &args, ch);
	if (ch->outcome == RV_CHANGED)
		ch->replaced_by = winner->id;
	return ch->outcome;
}

void
session_lose_glare(struct session *s, const struct session *winner)
{
	struct session_change ch;

	if (session_decide_glare(s, winner, &ch) == RV_CHANGED)
		session_change_apply(s, &ch);
}

enum rv_outcome
session_act(struct session *s, enum rv_action a, enum rv_role r, const struct user *by,
	    struct device *by_device, const struct session_act_args *args)
{
	struct session_change ch;

	if (session_decide(s, a, r, by, by_device, args, &ch) == RV_CHANGED ||
	    ch.outcome == RV_RECORDED)
		session_change_apply(s, &ch);
	return ch.outcome;
}

/* The line of the event that brought r into its state from prev, without its id. */
static int
record_event_line(const struct store_session *r, struct user *inviter, struct user *invitee,
		  enum rv_state prev, const char *by, json_t *data, struct jsonw *line, size_t *at)
{
	bool final = rv_state_is_final(r->m.state);
	struct hub_event ev = {
		.sid = r->id,
		.inviter = inviter,
		.invitee = invitee,
		.invitee_visible = (r->m.done[RV_ROLE_INVITER] & (1u << RV_ACT_INVITE)) != 0,
		.prev = prev,
		.state = r->m.state,
		.time = r->updated,
		.by = by,
		.by_device = r->by_device,
		.topic = r->topic != NULL ? r->topic : "",
		.replaced_by = r->replaced && final ? r->replaced_by : NULL,
		.reason = final ? r->reason : NULL,
		.has_code = final && r->has_code,
		.code = r->code,
		.data = data,
	};

	return hub_event_line(&ev, line, at);
}

bool
session_change_invited(const struct session_change *ch)
{
	return (ch->m.done[RV_ROLE_INVITER] & (1u << RV_ACT_INVITE)) != 0;
}

int
session_change_encode(const struct session *s, const struct session_change *ch, struct jsonw *rec,
		      struct jsonw *line, size_t *at, struct jsonw *outcome, size_t *outcome_at)
{
	struct store_session r;
	char *data = NULL, *app = NULL;
	int rc = 0;

	session_to_record(s, &r);
	r.m = ch->m;
	r.updated = ch->updated;
	r.answered_by = ch->answered_by != NULL ? ch->answered_by->name : NULL;
	r.by_user = ch->by_device != NULL ? ch->by_device->user->name : NULL;
	r.by_device = ch->by_device != NULL ? ch->by_device->name : NULL;
	r.reason = ch->reason;
	r.has_code = ch->has_code;
	r.code = ch->code;
	if (ch->replaced_by != NULL) {
		r.replaced = true;
		memcpy(r.replaced_by, ch->replaced_by, SESSION_ID_BYTES);
	}
	if ((s->data != NULL &&
	     (data = json_dumps(s->data, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL) ||
	    (ch->app_data != NULL &&
	     (app = json_dumps(ch->app_data, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL))
		rc = -1;
	r.data = data;
	r.app_data = app;
	store_record_write(rec, &r);
	if (rc == 0 && ch->outcome == RV_CHANGED)
		rc = record_event_line(&r, s->inviter, s->invitee, ch->prev,
				       ch->by != NULL ? ch->by->name : NULL, ch->event_data, line,
				       at);
	if (rc == 0 && outcome != NULL && ch->outcome == RV_CHANGED &&
	    rv_state_is_final(ch->m.state)) {
		outcome_write(outcome, &r, ch->by != NULL ? ch->by->name : NULL, outcome_at);
		rc = jsonw_ok(outcome) ? 0 : -1;
	}
	free(data);
	free(app);
	return rc == 0 && jsonw_ok(rec) ? 0 : -1;
}

int
session_create_encode(struct user *inviter, struct device *device, struct user *invitee,
		      const char *topic, int64_t ttl_ms, json_t *data, struct jsonw *rec,
		      struct jsonw *line, size_t *at, uint8_t id[SESSION_ID_BYTES],
		      const char **limit)
{
	struct store_session r = {
		.inviter = inviter->name,
		.invitee = invitee->name,
		.inviter_device = device->name,
		.by_user = inviter->name,
		.by_device = device->name,
		.topic = topic != NULL && *topic != '\0' ? topic : NULL,
	};
	char *text = NULL;
	int rc;

	/* The live sessions are counted by the store (in the same step); the bytes here. */
	if (over_bytes(inviter, data)) {
		*limit = "max_user_bytes";
		return RV_ERR_LIMIT;
	}
	if (random_bytes(r.id, sizeof r.id) != 0) {
		log_error("sessions: cannot create a session: no randomness");
		return RV_ERR_INTERNAL;
	}
	rv_machine_init(&r.m);
	r.created = r.updated = now_ms();
	r.expires = r.created + ttl_ms;
	if (data != NULL && (text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return RV_ERR_INTERNAL;
	r.data = text;
	memcpy(id, r.id, SESSION_ID_BYTES);
	store_record_write(rec, &r);
	rc = record_event_line(&r, inviter, invitee, RSS_UNKNOWN, inviter->name, data, line, at);
	free(text);
	return rc == 0 && jsonw_ok(rec) ? 0 : RV_ERR_INTERNAL;
}

static void
session_on_deadline(struct timer_entry *e, int64_t now, void *arg)
{
	struct session *s = container_of(e, struct session, timer);
	struct session_act_args args = {0};
	char sid[SESSION_ID_HEX + 1];
	enum rv_action a;

	(void)arg;
	if (store_durable() && !commit_writable()) {
		/* The store cannot save it now: try again when writes resume. */
		if (timerq_set(deadlines, &s->timer, commit_retry_at()) != 0)
			log_error("sessions: cannot postpone a deadline: out of memory");
		return;
	}
	if (rv_state_is_final(s->m.state)) {
		if (!store_durable()) {
			session_free(s);
		} else if (!s->deleted) {
			/* Freed when the deletion commits (sessions_committed). */
			s->deleted = true;
			session_touch(s);
			store_delete_session(s->seq);
		}
		return;
	}
	session_id_format(s->id, sid);
	if (s->m.state != RSS_CONNECTED && now >= s->expires) {
		args.reason = "expired";
		a = RV_ACT_EXPIRE;
	} else if ((s->inviter_away != 0 && now >= s->inviter_away + config.peer_grace_ms) ||
		   (invitee_engaged(s) && s->invitee_away != 0 &&
		    now >= s->invitee_away + config.peer_grace_ms)) {
		args.reason = "peer_lost";
		a = RV_ACT_PEER_LOST;
	} else {
		session_reschedule(s);
		return;
	}
	if (daemon_change != NULL) {
		/*
		 * A shared store takes it (on every node: the first wins); the
		 * change moves the deadline when it arrives, else look again.
		 */
		struct session_change ch;
		if (session_decide(s, a, RV_ROLE_DAEMON, NULL, NULL, &args, &ch) == RV_CHANGED)
			daemon_change(s, &ch);
		if (timerq_set(deadlines, &s->timer, now + DAEMON_CHANGE_RETRY_MS) != 0)
			log_error("sessions: cannot postpone a deadline: out of memory");
		return;
	}
	log_info("session %s: %s in %s", sid, a == RV_ACT_EXPIRE ? "expired" : "peer lost",
		 rv_state_name(s->m.state));
	session_act(s, a, RV_ROLE_DAEMON, NULL, NULL, &args);
	hub_flush();
}

void
sessions_on_daemon_change(void (*fn)(struct session *s, const struct session_change *ch))
{
	daemon_change = fn;
}

void
session_record_write(struct jsonw *w, const struct session *s, const struct user *viewer)
{
	enum rv_role role = session_role(s, viewer);
	char sid[SESSION_ID_HEX + 1];
	const char *remote = NULL;
	int flags = RSF_NONE;

	if (role == RV_ROLE_INVITER) {
		remote = s->invitee->name;
		flags = RSF_INVITER | RSF_ORIGINAL_INVITER;
	} else if (role == RV_ROLE_INVITEE) {
		remote = s->inviter->name;
		flags = RSF_INVITEE;
	}
	session_id_format(s->id, sid);
	jsonw_lit(w, "{\"session\":\"");
	jsonw_raw(w, sid, SESSION_ID_HEX);
	jsonw_lit(w, "\",\"state\":\"");
	jsonw_str_plain(w, rv_state_name(s->m.state));
	jsonw_lit(w, "\",\"inviter\":");
	jsonw_str(w, s->inviter->name);
	jsonw_lit(w, ",\"invitee\":");
	jsonw_str(w, s->invitee->name);
	jsonw_lit(w, ",\"remote_user\":");
	jsonw_str(w, remote);
	jsonw_lit(w, ",\"flags\":");
	jsonw_int(w, flags);
	jsonw_lit(w, ",\"created\":");
	jsonw_int(w, s->created);
	jsonw_lit(w, ",\"updated\":");
	jsonw_int(w, s->updated);
	jsonw_lit(w, ",\"expires\":");
	jsonw_int(w, s->expires);
	jsonw_lit(w, ",\"event\":");
	jsonw_int(w, (long long)s->event);
	jsonw_lit(w, ",\"inviter_device\":");
	jsonw_str(w, s->inviter_device != NULL ? s->inviter_device->name : NULL);
	jsonw_lit(w, ",\"answered_by\":");
	jsonw_str(w, s->answered_by != NULL ? s->answered_by->name : NULL);
	jsonw_lit(w, ",\"by_device\":");
	jsonw_str(w, s->by_device != NULL ? s->by_device->name : NULL);
	jsonw_lit(w, ",\"topic\":");
	jsonw_str(w, s->topic != NULL ? s->topic : "");
	if (s->m.state == RSS_ACCEPTED || s->m.state == RSS_CONNECTED) {
		jsonw_lit(w, ",\"confirmed\":{\"inviter\":");
		jsonw_bool(w, rv_machine_confirmed(&s->m, RV_ROLE_INVITER));
		jsonw_lit(w, ",\"invitee\":");
		jsonw_bool(w, rv_machine_confirmed(&s->m, RV_ROLE_INVITEE));
		jsonw_lit(w, "}");
	}
	if (s->reason != NULL) {
		jsonw_lit(w, ",\"reason\":");
		jsonw_str(w, s->reason);
	}
	if (s->has_code) {
		jsonw_lit(w, ",\"code\":");
		jsonw_int(w, s->code);
	}
	if (s->replaced) {
		char won[SESSION_ID_HEX + 1];
		session_id_format(s->replaced_by, won);
		jsonw_lit(w, ",\"replaced_by\":\"");
		jsonw_raw(w, won, SESSION_ID_HEX);
		jsonw_lit(w, "\"");
	}
	if (s->data != NULL) {
		jsonw_lit(w, ",\"data\":");
		jsonw_json(w, s->data);
	}
	if (s->app_data != NULL) {
		jsonw_lit(w, ",\"app_data\":");
		jsonw_json(w, s->app_data);
	}
	jsonw_lit(w, "}");
}

void
sessions_list_write(struct jsonw *w, const struct principal *p, bool all, bool has_state,
		    enum rv_state state, size_t limit, const struct session *after)
{
	const struct user *u = p->user;
	const struct session *a = u->inviting, *b = u->invited, *last = NULL;
	uint64_t after_seq = after != NULL ? after->seq : 0;
	size_t n = 0;

	if (all) {
		/* Every session: one list, resumed right after the cursor. */
		a = after != NULL ? after->all_next : all_sessions;
		b = NULL;
	}
	jsonw_lit(w, "{\"sessions\":[");
	/* Merge the two lists, each already in creation order. */
	while (a != NULL || b != NULL) {
		const struct session *s;

		struct authz_parties parties;

		if (all) {
			s = a;
			a = a->all_next;
		} else if (b == NULL || (a != NULL && a->seq < b->seq)) {
			s = a;
			a = a->inv_next;
		} else {
			s = b;
			b = b->vee_next;
		}
		parties = session_parties(s);
		if (authz_hidden(p, &parties))
			continue; /* party rules win: not visible to its invitee yet */
		if (s->seq <= after_seq || (has_state && s->m.state != state))
			continue;
		if (n == limit) {
			/* One more exists: hand out a cursor. */
			char sid[SESSION_ID_HEX + 1];
			session_id_format(last->id, sid);
			jsonw_lit(w, "],\"next\":\"");
			jsonw_raw(w, sid, SESSION_ID_HEX);
			jsonw_lit(w, "\"}");
			return;
		}
		if (n > 0)
			jsonw_lit(w, ",");
		session_record_write(w, s, u);
		last = s;
		n++;
	}
	jsonw_lit(w, "]}");
}

/* Whether party u of s has a connection that counts (see sessions_presence_changed()). */
static bool
party_present(const struct session *s, const struct user *u)
{
	const struct device *device = session_engaged_device(s, u);

	/* Here or, with a shared store, on another node. */
	return device == NULL ? u->nconns + u->remote > 0 : device->nconns + device->remote > 0;
}

/* Bring a party's away time up to date; true if it changed. */
static bool
party_judge(struct session *s, const struct user *u, int64_t *away, int64_t now)
{
	bool here = party_present(s, u);

	if (here && *away != 0) {
		*away = 0;
		return true;
	}
	if (!here && *away == 0) {
		*away = now;
		return true;
	}
	return false;
}

/* Judge both parties of a live session again. */
static void
session_presence(struct session *s, int64_t now)
{
	bool changed = party_judge(s, s->inviter, &s->inviter_away, now);

	changed = party_judge(s, s->invitee, &s->invitee_away, now) || changed;
	if (changed)
		session_reschedule(s);
}

void
sessions_presence_changed(struct user *u)
{
	int64_t now = now_ms();
	struct session *s;

	DL_FOREACH2 (u->inviting, s, inv_next) {
		if (!rv_state_is_final(s->m.state))
			session_presence(s, now);
	}
	DL_FOREACH2 (u->invited, s, vee_next) {
		if (!rv_state_is_final(s->m.state))
			session_presence(s, now);
	}
}

/* Free the sessions whose deletion committed. */
static void
sessions_on_committed(void *arg)
{
	struct session *s;

	(void)arg;
	while ((s = touched) != NULL) {
		touched = s->txn_next;
		s->txn_next = NULL;
		s->txn_touched = false;
		if (s->deleted)
			session_free(s);
	}
}

/*
 * Set a session's stored fields from a record, keeping the inviter's count
 * of live sessions right. -1 (s unchanged) if the record's JSON is damaged.
 */
static int
session_apply(struct session *s, const struct store_session *r)
{
	json_t *data = NULL, *app = NULL;
	char *reason = NULL;
	struct device *created = NULL, *answered = NULL, *by_device = NULL;
	char *topic = NULL;
	struct user *by = NULL;
	bool was_live = !rv_state_is_final(s->m.state), bad = false;

	if ((r->data != NULL && (data = json_loads(r->data, JSON_DECODE_ANY, NULL)) == NULL) ||
	    (r->app_data != NULL &&
	     (app = json_loads(r->app_data, JSON_DECODE_ANY, NULL)) == NULL) ||
	    (r->reason != NULL && (reason = strdup(r->reason)) == NULL))
		bad = true;
	/* Devices, by name (a store from before devices has none). */
	if (r->inviter_device != NULL &&
	    (created = device_get(s->inviter, r->inviter_device)) == NULL)
		bad = true;
	if (r->answered_by != NULL && (answered = device_get(s->invitee, r->answered_by)) == NULL)
		bad = true;
	if (r->by_user != NULL && r->by_device != NULL &&
	    ((by = user_get(r->by_user)) == NULL ||
	     (by_device = device_get(by, r->by_device)) == NULL))
		bad = true;
	user_unref(by); /* the device holds its own reference */
	if (r->topic != NULL && *r->topic != '\0' && (topic = strdup(r->topic)) == NULL)
		bad = true;
	if (bad) {
		log_error("store: session %llu: its data is damaged, or memory ran out",
			  (unsigned long long)r->seq);
		json_decref(data);
		json_decref(app);
		free(reason);
		device_unref(created);
		device_unref(answered);
		device_unref(by_device);
		free(topic);
		return -1;
	}
	json_decref(s->data);
	json_decref(s->app_data);
	free(s->reason);
	device_unref(s->inviter_device);
	device_unref(s->answered_by);
	device_unref(s->by_device);
	s->inviter_device = created;
	s->answered_by = answered;
	s->by_device = by_device;
	free(s->topic);
	s->topic = topic;
	s->replaced = r->replaced;
	memcpy(s->replaced_by, r->replaced_by, SESSION_ID_BYTES);
	s->data = data;
	s->app_data = app;
	s->reason = reason;
	s->m = r->m;
	s->created = r->created;
	s->updated = r->updated;
	s->expires = r->expires;
	s->event = r->event;
	s->has_code = r->has_code;
	s->code = (json_int_t)r->code;
	s->deleted = false;
	if (was_live && rv_state_is_final(s->m.state))
		s->inviter->live_created--;
	else if (!was_live && !rv_state_is_final(s->m.state))
		s->inviter->live_created++;
	session_charge(s);
	session_reschedule(s);
	return 0;
}

/* A stored session into the table, as the record has it; NULL (after logging) on failure. */
static struct session *
session_insert_record(const struct store_session *r)
{
	struct session *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	memcpy(s->id, r->id, SESSION_ID_BYTES);
	s->seq = r->seq;
	s->inviter = user_get(r->inviter);
	s->invitee = user_get(r->invitee);
	rv_machine_init(&s->m);
	s->m.state = RSS_TERMINATED; /* session_apply() counts it live from here */
	if (s->inviter == NULL || s->invitee == NULL || session_find(r->id) != NULL ||
	    session_apply(s, r) != 0) {
		if (s->inviter != NULL && session_find(r->id) != NULL)
			log_error("store: session %llu has the id of another",
				  (unsigned long long)r->seq);
		user_unref(s->inviter);
		user_unref(s->invitee);
		free(s);
		return NULL;
	}
	if (r->seq >= next_seq)
		next_seq = r->seq + 1;
	idtable_insert(&table, &s->node);
	held[s->m.state]++;
	DL_APPEND2(s->inviter->inviting, s, inv_prev, inv_next);
	DL_APPEND2(s->invitee->invited, s, vee_prev, vee_next);
	DL_APPEND2(all_sessions, s, all_prev, all_next);
	return s;
}

/* One stored session back in memory, its parties away since 'now'. */
static int
session_recover_one(const struct store_session *r, void *arg)
{
	const int64_t *now = arg;
	struct session *s = session_insert_record(r);

	if (s == NULL)
		return -1;
	s->inviter_away = s->invitee_away = *now;
	session_reschedule(s);
	return 0;
}

int
sessions_apply_record(const struct store_session *r, uint64_t version)
{
	struct session *s = session_find(r->id);
	bool was_final = s != NULL && rv_state_is_final(s->m.state);
	int rc = 0;

	if (s == NULL) {
		s = session_insert_record(r);
		if (s == NULL)
			return -1;
	} else if (version > s->version) {
		held[s->m.state]--;
		rc = session_apply(s, r);
		held[s->m.state]++;
	} else {
		return 0; /* what is held is as new */
	}
	if (rc != 0)
		return -1;
	s->version = version;
	if (!rv_state_is_final(s->m.state))
		session_presence(s, now_ms());
	else if (!was_final)
		session_outcome(s, r->by_user);
	session_reschedule(s);
	return 0;
}

int
sessions_recover(void)
{
	int64_t now = now_ms();

	return store_load_sessions(session_recover_one, &now);
}

/* Put one session back as the store has it (arg: the session). */
static int
session_reload(const struct store_session *r, void *arg)
{
	struct session *s = arg;
	int rc;

	held[s->m.state]--;
	rc = session_apply(s, r);
	held[s->m.state]++;
	return rc;
}

/* Reload the sessions the failed transaction touched; free those it created. */
static int
sessions_on_rolled_back(void *arg)
{
	struct session *s;
	int rc = 0;

	(void)arg;
	while ((s = touched) != NULL) {
		int found;

		touched = s->txn_next;
		s->txn_next = NULL;
		s->txn_touched = false;
		found = store_get_session(s->seq, session_reload, s);
		if (found < 0)
			rc = -1;
		else if (found == 0)
			session_free(s); /* created since the last commit */
	}
	return rc;
}

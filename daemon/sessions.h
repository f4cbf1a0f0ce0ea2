/*
 * Sessions: the table, the state machine applied with its side effects
 * (events, deadlines, per-user bookkeeping), and the daemon's own
 * transitions on expiry and peer loss. Loop thread only.
 */
#ifndef RV_SESSIONS_H
#define RV_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "authz.h"
#include "idtable.h"
#include "rendezvous.h"
#include "timerq.h"
#include "util.h"

struct event_base;
struct store_session;
struct jsonw;
struct user;

struct session {
	uint8_t id[SESSION_ID_BYTES];
	struct rv_machine m;
	struct user *inviter, *invitee;     /* references */
	int64_t created, updated, expires;  /* Unix ms */
	int64_t inviter_away, invitee_away; /* since when without a connection; 0 if connected */
	uint64_t event;                     /* id of this session's latest event */
	uint64_t seq;                       /* creation order, for listing */
	uint64_t version;                   /* a shared store's count of its changes; 0 otherwise */
	char *reason;                       /* why it ended, or NULL */
	bool has_code;
	bool txn_touched; /* written in the store's open transaction (on 'touched') */
	bool deleted;     /* deleted from the store: freed once that commits */
	json_int_t code;
	size_t bytes;                  /* what it counts against inviter->held_bytes */
	json_t *data;                  /* invitation data from session.create, or NULL */
	json_t *app_data;              /* data given to session.terminate, or NULL */
	struct device *inviter_device; /* the device that created it (references, users.h) */
	struct device *answered_by;    /* the invitee's device that accepted, or NULL */
	struct device *by_device;      /* the device of its latest action; NULL: the daemon */
	char *topic;                   /* session.create's topic; NULL for "" */
	bool replaced;                 /* ended by glare: replaced_by names the winner */
	uint8_t replaced_by[SESSION_ID_BYTES];
	struct session *inv_prev, *inv_next; /* inviter->inviting */
	struct session *vee_prev, *vee_next; /* invitee->invited */
	struct session *all_prev, *all_next; /* every session, in creation order */
	struct session *txn_next;            /* sessions.c 'touched' */
	struct timer_entry timer;
	struct idnode node; /* the session table */
};

/*
 * Set up the table and timers, and take part in group commit (commit.h):
 * deletions are freed once committed; a rollback puts every session written
 * since the last commit back as the store has it.
 */
int sessions_init(struct event_base *base);
void sessions_finish(void);
/* Free every session (a shared store lost changes: they are loaded again from it). */
void sessions_forget_all(void);
size_t sessions_count(void);
/* Sessions held, by state (ended ones until they are forgotten), kept as they change. */
void sessions_count_states(size_t counts[RV_STATE_COUNT]);

/*
 * Rebuild the sessions the store holds (at start-up, before any
 * connection: every party counts as away from now). 0, or -1 after logging.
 */
int sessions_recover(void);

/* Borrowed pointer, or NULL. */
struct session *session_find(const uint8_t id[SESSION_ID_BYTES]);

/* The role u plays in s (RV_ROLE_NONE if not a party). */
enum rv_role session_role(const struct session *s, const struct user *u);
/* Whether the invitation has been sent (the invitee may see the session). */
bool session_invited(const struct session *s);
/* Whether a and b are the parties of a live session that both may see. */
bool sessions_share_live(const struct user *a, const struct user *b);
/* What authorization (authz.h) needs to know of s. */
struct authz_parties session_parties(const struct session *s);

/* What a session costs its inviter's --max-user-bytes besides its data and reason. */
#define SESSION_BYTES 512

/*
 * Create a session in RSS_READY for inviter (connected) and invitee, with a
 * ttl in ms and optional invitation data (borrowed). 0 and *out, or
 * RV_ERR_LIMIT with *limit the limit's name ("max_sessions_per_user",
 * "max_user_bytes"), or RV_ERR_INTERNAL.
 */
int session_create(struct user *inviter, struct device *device, struct user *invitee,
		   const char *topic, int64_t ttl_ms, json_t *data, struct session **out,
		   const char **limit);

/* Longest topic session.create takes, in bytes. */
#define TOPIC_MAX 128

/*
 * Glare: the live session in the other direction between s's parties, with
 * its topic, already invited (RSS_INVITATION or RSS_ACCEPTED), if any: when
 * s's inviter invites, that earlier invitation wins.
 */
struct session *session_crossing(const struct session *s);
/*
 * End s (in RSS_READY) because the crossing session winner came first:
 * RSS_TERMINATED by the daemon, reason "glare", replaced_by the winner.
 */
void session_lose_glare(struct session *s, const struct session *winner);
struct session_change;
/* That change, decided only (as session_decide()): its outcome, *ch filled. */
enum rv_outcome session_decide_glare(const struct session *s, const struct session *winner,
				     struct session_change *ch);

/* Optional details of an action. */
struct session_act_args {
	const char *reason;
	bool has_code;
	json_int_t code;
	json_t *data; /* borrowed */
};

/*
 * A change to a session as session_decide() works it out, without touching
 * the session: the machine's outcome and every field the change sets.
 * Pointers are borrowed (from the session, the acting user and device, the
 * args) for as long as those live unchanged.
 */
struct session_change {
	enum rv_outcome outcome; /* RV_CHANGED or RV_RECORDED: the rest is set */
	enum rv_action action;
	enum rv_role role;
	enum rv_state prev; /* the state before (RV_CHANGED) */
	struct rv_machine m;
	int64_t updated;
	const struct user *by;      /* NULL: the daemon */
	struct device *by_device;   /* NULL: the daemon */
	struct device *answered_by; /* the invitee's device that accepted, or NULL */
	const char *reason;         /* the session's reason once changed */
	bool has_code;
	json_int_t code;
	json_t *app_data;
	const char *daemon_reason;  /* the daemon's reason, for the counters */
	json_t *event_data;         /* the data the event carries, or NULL */
	const uint8_t *replaced_by; /* glare: the session that won, or NULL */
};

/*
 * Work out what action a by role r (by: the acting user and device, NULL
 * for the daemon) would do to s, changing nothing: the machine's outcome,
 * and in *ch the change when it is RV_CHANGED or RV_RECORDED.
 */
enum rv_outcome session_decide(const struct session *s, enum rv_action a, enum rv_role r,
			       const struct user *by, struct device *by_device,
			       const struct session_act_args *args, struct session_change *ch);
/*
 * What a decided change (RV_CHANGED or RV_RECORDED) makes of s, for a store
 * that checks it elsewhere before it counts (Redis): the new record into
 * rec (store_record.h), and for RV_CHANGED the event's line into line
 * without its id (*at: where the id goes, hub_event_line()); when the
 * change ends the session and outcome is not NULL, session.outcome's params
 * into outcome, without the event id (*outcome_at: where it goes). 0, or -1
 * when memory ran out.
 */
int session_change_encode(const struct session *s, const struct session_change *ch,
			  struct jsonw *rec, struct jsonw *line, size_t *at, struct jsonw *outcome,
			  size_t *outcome_at);
/* Whether the invitee may see the session once changed so (it keeps the outcome too). */
bool session_change_invited(const struct session_change *ch);
/*
 * Session creation for a store that checks it elsewhere first: the new
 * session's record into rec and its first event's line into line, as
 * session_change_encode(), and its id into id; nothing is created here. 0, RV_ERR_LIMIT (with
 * *limit "max_user_bytes": the live sessions are the store's to count), or RV_ERR_INTERNAL.
 */
int session_create_encode(struct user *inviter, struct device *device, struct user *invitee,
			  const char *topic, int64_t ttl_ms, json_t *data, struct jsonw *rec,
			  struct jsonw *line, size_t *at, uint8_t id[SESSION_ID_BYTES],
			  const char **limit);
/*
 * A shared store's record of a session at version (another node's change,
 * or this node's once the store took it): make the session so, creating it
 * if it is new here, unless what is held is as new. Its event, if any, is
 * the caller's to publish. 0, or -1 after logging (a damaged record, out of
 * memory).
 */
int sessions_apply_record(const struct store_session *r, uint64_t version);
/* Count a decided change in the transition counters (stats.h) where it was made. */
void session_count_change(const struct session_change *ch);

/*
 * Apply action a by role r (by: the acting user and device, NULL for the
 * daemon). On RV_CHANGED the event is published and deadlines updated.
 * Returns the outcome of the state machine.
 */
enum rv_outcome session_act(struct session *s, enum rv_action a, enum rv_role r,
			    const struct user *by, struct device *by_device,
			    const struct session_act_args *args);
/*
 * Whether device may not take action a as role r because the invitation
 * was answered on another device: once the invitee's first device accepted,
 * accept and decline come only from it, and connect only from it and the
 * inviter's creating device (error 4009, reason "answered_elsewhere").
 */
bool session_answered_elsewhere(const struct session *s, enum rv_action a, enum rv_role r,
				const struct device *device);
/*
 * The device of party u that takes part once the invitation is answered
 * (the inviter's creating device, the answering device), or NULL before.
 */
const struct device *session_engaged_device(const struct session *s, const struct user *u);

/* Write the session record as viewer sees it (remote_user, flags). */
void session_record_write(struct jsonw *w, const struct session *s, const struct user *viewer);

/*
 * Write {sessions: [...], next?}: u's visible sessions (every session if
 * all) in creation order, as u sees them.
 */
void sessions_list_write(struct jsonw *w, const struct principal *p, bool all, bool has_state,
			 enum rv_state state, size_t limit, const struct session *after);

/*
 * With a shared store: the daemon's own changes (expiry, peer loss) go to
 * fn, decided but not applied; the store's feed applies them. NULL: applied
 * here (the default).
 */
void sessions_on_daemon_change(void (*fn)(struct session *s, const struct session_change *ch));

/*
 * One of u's connections arrived or went: judge again whether each party is
 * present (any connection of it before the answer; its engaged device after).
 */
void sessions_presence_changed(struct user *u);

#endif

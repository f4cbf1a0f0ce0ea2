/*
 * The hub: numbers events, encodes each once, keeps a bounded history, and
 * fans events out to subscriptions, each connection getting an event at
 * most once. Also relays context data to a party's connections. What each
 * subscriber may see, authz.c decides.
 *
 * A connection, as the hub sees it, is a struct hub_peer that the client
 * layer embeds and owns: its transport, its principal, its subscriptions
 * (owned by the hub, freed by hub_peer_gone()).
 *
 * Loop thread only. Pointers returned are borrowed.
 */
#ifndef RV_HUB_H
#define RV_HUB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <jansson.h>

#include "authz.h"
#include "rendezvous.h"
#include "util.h"

struct conn;
struct device;
struct msgbuf;
struct user;
struct sub;

/* A connection as the hub sees it (embedded in struct client). */
struct hub_peer {
	struct conn *conn;           /* where its events go */
	const struct principal *who; /* what it may see */
	struct sub *subs;            /* its subscriptions */
	size_t nsubs;
	uint32_t next_sub_id;
	uint64_t mark;                 /* last event delivered (dedupe) */
	TAILQ_ENTRY(hub_peer) by_user; /* who->user->conns, once authenticated */
};

/* A state change, as sessions.c describes it. Everything is borrowed. */
struct hub_event {
	const uint8_t *sid;
	struct user *inviter, *invitee;
	bool invitee_visible; /* the invitee has been invited */
	enum rv_state prev, state;
	int64_t time;
	const char *by;             /* acting user, NULL for the daemon */
	const char *by_device;      /* its device, NULL for the daemon */
	const char *topic;          /* the session's topic ("" for none) */
	const uint8_t *replaced_by; /* ended by glare: the session that won, or NULL */
	const char *reason;
	bool has_code;
	json_int_t code;
	json_t *data;
};

enum sub_kind {
	SUB_SESSION,
	SUB_USER,
	SUB_ALL,
	SUB_PRESENCE, /* a user's devices coming and going (presence.c), no events */
};

struct sub {
	uint32_t id; /* unique within its connection */
	enum sub_kind kind;
	struct hub_peer *peer;
	uint64_t start;                /* last event when subscribed: later ones go out live */
	uint64_t from;                 /* events after this went out (replayed or live) */
	uint8_t sid[SESSION_ID_BYTES]; /* SUB_SESSION */
	struct user *user;             /* SUB_USER: a reference */
	struct sub *conn_next;         /* peer->subs */
	struct sub *prev, *next;       /* the target's list */
	bool replaying;                /* its replay (events from+1 .. start) is not sent yet */
	struct sub *replay_next;       /* hub's list of those */
};

int hub_init(size_t history);
void hub_finish(void);

/* The id of the newest event (0 before any). */
uint64_t hub_last_event(void);
/* Subscriptions of every peer. */
size_t hub_subscriptions(void);
/* Whether events were published that hub_flush() has not fanned out yet. */
bool hub_unflushed(void);
/* The oldest event id held, or hub_last_event() + 1 when none is. */
uint64_t hub_first_held(void);

/*
 * Load the event history and the last event id from the store, replacing
 * what is held (at start-up, and after a failed commit). 0, or -1 after
 * logging.
 */
int hub_recover(void);

/*
 * Number, encode and record one state change (in history and the store);
 * its id, or 0. Subscribers get
 * it at the next hub_flush(), so the request that caused it is answered
 * first.
 */
uint64_t hub_publish(const struct hub_event *ev);
struct jsonw;
struct store_event;

/*
 * Write ev's notification line ("\n" included) into w without its event
 * id: *at is where the id goes (a store that numbers events itself, Redis,
 * puts it there). 0, or -1 when memory ran out.
 */
int hub_event_line(const struct hub_event *ev, struct jsonw *w, size_t *at);
/*
 * Take an event numbered and encoded elsewhere (another node, through a
 * shared store): its id must be hub_last_event() + 1. Fanned out at the next
 * hub_flush(), as hub_publish()'s. 0, or -1 (out of sequence, out of memory).
 */
int hub_publish_stored(const struct store_event *ev);
/* Forget the history and go on from event last (a shared store's snapshot). */
void hub_restart(uint64_t last);
/*
 * Put an older event back into history, after hub_restart(): each follows
 * the one before, and none is above the last. 0, or -1.
 */
int hub_history_add(const struct store_event *ev);

/*
 * Send the replays subscriptions asked for, then fan out every event
 * published since the last flush. Call after replying to a request.
 */
void hub_flush(void);

/*
 * Subscribe p to a target (sid for SUB_SESSION, user for SUB_USER; the
 * caller has checked permissions). With has_since, events after since are
 * replayed, marked "replay": true, by the next hub_flush(): the replays of
 * several subscriptions made before it (a batch) go out as one run in
 * increasing id order, each event once. Returns 0 and the new sub, or an rv_error
 * code: RV_ERR_HISTORY_GONE, RV_ERR_INVALID_PARAMS (since ahead of the last
 * event), RV_ERR_INTERNAL.
 */
int hub_subscribe(struct hub_peer *p, enum sub_kind kind, const uint8_t *sid, struct user *user,
		  bool has_since, uint64_t since, struct sub **out);
/* Remove p's subscription id; 0, or -1 if there is none. */
int hub_unsubscribe(struct hub_peer *p, uint32_t id);
/* Drop every subscription of a peer whose connection is being freed. */
void hub_peer_gone(struct hub_peer *p);

/*
 * Call fn each time a session's final event is queued to a peer of one of
 * its parties, live or replayed (fn may ask the transport when it is
 * written: conn_receipt()).
 */
void hub_on_final_delivered(void (*fn)(const struct hub_peer *p, const uint8_t *sid));

/*
 * Send a presence.changed line (mb, shared) to every live subscriber to u's
 * presence that may_see allows now; how many.
 */
size_t hub_presence(struct user *u, struct msgbuf *mb,
		    bool (*may_see)(const struct principal *p, const struct user *u));

/*
 * Deliver session.context_data (data borrowed) from user from to every live
 * connection of to from device (every one if device is NULL); *n says how
 * many. 0, or -1 when memory ran out (nothing was sent).
 */
int hub_send_context(const uint8_t *sid, const char *from, struct user *to,
		     const struct device *device, json_t *data, size_t *n);

#endif

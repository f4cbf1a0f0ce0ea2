/*
 * The rendezvous protocol as the daemon runs it (proto/PROTOCOL.md), for
 * the spin model checker: two users, A and B, with two devices each; the
 * daemon with its timers (the ttl and peer grace); devices that come and
 * go, retry, and invite each other at the same moment (A's session 0 and
 * B's session 1 cross, same topic); output queued on a connection that is
 * written, or lost when the connection closes first.
 *
 * The daemon handles one request (or timer) at a time, so the model is one
 * loop that picks the next step: a device's request or a timer. Each
 * device has a budget of requests (BUDGET; hello and leaving count); when
 * all are spent every device is gone, the timers end what is left, and
 * then every device that said hello comes back once and acknowledges what
 * it is told. What a connection had queued is settled when it closes
 * (written or lost; session.outcome read or not, acknowledged or not):
 * while it stays open nothing the daemon decides depends on it. The model
 * has no cycle, so every run ends, and spin searches all of its states
 * (check.sh: about 10 million at BUDGET 2).
 *
 * Checked (proto/model/check.sh, in CI):
 *   - at most one answering device per session;
 *   - every session reaches exactly one final state;
 *   - every device of each party that said hello before a session ended
 *     learns its outcome exactly once: the final session.state_changed
 *     written to it, or session.outcome (repeated only until acknowledged,
 *     never after the event itself); a device that had not said hello
 *     learns nothing;
 *   - no two live crossing sessions remain;
 *   - every session ends (the LTL claim, and at the end of every run).
 *
 * The transition table is lib/machine.c's, row for row: check_table.py
 * compares the T(...) lines below with it.
 */

#define NS 2 /* sessions: 0 is A's to B, 1 is B's to A */
#define NU 2 /* users: 0 is A, 1 is B */
#define ND 2 /* devices per user */
#define NDEV 4
#define NONE 255
#ifndef BUDGET
#define BUDGET 2 /* requests per device (hello and leaving count) */
#endif

/* States and roles as in lib/rendezvous.h. */
#define RSS_UNKNOWN 0
#define RSS_READY 1
#define RSS_INVITATION 2
#define RSS_ACCEPTED 3
#define RSS_CONNECTED 4
#define RSS_CANCELLED 5
#define RSS_DECLINED 6
#define RSS_TERMINATED 7
#define ROLE_INVITER 0
#define ROLE_INVITEE 1
#define ROLE_DAEMON 2
#define ACT_INVITE 0
#define ACT_ACCEPT 1
#define ACT_DECLINE 2
#define ACT_CANCEL 3
#define ACT_CONNECT 4
#define ACT_TERMINATE 5
#define ACT_EXPIRE 6
#define ACT_PEER_LOST 7
#define NA 8

#define ST(s) (1 << (s))
#define LIVE (ST(RSS_READY) | ST(RSS_INVITATION) | ST(RSS_ACCEPTED) | ST(RSS_CONNECTED))
#define FINAL(s) ((s) >= RSS_CANCELLED)

/* The table: roles that may, from which states (the invitee's own column), to where. */
byte t_roles[NA];
short t_from[NA];
short t_from_invitee[NA];
byte t_to[NA];
#define T(a, roles, from, from_invitee, to) \
	t_roles[a] = roles; t_from[a] = from; t_from_invitee[a] = from_invitee; t_to[a] = to

byte state[NS];     /* RSS_* */
short done[NS * 3]; /* actions taken, per session and role: bit (1 << action) */
byte answered[NS];  /* the invitee's device that accepted, or NONE */
byte creator[NS];   /* the inviter's device that created it */
byte finals[NS];    /* final transitions taken (must end at exactly 1) */
byte told[NS];      /* devices told they answered (bit per invitee device) */

byte steps[NDEV];  /* requests made */
bool online[NDEV]; /* the device has a live connection (subscribed to its sessions) */
bool known[NDEV];  /* it said hello (with its own device id) */

/* Per session and device: */
bool owed[NS * NDEV];    /* a party's device that had said hello when it ended */
bool pending[NS * NDEV]; /* the daemon keeps the outcome for it */
bool queued[NS * NDEV];  /* the final event is queued on its connection, not written */
bool oqueued[NS * NDEV]; /* session.outcome is queued on its connection, not written */
bool acked[NS * NDEV];   /* it acknowledged session.outcome */
byte live[NS * NDEV];    /* times the final event reached it */
byte got[NS * NDEV];     /* times session.outcome reached it */

#define DEV(u, d) ((u) * ND + (d))
#define L(s, dv) ((s) * NDEV + (dv))
#define INVITER(s) (s) /* session 0: A invites B; session 1: B invites A */
#define INVITEE(s) (1 - (s))
#define OTHER(s) (1 - (s))
#define CROSSES(s) (state[s] == RSS_INVITATION || state[s] == RSS_ACCEPTED)
#define USER(dv) ((dv) / ND)
#define INVITED(s) (done[(s) * 3 + ROLE_INVITER] & (1 << ACT_INVITE))

byte i, j; /* loop variables */

/*
 * What must hold after every step. Learned: the final event reached the
 * device at most once, and a device never gets both it and
 * session.outcome; session.outcome is not sent after it was acknowledged.
 */
inline check() {
	for (i : 0 .. NS - 1) {
		assert(finals[i] <= 1);
		assert(told[i] != 3); /* at most one answering device */
	}
	for (i : 0 .. NS * NDEV - 1) {
		assert(live[i] <= 1);
		assert(live[i] == 0 || got[i] == 0);
		assert(!(acked[i] && (oqueued[i] || pending[i])));
		assert(owed[i] || (live[i] == 0 && got[i] == 0 && !pending[i]))
	}
	/* no two crossing invitations (4.5: a connected session does not cross) */
	assert(!(CROSSES(0) && CROSSES(1)));
	i = 0
}

/*
 * A session ended: every device of a party that said hello is owed its
 * outcome, kept until it is written to the device or acknowledged; a
 * device online (subscribed) gets the final event queued.
 */
inline ended(s) {
	finals[s]++;
	for (i : 0 .. NDEV - 1) {
		if
		:: known[i] && (USER(i) == INVITER(s) || INVITED(s)) ->
			owed[L(s, i)] = true;
			pending[L(s, i)] = true;
			queued[L(s, i)] = online[i]
		:: else -> skip
		fi
	}
	i = 0
}

/* Apply action a by role r as lib/machine.c does; ok tells whether it changed anything. */
inline apply(s, a, r) {
	ok = false;
	if
	:: (t_roles[a] & (1 << r)) && !(done[s * 3 + r] & (1 << a)) &&
	   ((r == ROLE_INVITEE && (t_from_invitee[a] & ST(state[s]))) ||
	    (r != ROLE_INVITEE && (t_from[a] & ST(state[s])))) ->
		done[s * 3 + r] = done[s * 3 + r] | (1 << a);
		if
		:: a == ACT_CONNECT && !(done[s * 3 + (1 - r)] & (1 << ACT_CONNECT)) -> skip
		:: else ->
			state[s] = t_to[a];
			if
			:: FINAL(state[s]) -> ended(s)
			:: else -> skip
			fi
		fi;
		ok = true
	:: else -> skip
	fi
}

/* The requests, as the daemon handles them (rpc.c, sessions.c). */
inline invite(s) {
	if
	:: state[s] == RSS_READY && CROSSES(OTHER(s)) ->
		/* glare (4091): the earlier invitation wins; this one ends */
		done[s * 3 + ROLE_INVITER] = done[s * 3 + ROLE_INVITER] | (1 << ACT_INVITE);
		apply(s, ACT_TERMINATE, ROLE_DAEMON)
	:: else -> apply(s, ACT_INVITE, ROLE_INVITER)
	fi
}

inline accept(s, dv) {
	if
	:: answered[s] != NONE && answered[s] != dv -> skip /* 4009 answered elsewhere */
	:: else ->
		if
		:: done[s * 3 + ROLE_INVITEE] & (1 << ACT_ACCEPT) ->
			/* a retry (RV_REPEATED): the current record, which tells it answered */
			told[s] = told[s] | (1 << (dv % ND))
		:: else ->
			apply(s, ACT_ACCEPT, ROLE_INVITEE);
			if
			:: ok -> answered[s] = dv; told[s] = told[s] | (1 << (dv % ND))
			:: else -> skip
			fi
		fi
	fi
}

inline decline(s, dv) {
	if
	:: answered[s] != NONE && answered[s] != dv -> skip
	:: else -> apply(s, ACT_DECLINE, ROLE_INVITEE)
	fi
}

inline connect(s, r, dv) {
	if
	:: answered[s] != NONE && r == ROLE_INVITER && DEV(INVITER(s), creator[s]) != dv -> skip
	:: answered[s] != NONE && r == ROLE_INVITEE && answered[s] != dv -> skip
	:: else -> apply(s, ACT_CONNECT, r)
	fi
}

/* hello: known from now on; its kept outcomes are queued right after the reply. */
inline hello(dv) {
	online[dv] = true;
	known[dv] = true;
	for (i : 0 .. NS - 1) {
		oqueued[L(i, dv)] = pending[L(i, dv)]
	}
	i = 0
}

/*
 * What the device's connection had queued for session s when it closed:
 * the final event was written (the daemon then forgets the outcome) or
 * lost; session.outcome was lost, or read, or read and acknowledged. While
 * the device stays connected nothing the daemon decides depends on which,
 * so the model settles it when the connection closes.
 */
inline settle(s, dv) {
	if
	:: queued[L(s, dv)] ->
		queued[L(s, dv)] = false;
		if
		:: live[L(s, dv)]++; pending[L(s, dv)] = false
		:: skip
		fi
	:: oqueued[L(s, dv)] ->
		oqueued[L(s, dv)] = false;
		if
		:: got[L(s, dv)]++
		:: got[L(s, dv)]++; pending[L(s, dv)] = false; acked[L(s, dv)] = true /* session.ack */
		:: skip
		fi
	:: else -> skip
	fi
}

/* The device's connection closes (or it stays, and this is where we stop looking). */
inline leave(dv) {
	online[dv] = false;
	s = 0; settle(s, dv);
	s = 1; settle(s, dv)
}

/* The daemon's timers: the ttl (before RSS_CONNECTED) and peer grace (engaged devices). */
#define EXPIRES(s) (state[s] != RSS_CONNECTED && !FINAL(state[s]))
#define PEER_LOST(s) (answered[s] != NONE && !FINAL(state[s]) && \
	(!online[DEV(INVITER(s), creator[s])] || !online[answered[s]]))

/* Each device's requests, a device at a time: dv is it, me its user. */
#define REQUESTS(dv) \
	:: atomic { steps[dv] < BUDGET && !online[dv] -> steps[dv]++; hello(dv) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; leave(dv) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = USER(dv); invite(s) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = 1 - USER(dv); accept(s, dv) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = 1 - USER(dv); decline(s, dv) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = USER(dv); apply(s, ACT_CANCEL, ROLE_INVITER) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = USER(dv); connect(s, ROLE_INVITER, dv) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = 1 - USER(dv); connect(s, ROLE_INVITEE, dv) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = USER(dv); apply(s, ACT_TERMINATE, ROLE_INVITER) } \
	:: atomic { steps[dv] < BUDGET && online[dv] -> steps[dv]++; s = 1 - USER(dv); apply(s, ACT_TERMINATE, ROLE_INVITEE) } \
	:: atomic { steps[dv] == BUDGET && online[dv] -> leave(dv) } /* gone for now */

#define ALL_GONE (steps[0] == BUDGET && steps[1] == BUDGET && steps[2] == BUDGET && \
	steps[3] == BUDGET && !online[0] && !online[1] && !online[2] && !online[3])

active proctype daemon() {
	bool ok;
	byte s;

	atomic {
		/* lib/machine.c's table, row for row */
		T(ACT_INVITE, (1 << ROLE_INVITER), ST(RSS_READY), 0, RSS_INVITATION);
		T(ACT_ACCEPT, (1 << ROLE_INVITEE), 0, ST(RSS_INVITATION), RSS_ACCEPTED);
		T(ACT_DECLINE, (1 << ROLE_INVITEE), 0, ST(RSS_INVITATION) | ST(RSS_ACCEPTED), RSS_DECLINED);
		T(ACT_CANCEL, (1 << ROLE_INVITER), ST(RSS_READY) | ST(RSS_INVITATION) | ST(RSS_ACCEPTED), 0, RSS_CANCELLED);
		T(ACT_CONNECT, (1 << ROLE_INVITER) | (1 << ROLE_INVITEE), ST(RSS_ACCEPTED), ST(RSS_ACCEPTED), RSS_CONNECTED);
		T(ACT_TERMINATE, (1 << ROLE_INVITER) | (1 << ROLE_INVITEE) | (1 << ROLE_DAEMON), LIVE, LIVE & ~ST(RSS_READY), RSS_TERMINATED);
		T(ACT_EXPIRE, (1 << ROLE_DAEMON), LIVE & ~ST(RSS_CONNECTED), 0, RSS_TERMINATED);
		T(ACT_PEER_LOST, (1 << ROLE_DAEMON), LIVE, 0, RSS_TERMINATED);
		state[0] = RSS_READY; state[1] = RSS_READY;
		answered[0] = NONE; answered[1] = NONE;
		/* each session created from its user's device 0, which said hello */
		creator[0] = 0; creator[1] = 0;
		known[DEV(0, 0)] = true; known[DEV(1, 0)] = true;
		online[DEV(0, 0)] = true; online[DEV(1, 0)] = true;
	}
	do
	:: d_step { check() };
	if
	REQUESTS(0)
	REQUESTS(1)
	REQUESTS(2)
	REQUESTS(3)
	:: atomic { EXPIRES(0) -> s = 0; apply(s, ACT_EXPIRE, ROLE_DAEMON) }
	:: atomic { EXPIRES(1) -> s = 1; apply(s, ACT_EXPIRE, ROLE_DAEMON) }
	:: atomic { PEER_LOST(0) -> s = 0; apply(s, ACT_PEER_LOST, ROLE_DAEMON) }
	:: atomic { PEER_LOST(1) -> s = 1; apply(s, ACT_PEER_LOST, ROLE_DAEMON) }
	:: ALL_GONE && FINAL(state[0]) && FINAL(state[1]) -> break
	fi
	od;
	/* The end: each device that said hello comes back, is told, acknowledges. */
	atomic {
		for (j : 0 .. NDEV - 1) {
			if
			:: known[j] ->
				hello(j);
				for (s : 0 .. NS - 1) {
					if
					:: oqueued[L(s, j)] ->
						oqueued[L(s, j)] = false;
						got[L(s, j)]++;
						pending[L(s, j)] = false;
						acked[L(s, j)] = true
					:: else -> skip
					fi
				}
			:: else -> skip
			fi
		}
		check();
		/* exactly once: each owed device learned it, live or as session.outcome */
		for (j : 0 .. NS * NDEV - 1) {
			assert(owed[j] == (live[j] + (got[j] > 0) == 1));
			assert(!pending[j])
		}
		assert(FINAL(state[0]) && FINAL(state[1]))
	}
}

/* Every session eventually ends. */
ltl ends { <> (FINAL(state[0]) && FINAL(state[1])) }

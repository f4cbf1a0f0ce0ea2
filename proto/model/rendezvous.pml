/*
 * The rendezvous protocol as the daemon runs it (proto/PROTOCOL.md), for
 * the spin model checker: two users, A and B, with two devices each; the
 * daemon, which handles one request at a time, with its timers (the ttl
 * and peer grace); devices that come and go, retry, and invite each other
 * at the same moment (A's session 0 and B's session 1 cross, same topic).
 *
 * Checked (proto/model/check.sh, in CI):
 *   - at most one answering device per session;
 *   - every session reaches exactly one final state;
 *   - every device of each party learns each outcome exactly once, live or
 *     as session.outcome;
 *   - no two live crossing sessions remain;
 *   - every session eventually ends (LTL, with the timers, weak fairness).
 *
 * The transition table is lib/machine.c's, row for row: check_table.py
 * compares the T(...) lines below with it.
 */

#define NS 2 /* sessions: 0 is A's to B, 1 is B's to A */
#define NU 2 /* users: 0 is A, 1 is B */
#define ND 2 /* devices per user */
#define NONE 255

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

byte state[NS];         /* RSS_* */
short done[NS * 3];     /* actions taken, per session and role: bit (1 << action) */
byte answered[NS];      /* the invitee's device that accepted, or NONE */
byte creator[NS];       /* the inviter's device that created it */
byte finals[NS];        /* final transitions taken (must end at exactly 1) */
byte told[NS];          /* devices told they answered (bit per invitee device) */
bool glare_lost[NS];    /* ended because the other came first */

bool online[NU * ND];   /* the device has a live connection */
bool known[NU * ND];    /* it said hello (with its own device id) */
byte learned[NS * NU * ND]; /* times the device learned how session s ended */
bool pending[NS * NU * ND]; /* an outcome kept for it (not acknowledged) */

#define DEV(u, d) ((u) * ND + (d))
#define L(s, u, d) ((s) * NU * ND + (u) * ND + (d))
#define INVITER(s) (s)     /* session 0: A invites B; session 1: B invites A */
#define INVITEE(s) (1 - (s))
#define OTHER(s) (1 - (s))

/* A session ended: devices online learn it live; the others that said hello, later. */
inline ended(s) {
	finals[s]++;
	for (u : 0 .. NU - 1) {
		for (d : 0 .. ND - 1) {
			if
			:: known[DEV(u, d)] && (u == INVITER(s) || (done[s * 3 + ROLE_INVITER] & (1 << ACT_INVITE))) ->
				if
				:: online[DEV(u, d)] -> learned[L(s, u, d)]++
				:: else -> pending[L(s, u, d)] = true
				fi
			:: else -> skip
			fi
		}
	}
	u = 0; d = 0
}

/* Apply action a by role r as lib/machine.c does; ok tells whether it changed anything. */
inline apply(s, a, r, ok) {
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
		ok = true;
		check()
	:: else -> skip
	fi
}

byte u, d; /* loop variables of ended() and check() */

/* What must hold after every step of the daemon. */
inline check() {
	for (u : 0 .. NS - 1) {
		assert(finals[u] <= 1);
		for (d : 0 .. NU * ND - 1) {
			assert(learned[u * NU * ND + d] <= 1)
		}
	}
	/* no two live crossing sessions past the invitation */
	assert(!((state[0] == RSS_INVITATION || state[0] == RSS_ACCEPTED || state[0] == RSS_CONNECTED) &&
		 (state[1] == RSS_INVITATION || state[1] == RSS_ACCEPTED || state[1] == RSS_CONNECTED)));
	u = 0; d = 0
}

/* The daemon's request handling: one request at a time (atomic). */
inline invite(s, dev) {
	atomic {
		if
		:: state[s] == RSS_READY && (state[OTHER(s)] == RSS_INVITATION || state[OTHER(s)] == RSS_ACCEPTED) ->
			/* glare: the earlier invitation wins; this one ends */
			done[s * 3 + ROLE_INVITER] = done[s * 3 + ROLE_INVITER] | (1 << ACT_INVITE);
			apply(s, ACT_TERMINATE, ROLE_DAEMON, ok);
			glare_lost[s] = ok
		:: else -> apply(s, ACT_INVITE, ROLE_INVITER, ok)
		fi
	}
}

inline accept(s, dev) {
	atomic {
		if
		:: answered[s] != NONE && answered[s] != dev -> skip /* 4009 answered elsewhere */
		:: else ->
			apply(s, ACT_ACCEPT, ROLE_INVITEE, ok);
			if
			:: ok && answered[s] == NONE -> answered[s] = dev
			:: else -> skip
			fi;
			/* the device is told it answered: its accept changed the state, or it retried */
			if
			:: answered[s] == dev -> told[s] = told[s] | (1 << dev)
			:: else -> skip
			fi;
			assert(told[s] != 3) /* at most one answering device */
		fi
	}
}

inline decline(s, dev) {
	atomic {
		if
		:: answered[s] != NONE && answered[s] != dev -> skip
		:: else -> apply(s, ACT_DECLINE, ROLE_INVITEE, ok)
		fi
	}
}

inline connect(s, r, dev) {
	atomic {
		if
		:: answered[s] != NONE && r == ROLE_INVITER && creator[s] != dev -> skip
		:: answered[s] != NONE && r == ROLE_INVITEE && answered[s] != dev -> skip
		:: else -> apply(s, ACT_CONNECT, r, ok)
		fi
	}
}

/* A device of user me: comes and goes, says hello, and acts in both sessions. */
proctype Device(byte me; byte dv) {
	bool ok;
	byte steps = 0;
	byte s;
	do
	:: steps < 3 ->
		steps++;
		if
		:: !online[DEV(me, dv)] ->
			atomic {
				/* hello: known from now on; its outcomes follow the reply */
				online[DEV(me, dv)] = true;
				known[DEV(me, dv)] = true;
				for (s : 0 .. NS - 1) {
					if
					:: pending[L(s, me, dv)] ->
						learned[L(s, me, dv)]++;
						pending[L(s, me, dv)] = false /* session.ack */
					:: else -> skip
					fi
				}
			}
		:: online[DEV(me, dv)] -> online[DEV(me, dv)] = false
		:: online[DEV(me, dv)] -> s = me; invite(s, dv)          /* my session */
		:: online[DEV(me, dv)] -> s = 1 - me; accept(s, dv)      /* the other's */
		:: online[DEV(me, dv)] -> s = 1 - me; decline(s, dv)
		:: online[DEV(me, dv)] -> s = me; atomic { apply(s, ACT_CANCEL, ROLE_INVITER, ok) }
		:: online[DEV(me, dv)] -> s = me; connect(s, ROLE_INVITER, dv)
		:: online[DEV(me, dv)] -> s = 1 - me; connect(s, ROLE_INVITEE, dv)
		:: online[DEV(me, dv)] -> s = me; atomic { apply(s, ACT_TERMINATE, ROLE_INVITER, ok) }
		fi
	:: else -> break
	od;
	online[DEV(me, dv)] = false /* every device goes away in the end */
}

/* The daemon's timers: the ttl (before RSS_CONNECTED) and peer grace. */
proctype Timers() {
	bool ok;
	byte s;
	do
	:: atomic { state[0] != RSS_CONNECTED && !FINAL(state[0]) -> s = 0; apply(s, ACT_EXPIRE, ROLE_DAEMON, ok) }
	:: atomic { state[1] != RSS_CONNECTED && !FINAL(state[1]) -> s = 1; apply(s, ACT_EXPIRE, ROLE_DAEMON, ok) }
	:: atomic { answered[0] != NONE && !FINAL(state[0]) &&
		    (!online[DEV(INVITER(0), creator[0])] || !online[DEV(INVITEE(0), answered[0])]) ->
		s = 0; apply(s, ACT_PEER_LOST, ROLE_DAEMON, ok) }
	:: atomic { answered[1] != NONE && !FINAL(state[1]) &&
		    (!online[DEV(INVITER(1), creator[1])] || !online[DEV(INVITEE(1), answered[1])]) ->
		s = 1; apply(s, ACT_PEER_LOST, ROLE_DAEMON, ok) }
	:: FINAL(state[0]) && FINAL(state[1]) -> break
	od
}

init {
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
		creator[0] = 0; creator[1] = 0; /* each created from its user's device 0 */
		known[DEV(0, 0)] = true; known[DEV(1, 0)] = true;
		online[DEV(0, 0)] = true; online[DEV(1, 0)] = true;
		run Device(0, 0); run Device(0, 1); run Device(1, 0); run Device(1, 1);
		run Timers()
	}
}

/* Every session eventually ends (the timers see to it), and its outcome is then either learned or kept. */
ltl ends { <> (FINAL(state[0]) && FINAL(state[1])) }

/* The session state machine: the transition table of proto/PROTOCOL.md. */
#include <string.h>

#include "rendezvous.h"

#define ST(s) (1u << (s))
#define LIVE (ST(RSS_READY) | ST(RSS_INVITATION) | ST(RSS_ACCEPTED) | ST(RSS_CONNECTED))

/* One row per action: which roles may take it, from which states, to where. */
static const struct transition {
	unsigned roles;        /* bitmask of (1 << enum rv_role) */
	unsigned from;         /* bitmask of (1 << enum rv_state) */
	unsigned from_invitee; /* for the invitee, when different from 'from' */
	enum rv_state to;
} table[RV_ACTION_COUNT] = {
	[RV_ACT_INVITE] = {1u << RV_ROLE_INVITER, ST(RSS_READY), 0, RSS_INVITATION},
	[RV_ACT_ACCEPT] = {1u << RV_ROLE_INVITEE, 0, ST(RSS_INVITATION), RSS_ACCEPTED},
	[RV_ACT_DECLINE] = {1u << RV_ROLE_INVITEE, 0, ST(RSS_INVITATION) | ST(RSS_ACCEPTED),
			    RSS_DECLINED},
	[RV_ACT_CANCEL] = {1u << RV_ROLE_INVITER,
			   ST(RSS_READY) | ST(RSS_INVITATION) | ST(RSS_ACCEPTED), 0, RSS_CANCELLED},
	[RV_ACT_CONNECT] = {(1u << RV_ROLE_INVITER) | (1u << RV_ROLE_INVITEE), ST(RSS_ACCEPTED),
			    ST(RSS_ACCEPTED), RSS_CONNECTED},
	/* The daemon terminates for an admin (session.terminate by the admin role). */
	[RV_ACT_TERMINATE] = {(1u << RV_ROLE_INVITER) | (1u << RV_ROLE_INVITEE) |
				      (1u << RV_ROLE_DAEMON),
			      LIVE, LIVE & ~ST(RSS_READY), RSS_TERMINATED},
	[RV_ACT_EXPIRE] = {1u << RV_ROLE_DAEMON, LIVE & ~ST(RSS_CONNECTED), 0, RSS_TERMINATED},
	[RV_ACT_PEER_LOST] = {1u << RV_ROLE_DAEMON, LIVE, 0, RSS_TERMINATED},
};

static const char *const state_names[RV_STATE_COUNT] = {
	"RSS_UNKNOWN",   "RSS_READY",     "RSS_INVITATION", "RSS_ACCEPTED",
	"RSS_CONNECTED", "RSS_CANCELLED", "RSS_DECLINED",   "RSS_TERMINATED",
};

static const char *const action_names[RV_ACTION_COUNT] = {
	"invite", "accept", "decline", "cancel", "connect", "terminate", "expire", "peer_lost",
};

void
rv_machine_init(struct rv_machine *m)
{
	memset(m, 0, sizeof *m);
	m->state = RSS_READY;
}

enum rv_outcome
rv_machine_apply(struct rv_machine *m, enum rv_action a, enum rv_role r, enum rv_state *prev)
{
	const struct transition *t;
	unsigned from;

	if ((unsigned)a >= RV_ACTION_COUNT || (unsigned)r >= RV_ROLE_COUNT)
		return RV_FORBIDDEN;
	t = &table[a];
	if (!(t->roles & (1u << r)))
		return RV_FORBIDDEN;
	if (m->done[r] & (1u << a))
		return RV_REPEATED;
	from = r == RV_ROLE_INVITEE ? t->from_invitee : t->from;
	if ((unsigned)m->state >= RV_STATE_COUNT || !(from & ST(m->state)))
		return RV_INVALID;

	m->done[r] |= (uint16_t)(1u << a);
	if (a == RV_ACT_CONNECT) {
		enum rv_role other = r == RV_ROLE_INVITER ? RV_ROLE_INVITEE : RV_ROLE_INVITER;
		if (!(m->done[other] & (1u << RV_ACT_CONNECT)))
			return RV_RECORDED;
	}
	if (prev != NULL)
		*prev = m->state;
	m->state = t->to;
	return RV_CHANGED;
}

bool
rv_machine_confirmed(const struct rv_machine *m, enum rv_role r)
{
	if ((unsigned)r >= RV_ROLE_COUNT)
		return false;
	return (m->done[r] & (1u << RV_ACT_CONNECT)) != 0;
}

bool
rv_state_is_final(enum rv_state s)
{
	return s == RSS_CANCELLED || s == RSS_DECLINED || s == RSS_TERMINATED;
}

const char *
rv_state_name(enum rv_state s)
{
	if ((unsigned)s >= RV_STATE_COUNT)
		return NULL;
	return state_names[s];
}

int
rv_state_from_name(const char *name, enum rv_state *s)
{
	for (unsigned i = 0; i < RV_STATE_COUNT; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*s = (enum rv_state)i;
			return 0;
		}
	}
	return -1;
}

const char *
rv_action_name(enum rv_action a)
{
	if ((unsigned)a >= RV_ACTION_COUNT)
		return NULL;
	return action_names[a];
}

const char *
rv_error_message(int code)
{
	switch (code) {
	case RV_ERR_PARSE: return "Parse error";
	case RV_ERR_INVALID_REQUEST: return "Invalid Request";
	case RV_ERR_METHOD_NOT_FOUND: return "Method not found";
	case RV_ERR_INVALID_PARAMS: return "Invalid params";
	case RV_ERR_INTERNAL: return "Internal error";
	case RV_ERR_UNAUTHENTICATED: return "Not authenticated";
	case RV_ERR_FORBIDDEN: return "Forbidden";
	case RV_ERR_NO_SESSION: return "No such session";
	case RV_ERR_INVALID_TRANSITION: return "Invalid transition";
	case RV_ERR_PEER_UNAVAILABLE: return "Peer unavailable";
	case RV_ERR_TOO_LARGE: return "Too large";
	case RV_ERR_LIMIT: return "Limit exceeded";
	case RV_ERR_HISTORY_GONE: return "History gone";
	case RV_ERR_UNAVAILABLE: return "Unavailable";
	default: return "Unknown error";
	}
}

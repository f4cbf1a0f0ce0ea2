/*
 * The transition table, exhaustively: every state x action x role, checked
 * against an expectation written independently from lib/machine.c, plus
 * the retry rules and whole lifecycles.
 */
#include <string.h>

#include "check.h"
#include "rendezvous.h"

/* What proto/PROTOCOL.md's table says, spelled out case by case. */
static enum rv_outcome
expected(enum rv_state s, enum rv_action a, enum rv_role r, enum rv_state *to)
{
	bool live =
		s == RSS_READY || s == RSS_INVITATION || s == RSS_ACCEPTED || s == RSS_CONNECTED;

	switch (a) {
	case RV_ACT_INVITE:
		if (r != RV_ROLE_INVITER)
			return RV_FORBIDDEN;
		*to = RSS_INVITATION;
		return s == RSS_READY ? RV_CHANGED : RV_INVALID;
	case RV_ACT_ACCEPT:
		if (r != RV_ROLE_INVITEE)
			return RV_FORBIDDEN;
		*to = RSS_ACCEPTED;
		return s == RSS_INVITATION ? RV_CHANGED : RV_INVALID;
	case RV_ACT_DECLINE:
		if (r != RV_ROLE_INVITEE)
			return RV_FORBIDDEN;
		*to = RSS_DECLINED;
		return s == RSS_INVITATION || s == RSS_ACCEPTED ? RV_CHANGED : RV_INVALID;
	case RV_ACT_CANCEL:
		if (r != RV_ROLE_INVITER)
			return RV_FORBIDDEN;
		*to = RSS_CANCELLED;
		return s == RSS_READY || s == RSS_INVITATION || s == RSS_ACCEPTED ? RV_CHANGED
										  : RV_INVALID;
	case RV_ACT_CONNECT:
		if (r != RV_ROLE_INVITER && r != RV_ROLE_INVITEE)
			return RV_FORBIDDEN;
		*to = RSS_ACCEPTED; /* a first confirmation changes nothing */
		return s == RSS_ACCEPTED ? RV_RECORDED : RV_INVALID;
	case RV_ACT_TERMINATE:
		if (r == RV_ROLE_NONE)
			return RV_FORBIDDEN;
		*to = RSS_TERMINATED;
		if (r == RV_ROLE_INVITEE && s == RSS_READY)
			return RV_INVALID;
		return live ? RV_CHANGED : RV_INVALID;
	case RV_ACT_EXPIRE:
		if (r != RV_ROLE_DAEMON)
			return RV_FORBIDDEN;
		*to = RSS_TERMINATED;
		return live && s != RSS_CONNECTED ? RV_CHANGED : RV_INVALID;
	case RV_ACT_PEER_LOST:
		if (r != RV_ROLE_DAEMON)
			return RV_FORBIDDEN;
		*to = RSS_TERMINATED;
		return live ? RV_CHANGED : RV_INVALID;
	}
	return RV_FORBIDDEN;
}

static void
test_table(void)
{
	for (int s = RSS_UNKNOWN; s < RV_STATE_COUNT; s++) {
		for (int a = 0; a < RV_ACTION_COUNT; a++) {
			for (int r = 0; r < RV_ROLE_COUNT; r++) {
				struct rv_machine m, before;
				enum rv_state to = (enum rv_state)s, prev = RSS_UNKNOWN;
				enum rv_outcome want, got;

				rv_machine_init(&m);
				m.state = (enum rv_state)s;
				before = m;
				want = expected((enum rv_state)s, (enum rv_action)a,
						(enum rv_role)r, &to);
				got = rv_machine_apply(&m, (enum rv_action)a, (enum rv_role)r,
						       &prev);
				CHECK_MSG(got == want, "%s %s by role %d: got %d want %d",
					  rv_state_name((enum rv_state)s),
					  rv_action_name((enum rv_action)a), r, got, want);
				if (got == RV_CHANGED) {
					CHECK(m.state == to);
					CHECK(prev == (enum rv_state)s);
				} else if (got != RV_RECORDED) {
					CHECK(memcmp(&m, &before, sizeof m) == 0);
				} else {
					CHECK(m.state == (enum rv_state)s);
				}
			}
		}
	}
}

static void
test_connect_needs_both(void)
{
	struct rv_machine m;
	enum rv_state prev;

	rv_machine_init(&m);
	CHECK(rv_machine_apply(&m, RV_ACT_INVITE, RV_ROLE_INVITER, &prev) == RV_CHANGED);
	CHECK(rv_machine_apply(&m, RV_ACT_ACCEPT, RV_ROLE_INVITEE, &prev) == RV_CHANGED);
	CHECK(rv_machine_apply(&m, RV_ACT_CONNECT, RV_ROLE_INVITEE, &prev) == RV_RECORDED);
	CHECK(m.state == RSS_ACCEPTED);
	CHECK(rv_machine_confirmed(&m, RV_ROLE_INVITEE));
	CHECK(!rv_machine_confirmed(&m, RV_ROLE_INVITER));
	/* A retried confirmation is a repeat, not a second vote. */
	CHECK(rv_machine_apply(&m, RV_ACT_CONNECT, RV_ROLE_INVITEE, &prev) == RV_REPEATED);
	CHECK(m.state == RSS_ACCEPTED);
	CHECK(rv_machine_apply(&m, RV_ACT_CONNECT, RV_ROLE_INVITER, &prev) == RV_CHANGED);
	CHECK(m.state == RSS_CONNECTED && prev == RSS_ACCEPTED);
	/* Connected sessions do not expire, but may be lost or terminated. */
	CHECK(rv_machine_apply(&m, RV_ACT_EXPIRE, RV_ROLE_DAEMON, &prev) == RV_INVALID);
	CHECK(rv_machine_apply(&m, RV_ACT_TERMINATE, RV_ROLE_INVITEE, &prev) == RV_CHANGED);
	CHECK(m.state == RSS_TERMINATED);
	CHECK(rv_machine_apply(&m, RV_ACT_TERMINATE, RV_ROLE_INVITEE, &prev) == RV_REPEATED);
	CHECK(rv_machine_apply(&m, RV_ACT_TERMINATE, RV_ROLE_INVITER, &prev) == RV_INVALID);
}

static void
test_repeats(void)
{
	struct rv_machine m;

	rv_machine_init(&m);
	CHECK(rv_machine_apply(&m, RV_ACT_INVITE, RV_ROLE_INVITER, NULL) == RV_CHANGED);
	CHECK(rv_machine_apply(&m, RV_ACT_INVITE, RV_ROLE_INVITER, NULL) == RV_REPEATED);
	CHECK(rv_machine_apply(&m, RV_ACT_ACCEPT, RV_ROLE_INVITEE, NULL) == RV_CHANGED);
	CHECK(rv_machine_apply(&m, RV_ACT_ACCEPT, RV_ROLE_INVITEE, NULL) == RV_REPEATED);
	/* The inviter never accepted: for it this is a wrong role, not a retry. */
	CHECK(rv_machine_apply(&m, RV_ACT_ACCEPT, RV_ROLE_INVITER, NULL) == RV_FORBIDDEN);
	CHECK(rv_machine_apply(&m, RV_ACT_CANCEL, RV_ROLE_INVITER, NULL) == RV_CHANGED);
	CHECK(m.state == RSS_CANCELLED);
	CHECK(rv_machine_apply(&m, RV_ACT_CANCEL, RV_ROLE_INVITER, NULL) == RV_REPEATED);
	CHECK(rv_machine_apply(&m, RV_ACT_DECLINE, RV_ROLE_INVITEE, NULL) == RV_INVALID);
	CHECK(m.state == RSS_CANCELLED);
	/* Accept after accept still answers with the record, whatever came since. */
	CHECK(rv_machine_apply(&m, RV_ACT_ACCEPT, RV_ROLE_INVITEE, NULL) == RV_REPEATED);
}

static void
test_names(void)
{
	enum rv_state s;

	for (int i = 0; i < RV_STATE_COUNT; i++) {
		CHECK(rv_state_name((enum rv_state)i) != NULL);
		CHECK(rv_state_from_name(rv_state_name((enum rv_state)i), &s) == 0 && (int)s == i);
	}
	CHECK(strcmp(rv_state_name(RSS_ACCEPTED), "RSS_ACCEPTED") == 0);
	CHECK(rv_state_name((enum rv_state)8) == NULL);
	CHECK(rv_state_from_name("RSS_NOPE", &s) == -1);
	CHECK(RSS_UNKNOWN == 0 && RSS_READY == 1 && RSS_INVITATION == 2 && RSS_ACCEPTED == 3 &&
	      RSS_CONNECTED == 4 && RSS_CANCELLED == 5 && RSS_DECLINED == 6 && RSS_TERMINATED == 7);
	CHECK(RSF_INVITER == 1 && RSF_INVITEE == 2 && RSF_ORIGINAL_INVITER == 4);
	CHECK(rv_state_is_final(RSS_DECLINED) && !rv_state_is_final(RSS_CONNECTED));
	CHECK(strcmp(rv_error_message(RV_ERR_HISTORY_GONE), "History gone") == 0);
	CHECK(strcmp(rv_error_message(RV_ERR_UNAVAILABLE), "Unavailable") == 0);
	CHECK(rv_action_name((enum rv_action)99) == NULL);
}

int
main(void)
{
	test_table();
	test_connect_needs_both();
	test_repeats();
	test_names();
	return check_done("test_machine");
}

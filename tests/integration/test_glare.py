#!/usr/bin/env python3
"""Crossing invitations (glare, PROTOCOL.md 4.5): when two users invite each other
with the same topic, the invitation sent first wins; the other ends as glare."""
import resource

from rvtest import DaemonTest, main

PAIRS = 1000


class Glare(DaemonTest):
    daemon_args = ("--observer", "olga", "--max-connections", "5000")

    def test_the_first_invitation_wins(self):
        olga = self.client("olga")
        olga.call("subscribe", {"all": True})
        alice, bob = self.client("alice", "laptop"), self.client("bob", "phone")
        bob.call("subscribe", {"user": "bob"})
        alice.call("subscribe", {"user": "alice"})
        s1 = alice.call("session.create", {"invitee": "bob", "topic": "call"})["session"]
        s2 = bob.call("session.create", {"invitee": "alice", "topic": "call"})
        self.assertEqual(s2["topic"], "call")
        s2 = s2["session"]
        alice.call("session.invite", {"session": s1})
        err = bob.error("session.invite", {"session": s2})
        self.assertEqual((err["code"], err["data"]), (4091, {"session": s1}))
        # bob's own session ended: one event, seen by both parties and observers.
        for c in (olga, alice, bob):
            evs = [e for e in (c.event() for _ in range({olga: 4, alice: 3, bob: 3}[c]))
                   if e["session"] == s2 and e["state"] == "RSS_TERMINATED"]
            self.assertEqual(len(evs), 1, c.user)
            ev = evs[0]
            self.assertEqual((ev["prev"], ev["reason"], ev["replaced_by"], ev["by"], ev["topic"]),
                             ("RSS_READY", "glare", s1, None, "call"))
        rec = alice.call("session.get", {"session": s2})
        self.assertEqual((rec["state"], rec["reason"], rec["replaced_by"]),
                         ("RSS_TERMINATED", "glare", s1))
        # The winner goes on as usual.
        self.assertEqual(bob.call("session.accept", {"session": s1})["state"], "RSS_ACCEPTED")
        self.assertNotIn("replaced_by", alice.call("session.get", {"session": s1}))

    def test_no_glare_across_topics_or_before_the_invitation(self):
        alice, bob = self.client("alice"), self.client("bob")
        s1 = alice.call("session.create", {"invitee": "bob", "topic": "call"})["session"]
        s2 = bob.call("session.create", {"invitee": "alice", "topic": "screen"})["session"]
        s3 = bob.call("session.create", {"invitee": "alice", "topic": "call"})["session"]
        # s1 is not invited yet: bob's invitation is not a crossing one.
        self.assertEqual(bob.call("session.invite", {"session": s3})["state"], "RSS_INVITATION")
        self.assertEqual(alice.error("session.invite", {"session": s1})["data"], {"session": s3})
        # Another topic is another conversation.
        self.assertEqual(bob.call("session.invite", {"session": s2})["state"], "RSS_INVITATION")
        self.assertEqual(alice.call("session.create", {"invitee": "bob"})["topic"], "")
        long = alice.error("session.create", {"invitee": "bob", "topic": "t" * 129})
        self.assertEqual(long["code"], -32602)
        self.assertEqual(alice.call("session.create", {"invitee": "bob", "topic": "t" * 128})
                         ["topic"], "t" * 128)

    def test_a_thousand_pairs_invite_each_other_at_once(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
        pairs = [(self.client("a%d" % i), self.client("b%d" % i)) for i in range(PAIRS)]
        sids = {}
        for a, b in pairs:
            sids[a] = a.call("session.create", {"invitee": b.user})["session"]
            sids[b] = b.call("session.create", {"invitee": a.user})["session"]
        # Every invitation sent before any answer is read: they race in the daemon.
        order = [c for pair in pairs for c in pair]
        ids = {c: c.request("session.invite", {"session": sids[c]}) for c in order}
        outcomes = {c: c.response(ids[c]) for c in order}
        won = lost = 0
        for a, b in pairs:
            ra, rb = outcomes[a], outcomes[b]
            # Exactly one invitation of each pair stands; the other lost to it.
            self.assertEqual(sorted(("result" in ra, "result" in rb)), [False, True], (ra, rb))
            winner, loser = (a, b) if "result" in ra else (b, a)
            err = outcomes[loser]["error"]
            self.assertEqual((err["code"], err["data"]["session"]), (4091, sids[winner]))
            live = [s for s in (sids[a], sids[b])
                    if a.call("session.get", {"session": s})["state"] not in
                    ("RSS_TERMINATED", "RSS_CANCELLED", "RSS_DECLINED")]
            self.assertEqual(live, [sids[winner]])
            won += 1
            lost += 1
        self.assertEqual((won, lost), (PAIRS, PAIRS))


if __name__ == "__main__":
    main()

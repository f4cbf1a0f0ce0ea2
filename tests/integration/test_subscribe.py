#!/usr/bin/env python3
"""Subscriptions: targets, permissions, at-most-once per connection, since replay."""
from rvtest import DaemonTest, lifecycle_to, main


class Subscribe(DaemonTest):
    daemon_args = ("--observer", "olga", "--history", "100")

    def test_session_subscription(self):
        alice, bob, carol = self.client("alice"), self.client("bob"), self.client("carol")
        sid = lifecycle_to(alice, bob, "RSS_INVITATION")
        other = lifecycle_to(alice, carol, "RSS_INVITATION")
        r = bob.call("subscribe", {"session": sid})
        self.assertEqual((r["subscription"], r["last_event"]), (1, 4))
        alice.call("session.cancel", {"session": other})
        bob.call("session.accept", {"session": sid})
        ev = bob.event()
        self.assertEqual((ev["session"], ev["state"], ev["event"]), (sid, "RSS_ACCEPTED", 6))
        bob.no_message()

    def test_user_subscription_hides_uninvited(self):
        alice, bob = self.client("alice"), self.client("bob")
        bob.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(alice, bob, "RSS_READY")
        alice.call("session.cancel", {"session": sid})  # never invited: bob never hears of it
        sid2 = lifecycle_to(alice, bob, "RSS_INVITATION")
        ev = bob.event()
        self.assertEqual((ev["session"], ev["state"]), (sid2, "RSS_INVITATION"))
        bob.no_message()
        # and a replay from the start shows the same
        bob2 = self.client("bob")
        bob2.call("subscribe", {"user": "bob", "since": 0})
        ev = bob2.event()
        self.assertEqual((ev["session"], ev["state"], ev["event"]), (sid2, "RSS_INVITATION", 4))
        bob2.no_message()

    def test_at_most_once_per_connection(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        sid = lifecycle_to(alice, bob, "RSS_READY")
        olga.call("subscribe", {"all": True})
        olga.call("subscribe", {"user": "alice"})
        olga.call("subscribe", {"user": "bob"})
        olga.call("subscribe", {"session": sid})
        alice.call("session.invite", {"session": sid})
        self.assertEqual(olga.event()["event"], 2)
        olga.no_message()
        # a replay skips what another subscription already delivered
        alice.call("session.cancel", {"session": sid})
        self.assertEqual(olga.event()["event"], 3)
        olga.call("subscribe", {"session": sid, "since": 0})
        self.assertEqual(olga.event()["event"], 1)  # only the one it never had
        olga.no_message()

    def test_since_replays_then_live(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        for _ in range(3):
            lifecycle_to(alice, bob, "RSS_CONNECTED")
        req = olga.request("subscribe", {"all": True, "since": 5})
        # the reply comes first, then the replay, then live events
        first = olga.read_msg()
        self.assertEqual(first["id"], req)
        self.assertEqual(first["result"]["last_event"], 12)
        lifecycle_to(alice, bob, "RSS_READY")
        ids = [olga.event()["event"] for _ in range(8)]
        self.assertEqual(ids, list(range(6, 14)))
        olga.no_message()

    def test_since_zero_and_current(self):
        alice, bob = self.client("alice"), self.client("bob")
        lifecycle_to(alice, bob, "RSS_INVITATION")
        a2 = self.client("alice")
        a2.call("subscribe", {"user": "alice", "since": 2})  # nothing missed
        a2.no_message()
        a3 = self.client("alice")
        a3.call("subscribe", {"user": "alice", "since": 0})
        self.assertEqual([a3.event()["event"] for _ in range(2)], [1, 2])

    def test_unsubscribe(self):
        alice, bob = self.client("alice"), self.client("bob")
        sub = alice.call("subscribe", {"user": "alice"})["subscription"]
        lifecycle_to(alice, bob, "RSS_READY")
        alice.event()
        self.assertIs(alice.call("unsubscribe", {"subscription": sub}), True)
        lifecycle_to(alice, bob, "RSS_READY")
        alice.no_message()
        self.assertEqual(alice.error("unsubscribe", {"subscription": sub})["code"], -32602)

    def test_observer_may_watch_others(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        olga.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(alice, bob, "RSS_READY")
        alice.call("session.invite", {"session": sid})
        self.assertEqual(olga.event()["state"], "RSS_INVITATION")  # bob's view: from the invitation
        olga.no_message()
        self.assertTrue(olga.call("hello", {"user": "olga"})["observer"])
        self.assertFalse(alice.call("hello", {"user": "alice"})["observer"])


if __name__ == "__main__":
    main()

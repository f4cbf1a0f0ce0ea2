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
        ev = olga.event()
        self.assertEqual((ev["event"], ev["replay"]), (1, True))  # only the one it never had
        olga.no_message()
        # live events are never marked; they keep increasing on the connection
        sid2 = alice.call("session.create", {"invitee": "bob"})["session"]
        ev = olga.event()
        self.assertEqual((ev["session"], ev["event"]), (sid2, 4))
        self.assertNotIn("replay", ev)

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
        evs = [olga.event() for _ in range(8)]
        self.assertEqual([e["event"] for e in evs], list(range(6, 14)))
        self.assertEqual([e.get("replay") for e in evs], [True] * 7 + [None])
        olga.no_message()

    def test_batch_replays_in_one_increasing_run(self):
        """Subscriptions made in one batch replay as one run, in id order, each event once."""
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        carol, dave = self.client("carol"), self.client("dave")
        for _ in range(3):  # interleaved: alice's and bob's events alternate
            lifecycle_to(alice, carol, "RSS_INVITATION")
            lifecycle_to(bob, dave, "RSS_INVITATION")
        batch = [{"jsonrpc": "2.0", "method": "subscribe", "params": p, "id": i}
                 for i, p in enumerate([{"user": "alice", "since": 0}, {"user": "bob", "since": 0},
                                        {"session": "0" * 32}, {"user": "alice", "since": 2}])]
        import json
        olga.send_raw((json.dumps(batch) + "\n").encode())
        replies = olga.read_msg()
        self.assertEqual([("result" in r) for r in replies], [True, True, False, True])
        evs = [olga.event() for _ in range(12)]
        self.assertEqual([e["event"] for e in evs], list(range(1, 13)))
        self.assertTrue(all(e["replay"] for e in evs))
        olga.no_message()

    def test_resume_from_the_highest_id_seen(self):
        """A client that keeps the highest event id it has seen, and on every reconnect
        subscribes again with since: that id (all subscriptions in one batch), processes
        every event once, in order, wherever its connection drops (mid-replay too)."""
        import json
        import random
        import threading
        rnd = random.Random(1217)
        errors = []

        def generate(inviter, invitee, n):
            try:
                a, b = self.daemon.client(inviter), self.daemon.client(invitee)
                for _ in range(n):
                    sid = lifecycle_to(a, b, "RSS_CONNECTED")
                    a.call("session.terminate", {"session": sid})
                a.close()
                b.close()
            except Exception as e:  # reported by the main thread
                errors.append(e)

        # Two disjoint streams, interleaved: alice's sessions and bob's.
        gens = [threading.Thread(target=generate, args=(u, v, 60))
                for u, v in (("alice", "carol"), ("bob", "dave"))]
        for g in gens:
            g.start()
        processed, high, reconnects, last = [], 0, 0, None
        while last is None or high < last:
            if last is None and not any(g.is_alive() for g in gens):
                last = self.client("x").call("hello", {"user": "x"})["last_event"]
            c = self.daemon.client("olga")
            batch = [{"jsonrpc": "2.0", "method": "subscribe", "params": {**p, "since": high},
                      "id": i} for i, p in enumerate([{"user": "alice"}, {"user": "bob"}])]
            c.send_raw((json.dumps(batch) + "\n").encode())
            budget = rnd.randint(1, 40)
            try:
                while budget > 0:
                    msg = c.read_msg(timeout=1.0)
                    if isinstance(msg, list):
                        self.assertTrue(all("result" in r for r in msg), msg)
                        continue
                    ev = msg["params"]
                    self.assertGreater(ev["event"], high, "seen before, or out of order")
                    high = ev["event"]
                    processed.append(high)
                    budget -= 1
            except TimeoutError:
                pass  # nothing new for a second
            c.close()  # drop the connection wherever it is, mid-replay too
            reconnects += 1
        for g in gens:
            g.join()
        self.assertEqual(errors, [])
        # Every event was one of alice's or bob's: all of them, each once, in order.
        self.assertEqual(processed, list(range(1, last + 1)))
        self.assertGreater(reconnects, 10)

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

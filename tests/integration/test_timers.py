#!/usr/bin/env python3
"""The daemon ends sessions itself: ttl expiry, peer loss, linger (short durations)."""
import time

from rvtest import DaemonTest, lifecycle_to, main

TTL, GRACE, LINGER = 1.5, 1.0, 0.8


class Timers(DaemonTest):
    daemon_args = ("--observer", "olga", "--invite-ttl", str(TTL), "--peer-grace", str(GRACE),
                   "--linger", str(LINGER))

    def setUp(self):
        super().setUp()
        self.olga = self.client("olga")
        self.olga.call("subscribe", {"all": True})

    def events(self, n):
        return [self.olga.event() for _ in range(n)]

    def test_expiry(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        self.events(3)
        ev = self.olga.event(timeout=TTL + 10)
        self.assertEqual((ev["session"], ev["prev"], ev["state"], ev["reason"], ev["by"]),
                         (sid, "RSS_ACCEPTED", "RSS_TERMINATED", "expired", None))
        rec = alice.call("session.get", {"session": sid})
        self.assertEqual((rec["state"], rec["reason"]), ("RSS_TERMINATED", "expired"))
        self.assertGreaterEqual(rec["updated"], rec["expires"])
        # lingers, then is gone
        deadline = time.monotonic() + LINGER + 10
        while "result" in alice.response(alice.request("session.get", {"session": sid})):
            self.assertLess(time.monotonic(), deadline, "session never freed after linger")
            time.sleep(0.1)
        self.assertEqual(alice.error("session.get", {"session": sid})["code"], 4004)
        self.assertEqual(alice.call("session.list")["sessions"], [])

    def test_per_session_ttl(self):
        alice, bob = self.client("alice"), self.client("bob")
        long = alice.call("session.create", {"invitee": "bob", "ttl": 60})["session"]
        short = alice.call("session.create", {"invitee": "bob", "ttl": 0.2})["session"]
        self.events(2)
        ev = self.olga.event(timeout=10)
        self.assertEqual((ev["session"], ev["reason"], ev["prev"]), (short, "expired", "RSS_READY"))
        self.assertEqual(alice.call("session.get", {"session": long})["state"], "RSS_READY")

    def test_connected_does_not_expire(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        time.sleep(TTL + 0.5)
        self.assertEqual(alice.call("session.get", {"session": sid})["state"], "RSS_CONNECTED")

    def test_inviter_lost(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        self.events(4)
        alice.close()
        ev = self.olga.event(timeout=GRACE + 10)
        self.assertEqual((ev["session"], ev["prev"], ev["state"], ev["reason"], ev["by"]),
                         (sid, "RSS_CONNECTED", "RSS_TERMINATED", "peer_lost", None))
        self.assertEqual(bob.call("session.get", {"session": sid})["reason"], "peer_lost")

    def test_reconnect_within_grace(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        self.events(4)
        for _ in range(3):
            alice.close()
            time.sleep(GRACE / 3)
            alice = self.client("alice", device=alice.device)  # the same device, back
            time.sleep(GRACE / 2)
        self.olga.no_message(GRACE)
        self.assertEqual(bob.call("session.get", {"session": sid})["state"], "RSS_CONNECTED")

    def test_invitee_engaged_only_after_accept(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_INVITATION", ttl=60)
        self.events(2)
        bob.close()  # not engaged yet: no peer loss, only the ttl applies
        self.olga.no_message(GRACE + 0.3)
        bob = self.client("bob")
        bob.call("session.accept", {"session": sid})
        self.assertEqual(self.olga.event()["state"], "RSS_ACCEPTED")
        bob.close()
        ev = self.olga.event(timeout=GRACE + 10)
        self.assertEqual((ev["state"], ev["reason"]), ("RSS_TERMINATED", "peer_lost"))

    def test_one_connection_of_several_lost(self):
        alice, bob = self.client("alice"), self.client("bob")
        alice2 = self.client("alice", device=alice.device)  # the same device, twice
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        self.events(4)
        alice.close()  # alice2 still connected
        self.olga.no_message(GRACE + 0.3)
        self.assertEqual(alice2.call("session.get", {"session": sid})["state"], "RSS_CONNECTED")


if __name__ == "__main__":
    main()

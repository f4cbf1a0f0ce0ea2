#!/usr/bin/env python3
"""Outcomes that always arrive (PROTOCOL.md 4.8): a device that said hello before a
session ended, and did not get its final event, gets session.outcome after its
next hello, until it acknowledges it."""
import os
import shutil
import tempfile
import time

from rvtest import DaemonTest, Redis, lifecycle_to, main, wait_for


def ended_while_away(test, device="phone", topic="t"):
    """alice invites bob; bob's device goes away; alice cancels. Returns the session."""
    alice = test.client("alice", "laptop")
    bob = test.client("bob", device)
    sid = alice.call("session.create", {"invitee": "bob", "topic": topic})["session"]
    alice.call("session.invite", {"session": sid})
    bob.close()
    alice.call("session.cancel", {"session": sid, "reason": "later"})
    alice.close()
    return sid


class Outcomes(DaemonTest):
    daemon_args = ("--max-outcomes", "3", "--admin", "root")

    def test_after_the_next_hello_until_acknowledged(self):
        sid = ended_while_away(self)
        bob = self.client("bob", "phone")
        o = bob.note(method="session.outcome")["params"]
        self.assertEqual((o["session"], o["state"], o["reason"], o["by"], o["by_device"],
                          o["topic"]), (sid, "RSS_CANCELLED", "later", "alice", "laptop", "t"))
        self.assertIsInstance(o["event"], int)
        self.assertIsInstance(o["time"], int)
        self.assertEqual(bob.call("session.outcomes")["outcomes"], [o])
        bob.close()
        bob = self.client("bob", "phone")  # not acknowledged: again
        self.assertEqual(bob.note(method="session.outcome")["params"], o)
        self.assertEqual(bob.call("session.ack", {"sessions": [sid, "0" * 32]}), {"acked": 1})
        self.assertEqual(bob.call("session.ack", {"sessions": [sid]}), {"acked": 0})
        bob.close()
        bob = self.client("bob", "phone")
        bob.no_message(0.3)
        self.assertEqual(bob.call("session.outcomes")["outcomes"], [])
        self.assertEqual(bob.error("session.ack", {"sessions": ["nope"]})["code"], -32602)

    def test_each_device_learns_it_once(self):
        self.client("bob", "laptop").close()  # bob's laptop is known too
        sid = ended_while_away(self)
        phone, laptop = self.client("bob", "phone"), self.client("bob", "laptop")
        for c in (phone, laptop):
            self.assertEqual(c.note(method="session.outcome")["params"]["session"], sid)
        phone.call("session.ack", {"sessions": [sid]})
        laptop.close()
        laptop = self.client("bob", "laptop")  # acknowledging on the phone is the phone's
        self.assertEqual(laptop.note(method="session.outcome")["params"]["session"], sid)

    def test_not_for_who_saw_it_end_or_could_not(self):
        # A device subscribed when it ended got the event live: no outcome.
        alice = self.client("alice", "laptop")
        bob = self.client("bob", "phone")
        bob.call("subscribe", {"user": "bob"})
        sid = alice.call("session.create", {"invitee": "bob"})["session"]
        alice.call("session.invite", {"session": sid})
        alice.call("session.cancel", {"session": sid})
        wait_for(lambda: any(e["state"] == "RSS_CANCELLED" for e in [bob.event()]),
                 "bob to see the end")
        bob.close()
        bob = self.client("bob", "phone")
        bob.no_message(0.3)
        # A device that first said hello after the end; a session never invited.
        s2 = alice.call("session.create", {"invitee": "bob"})["session"]
        alice.call("session.invite", {"session": s2})
        alice.call("session.cancel", {"session": s2})
        self.assertEqual(self.client("bob", "tablet").call("session.outcomes")["outcomes"], [])
        s3 = alice.call("session.create", {"invitee": "carol"})["session"]
        self.client("carol", "desk").close()
        alice.call("session.cancel", {"session": s3})
        carol = self.client("carol", "desk")
        carol.no_message(0.3)
        # A device the daemon assigned names one connection: no outcomes.
        self.assertNotIn("outcomes_dropped", self.client("bob").hello("bob"))

    def test_bounded_per_user(self):
        alice, bob = self.client("alice", "laptop"), self.client("bob", "phone")
        sids = [alice.call("session.create", {"invitee": "bob", "topic": "t%d" % i})["session"]
                for i in range(5)]
        for sid in sids:
            alice.call("session.invite", {"session": sid})
        bob.close()
        for sid in sids:  # five end while bob's phone is away; three are kept
            alice.call("session.cancel", {"session": sid})
        bob = self.client()
        self.assertEqual(bob.hello("bob", "phone")["outcomes_dropped"], 2)
        got = [bob.note(method="session.outcome")["params"]["session"] for _ in range(3)]
        self.assertEqual(got, sids[2:])  # the oldest dropped first
        bob.close()
        self.assertEqual(self.client().hello("bob", "phone")["outcomes_dropped"], 0)


class LostWithItsConnection(DaemonTest):
    """The final event counts as learned once written to the device, not once queued.

    The phone speaks over a unix socket: what the kernel holds for it is
    fixed there, so once the daemon's output to it backs up it stays backed
    up. Over loopback TCP the kernel's buffers grow and shrink on their own
    (send buffer autotuning, a receive queue collapsed), and could take the
    end after all."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rendezvous-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "rendezvousd.sock")
        self.daemon_args = ("--max-pending", "256k", "--admin", "root", "--max-user-bytes", "0",
                            "--listen", "unix:" + self.path)
        super().setUp()

    def test_final_event_dropped_unsent_comes_as_an_outcome(self):
        alice, root = self.client("alice", "laptop"), self.client("root")
        phone = self.client("bob", "phone", unix=self.path)
        phone.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(alice, phone, "RSS_INVITATION")
        fill = lifecycle_to(alice, phone, "RSS_ACCEPTED")
        # The phone stops reading: context data backs its output up.
        conns = root.call("admin.connections", {"user": "bob"})["connections"]
        [conn] = [c["connection"] for c in conns]

        def unsent():
            for c in root.call("admin.connections", {"user": "bob"})["connections"]:
                if c["connection"] == conn:
                    return c["unsent_bytes"]
            return None

        blob = "x" * 8000
        for _ in range(4000):
            if unsent() >= 32768:
                break
            alice.call("session.send", {"session": fill, "data": blob})
        else:
            self.fail("the phone's output never backed up")
        # Its end is queued behind what the phone has not read...
        alice.call("session.cancel", {"session": sid})
        # ...and dropped with it when the phone is cut off.
        for _ in range(4000):
            r = alice.response(alice.request("session.send", {"session": fill, "data": blob}))
            if "error" in r:
                break
        wait_for(lambda: unsent() is None, "the phone to be cut off")
        phone.close()
        phone = self.client("bob", "phone", unix=self.path)
        o = phone.note(method="session.outcome")["params"]
        while o["session"] != sid:  # the other session may have ended too
            o = phone.note(method="session.outcome")["params"]
        self.assertEqual((o["state"], o["by_device"]), ("RSS_CANCELLED", "laptop"))


class AfterLinger(DaemonTest):
    daemon_args = ("--linger", "0.2")

    def test_outcome_outlives_the_session(self):
        sid = ended_while_away(self)
        probe = self.client("alice", "laptop")

        def freed():
            r = probe.response(probe.request("session.get", {"session": sid}))
            return r.get("error", {}).get("code") == 4004

        wait_for(freed, "the ended session to be freed (--linger)")
        bob = self.client("bob", "phone")
        self.assertEqual(bob.note(method="session.outcome")["params"]["session"], sid)


class Retention(DaemonTest):
    daemon_args = ("--outcome-retention", "1", "--admin", "root")

    def outcomes_stats(self):
        return self.client("root").call("admin.stats")["outcomes"]

    def test_a_device_not_seen_is_forgotten(self):
        state = tempfile.mkdtemp(prefix="rendezvous-state-")
        self.addCleanup(shutil.rmtree, state)
        self.restart(*self.daemon_args, "--state-dir", state)
        self.client("bob", "tablet").close()
        self.client("bob", "phone")  # stays
        self.assertEqual(self.outcomes_stats()["devices"], 2)
        wait_for(lambda: self.outcomes_stats()["devices"] == 1, "the tablet to be forgotten")
        # Forgotten: what ends now is not kept for it, in memory or in the store.
        alice = self.client("alice", "laptop")
        sid = alice.call("session.create", {"invitee": "bob"})["session"]
        alice.call("session.invite", {"session": sid})
        alice.call("session.cancel", {"session": sid})
        self.assertEqual(self.outcomes_stats(), {"kept": 2, "devices": 2, "sent": 0, "dropped": 0})
        # (kept for bob's phone and alice's laptop, neither subscribed)
        for c in self.clients:
            c.close()
        # Restarted with a long retention: what the store holds stays put.
        self.restart("--outcome-retention", "3600", "--admin", "root", "--state-dir", state)
        self.assertEqual(self.outcomes_stats(), {"kept": 2, "devices": 2, "sent": 0, "dropped": 0})
        tablet = self.client("bob", "tablet")  # known again from now on
        tablet.no_message(0.3)
        self.assertEqual(self.outcomes_stats()["devices"], 3)

    def test_a_connected_device_is_remembered(self):
        tablet = self.client("bob", "tablet")  # connected, not subscribed
        sweeps = self.client("carol", "desk")
        sweeps.close()
        wait_for(lambda: self.outcomes_stats()["devices"] == 1, "carol's desk to be forgotten")
        alice = self.client("alice", "laptop")
        sid = alice.call("session.create", {"invitee": "bob"})["session"]
        alice.call("session.invite", {"session": sid})
        alice.call("session.cancel", {"session": sid})
        self.assertEqual([o["session"] for o in tablet.call("session.outcomes")["outcomes"]], [sid])

    def test_forgotten_after_retention(self):
        ended_while_away(self)
        time.sleep(1.5)  # retention is the clock
        bob = self.client("bob", "phone")
        bob.no_message(0.3)
        self.assertEqual(bob.call("session.outcomes")["outcomes"], [])


class InRedis:
    """The same tests with the sessions shared through Redis (one node): the transition
    script keeps the outcomes there (PROTOCOL.md 4.8 holds across nodes)."""

    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.stop)
        self.daemon_args = tuple(self.daemon_args) + ("--store", self.redis.url)
        super().setUp()


class OutcomesInRedis(InRedis, Outcomes):
    pass


class AfterLingerInRedis(InRedis, AfterLinger):
    pass


class RetentionInRedis(InRedis, DaemonTest):
    daemon_args = ("--outcome-retention", "1")

    def test_forgotten_after_retention(self):
        Retention.test_forgotten_after_retention(self)


if __name__ == "__main__":
    main()

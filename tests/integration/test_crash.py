#!/usr/bin/env python3
"""SIGKILL under load, again and again: nothing acknowledged is lost.

Each round starts the daemon on the same store, runs lifecycles from many
clients at once while an observer follows every event, kills the daemon
with SIGKILL at a random moment, restarts it, and checks:
- every transition whose reply a client received is in the store (its
  event, with that session and state, or a later state of the session);
- event ids are unique, increasing and without gaps, across every restart;
- every event the observer was sent before the kill is in the store as sent;
- the observer, resuming with `since`, gets exactly the events it missed.

RV_CRASH_ROUNDS sets the number of rounds (20 by default).
"""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from rvtest import DAEMON, Client, Daemon, Redis, RpcError, SANITIZER_MARKS, main

ROUNDS = int(os.environ.get("RV_CRASH_ROUNDS", "20"))
WORKERS = 8
# No deadline may fire while the rounds run (they would add events of their own).
ARGS = ("--observer", "olga", "--history", "1000000", "--linger", "3600",
        "--invite-ttl", "86400", "--peer-grace", "86400", "--max-sessions-per-user", "100000")

LIFECYCLE = [
    ("session.invite", "inviter"),
    ("session.accept", "invitee"),
    ("session.connect", "inviter"),
    ("session.connect", "invitee"),
    ("session.terminate", "inviter"),
]


class Worker(threading.Thread):
    """One inviter and one invitee running lifecycles until the daemon dies."""

    def __init__(self, port, n, acked):
        super().__init__(daemon=True)
        self.port, self.n, self.acked = port, n, acked

    def run(self):
        inviter = invitee = None
        try:
            inviter = Client(self.port)
            invitee = Client(self.port)
            inviter.hello("a%d" % self.n)
            invitee.hello("b%d" % self.n)
            who = {"inviter": inviter, "invitee": invitee}
            while True:
                rec = inviter.call("session.create", {"invitee": "b%d" % self.n,
                                                      "data": {"n": self.n}})
                self.acked.append(rec)
                for method, role in LIFECYCLE:
                    rec = who[role].call(method, {"session": rec["session"]})
                    self.acked.append(rec)
        except (ConnectionError, OSError, TimeoutError, RpcError, ValueError):
            pass  # the daemon was killed (or a reply was cut off by it)
        for c in (inviter, invitee):
            if c is not None:
                c.close()


class Observer(threading.Thread):
    """Follows every event; keeps what it was sent, in order."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client, self.events = client, []

    def run(self):
        try:
            while True:
                self.events.append(self.client.event(timeout=30))
        except (ConnectionError, OSError, TimeoutError, ValueError):
            return



def unmarked(ev):
    """A replayed event as it went out live: without its "replay": true mark."""
    assert ev.pop("replay") is True, ev
    return ev

class Crash(unittest.TestCase):
    rounds = ROUNDS

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rendezvous-crash-")
        self.daemon = None

    def tearDown(self):
        if self.daemon is not None:
            self.daemon.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        self.daemon = Daemon(*ARGS, state_dir=self.dir)
        log = self.daemon.read_log()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-4000:])
        return self.daemon

    def replay(self, since=0):
        """Every event the store holds after since, through a fresh observer."""
        c = Client(self.daemon.port)
        c.hello("olga")
        r = c.call("subscribe", {"all": True, "since": since})
        events = [unmarked(c.event()) for _ in range(r["last_event"] - since)]
        c.no_message(0.1)
        c.close()
        return r["last_event"], events

    def test_sigkill_under_load(self):
        rng = random.Random(os.environ.get("RV_CRASH_SEED"))
        seen = {}        # event id -> params, as the observers were sent them
        last_seen = 0    # the newest event id any earlier round's observer saw
        total_acked = 0
        for rnd in range(self.rounds):
            d = self.start()
            # Resume where the last observer left off: exactly the events it missed.
            obs = Client(d.port)
            obs.hello("olga")
            r = obs.call("subscribe", {"all": True, "since": last_seen})
            missed = [unmarked(obs.event()) for _ in range(r["last_event"] - last_seen)]
            self.assertEqual([e["event"] for e in missed],
                             list(range(last_seen + 1, r["last_event"] + 1)))
            for e in missed:
                self.assertEqual(seen.setdefault(e["event"], e), e)
            observer = Observer(obs)
            observer.start()

            acked = []
            workers = [Worker(d.port, rnd * WORKERS + i, acked) for i in range(WORKERS)]
            for w in workers:
                w.start()
            time.sleep(rng.uniform(0.1, 0.8))
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            for w in workers:
                w.join(30)
            observer.join(30)
            obs.close()
            d.stop()
            self.daemon = None
            total_acked += len(acked)

            # Events are numbered 1, 2, 3... in the order they were sent.
            got = observer.events
            ids = [e["event"] for e in got]
            if got:
                self.assertEqual(ids, list(range(ids[0], ids[-1] + 1)), "round %d" % rnd)
                self.assertEqual(ids[0], r["last_event"] + 1)
            for e in got:
                self.assertEqual(seen.setdefault(e["event"], e), e)
            if got:
                last_seen = ids[-1]
            else:
                last_seen = r["last_event"]

            # After the restart: everything acknowledged is there (this round's
            # events all follow round_start; earlier ones were checked before).
            round_start = r["last_event"]
            d = self.start()
            last, history = self.replay(round_start)
            self.assertEqual([e["event"] for e in history],
                             list(range(round_start + 1, last + 1)))
            by_id = {e["event"]: e for e in history}
            for i, e in seen.items():
                if i > round_start:
                    self.assertEqual(by_id.get(i), e, "event %d was sent, then lost" % i)
            latest = {}
            for e in history:
                latest[e["session"]] = e
            for rec in acked:
                e = by_id.get(rec["event"])
                self.assertIsNotNone(e, "acknowledged %s lost" % rec)
                self.assertEqual(e["session"], rec["session"])
                if rec["event"] == latest[rec["session"]]["event"]:
                    # The newest event: the session must still be as acknowledged
                    # (a RECORDED connect changes flags, not the event).
                    c = Client(d.port)
                    c.hello("olga")
                    now = c.call("session.get", {"session": rec["session"]})
                    c.close()
                    self.assertEqual(now["state"], rec["state"])
                    if "confirmed" in rec:
                        for role, yes in rec["confirmed"].items():
                            if yes:
                                self.assertTrue(now["confirmed"][role], (rec, now))
                else:
                    self.assertEqual(e["state"], rec["state"])
            status, log = d.stop()
            self.daemon = None
            self.assertEqual(status, 0, log[-4000:])
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, log, log[-4000:])
        self.assertGreater(total_acked, self.rounds * 10, "the load hardly ran")
        self.check_store()
        print("%d rounds, %d acknowledged replies checked, %d events" %
              (self.rounds, total_acked, len(seen)))

    def check_store(self):
        check = subprocess.run([DAEMON, "--state-dir", self.dir, "--check-store"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn(": ok", check.stdout)


class CrashOneRedisNode(Crash):
    """The same, with the daemon a node on a Redis store (the node is killed, not Redis)."""

    rounds = max(ROUNDS // 2, 1)

    def setUp(self):
        super().setUp()
        self.redis = Redis("--appendonly", "yes", "--appendfsync", "always")
        self.addCleanup(self.redis.stop)

    def start(self):
        self.daemon = Daemon(*ARGS, "--store", self.redis.url)
        log = self.daemon.read_log()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-4000:])
        return self.daemon

    def check_store(self):
        pass  # Redis's own: nothing of the daemon's to verify offline


if __name__ == "__main__":
    main()

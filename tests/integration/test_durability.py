#!/usr/bin/env python3
"""The store: recovery at start, damaged and foreign files, torn WAL, full disks."""
import http.client
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

from rvtest import DAEMON, TIMEOUT, Client, Daemon, RpcError, SANITIZER_MARKS, main

APPLICATION_ID = 0x5244565A


def check_store(state_dir):
    p = subprocess.run([DAEMON, "--state-dir", state_dir, "--check-store"],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def start_fails(state_dir, *args):
    """Start the daemon expecting it to refuse; returns (status, output)."""
    p = subprocess.run([DAEMON, "--listen", "127.0.0.1:0", "--state-dir", state_dir, *args],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class StoreTest(unittest.TestCase):
    """A state directory of its own; daemons started on it are stopped by pid."""

    args = ("--observer", "olga")

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rendezvous-durability-")
        self.db = os.path.join(self.dir, "rendezvous.db")
        self.daemons = []
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        for d in self.daemons:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *extra, preexec_fn=None):
        d = Daemon(*self.args, *extra, state_dir=self.dir, preexec_fn=preexec_fn)
        self.daemons.append(d)
        return d

    def stop(self, d, sig=signal.SIGTERM):
        status, log = d.stop(sig)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-4000:])
        if sig == signal.SIGTERM:
            self.assertEqual(status, 0, log[-4000:])
        return log

    def client(self, d, user, device=None):
        c = Client(d.port)
        c.hello(user, device)
        self.clients.append(c)
        return c


class Recovery(StoreTest):
    def populate(self, d):
        """Sessions in every kind of state; returns {sid: record as olga sees it}."""
        a, b = self.client(d, "alice"), self.client(d, "bob")
        sids = []
        s = a.call("session.create", {"invitee": "bob", "data": {"topic": "printer", "n": [1, 2]}})
        sids.append(s["session"])                                   # RSS_READY, with data
        s = a.call("session.create", {"invitee": "bob", "ttl": 600})
        a.call("session.invite", {"session": s["session"]})
        sids.append(s["session"])                                   # RSS_INVITATION
        s = a.call("session.create", {"invitee": "bob"})
        a.call("session.invite", {"session": s["session"]})
        b.call("session.accept", {"session": s["session"]})
        b.call("session.connect", {"session": s["session"]})
        sids.append(s["session"])                                   # ACCEPTED, invitee confirmed
        s = a.call("session.create", {"invitee": "bob"})
        for c, m in ((a, "invite"), (b, "accept"), (a, "connect"), (b, "connect")):
            c.call("session." + m, {"session": s["session"]})
        sids.append(s["session"])                                   # RSS_CONNECTED
        s = a.call("session.create", {"invitee": "bob"})
        a.call("session.invite", {"session": s["session"]})
        b.call("session.decline", {"session": s["session"], "reason": "busy \u00e9"})
        sids.append(s["session"])                                   # RSS_DECLINED, lingering
        s = a.call("session.create", {"invitee": "bob"})
        a.call("session.terminate", {"session": s["session"], "code": 7,
                                     "data": {"why": "done", "x": None}})
        sids.append(s["session"])                                   # terminated with app_data
        o = self.client(d, "olga")
        return {sid: o.call("session.get", {"session": sid}) for sid in sids}

    def snapshot(self, d, sids):
        o = self.client(d, "olga")
        return {sid: o.call("session.get", {"session": sid}) for sid in sids}

    def test_restart_keeps_sessions_and_events(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with self.subTest(stop=sig.name):
                shutil.rmtree(self.dir)
                d = self.start()
                before = self.populate(d)
                obs = self.client(d, "olga")
                last = obs.call("subscribe", {"all": True, "since": 0})["last_event"]
                events = [obs.event() for _ in range(last)]
                self.stop(d, sig)
                d = self.start()
                self.assertEqual(self.snapshot(d, before), before)
                # The history replays as it was sent, and ids continue.
                o = self.client(d, "olga")
                r = o.call("subscribe", {"all": True, "since": 0})
                self.assertEqual(r["last_event"], last)
                self.assertEqual([o.event() for _ in range(last)], events)
                a = self.client(d, "alice")
                s = a.call("session.create", {"invitee": "carol"})
                self.assertEqual(s["event"], last + 1)
                self.assertEqual(o.event()["event"], last + 1)
                # alice's per-user listing keeps creation order.
                listed = [x["session"] for x in a.call("session.list", {})["sessions"]]
                self.assertEqual(listed, list(before) + [s["session"]])
                self.stop(d)
                code, out = check_store(self.dir)
                self.assertEqual(code, 0, out)
                self.assertIn("7 sessions (5 live, 2 ended)", out)
                self.assertEqual(os.listdir(self.dir), ["rendezvous.db"])  # nothing added

    def test_resume_since_across_restart(self):
        d = self.start()
        a, b = self.client(d, "alice"), self.client(d, "bob", "phone")
        b.call("subscribe", {"user": "bob"})
        s = a.call("session.create", {"invitee": "bob"})["session"]
        a.call("session.invite", {"session": s})
        seen = b.event()["event"]
        b.call("session.accept", {"session": s})
        a.call("session.connect", {"session": s})
        self.stop(d, signal.SIGKILL)
        d = self.start()
        b = self.client(d, "bob", "phone")  # the device that accepted
        r = b.call("subscribe", {"user": "bob", "since": seen})
        got = [b.event() for _ in range(r["last_event"] - seen)]
        self.assertEqual([(e["prev"], e["state"]) for e in got],
                         [("RSS_INVITATION", "RSS_ACCEPTED")])
        b.no_message(0.3)
        b.call("session.connect", {"session": s})
        self.assertEqual(b.event()["state"], "RSS_CONNECTED")

    def test_deadlines_survive(self):
        d = self.start("--peer-grace", "3")
        a, b = self.client(d, "alice"), self.client(d, "bob")
        short = a.call("session.create", {"invitee": "bob", "ttl": 1})["session"]
        engaged = a.call("session.create", {"invitee": "bob"})["session"]
        a.call("session.invite", {"session": engaged})
        last = b.call("session.accept", {"session": engaged})["event"]
        self.stop(d, signal.SIGKILL)
        time.sleep(3.5)  # past the short ttl, and longer than the grace period
        t0 = time.monotonic()
        d = self.start("--peer-grace", "3")
        o = self.client(d, "olga")
        o.call("subscribe", {"all": True, "since": last})
        # The ttl is absolute: expired while down, it ends right after the start.
        e = o.event()
        self.assertEqual((e["session"], e["state"], e["reason"]),
                         (short, "RSS_TERMINATED", "expired"))
        # The grace period starts at start-up: not over yet, though the daemon was
        # down for longer than it.
        if time.monotonic() - t0 < 2.5:
            self.assertEqual(o.call("session.get", {"session": engaged})["state"],
                             "RSS_ACCEPTED")
        e = o.event(timeout=TIMEOUT + 3)
        self.assertEqual((e["session"], e["reason"]), (engaged, "peer_lost"))
        self.assertGreaterEqual(time.monotonic() - t0, 2.9)

    def test_reconnecting_party_keeps_session(self):
        d = self.start("--peer-grace", "2")
        a, b = self.client(d, "alice", "laptop"), self.client(d, "bob", "phone")
        s = a.call("session.create", {"invitee": "bob"})["session"]
        a.call("session.invite", {"session": s})
        b.call("session.accept", {"session": s})
        self.stop(d, signal.SIGKILL)
        d = self.start("--peer-grace", "2")
        # The engaged devices come back (the store kept which they are).
        a, b = self.client(d, "alice", "laptop"), self.client(d, "bob", "phone")
        time.sleep(2.5)
        self.assertEqual(a.call("session.get", {"session": s})["state"], "RSS_ACCEPTED")

    def test_devices_survive_restart(self):
        """Which device created, answered and last acted is kept; the rules hold after."""
        d = self.start()
        a, phone = self.client(d, "alice", "laptop"), self.client(d, "bob", "phone")
        s = a.call("session.create", {"invitee": "bob"})["session"]
        a.call("session.invite", {"session": s})
        phone.call("session.accept", {"session": s})
        self.stop(d, signal.SIGKILL)
        d = self.start()
        a, laptop = self.client(d, "alice", "laptop"), self.client(d, "bob", "laptop")
        rec = a.call("session.get", {"session": s})
        self.assertEqual((rec["inviter_device"], rec["answered_by"], rec["by_device"]),
                         ("laptop", "phone", "phone"))
        with self.assertRaises(RpcError) as cm:
            laptop.call("session.connect", {"session": s})
        self.assertEqual(cm.exception.error["data"]["reason"], "answered_elsewhere")
        phone = self.client(d, "bob", "phone")
        self.assertEqual(phone.call("session.connect", {"session": s})["by_device"], "phone")

    def test_topic_and_glare_survive_restart(self):
        d = self.start()
        a, b = self.client(d, "alice"), self.client(d, "bob")
        s1 = a.call("session.create", {"invitee": "bob", "topic": "call"})["session"]
        s2 = b.call("session.create", {"invitee": "alice", "topic": "call"})["session"]
        a.call("session.invite", {"session": s1})
        with self.assertRaises(RpcError):
            b.call("session.invite", {"session": s2})
        self.stop(d, signal.SIGKILL)
        d = self.start()
        a, b = self.client(d, "alice"), self.client(d, "bob")
        rec = a.call("session.get", {"session": s2})
        self.assertEqual((rec["topic"], rec["reason"], rec["replaced_by"]), ("call", "glare", s1))
        self.assertEqual(b.call("session.get", {"session": s1})["topic"], "call")
        # The invitation that stood still wins against a new crossing one.
        s3 = b.call("session.create", {"invitee": "alice", "topic": "call"})["session"]
        with self.assertRaises(RpcError) as cm:
            b.call("session.invite", {"session": s3})
        self.assertEqual(cm.exception.code, 4091)

    def test_idempotency_keys_survive_restart(self):
        d = self.start()
        a = self.client(d, "alice")
        first = a.call("session.create", {"invitee": "bob", "idempotency_key": "k"})
        self.stop(d, signal.SIGKILL)
        d = self.start()
        a = self.client(d, "alice")
        self.assertEqual(a.call("session.create", {"invitee": "bob", "idempotency_key": "k"}),
                         first)
        self.assertEqual(len(a.call("session.list")["sessions"]), 1)
        with self.assertRaises(RpcError) as cm:
            a.call("session.create", {"invitee": "carol", "idempotency_key": "k"})
        self.assertEqual(cm.exception.code, 4022)

    def test_outcomes_survive_restart(self):
        d = self.start()
        a, b = self.client(d, "alice", "laptop"), self.client(d, "bob", "phone")
        s = a.call("session.create", {"invitee": "bob"})["session"]
        a.call("session.invite", {"session": s})
        b.close()
        a.call("session.cancel", {"session": s})
        self.stop(d, signal.SIGKILL)
        d = self.start()
        b = self.client(d, "bob", "phone")
        self.assertEqual(b.note(method="session.outcome")["params"]["session"], s)
        self.assertEqual(b.call("session.ack", {"sessions": [s]}), {"acked": 1})
        self.stop(d, signal.SIGKILL)
        d = self.start()
        b = self.client(d, "bob", "phone")
        self.assertEqual(b.call("session.outcomes")["outcomes"], [])

    def test_lingering_session_is_freed_after_restart(self):
        d = self.start("--linger", "1")
        a = self.client(d, "alice")
        s = a.call("session.create", {"invitee": "bob"})["session"]
        a.call("session.cancel", {"session": s})
        self.stop(d, signal.SIGKILL)
        d = self.start("--linger", "1")
        a = self.client(d, "alice")
        self.assertEqual(a.call("session.get", {"session": s})["state"], "RSS_CANCELLED")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                a.call("session.get", {"session": s})
            except RpcError as e:
                self.assertEqual(e.code, 4004)
                break
            time.sleep(0.1)
        else:
            self.fail("the lingering session was never freed")
        self.stop(d)
        # Freed for good: not back after another restart.
        d = self.start("--linger", "1")
        self.assertEqual(self.client(d, "alice").error("session.get", {"session": s})["code"],
                         4004)

    def test_history_age(self):
        d = self.start("--history-age", "1")
        a = self.client(d, "alice")
        a.call("session.create", {"invitee": "bob"})
        self.stop(d, signal.SIGKILL)
        time.sleep(1.2)
        d = self.start("--history-age", "1")
        o = self.client(d, "olga")
        err = o.error("subscribe", {"all": True, "since": 0})
        self.assertEqual(err["code"], 4100)
        # The counter is kept even though the events are gone.
        self.assertEqual(o.call("subscribe", {"all": True})["last_event"], 1)

    def test_memory_store_keeps_nothing(self):
        d = self.start("--store", "memory")
        a = self.client(d, "alice")
        s = a.call("session.create", {"invitee": "bob"})["session"]
        self.stop(d)
        self.assertEqual(os.listdir(self.dir), [])
        d = self.start("--store", "memory")
        self.assertEqual(self.client(d, "alice").error("session.get", {"session": s})["code"],
                         4004)

    def test_store_path_and_modes(self):
        d = self.start("--store", "sqlite:other.db")
        self.client(d, "alice").call("session.create", {"invitee": "bob"})
        path = os.path.join(self.dir, "other.db")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(path + "-wal").st_mode & 0o777, 0o600)
        self.stop(d)
        self.assertFalse(os.path.exists(path + "-wal"))  # checkpointed at exit
        # A second daemon on a store in use refuses to start.
        d = self.start()
        code, out = start_fails(self.dir)
        self.assertEqual(code, 1, out)
        self.assertIn("in use by another process", out)
        code, out = check_store(self.dir)
        self.assertEqual(code, 1, out)
        self.assertIn("in use by another process", out)
        self.stop(d)
        # Checking a store that is not there creates nothing.
        missing = os.path.join(self.dir, "missing")
        code, out = check_store(missing)
        self.assertEqual(code, 1, out)
        self.assertIn("No such file or directory", out)
        self.assertFalse(os.path.exists(missing))
        # A state directory that cannot be created.
        code, out = start_fails(os.path.join(self.db, "sub"))
        self.assertEqual(code, 1, out)
        self.assertIn("cannot create the state directory", out)


class Refusals(StoreTest):
    """Damaged, foreign and newer files stop the daemon; none is written over."""

    def make_store(self, sessions=30):
        d = self.start()
        a = self.client(d, "alice")
        for i in range(sessions):
            s = a.call("session.create", {"invitee": "bob", "data": {"pad": "x" * 300}})
            a.call("session.invite", {"session": s["session"]})
        self.stop(d)
        self.clients.clear()

    def assert_refused(self, why):
        before = file_bytes(self.db)
        code, out = start_fails(self.dir)
        self.assertEqual(code, 1, out)
        self.assertIn(why, out)
        self.assertEqual(file_bytes(self.db), before, "the file was changed")
        return out

    def test_garbage_file(self):
        with open(self.db, "wb") as f:
            f.write(os.urandom(8192))
        self.assert_refused("file is not a database")
        code, out = check_store(self.dir)
        self.assertEqual(code, 1, out)

    def test_foreign_database(self):
        con = sqlite3.connect(self.db)
        con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        con.execute("INSERT INTO accounts VALUES (1, 100)")
        con.commit()
        con.close()
        self.assert_refused("not a rendezvous store")

    def test_newer_schema(self):
        self.make_store(1)
        con = sqlite3.connect(self.db)
        con.execute("PRAGMA user_version = 99")
        con.commit()
        con.close()
        self.assert_refused("schema version 99 is newer")

    def test_corrupted_pages(self):
        self.make_store()
        code, out = check_store(self.dir)
        self.assertEqual(code, 0, out)
        data = bytearray(file_bytes(self.db))
        page = 4096
        self.assertGreater(len(data), 4 * page)
        rng = random.Random(1)
        for p in range(2, len(data) // page):  # every page but the header page
            for _ in range(16):
                off = p * page + rng.randrange(page)
                data[off] ^= 0xFF
        with open(self.db, "wb") as f:
            f.write(data)
        self.assert_refused("damaged")
        code, out = check_store(self.dir)
        self.assertEqual(code, 1, out)

    def test_bad_row(self):
        self.make_store(2)
        con = sqlite3.connect(self.db)
        con.execute("UPDATE sessions SET state = 'RSS_BOGUS' WHERE seq = 1")
        con.commit()
        con.close()
        out = self.assert_refused("cannot recover")
        self.assertIn("session 1 is damaged", out)
        code, out = check_store(self.dir)
        self.assertEqual(code, 1, out)


class TornJournal(StoreTest):
    def journal(self, state_dir):
        """The journal's segments in state_dir, in order."""
        return sorted(n for n in os.listdir(state_dir) if n.startswith("rendezvous.db-jnl-"))

    def test_journal_cut_at_many_offsets(self):
        """The journal as a kill during a write would leave it: every commit whole or absent,
        at once (the daemon reads the journal at start-up and folds it in afterwards)."""
        d = self.start()
        a, b = self.client(d, "alice"), self.client(d, "bob")
        [name] = self.journal(self.dir)
        jnl = os.path.join(self.dir, name)
        commits = [(0, 0)]  # (journal size after the commit, last event id)
        for i in range(12):
            s = a.call("session.create", {"invitee": "bob", "data": {"i": i, "pad": "y" * 500}})
            commits.append((os.path.getsize(jnl), s["event"]))
            s = a.call("session.invite", {"session": s["session"]})
            commits.append((os.path.getsize(jnl), s["event"]))
            b.call("session.decline", {"session": s["session"]})
            commits.append((os.path.getsize(jnl), s["event"] + 1))
        self.stop(d, signal.SIGKILL)
        full = file_bytes(jnl)
        tables = {n: file_bytes(os.path.join(self.dir, n))
                  for n in os.listdir(self.dir) if n in ("rendezvous.db", "rendezvous.db-wal")}
        self.assertEqual(len(full), commits[-1][0])
        sizes = [size for size, _ in commits]
        self.assertEqual(sizes, sorted(set(sizes)), "a commit wrote nothing to the journal")
        offsets = {0, 1, 15, 16, 17, len(full)}
        rng = random.Random(2)
        for size, _ in commits[1:]:
            for delta in (-300, -17, -16, -1, 0, 1, 16, 17):
                offsets.add(min(max(size + delta, 0), len(full)))
            offsets.add(rng.randrange(len(full)))
        copy = os.path.join(self.dir, "copy")

        def lay_out(off):
            shutil.rmtree(copy, ignore_errors=True)
            os.mkdir(copy)
            for n, data in tables.items():
                with open(os.path.join(copy, n), "wb") as f:
                    f.write(data)
            with open(os.path.join(copy, name), "wb") as f:
                f.write(full[:off])

        checked = 0
        for off in sorted(offsets):
            lay_out(off)
            before = sorted(os.listdir(copy))
            # Every commit that is whole in what is left, and nothing after it.
            want = max(ev for size, ev in commits if size <= off)
            code, out = check_store(copy)
            self.assertEqual(code, 0, "offset %d: %s" % (off, out))
            self.assertIn("last event %d: ok" % want, out, "offset %d" % off)
            self.assertEqual(os.path.getsize(os.path.join(copy, name)), off,
                             "the check changed the journal")
            self.assertEqual(sorted(os.listdir(copy)), before)
            checked += 1
        # A damaged frame that is not the last is damage, not a torn tail: refused.
        lay_out(len(full))
        with open(os.path.join(copy, name), "r+b") as f:
            f.seek(commits[3][0] + 20)
            f.write(b"\xff\xff")
        with open(os.path.join(copy, name[:-16] + "%016x" % 1000), "wb") as f:
            f.write(b"")
        code, out = start_fails(copy)
        self.assertEqual(code, 1, out)
        self.assertIn("damaged", out)
        # The daemon itself starts on a torn copy, serves what it holds, and folds it in.
        off = commits[5][0] + 100
        lay_out(off)
        d = Daemon(*self.args, state_dir=copy)
        self.daemons.append(d)
        o = self.client(d, "olga")
        r = o.call("subscribe", {"all": True, "since": 0})
        self.assertEqual(r["last_event"], commits[5][1])
        self.assertEqual([o.event()["event"] for _ in range(r["last_event"])],
                         list(range(1, r["last_event"] + 1)))
        self.assertIn("never whole", d.wait_log("cut off").string)
        # Folded into the tables in the background, then removed.
        deadline = time.monotonic() + TIMEOUT
        while name in os.listdir(copy):
            self.assertLess(time.monotonic(), deadline, "the journal was never folded in")
            time.sleep(0.05)
        self.assertGreater(checked, 50)


class Segments(StoreTest):
    def test_segments_are_folded_in(self):
        """Small segments (a test setting): each is folded into the tables and removed,
        while the daemon runs; a kill at any moment loses nothing acknowledged."""
        env = {**os.environ, "RV_TEST_SEGMENT_BYTES": "2048"}
        acked, last = {}, 0
        for round in range(3):
            d = Daemon(*self.args, state_dir=self.dir, env=env)
            self.daemons.append(d)
            a, b = self.client(d, "alice"), self.client(d, "bob")
            for i in range(60):
                s = a.call("session.create", {"invitee": "bob", "data": {"r": round, "i": i}})
                acked[s["session"]] = "RSS_READY"
                if i % 3 == 0:
                    a.call("session.invite", {"session": s["session"]})
                    b.call("session.decline", {"session": s["session"]})
                    acked[s["session"]] = "RSS_DECLINED"
                last = max(last, s["event"] + (2 if i % 3 == 0 else 0))
            # The applier keeps up: finished segments go, one or two are left.
            deadline = time.monotonic() + TIMEOUT
            while len([n for n in os.listdir(self.dir) if "-jnl-" in n]) > 2:
                self.assertLess(time.monotonic(), deadline, "segments were never folded in")
                time.sleep(0.05)
            self.stop(d, signal.SIGKILL)
        d = self.start()
        o = self.client(d, "olga")
        r = o.call("subscribe", {"all": True, "since": 0})
        self.assertEqual(r["last_event"], last)
        self.assertEqual([o.event()["event"] for _ in range(last)], list(range(1, last + 1)))
        a = self.client(d, "alice")
        listed = a.call("session.list", {"limit": 1000})["sessions"]
        self.assertEqual({s["session"]: s["state"] for s in listed},
                         {k: v for k, v in acked.items()})
        log = self.stop(d)
        self.assertNotIn("error", log)
        self.assertEqual(sorted(os.listdir(self.dir)), ["rendezvous.db"])


class DiskFull(StoreTest):
    args = ("--observer", "olga", "--metrics", "127.0.0.1:0")

    def http(self, d, path):
        """(status, body) of a GET on the daemon's metrics address."""
        port = int(d.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/").group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def fill_until_refused(self, d, a):
        """Changes until one fails with 5003; returns (acked sessions, failed error)."""
        acked = {}
        for i in range(5000):
            try:
                s = a.call("session.create", {"invitee": "bob", "data": {"pad": "z" * 2000}})
            except RpcError as e:
                self.assertEqual(e.code, 5003, e.error)
                return acked, e.error
            acked[s["session"]] = s
        self.fail("the store never filled up")

    def check_failure_and_recovery(self, d, make_room, acked=None):
        a = self.client(d, "alice")
        o = self.client(d, "olga")
        o.call("subscribe", {"all": True})
        before = acked or {}
        acked, err = self.fill_until_refused(d, a)
        acked = {**before, **acked}
        self.assertIn("nothing was applied", err["message"])
        # Refused up front for a moment, reads keep working, memory matches what was saved.
        err = a.error("session.create", {"invitee": "bob"})
        self.assertEqual(err["code"], 5003)
        self.assertIn("retry_after_ms", err["data"])
        # Not ready while the store refuses writes; the numbers say why.
        self.assertEqual(self.http(d, "/readyz")[0], 503)
        self.assertEqual(self.http(d, "/healthz")[0], 200)
        metrics = self.http(d, "/metrics")[1]
        self.assertRegex(metrics, r"\nrendezvous_store_commit_failures_total [1-9]")
        self.assertRegex(metrics, r'\nrendezvous_errors_total\{code="5003"\} [2-9]')
        listed = a.call("session.list", {"limit": 1000})["sessions"]
        self.assertEqual([s["session"] for s in listed], list(acked))
        # The sessions of the undone pass are not counted either.
        held = re.findall(r'\nrendezvous_sessions\{state="RSS_READY"\} (\d+)', metrics)
        self.assertEqual(held, [str(len(acked))])
        last = o.call("subscribe", {"all": True})["last_event"]
        self.assertEqual(last, max(s["event"] for s in acked.values()))
        events = [o.event()["session"] for _ in range(len(acked) - len(before))]
        self.assertEqual(events, list(acked)[len(before):])
        o.no_message(0.2)  # nothing about the change that failed
        self.assertEqual(a.call("ping"), "pong")
        # Space comes back: writes work again within a second or so.
        make_room()
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                s = a.call("session.create", {"invitee": "bob"})
                break
            except RpcError as e:
                self.assertEqual(e.code, 5003)
                self.assertLess(time.monotonic(), deadline, "writes never resumed")
                time.sleep(0.2)
        self.assertEqual(s["event"], last + 1)  # the failed change's id was never sent
        self.assertEqual(self.http(d, "/readyz"), (200, "ready\n"))
        acked[s["session"]] = s
        log = self.stop(d, signal.SIGKILL)
        self.assertIn("commit failed", log)
        d = self.start()
        a = self.client(d, "alice")
        listed = a.call("session.list", {"limit": 1000})["sessions"]
        self.assertEqual([s["session"] for s in listed], list(acked))
        return d

    def test_file_size_limit(self):
        """RLIMIT_FSIZE: writes fail with EFBIG (the daemon ignores SIGXFSZ)."""
        d = self.start()
        a = self.client(d, "alice")
        s = a.call("session.create", {"invitee": "bob"})
        limit = max(os.path.getsize(self.db), os.path.getsize(self.db + "-wal")) + 64 * 1024
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        d = self.check_failure_and_recovery(d, lambda: resource.prlimit(
            d.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)),
            {s["session"]: s})
        self.stop(d)

    def test_full_tmpfs(self):
        """A real ENOSPC on a small tmpfs (needs root and mount; skipped otherwise)."""
        mnt = tempfile.mkdtemp(prefix="rendezvous-tmpfs-")
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                               capture_output=True)
            if r.returncode != 0:
                self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
            try:
                self.dir, saved = mnt, self.dir
                self.db = os.path.join(mnt, "rendezvous.db")
                d = self.start()
                filler = os.path.join(mnt, "filler")

                def make_room():
                    os.unlink(filler)

                # Leave a little room, then let the daemon fill the rest.
                with open(filler, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 4096)
                            f.flush()
                            st = os.statvfs(mnt)
                            if st.f_bavail * st.f_frsize < 160 * 1024:
                                break
                    except OSError:
                        pass
                d = self.check_failure_and_recovery(d, make_room)
                self.stop(d)
            finally:
                for d in self.daemons:
                    if d.proc.poll() is None:
                        d.stop(signal.SIGKILL)
                self.daemons.clear()
                self.dir = saved
                subprocess.run(["umount", mnt], capture_output=True)
        finally:
            os.rmdir(mnt)


if __name__ == "__main__":
    main()

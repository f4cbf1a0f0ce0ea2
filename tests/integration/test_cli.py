#!/usr/bin/env python3
"""rendezvousctl against a live daemon: every command, human and --json output, errors."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from rvtest import CTL, Daemon, DaemonTest, Watch, free_port, main, wait_for


class Cli(DaemonTest):
    daemon_args = ("--observer", "olga", "--admin", "root")

    def ctl(self, user, *args, ok=True):
        p = super().ctl("--user", user, *args)
        if ok:
            self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def js(self, user, *args):
        return json.loads(self.ctl(user, "--json", *args).stdout)

    def test_lifecycle_json(self):
        rec = self.js("alice", "create", "bob", "--ttl", "30", "--data", '{"room":1}')
        sid = rec["session"]
        self.assertEqual((rec["state"], rec["data"], rec["expires"] - rec["created"]),
                         ("RSS_READY", {"room": 1}, 30000))
        self.assertEqual(self.js("alice", "invite", sid)["state"], "RSS_INVITATION")
        self.assertEqual(self.js("bob", "accept", sid)["state"], "RSS_ACCEPTED")
        self.assertEqual(self.js("alice", "connect", sid)["confirmed"]["inviter"], True)
        self.assertEqual(self.js("bob", "connect", sid)["state"], "RSS_CONNECTED")
        self.assertEqual(self.js("bob", "get", sid)["remote_user"], "alice")
        lst = self.js("alice", "list", "--state", "RSS_CONNECTED")
        self.assertEqual([r["session"] for r in lst["sessions"]], [sid])
        rec = self.js("alice", "terminate", sid, "--code", "4", "--data", "bye")
        self.assertEqual((rec["state"], rec["code"], rec["app_data"]), ("RSS_TERMINATED", 4, "bye"))
        self.assertEqual(self.js("alice", "ping"), "pong")

    def test_decline_cancel_and_human_output(self):
        sid = self.js("alice", "create", "bob")["session"]
        out = self.ctl("alice", "invite", sid).stdout
        self.assertRegex(out, r"(?m)^session\s+%s$" % sid)
        self.assertRegex(out, r"(?m)^state\s+RSS_INVITATION$")
        out = self.ctl("bob", "decline", sid, "--reason", "busy").stdout
        self.assertRegex(out, r"(?m)^reason\s+busy$")
        sid2 = self.js("alice", "create", "bob")["session"]
        self.assertEqual(self.js("alice", "cancel", sid2, "--reason", "x")["state"], "RSS_CANCELLED")
        out = self.ctl("alice", "list").stdout
        self.assertIn(sid, out)
        self.assertIn("RSS_DECLINED", out)

    def test_errors_exit_nonzero(self):
        p = self.ctl("alice", "get", "0" * 32, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("error 4004", p.stderr)
        sid = self.js("alice", "create", "bob")["session"]
        p = self.ctl("alice", "connect", sid, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("4009", p.stderr)
        self.assertIn("RSS_READY", p.stderr)
        p = self.ctl("alice", "--json", "connect", sid, ok=False)
        self.assertEqual(json.loads(p.stderr)["code"], 4009)
        # usage errors
        for args in (["frobnicate"], ["get"], ["get", "a", "b"], ["invite", sid, "--ttl", "3"]):
            p = self.ctl("alice", *args, ok=False)
            self.assertEqual(p.returncode, 2, args)
        # nothing listening
        p = subprocess.run([CTL, "--connect", "127.0.0.1:1", "--user", "a", "ping"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("connection", p.stderr)

    def test_send(self):
        sid = self.js("alice", "create", "bob")["session"]
        self.js("alice", "invite", sid)
        self.js("bob", "accept", sid)
        p = self.ctl("alice", "send", sid, '{"x":1}', ok=False)
        self.assertEqual(p.returncode, 1)  # bob has no live connection: 4010
        self.assertIn("4010", p.stderr)
        # Context goes to the device that accepted: the CLI's (this host's name).
        bob = self.client("bob", device=self.js("bob", "get", sid)["answered_by"])
        self.assertEqual(self.js("alice", "send", sid, '{"x":1}'), {"delivered": 1})
        self.assertEqual(bob.note(method="session.context_data")["params"]["data"], {"x": 1})
        self.assertIn("delivered to 1", self.ctl("alice", "send", sid, "plain words").stdout)
        self.assertEqual(bob.note(method="session.context_data")["params"]["data"], "plain words")

    def test_watch(self):
        env = dict(os.environ)
        w = subprocess.Popen([CTL, "--connect", "127.0.0.1:%d" % self.daemon.port, "--user", "olga",
                              "--json", "watch", "--all"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        h = subprocess.Popen([CTL, "--connect", "127.0.0.1:%d" % self.daemon.port, "--user", "bob",
                              "watch", "--user", "bob"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        try:
            time.sleep(0.5)  # let both subscribe
            sid = self.js("alice", "create", "bob")["session"]
            self.js("alice", "invite", sid)
            self.js("alice", "cancel", sid)
            lines = [json.loads(w.stdout.readline()) for _ in range(3)]
            self.assertEqual([l["params"]["event"] for l in lines], [1, 2, 3])
            self.assertEqual(lines[1]["method"], "session.state_changed")
            human = [h.stdout.readline() for _ in range(2)]
            self.assertRegex(human[0], r"^event 2 %s RSS_READY -> RSS_INVITATION by alice" % sid)
            self.assertRegex(human[1], r"^event 3 %s RSS_INVITATION -> RSS_CANCELLED by alice" % sid)
            # --since replays
            r = self.ctl("olga", "--json", "watch", "--all", "--since", "1", "--count", "2")
        finally:
            for p in (w, h):
                p.send_signal(signal.SIGINT)
                self.assertEqual(p.wait(timeout=10), 0)
                p.stdout.close()
                p.stderr.close()
        replayed = [json.loads(l)["params"]["event"] for l in r.stdout.splitlines()]
        self.assertEqual(replayed, [2, 3])

    def test_outcomes_presence_and_idempotency_keys(self):
        alice, bob = ("alice", "--device", "desk"), ("bob", "--device", "phone")
        first = self.js(*alice, "create", "bob", "--idempotency-key", "k1")
        again = self.js(*alice, "create", "bob", "--idempotency-key", "k1")
        self.assertEqual(again, first)  # one session
        sid = first["session"]
        self.js(*alice, "invite", sid)
        self.ctl(*bob, "ping")  # bob's phone said hello: it is owed how this ends
        self.js(*alice, "cancel", sid, "--reason", "later")
        self.assertEqual(self.ctl(*bob, "outcomes").stdout,
                         "outcome %s RSS_CANCELLED by alice on desk reason=later event=3\n" % sid)
        self.assertEqual(self.ctl(*bob, "ack", sid, "0" * 32).stdout, "acknowledged 1 outcome(s)\n")
        self.assertEqual(self.js(*bob, "outcomes"), {"outcomes": []})
        self.assertEqual(self.ctl(*bob, "ack", ok=False).returncode, 2)
        w = subprocess.Popen([CTL, "--connect", "127.0.0.1:%d" % self.daemon.port, "--user", "olga",
                              "watch", "--presence", "bob", "--count", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: self.client("root").call("admin.stats")["subscriptions"] == 1,
                     "the watch to subscribe")
            phone = self.client("bob", "phone")
            self.assertEqual(w.stdout.readline(), "presence bob online on phone\n")
            self.assertEqual(w.wait(timeout=10), 0)
        finally:
            w.kill()
            w.wait()
            w.stdout.close()
            w.stderr.close()
        self.assertEqual(self.ctl("olga", "presence", "bob").stdout, "bob online on phone\n")
        phone.close()
        wait_for(lambda: self.ctl("olga", "presence", "bob").stdout == "bob offline\n",
                 "bob to go offline")
        self.assertEqual(self.js("olga", "presence", "carol"),
                         {"user": "carol", "online": False, "devices": []})

    def test_help_and_version(self):
        p = subprocess.run([CTL, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for word in ("create", "invite", "accept", "decline", "cancel", "connect", "send",
                     "terminate", "get", "list", "watch", "--connect", "--user", "--json"):
            self.assertIn(word, p.stdout)
        p = subprocess.run([CTL, "--version"], capture_output=True, text=True)
        self.assertRegex(p.stdout, r"^rendezvousctl \d+\.\d+\.\d+")


class Failover(unittest.TestCase):
    """--connect with several addresses: the next one when one refuses, and a
    watch that keeps going across a daemon's death, with no gap and no
    duplicate."""

    def run_ctl(self, addrs, *args):
        return subprocess.run([CTL, "--connect", ",".join("127.0.0.1:%d" % p for p in addrs),
                               "--user", "alice", *args],
                              capture_output=True, text=True, timeout=60)

    def test_next_address_when_one_refuses(self):
        d = Daemon()
        try:
            dead, dead2 = free_port(), free_port()
            p = self.run_ctl((dead, d.port), "ping")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("trying 127.0.0.1:%d" % d.port, p.stderr)
            p = self.run_ctl((dead, dead2), "ping")
            self.assertEqual(p.returncode, 1, p.stderr)
            p = self.run_ctl((d.port,), "--json", "create", "bob")
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-4000:])

    def test_watch_across_a_daemons_death(self):
        state = tempfile.mkdtemp(prefix="rendezvous-state-")
        self.addCleanup(shutil.rmtree, state, True)
        a = Daemon("--observer", "olga", state_dir=state)
        self.addCleanup(a.stop, signal.SIGKILL)
        port_b = free_port()
        w = Watch("127.0.0.1:%d,127.0.0.1:%d" % (a.port, port_b), "olga", "--all")
        lines, errs = w.lines, w.errs
        try:
            wait_for(lambda: any("watching" in e for e in errs), "the watch to subscribe")
            made = []

            def lifecycle(d):
                c = subprocess.run([CTL, "--connect", "127.0.0.1:%d" % d.port, "--user", "alice",
                                    "--json", "create", "bob"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(c.returncode, 0, c.stderr)
                sid = json.loads(c.stdout)["session"]
                for verb in ("invite", "cancel"):
                    c = subprocess.run([CTL, "--connect", "127.0.0.1:%d" % d.port, "--user",
                                        "alice", verb, sid], capture_output=True, text=True,
                                       timeout=30)
                    self.assertEqual(c.returncode, 0, c.stderr)
                made.append(sid)

            lifecycle(a)
            wait_for(lambda: len(lines) >= 3, "the first three events")
            a.stop(signal.SIGKILL)
            # Events made while the watch can reach no daemon (on one it does not know)...
            hidden = Daemon("--observer", "olga", state_dir=state)
            lifecycle(hidden)
            status, log = hidden.stop()
            self.assertEqual(status, 0, log[-4000:])
            # ...reach it when it resumes on the second address, from the store's history.
            b = Daemon("--observer", "olga", state_dir=state,
                       listen=("--listen", "127.0.0.1:%d" % port_b))
            self.addCleanup(b.stop)
            wait_for(lambda: len(lines) >= 6, "the events made while the watch was away")
            lifecycle(b)
            wait_for(lambda: len(lines) >= 9, "the events made after the watch was back")
            time.sleep(0.3)  # a duplicate would come now
        finally:
            self.assertEqual(w.stop(), 0, "".join(errs))
        events = [json.loads(l)["params"] for l in lines]
        self.assertEqual([e["event"] for e in events], list(range(1, 10)), "".join(errs))
        self.assertEqual([e["session"] for e in events[::3]], made)
        self.assertTrue(any("reconnecting" in e for e in errs), errs)
        self.assertTrue(any("resumed on 127.0.0.1:%d" % port_b in e for e in errs), errs)
        status, log = b.stop()
        self.assertEqual(status, 0, log[-4000:])

    def test_watch_presence_across_a_restart(self):
        """Presence has no history: resumed on a daemon where bob came online while
        the watch was away, it shows bob's presence as it is now."""
        a = Daemon("--observer", "olga")
        self.addCleanup(a.stop)
        b = Daemon("--observer", "olga")
        self.addCleanup(b.stop)
        w = subprocess.Popen([CTL, "--connect", "127.0.0.1:%d,127.0.0.1:%d" % (a.port, b.port),
                              "--user", "olga", "watch", "--presence", "bob", "--count", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertIn("watching", w.stderr.readline())
            bob = b.client("bob")  # online on b before the watch gets there
            self.addCleanup(bob.close)
            status, log = a.stop()
            self.assertEqual(status, 0, log[-4000:])
            out, err = w.communicate(timeout=30)
        finally:
            if w.poll() is None:
                w.kill()
                w.communicate()
        self.assertEqual(w.returncode, 0, err)
        self.assertIn("shutting down (SIGTERM)", err)
        self.assertIn("resumed on 127.0.0.1:%d" % b.port, err)
        self.assertEqual(out, "presence bob online on %s\n" % bob.device)

if __name__ == "__main__":
    main()

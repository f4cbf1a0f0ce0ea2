#!/usr/bin/env python3
"""Running as a service: the configuration file (every option a key, flags win,
errors with line numbers, --check-config), SIGHUP reloads that keep every
connection, SIGTERM drains (server.shutdown, then exit 0 within a bound), and
the notify messages of a reload."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from rvtest import (DAEMON, Client, Daemon, DaemonTest, SANITIZER_MARKS, lifecycle_to, main,
                    wait_for)

# A valid value for every setting; test_every_option_is_a_key checks none is missing.
VALUES = {
    "listen": "127.0.0.1:0", "listen-tls": "127.0.0.1:0", "listen-ws": "127.0.0.1:0",
    "listen-wss": "127.0.0.1:0", "ws-origin": "https://app.example", "ws-ping": "10",
    "tls-cert": "/nonexistent.pem",
    "tls-key": "/nonexistent.key", "tls-client-ca": "/nonexistent-ca.pem", "insecure": "no",
    "auth": "none", "jwt-key": None, "jwt-audience": "rv", "jwt-issuer": "https://auth.example",
    "jwt-leeway": "1.5", "observer": "olga", "admin": "root", "store": "memory",
    "state-dir": "/tmp", "durability": "strict", "redis-password-file": "/nonexistent",
    "node-name": "node-1", "store-timeout": "0.5", "invite-ttl": "60", "max-ttl": "600",
    "peer-grace": "10", "linger": "5", "idempotency-window": "3600", "outcome-retention": "3600", "max-outcomes": "50", "max-line": "32k", "max-pending": "1m",
    "max-connections": "100", "max-connections-per-address": "10", "max-auth-failures": "5",
    "hello-timeout": "2", "max-hello-line": "1k", "max-data": "4k", "max-request-rate": "100",
    "max-request-burst": "200", "max-sessions-per-user": "10", "max-user-bytes": "1m", "max-subscriptions": "8",
    "history": "100", "history-age": "3600", "history-bytes": "1m", "metrics": "127.0.0.1:0", "shutdown-timeout": "3",
    "log-level": "debug",
}
ACTIONS = {"config", "check-config", "check-store", "help", "version"}


def run(*args, timeout=30):
    return subprocess.run([DAEMON, *args], capture_output=True, text=True, timeout=timeout)


class ConfigFile(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="rv-conf-")
        self.path = os.path.join(self.dir.name, "rendezvousd.conf")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def test_every_option_is_a_key(self):
        helptext = run("--help").stdout
        names = set(re.findall(r"^  --([a-z-]+)", helptext, re.M))
        self.assertEqual(names - ACTIONS - set(VALUES), set(), "settings without a test value")
        lines = ["# every setting, each as a key"]
        for name in sorted(names - ACTIONS):
            if VALUES[name] is not None:
                lines.append("%s = %s" % (name, VALUES[name]))
        self.write("\n".join(lines) + "\n")
        # The TLS files do not exist: --check-config loads them and says so.
        p = run("--config", self.path, "--check-config")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("/nonexistent.pem", p.stderr)
        # Without the TLS settings the rest is valid.
        self.write("\n".join(l for l in lines
                              if not l.startswith(("listen-tls", "listen-wss", "tls-"))) + "\n")
        p = run("--config", self.path, "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK (%s)" % self.path, p.stdout)

    def test_example_file(self):
        """etc/rendezvousd.conf names every setting, and its examples are valid."""
        example = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "rendezvousd.conf")
        text = open(example).read()
        names = set(re.findall(r"^  --([a-z-]+)", run("--help").stdout, re.M)) - ACTIONS
        keys = set(re.findall(r"^#([a-z-]+) = ", text, re.M))
        self.assertEqual(names - keys, set(), "settings missing from the example")
        self.assertEqual(keys - names, set(), "unknown keys in the example")
        lines = [l[1:] for l in text.splitlines()
                 if re.match(r"^#[a-z-]+ = ", l) and not re.match(r"^#(tls-|jwt-key|listen)", l)]
        self.write("\n".join(lines + ["listen = 127.0.0.1:0"]) + "\n")
        p = run("--config", self.path, "--check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(run("--config", example, "--check-config").returncode, 0)

    def test_errors_name_their_lines(self):
        self.write("# comment\n"
                   "max-line = 64k\n"
                   "max-line = lots\n"
                   "\n"
                   "no-such-thing = 1\n"
                   "insecure = perhaps\n"
                   "this line has no equals sign\n"
                   "[rendezvousd]\n"
                   "durability = sloppy\n"
                   "[elsewhere]\n"
                   "log-level = debug\n"
                   "[rendezvousd]\n"
                   "jwt-issuer = %s\n" % ("x" * 300))
        for args, status in ((("--check-config",), 1), ((), 2)):
            p = run("--config", self.path, *args)
            self.assertEqual(p.returncode, status, p.stderr)
            errors = [l for l in p.stderr.splitlines() if l.startswith("rendezvousd: " + self.path)]
            self.assertEqual([
                "rendezvousd: %s:3: invalid value 'lots' for max-line: expected a number >= 256" % self.path,
                "rendezvousd: %s:5: unknown setting 'no-such-thing'" % self.path,
                "rendezvousd: %s:6: invalid value 'perhaps' for insecure: expected yes or no" % self.path,
                "rendezvousd: %s:7: expected 'key = value' or '[section]'" % self.path,
                "rendezvousd: %s:9: invalid value 'sloppy' for durability: expected normal or strict" % self.path,
                "rendezvousd: %s:11: unknown section [elsewhere] (settings go before any section, or in [rendezvousd])" % self.path,
                "rendezvousd: %s:13: line longer than 198 bytes" % self.path,
            ], errors, p.stderr)

    def test_flag_errors_and_missing_file(self):
        self.write("max-line = 1k\n")
        p = run("--config", self.path, "--check-config", "--max-line", "12")
        self.assertEqual(p.returncode, 1)
        self.assertIn("invalid value '12' for --max-line", p.stderr)
        p = run("--config", self.path + ".missing")
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot read the configuration file %s.missing" % self.path, p.stderr)
        p = run("--config", self.dir.name, "--check-config")  # a directory
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_default_location_may_be_missing(self):
        p = run("--check-config", "--store", "memory")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("rendezvousd.conf", p.stdout)
        # systemd's ConfigurationDirectory= points there instead of /etc/rendezvous.
        self.write("max-line = nonsense\n")
        env = dict(os.environ, CONFIGURATION_DIRECTORY=self.dir.name)
        p = subprocess.run([DAEMON, "--check-config"], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 1)
        self.assertIn(self.path + ":1:", p.stderr)

    def test_values_apply_and_flags_win(self):
        d = Daemon(config="max-subscriptions = 1\nmax-sessions-per-user = 2\n"
                          "observer = carol\nobserver = olga\n",
                   *("--max-sessions-per-user", "3", "--observer", "dave"))
        try:
            a = d.client("alice")
            a.call("subscribe", {"user": "alice"})
            self.assertEqual(a.error("subscribe", {"user": "alice"})["code"], 4029)
            for _ in range(3):
                a.call("session.create", {"invitee": "bob"})
            self.assertEqual(a.error("session.create", {"invitee": "bob"})["code"], 4029)
            # A list flag replaces the file's list.
            self.assertTrue(d.client("dave").call("ping") == "pong")
            self.assertTrue(d.client().call("hello", {"user": "dave"})["observer"])
            self.assertFalse(d.client().call("hello", {"user": "carol"})["observer"])
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])


class Reload(unittest.TestCase):
    def start(self, text, *args, env=None):
        self.d = Daemon(*args, config=text, env=env)
        self.addCleanup(self.stop)
        return self.d

    def stop(self):
        status, log = self.d.stop()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-4000:])
        self.assertEqual(status, 0, log[-4000:])

    def reload(self, text, expect="reloaded"):
        n = self.d.read_log().count(expect)
        with open(self.d.config, "w") as f:
            f.write(text)
        self.d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.d.read_log().count(expect) > n, expect)

    def test_reload_keeps_connections_and_applies(self):
        d = self.start("max-subscriptions = 1\nlog-level = info\n")
        alice, bob = d.client("alice"), d.client("bob")
        watcher = d.client("root")
        sub = alice.call("subscribe", {"user": "alice"})
        self.assertEqual(alice.error("subscribe", {"user": "alice"})["code"], 4029)
        self.assertEqual(watcher.error("session.list", {"all": True})["code"], 4003)
        self.reload("max-subscriptions = 2\nlog-level = debug\nadmin = root\n")
        # The same connections, still working, with the new settings.
        alice.call("subscribe", {"user": "alice"})
        sid = lifecycle_to(alice, bob, "RSS_INVITATION")
        self.assertEqual(alice.event()["state"], "RSS_READY")
        self.assertEqual(alice.event()["session"], sid)
        self.assertEqual(len(watcher.call("session.list", {"all": True})["sessions"]), 1)
        d.client("carol").close()
        wait_for(lambda: " debug: " in d.read_log(), "a debug line")
        self.assertIn("user root is now admin", d.read_log())
        # Roles taken away apply at once too.
        self.reload("max-subscriptions = 2\n")
        self.assertEqual(watcher.error("session.list", {"all": True})["code"], 4003)
        self.assertTrue(sub)

    def test_bad_reload_changes_nothing(self):
        d = self.start("max-subscriptions = 1\n")
        a = d.client("alice")
        self.reload("max-subscriptions = 5\nmax-line = tiny\n", expect="reload failed")
        log = d.read_log()
        self.assertIn("reload: %s:2: invalid value 'tiny' for max-line" % d.config, log)
        a.call("subscribe", {"user": "alice"})
        self.assertEqual(a.error("subscribe", {"user": "alice"})["code"], 4029)

    def test_restart_only_settings_warn(self):
        d = self.start("history = 100\n")
        a = d.client("alice")
        self.reload("history = 5\nstore = sqlite:elsewhere.db\n")
        self.assertIn("takes effect at the next start", d.read_log())
        self.assertEqual(a.call("ping"), "pong")


class Drain(unittest.TestCase):
    def test_sigterm_tells_clients_and_exits(self):
        state = tempfile.TemporaryDirectory(prefix="rv-drain-")
        self.addCleanup(state.cleanup)
        d = Daemon("--shutdown-timeout", "20", state_dir=state.name)
        try:
            alice, bob = d.client("alice"), d.client("bob")
            fresh = d.client()  # no hello yet: told too
            alice.call("subscribe", {"user": "alice"})
            sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
            d.proc.send_signal(signal.SIGTERM)
            for c in (alice, bob, fresh):
                note = c.note(method="server.shutdown")
                self.assertEqual(note["params"]["reason"], "SIGTERM")
                self.assertEqual(note["params"]["timeout_ms"], 20000)
                with self.assertRaises(ConnectionError):
                    while True:
                        c.read_line()
            self.assertEqual(d.proc.wait(30), 0)
            # Nothing is accepted once draining began (the daemon is gone now).
            with self.assertRaises(OSError):
                Client(d.port)
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])
        self.assertIn("received SIGTERM: shutting down (3 connections to drain)", log)
        # What was acknowledged is in the store for the next start.
        d = Daemon(state_dir=state.name)
        try:
            got = d.client("alice").call("session.get", {"session": sid})
            self.assertEqual(got["state"], "RSS_CONNECTED")
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])

    def test_requests_read_while_paused_are_answered(self):
        """Requests already read from a connection paused by backpressure are answered
        before server.shutdown, not dropped."""
        d = Daemon("--shutdown-timeout", "20", "--store", "memory", "--admin", "root",
                   "--max-user-bytes", "0")
        self.addCleanup(d.stop)
        a, root = d.client("alice"), d.client("root")
        for _ in range(999):
            a.call("session.create", {"invitee": "bob", "data": "x" * 16000})
        # One write: a listing of 16 MB (more than the kernel's socket buffers take, and
        # past the 1 MiB at which reading pauses) and four more requests, read at once.
        lines = [{"jsonrpc": "2.0", "method": "session.list", "params": {"limit": 1000},
                  "id": 100},
                 {"jsonrpc": "2.0", "method": "ping", "id": 101},
                 {"jsonrpc": "2.0", "method": "session.create", "params": {"invitee": "carol"},
                  "id": 102},
                 {"jsonrpc": "2.0", "method": "ping", "id": 103},
                 {"jsonrpc": "2.0", "method": "session.get", "params": {"session": "0" * 32},
                  "id": 104}]
        a.send_raw("".join(json.dumps(m) + "\n" for m in lines).encode())
        # The five lines arrive together and are read in one go; the listing,
        # unsent, pauses reading right after the first (until 64 KiB are left).
        wait_for(lambda: any(c["unsent_bytes"] > 1 << 20 for c in
                             root.call("admin.connections")["connections"]),
                 "the listing to back up")
        d.proc.send_signal(signal.SIGTERM)
        data = bytearray(a.buf)
        a.sock.settimeout(30)
        while True:  # everything, to the end of the connection
            chunk = a.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        msgs = [json.loads(line) for line in bytes(data).split(b"\n") if line]
        self.assertEqual([m.get("id", m.get("method")) for m in msgs],
                         [100, 101, 102, 103, 104, "server.shutdown"])
        self.assertEqual(msgs[2]["result"]["state"], "RSS_READY")
        self.assertEqual(d.proc.wait(30), 0)

    def stuck_daemon(self, timeout):
        """A daemon with a subscriber that does not read and megabytes queued to it."""
        d = Daemon("--shutdown-timeout", timeout, "--max-pending", "64m", "--observer", "stuck",
                   "--store", "memory", "--max-data", "64k", "--max-user-bytes", "0")
        self.addCleanup(d.stop)  # (if this fails before the test stops it)
        stuck = d.client("stuck")
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.call("subscribe", {"user": "alice"})
        a = d.client("alice")
        for _ in range(300):
            a.call("session.create", {"invitee": "bob", "data": {"blob": "x" * 60000}})
        self.clients = (stuck, a)  # open until the test ends
        return d

    def test_drain_is_bounded(self):
        """A client that never reads holds the exit back only --shutdown-timeout long."""
        d = self.stuck_daemon("1")
        try:
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.proc.wait(30), 0)
            took = time.monotonic() - t0
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])
        self.assertIn("clients still reading after 1000 ms", log)
        self.assertLess(took, 20)

    def test_second_signal_exits_at_once(self):
        d = self.stuck_daemon("60")
        try:
            d.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: "shutting down" in d.read_log(), "the drain")
            d.proc.send_signal(signal.SIGINT)
            self.assertEqual(d.proc.wait(30), 0)
        finally:
            status, log = d.stop()
        self.assertIn("received SIGINT again: exiting now", log)


class UnixSocket(unittest.TestCase):
    def test_listen_unix(self):
        with tempfile.TemporaryDirectory(prefix="rv-unix-") as tmp:
            path = os.path.join(tmp, "rv.sock")
            stale = socket.socket(socket.AF_UNIX)
            stale.bind(path)  # left behind by a daemon that died: replaced
            stale.close()
            d = Daemon("--listen", "unix:" + path, "--store", "memory")
            try:
                self.assertIn("listening on unix:" + path, d.read_log())
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(10)
                s.connect(path)
                s.sendall(b'{"jsonrpc":"2.0","method":"hello","params":{"user":"alice"},"id":1}\n')
                self.assertEqual(json.loads(s.makefile().readline())["result"]["user"], "alice")
                self.assertIn("conn 1 unix: hello user alice", d.read_log())
                s.close()
            finally:
                status, log = d.stop()
            self.assertEqual(status, 0, log[-3000:])
            self.assertFalse(os.path.exists(path), "the socket outlived the daemon")
            with open(path, "w") as f:
                f.write("not a socket")
            p = run("--config", "/dev/null", "--store", "memory", "--listen", "unix:" + path)
            self.assertEqual(p.returncode, 1)
            self.assertIn("exists and is not a socket", p.stderr)
            self.assertEqual(open(path).read(), "not a socket")
        self.assertEqual(run("--listen", "unix:relative.sock", "--check-config").returncode, 1)


def notify_supported():
    return "systemd notify yes" in run("--version").stdout


@unittest.skipUnless(notify_supported(), "built without libsystemd (-Dsystemd=disabled)")
class ReloadNotify(unittest.TestCase):
    def test_reloading_then_ready(self):
        with tempfile.TemporaryDirectory(prefix="rv-notify-") as tmp:
            path = os.path.join(tmp, "notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            sock.settimeout(10)

            def next_msg():
                data = sock.recv(4096).decode()
                return dict(l.split("=", 1) for l in data.split("\n") if l)

            d = Daemon(config="log-level = info\n", env={"NOTIFY_SOCKET": path})
            try:
                self.assertEqual(next_msg().get("READY"), "1")
                c = d.client("alice")
                before = time.clock_gettime(time.CLOCK_MONOTONIC)
                d.proc.send_signal(signal.SIGHUP)
                msgs = [next_msg(), next_msg()]
                self.assertEqual(msgs[0].get("RELOADING"), "1", msgs)
                usec = int(msgs[0]["MONOTONIC_USEC"])
                after = time.clock_gettime(time.CLOCK_MONOTONIC)
                self.assertTrue(before * 1e6 - 1e6 <= usec <= after * 1e6 + 1e6, (before, usec))
                self.assertEqual(msgs[1].get("READY"), "1", msgs)
                self.assertEqual(c.call("ping"), "pong")
                # A failed reload ends the same way: the old settings are still ready.
                with open(d.config, "w") as f:
                    f.write("bogus = 1\n")
                d.proc.send_signal(signal.SIGHUP)
                msgs = [next_msg(), next_msg()]
                self.assertEqual(msgs[0].get("RELOADING"), "1", msgs)
                self.assertEqual(msgs[1].get("READY"), "1", msgs)
                d.proc.send_signal(signal.SIGTERM)
                self.assertEqual(next_msg().get("STOPPING"), "1")
            finally:
                status, log = d.stop()
                sock.close()
            self.assertEqual(status, 0, log[-3000:])


if __name__ == "__main__":
    main()

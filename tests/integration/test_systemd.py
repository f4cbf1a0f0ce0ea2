#!/usr/bin/env python3
"""sd_notify, seen through a NOTIFY_SOCKET the test owns, as systemd would see it:
READY=1 once the daemon listens and its store is recovered, watchdog pings from
the loop at twice the asked rate, a status line with live counts, STOPPING=1.
And log lines with syslog priorities when stderr is the journal."""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import json
import shutil

from rvtest import DAEMON, Client, Daemon, SANITIZER_MARKS, free_port, main


def supported():
    out = subprocess.run([DAEMON, "--version"], capture_output=True, text=True).stdout
    return "systemd notify yes" in out


@unittest.skipUnless(supported(), "built without libsystemd (-Dsystemd=disabled)")
class Notify(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rendezvous-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(10)

    def tearDown(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)

    def messages(self, until, limit=100):
        """Datagrams (as dicts) until one has the key until."""
        out = []
        for _ in range(limit):
            data = self.sock.recv(4096).decode()
            msg = dict(l.split("=", 1) for l in data.split("\n") if l)
            out.append((time.monotonic(), msg))
            if until in msg:
                return out
        self.fail("no %s in %s" % (until, out))

    def test_ready_watchdog_status_stopping(self):
        d = Daemon(env={"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": "400000"})
        try:
            first = self.messages("READY")
            self.assertEqual(first[-1][1]["READY"], "1")
            self.assertIn("0 sessions", first[-1][1]["STATUS"])
            # READY comes after the listener is bound (its port is in the log already).
            self.assertIn("listening on 127.0.0.1:%d" % d.port, d.read_log())
            c = d.client("alice")
            c.call("session.create", {"invitee": "bob"})
            pings = [m for m in self.messages("WATCHDOG") if "WATCHDOG" in m[1]]
            pings += [m for m in self.messages("WATCHDOG") if "WATCHDOG" in m[1]]
            pings += [m for m in self.messages("WATCHDOG") if "WATCHDOG" in m[1]]
            self.assertEqual(len(pings), 3)
            # Asked for 400 ms: a ping every 200 ms (generous bounds: a noisy machine).
            gaps = [b[0] - a[0] for a, b in zip(pings, pings[1:])]
            for g in gaps:
                self.assertGreater(g, 0.1)
                self.assertLess(g, 1.5)
            self.assertIn("1 sessions, 1 connections, last event 1", pings[-1][1]["STATUS"])
            c.close()
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.messages("STOPPING")[-1][1]["STOPPING"], "1")
        finally:
            status, log = d.stop()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-4000:])
        self.assertEqual(status, 0, log[-4000:])
        self.assertIn("systemd watchdog: pinging every 200 ms", log)

    def test_nothing_without_notify_socket(self):
        d = Daemon()
        d.client("alice").call("ping")
        status, log = d.stop()
        self.assertEqual(status, 0, log[-4000:])
        self.assertNotIn("watchdog", log)
        self.sock.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            self.sock.recv(4096)


@unittest.skipUnless(supported(), "built without libsystemd (-Dsystemd=disabled)")
@unittest.skipUnless(shutil.which("systemd-socket-activate"), "systemd-socket-activate missing")
class SocketActivation(unittest.TestCase):
    """systemd-socket-activate holds a TCP and a Unix socket, and starts the
    daemon (the same process) at the first connection, passing both."""

    def test_tcp_and_unix(self):
        tmp = tempfile.mkdtemp(prefix="rendezvous-activate-")
        path = os.path.join(tmp, "rendezvousd.sock")
        port = free_port()
        log = open(os.path.join(tmp, "log"), "w+")
        p = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, "-l", path,
                              "--fdname=tcp:local", DAEMON, "--config", "/dev/null",
                              "--store", "memory"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(path):
                self.assertLess(time.monotonic(), deadline, "no socket")
                time.sleep(0.02)
            tcp = Client(port)  # starts the daemon
            tcp.hello("alice")
            sid = tcp.call("session.create", {"invitee": "bob"})["session"]
            tcp.call("session.invite", {"session": sid})
            local = socket.socket(socket.AF_UNIX)
            local.settimeout(10)
            local.connect(path)
            local.sendall(b'{"jsonrpc":"2.0","method":"hello","params":{"user":"bob"},"id":1}\n'
                          b'{"jsonrpc":"2.0","method":"session.list","id":2}\n')
            buf = b""
            while buf.count(b"\n") < 2:
                chunk = local.recv(65536)
                self.assertTrue(chunk, "closed")
                buf += chunk
            replies = [json.loads(l) for l in buf.splitlines()]
            self.assertEqual(replies[0]["result"]["user"], "bob")
            self.assertEqual([s["session"] for s in replies[1]["result"]["sessions"]], [sid])
            tcp.close()
            local.close()
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.seek(0)
            out = log.read()
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertIn("socket activation: 2 sockets from systemd", out)
        self.assertIn("listening on 127.0.0.1:%d" % port, out)
        self.assertIn("listening on unix:%s" % path, out)
        self.assertNotIn(":7420", out)  # no default address besides systemd's
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, out, out[-4000:])


class Journal(unittest.TestCase):
    """With stderr on the journal ($JOURNAL_STREAM), lines carry syslog priorities."""

    def run_daemon(self, journal):
        with tempfile.NamedTemporaryFile(prefix="rendezvousd-journal-") as log:
            st = os.fstat(log.fileno())
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if journal:
                env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
            # A warning at start-up: the open file limit is below this.
            p = subprocess.Popen([DAEMON, "--listen", "127.0.0.1:0", "--store", "memory",
                                  "--max-connections", "100000000"],
                                 stderr=log, stdout=log, env=env)
            try:
                deadline = time.monotonic() + 10
                while "listening on" not in open(log.name).read():
                    self.assertLess(time.monotonic(), deadline, "the daemon did not start")
                    time.sleep(0.02)
            finally:
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(30), 0)
            return open(log.name).read().splitlines()

    def test_priorities(self):
        lines = self.run_daemon(True)
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, r"^<[3467]>(error|warn|info|debug): ")
        self.assertTrue(any(l.startswith("<4>warn: open file limit") for l in lines), lines)
        self.assertTrue(any(l.startswith("<6>info: listening on") for l in lines), lines)

    def test_no_priorities_elsewhere(self):
        for l in self.run_daemon(False):
            self.assertRegex(l, r"^\d{4}-\d\d-\d\dT[0-9:.]+Z rendezvousd (error|warn|info|debug): ")


if __name__ == "__main__":
    main()

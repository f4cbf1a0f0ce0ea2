#!/usr/bin/env python3
"""The daemon as a program: options, listening, signals, clean exit."""
import os
import re
import signal
import socket
import subprocess
import unittest

from rvtest import DAEMON, Daemon, SANITIZER_MARKS, lifecycle_to, main


def run(*args):
    return subprocess.run([DAEMON, *args], capture_output=True, text=True, timeout=30)


class Program(unittest.TestCase):
    def test_help(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        for opt in ("--listen", "--observer", "--invite-ttl", "--peer-grace", "--linger",
                    "--max-ttl", "--max-line", "--max-pending", "--max-connections",
                    "--max-sessions-per-user", "--max-subscriptions", "--history",
                    "--log-level", "--version", "127.0.0.1:7420"):
            self.assertIn(opt, p.stdout)

    def test_version(self):
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^rendezvousd \d+\.\d+\.\d+ \(libevent 2\.1")

    def test_bad_options(self):
        for args in (["--nope"], ["--invite-ttl", "soon"], ["--peer-grace", "-1"],
                     ["--max-line", "12x"], ["--listen", "host:"], ["--log-level", "loud"],
                     ["stray"], ["--max-connections", "0"]):
            p = run(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("rendezvousd", p.stderr)

    def check_stop(self, d, sig):
        status, log = d.stop(sig)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log, log[-3000:])
        self.assertEqual(status, 0, log[-3000:])
        return log

    def test_signals_with_live_state(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            d = Daemon("--observer", "olga")
            a, b, o = d.client("alice"), d.client("bob"), d.client("olga")
            o.call("subscribe", {"all": True})
            for state in ("RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED"):
                lifecycle_to(a, b, state)
            s = lifecycle_to(a, b, "RSS_CONNECTED")
            a.call("session.terminate", {"session": s})
            a.send_raw(b'{"jsonrpc":"2.0","method":"ping"')  # a half line pending
            log = self.check_stop(d, sig)
            self.assertIn("shutting down", log)
            self.assertIn("stopped", log)
            for c in (a, b, o):  # every client sees the close
                c.sock.settimeout(10)
                data = b""
                while True:
                    chunk = c.sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                c.close()

    def test_two_listeners_and_port_zero(self):
        d = Daemon("--listen", "127.0.0.1:0")
        d.wait_log(r"(listening on 127\.0\.0\.1:\d+\n.*){2}")
        ports = [int(p) for p in re.findall(r"listening on 127\.0\.0\.1:(\d+)", d.read_log())]
        self.assertEqual(len(ports), 2)
        self.assertNotIn(0, ports)
        for port in ports:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b'{"jsonrpc":"2.0","method":"ping","id":1}\n')
            self.assertIn(b'"pong"', c.recv(4096))
            c.close()
        self.check_stop(d, signal.SIGTERM)

    def test_ipv6_loopback(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        d = Daemon("--listen", "[::1]:0")
        m = d.wait_log(r"listening on \[::1\]:(\d+)")
        c = socket.create_connection(("::1", int(m.group(1))), timeout=10)
        c.sendall(b'{"jsonrpc":"2.0","method":"ping","id":1}\n')
        self.assertIn(b'"pong"', c.recv(4096))
        c.close()
        self.check_stop(d, signal.SIGTERM)

    def test_fd_exhaustion_backs_off(self):
        import resource
        import time

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

        d = Daemon(preexec_fn=low_limit)
        socks = []
        try:
            for _ in range(80):  # more than the daemon has descriptors for
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                socks.append(s)
            time.sleep(0.5)

            def cpu():
                with open("/proc/%d/stat" % d.proc.pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            before = cpu()
            time.sleep(2.0)
            used = cpu() - before
            self.assertLess(used, 1.0, "the daemon spins while out of descriptors")
            self.assertIn("pausing accepts", d.read_log())
            for s in socks[:60]:
                s.close()
            socks = socks[60:]
            # accepting resumes: a new client gets answers
            deadline = time.monotonic() + 20
            while True:
                try:
                    c = d.client("late")
                    self.assertEqual(c.call("ping"), "pong")
                    c.close()
                    break
                except (OSError, ConnectionError, TimeoutError):
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.2)
        finally:
            for s in socks:
                s.close()
        self.check_stop(d, signal.SIGTERM)

    def test_port_in_use(self):
        d = Daemon()
        try:
            p = run("--listen", "127.0.0.1:%d" % d.port)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("cannot bind", p.stderr)
        finally:
            self.check_stop(d, signal.SIGTERM)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reaching the daemon: the client library (through rendezvousctl) tries every
address a name resolves to, in order, resolving with evdns; the daemon's default
listen covers both loopbacks, 127.0.0.1 and ::1."""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from rvtest import CTL, Client, Daemon, DaemonTest, main


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def with_hosts(text, argv):
    """argv run with /etc/hosts reading text, in a mount namespace of its own
    (root only: unshare and mount). None where that cannot be done."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    fd, path = tempfile.mkstemp(prefix="rv-hosts-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        p = subprocess.run(["unshare", "-m", "sh", "-c",
                            'mount --bind "$0" /etc/hosts && exec "$@"', path, *argv],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    if "mount" in p.stderr and p.returncode != 0 and "rendezvousctl" not in p.stderr:
        return None  # not allowed here
    return p


class EveryAddress(unittest.TestCase):
    """A name that resolves to ::1 and 127.0.0.1, the daemon on only one of them."""

    def setUp(self):
        if not ipv6_loopback():
            self.skipTest("no IPv6 loopback on this machine")

    def ping(self, port, hosts):
        p = with_hosts(hosts, [CTL, "--connect", "rvtest-dual:%d" % port, "--user", "u", "ping"])
        if p is None:
            self.skipTest("needs root and unshare to give the client its own /etc/hosts")
        return p

    def test_v6_first_daemon_on_v4(self):
        d = Daemon()  # 127.0.0.1 only
        try:
            # ::1 refuses; the client goes on to 127.0.0.1 (it used to stop at ::1).
            p = self.ping(d.port, "::1 rvtest-dual\n127.0.0.1 rvtest-dual\n")
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "pong"), p.stderr)
        finally:
            self.assertEqual(d.stop()[0], 0)

    def test_v4_first_daemon_on_v6(self):
        d = Daemon(listen=("--listen", "[::1]:0"))
        try:
            port = int(d.wait_log(r"listening on \[::1\]:(\d+)").group(1))
            p = self.ping(port, "127.0.0.1 rvtest-dual\n::1 rvtest-dual\n")
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "pong"), p.stderr)
        finally:
            self.assertEqual(d.stop()[0], 0)

    def test_nothing_listens(self):
        with socket.socket() as s:  # a port nobody listens on (bound, not listening)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            p = self.ping(port, "::1 rvtest-dual\n127.0.0.1 rvtest-dual\n")
        self.assertEqual(p.returncode, 1)
        self.assertIn("tried 2 addresses of rvtest-dual", p.stderr)

    def test_unknown_name(self):
        p = self.ping(1, "127.0.0.1 rvtest-other\n")
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot resolve host rvtest-dual", p.stderr)


class DefaultListen(unittest.TestCase):
    """With no --listen, the daemon listens on 127.0.0.1:7420 and [::1]:7420."""

    def test_both_loopbacks(self):
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            if family == socket.AF_INET6 and not ipv6_loopback():
                continue
            with socket.socket(family) as s:
                try:
                    s.bind((host, 7420))
                except OSError:
                    self.skipTest("port 7420 is taken on %s here" % host)
        d = Daemon(listen=())
        try:
            self.assertEqual(d.port, 7420)
            self.assertEqual(Client(7420).call("ping"), "pong")
            if ipv6_loopback():
                d.wait_log(r"listening on \[::1\]:7420")
                s = socket.create_connection(("::1", 7420), timeout=10)
                s.sendall(b'{"jsonrpc":"2.0","method":"ping","id":1}\n')
                self.assertIn(b'"pong"', s.recv(4096))
                s.close()
                p = subprocess.run([CTL, "--connect", "[::1]:7420", "--user", "u", "ping"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.stdout.strip(), "pong", p.stderr)
        finally:
            self.assertEqual(d.stop()[0], 0)


if __name__ == "__main__":
    main()

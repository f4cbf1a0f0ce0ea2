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


def hosts_maps_localhost_to_both():
    """Whether /etc/hosts names localhost as both 127.0.0.1 and ::1 (Debian's own)."""
    found = set()
    with open("/etc/hosts") as f:
        for line in f:
            words = line.split("#")[0].split()
            if len(words) > 1 and "localhost" in words[1:]:
                found.add(words[0])
    return {"127.0.0.1", "::1"} <= found


HOSTS = "::1 rvtest-dual\n127.0.0.1 rvtest-dual\n"


def ctl_by_name(port, *args):
    """rendezvousctl reaching 127.0.0.1 or ::1 by a name that resolves to both: localhost
    where /etc/hosts says so (a standard Debian 12), else rvtest-dual from an /etc/hosts
    of its own (::1 first) in a private mount namespace (root, unshare). None if neither."""
    if hosts_maps_localhost_to_both():
        return subprocess.run([CTL, "--connect", "localhost:%d" % port, *args],
                              capture_output=True, text=True, timeout=60)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    fd, path = tempfile.mkstemp(prefix="rv-hosts-")
    with os.fdopen(fd, "w") as f:
        f.write(HOSTS)
    try:
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            'mount --bind "$0" /etc/hosts && exec "$@"', path,
                            CTL, "--connect", "rvtest-dual:%d" % port, *args],
                           capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    if p.returncode != 0 and p.stderr.startswith(("unshare:", "mount:")):
        return None  # not allowed here
    return p


class EveryAddress(unittest.TestCase):
    """A name that resolves to ::1 and 127.0.0.1, the daemon on only one of them: the
    client goes on to the other address (it used to stop at the first)."""

    def setUp(self):
        if not ipv6_loopback():
            self.skipTest("no IPv6 loopback on this machine")

    def ping(self, port):
        p = ctl_by_name(port, "--user", "u", "ping")
        if p is None:
            self.skipTest("/etc/hosts does not map localhost to both loopbacks, and no "
                          "mount namespace can give the client one that does")
        return p

    def test_daemon_on_ipv4_only(self):
        d = Daemon()  # 127.0.0.1
        try:
            p = self.ping(d.port)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "pong"), p.stderr)
        finally:
            self.assertEqual(d.stop()[0], 0)

    def test_daemon_on_ipv6_only(self):
        d = Daemon(listen=("--listen", "[::1]:0"))
        try:
            p = self.ping(d.port)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "pong"), p.stderr)
        finally:
            self.assertEqual(d.stop()[0], 0)

    def test_nothing_listens(self):
        with socket.socket() as s:  # a port nobody listens on (bound, not listening)
            s.bind(("127.0.0.1", 0))
            p = self.ping(s.getsockname()[1])
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"connection failed: .* \(tried 2 addresses of ")


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

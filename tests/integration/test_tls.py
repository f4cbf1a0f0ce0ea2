#!/usr/bin/env python3
"""TLS listeners: sessions over TLS, versions, mutual TLS, and the CLI verifying the daemon."""
import json
import os
import socket
import ssl
import subprocess
import tempfile
import unittest
import warnings

import signal

from rvtest import CTL, Client, Daemon, DaemonTest, lifecycle_to, main, wait_for

D = None  # certificates, made fresh for the run


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_cert(name, ca, subject, san=None):
    """A P-256 key and a certificate for it, signed by ca (a name) or self-signed."""
    key, pem = os.path.join(D.name, name + ".key"), os.path.join(D.name, name + ".pem")
    if ca is None:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + subject)
        return key, pem
    csr, ext = os.path.join(D.name, name + ".csr"), os.path.join(D.name, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + subject)
    openssl("x509", "-req", "-in", csr, "-CA", os.path.join(D.name, ca + ".pem"),
            "-CAkey", os.path.join(D.name, ca + ".key"), "-CAcreateserial", "-out", pem,
            "-days", "2", "-extfile", ext)
    return key, pem


def path(name):
    return os.path.join(D.name, name)


def setUpModule():
    global D
    D = tempfile.TemporaryDirectory(prefix="rv-tls-")
    make_cert("ca", None, "rendezvous test CA")
    make_cert("other-ca", None, "someone else's CA")
    make_cert("server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert("wrong-name", "ca", "elsewhere", "DNS:elsewhere.example")
    make_cert("client", "ca", "alice")
    make_cert("stranger", "other-ca", "mallory")


def tearDownModule():
    D.cleanup()


def client_ctx(cert=None, ca="ca.pem"):
    ctx = ssl.create_default_context(cafile=path(ca))
    if cert:
        ctx.load_cert_chain(path(cert + ".pem"), path(cert + ".key"))
    return ctx


def tls_args(cert="server", *extra):
    return ("--listen-tls", "127.0.0.1:0", "--tls-cert", path(cert + ".pem"),
            "--tls-key", path(cert + ".key"), *extra)


class Tls(DaemonTest):
    def setUp(self):
        self.daemon_args = tls_args("server", "--observer", "olga")
        super().setUp()

    def tls_client(self, user=None, ctx=None):
        c = Client(self.daemon.tls_port, tls=ctx or client_ctx())
        self.clients.append(c)
        if user:
            c.hello(user)
        return c

    def ctl(self, *args, port=None):
        return super().ctl(*args, port=port or self.daemon.tls_port)

    def handshake(self, maximum, ciphers=None):
        """(version, cipher) of a handshake with the daemon; raises ssl.SSLError if refused."""
        ctx = client_ctx()
        ctx.maximum_version = maximum
        if ciphers:
            ctx.set_ciphers(ciphers)  # (raises here if this OpenSSL has none of them)
        with socket.create_connection(("127.0.0.1", self.daemon.tls_port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return t.version(), t.cipher()[0]

    def test_intermediate_profile(self):
        """Mozilla's intermediate profile: TLS 1.3, or TLS 1.2 with ECDHE and an AEAD
        cipher; a client offering only CBC suites (or static RSA key exchange) is refused."""
        self.assertEqual(self.handshake(ssl.TLSVersion.TLSv1_3)[0], "TLSv1.3")
        version, cipher = self.handshake(ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, "TLSv1.2")
        self.assertTrue(cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher),
                        cipher)
        for offered in ("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:"
                        "ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256",
                        "AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256",
                        "AES128-GCM-SHA256:AES256-GCM-SHA384"):
            with self.assertRaises(ssl.SSLError, msg=offered):
                self.handshake(ssl.TLSVersion.TLSv1_2, offered)
        self.assertEqual(self.tls_client("alice").call("ping"), "pong")  # still serving

    def test_sessions_over_tls_and_plain_together(self):
        self.assertIsNotNone(self.daemon.tls_port)
        alice, bob = self.tls_client("alice"), self.tls_client("bob")
        olga = self.client("olga")  # plain TCP sees what TLS clients do
        olga.call("subscribe", {"all": True})
        self.assertGreaterEqual(alice.sock.version(), "TLSv1.2")
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        self.assertEqual([olga.event()["state"] for _ in range(4)],
                         ["RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED"])
        big = "x" * 15000  # several TLS records
        self.assertEqual(alice.call("session.send", {"session": sid, "data": big})["delivered"], 1)
        self.assertEqual(bob.note(method="session.context_data")["params"]["data"], big)
        # Many events at once, in order, over TLS.
        watcher = self.tls_client("olga")
        watcher.call("subscribe", {"all": True})
        for _ in range(150):
            alice.request("session.create", {"invitee": "bob"})
        ids = [watcher.event()["event"] for _ in range(150)]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 150)

    def test_old_versions_and_plain_text_refused(self):
        ctx = client_ctx()
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            Client(self.daemon.tls_port, tls=ctx).call("ping")
        # the daemon said no
        wait_for(lambda: "unsupported protocol" in self.daemon.read_log(), "the refusal logged")
        # Plain JSON to the TLS port: the handshake fails, the connection closes.
        s = socket.create_connection(("127.0.0.1", self.daemon.tls_port), timeout=10)
        s.sendall(b'{"jsonrpc":"2.0","method":"ping","id":1}\n')
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        s.close()
        self.assertNotIn(b"pong", data)
        self.assertEqual(self.tls_client("alice").call("ping"), "pong")  # still serving

    def test_cli_verifies_the_daemon(self):
        p = self.ctl("--tls-ca", path("ca.pem"), "--user", "alice", "--json", "create", "bob")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.ctl("--tls-ca", path("other-ca.pem"), "--user", "alice", "ping")
        self.assertEqual(p.returncode, 1)
        self.assertIn("certificate verify failed", p.stderr)
        p = self.ctl("--tls-ca", path("ca.pem"), "--user", "alice", "ping", port=self.daemon.port)
        self.assertEqual(p.returncode, 1)  # TLS to a plain port
        p = subprocess.run([CTL, "--connect", "localhost:%d" % self.daemon.tls_port, "--tls-ca",
                            path("ca.pem"), "--user", "alice", "ping"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "pong"), p.stderr)


class TlsSlowConsumer(DaemonTest):
    """Backpressure and the --max-pending cut-off count what TLS still holds."""

    def setUp(self):
        self.daemon_args = tls_args("server", "--observer", "olga", "--max-pending", "256k",
                                    "--max-sessions-per-user", "100000",
                                    "--max-user-bytes", "0")
        super().setUp()

    def test_subscriber_cut_off(self):
        alice = self.client("alice")
        slow = Client(self.daemon.tls_port, tls=client_ctx())
        self.clients.append(slow)
        slow.hello("olga")
        slow.call("subscribe", {"all": True})
        blob = {"pad": "y" * 16000}
        for _ in range(1000):  # 16 MB of events for a reader that reads nothing
            alice.call("session.create", {"invitee": "bob", "data": blob})
        wait_for(lambda: "slow consumer cut off" in self.daemon.read_log(), "the cut-off logged")
        slow.sock.settimeout(10)
        data = b""
        try:
            while True:
                chunk = slow.sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except (ssl.SSLError, ConnectionError, socket.timeout):
            pass
        msgs = [json.loads(line) for line in data.split(b"\n")[:-1]]
        self.assertEqual(msgs[-1]["error"]["code"], 4029)
        events = [m["params"]["event"] for m in msgs if m.get("method") == "session.state_changed"]
        self.assertEqual(events, list(range(1, len(events) + 1)))  # a prefix, in order
        self.assertLess(len(events), 1000)
        self.assertEqual(alice.call("ping"), "pong")


class WrongName(DaemonTest):
    def setUp(self):
        self.daemon_args = tls_args("wrong-name")
        super().setUp()

    def test_host_name_checked(self):
        p = subprocess.run([CTL, "--connect", "127.0.0.1:%d" % self.daemon.tls_port, "--tls-ca",
                            path("ca.pem"), "--user", "alice", "ping"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("certificate verify failed", p.stderr)


class MutualTls(DaemonTest):
    def setUp(self):
        self.daemon_args = tls_args("server", "--tls-client-ca", path("ca.pem"))
        super().setUp()

    def attempt(self, cert):
        c = Client(self.daemon.tls_port, tls=client_ctx(cert))
        self.clients.append(c)
        return c.call("ping")

    def test_client_certificates(self):
        self.assertEqual(self.attempt("client"), "pong")
        for cert in (None, "stranger"):
            with self.subTest(cert=cert), self.assertRaises((ssl.SSLError, ConnectionError)):
                self.attempt(cert)
        p = subprocess.run([CTL, "--connect", "127.0.0.1:%d" % self.daemon.tls_port,
                            "--tls-ca", path("ca.pem"), "--tls-cert", path("client.pem"),
                            "--tls-key", path("client.key"), "--user", "alice", "ping"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "pong"), p.stderr)
        p = subprocess.run([CTL, "--connect", "127.0.0.1:%d" % self.daemon.tls_port,
                            "--tls-ca", path("ca.pem"), "--user", "alice", "ping"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        wait_for(lambda: "certificate" in self.daemon.read_log(), "the failure logged")


class BadSetup(unittest.TestCase):
    def test_needs_cert_and_key(self):
        from rvtest import DAEMON
        r = subprocess.run([DAEMON, "--listen-tls", "127.0.0.1:0"], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--tls-cert and --tls-key", r.stderr)
        r = subprocess.run([DAEMON, "--listen-tls", "127.0.0.1:0", "--tls-cert", path("server.pem"),
                            "--tls-key", path("client.key")], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--tls-key", r.stderr)


class Reload(unittest.TestCase):
    """SIGHUP loads certificates again: new connections get the new one, old ones stay."""

    def conf(self, cert):
        return "tls-cert = %s\ntls-key = %s\n" % (path(cert + ".pem"), path(cert + ".key"))

    def reload(self, d, text, expect):
        n = d.read_log().count(expect)
        with open(d.config, "w") as f:
            f.write(text)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: d.read_log().count(expect) > n, expect)

    def test_certificate_reload(self):
        d = Daemon("--listen-tls", "127.0.0.1:0", config=self.conf("server"))
        lax = client_ctx()
        lax.check_hostname = False
        cn = lambda c: dict(x[0] for x in c.sock.getpeercert()["subject"])["commonName"]
        try:
            before = Client(d.tls_port, tls=client_ctx())
            before.hello("alice")
            self.assertEqual(cn(before), "localhost")
            self.reload(d, self.conf("wrong-name"), "reloaded")
            self.assertIn("certificates", d.read_log().splitlines()[-1])
            after = Client(d.tls_port, tls=lax)
            self.assertEqual(cn(after), "elsewhere")
            self.assertEqual(before.call("ping"), "pong")
            # A certificate that cannot be loaded: nothing changes.
            self.reload(d, "tls-cert = %s\ntls-key = %s\n" % (path("server.pem"), path("client.key")),
                        "reload failed")
            again = Client(d.tls_port, tls=lax)
            self.assertEqual(cn(again), "elsewhere")
            for c in (before, after, again):
                c.close()
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])


if __name__ == "__main__":
    main()

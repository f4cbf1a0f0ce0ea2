#!/usr/bin/env python3
"""--auth jwt: every way a token can be wrong, keys and rotation, roles, rate limits."""
import json
import os
import signal
import subprocess
import time
import unittest

from jwtmint import Keys
from rvtest import DAEMON, Daemon, DaemonTest, lifecycle_to, main

KEYS = None
AUD = "rendezvous-test"


def setUpModule():
    global KEYS
    KEYS = Keys()


def tearDownModule():
    KEYS.close()


def jwt_args(*extra):
    return ("--auth", "jwt", "--jwt-key", "HS256:" + KEYS.secret_file,
            "--jwt-key", "rsa1=RS256:" + KEYS.rsa_pub, "--jwt-key", "ec1=ES256:" + KEYS.ec_pub,
            "--jwt-audience", AUD, *extra)


class Tokens(DaemonTest):
    def setUp(self):
        self.daemon_args = jwt_args("--max-auth-failures", "1000")
        super().setUp()

    def hello(self, token, **params):
        c = self.client()
        return c, c.call("hello", {"token": token, **params})

    def refused(self, token, **params):
        c = self.client()
        if token is not None:
            params["token"] = token
        err = self.assertRpcError(4001, c.call, "hello", params)
        # Nothing that helps an attacker: one message, no data.
        self.assertEqual(err["message"], "authentication failed")
        self.assertNotIn("data", err)
        # The connection stays usable for another try.
        self.assertEqual(c.call("ping"), "pong")
        return c

    def test_valid_tokens_of_each_algorithm(self):
        for tok in (KEYS.token(aud=AUD), KEYS.token(alg="RS256", kid="rsa1", aud=AUD),
                    KEYS.token(alg="ES256", kid="ec1", aud=[AUD, "other"])):
            c, r = self.hello(tok)
            self.assertEqual((r["user"], r["observer"], r["admin"]), ("alice", False, False))
            c.call("subscribe", {"user": "alice"})

    def test_user_may_repeat_sub(self):
        self.hello(KEYS.token(sub="bob", aud=AUD), user="bob")
        self.refused(KEYS.token(sub="bob", aud=AUD), user="mallory")

    def test_wrong_tokens(self):
        now = int(time.time())
        good = KEYS.token(aud=AUD)
        h, p, s = good.split(".")
        with open(KEYS.rsa_pub, "rb") as f:
            rsa_pub = f.read()
        cases = {
            "no token": None,
            "garbage": "not-a-token",
            "two parts": h + "." + p,
            "bad signature": h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:],
            "signature of another payload": KEYS.token(sub="bob", aud=AUD).rsplit(".", 1)[0] + "." + s,
            "expired": KEYS.token(aud=AUD, exp=now - 5),
            "not yet valid": KEYS.token(aud=AUD, nbf=now + 600),
            "wrong audience": KEYS.token(aud="someone-else"),
            "no audience": KEYS.token(),
            "alg none": KEYS.token(alg="none", aud=AUD),
            "alg none, kid of an HS key": KEYS.token(alg="none", aud=AUD, kid="rsa1"),
            "HS256 with the RSA public key as secret (kid)":
                KEYS.token(alg="HS256", kid="rsa1", aud=AUD, key=rsa_pub),
            "HS256 with the RSA public key as secret":
                KEYS.token(alg="HS256", aud=AUD, key=rsa_pub),
            "RS256 signed by another key": KEYS.token(alg="RS256", kid="rsa1", aud=AUD, key=KEYS.rsa2_key),
            "RS256 under the EC key's kid": KEYS.token(alg="RS256", kid="ec1", aud=AUD),
            "unknown kid": KEYS.token(alg="RS256", kid="rsa9", aud=AUD),
            "missing sub": KEYS.token(sub=None, aud=AUD),
            "empty sub": KEYS.token(sub="", aud=AUD),
            "missing exp": KEYS.token(aud=AUD, exp=None),
            "exp not a number": KEYS.token(aud=AUD, exp="tomorrow"),
            "roles not a list": KEYS.token(aud=AUD, roles="admin"),
            "unknown critical header": KEYS.token(aud=AUD, header={"crit": ["exp"]}),
            "HS512": KEYS.token(alg="HS512", aud=AUD),
        }
        for name, tok in cases.items():
            with self.subTest(name):
                self.refused(tok)
        log = self.daemon.read_log()
        self.assertIn("authentication failed", log)
        self.assertNotIn(good, log)  # never a token in the log

    def test_not_authenticated_until_hello(self):
        c = self.refused(KEYS.token(aud=AUD, exp=int(time.time()) - 1))
        self.assertRpcError(4001, c.call, "session.list")

    def test_roles(self):
        _, r = self.hello(KEYS.token(sub="olga", aud=AUD, roles=["observer"]))
        self.assertEqual((r["observer"], r["admin"]), (True, False))
        _, r = self.hello(KEYS.token(sub="root", aud=AUD, roles=["admin", "unknown-role"]))
        self.assertEqual((r["observer"], r["admin"]), (True, True))

    def test_fresh_token_extends_the_connection(self):
        c, _ = self.hello(KEYS.token(aud=AUD, ttl=2))
        r = c.call("hello", {"token": KEYS.token(aud=AUD, ttl=300)})
        self.assertEqual(r["user"], "alice")
        time.sleep(3)
        self.assertEqual(c.call("ping"), "pong")  # still open past the first token's exp
        self.assertRpcError(4003, c.call, "hello", {"token": KEYS.token(sub="bob", aud=AUD)})

    def test_token_expiry_closes_the_connection(self):
        c, _ = self.hello(KEYS.token(aud=AUD, ttl=2))
        msg = c.read_msg(timeout=15)
        self.assertEqual((msg["error"]["code"], msg["id"]), (4001, None))
        self.assertIn("expired", msg["error"]["message"])
        with self.assertRaises(ConnectionError):
            c.read_line(timeout=10)


class Cli(DaemonTest):
    """rendezvousctl with a token: from a file, from the environment, and refused."""

    def setUp(self):
        self.daemon_args = jwt_args("--max-auth-failures", "1000")
        super().setUp()

    def ctl(self, *args, env=None):
        return super().ctl("--json", *args, env=env)

    def test_tokens(self):
        path = os.path.join(KEYS.dir.name, "alice.jwt")
        with open(path, "w") as f:
            f.write(KEYS.token(sub="alice", aud=AUD) + "\n")
        p = self.ctl("--token-file", path, "create", "bob")
        self.assertEqual(p.returncode, 0, p.stderr)
        sid = json.loads(p.stdout)["session"]
        root = KEYS.token(sub="root", aud=AUD, roles=["admin"], alg="ES256", kid="ec1")
        p = self.ctl("list", "--all", env={"RENDEZVOUS_TOKEN": root})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([r["session"] for r in json.loads(p.stdout)["sessions"]], [sid])
        p = self.ctl("--token", KEYS.token(sub="bob", aud=AUD), "list", "--all")
        self.assertEqual(p.returncode, 1)
        self.assertIn("4003", p.stderr)
        p = self.ctl("--token", KEYS.token(sub="bob", aud="nope"), "ping")
        self.assertEqual(p.returncode, 1)
        self.assertIn("authentication failed", p.stderr)


class Keyfiles(unittest.TestCase):
    """Bad key configuration stops the daemon at start-up with a clear message."""

    def refuses(self, *args, expect):
        with self.assertRaises(RuntimeError) as cm:
            Daemon(*args)
        self.assertIn(expect, str(cm.exception))

    def test_bad_keys(self):
        short = KEYS.dir.name + "/short.secret"
        with open(short, "w") as f:
            f.write("x" * 31)
        self.refuses("--auth", "jwt", expect="at least one --jwt-key")
        self.refuses("--auth", "jwt", "--jwt-key", "HS256:" + short, expect="at least 32 bytes")
        self.refuses("--auth", "jwt", "--jwt-key", "RS256:" + KEYS.rsa_key,
                     expect="not a PEM public key")
        self.refuses("--auth", "jwt", "--jwt-key", "ES256:" + KEYS.rsa_pub, expect="EC P-256")
        self.refuses("--auth", "jwt", "--jwt-key", "PS256:" + KEYS.rsa_pub,
                     expect="HS256, RS256 or ES256")
        self.refuses("--auth", "jwt", "--jwt-key", "a=HS256:" + KEYS.secret_file,
                     "--jwt-key", "a=RS256:" + KEYS.rsa_pub, expect="given twice")
        self.refuses("--auth", "jwt", "--jwt-key", "HS256:/nonexistent", expect="cannot read")

    def test_secret_readable_by_others_warns(self):
        for mode, warned in ((0o644, True), (0o600, False)):
            os.chmod(KEYS.secret_file, mode)
            d = Daemon("--auth", "jwt", "--jwt-key", "HS256:" + KEYS.secret_file)
            status, log = d.stop()
            self.assertEqual(status, 0)
            self.assertEqual("readable by other users" in log, warned, log)

    def test_auth_none_refuses_a_public_address(self):
        # Refused before anything is bound: nothing listens beyond loopback.
        r = subprocess.run([DAEMON, "--listen", "0.0.0.0:0"], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--insecure", r.stderr)
        self.assertNotIn("listening on", r.stderr)


class FailureLimit(DaemonTest):
    def setUp(self):
        self.daemon_args = jwt_args("--max-auth-failures", "3")
        super().setUp()

    def test_repeated_failures_are_rate_limited(self):
        c = self.client()
        bad = KEYS.token(aud="wrong")
        for _ in range(3):
            self.assertRpcError(4001, c.call, "hello", {"token": bad})
        # The address has used its failures: even a good token is refused, then closed.
        err = self.assertRpcError(4029, c.call, "hello", {"token": KEYS.token(aud=AUD)})
        self.assertEqual(err["data"], {"max_auth_failures": 3})
        with self.assertRaises(ConnectionError):
            c.read_line()
        c2 = self.client()
        self.assertRpcError(4029, c2.call, "hello", {"token": KEYS.token(aud=AUD)})
        self.assertIn("too many failed hellos", self.daemon.read_log())


class FailureRefill(DaemonTest):
    """The failure budget refills over a minute: 60 per minute is one a second."""

    def setUp(self):
        self.daemon_args = jwt_args("--max-auth-failures", "60")
        super().setUp()

    def test_refills(self):
        c = self.client()
        bad = KEYS.token(aud="wrong")
        for _ in range(60):
            self.assertRpcError(4001, c.call, "hello", {"token": bad})
        self.assertRpcError(4029, self.client().call, "hello", {"token": KEYS.token(aud=AUD)})
        time.sleep(1.5)  # about one failure forgiven
        r = self.client().call("hello", {"token": KEYS.token(aud=AUD)})
        self.assertEqual(r["user"], "alice")


class Handshake(DaemonTest):
    daemon_args = ("--hello-timeout", "1", "--max-connections-per-address", "3")

    def test_hello_must_come_in_time(self):
        c = self.client()
        msg = c.read_msg(timeout=15)
        self.assertEqual((msg["error"]["code"], msg["id"]), (4001, None))
        self.assertEqual(msg["error"]["data"], {"hello_timeout": 1.0})
        with self.assertRaises(ConnectionError):
            c.read_line()

    def test_lines_before_hello_are_small(self):
        c = self.client()
        c.send_raw(b'{"jsonrpc":"2.0","method":"ping","id":1,"pad":"' + b"x" * 5000 + b'"}\n')
        r = c.read_msg()
        self.assertEqual((r["error"]["code"], r["error"]["data"]), (4013, {"max_line": 4096}))
        c.hello("alice")
        c.send_raw(b'{"jsonrpc":"2.0","method":"ping","id":9,"pad":"' + b"x" * 5000 + b'"}\n')
        self.assertEqual(c.read_msg(), {"jsonrpc": "2.0", "result": "pong", "id": 9})

    def test_connections_per_address(self):
        cs = [self.client("u%d" % i) for i in range(3)]
        extra = self.client()
        r = extra.read_msg()
        self.assertEqual((r["error"]["code"], r["error"]["data"]),
                         (4029, {"max_connections_per_address": 3}))
        with self.assertRaises(ConnectionError):
            extra.read_line()
        cs[0].close()
        time.sleep(0.2)
        self.assertEqual(self.client("again").call("ping"), "pong")


class Roles(DaemonTest):
    """The authorization matrix of PROTOCOL.md, with roles given by options."""
    daemon_args = ("--observer", "olga", "--admin", "root")

    def test_matrix(self):
        alice, bob, carol = self.client("alice"), self.client("bob"), self.client("carol")
        olga, root = self.client("olga"), self.client("root")
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        mine = alice.call("session.create", {"invitee": "carol"})["session"]
        # Anyone else: nothing.
        for method, params in (("session.get", {}), ("session.terminate", {}),
                               ("session.send", {"data": 1}), ("subscribe", {})):
            self.assertRpcError(4003, carol.call, method, {"session": sid, **params})
        self.assertRpcError(4003, carol.call, "subscribe", {"all": True})
        self.assertRpcError(4003, carol.call, "session.list", {"all": True})
        # Observer: reads and subscribes to anything, changes nothing.
        self.assertEqual(olga.call("session.get", {"session": sid})["state"], "RSS_CONNECTED")
        olga.call("subscribe", {"all": True})
        olga.call("subscribe", {"user": "alice"})
        for method, params in (("session.terminate", {}), ("session.cancel", {}),
                               ("session.send", {"data": 1})):
            self.assertRpcError(4003, olga.call, method, {"session": sid, **params})
        self.assertRpcError(4003, olga.call, "session.list", {"all": True})
        # Admin: lists every session and terminates any, as reason "admin".
        listed = root.call("session.list", {"all": True, "limit": 1})
        self.assertEqual([s["session"] for s in listed["sessions"]], [sid])
        listed = root.call("session.list", {"all": True, "after": listed["next"]})
        self.assertEqual([s["session"] for s in listed["sessions"]], [mine])
        self.assertNotIn("next", listed)
        rec = root.call("session.terminate", {"session": sid})
        self.assertEqual((rec["state"], rec["reason"]), ("RSS_TERMINATED", "admin"))
        ev = olga.event()
        self.assertEqual((ev["session"], ev["state"], ev["by"]), (sid, "RSS_TERMINATED", "root"))
        # A retry returns the record; the parties see the session ended by the admin.
        self.assertEqual(root.call("session.terminate", {"session": sid})["state"], "RSS_TERMINATED")
        self.assertEqual(alice.call("session.get", {"session": sid})["reason"], "admin")
        self.assertEqual(root.call("session.terminate", {"session": mine})["reason"], "admin")
        # The admin has no party's powers otherwise.
        other = alice.call("session.create", {"invitee": "bob"})["session"]
        self.assertRpcError(4003, root.call, "session.invite", {"session": other})

    def test_admin_terminate_carries_only_a_code_it_gave(self):
        alice, bob, root = self.client("alice"), self.client("bob"), self.client("root")
        alice.call("subscribe", {"user": "alice"})
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        rec = root.call("session.terminate", {"session": sid})
        self.assertNotIn("code", rec)
        ev = [alice.event() for _ in range(5)][-1]
        self.assertEqual(ev["state"], "RSS_TERMINATED")
        self.assertNotIn("code", ev)
        self.assertNotIn("code", alice.call("session.get", {"session": sid}))
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        self.assertEqual(root.call("session.terminate", {"session": sid, "code": 7})["code"], 7)
        # A party's terminate keeps its documented default, 0.
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        self.assertEqual(alice.call("session.terminate", {"session": sid})["code"], 0)

    def test_party_rules_win_over_roles(self):
        """An observer or admin who is the invitee sees nothing before the invitation."""
        alice = self.client("alice")
        for name in ("olga", "root"):
            c = self.client(name)
            c.call("subscribe", {"all": True})
            c.call("subscribe", {"user": name})
            sid = alice.call("session.create", {"invitee": name})["session"]
            err = self.assertRpcError(4004, c.call, "session.get", {"session": sid})
            self.assertEqual(err["data"], {"session": sid})
            self.assertRpcError(4004, c.call, "session.accept", {"session": sid})
            self.assertRpcError(4004, c.call, "session.decline", {"session": sid})
            self.assertRpcError(4004, c.call, "subscribe", {"session": sid})
            self.assertEqual(c.call("session.list")["sessions"], [])
            if name == "root":
                listed = c.call("session.list", {"all": True})["sessions"]
                self.assertNotIn(sid, [r["session"] for r in listed])
                self.assertRpcError(4004, c.call, "session.terminate", {"session": sid})
            c.no_message()  # not even the creation event through {all: true}
            alice.call("session.invite", {"session": sid})
            ev = c.event()  # the invitation is the first it hears of it
            self.assertEqual((ev["session"], ev["state"]), (sid, "RSS_INVITATION"))
            c.no_message()
            self.assertEqual(c.call("session.accept", {"session": sid})["state"], "RSS_ACCEPTED")


class NothingSecretLogged(unittest.TestCase):
    """At debug level, with every kind of request: no token, key or data in the log."""

    def test_log(self):
        d = Daemon(*jwt_args("--log-level", "debug", "--admin", "root"))
        try:
            good, bad = KEYS.token(aud=AUD), KEYS.token(aud=AUD, key=b"k" * 32)
            bob_token = KEYS.token(sub="bob", aud=AUD)
            a, b = d.client(), d.client()
            a.call("hello", {"token": good})
            b.call("hello", {"token": bob_token})
            self.assertEqual(d.client().error("hello", {"token": bad})["code"], 4001)
            sid = a.call("session.create", {"invitee": "bob", "data": {"p": "SECRET-create"}})["session"]
            a.call("session.invite", {"session": sid})
            b.call("session.accept", {"session": sid})
            a.call("session.send", {"session": sid, "data": "SECRET-send"})
            a.call("session.terminate", {"session": sid, "data": {"p": "SECRET-end"}})
            b.send_raw(b'{"jsonrpc":"2.0","method":"session.send","params":{"data":"SECRET-bad"},"id":9}\n')
            b.read_msg()
            b.send_raw(b'{"SECRET-garbage\n')
            b.read_msg()
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])
        self.assertIn(" debug: ", log)
        for secret in (good, bad, bob_token, good.split(".")[2], KEYS.secret.decode(), "SECRET"):
            self.assertNotIn(secret, log)


class KeyReload(unittest.TestCase):
    """SIGHUP loads the keys again (rotation without a restart); connections stay."""

    def test_rotation(self):
        secret2 = os.urandom(32).hex().encode()
        file2 = os.path.join(KEYS.dir.name, "hs256-rotated.secret")
        with open(file2, "wb") as f:
            f.write(secret2)
        conf = "jwt-key = HS256:%s\njwt-audience = %s\n"
        d = Daemon("--auth", "jwt", config=conf % (KEYS.secret_file, AUD))
        try:
            old = d.client()
            old.call("hello", {"token": KEYS.token(aud=AUD)})
            new_token = KEYS.token(sub="bob", aud=AUD, key=secret2)
            self.assertEqual(d.client().error("hello", {"token": new_token})["code"], 4001)
            with open(d.config, "w") as f:
                f.write(conf % (file2, AUD))
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "reloaded" not in d.read_log():
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            self.assertEqual(d.client().call("hello", {"token": new_token})["user"], "bob")
            self.assertEqual(d.client().error("hello", {"token": KEYS.token(aud=AUD)})["code"],
                             4001)
            self.assertEqual(old.call("ping"), "pong")
        finally:
            status, log = d.stop()
        self.assertEqual(status, 0, log[-3000:])
        self.assertNotIn(secret2.decode(), log)


if __name__ == "__main__":
    main()

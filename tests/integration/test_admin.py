#!/usr/bin/env python3
"""The admin role's methods (admin.stats, admin.connections, admin.kick) and
rendezvousctl's admin commands and top."""
import json
import unittest

from rvtest import DaemonTest, lifecycle_to, main


class Admin(DaemonTest):
    daemon_args = ("--admin", "root", "--observer", "olga")

    def test_admin_only(self):
        for user in ("alice", "olga"):
            c = self.client(user)
            for method in ("admin.stats", "admin.connections", "admin.kick"):
                self.assertEqual(c.error(method, {})["code"], 4003, (user, method))
        root = self.client("root")
        self.assertEqual(root.error("admin.stats", {"x": 1})["code"], -32602)
        self.assertEqual(root.error("admin.kick", {})["code"], -32602)
        self.assertEqual(root.error("admin.kick", {"connection": 1, "user": "a"})["code"], -32602)
        self.assertEqual(root.error("admin.connections", {"limit": 0})["code"], -32602)

    def test_stats_follow_activity(self):
        root = self.client("root")
        before = root.call("admin.stats")
        alice, bob = self.client("alice"), self.client("bob")
        alice.call("subscribe", {"user": "alice"})
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        alice.call("session.terminate", {"session": sid})
        lifecycle_to(alice, bob, "RSS_INVITATION")
        self.assertEqual(bob.error("session.get", {"session": "0" * 32})["code"], 4004)
        for _ in range(7):
            alice.event()
        st = root.call("admin.stats")
        self.assertEqual(st["version"], before["version"])
        self.assertEqual(st["sessions"]["RSS_TERMINATED"], 1)
        self.assertEqual(st["sessions"]["RSS_INVITATION"], 1)
        self.assertEqual(st["sessions_created"] - before["sessions_created"], 2)
        self.assertEqual(st["ended"]["terminate"], 1)
        self.assertEqual(st["connections"], 3)
        self.assertEqual(st["subscriptions"], 1)
        self.assertEqual(st["events"]["published"], 7)
        self.assertEqual(st["events"]["delivered"], 7)
        self.assertEqual(st["events"]["last"], 7)
        self.assertEqual(st["errors"], {"4004": 1})
        self.assertIn({"from": "RSS_ACCEPTED", "to": "RSS_CONNECTED", "count": 1},
                      st["transitions"])
        self.assertEqual(st["limits"]["max_subscriptions"], 0)
        self.assertTrue(st["store"]["durable"])
        self.assertGreaterEqual(st["store"]["commits"], 7)
        self.assertGreaterEqual(st["uptime_ms"], 0)

    def test_connections_and_paging(self):
        root = self.client("root")
        users = [self.client("u%d" % i) for i in range(5)]
        fresh = self.client()  # no hello yet
        users[0].call("subscribe", {"user": "u0"})
        got = root.call("admin.connections")["connections"]
        self.assertEqual(len(got), 7)
        ids = [c["connection"] for c in got]
        self.assertEqual(ids, sorted(ids))
        me = got[0]
        self.assertEqual((me["user"], me["admin"], me["state"], me["tls"]), ("root", True, "ready", False))
        self.assertRegex(me["peer"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual([c.get("subscriptions") for c in got][1], 1)
        self.assertEqual(got[-1]["state"], "handshake")
        self.assertNotIn("user", got[-1])
        page = root.call("admin.connections", {"limit": 3})
        self.assertEqual(len(page["connections"]), 3)
        rest = root.call("admin.connections", {"after": page["next"]})
        self.assertEqual([c["connection"] for c in page["connections"] + rest["connections"]], ids)
        self.assertNotIn("next", rest)
        only = root.call("admin.connections", {"user": "u3"})["connections"]
        self.assertEqual([c["user"] for c in only], ["u3"])
        self.assertTrue(fresh)

    def test_kick(self):
        root = self.client("root")
        a1, a2, b = self.client("alice"), self.client("alice"), self.client("bob")
        self.assertEqual(root.call("admin.kick", {"user": "alice"}), {"kicked": 2})
        for c in (a1, a2):
            msg = c.read_msg()
            self.assertEqual(msg["error"]["code"], 4003)
            self.assertEqual(msg["error"]["message"], "disconnected by an admin")
            with self.assertRaises(ConnectionError):
                c.read_line()
        bid = [c["connection"] for c in root.call("admin.connections")["connections"]
               if c.get("user") == "bob"][0]
        self.assertEqual(root.call("admin.kick", {"connection": bid}), {"kicked": 1})
        self.assertEqual(b.read_msg()["error"]["code"], 4003)
        self.assertEqual(root.call("admin.kick", {"connection": bid}), {"kicked": 0})
        self.assertIn("kicked by admin root", self.daemon.read_log())
        # Kicking oneself: the answer comes, then the connection closes.
        me = root.call("admin.connections", {"user": "root"})["connections"][0]["connection"]
        self.assertEqual(root.call("admin.kick", {"connection": me}), {"kicked": 1})
        with self.assertRaises(ConnectionError):
            root.read_line()

    def test_cli(self):
        alice, bob = self.client("alice"), self.client("bob")
        lifecycle_to(alice, bob, "RSS_ACCEPTED")
        p = self.ctl("--user", "root", "--json", "admin", "stats")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["sessions"]["RSS_ACCEPTED"], 1)
        p = self.ctl("--user", "root", "admin", "connections", "--user", "bob")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ID"))
        self.assertEqual(len(lines), 2)
        self.assertIn(" bob ", lines[1])
        bid = lines[1].split()[0]
        p = self.ctl("--user", "root", "admin", "kick", bid)
        self.assertEqual((p.returncode, p.stdout), (0, "kicked 1 connection(s)\n"), p.stderr)
        p = self.ctl("--user", "alice", "admin", "stats")
        self.assertEqual(p.returncode, 1)
        self.assertIn("error 4003", p.stderr)
        p = self.ctl("--user", "root", "admin", "frobnicate")
        self.assertEqual(p.returncode, 2)
        p = self.ctl("--user", "root", "--json", "top", "--interval", "0.2", "--count", "3")
        self.assertEqual(p.returncode, 0, p.stderr)
        samples = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(samples), 3)
        self.assertIsNone(samples[0]["rates"])
        self.assertEqual(samples[2]["sessions"]["RSS_ACCEPTED"], 1)
        # Each sample is one admin.stats request: about 5 per second at 0.2 s.
        self.assertGreater(samples[2]["rates"]["requests"], 0)
        p = self.ctl("--user", "root", "top", "--interval", "0.2", "--count", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("RSS_ACCEPTED", p.stdout)
        self.assertIn("transitions", p.stdout)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Every error code of the protocol, with its message and data."""
import json
import time

from rvtest import DaemonTest, lifecycle_to, main


class Errors(DaemonTest):
    daemon_args = ("--observer", "olga", "--max-sessions-per-user", "2",
                   "--max-subscriptions", "2", "--history", "5")

    def raw(self, c, text):
        c.send_raw(text.encode() + b"\n")
        return c.read_msg()

    def test_parse_error(self):
        c = self.client()
        r = self.raw(c, '{"jsonrpc": "2.0", "method": "ping", "id": 1')
        self.assertEqual(r["error"]["code"], -32700)
        self.assertIsNone(r["id"])
        self.assertIn("position", r["error"]["data"])
        self.assertEqual(c.call("ping"), "pong")  # still usable

    def test_invalid_request(self):
        c = self.client()
        for text, id in [('{"jsonrpc": "2.0", "method": 1, "params": "bar"}', None),
                         ('{"jsonrpc": "1.0", "method": "ping", "id": 3}', 3),
                         ('{"method": "ping", "id": "x"}', "x"),
                         ('{"jsonrpc": "2.0", "method": "ping", "params": 5, "id": 4}', 4),
                         ('{"jsonrpc": "2.0", "method": "ping", "id": {"a": 1}}', None),
                         ('{"jsonrpc": "2.0", "result": 1, "id": 9}', 9),
                         ('1', None), ('"ping"', None), ('null', None), ('[]', None)]:
            r = self.raw(c, text)
            self.assertEqual(r["error"]["code"], -32600, text)
            self.assertEqual(r["id"], id, text)
            self.assertEqual(r["jsonrpc"], "2.0")

    def test_batch(self):
        c = self.client("alice")
        r = self.raw(c, '[1, 2]')
        self.assertEqual([e["error"]["code"] for e in r], [-32600, -32600])
        r = self.raw(c, json.dumps([
            {"jsonrpc": "2.0", "method": "ping", "id": "a"},
            {"jsonrpc": "2.0", "method": "ping"},
            {"jsonrpc": "2.0", "method": "nope", "id": "b"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "session.get", "params": {"session": "x"}, "id": "c"}]))
        self.assertEqual(len(r), 4)
        self.assertEqual(r[0], {"jsonrpc": "2.0", "result": "pong", "id": "a"})
        self.assertEqual((r[1]["error"]["code"], r[1]["id"]), (-32601, "b"))
        self.assertEqual((r[2]["error"]["code"], r[2]["id"]), (-32600, None))
        self.assertEqual((r[3]["error"]["code"], r[3]["id"]), (4004, "c"))
        # a batch of notifications gets no reply at all
        c.send_raw(b'[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"nope"}]\n')
        c.no_message()
        self.assertEqual(c.call("ping"), "pong")

    def test_hello_client_string_is_bounded(self):
        c = self.client()
        err = c.error("hello", {"user": "alice", "client": "x" * 257})
        self.assertEqual(err["code"], -32602)
        self.assertIn("client", err["message"])
        self.assertEqual(c.error("session.list")["code"], 4001)  # nothing was done
        self.assertEqual(c.call("hello", {"user": "alice", "client": "y" * 256})["user"], "alice")

    def test_method_not_found_and_params(self):
        c = self.client("alice")
        err = c.error("session.nope")
        self.assertEqual((err["code"], err["data"]["method"]), (-32601, "session.nope"))
        for params in [{"invitee": 5}, {}, {"invitee": "bob", "ttl": "x"},
                       {"invitee": "bob", "extra": 1}, {"invitee": ""}]:
            self.assertEqual(c.error("session.create", params)["code"], -32602, params)
        self.assertEqual(c.error("session.create", ["bob"])["code"], -32602)
        self.assertEqual(c.error("session.get", {"session": 5})["code"], -32602)
        self.assertEqual(c.error("unsubscribe", {"subscription": 77})["code"], -32602)
        self.assertEqual(c.error("subscribe", {})["code"], -32602)
        self.assertEqual(c.error("subscribe", {"user": "alice", "all": True})["code"], -32602)

    def test_not_authenticated(self):
        c = self.client()
        self.assertEqual(c.call("ping"), "pong")
        for method in ("session.create", "session.get", "session.list", "subscribe"):
            err = c.error(method, {"invitee": "x"})
            self.assertEqual(err["code"], 4001, method)
        self.assertEqual(c.error("hello", {})["code"], -32602)
        self.assertEqual(c.error("hello", {"user": ""})["code"], -32602)
        self.assertEqual(c.error("hello", {"user": "a\nb"})["code"], -32602)
        c.hello("alice")
        self.assertEqual(c.call("hello", {"user": "alice"})["user"], "alice")
        self.assertEqual(c.error("hello", {"user": "mallory"})["code"], 4003)
        self.assertEqual(c.call("session.list"), {"sessions": []})

    def test_forbidden_and_no_session(self):
        alice, bob = self.client("alice"), self.client("bob")
        err = alice.error("session.get", {"session": "0" * 32})
        self.assertEqual((err["code"], err["data"]["session"]), (4004, "0" * 32))
        self.assertEqual(alice.error("session.get", {"session": "nope"})["code"], 4004)
        self.assertEqual(bob.error("subscribe", {"all": True})["code"], 4003)
        self.assertEqual(bob.error("subscribe", {"user": "alice"})["code"], 4003)
        sid = lifecycle_to(alice, bob, "RSS_READY")
        self.assertEqual(bob.error("subscribe", {"session": sid})["code"], 4004)
        carol = self.client("carol")
        self.assertEqual(carol.error("subscribe", {"session": sid})["code"], 4003)

    def test_invalid_transition_data(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_READY")
        err = alice.error("session.connect", {"session": sid})
        self.assertEqual(err["code"], 4009)
        self.assertEqual(err["data"], {"session": sid, "state": "RSS_READY", "action": "connect"})
        self.assertIn("RSS_READY", err["message"])

    def test_limits(self):
        alice, bob = self.client("alice"), self.client("bob")
        a = lifecycle_to(alice, bob, "RSS_READY")
        lifecycle_to(alice, bob, "RSS_READY")
        err = alice.error("session.create", {"invitee": "bob"})
        self.assertEqual((err["code"], err["data"]["max_sessions_per_user"]), (4029, 2))
        alice.call("session.cancel", {"session": a})  # ended sessions do not count
        lifecycle_to(alice, bob, "RSS_READY")
        alice.call("subscribe", {"user": "alice"})
        alice.call("subscribe", {"session": a})
        self.assertEqual(alice.error("subscribe", {"session": a})["code"], 4029)

    def test_too_large(self):
        c = self.client("alice")
        c.send_raw(b'{"jsonrpc":"2.0","method":"ping","id":1,"pad":"' + b"x" * 70000 + b'"}\n')
        r = c.read_msg()
        self.assertEqual((r["error"]["code"], r["id"]), (4013, None))
        self.assertEqual(r["error"]["data"]["max_line"], 65536)
        self.assertEqual(c.call("ping"), "pong")

    def test_framing_across_reads(self):
        c = self.client("alice")
        # One request sent a byte at a time, then several in one write, one with "\r\n".
        for b in b'{"jsonrpc":"2.0","method":"ping","id":1}\n':
            c.send_raw(bytes([b]))
            time.sleep(0.001)
        self.assertEqual(c.read_msg(), {"jsonrpc": "2.0", "result": "pong", "id": 1})
        c.send_raw(b'{"jsonrpc":"2.0","method":"ping","id":2}\r\n'
                   b'{"jsonrpc":"2.0","method":"ping","id":3}\n{"jsonrpc":"2.0",')
        self.assertEqual([c.read_msg()["id"] for _ in range(2)], [2, 3])
        c.send_raw(b'"method":"ping","id":4}\n')
        self.assertEqual(c.read_msg()["id"], 4)
        # A line too long, arriving in pieces with no newline yet: answered once,
        # skipped to its newline, and the request after it in the same write is served.
        for _ in range(10):
            c.send_raw(b"x" * 8000)
            time.sleep(0.005)
        c.send_raw(b"y" * 8000 + b'\n{"jsonrpc":"2.0","method":"ping","id":5}\n')
        r = c.read_msg()
        self.assertEqual((r["error"]["code"], r["id"]), (4013, None))
        self.assertEqual(c.read_msg()["id"], 5)
        c.no_message()

    def test_history_gone(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        for _ in range(2):
            lifecycle_to(alice, bob, "RSS_CONNECTED")  # 8 events, history holds 5
        err = olga.error("subscribe", {"all": True, "since": 2})
        self.assertEqual(err["code"], 4100)
        self.assertEqual(err["data"]["last_event"], 8)
        self.assertEqual(olga.call("subscribe", {"all": True, "since": 3})["last_event"], 8)
        self.assertEqual([olga.event()["event"] for _ in range(5)], [4, 5, 6, 7, 8])
        self.assertEqual(olga.error("subscribe", {"all": True, "since": 9})["code"], -32602)


if __name__ == "__main__":
    main()

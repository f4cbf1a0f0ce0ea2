#!/usr/bin/env python3
"""proto/schema/rendezvous.schema.json against the daemon, PROTOCOL.md and itself.

Every integration test checks each line its clients receive, and each request the
daemon carried out, against the schema (rvtest.Client, rvschema.py); the golden
transcripts run through the same clients. Here: the schema is valid draft 2020-12;
it names every method of the daemon's table, every notification and every error
code; a full run through every method and notification is valid and covers the
whole schema; and the checks can fail.
"""
import os
import re
import signal
import unittest

from rvtest import SCHEMA, SOURCE_ROOT, Daemon, main
from rvschema import SchemaError

SID = "5f0c3b2e9a8d4c1b7e6f5a4d3c2b1a09"


def read(*path):
    with open(os.path.join(SOURCE_ROOT, *path)) as f:
        return f.read()


def defs(prefix):
    return {k[len(prefix):] for k in SCHEMA.schema["$defs"] if k.startswith(prefix)}


class Names(unittest.TestCase):
    def test_every_method_of_the_daemon(self):
        table = read("daemon", "rpc.c")
        table = table[table.index("} methods[] = {"):]
        methods = set(re.findall(r'^\t\{"([a-z._]+)", rpc_', table, re.M))
        self.assertGreater(len(methods), 15)
        self.assertEqual(defs("params."), methods)
        self.assertEqual(defs("result."), methods)

    def test_every_notification_of_the_protocol(self):
        section = read("proto", "PROTOCOL.md").split("### 5.2 Notifications")[1]
        section = section.split("\n## ")[0]
        named = set(re.findall(r"`([a-z]+\.[a-z_]+) \{", section))
        named |= set(re.findall(r'"method": "([a-z]+\.[a-z_]+)"', section))
        self.assertEqual(defs("notification."), named)

    def test_every_error_code(self):
        codes = {int(c) for c in re.findall(r"RV_ERR_[A-Z_]+ = (-?[0-9]+)",
                                            read("lib", "rendezvous.h"))}
        self.assertEqual(set(SCHEMA.schema["$defs"]["error"]["properties"]["code"]["enum"]),
                         codes)


class CanFail(unittest.TestCase):
    """The schema refuses what the protocol does not allow."""

    def bad(self, name, value):
        with self.assertRaises(SchemaError, msg=f"{name}: {value}"):
            SCHEMA.check(name, value, "a test value")

    def test_requests(self):
        ok = {"jsonrpc": "2.0", "method": "session.create", "id": 1,
              "params": {"invitee": "bob", "ttl": 1.5, "data": [1], "topic": "call",
                         "idempotency_key": "k1"}}
        SCHEMA.check("from_client", ok, "a test value")
        SCHEMA.check("from_client", [ok, {"jsonrpc": "2.0", "method": "ping"}], "a batch")
        for params in ({}, {"invitee": ""}, {"invitee": "bob", "ttl": 0},
                       {"invitee": "bob", "tpoic": "call"}, {"invitee": "bob", "topic": "x" * 129},
                       {"invitee": "bob", "idempotency_key": ""},
                       {"invitee": "bob", "idempotency_key": "k" * 65}):
            self.bad("request", {**ok, "params": params})
        self.bad("request", {**ok, "jsonrpc": "1.0"})
        self.bad("request", {**ok, "method": "session.fly"})
        self.bad("request", {**ok, "params": [1]})
        self.bad("from_client", [])
        self.bad("params.session.get", {"session": SID, "idempotency_key": "k"})
        self.bad("params.session.get", {"session": "xyz"})
        self.bad("params.hello", {"user": "a", "device": "no spaces"})
        self.bad("params.hello", {"user": "a\nb"})
        self.bad("params.subscribe", {})
        self.bad("params.subscribe", {"user": "a", "all": True})
        self.bad("params.subscribe", {"presence": "a", "since": 3})
        self.bad("params.session.list", {"limit": 1001})
        self.bad("params.admin.kick", {"connection": 1, "user": "a"})
        self.bad("params.session.send", {"session": SID})

    def test_replies_and_notifications(self):
        event = {"session": SID, "prev": "RSS_READY", "state": "RSS_INVITATION", "event": 2,
                 "time": 1795482339002, "by": "alice", "by_device": "laptop",
                 "inviter": "alice", "invitee": "bob", "topic": ""}
        note = {"jsonrpc": "2.0", "method": "session.state_changed", "params": event}
        SCHEMA.check("from_daemon", note, "a test value")
        for params in ({**event, "state": "RSS_GONE"}, {**event, "session": SID.upper()},
                       {**event, "replay": False}, {**event, "extra": 1},
                       {k: v for k, v in event.items() if k != "by"}):
            self.bad("from_daemon", {**note, "params": params})
        self.bad("from_daemon", {**note, "id": 1})
        self.bad("from_daemon", {"jsonrpc": "2.0", "result": 1})
        self.bad("from_daemon", {"jsonrpc": "2.0", "result": 1, "error": {}, "id": 1})
        self.bad("from_daemon", {"jsonrpc": "2.0", "id": 1,
                                 "error": {"code": 4100, "message": "history gone",
                                           "data": {"since": 1}}})
        self.bad("from_daemon", {"jsonrpc": "2.0", "id": 1,
                                 "error": {"code": 4242, "message": "nope"}})
        self.bad("result.session.send", {"delivered": -1})
        self.bad("result.hello", {"user": "a"})
        self.bad("result.ping", "ping")

    def test_the_clients_check(self):
        """rvtest's hook refuses a result that does not fit the request's method."""
        pending = {}
        SCHEMA.sent(b'{"jsonrpc":"2.0","method":"session.send","id":7,'
                    b'"params":{"session":"' + SID.encode() + b'","data":1}}\n', pending)
        with self.assertRaises(SchemaError):
            SCHEMA.received(b'{"jsonrpc":"2.0","result":{"delivered":"two"},"id":7}', pending)
        with self.assertRaises(SchemaError):
            SCHEMA.received(b'{"jsonrpc":"2.0","result":true', {})
        # A request the daemon carried out must fit params.METHOD.
        SCHEMA.sent(b'{"jsonrpc":"2.0","method":"session.get","id":8,"params":{}}\n', pending)
        with self.assertRaises(SchemaError):
            SCHEMA.received(b'{"jsonrpc":"2.0","result":true,"id":8}', pending)


class FullRun(unittest.TestCase):
    """Every method and every notification, each line checked by the clients; then the
    run must have met every result, params and notification the schema defines."""

    def test_every_message(self):
        SCHEMA.seen.clear()
        d = Daemon("--observer", "olga", "--admin", "root")
        clients = []

        def client(user=None, device=None):
            c = d.client(user, device)
            clients.append(c)
            return c
        try:
            self.run_through(client)
            alice = clients[1]
            d.proc.send_signal(signal.SIGTERM)
            alice.note(method="server.shutdown")
        finally:
            for c in clients:
                c.close()
            status, log = d.stop()
        self.assertEqual(status, 0, log[-4000:])
        want = {k for k in SCHEMA.schema["$defs"]
                if k.startswith(("params.", "result.", "notification."))} | {"error"}
        self.assertEqual(want - SCHEMA.seen, set())

    def run_through(self, client):
        olga = client()
        self.assertEqual(olga.call("ping"), "pong")
        olga.hello("olga")
        alice, bob = client("alice", "laptop"), client("bob", "phone")
        tablet = client("bob", "tablet")  # says hello, hears nothing: learns outcomes
        olga.call("subscribe", {"all": True})
        bob.call("subscribe", {"user": "bob"})
        s = alice.call("session.create", {"invitee": "bob", "ttl": 60, "data": {"x": 1},
                                          "topic": "call", "idempotency_key": "c1"})["session"]
        alice.call("session.invite", {"session": s})
        sub = alice.call("subscribe", {"presence": "bob"})  # allowed by the invitation
        self.assertIn("presence", sub)
        client("bob", "desk")  # a device comes
        alice.note(method="presence.changed")
        bob.call("session.accept", {"session": s})
        alice.call("session.connect", {"session": s})
        bob.call("session.connect", {"session": s})
        self.assertEqual(alice.call("session.send", {"session": s, "data": "offer"}),
                         {"delivered": 1})
        bob.note(method="session.context_data")
        alice.call("session.get", {"session": s})
        alice.call("session.list", {"limit": 1})
        alice.call("presence.get", {"user": "bob"})
        t = alice.call("session.create", {"invitee": "bob"})["session"]
        alice.call("session.invite", {"session": t})
        bob.call("session.decline", {"session": t, "reason": "busy"})
        u = alice.call("session.create", {"invitee": "bob"})["session"]
        alice.call("session.invite", {"session": u})
        alice.call("session.cancel", {"session": u, "reason": "later"})
        alice.call("session.terminate", {"session": s, "code": 3, "data": {"bye": 1}})
        # The tablet missed every end: its next hello brings the outcomes.
        tablet.close()
        tablet = client("bob", "tablet")
        tablet.note(method="session.outcome")
        outcomes = tablet.call("session.outcomes")["outcomes"]
        self.assertEqual(len(outcomes), 3)
        tablet.call("session.ack", {"sessions": [o["session"] for o in outcomes]})
        alice.call("unsubscribe", {"subscription": sub["subscription"]})
        err = alice.error("session.get", {"session": SID})
        self.assertEqual(err["code"], 4004)
        root = client("root")
        root.call("admin.stats")
        conns = root.call("admin.connections", {"user": "bob"})["connections"]
        self.assertTrue(conns)
        self.assertEqual(root.call("admin.kick", {"connection": conns[0]["connection"]}),
                         {"kicked": 1})
        # olga was sent every event; each is checked as it is read.
        while olga.event()["state"] != "RSS_TERMINATED":
            pass


if __name__ == "__main__":
    main()

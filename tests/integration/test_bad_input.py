#!/usr/bin/env python3
"""Nothing a client sends crashes the daemon, leaks, or disturbs other clients."""
import json
import os
import random

from rvtest import SOURCE_ROOT, DaemonTest, lifecycle_to, main

CORPUS = os.path.join(SOURCE_ROOT, "tests", "corpus", "json-test-suite", "test_parsing")


class BadInput(DaemonTest):
    def sync(self, c, token):
        """Send a ping and collect every line up to its reply."""
        c.send_raw(json.dumps({"jsonrpc": "2.0", "method": "ping", "id": token}).encode() + b"\n")
        got = []
        while True:
            msg = json.loads(c.read_line())
            if isinstance(msg, dict) and msg.get("id") == token and msg.get("result") == "pong":
                return got
            got.append(msg)

    def test_json_test_suite(self):
        files = sorted(os.listdir(CORPUS))
        self.assertGreater(len(files), 300)
        c = self.client("alice")
        bystander, bob = self.client("carol"), self.client("bob")
        sid = lifecycle_to(bystander, bob, "RSS_ACCEPTED")
        for i, name in enumerate(files):
            with open(os.path.join(CORPUS, name), "rb") as f:
                data = f.read()
            c.send_raw(data + b"\n")
            replies = self.sync(c, f"sync-{i}")
            lines = [l for l in data.split(b"\n")]
            expected = sum(1 for l in lines if l.rstrip(b"\r") != b"")
            self.assertEqual(len(replies), expected, f"{name}: {replies}")
            for r in replies:
                if isinstance(r, list):
                    continue
                self.assertIn("error", r, name)
                self.assertIn(r["error"]["code"], (-32700, -32600, 4013), name)
            if i % 50 == 0:  # others are not disturbed meanwhile
                self.assertEqual(bystander.call("session.send", {"session": sid, "data": i}),
                                 {"delivered": 1})
        self.assertEqual(c.call("session.list"), {"sessions": []})

    def test_garbage(self):
        c = self.client("alice")
        cases = [
            b"\x00\x01\x02\x03",
            b'{"jsonrpc":"2.0","method":"ping","id":1}\x00',
            b'{"jsonrpc":"2.0","method":"p\xffng","id":1}',
            b'{"jsonrpc":"2.0","method":"ping","id":123456789012345678901234567890}',
            b'{"jsonrpc":"2.0","method":"session.create","params":{"invitee":"b","ttl":1e999},"id":1}',
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b'"\\ud800"',
            b"\xef\xbb\xbf{}",
            b"\r",
            b"   ",
            bytes(range(256)).replace(b"\n", b""),
        ]
        for i, data in enumerate(cases):
            c.send_raw(data + b"\n")
            replies = self.sync(c, f"g{i}")
            expected = 0 if data in (b"\r",) else 1
            self.assertEqual(len(replies), expected, f"{data[:40]!r}: {replies}")
            for r in replies:
                self.assertIn("error", r)
        rec = c.call("session.create", {"invitee": "bob", "ttl": 1e308})  # capped
        self.assertEqual(rec["expires"] - rec["created"], 86400 * 1000)
        self.assertEqual(c.error("session.create", {"invitee": "bob", "ttl": -1e308})["code"], -32602)
        self.assertEqual(c.call("ping"), "pong")

    def test_random_bytes(self):
        rnd = random.Random(1234)
        c = self.client("alice")
        for i in range(300):
            n = rnd.randint(1, 300)
            data = bytes(rnd.getrandbits(8) for _ in range(n)).replace(b"\n", b" ")
            c.send_raw(data + b"\n")
            replies = self.sync(c, f"r{i}")
            self.assertLessEqual(len(replies), 1)
        # random mutations of valid requests
        base = json.dumps({"jsonrpc": "2.0", "method": "session.create",
                           "params": {"invitee": "bob", "ttl": 5, "data": {"k": [1, 2]}},
                           "id": 1}).encode()
        for i in range(300):
            b = bytearray(base)
            for _ in range(rnd.randint(1, 4)):
                b[rnd.randrange(len(b))] = rnd.getrandbits(8)
            data = bytes(b).replace(b"\n", b" ")
            c.send_raw(data + b"\n")
            self.sync(c, f"m{i}")
        self.assertEqual(c.call("ping"), "pong")

    def test_split_writes(self):
        c = self.client()
        msg = b'{"jsonrpc":"2.0","method":"hello","params":{"user":"al"},"id":1}\r\n'
        for byte in msg:
            c.send_raw(bytes([byte]))
        self.assertEqual(c.read_msg()["result"]["user"], "al")
        # several requests in one write
        c.send_raw(b'{"jsonrpc":"2.0","method":"ping","id":2}\n' * 3)
        self.assertEqual([c.read_msg()["id"] for _ in range(3)], [2, 2, 2])

    def test_long_line_in_pieces(self):
        c = self.client("alice")
        c.send_raw(b"[" + b"1," * 40000)
        c.send_raw(b"1," * 40000 + b"1]\n")
        r = c.read_msg()
        self.assertEqual(r["error"]["code"], 4013)
        self.assertEqual(c.call("ping"), "pong")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A client that does not read is cut off at --max-pending; nobody else slows down."""
import json
import socket
import time

from rvtest import DaemonTest, lifecycle_to, main


def drain(sock):
    """Everything the daemon sent until it closed the connection."""
    sock.settimeout(10)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


class SlowConsumer(DaemonTest):
    daemon_args = ("--observer", "olga", "--max-pending", "256k", "--max-sessions-per-user", "100000",
                   "--max-user-bytes", "0")

    def test_context_data_reader_cut_off(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        blob = "x" * 8000
        start = time.monotonic()
        sent = 0
        for i in range(4000):
            r = alice.response(alice.request("session.send", {"session": sid, "data": blob}))
            if "error" in r:
                self.assertEqual(r["error"]["code"], 4010)  # bob is gone now
                break
            sent += 1
        else:
            self.fail("the slow consumer was never cut off")
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 60)
        data = drain(bob.sock)
        lines = data.split(b"\n")
        self.assertEqual(lines[-1], b"")  # ends with a whole line
        msgs = [json.loads(l) for l in lines[:-1]]
        last = msgs[-1]
        self.assertEqual(last["error"]["code"], 4029)
        self.assertIn("slow consumer", last["error"]["message"])
        got = [m for m in msgs if m.get("method") == "session.context_data"]
        self.assertGreater(len(got), 0)
        self.assertLess(len(got), sent + 1)
        self.assertIn("slow consumer cut off", self.daemon.read_log())
        # alice and others carry on
        self.assertEqual(alice.call("ping"), "pong")

    def test_subscriber_cut_off_others_unaffected(self):
        alice, bob = self.client("alice"), self.client("bob")
        slow = self.client("olga")
        slow.call("subscribe", {"all": True})
        fast = self.client("olga")
        fast.call("subscribe", {"all": True})
        blob = {"pad": "y" * 16000}
        n = 1000  # 16 MB: more than loopback socket buffers can hide
        for i in range(n):
            alice.call("session.create", {"invitee": "bob", "data": blob})
            if i % 100 == 99:  # the fast subscriber keeps up
                self.assertEqual([fast.event()["event"] for _ in range(100)],
                                 list(range(i - 98, i + 2)))
        data = drain(slow.sock)
        msgs = [json.loads(l) for l in data.split(b"\n")[:-1]]
        self.assertEqual(msgs[-1]["error"]["code"], 4029)
        events = [m["params"]["event"] for m in msgs if m.get("method") == "session.state_changed"]
        self.assertEqual(events, list(range(1, len(events) + 1)))  # a prefix, in order


if __name__ == "__main__":
    main()

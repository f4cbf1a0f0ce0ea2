#!/usr/bin/env python3
"""Limits: connections (an error line, then close), data size, request rate; all counted.
Waits are on conditions (wait_for); the request bucket's refill is a wait on the clock."""
import json
import os
import socket
import time

from rvtest import Daemon, DaemonTest, lifecycle_to, main, wait_for


class Limits(DaemonTest):
    daemon_args = ("--max-connections", "3")

    def test_max_connections(self):
        held = [self.client("u%d" % i) for i in range(3)]
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        err = json.loads(data.decode().strip())
        self.assertEqual(err["error"]["code"], 4029)
        self.assertEqual(err["error"]["data"]["max_connections"], 3)
        self.assertIsNone(err["id"])
        for c in held:  # the others are untouched
            self.assertEqual(c.call("ping"), "pong")
        held[0].close()
        self.clients.remove(held[0])

        def slot_back():
            c = self.client()
            try:
                return c.call("ping") == "pong"
            except (ConnectionError, AssertionError):
                return False

        # The freed slot comes back once the daemon saw the close.
        wait_for(slot_back, "the closed connection's slot to be free again")
        self.assertIn("connection refused: 3 connections", self.daemon.read_log())


class Data(DaemonTest):
    daemon_args = ("--max-data", "100")

    def test_max_data(self):
        alice, bob = self.client("alice"), self.client("bob")
        big = {"blob": "x" * 100}
        err = self.assertRpcError(4029, alice.call, "session.create", {"invitee": "bob", "data": big})
        self.assertEqual(err["data"], {"max_data": 100})
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED", data={"blob": "x" * 80})
        self.assertRpcError(4029, alice.call, "session.send", {"session": sid, "data": big})
        self.assertEqual(alice.call("session.send", {"session": sid, "data": "small"})["delivered"], 1)
        self.assertRpcError(4029, alice.call, "session.terminate", {"session": sid, "data": big})

    def test_max_data_counts_every_json_value(self):
        """A string, a number or an array over --max-data is refused as an object is."""
        alice, bob = self.client("alice"), self.client("bob")
        for big in ("x" * 200, [1] * 60, {"k": "x" * 100}):
            err = self.assertRpcError(4029, alice.call, "session.create",
                                      {"invitee": "bob", "data": big})
            self.assertEqual(err["data"], {"max_data": 100}, big)
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED", data="y" * 90)
        self.assertRpcError(4029, alice.call, "session.send", {"session": sid, "data": "x" * 150})
        self.assertRpcError(4029, alice.call, "session.terminate",
                            {"session": sid, "data": "x" * 150})


class Rate(DaemonTest):
    daemon_args = ("--max-request-rate", "5", "--max-request-burst", "5")

    def wait_refilled(self):
        """The bucket refills with time (5 a second, up to 5): the condition is the clock."""
        time.sleep(1.2)

    def test_request_rate(self):
        c = self.client()
        self.wait_refilled()  # hello took one token
        # A burst of 12 pipelined pings: the bucket holds 5.
        for i in range(12):
            c.request("ping", id=100 + i)
        replies = [c.read_msg() for _ in range(12)]
        ok = [r for r in replies if "result" in r]
        limited = [r for r in replies if "error" in r]
        self.assertEqual(len(ok), 5)
        self.assertEqual({r["error"]["code"] for r in limited}, {4029})
        self.assertEqual(limited[0]["error"]["data"], {"max_request_rate": 5, "max_request_burst": 5})
        self.assertEqual([r["id"] for r in replies], list(range(100, 112)))  # answered in order
        self.wait_refilled()
        self.assertEqual(c.call("ping"), "pong")  # refilled
        status, log = self.daemon.stop()
        self.assertEqual(status, 0)
        self.assertIn("limits: 7 requests refused (max-request-rate)", log)
        self.daemon = Daemon()  # for tearDown


class DataNumbers(DaemonTest):
    daemon_args = ("--max-data", "16")

    def test_numbers_count_too(self):
        alice = self.client("alice")
        for big in (1234567890123456789, -1.2345678901234567e-300, "x" * 15):
            err = self.assertRpcError(4029, alice.call, "session.create",
                                      {"invitee": "bob", "data": big})
            self.assertEqual(err["data"], {"max_data": 16})
        for small in (123456789012345, "x" * 14, 0.5):
            alice.call("session.create", {"invitee": "bob", "data": small})


def create_cancel(c, rounds, data):
    """rounds of session.create then, if it was taken, session.cancel, pipelined by 100.
    Returns how many creates were refused, and the last refusal."""
    refused, last = 0, None
    for start in range(0, rounds, 100):
        ids = [c.request("session.create", {"invitee": "bob", "data": data})
               for _ in range(min(100, rounds - start))]
        sids = []
        for i in ids:
            r = c.response(i)
            if "error" in r:
                refused += 1
                last = r["error"]
            else:
                sids.append(r["result"]["session"])
        for i in [c.request("session.cancel", {"session": sid}) for sid in sids]:
            assert "result" in c.response(i)
    return refused, last


class Memory(DaemonTest):
    """Memory stays bounded at default settings, ended sessions included."""

    def setUp(self):
        # Under AddressSanitizer, freed memory waits in a 256 MB quarantine:
        # measure the daemon's memory, not ASan's (no effect on other builds).
        asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.daemon = Daemon(env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=0:"
                                                 "thread_local_quarantine_size_kb=0"})
        self.clients = []
        self.addCleanup(self.stop_daemon)

    def test_ended_sessions_count_against_their_user(self):
        alice, bob = self.client("alice"), self.client("bob")
        create_cancel(alice, 200, "w" * 16000)  # warm up the allocator and the store
        before = self.daemon.rss()
        refused, err = create_cancel(alice, 10000, "x" * 16000)
        grown = self.daemon.rss() - before
        self.assertGreater(refused, 9000)
        self.assertEqual(err["code"], 4029)
        self.assertEqual(err["data"], {"max_user_bytes": 8 << 20})
        self.assertLess(grown, 64 << 20, "RSS grew by %d MB" % (grown >> 20))
        # Another user is not held back by alice's sessions.
        self.assertEqual(bob.call("session.create", {"invitee": "alice"})["state"], "RSS_READY")


class UserBytes(DaemonTest):
    daemon_args = ("--max-user-bytes", "64k", "--linger", "0.5", "--store", "memory")

    def test_freed_sessions_give_their_room_back(self):
        alice = self.client("alice")
        refused, err = create_cancel(alice, 20, "y" * 10000)
        self.assertEqual(refused, 14)  # 6 sessions of 10,512 bytes fit in 64 KiB
        # Once the ended ones are freed (--linger), there is room again.
        wait_for(lambda: "result" in alice.response(alice.request("session.create",
                                                                    {"invitee": "bob"})),
                 "room for a new session once the ended ones were freed")
        status, log = self.daemon.stop()
        self.assertEqual(status, 0)
        self.assertRegex(log, r"limits: \d+ sessions refused \(max-user-bytes\)")
        self.daemon = Daemon()  # for tearDown


if __name__ == "__main__":
    main()

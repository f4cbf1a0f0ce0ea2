#!/usr/bin/env python3
"""Requests that are safe to retry (PROTOCOL.md 4.6): a change with an
idempotency_key, retried by the same user and method within
--idempotency-window, gets the first call's reply again and changes nothing."""
import json
import time

from rvtest import DaemonTest, lifecycle_to, main

WINDOW = 1.0


class Idempotency(DaemonTest):
    daemon_args = ("--observer", "olga", "--idempotency-window", str(WINDOW))

    def test_a_retried_create_makes_one_session(self):
        olga = self.client("olga")
        olga.call("subscribe", {"all": True})
        alice = self.client("alice")
        first = alice.call("session.create", {"invitee": "bob", "idempotency_key": "a-1"})
        again = alice.call("session.create", {"invitee": "bob", "idempotency_key": "a-1"})
        self.assertEqual(first, again)
        self.assertEqual(len(alice.call("session.list")["sessions"]), 1)
        self.assertEqual(olga.event()["session"], first["session"])
        olga.no_message(0.3)  # one creation event, not two
        # Other params with the same key: refused, nothing done.
        err = alice.error("session.create", {"invitee": "carol", "idempotency_key": "a-1"})
        self.assertEqual((err["code"], err["data"]), (4022, {"idempotency_key": "a-1"}))
        self.assertEqual(len(alice.call("session.list")["sessions"]), 1)
        # Keys are per user and per method.
        other = self.client("carol").call("session.create",
                                          {"invitee": "bob", "idempotency_key": "a-1"})
        self.assertNotEqual(other["session"], first["session"])
        rec = alice.call("session.invite", {"session": first["session"], "idempotency_key": "a-1"})
        self.assertEqual(rec["state"], "RSS_INVITATION")

    def test_a_retried_send_delivers_once(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        p = {"session": sid, "data": {"candidate": 1}, "idempotency_key": "send-1"}
        self.assertEqual(alice.call("session.send", p), {"delivered": 1})
        self.assertEqual(alice.call("session.send", p), {"delivered": 1})
        self.assertEqual(bob.note(method="session.context_data")["params"]["data"],
                         {"candidate": 1})
        bob.no_message(0.3)

    def test_the_first_error_comes_again(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        dev = bob.device
        bob.close()
        p = {"session": sid, "data": 1, "idempotency_key": "late"}
        self.assertEqual(alice.error("session.send", p)["code"], 4010)
        bob = self.client("bob", device=dev)
        self.assertEqual(alice.error("session.send", p)["code"], 4010)  # the first reply
        del p["idempotency_key"]
        self.assertEqual(alice.call("session.send", p), {"delivered": 1})

    def test_in_a_batch_and_as_a_notification(self):
        alice = self.client("alice")
        create = {"jsonrpc": "2.0", "method": "session.create",
                  "params": {"invitee": "bob", "idempotency_key": "b"}}
        alice.send_raw(json.dumps([dict(create, id=1), dict(create, id=2)]).encode() + b"\n")
        replies = alice.read_msg()
        self.assertEqual([r["id"] for r in replies], [1, 2])
        self.assertEqual(replies[0]["result"], replies[1]["result"])
        # A notification with a key counts too: its retry as a request gets the same.
        alice.send_raw(json.dumps(dict(create, params={"invitee": "carol",
                                                      "idempotency_key": "n"})).encode() + b"\n")
        again = alice.call("session.create", {"invitee": "carol", "idempotency_key": "n"})
        self.assertEqual(len(alice.call("session.list")["sessions"]), 2)
        self.assertEqual(again["invitee"], "carol")

    def test_bad_keys(self):
        alice = self.client("alice")
        for key in ("", "k" * 65, 7, None):
            err = alice.error("session.create", {"invitee": "bob", "idempotency_key": key})
            self.assertEqual(err["code"], -32602, key)
        self.assertIn("session", alice.call("session.create",
                                            {"invitee": "bob", "idempotency_key": "k" * 64}))
        # Methods that change nothing take no key.
        self.assertEqual(alice.error("session.list", {"idempotency_key": "x"})["code"], -32602)

    def test_the_window_passes(self):
        alice = self.client("alice")
        first = alice.call("session.create", {"invitee": "bob", "idempotency_key": "w"})
        time.sleep(WINDOW + 0.5)  # the window is time itself
        again = alice.call("session.create", {"invitee": "bob", "idempotency_key": "w"})
        self.assertNotEqual(first["session"], again["session"])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The full lifecycle with two parties and an observer, records, retries, roles."""
import time

from rvtest import DaemonTest, RpcError, lifecycle_to, main

STATES = ["RSS_UNKNOWN", "RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED",
          "RSS_CANCELLED", "RSS_DECLINED", "RSS_TERMINATED"]


class Lifecycle(DaemonTest):
    daemon_args = ("--observer", "olga")

    def test_full_lifecycle(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        self.assertEqual(olga.call("subscribe", {"all": True})["last_event"], 0)
        bob.call("subscribe", {"user": "bob"})
        alice.call("subscribe", {"user": "alice"})

        before = int(time.time() * 1000)
        rec = alice.call("session.create", {"invitee": "bob", "data": {"room": 42}})
        sid = rec["session"]
        self.assertRegex(sid, r"^[0-9a-f]{32}$")
        self.assertEqual(rec["state"], "RSS_READY")
        self.assertEqual((rec["inviter"], rec["invitee"], rec["remote_user"]), ("alice", "bob", "bob"))
        self.assertEqual(rec["flags"], 0x1 | 0x4)
        self.assertGreaterEqual(rec["created"], before - 5)
        self.assertEqual(rec["expires"] - rec["created"], 300 * 1000)
        self.assertEqual(rec["event"], 1)
        self.assertEqual(rec["data"], {"room": 42})

        ev = olga.event()
        self.assertEqual((ev["session"], ev["prev"], ev["state"], ev["event"], ev["by"]),
                         (sid, "RSS_UNKNOWN", "RSS_READY", 1, "alice"))
        self.assertEqual(ev["data"], {"room": 42})
        self.assertEqual(alice.event()["event"], 1)
        bob.no_message()  # the invitee sees nothing before the invitation

        rec = alice.call("session.invite", {"session": sid})
        self.assertEqual(rec["state"], "RSS_INVITATION")
        for c in (olga, alice, bob):
            ev = c.event()
            self.assertEqual((ev["prev"], ev["state"], ev["event"], ev["by"]),
                             ("RSS_READY", "RSS_INVITATION", 2, "alice"))
        self.assertEqual(ev["data"], {"room": 42})  # the invitation carries its data

        rec = bob.call("session.get", {"session": sid})
        self.assertEqual((rec["remote_user"], rec["flags"]), ("alice", 0x2))
        orec = olga.call("session.get", {"session": sid})
        self.assertEqual((orec["remote_user"], orec["flags"]), (None, 0))

        self.assertEqual(bob.call("session.accept", {"session": sid})["state"], "RSS_ACCEPTED")
        for c in (olga, alice, bob):
            self.assertEqual(c.event()["state"], "RSS_ACCEPTED")

        # context data both ways, to every live connection of the other party's
        # engaged device (bob2 is another connection of the device that accepted)
        bob2 = self.client("bob", device=bob.device)
        self.assertEqual(alice.call("session.send", {"session": sid, "data": {"sdp": "x"}}),
                         {"delivered": 2})
        for c in (bob, bob2):
            n = c.note(method="session.context_data")["params"]
            self.assertEqual(n, {"session": sid, "from": "alice", "data": {"sdp": "x"}})
        self.assertEqual(bob.call("session.send", {"session": sid, "data": [1, 2]}), {"delivered": 1})
        self.assertEqual(alice.note(method="session.context_data")["params"]["data"], [1, 2])
        olga.no_message()

        rec = alice.call("session.connect", {"session": sid})
        self.assertEqual(rec["state"], "RSS_ACCEPTED")
        self.assertEqual(rec["confirmed"], {"inviter": True, "invitee": False})
        rec = bob.call("session.connect", {"session": sid})
        self.assertEqual(rec["state"], "RSS_CONNECTED")
        for c in (olga, alice, bob):
            ev = c.event()
            self.assertEqual((ev["prev"], ev["state"], ev["by"]), ("RSS_ACCEPTED", "RSS_CONNECTED", "bob"))

        rec = bob.call("session.terminate", {"session": sid, "code": 7, "data": "bye"})
        self.assertEqual((rec["state"], rec["code"], rec["app_data"]), ("RSS_TERMINATED", 7, "bye"))
        for c in (olga, alice, bob):
            ev = c.event()
            self.assertEqual((ev["prev"], ev["state"], ev["code"], ev["data"], ev["by"], ev["event"]),
                             ("RSS_CONNECTED", "RSS_TERMINATED", 7, "bye", "bob", 5))
        # ended sessions linger for get
        self.assertEqual(alice.call("session.get", {"session": sid})["state"], "RSS_TERMINATED")
        olga.no_message()

    def test_event_ids_grow_by_one(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        olga.call("subscribe", {"all": True})
        for _ in range(3):
            lifecycle_to(alice, bob, "RSS_CONNECTED")
        ids = [olga.event()["event"] for _ in range(12)]
        self.assertEqual(ids, list(range(1, 13)))

    def test_decline_and_cancel(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_INVITATION")
        rec = bob.call("session.decline", {"session": sid, "reason": "busy"})
        self.assertEqual((rec["state"], rec["reason"]), ("RSS_DECLINED", "busy"))
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        self.assertEqual(bob.call("session.decline", {"session": sid})["state"], "RSS_DECLINED")
        for state in ("RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED"):
            sid = lifecycle_to(alice, bob, state)
            rec = alice.call("session.cancel", {"session": sid, "reason": "oops"})
            self.assertEqual((rec["state"], rec["reason"]), ("RSS_CANCELLED", "oops"))

    def test_terminate_rules(self):
        alice, bob = self.client("alice"), self.client("bob")
        for state in ("RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED"):
            sid = lifecycle_to(alice, bob, state)
            rec = alice.call("session.terminate", {"session": sid})
            self.assertEqual((rec["state"], rec["code"]), ("RSS_TERMINATED", 0))
        for state in ("RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED"):
            sid = lifecycle_to(alice, bob, state)
            self.assertEqual(bob.call("session.terminate", {"session": sid, "code": -3})["code"], -3)

    def test_retries_return_the_record(self):
        alice, bob, olga = self.client("alice"), self.client("bob"), self.client("olga")
        olga.call("subscribe", {"all": True})
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        for _ in range(3):
            olga.event()
        again = bob.call("session.accept", {"session": sid})
        self.assertEqual((again["state"], again["event"]), ("RSS_ACCEPTED", 3))
        self.assertEqual(alice.call("session.invite", {"session": sid})["state"], "RSS_ACCEPTED")
        alice.call("session.connect", {"session": sid})
        self.assertEqual(alice.call("session.connect", {"session": sid})["confirmed"]["inviter"], True)
        olga.no_message()  # retries publish nothing
        alice.call("session.cancel", {"session": sid})
        self.assertEqual(alice.call("session.cancel", {"session": sid})["state"], "RSS_CANCELLED")
        self.assertEqual(olga.event()["state"], "RSS_CANCELLED")
        olga.no_message()

    def test_invalid_transitions(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_INVITATION")
        err = self.assertRpcError(4009, alice.call, "session.connect", {"session": sid})
        self.assertEqual(err["data"]["state"], "RSS_INVITATION")
        self.assertEqual(alice.call("session.get", {"session": sid})["state"], "RSS_INVITATION")
        bob.call("session.decline", {"session": sid})
        err = self.assertRpcError(4009, bob.call, "session.accept", {"session": sid})
        self.assertEqual(err["data"]["state"], "RSS_DECLINED")
        self.assertRpcError(4009, alice.call, "session.terminate", {"session": sid})
        self.assertRpcError(4009, alice.call, "session.send", {"session": sid, "data": 1})
        sid = lifecycle_to(alice, bob, "RSS_INVITATION")
        self.assertRpcError(4009, bob.call, "session.send", {"session": sid, "data": 1})

    def test_roles(self):
        alice, bob, carol, olga = (self.client(u) for u in ("alice", "bob", "carol", "olga"))
        sid = lifecycle_to(alice, bob, "RSS_READY")
        # the invitee cannot see it yet; a stranger is forbidden
        self.assertRpcError(4004, bob.call, "session.get", {"session": sid})
        self.assertRpcError(4004, bob.call, "session.terminate", {"session": sid})
        self.assertRpcError(4003, carol.call, "session.get", {"session": sid})
        self.assertEqual(olga.call("session.get", {"session": sid})["state"], "RSS_READY")
        self.assertRpcError(4003, olga.call, "session.invite", {"session": sid})
        alice.call("session.invite", {"session": sid})
        self.assertRpcError(4003, bob.call, "session.invite", {"session": sid})
        self.assertRpcError(4003, alice.call, "session.accept", {"session": sid})
        self.assertRpcError(4003, alice.call, "session.decline", {"session": sid})
        self.assertRpcError(4003, bob.call, "session.cancel", {"session": sid})
        self.assertRpcError(4003, carol.call, "session.accept", {"session": sid})
        self.assertRpcError(4003, carol.call, "session.send", {"session": sid, "data": 1})
        self.assertEqual(bob.call("session.get", {"session": sid})["state"], "RSS_INVITATION")

    def test_peer_unavailable(self):
        alice, bob = self.client("alice"), self.client("bob")
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        bob.close()
        time.sleep(0.2)
        err = self.assertRpcError(4010, alice.call, "session.send", {"session": sid, "data": "x"})
        self.assertEqual(err["data"]["peer"], "bob")

    def test_list_paging_and_filter(self):
        alice, bob, carol = self.client("alice"), self.client("bob"), self.client("carol")
        made = [lifecycle_to(alice, bob, "RSS_INVITATION") for _ in range(5)]
        hidden = lifecycle_to(alice, bob, "RSS_READY")
        made.append(hidden)
        incoming = lifecycle_to(carol, alice, "RSS_INVITATION")
        made.append(incoming)
        lifecycle_to(carol, alice, "RSS_READY")  # not yet visible to alice

        seen, after = [], None
        while True:
            params = {"limit": 2}
            if after:
                params["after"] = after
            page = alice.call("session.list", params)
            self.assertLessEqual(len(page["sessions"]), 2)
            seen += [r["session"] for r in page["sessions"]]
            after = page.get("next")
            if not after:
                break
        self.assertEqual(seen, made)
        bob_view = bob.call("session.list")["sessions"]
        self.assertEqual([r["session"] for r in bob_view], made[:5])
        self.assertTrue(all(r["flags"] == 2 and r["remote_user"] == "alice" for r in bob_view))
        ready = alice.call("session.list", {"state": "RSS_READY"})["sessions"]
        self.assertEqual([r["session"] for r in ready], [hidden])
        self.assertRpcError(-32602, alice.call, "session.list", {"state": "READY"})
        self.assertRpcError(-32602, alice.call, "session.list", {"limit": 0})
        self.assertRpcError(4004, alice.call, "session.list", {"after": "0" * 32})

    def test_session_ids_are_canonical(self):
        """Whatever case a caller spells an id in, the daemon answers in lower case."""
        alice, bob = self.client("alice"), self.client("bob")
        bob.call("subscribe", {"user": "bob"})
        sid = alice.call("session.create", {"invitee": "bob"})["session"]
        self.assertEqual(sid, sid.lower())
        up = sid.upper()
        self.assertEqual(alice.call("session.invite", {"session": up})["session"], sid)
        self.assertEqual(bob.call("session.accept", {"session": up})["session"], sid)
        self.assertEqual(alice.call("subscribe", {"session": up})["subscription"], 1)
        self.assertEqual(alice.call("session.send", {"session": up, "data": 1})["delivered"], 1)
        ctx = bob.note(method="session.context_data")["params"]
        self.assertEqual(ctx["session"], sid)
        for ev in (bob.event(), bob.event()):
            self.assertEqual(ev["session"], sid)
        err = self.assertRpcError(4003, alice.call, "session.accept",
                                  {"session": sid[:8].upper() + sid[8:]})
        self.assertEqual(err["data"]["session"], sid)
        err = self.assertRpcError(4004, alice.call, "session.get", {"session": "AB" * 16})
        self.assertEqual(err["data"]["session"], "ab" * 16)
        rec = alice.call("session.terminate", {"session": up, "code": 1})
        self.assertEqual(rec["session"], sid)
        self.assertEqual(alice.event()["session"], sid)
        self.assertEqual(alice.call("session.list", {"after": up})["sessions"], [])

    def test_ttl_override_is_capped(self):
        alice, bob = self.client("alice"), self.client("bob")
        rec = alice.call("session.create", {"invitee": "bob", "ttl": 2.5})
        self.assertEqual(rec["expires"] - rec["created"], 2500)
        rec = alice.call("session.create", {"invitee": "bob", "ttl": 10 ** 9})
        self.assertEqual(rec["expires"] - rec["created"], 86400 * 1000)
        self.assertRpcError(-32602, alice.call, "session.create", {"invitee": "bob", "ttl": 0})
        self.assertRpcError(-32602, alice.call, "session.create", {"invitee": "bob", "ttl": "5"})
        self.assertRpcError(-32602, alice.call, "session.create", {"invitee": "alice"})


if __name__ == "__main__":
    main()

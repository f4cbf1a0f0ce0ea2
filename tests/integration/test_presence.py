#!/usr/bin/env python3
"""Presence (PROTOCOL.md 4.7): which devices of a user are connected, for the user
itself, a user in a live session with it, observers and admins."""
from rvtest import DaemonTest, lifecycle_to, main


class Presence(DaemonTest):
    daemon_args = ("--observer", "olga", "--admin", "root")

    def test_who_may_see(self):
        alice = self.client("alice", "laptop")
        self.assertEqual(alice.call("presence.get", {"user": "alice"}),
                         {"user": "alice", "online": True, "devices": ["laptop"]})
        # A stranger's presence is not alice's business...
        self.assertEqual(alice.error("presence.get", {"user": "bob"})["code"], 4003)
        self.assertEqual(alice.error("subscribe", {"presence": "bob"})["code"], 4003)
        # ...but observers and admins see everyone, offline users too.
        for who in ("olga", "root"):
            self.assertEqual(self.client(who).call("presence.get", {"user": "bob"}),
                             {"user": "bob", "online": False, "devices": []})
        # A live session with bob, once bob may see it, shows him to alice and her to him.
        bob = self.client("bob", "phone")
        sid = lifecycle_to(alice, bob, "RSS_READY")
        self.assertEqual(bob.error("presence.get", {"user": "alice"})["code"], 4003)
        alice.call("session.invite", {"session": sid})
        self.assertEqual(alice.call("presence.get", {"user": "bob"})["devices"], ["phone"])
        self.assertEqual(bob.call("presence.get", {"user": "alice"})["online"], True)
        alice.call("session.cancel", {"session": sid})
        self.assertEqual(alice.error("presence.get", {"user": "bob"})["code"], 4003)
        self.assertEqual(alice.error("presence.get", {"user": ""})["code"], -32602)

    def test_changes(self):
        olga = self.client("olga")
        r = olga.call("subscribe", {"presence": "bob"})
        self.assertEqual(r["presence"], {"user": "bob", "online": False, "devices": []})
        phone = self.client("bob", "phone")
        self.assertEqual(olga.note(method="presence.changed")["params"],
                         {"user": "bob", "online": True, "devices": ["phone"]})
        phone2 = self.client("bob", "phone")  # the same device again: no change
        laptop = self.client("bob", "laptop")
        self.assertEqual(olga.note(method="presence.changed")["params"]["devices"],
                         ["phone", "laptop"])
        phone.close()  # phone2 is still the phone
        laptop.close()
        self.assertEqual(olga.note(method="presence.changed")["params"]["devices"], ["phone"])
        phone2.close()
        self.assertEqual(olga.note(method="presence.changed")["params"],
                         {"user": "bob", "online": False, "devices": []})
        olga.no_message(0.3)
        self.assertEqual(olga.error("subscribe", {"presence": "bob", "since": 0})["code"], -32602)
        self.assertTrue(olga.call("unsubscribe", {"subscription": r["subscription"]}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Several devices per user (PROTOCOL.md 4.4): hello's device, the first device to
answer wins, only the engaged devices connect and receive context data, and peer
loss is judged by them."""
import re

from rvtest import DaemonTest, lifecycle_to, main, wait_for

GRACE = 1.0


class Devices(DaemonTest):
    daemon_args = ("--peer-grace", str(GRACE), "--admin", "root")

    def test_hello_device(self):
        a = self.client()
        self.assertEqual(a.hello("alice", "phone")["device"], "phone")
        # Absent: one assigned per connection, which differ, and may be given again.
        b1, b2 = self.client("bob"), self.client("bob")
        self.assertRegex(b1.device, r"^conn-[0-9a-f]{16}$")
        self.assertNotEqual(b1.device, b2.device)
        self.assertEqual(self.client("bob", device=b1.device).device, b1.device)
        for bad in ("", "x" * 65, "with space", "slash/", "é"):
            c = self.client()
            err = c.error("hello", {"user": "carol", "device": bad})
            self.assertEqual(err["code"], -32602, bad)
        self.assertEqual(self.client().call("hello", {"user": "carol", "device": "x" * 64})["device"],
                         "x" * 64)
        # A retried hello may not change the device.
        err = a.error("hello", {"user": "alice", "device": "laptop"})
        self.assertEqual((err["code"], err["data"]), (4003, {"device": "phone"}))
        self.assertEqual(a.call("hello", {"user": "alice", "device": "phone"})["device"], "phone")
        self.assertEqual(a.call("hello", {"user": "alice"})["device"], "phone")
        root = self.client("root")
        conns = root.call("admin.connections", {"user": "alice"})["connections"]
        self.assertEqual([c["device"] for c in conns], ["phone"])

    def test_first_device_to_accept_wins(self):
        alice = self.client("alice", device="laptop")
        phone, laptop = self.client("bob", device="phone"), self.client("bob", device="laptop")
        for c in (phone, laptop):
            c.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(alice, phone, "RSS_INVITATION")
        for c in (phone, laptop):
            self.assertEqual(c.event()["state"], "RSS_INVITATION")
        rec = phone.call("session.accept", {"session": sid})
        self.assertEqual((rec["answered_by"], rec["by_device"], rec["inviter_device"]),
                         ("phone", "phone", "laptop"))
        # Every subscribed connection of bob hears who answered, and stops ringing.
        for c in (phone, laptop):
            ev = c.event()
            self.assertEqual((ev["state"], ev["by"], ev["by_device"]),
                             ("RSS_ACCEPTED", "bob", "phone"))
        for method in ("session.accept", "session.decline", "session.connect"):
            err = laptop.error(method, {"session": sid})
            self.assertEqual(err["code"], 4009, method)
            self.assertEqual((err["data"]["answered_by"], err["data"]["reason"],
                              err["data"]["state"]),
                             ("phone", "answered_elsewhere", "RSS_ACCEPTED"))
        # The same device's retry is a retry: the record, nothing published.
        self.assertEqual(phone.call("session.accept", {"session": sid})["event"], rec["event"])
        laptop.no_message(0.2)
        # The inviter's other devices may not connect either; its creating one may.
        tablet = self.client("alice", device="tablet")
        err = tablet.error("session.connect", {"session": sid})
        self.assertEqual((err["code"], err["data"]["reason"]), (4009, "answered_elsewhere"))
        self.assertEqual(alice.call("session.connect", {"session": sid})["confirmed"]["inviter"],
                         True)
        self.assertEqual(phone.call("session.connect", {"session": sid})["state"], "RSS_CONNECTED")
        # Anything else may come from any device of a party.
        self.assertEqual(tablet.call("session.terminate", {"session": sid})["state"],
                         "RSS_TERMINATED")

    def test_send_reaches_the_engaged_device_only(self):
        alice = self.client("alice", device="laptop")
        phone, laptop = self.client("bob", device="phone"), self.client("bob", device="laptop")
        phone2 = self.client("bob", device="phone")  # a second connection of the phone
        sid = lifecycle_to(alice, phone, "RSS_ACCEPTED")
        self.assertEqual(alice.call("session.send", {"session": sid, "data": {"sdp": 1}}),
                         {"delivered": 2})
        for c in (phone, phone2):
            self.assertEqual(c.note(method="session.context_data")["params"]["data"], {"sdp": 1})
        laptop.no_message(0.2)
        # From any device of bob, to alice's creating device only.
        tablet = self.client("alice", device="tablet")
        self.assertEqual(laptop.call("session.send", {"session": sid, "data": 2}), {"delivered": 1})
        self.assertEqual(alice.note(method="session.context_data")["params"]["data"], 2)
        tablet.no_message(0.2)
        # The engaged device gone, bob's laptop still here: 4010 naming the device.
        phone.close()
        phone2.close()
        self.wait_gone("bob", "phone")
        err = alice.error("session.send", {"session": sid, "data": 3})
        self.assertEqual((err["code"], err["data"]["device"]), (4010, "phone"))
        laptop.no_message(0.2)

    def wait_gone(self, user, device):
        root = self.client("root")
        wait_for(lambda: device not in [c.get("device") for c in root.call(
            "admin.connections", {"user": user})["connections"]], f"{user}'s {device} to leave")

    def test_peer_loss_is_judged_by_the_engaged_device(self):
        alice = self.client("alice", device="laptop")
        phone, laptop = self.client("bob", device="phone"), self.client("bob", device="laptop")
        laptop.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(alice, phone, "RSS_CONNECTED")
        for _ in range(3):  # invited, accepted, connected (bob sees none before the invitation)
            laptop.event()
        # The phone comes back within the grace period: nothing happens.
        phone.close()
        phone = self.client("bob", device="phone")
        laptop.no_message(GRACE + 0.5)
        # The phone leaves for good; bob's laptop does not keep the session.
        phone.close()
        ev = laptop.event(timeout=GRACE + 10)
        self.assertEqual((ev["session"], ev["state"], ev["reason"], ev["by_device"]),
                         (sid, "RSS_TERMINATED", "peer_lost", None))

    def test_before_the_answer_any_device_of_the_inviter_counts(self):
        phone = self.client("alice", device="phone")
        laptop = self.client("alice", device="laptop")
        bob = self.client("bob", device="desk")
        bob.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(phone, bob, "RSS_INVITATION")
        bob.event()
        phone.close()  # the creating device goes; the laptop is still alice
        bob.no_message(GRACE + 0.5)
        self.assertEqual(laptop.call("session.get", {"session": sid})["state"], "RSS_INVITATION")
        # Once answered, the creating device is the one that counts.
        bob.call("session.accept", {"session": sid})
        bob.event()
        ev = bob.event(timeout=GRACE + 10)
        self.assertEqual((ev["state"], ev["reason"]), ("RSS_TERMINATED", "peer_lost"))
        self.assertTrue(re.match(r"^[0-9a-f]{32}$", ev["session"]))


if __name__ == "__main__":
    main()

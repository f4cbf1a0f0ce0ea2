"""Several daemons, one service: sessions shared through Redis (issue 15).

Every test starts a real redis-server and daemons (nodes) on loopback ports,
stops them by pid, and checks each node exited cleanly.
"""
import json
import os
import signal
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

from rvtest import (SANITIZER_MARKS, Daemon, Redis, RpcError, Watch, free_port, lifecycle_to,
                    redis_command, wait_for)


class Load(threading.Thread):
    """Lifecycles from alice to bob, one after another, until stop(): create, invite,
    then steps ((client, method) pairs). acked: each session's last acknowledged state;
    done: sessions gone through; refused: error codes met (5003 while Redis is away)."""

    def __init__(self, alice, bob, steps=None, pause=0.05):
        super().__init__(daemon=True)
        self.alice, self.pause = alice, pause
        self.steps = steps or [(bob, "session.decline")]
        self.acked, self.done, self.refused = {}, [], []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                sid = self.alice.call("session.create", {"invitee": "bob"})["session"]
                self.acked[sid] = "RSS_READY"
                self.acked[sid] = self.alice.call("session.invite", {"session": sid})["state"]
                for client, method in self.steps:
                    self.acked[sid] = client.call(method, {"session": sid})["state"]
                self.done.append(sid)
            except RpcError as e:
                self.refused.append(e.code)
                time.sleep(self.pause)

    def stop(self):
        self.stopping.set()
        self.join()


class Shared(unittest.TestCase):
    """A Redis and some nodes; the nodes' logs are checked at the end."""

    redis_args = ()

    def setUp(self):
        self.redis = Redis(*self.redis_args)
        self.addCleanup(self.redis.stop)
        self.url = self.redis.url
        self.nodes = []
        self.clients = []
        self.addCleanup(self.stop_nodes)

    def node(self, *args, **kw):
        d = Daemon("--store", self.url, "--observer", "olga", *args, **kw)
        self.nodes.append(d)
        return d

    def client(self, node, user, device=None):
        c = node.client(user, device)
        self.clients.append(c)
        return c

    def stop_nodes(self):
        for c in self.clients:
            c.close()
        for d in self.nodes:
            status, log = d.stop()
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, log, log[-4000:])
            if status != -signal.SIGKILL:
                self.assertEqual(status, 0, "a node exited %s:\n%s" % (status, log[-4000:]))

    def events(self, c, n):
        return [c.event() for _ in range(n)]


class Lifecycle(Shared):
    def test_three_nodes_one_service(self):
        """Inviter on A, invitee on B, an observer on C: every event once, in order."""
        a, b, c = [self.node("--node-name", n, "--admin", "root") for n in "abc"]
        alice, bob = self.client(a, "alice"), self.client(b, "bob")
        olga = self.client(c, "olga")
        olga.call("subscribe", {"all": True})
        root = self.client(b, "root")
        wait_for(lambda: sorted(root.call("admin.stats")["store"]["shared"]["nodes"]) ==
                 ["a", "b", "c"], "the three nodes listed")
        shared = root.call("admin.stats")["store"]["shared"]
        self.assertEqual((shared["node"], shared["ready"], shared["lease"]), ("b", True, True))
        alice.call("subscribe", {"user": "alice"})
        sid = lifecycle_to(alice, bob, "RSS_CONNECTED")
        # The reply on A was given after Redis took it: B and C read it at once.
        rec = bob.call("session.get", {"session": sid})
        self.assertEqual(rec["state"], "RSS_CONNECTED")
        self.assertEqual(olga.call("session.get", {"session": sid})["state"], "RSS_CONNECTED")
        end = bob.call("session.terminate", {"session": sid, "code": 7, "data": {"x": 1}})
        self.assertEqual(end["state"], "RSS_TERMINATED")
        seen = self.events(olga, 5)
        self.assertEqual([e["event"] for e in seen], list(range(1, 6)))
        self.assertEqual([e["state"] for e in seen],
                         ["RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED",
                          "RSS_TERMINATED"])
        self.assertEqual(seen[-1]["code"], 7)
        self.assertEqual(seen[-1]["data"], {"x": 1})
        olga.no_message()
        # The inviter's own subscription on A: the same ids, each once.
        mine = self.events(alice, 5)
        self.assertEqual([e["event"] for e in mine], list(range(1, 6)))
        alice.no_message()
        # Every node lists it; a new subscriber anywhere replays the history.
        self.assertEqual([s["session"] for s in alice.call("session.list")["sessions"]], [sid])
        late = self.client(b, "olga")
        late.call("subscribe", {"all": True, "since": 0})
        self.assertEqual([e["event"] for e in self.events(late, 5)], list(range(1, 6)))

    def test_reply_before_event_on_every_node(self):
        """A change's reply comes before its event on the connection that asked."""
        a, b = self.node(), self.node()
        alice, bob = self.client(a, "alice"), self.client(b, "bob")
        alice.call("subscribe", {"user": "alice"})
        bob.call("subscribe", {"user": "bob"})
        for _ in range(20):
            sid = alice.call("session.create", {"invitee": "bob"})["session"]
            self.assertEqual(alice.event()["state"], "RSS_READY")
            alice.call("session.invite", {"session": sid})
            self.assertEqual(alice.event()["state"], "RSS_INVITATION")
            self.assertEqual(bob.event()["state"], "RSS_INVITATION")
            bob.call("session.decline", {"session": sid})
            self.assertEqual(bob.event()["state"], "RSS_DECLINED")
            self.assertEqual(alice.event()["state"], "RSS_DECLINED")

    def test_a_node_started_later_loads_everything(self):
        a = self.node()
        alice, bob = self.client(a, "alice"), self.client(a, "bob")
        sids = [lifecycle_to(alice, bob, "RSS_ACCEPTED") for _ in range(5)]
        b = self.node()
        carol = self.client(b, "bob")
        listed = [s["session"] for s in carol.call("session.list")["sessions"]]
        self.assertEqual(listed, sids)
        carol.call("subscribe", {"user": "bob", "since": 0})
        ids = [carol.event()["event"] for _ in range(10)]  # invite and accept of each
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 10)

    def test_devices_on_two_nodes_first_accept_wins(self):
        a, b, c = self.node(), self.node(), self.node()
        alice = self.client(a, "alice")
        phone, laptop = self.client(b, "bob", "phone"), self.client(c, "bob", "laptop")
        sid = lifecycle_to(alice, phone, "RSS_INVITATION")
        phone.request("session.accept", {"session": sid}, id=1)
        laptop.request("session.accept", {"session": sid}, id=1)
        r1, r2 = phone.read_msg(), laptop.read_msg()
        wins = [r for r in (r1, r2) if "result" in r]
        losses = [r for r in (r1, r2) if "error" in r]
        self.assertEqual(len(wins), 1, (r1, r2))
        self.assertEqual(losses[0]["error"]["code"], 4009)
        self.assertEqual(losses[0]["error"]["data"]["reason"], "answered_elsewhere")
        winner = "phone" if "result" in r1 else "laptop"
        self.assertEqual(alice.call("session.get", {"session": sid})["answered_by"], winner)

    def test_an_outcome_reaches_the_device_on_any_node(self):
        a, b, c = self.node(), self.node(), self.node()
        alice = self.client(a, "alice", "laptop")
        phone, tablet = self.client(b, "bob", "phone"), self.client(b, "bob", "tablet")
        tablet.call("subscribe", {"user": "bob"})
        sid = lifecycle_to(alice, phone, "RSS_INVITATION")
        phone.close()
        alice.call("session.cancel", {"session": sid, "reason": "later"})
        while tablet.event()["state"] != "RSS_CANCELLED":
            pass
        # The phone, away when it ended, learns it after its hello on another node...
        phone = self.client(c, "bob", "phone")
        o = phone.note(method="session.outcome")["params"]
        self.assertEqual((o["session"], o["state"], o["reason"], o["by_device"]),
                         (sid, "RSS_CANCELLED", "later", "laptop"))
        # ...and on every node until it acknowledges it on one.
        again = self.client(a, "bob", "phone")
        self.assertEqual(again.note(method="session.outcome")["params"], o)
        self.assertEqual(again.call("session.ack", {"sessions": [sid]}), {"acked": 1})
        self.assertEqual(phone.call("session.outcomes")["outcomes"], [])
        # The tablet saw it end on node B: nothing for it anywhere (once B told Redis).
        tablet.close()
        tablet = self.client(c, "bob", "tablet")
        wait_for(lambda: tablet.call("session.outcomes")["outcomes"] == [],
                 "the tablet's outcome forgotten once written to it")

    def test_context_data_reaches_the_peer_on_another_node(self):
        a, b = self.node(), self.node()
        alice, phone = self.client(a, "alice"), self.client(b, "bob", "phone")
        laptop = self.client(a, "bob", "laptop")
        sid = lifecycle_to(alice, phone, "RSS_ACCEPTED")
        wait_for(lambda: alice.call("presence.get", {"user": "bob"})["devices"] ==
                 ["laptop", "phone"], "bob's phone seen on node A")
        r = alice.call("session.send", {"session": sid, "data": {"sdp": "offer", "n": [1, 2]}})
        self.assertEqual(r["delivered"], 1)
        note = phone.note(method="session.context_data")["params"]
        self.assertEqual(note, {"session": sid, "from": "alice",
                                "data": {"sdp": "offer", "n": [1, 2]}})
        laptop.no_message()  # not the engaged device
        self.assertEqual(phone.call("session.send", {"session": sid, "data": "answer"}),
                         {"delivered": 1})
        self.assertEqual(alice.note(method="session.context_data")["params"]["data"], "answer")
        # The engaged device gone from every node: 4010 naming it.
        phone.close()
        wait_for(lambda: alice.call("presence.get", {"user": "bob"})["devices"] == ["laptop"],
                 "bob's phone gone on node A")
        with self.assertRaises(RpcError) as cm:
            alice.call("session.send", {"session": sid, "data": 1})
        self.assertEqual((cm.exception.code, cm.exception.error["data"]["device"]),
                         (4010, "phone"))

    def test_idempotency_keys_across_nodes(self):
        a, b, c = self.node(), self.node(), self.node()
        on_a, on_b, on_c = (self.client(n, "alice") for n in (a, b, c))
        bob = self.client(c, "bob")
        first = on_a.call("session.create", {"invitee": "bob", "idempotency_key": "k1"})
        # The same call again, on other nodes: the first reply, nothing created.
        self.assertEqual(on_b.call("session.create", {"invitee": "bob", "idempotency_key": "k1"}),
                         first)
        self.assertEqual(on_c.call("session.create", {"invitee": "bob", "idempotency_key": "k1"}),
                         first)
        self.assertEqual(len(on_c.call("session.list")["sessions"]), 1)
        with self.assertRaises(RpcError) as cm:
            on_b.call("session.create", {"invitee": "carol", "idempotency_key": "k1"})
        self.assertEqual(cm.exception.code, 4022)
        sid = first["session"]
        on_a.call("session.invite", {"session": sid})
        acc = bob.call("session.accept", {"session": sid, "idempotency_key": "a1"})
        bob_on_a = self.client(a, "bob")
        self.assertEqual(bob_on_a.call("session.accept", {"session": sid, "idempotency_key": "a1"}),
                         acc)
        # An error is kept too: a cancel refused stays refused for its key.
        on_a.call("session.terminate", {"session": sid})
        with self.assertRaises(RpcError) as e1:
            on_b.call("session.cancel", {"session": sid, "idempotency_key": "c1"})
        with self.assertRaises(RpcError) as e2:
            on_c.call("session.cancel", {"session": sid, "idempotency_key": "c1"})
        self.assertEqual((e1.exception.code, e1.exception.error),
                         (e2.exception.code, e2.exception.error))

    def test_the_same_key_at_once_on_two_nodes_creates_one_session(self):
        a, b = self.node(), self.node()
        on_a, on_b = self.client(a, "alice"), self.client(b, "alice")
        for i in range(50):
            p = {"invitee": "bob", "idempotency_key": "race-%d" % i}
            on_a.request("session.create", p, id=i)
            on_b.request("session.create", p, id=i)
        for i in range(50):
            ra, rb = on_a.read_msg(), on_b.read_msg()
            self.assertEqual(ra["result"]["session"], rb["result"]["session"], (ra, rb))
        self.assertEqual(len(on_a.call("session.list", {"limit": 1000})["sessions"]), 50)

    def test_the_per_user_limit_holds_across_nodes(self):
        a, b = (self.node("--max-sessions-per-user", "2") for _ in range(2))
        on_a, on_b = self.client(a, "alice"), self.client(b, "alice")
        first = on_a.call("session.create", {"invitee": "bob"})["session"]
        on_b.call("session.create", {"invitee": "carol"})
        for c in (on_a, on_b):
            with self.assertRaises(RpcError) as cm:
                c.call("session.create", {"invitee": "dave"})
            self.assertEqual(cm.exception.code, 4029)
            self.assertEqual(cm.exception.error["data"], {"max_sessions_per_user": 2})
        on_b.call("session.cancel", {"session": first})
        self.assertEqual(on_a.call("session.create", {"invitee": "dave"})["state"], "RSS_READY")

    def test_glare_across_nodes(self):
        a, b = self.node(), self.node()
        alice, bob = self.client(a, "alice"), self.client(b, "bob")
        first = alice.call("session.create", {"invitee": "bob", "topic": "t"})["session"]
        alice.call("session.invite", {"session": first})
        mine = bob.call("session.create", {"invitee": "alice", "topic": "t"})["session"]
        with self.assertRaises(RpcError) as cm:
            bob.call("session.invite", {"session": mine})
        self.assertEqual(cm.exception.code, 4091)
        self.assertEqual(cm.exception.error["data"]["session"], first)
        rec = alice.call("session.get", {"session": mine})
        self.assertEqual(rec["state"], "RSS_TERMINATED")
        self.assertEqual(rec["reason"], "glare")
        self.assertEqual(rec["replaced_by"], first)


class Races(Shared):
    RACES = 300

    def test_the_same_change_from_two_nodes_has_one_winner(self):
        """Cancel on A and decline on B, at once, for many sessions: one wins each."""
        a, b = self.node(), self.node()
        alice, bob = self.client(a, "alice"), self.client(b, "bob")
        sids = []
        for i in range(self.RACES):
            alice.request("session.create", {"invitee": "bob"}, id=i)
        for i in range(self.RACES):
            sids.append(alice.response(i)["result"]["session"])
        for i, sid in enumerate(sids):
            alice.request("session.invite", {"session": sid}, id=i)
        for i in range(self.RACES):
            alice.response(i)
        for i, sid in enumerate(sids):
            alice.request("session.cancel", {"session": sid}, id=i)
            bob.request("session.decline", {"session": sid}, id=i)
        wins_a = wins_b = 0
        for i in range(self.RACES):
            ra, rb = alice.read_msg(), bob.read_msg()
            self.assertEqual((ra["id"], rb["id"]), (i, i))
            self.assertEqual(("result" in ra) + ("result" in rb), 1, (ra, rb))
            loser = rb if "result" in ra else ra
            self.assertEqual(loser["error"]["code"], 4009, loser)
            wins_a += "result" in ra
            wins_b += "result" in rb
        print("races: node A won %d, node B %d" % (wins_a, wins_b))
        # Every event id once, contiguous: create, invite and one end per session.
        olga = self.client(a, "olga")
        olga.call("subscribe", {"all": True, "since": 0})
        ids = [olga.event()["event"] for _ in range(3 * self.RACES)]
        self.assertEqual(ids, list(range(1, 3 * self.RACES + 1)))


class Deadlines(Shared):
    def test_expiry_fires_when_the_node_that_set_it_is_gone(self):
        a, b = self.node(), self.node()
        alice = self.client(a, "alice")
        olga = self.client(b, "olga")
        olga.call("subscribe", {"all": True})
        sid = alice.call("session.create", {"invitee": "bob", "ttl": 1})["session"]
        self.assertEqual(olga.event()["state"], "RSS_READY")
        a.proc.kill()
        a.proc.wait()
        ev = olga.event(timeout=10)
        self.assertEqual((ev["session"], ev["state"], ev["reason"]),
                         (sid, "RSS_TERMINATED", "expired"))
        olga.no_message(1.5)  # fired once, though every node looked


class Presence(Shared):
    def test_a_party_on_another_node_is_present_until_its_lease_lapses(self):
        a, b = self.node("--peer-grace", "1"), self.node("--peer-grace", "1")
        alice, bob = self.client(a, "alice"), self.client(b, "bob", "phone")
        olga = self.client(a, "olga")
        olga.call("subscribe", {"all": True})
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        self.events(olga, 3)
        # Each node sees the other's parties: nobody is lost while both are connected.
        wait_for(lambda: alice.call("presence.get", {"user": "bob"})["devices"] == ["phone"],
                 "bob's phone seen on node A")
        olga.no_message(2.5)
        self.assertEqual(alice.call("session.get", {"session": sid})["state"], "RSS_ACCEPTED")
        # Node B dies: bob counts as gone once its lease lapses, then the grace runs.
        t0 = time.monotonic()
        b.proc.kill()
        b.proc.wait()
        ev = olga.event(timeout=15)
        waited = time.monotonic() - t0
        self.assertEqual((ev["session"], ev["state"], ev["reason"]),
                         (sid, "RSS_TERMINATED", "peer_lost"))
        self.assertGreater(waited, 1.0)  # the lease (3 s) and the grace (1 s), not at once
        self.assertEqual(olga.call("presence.get", {"user": "bob"})["devices"], [])

    def test_a_node_stopped_gracefully_takes_its_devices_at_once(self):
        a, b = self.node(), self.node("--node-name", "b")
        olga = self.client(a, "olga")
        self.client(b, "bob", "phone")
        wait_for(lambda: olga.call("presence.get", {"user": "bob"})["online"], "bob on A")
        self.assertIn("phone", self.redis.command("HGETALL", "rv:p:b"))
        status, log = b.stop()
        self.assertEqual(status, 0, log[-3000:])
        self.assertIn("redis: node b left", log)
        # Its lease and devices are gone from Redis when it has stopped, not 3 s later.
        self.assertEqual(self.redis.command("ZSCORE", "rv:nodes", "b"), "$-1\r\n")
        self.assertEqual(self.redis.command("EXISTS", "rv:p:b"), ":0\r\n")
        wait_for(lambda: not olga.call("presence.get", {"user": "bob"})["online"],
                 "bob gone on A")

    def test_presence_subscribers_hear_of_devices_on_other_nodes(self):
        a, b = self.node(), self.node()
        olga = self.client(a, "olga")
        olga.call("subscribe", {"presence": "bob"})
        phone = self.client(b, "bob", "phone")
        note = olga.note(method="presence.changed")["params"]
        self.assertEqual((note["user"], note["online"], note["devices"]),
                         ("bob", True, ["phone"]))
        phone.close()
        note = olga.note(method="presence.changed")["params"]
        self.assertEqual((note["online"], note["devices"]), (False, []))

    def test_leaving_gracefully_and_coming_back(self):
        a, b = self.node("--peer-grace", "1"), self.node("--peer-grace", "1")
        alice = self.client(a, "olga")
        bob = self.client(b, "bob", "phone")
        wait_for(lambda: alice.call("presence.get", {"user": "bob"})["online"],
                 "bob online on A")
        bob.close()
        wait_for(lambda: not alice.call("presence.get", {"user": "bob"})["online"],
                 "bob offline on A")
        bob2 = self.client(b, "bob", "tablet")
        wait_for(lambda: alice.call("presence.get", {"user": "bob"})["devices"] == ["tablet"],
                 "bob's tablet on A")
        del bob2


class NodeDeath(Shared):
    def test_a_watch_fails_over_when_its_node_is_killed_under_load(self):
        """rendezvousctl watch on A,B: A is SIGKILLed while B takes changes; no gap, no duplicate."""
        a, b = self.node(), self.node()
        w = Watch("127.0.0.1:%d,127.0.0.1:%d" % (a.port, b.port), "olga", "--all")
        lines, errs = w.lines, w.errs
        load = Load(self.client(b, "alice"), self.client(b, "bob"))
        try:
            wait_for(lambda: any("watching" in e for e in errs), "the watch to subscribe")
            load.start()
            wait_for(lambda: len(lines) >= 30, "events through node A")
            a.proc.kill()
            a.proc.wait()
            wait_for(lambda: any("resumed on 127.0.0.1:%d" % b.port in e for e in errs),
                     "the watch to resume on node B", timeout=20)
            n = len(load.done)
            wait_for(lambda: len(load.done) >= n + 10, "load after the failover")
            load.stop()
            last = int(self.redis.command("GET", "rv:ev").split("\r\n")[1])
            wait_for(lambda: len(lines) >= last, "every event at the watch")
            time.sleep(0.3)  # a duplicate would come now
        finally:
            load.stopping.set()
            self.assertEqual(w.stop(), 0, "".join(errs))
        ids = [json.loads(l)["params"]["event"] for l in lines]
        self.assertEqual(ids, list(range(1, last + 1)), "".join(errs))
        print("failover: %d events, the watch moved from node A to node B" % last)


class RedisRestart(Shared):
    redis_args = ("--appendonly", "yes", "--appendfsync", "always")

    def test_nothing_acknowledged_is_lost_when_redis_is_killed(self):
        """SIGKILL redis-server (appendfsync always) under load, start it again."""
        a, b = self.node("--store-timeout", "1"), self.node("--store-timeout", "1")
        olga = self.client(b, "olga")
        olga.call("subscribe", {"all": True})
        alice, bob = self.client(a, "alice"), self.client(b, "bob")
        load = Load(alice, bob, [(bob, "session.accept"), (alice, "session.cancel")])
        load.start()
        try:
            wait_for(lambda: len(load.acked) >= 20, "some load")
            self.redis.kill(signal.SIGKILL)
            time.sleep(0.5)
            self.redis.start()
            n = len(load.acked)
            wait_for(lambda: len(load.acked) >= n + 20, "load after the restart", timeout=30)
        finally:
            load.stop()
        acked, failures = load.acked, load.refused
        self.assertTrue(set(failures) <= {5003, 4009}, failures)
        order = ["RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CANCELLED"]
        for sid, state in acked.items():
            now = alice.call("session.get", {"session": sid})["state"]
            self.assertGreaterEqual(order.index(now), order.index(state), (sid, state, now))
        last = int(self.redis.command("GET", "rv:ev").split("\r\n")[1])
        ids = []
        while len(ids) < last:
            ids.append(olga.event()["event"])
        self.assertEqual(ids, list(range(1, last + 1)))
        olga.no_message()
        print("restart: %d sessions, %d events, %d refused while redis was away"
              % (len(acked), last, len(failures)))


class LostWrites(Shared):
    def test_redis_losing_its_data_sends_4100_to_subscribers(self):
        a = self.node()
        olga = self.client(a, "olga")
        olga.call("subscribe", {"all": True})
        alice, bob = self.client(a, "alice"), self.client(a, "bob")
        sid = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        self.assertEqual(self.events(olga, 3)[-1]["event"], 3)
        # No persistence: a restart loses everything (as a failover to a lagging replica).
        self.redis.kill(signal.SIGKILL)
        self.redis.start()
        msg = olga.read_msg(timeout=15)
        self.assertEqual((msg["id"], msg["error"]["code"]), (None, 4100), msg)
        with self.assertRaises(ConnectionError):  # then closed
            olga.read_line(timeout=10)
        # The node serves again, from what Redis has now.
        c = self.client(a, "alice")
        wait_for(lambda: self.try_list(c) == [], "the node reloaded")
        with self.assertRaises(RpcError) as cm:
            c.call("session.get", {"session": sid})
        self.assertEqual(cm.exception.code, 4004)
        again = self.client(a, "olga")
        with self.assertRaises(RpcError) as cm:
            again.call("subscribe", {"all": True, "since": 3})
        self.assertEqual(cm.exception.code, 4100)
        self.assertEqual(c.call("session.create", {"invitee": "bob"})["state"], "RSS_READY")

    @staticmethod
    def try_list(c):
        try:
            return c.call("session.list")["sessions"]
        except RpcError:
            return None


class SentinelFailover(Shared):
    """One primary, one replica, three Sentinels; two nodes on redis-sentinel://."""

    def setUp(self):
        self.primary = Redis()
        self.addCleanup(self.primary.stop)
        self.replica = Redis("--replicaof", "127.0.0.1", str(self.primary.port))
        self.addCleanup(self.replica.stop)
        wait_for(lambda: "master_link_status:up" in self.replica.command("INFO", "replication"),
                 "the replica in sync")
        self.sentinels = []
        for _ in range(3):
            port = free_port()
            conf = os.path.join(self.replica.dir, "sentinel-%d.conf" % port)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor mymaster 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds mymaster 1000\n"
                        "sentinel failover-timeout mymaster 5000\n"
                        % (port, self.replica.dir, self.primary.port))
            proc = subprocess.Popen(["redis-server", conf, "--sentinel"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.sentinels.append((port, proc))
            self.addCleanup(self.stop_proc, proc)
        for port, _ in self.sentinels:
            wait_for(lambda: self.ask(port, "SENTINEL", "replicas", "mymaster").count("ip") > 0,
                     "the Sentinels to know the replica", timeout=30)
        self.url = "redis-sentinel://%s/mymaster" % ",".join(
            "127.0.0.1:%d" % p for p, _ in self.sentinels)
        self.nodes = []
        self.clients = []
        self.addCleanup(self.stop_nodes)

    @staticmethod
    def stop_proc(proc):
        proc.terminate()
        proc.wait(timeout=30)

    @staticmethod
    def ask(port, *args):
        try:
            return redis_command(port, *args)
        except OSError:
            return ""

    def test_nodes_follow_the_new_primary_and_a_lost_write_is_told(self):
        """The primary SIGKILLed under load: the nodes follow the promoted replica; the
        observer gets every event once, in order, or (a write the replica had not got)
        4100."""
        a, b = self.node("--store-timeout", "1"), self.node("--store-timeout", "1")
        alice, bob = self.client(a, "alice"), self.client(b, "bob")
        olga = self.client(b, "olga")
        olga.call("subscribe", {"all": True})
        load = Load(alice, bob, pause=0.1)
        load.start()
        try:
            wait_for(lambda: len(load.done) >= 10, "load on the first primary")
            self.primary.kill(signal.SIGKILL)
            n = len(load.done)
            wait_for(lambda: len(load.done) >= n + 10, "load on the promoted replica",
                     timeout=60)
        finally:
            load.stop()
        refused = load.refused
        self.assertIn("role:master", self.replica.command("INFO", "replication"))
        self.assertTrue(set(refused) <= {5003, 4009}, refused)
        last = int(self.replica.command("GET", "rv:ev").split("\r\n")[1])
        ids, lost = [], False
        while not ids or ids[-1] < last:
            msg = olga.read_msg(timeout=30)
            if "error" in msg:
                self.assertEqual((msg["id"], msg["error"]["code"]), (None, 4100), msg)
                lost = True
                break
            ids.append(msg["params"]["event"])
        if not lost:
            self.assertEqual(ids, list(range(1, last + 1)))
        print("sentinel failover: %d events, %s, %d changes refused meanwhile"
              % (last, "a lost write told (4100)" if lost else "none lost", len(refused)))


class Outage(Shared):
    def readyz(self, node):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % node.metrics_port,
                                        timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def test_redis_stopped_answers_5003_and_not_ready(self):
        port = free_port()
        a = self.node("--store-timeout", "1", "--metrics", "127.0.0.1:%d" % port)
        a.metrics_port = port
        alice, bob = self.client(a, "alice"), self.client(a, "bob")
        sid = lifecycle_to(alice, bob, "RSS_INVITATION")
        self.assertEqual(self.readyz(a), 200)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        for line in ("rendezvous_redis_ready 1", "rendezvous_redis_lease 1",
                     "rendezvous_sessions_created_total 1",
                     'rendezvous_session_transitions_total{from="RSS_READY",to="RSS_INVITATION"} 1',
                     "rendezvous_redis_nodes 1", 'rendezvous_redis_changes_total{result="applied"} 2',
                     "rendezvous_redis_round_trip_seconds_count 2",
                     "rendezvous_redis_feed_position 2"):
            self.assertIn(line + "\n", text)
        self.redis.kill(signal.SIGSTOP)
        try:
            with self.assertRaises(RpcError) as cm:
                bob.call("session.accept", {"session": sid})
            self.assertEqual(cm.exception.code, 5003)
            self.assertIn("retry_after_ms", cm.exception.error["data"])
            wait_for(lambda: self.readyz(a) == 503, "readyz 503")
        finally:
            self.redis.kill(signal.SIGCONT)
        wait_for(lambda: self.readyz(a) == 200, "readyz 200")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        self.assertIn('rendezvous_errors_total{code="5003"} 1\n', text)
        # Nothing was half-applied: the accept may have been taken or not, once.
        rec = bob.call("session.get", {"session": sid})
        if rec["state"] == "RSS_INVITATION":
            rec = bob.call("session.accept", {"session": sid})
        self.assertEqual(rec["state"], "RSS_ACCEPTED")


if __name__ == "__main__":
    unittest.main(verbosity=2)

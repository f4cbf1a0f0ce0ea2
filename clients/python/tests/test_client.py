#!/usr/bin/env python3
"""The Python client against the real daemon (RENDEZVOUSD; started here on loopback
ports, stopped by pid): the whole flow, its types against proto/schema/, reconnecting
across a daemon restart and a daemon killed between a request and its reply, a reply
lost with its connection, outcomes once, and failing over between two nodes of one
Redis."""
import asyncio
import json
import os
import signal
import ssl
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("RV_SOURCE_ROOT", os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import rendezvous  # noqa: E402
import rvtest  # noqa: E402
from rendezvous import Client, RpcError  # noqa: E402

TIMEOUT = 15


class Proxy:
    """A TCP relay to the daemon that can lose a reply: cut() closes every connection;
    lose_next_reply() throws away what the daemon sends next, then closes that
    connection, as a network that failed between a request and its reply."""

    def __init__(self, port):
        self.port_to, self.conns, self.lose = port, [], False

    async def start(self):
        self.server = await asyncio.start_server(self.accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def accept(self, cr, cw):
        try:
            await self.relay(cr, cw)
        except (asyncio.CancelledError, OSError):
            cw.transport.abort()  # the test is over, or the daemon is gone

    async def relay(self, cr, cw):
        ur, uw = await asyncio.open_connection("127.0.0.1", self.port_to)
        self.conns.append((cw, uw))

        async def pump(r, w, replies):
            try:
                while data := await r.read(65536):
                    if replies and self.lose:
                        self.lose = False
                        cw.transport.abort()
                        uw.transport.abort()
                        return
                    w.write(data)
            except OSError:
                pass
            w.close()
        await asyncio.gather(pump(cr, uw, False), pump(ur, cw, True))

    def cut(self):
        for cw, uw in self.conns:
            cw.transport.abort()
            uw.transport.abort()
        self.conns = []

    async def close(self):
        self.cut()
        self.server.close()
        await self.server.wait_closed()


async def take(it, n, timeout=TIMEOUT):
    """The next n items of an async iterator."""
    out = []
    async def loop():
        async for x in it:
            out.append(x)
            if len(out) == n:
                return
    await asyncio.wait_for(loop(), timeout)
    return out


class ClientTest(unittest.IsolatedAsyncioTestCase):
    daemon_args = ("--observer", "olga")

    def setUp(self):
        self.state = None
        self.daemon = rvtest.Daemon(*self.daemon_args)
        self.addCleanup(lambda: self.daemon.stop())

    def restart(self, *, kill=False):
        """Stop the daemon (SIGKILL, or SIGTERM) and start it again on its port, with its
        state."""
        port, state = self.daemon.port, self.daemon.state_dir
        if kill:
            self.daemon.proc.kill()
            self.daemon.proc.wait()
        else:
            self.daemon.proc.terminate()
            self.daemon.proc.wait()
        old = self.daemon
        self.daemon = rvtest.Daemon(*self.daemon_args, state_dir=state,
                                    listen=("--listen", "127.0.0.1:%d" % port))
        old.own_state = None  # the new one uses it
        old.stop()

    async def client(self, user, **kw):
        kw.setdefault("timeout", TIMEOUT)
        c = await Client.connect("127.0.0.1:%d" % self.daemon.port, user=user, **kw)
        self.addAsyncCleanup(c.close)
        return c


class Flow(ClientTest):
    async def test_invitation_from_create_to_terminate(self):
        alice = await self.client("alice", device="laptop")
        bob = await self.client("bob", device="phone")
        self.assertEqual(bob.hello_result["user"], "bob")
        self.assertEqual(await alice.ping(), "pong")
        sub = await bob.subscribe(user="bob")
        self.assertEqual(sub["subscription"], 1)
        s = (await alice.session_create("bob", topic="call", data={"x": 1}))["session"]
        await alice.session_invite(s)
        (ev,) = await take(bob.events(), 1)
        self.assertEqual((ev["session"], ev["state"]), (s, "RSS_INVITATION"))
        await bob.session_accept(s)
        await alice.session_connect(s)
        self.assertEqual((await bob.session_connect(s))["state"], "RSS_CONNECTED")
        self.assertEqual(await alice.session_send(s, {"sdp": "offer"}), 1)
        (cd,) = await take(bob.context_data(), 1)
        self.assertEqual((cd["from"], cd["data"]), ("alice", {"sdp": "offer"}))
        rec = await alice.session_terminate(s, 7, {"bye": True})
        self.assertEqual((rec["state"], rec["code"]), ("RSS_TERMINATED", 7))
        evs = await take(bob.events(), 3)
        self.assertEqual([(e["event"], e["state"]) for e in evs],
                         [(3, "RSS_ACCEPTED"), (4, "RSS_CONNECTED"), (5, "RSS_TERMINATED")])
        listed = await alice.session_list()
        self.assertEqual([r["session"] for r in listed["sessions"]], [s])
        with self.assertRaises(RpcError) as cm:
            await bob.session_get("0" * 32)
        self.assertEqual(cm.exception.code, 4004)

    async def test_every_change_carries_a_key(self):
        alice = await self.client("alice")
        key = "retry-me"
        a = await alice.session_create("bob", idempotency_key=key)
        b = await alice.session_create("bob", idempotency_key=key)
        self.assertEqual(a["session"], b["session"])
        c = await alice.session_create("bob")  # a key of its own
        self.assertNotEqual(a["session"], c["session"])

    async def test_several_addresses_the_first_dead(self):
        dead = rvtest.free_port()
        c = await Client.connect("127.0.0.1:%d,127.0.0.1:%d" % (dead, self.daemon.port),
                                 user="alice", timeout=TIMEOUT)
        self.addAsyncCleanup(c.close)
        self.assertEqual(c.address[2], self.daemon.port)
        self.assertEqual(await c.ping(), "pong")

    async def test_refused_hello_is_final(self):
        with self.assertRaises(rendezvous.Closed):
            await Client.connect("127.0.0.1:%d" % self.daemon.port, user="bad\nname",
                                 timeout=TIMEOUT)


class Tls(unittest.IsolatedAsyncioTestCase):
    """tls=: the daemon verified against a CA, by its address (as rendezvousctl --tls-ca)."""

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="rv-py-tls-")
        self.addCleanup(d.cleanup)
        self.dir = d.name

        rvtest.make_certs(self.dir)
        self.daemon = rvtest.Daemon("--listen-tls", "127.0.0.1:0", "--tls-cert",
                                    os.path.join(self.dir, "server.pem"), "--tls-key",
                                    os.path.join(self.dir, "server.key"))
        self.addCleanup(self.daemon.stop)

    async def test_verified_and_refused(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        c = await Client.connect("127.0.0.1:%d" % self.daemon.tls_port, user="alice", tls=ctx,
                                 timeout=TIMEOUT)
        self.addAsyncCleanup(c.close)
        self.assertEqual(await c.ping(), "pong")
        other = ssl.create_default_context(cafile=os.path.join(self.dir, "other.pem"))
        with self.assertRaisesRegex(ConnectionError, "CERTIFICATE_VERIFY_FAILED"):
            await Client.connect("127.0.0.1:%d" % self.daemon.tls_port, user="alice",
                                 tls=other, timeout=2)


class Types(unittest.TestCase):
    """The client's types, against proto/schema/: same keys, the same ones required."""

    def test_typed_dicts_match_the_schema(self):
        with open(os.path.join(ROOT, "proto", "schema", "rendezvous.schema.json")) as f:
            defs = json.load(f)["$defs"]
        pairs = [(rendezvous.Record, "record"), (rendezvous.Outcome, "outcome"),
                 (rendezvous.Presence, "presence"),
                 (rendezvous.Event, "notification.session.state_changed"),
                 (rendezvous.ContextData, "notification.session.context_data"),
                 (rendezvous.Hello, "result.hello"), (rendezvous.Subscribed, "result.subscribe"),
                 (rendezvous.SessionList, "result.session.list")]
        for td, name in pairs:
            schema = defs[name]
            with self.subTest(name):
                self.assertEqual(set(td.__annotations__), set(schema["properties"]))
                self.assertEqual(set(td.__required_keys__), set(schema.get("required", [])))
        states = defs["state"]["enum"]
        self.assertEqual(list(rendezvous.State.__args__), states)

    def test_a_method_for_every_protocol_method(self):
        with open(os.path.join(ROOT, "proto", "schema", "rendezvous.schema.json")) as f:
            defs = json.load(f)["$defs"]
        methods = {k[len("params."):] for k in defs if k.startswith("params.")}
        for m in methods:
            if m == "hello":
                continue  # said by connect(), on every connection
            self.assertTrue(callable(getattr(Client, m.replace(".", "_"), None)), m)


class Reconnect(ClientTest):
    async def test_daemon_restart_no_gap_no_duplicate(self):
        olga = await self.client("olga")
        await olga.subscribe(all=True)
        alice = await self.client("alice", device="laptop")
        s = (await alice.session_create("bob"))["session"]
        await alice.session_invite(s)
        self.restart(kill=True)
        # The restart and bob's accept block this thread, and with it the event loop on
        # which olga reconnects: she is back only after them, and the accept reaches her
        # as a replay of what came after the last event she saw.
        raw = rvtest.Client(self.daemon.port)
        raw.hello("bob")
        raw.call("session.accept", {"session": s})
        raw.close()
        await alice.session_cancel(s)  # alice reconnects by herself
        evs = await take(olga.events(), 4)
        self.assertEqual([e["event"] for e in evs], [1, 2, 3, 4])
        self.assertEqual([e["state"] for e in evs],
                         ["RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CANCELLED"])
        self.assertTrue(evs[2].get("replay"), evs[2])
        self.assertGreaterEqual(olga.reconnects, 1)
        await alice.session_create("carol")
        (ev,) = await take(olga.events(), 1)
        self.assertEqual(ev["event"], 5)

    async def test_daemon_killed_between_request_and_reply(self):
        alice = await self.client("alice", device="laptop")
        self.daemon.proc.send_signal(signal.SIGSTOP)
        create = asyncio.ensure_future(alice.session_create("bob"))
        await asyncio.sleep(0.3)  # sent, not answered
        self.assertFalse(create.done())
        self.daemon.proc.send_signal(signal.SIGCONT)
        self.restart(kill=True)
        rec = await create
        listed = await alice.session_list()
        self.assertEqual([r["session"] for r in listed["sessions"]], [rec["session"]])

    async def test_reply_lost_with_its_connection(self):
        proxy = await Proxy(self.daemon.port).start()
        self.addAsyncCleanup(proxy.close)
        alice = await Client.connect("127.0.0.1:%d" % proxy.port, user="alice",
                                     device="laptop", timeout=TIMEOUT)
        self.addAsyncCleanup(alice.close)
        proxy.lose = True  # the daemon does it, the reply never comes back
        rec = await alice.session_create("bob")
        self.assertGreaterEqual(alice.reconnects, 1)
        listed = await alice.session_list()
        self.assertEqual([r["session"] for r in listed["sessions"]], [rec["session"]])
        # The same for a context message: delivered once.
        bob = await self.client("bob", device="phone")
        await alice.session_invite(rec["session"])
        await bob.session_accept(rec["session"])
        proxy.lose = True
        self.assertEqual(await alice.session_send(rec["session"], "hi"), 1)
        (cd,) = await take(bob.context_data(), 1)
        self.assertEqual(cd["data"], "hi")
        with self.assertRaises(asyncio.TimeoutError):
            await take(bob.context_data(), 1, timeout=0.5)

    async def test_outcomes_once_until_acknowledged(self):
        proxy = await Proxy(self.daemon.port).start()
        self.addAsyncCleanup(proxy.close)
        tablet = await Client.connect("127.0.0.1:%d" % proxy.port, user="bob",
                                      device="tablet", timeout=TIMEOUT)
        self.addAsyncCleanup(tablet.close)
        alice = await self.client("alice", device="laptop")
        s = (await alice.session_create("bob"))["session"]
        await alice.session_invite(s)
        await alice.session_cancel(s, "later")
        for _ in range(2):  # each reconnect's hello brings it again; the client yields it once
            proxy.cut()
            await tablet.ping()
        (o,) = await take(tablet.outcomes(), 1)
        self.assertEqual((o["session"], o["state"], o["reason"]), (s, "RSS_CANCELLED", "later"))
        with self.assertRaises(asyncio.TimeoutError):
            await take(tablet.outcomes(), 1, timeout=0.5)
        self.assertEqual(await tablet.session_ack([s]), 1)
        self.assertEqual(await tablet.session_outcomes(), [])


class Failover(unittest.IsolatedAsyncioTestCase):
    async def test_node_killed_client_goes_on_at_the_next(self):
        redis = rvtest.Redis()
        self.addCleanup(redis.stop)
        a = rvtest.Daemon("--store", redis.url, "--observer", "olga")
        self.addCleanup(a.stop)
        b = rvtest.Daemon("--store", redis.url, "--observer", "olga")
        self.addCleanup(b.stop)
        olga = await Client.connect(["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port],
                                    user="olga", timeout=TIMEOUT)
        self.addAsyncCleanup(olga.close)
        await olga.subscribe(all=True)
        alice = await Client.connect("127.0.0.1:%d" % b.port, user="alice", timeout=TIMEOUT)
        self.addAsyncCleanup(alice.close)
        s = (await alice.session_create("bob"))["session"]
        self.assertEqual([e["event"] for e in await take(olga.events(), 1)], [1])
        a.proc.kill()
        a.proc.wait()
        await alice.session_invite(s)
        await alice.session_cancel(s)
        evs = await take(olga.events(), 2)
        self.assertEqual([(e["event"], e["state"]) for e in evs],
                         [(2, "RSS_INVITATION"), (3, "RSS_CANCELLED")])
        await olga.ping()
        self.assertEqual(olga.address[2], b.port)
        self.assertEqual(olga.reconnects, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

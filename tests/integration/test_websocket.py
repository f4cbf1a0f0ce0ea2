#!/usr/bin/env python3
"""WebSocket (--listen-ws, --listen-wss): RFC 6455 carrying the same JSON-RPC messages,
one per text frame, with the same hello, limits, slow-consumer cut-off and drain as TCP;
browser origins (--ws-origin); the handshake's refusals; control frames; close codes."""
import json
import os
import signal
import ssl
import socket
import tempfile

from rvtest import SCHEMA, DaemonTest, main, make_certs
from wsclient import BINARY, CLOSE, CONT, PING, PONG, TEXT, Closed, Refused, WsClient

ORIGIN = "https://app.example"


class WebSocket(DaemonTest):
    daemon_args = ("--listen-ws", "127.0.0.1:0", "--ws-origin", ORIGIN, "--observer", "olga",
                   "--hello-timeout", "1")

    def ws(self, user=None, **kw):
        c = WsClient(self.daemon.ws_port, **kw)
        self.addCleanup(c.close)
        if user is not None:
            r = c.call("hello", {"user": user})
            self.assertIn("result", r, r)
        return c

    def closed_with(self, c):
        """The close code the daemon sends, after any messages before it."""
        msgs = []
        with self.assertRaises(Closed) as cm:
            while True:
                msgs.append(c.recv())
        return cm.exception.code, msgs

    def test_the_same_protocol_as_tcp(self):
        alice = self.ws("alice", origin=ORIGIN)  # a browser of an allowed origin
        bob = self.client("bob")  # TCP
        r = alice.call("subscribe", {"user": "alice"})
        self.assertEqual(r["result"]["last_event"], 0)
        s = alice.call("session.create", {"invitee": "bob", "data": {"note": "line\nbreak"}})
        sid = s["result"]["session"]
        SCHEMA.check("result.session.create", s["result"], "a record over WebSocket")
        ev = alice.recv()
        self.assertEqual((ev["method"], ev["params"]["state"]), ("session.state_changed",
                                                                 "RSS_READY"))
        SCHEMA.check("from_daemon", ev, "an event over WebSocket")
        self.assertEqual(ev["params"]["data"], {"note": "line\nbreak"})
        alice.call("session.invite", {"session": sid})
        bob.call("session.accept", {"session": sid})
        states = [alice.recv()["params"]["state"] for _ in range(2)]
        self.assertEqual(states, ["RSS_INVITATION", "RSS_ACCEPTED"])
        bob.call("session.send", {"session": sid, "data": {"sdp": "offer"}})
        cd = alice.recv()
        self.assertEqual((cd["method"], cd["params"]["data"]),
                         ("session.context_data", {"sdp": "offer"}))
        # A batch is one message too, and so is its reply.
        alice.send([{"jsonrpc": "2.0", "method": "ping", "id": "a"},
                    {"jsonrpc": "2.0", "method": "ping", "id": "b"}])
        self.assertEqual([m["result"] for m in alice.recv()], ["pong", "pong"])
        # Errors are the same.
        r = alice.call("session.fly")
        self.assertEqual(r["error"]["code"], -32601)

    def test_fragments_newlines_and_pings(self):
        c = self.ws()
        body = json.dumps({"jsonrpc": "2.0", "method": "hello", "params": {"user": "alice"},
                           "id": 1}, indent=2).encode()  # a message over several lines
        c.send_frame(TEXT, body[:10], fin=False)
        c.send_frame(PING, b"mid-message")  # control frames may come between fragments
        c.send_frame(CONT, body[10:20], fin=False)
        c.send_frame(CONT, body[20:], fin=True)
        fin, op, payload = c.recv_frame()
        self.assertEqual((op, payload), (PONG, b"mid-message"))
        self.assertEqual(c.recv()["result"]["user"], "alice")
        c.send_frame(PONG, b"unasked")  # ignored
        self.assertEqual(c.call("ping")["result"], "pong")

    def test_origins(self):
        self.ws(origin=ORIGIN).close()
        self.ws(origin=ORIGIN.upper()).close()  # compared case-insensitively
        with self.assertRaises(Refused) as cm:
            WsClient(self.daemon.ws_port, origin="https://evil.example")
        self.assertEqual(cm.exception.status, 403)
        self.ws().close()  # no Origin: not a browser, taken

    def test_handshake_refusals(self):
        with self.assertRaises(Refused) as cm:
            WsClient(self.daemon.ws_port, version="8")
        self.assertEqual(cm.exception.status, 426)
        with self.assertRaises(Refused) as cm:
            WsClient(self.daemon.ws_port, key="c2hvcnQ=")
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(Refused) as cm:
            WsClient(self.daemon.ws_port, headers=["X-Pad: " + "x" * 9000])
        self.assertEqual(cm.exception.status, 431)
        # TCP's port does not speak WebSocket, nor WebSocket's port lines.
        plain = self.client()
        plain.send_raw(b'{"jsonrpc":"2.0","method":"ping","id":1}\n')
        self.assertEqual(plain.read_msg()["result"], "pong")
        s = socket.create_connection(("127.0.0.1", self.daemon.ws_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b'{"jsonrpc":"2.0","method":"ping","id":1}\r\n\r\n')
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 405 "))

    def test_over_a_limit_503(self):
        self.restart("--listen-ws", "127.0.0.1:0", "--max-connections", "1")
        self.ws("alice")
        s = socket.create_connection(("127.0.0.1", self.daemon.ws_port), timeout=10)
        self.addCleanup(s.close)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), head)
        self.assertEqual(json.loads(body)["error"]["data"], {"max_connections": 1})

    def test_close_codes(self):
        # Too large: 1009.
        c = self.ws("alice")
        c.send_frame(TEXT, b'{"jsonrpc":"2.0","method":"ping","id":1,"pad":"' +
                     b"x" * 70000 + b'"}')
        self.assertEqual(self.closed_with(c)[0], 1009)
        # Binary: 1003. Unmasked: 1002.
        c = self.ws("alice")
        c.send_frame(BINARY, b"\x00\x01")
        self.assertEqual(self.closed_with(c)[0], 1003)
        c = self.ws("alice")
        c.send_frame(TEXT, b'{"jsonrpc":"2.0","method":"ping","id":1}', mask=False)
        self.assertEqual(self.closed_with(c)[0], 1002)
        # The client closes: the daemon answers with its code.
        c = self.ws("alice")
        c.send_frame(CLOSE, b"\x0f\xa0bye")  # 4000
        self.assertEqual(self.closed_with(c)[0], 4000)
        # No hello in time: the error, then 1008 (policy).
        c = self.ws()
        code, msgs = self.closed_with(c)
        self.assertEqual(code, 1008)
        self.assertEqual(msgs[-1]["error"]["code"], 4001)
        # Kicked by an admin: the error, then 1008.
        self.restart("--listen-ws", "127.0.0.1:0", "--admin", "root")
        c = self.ws("mallory")
        root = self.client("root")
        self.assertEqual(root.call("admin.kick", {"user": "mallory"}), {"kicked": 1})
        code, msgs = self.closed_with(c)
        self.assertEqual((code, msgs[-1]["error"]["code"]), (1008, 4003))
        conns = root.call("admin.connections")["connections"]
        self.assertFalse(any(x["tls"] for x in conns))

    def test_keepalive(self):
        self.restart("--listen-ws", "127.0.0.1:0", "--ws-ping", "0.3")
        awake, asleep = self.ws("alice"), self.ws("bob")
        # awake answers the daemon's pings (recv() does); asleep reads nothing.
        fin, op, payload = awake.recv_frame()
        self.assertEqual(op, PING)
        awake.send_frame(PONG, payload)
        self.assertEqual(awake.call("ping")["result"], "pong")
        self.daemon.wait_log(r"conn \d+ \S+ user bob closed: WebSocket peer silent")
        fin, op, payload = awake.recv_frame()  # still pinged, still here
        self.assertEqual(op, PING)
        awake.send_frame(PONG, payload)
        self.assertEqual(awake.call("ping")["result"], "pong")

    def test_drain_sends_shutdown_then_1000(self):
        c = self.ws("alice")
        self.daemon.proc.send_signal(signal.SIGTERM)
        code, msgs = self.closed_with(c)
        self.assertEqual(code, 1000)
        self.assertEqual(msgs[-1]["method"], "server.shutdown")
        self.assertEqual(self.daemon.proc.wait(30), 0)

    def test_slow_consumer_cut_off_then_1008(self):
        self.restart("--listen-ws", "127.0.0.1:0", "--observer", "olga", "--max-pending",
                     "256k", "--max-sessions-per-user", "100000", "--max-user-bytes", "0")
        olga = self.ws("olga")
        self.assertIn("result", olga.call("subscribe", {"all": True}))
        alice = self.client("alice")
        blob = "x" * 8000
        for _ in range(4000):  # olga reads nothing meanwhile
            alice.call("session.create", {"invitee": "bob", "data": blob})
            if "slow consumer cut off" in self.daemon.read_log():
                break
        else:
            self.fail("the slow consumer was never cut off")
        code, msgs = self.closed_with(olga)
        self.assertEqual(code, 1008)
        self.assertEqual(msgs[-1]["error"]["code"], 4029)
        self.assertEqual(alice.call("ping"), "pong")


class SecureWebSocket(DaemonTest):
    """--listen-wss: the same inside TLS, with --tls-cert and --tls-key."""

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="rv-wss-")
        self.addCleanup(d.cleanup)
        make_certs(d.name)
        self.ctx = ssl.create_default_context(cafile=os.path.join(d.name, "ca.pem"))
        self.daemon_args = ("--listen-wss", "127.0.0.1:0", "--tls-cert",
                            os.path.join(d.name, "server.pem"), "--tls-key",
                            os.path.join(d.name, "server.key"))
        super().setUp()

    def test_over_tls(self):
        self.assertIsNotNone(self.daemon.wss_port)
        c = WsClient(self.daemon.wss_port, tls=self.ctx)
        self.addCleanup(c.close)
        self.assertEqual(c.call("hello", {"user": "alice"})["result"]["user"], "alice")
        self.assertEqual(c.call("ping")["result"], "pong")
        self.daemon.proc.send_signal(signal.SIGTERM)
        with self.assertRaises(Closed) as cm:
            while True:
                c.recv()
        self.assertEqual(cm.exception.code, 1000)
        # Wait for it to exit: stopping it again now would be a second signal.
        self.assertEqual(self.daemon.proc.wait(30), 0)


if __name__ == "__main__":
    main()

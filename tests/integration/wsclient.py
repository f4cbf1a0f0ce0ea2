"""A small WebSocket client (RFC 6455) for the tests: the handshake, masked frames out,
frames in, control frames as they come. It frames by hand on purpose, to send what a
library would not (fragments, bad frames, pings); the daemon frames with libwslay."""
import base64
import hashlib
import json
import os
import socket
import ssl as ssl_module
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


class Refused(Exception):
    """The handshake was answered with a status other than 101."""

    def __init__(self, status, body):
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


class Closed(Exception):
    """A close frame came: code (None without one)."""

    def __init__(self, code):
        super().__init__(f"closed with {code}")
        self.code = code


class WsClient:
    def __init__(self, port, origin=None, tls=None, timeout=10, headers=None, version="13",
                 key=None, path="/"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        key = key or base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                 "Connection: keep-alive, Upgrade", "Sec-WebSocket-Key: " + key,
                 "Sec-WebSocket-Version: " + version]
        if origin is not None:
            lines.append("Origin: " + origin)
        lines += headers or []
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._until(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        if " 101 " not in status:
            body = self.buf
            try:
                while True:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    body += chunk
            except OSError:
                pass
            self.sock.close()
            raise Refused(int(status.split()[1]), body.decode(errors="replace"))
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if ("sec-websocket-accept: " + want).encode() not in head.lower().replace(
                want.lower().encode(), want.encode()):
            raise AssertionError(f"wrong Sec-WebSocket-Accept in {head!r}")
        self.next_id = 1

    def _until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0):
        head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head += bytes([m | n])
        elif n < 65536:
            head += bytes([m | 126]) + struct.pack("!H", n)
        else:
            head += bytes([m | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def recv_frame(self):
        """(fin, opcode, payload) of the next frame."""
        b0, b1 = self._need(2)
        if b1 & 0x80:
            raise AssertionError("the daemon masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._need(n)

    def recv(self):
        """The next message (a parsed JSON text frame); pings are answered; a close frame
        raises Closed."""
        parts = []
        while True:
            fin, op, payload = self.recv_frame()
            if op == PING:
                self.send_frame(PONG, payload)
                continue
            if op == PONG:
                continue
            if op == CLOSE:
                raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
            parts.append(payload)
            if fin:
                return json.loads(b"".join(parts))

    def send(self, msg):
        self.send_frame(TEXT, json.dumps(msg).encode())

    def call(self, method, params=None):
        id = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        while True:
            reply = self.recv()
            if reply.get("id") == id:
                return reply

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

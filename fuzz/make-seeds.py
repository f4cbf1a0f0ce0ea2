#!/usr/bin/env python3
"""Write seed inputs for a fuzz target to DIR.

rpc (default): every JSON test-suite file as a request line, and every
golden transcript's client lines, in fuzz_rpc's chunked input format
([control byte][chunk], see fuzz_rpc.c).
token: tokens and header/claims pairs in fuzz_token's modes (see
fuzz_token.c), signed with its key.
ws: handshakes and masked frames in fuzz_ws's modes (see fuzz_ws.c).
journal: payloads and segment files in fuzz_journal's modes, encoded as
daemon/store_codec.c and daemon/journal.c write them.
json: every JSON test-suite file and every golden transcript line as it is
(fuzz_json.c compares lib/jsonparse.c with jansson on it).

Usage: fuzz/make-seeds.py DIR [rpc|token|ws|journal|json]
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def encode(lines):
    """lines: [(client 0-2, bytes)] -> one input, chunks of up to 63 bytes."""
    out = bytearray()
    for who, data in lines:
        for i in range(0, len(data), 63):
            chunk = data[i:i + 63]
            out.append((len(chunk) << 2) | who)
            out += chunk
    return bytes(out)


FUZZ_SECRET = b"rendezvous-fuzz-secret-0123456789abcdef"  # as in fuzz_token.c
NOW = 1795488000


def token_seeds(out):
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    claims = [
        {"sub": "alice", "exp": NOW + 60, "aud": "rendezvous"},
        {"sub": "root", "exp": NOW + 60, "aud": ["x", "rendezvous"], "roles": ["admin", "observer"]},
        {"sub": "bob", "exp": NOW - 1, "nbf": NOW + 5, "aud": "rendezvous", "iss": "i"},
        {"sub": "", "exp": 1e300, "aud": 7, "roles": "admin"},
    ]
    headers = [{"alg": "HS256", "typ": "JWT"}, {"alg": "none"}, {"alg": "RS256", "kid": "k"},
               {"alg": "HS256", "crit": ["exp"]}, {"alg": "HS256", "kid": 5}]
    n = 0
    for h in headers:
        for c in claims:
            hj, cj = json.dumps(h).encode(), json.dumps(c).encode()
            signing = b64(hj) + b"." + b64(cj)
            token = signing + b"." + b64(hmac.new(FUZZ_SECRET, signing, hashlib.sha256).digest())
            for mode, body in ((0, token), (1, hj + b"\0" + cj), (2, hj + b"\0" + cj + b"\0sig")):
                with open(os.path.join(out, "token-%d" % n), "wb") as f:
                    f.write(bytes([mode]) + body)
                n += 1


def ws_frame(opcode, payload, fin=True, key=b"\x01\x02\x03\x04"):
    """A client's frame: masked."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_seeds(out):
    hello = b'{"jsonrpc":"2.0","method":"hello","params":{"user":"alice"},"id":1}'
    handshake = (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    frames = {
        "text": ws_frame(1, hello),
        "fragments": ws_frame(1, hello[:9], False) + ws_frame(9, b"hi") +
        ws_frame(0, hello[9:], True),
        "ping-close": ws_frame(9, b"x") + ws_frame(10, b"") + ws_frame(8, b"\x03\xe8bye"),
        "long": ws_frame(1, b'{"pad":"' + b"x" * 300 + b'"}'),
        "binary": ws_frame(2, b"\x00"),
    }
    seeds = {"handshake": b"\x00" + handshake + frames["text"],
             "refused": b"\x00" + handshake.replace(b"13", b"8"),
             "origin": b"\x00" + handshake.replace(b"\r\n\r\n",
                                                    b"\r\nOrigin: https://evil.example\r\n\r\n")}
    for name, f in frames.items():
        seeds["one-" + name] = b"\x01" + f
        seeds["cut-" + name] = b"\x02" + b"".join(bytes([7]) + f[i:i + 8]
                                                  for i in range(0, len(f), 8))
    for name, data in seeds.items():
        with open(os.path.join(out, "ws-" + name), "wb") as f:
            f.write(data)


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zz(v):
    return varint((v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1)


def text(s):
    if s is None:
        return varint(0)
    b = s.encode()
    return varint(len(b) + 1) + b + b"\0"


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff


def journal_seeds(out):
    sid = bytes(range(16))
    changes = (varint(3) + varint(1) + varint(0) + varint(0) + zz(1700000000000) + zz(1700000060000)
               + varint(4) + text("why") + varint(1) + zz(-3) + text('{"a":1}') + text("tablet")
               + text("bob") + text("tablet") + varint(1) + sid)
    insert = (varint(1) + varint(7) + sid + text("alice") + text("bob") + zz(1700000000000)
              + text('{"d":[1]}') + text("phone") + text("call") + changes)
    update = varint(2) + varint(7) + changes
    event = (varint(4) + varint(12) + zz(1700000000001) + sid + text("alice") + text("bob")
             + varint(1) + text('{"jsonrpc":"2.0","method":"session.state_changed"}\n'))
    key = (varint(6) + text("alice") + text("session.create") + text("k") + bytes(32)
           + text('{"result":{}}') + zz(5))
    outcome = varint(8) + text("bob") + text("phone") + varint(1) + sid + zz(9) + text("{}") + zz(0)
    gone = varint(9) + text("bob") + text("phone") + varint(1) + sid
    payloads = {
        "session": insert + update,
        "gone": insert + varint(3) + varint(7),
        "events": event + varint(5) + varint(13),
        "keys": key + varint(7) + zz(-1),
        "outcomes": outcome + gone + outcome,
        "all": insert + update + event + key + outcome,
    }
    for name, body in payloads.items():
        with open(os.path.join(out, "payload-" + name), "wb") as f:
            f.write(b"\0" + body)
    segment = b""
    for seq, body in enumerate(payloads.values(), 1):
        head = seq.to_bytes(8, "little")
        segment += (len(body).to_bytes(4, "little") + crc32c(body, crc32c(head)).to_bytes(4, "little")
                    + head + body)
    with open(os.path.join(out, "segment"), "wb") as f:
        f.write(b"\1" + segment)
    with open(os.path.join(out, "segment-torn"), "wb") as f:
        f.write(b"\1" + segment[:-5])


def json_seeds(out, files):
    """The JSON test suite's files and the golden transcripts' lines, as they are."""
    for name, path in sorted(files.items()):
        with open(path, "rb") as f, open(os.path.join(out, "suite-" + name), "wb") as o:
            o.write(f.read())
    examples = os.path.join(ROOT, "proto", "examples")
    n = 0
    for name in sorted(os.listdir(examples)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(examples, name), "rb") as f:
            for raw in f:
                m = re.match(rb"^\w+[<>] (.*)$", raw.rstrip(b"\n"))
                if m:
                    with open(os.path.join(out, "golden-%d" % n), "wb") as o:
                        o.write(m.group(1))
                    n += 1


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if len(sys.argv) > 2 and sys.argv[2] == "token":
        token_seeds(out)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "ws":
        ws_seeds(out)
        return
    if len(sys.argv) > 2 and sys.argv[2] == "journal":
        journal_seeds(out)
        return
    json_only = len(sys.argv) > 2 and sys.argv[2] == "json"
    hello = [(0, b'{"jsonrpc":"2.0","method":"hello","params":{"user":"alice"},"id":1}\n')]
    # The vendored copy, and the shared one beside the checkout where there is one.
    suites = [os.path.join(ROOT, "tests", "corpus", "json-test-suite", "test_parsing"),
              os.path.join(ROOT, "..", "shared", "corpora", "json-test-suite", "test_parsing")]
    files = {}
    for suite in suites:
        if os.path.isdir(suite):
            for name in os.listdir(suite):
                files.setdefault(name, os.path.join(suite, name))
    if json_only:
        json_seeds(out, files)
        return
    for name, path in sorted(files.items()):
        with open(path, "rb") as f:
            body = f.read().replace(b"\n", b" ")
        with open(os.path.join(out, "suite-" + name), "wb") as f:
            f.write(encode(hello + [(0, body + b"\n")]))
    examples = os.path.join(ROOT, "proto", "examples")
    for name in sorted(os.listdir(examples)):
        if not name.endswith(".txt"):
            continue
        clients, lines = {}, []
        with open(os.path.join(examples, name), "rb") as f:
            for raw in f:
                m = re.match(rb"^(\w+)> (.*)$", raw.rstrip(b"\n"))
                if m:
                    who = clients.setdefault(m.group(1), len(clients) % 3)
                    lines.append((who, m.group(2) + b"\n"))
        with open(os.path.join(out, "golden-" + name), "wb") as f:
            f.write(encode(lines))


if __name__ == "__main__":
    main()

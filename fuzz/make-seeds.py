#!/usr/bin/env python3
"""Write fuzz_rpc seed inputs to DIR: every JSON test-suite file as a request
line, and every golden transcript's client lines, in the target's chunked
input format ([control byte][chunk], see fuzz_rpc.c).

Usage: fuzz/make-seeds.py DIR
"""
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


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    hello = [(0, b'{"jsonrpc":"2.0","method":"hello","params":{"user":"alice"},"id":1}\n')]
    suite = os.path.join(ROOT, "tests", "corpus", "json-test-suite", "test_parsing")
    for name in sorted(os.listdir(suite)):
        with open(os.path.join(suite, name), "rb") as f:
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

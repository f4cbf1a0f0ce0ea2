#!/usr/bin/env python3
"""Replay the golden transcripts of proto/examples/ against the real daemon.

Transcript format (proto/examples/README.md):
  #! ARGS          first line, optional: extra daemon arguments
  # text           a comment
  NAME> LINE       client NAME sends LINE ("$VAR" strings are replaced by bound values)
  NAME< JSON       the next message NAME receives must match JSON exactly, where
                   "$VAR" binds a value on first sight and must equal it after,
                   and "$*" matches any value
  NAME close       client NAME closes its connection
  sleep SECONDS    wait (for timers); "<" lines wait by themselves
At the end no client may have an unexpected message waiting.
"""
import glob
import json
import os
import shlex
import time
import unittest

from rvtest import SOURCE_ROOT, Daemon, SANITIZER_MARKS, main

EXAMPLES = os.path.join(SOURCE_ROOT, "proto", "examples")


class Mismatch(AssertionError):
    pass


def match(want, got, env, path="$"):
    if isinstance(want, str) and want.startswith("$"):
        if want == "$*":
            return
        if want in env:
            if env[want] != got:
                raise Mismatch(f"{path}: {want} was {env[want]!r}, now {got!r}")
        else:
            env[want] = got
        return
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(want) != set(got):
            raise Mismatch(f"{path}: keys {sorted(want) if isinstance(want, dict) else want} "
                           f"!= {sorted(got) if isinstance(got, dict) else got!r}")
        for k in want:
            match(want[k], got[k], env, f"{path}.{k}")
        return
    if isinstance(want, list):
        if not isinstance(got, list) or len(want) != len(got):
            raise Mismatch(f"{path}: {want!r} != {got!r}")
        for i, (w, g) in enumerate(zip(want, got)):
            match(w, g, env, f"{path}[{i}]")
        return
    if want != got or type(want) != type(got):
        raise Mismatch(f"{path}: expected {want!r}, got {got!r}")


def substitute(line, env):
    for k, v in sorted(env.items(), key=lambda kv: -len(kv[0])):
        if isinstance(v, str):
            line = line.replace(f'"{k}"', json.dumps(v))
    return line


def replay(path):
    with open(path) as f:
        lines = f.read().splitlines()
    args = shlex.split(lines[0][2:]) if lines and lines[0].startswith("#!") else []
    daemon = Daemon(*args)
    clients, env = {}, {}
    try:
        for n, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            where = f"{os.path.basename(path)}:{n}"
            name, sep, rest = line.partition(" ")
            if name == "sleep":
                time.sleep(float(rest))
                continue
            if rest == "close" and not name.endswith((">", "<")):
                clients.pop(name).close()
                continue
            who, kind = name[:-1], name[-1:]
            if who not in clients:
                clients[who] = daemon.client()
            c = clients[who]
            if kind == ">":
                c.send_raw(substitute(rest, env).encode() + b"\n")
            elif kind == "<":
                want = json.loads(rest)
                got = c.read_msg()
                try:
                    match(want, got, env)
                except Mismatch as e:
                    raise AssertionError(f"{where}: {e}\n  expected {rest}\n  got      "
                                         f"{json.dumps(got)}") from None
            else:
                raise AssertionError(f"{where}: cannot parse {line!r}")
        for who, c in clients.items():
            try:
                c.no_message(0.2)
            except AssertionError as e:
                raise AssertionError(f"{os.path.basename(path)}: {who}: {e}") from None
    finally:
        for c in clients.values():
            c.close()
        status, log = daemon.stop()
    # (raise, not assert: python -O drops assert statements)
    for mark in SANITIZER_MARKS:
        if mark in log:
            raise AssertionError(log[-4000:])
    if status != 0:
        raise AssertionError("rendezvousd exited %s:\n%s" % (status, log[-4000:]))


class Golden(unittest.TestCase):
    def test_examples_exist(self):
        self.assertGreaterEqual(len(glob.glob(os.path.join(EXAMPLES, "*.txt"))), 5)

    def test_matcher_can_fail(self):
        env = {}
        match({"a": "$X", "b": [1, "$*"]}, {"a": 5, "b": [1, {}]}, env)
        self.assertEqual(env, {"$X": 5})
        for want, got in [({"a": 1}, {"a": 1, "b": 2}), ({"a": "$X"}, {"a": 6}), ([1], [1, 2]),
                          (1, 1.0), ("x", "y")]:
            with self.assertRaises(Mismatch):
                match(want, got, dict(env))


def _add(path):
    name = "test_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    setattr(Golden, name, lambda self: replay(path))


for _path in sorted(glob.glob(os.path.join(EXAMPLES, "*.txt"))):
    _add(_path)

if __name__ == "__main__":
    main()

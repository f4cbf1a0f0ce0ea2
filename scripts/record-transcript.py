#!/usr/bin/env python3
"""Record a golden transcript from a draft, for review before it goes into proto/examples/.

Usage: scripts/record-transcript.py DRAFT > proto/examples/NN-name.txt
(RENDEZVOUSD names the daemon binary; default build/daemon/rendezvousd.)

A draft holds the "#!" and "#" lines and the client lines ("NAME> ...",
"NAME close", "sleep SECONDS") of a transcript. Each line is sent, and what
every client receives in the next moment is written after it as "NAME< ..."
lines, with session ids bound to "$S1", "$S2", ..., the devices the daemon
assigned to "$D1", "$D2", ..., and times as "$*".
Read the result: the recording shows what the daemon does, not what the
protocol says it should do.
"""
import json
import os
import re
import shlex
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from rvtest import Daemon  # noqa: E402

TIME_KEYS = {"time", "created", "updated", "expires"}
SID = re.compile(r"^[0-9a-f]{32}$")
DEVICE = re.compile(r"^conn-[0-9a-f]{16}$")  # a device the daemon assigned


def bind(v, names, prefix):
    """The variable ("$S1", "$D2", ...) standing for v, made on first sight."""
    if v not in names:
        names[v] = "%s%d" % (prefix, 1 + sum(n.startswith(prefix) for n in names.values()))
    return names[v]


def generalise(v, names, key=None):
    if isinstance(v, dict):
        return {k: generalise(x, names, k) for k, x in v.items()}
    if isinstance(v, list):
        return [generalise(x, names) for x in v]
    if key in TIME_KEYS and isinstance(v, int):
        return "$*"
    if isinstance(v, str) and SID.match(v):
        return bind(v, names, "$S")
    if isinstance(v, str) and DEVICE.match(v):
        return bind(v, names, "$D")
    return v


def main():
    lines = open(sys.argv[1]).read().splitlines()
    args = shlex.split(lines[0][2:]) if lines and lines[0].startswith("#!") else []
    d = Daemon(*args)
    clients, names = {}, {}
    who = None
    try:
        for line in lines:
            if not line.strip() or line.startswith("#"):
                print(line)
                continue
            if line.startswith("sleep "):
                print(line)
                time.sleep(float(line.split()[1]))
            else:
                name, _, rest = line.partition(" ")
                if rest == "close":
                    clients.pop(name).close()
                    print(line)
                    continue
                who = name[:-1]
                if who not in clients:
                    clients[who] = d.client()
                text = rest
                for sid, var in names.items():
                    text = text.replace('"%s"' % var, json.dumps(sid))
                clients[who].send_raw(text.encode() + b"\n")
                print(line)
            time.sleep(0.15)
            # the sender's replies first, then the others in order of appearance
            order = sorted(clients, key=lambda name: name != who)
            for name in order:
                while True:
                    try:
                        msg = clients[name].read_msg(0.05)
                    except (TimeoutError, ConnectionError):
                        break  # nothing more now, or the daemon closed it (a kick)
                    print("%s< %s" % (name, json.dumps(generalise(msg, names), separators=(",", ":"))))
    finally:
        for c in clients.values():
            c.close()
        d.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Daemon memory per lingering (ended, still readable) session.

Usage: tests/bench/linger_memory.py [N] [STORE]   (default 5000 sessions, sqlite)
Starts its own rendezvousd (RENDEZVOUSD, default build/daemon/rendezvousd) on
loopback, creates and cancels N sessions with no data and N with 16 KB of data
each (so they linger for --linger, 60 s), and prints RSS growth per session.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from rvtest import Daemon  # noqa: E402


EXTRA = os.environ.get("RV_EXTRA_ARGS", "").split()


def linger(c, n, data):
    for _ in range(n):
        params = {"invitee": "bob"}
        if data is not None:
            params["data"] = data
        sid = c.call("session.create", params)["session"]
        c.call("session.cancel", {"session": sid})


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    store = sys.argv[2] if len(sys.argv) > 2 else None
    args = ["--linger", "600"] + EXTRA
    if store:
        args += ["--store", store]
    results = []
    for label, data in (("no data", None), ("16 KB data", "x" * 16000)):
        daemon = Daemon(*args)
        try:
            c = daemon.client("alice")
            linger(c, 50, data)  # warm up allocator pools
            time.sleep(0.3)
            before = daemon.rss()
            linger(c, n, data)
            time.sleep(0.3)
            per = (daemon.rss() - before) / n
            results.append((label, per))
            c.close()
        finally:
            daemon.stop()
    for label, per in results:
        print("%-11s %8.0f bytes per lingering session (%d sessions, store %s; each with "
              "its two events in history)" % (label, per, n, store or "sqlite"))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Figures for several daemons sharing one Redis (issue 15), on this machine.

    tests/bench/shared.py [--bench build/tests/bench/rendezvous-bench]
                          [--daemon build/daemon/rendezvousd] [--runs 3] [--duration 5]
                          [--spread-rates 200,500,1000] [--rate 1000]
                          [--subs 300 | --subs-per-node N] [--poll-ms 20]
                          [--parts 1,2,3]

1. Transitions per second through one node on Redis (rendezvous-bench
   lifecycle, --store redis://...), against the transition script driven by
   a bare client (redis-benchmark, 50 connections, one call in flight each:
   creations, each a new session with its event, history entry and
   publication) and against --store memory.
2. CPU seconds per delivered event on each node with 1, 2 and 3 nodes
   (--subs 300 subscribers spread across them, or --subs-per-node on each;
   transitions driven into one more node, which has none, at each of
   --spread-rates per second, the configurations alternating run by run),
   and Redis's CPU per transition; from these, the projected capacity of 10
   nodes. The subscribers' reader looks every --poll-ms and never sleeps on
   their sockets, so a node's writes wake nobody, as for subscribers on
   other machines (--poll-ms 0: it sleeps on them, each arrival wakes it).
   The subscribers are read by rendezvous-subs (C, its own process;
   --reader python: a thread of this script). With each figure, how busy
   the whole machine was while it was driven.
3. Delivery latency from a request on node A to a subscriber on node B at
   --rate transitions per second (p50, p99).

Medians of --runs runs. The drivers of 2 and 3, and the reader of 3, are
Python: their numbers are costs and latencies measured under a Python
client, not its throughput. Every process started is stopped by pid.
"""
import argparse
import hashlib
import json
import os
import re
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import rvtest  # noqa: E402  (Daemon, Redis, free_port)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu():
    """Busy CPU seconds of the whole machine so far, all cores."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK  # less idle and iowait


def redis_int(redis, key):
    """An integer key's value (0 when absent)."""
    reply = redis.command("GET", key)
    return 0 if reply.startswith("$-1") else int(reply.split("\r\n")[1])


def transition_script():
    """The transition script's source, from daemon/redis_scripts.c."""
    text = open(os.path.join(ROOT, "daemon", "redis_scripts.c")).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # Its pieces: string literals, and macros (#define NAME pieces) spelled out.
    macros = {m.group(1): m.group(2) for m in
              re.finditer(r"#define (\w+) ((?:.*\\\n)*.*)", text)}

    def expand(body):
        out = []
        for lit, name in re.findall(r'"((?:[^"\\]|\\.)*)"|\b([A-Z_][A-Z0-9_]*)\b', body):
            out.append(expand(macros[name]) if name else lit)
        return "".join(out)

    body = text.split("static const char transition_lua[] =", 1)[1].split(";\n", 1)[0]
    return expand(body).encode().decode("unicode_escape")


def bench_lifecycle(args, store):
    out = subprocess.run([args.bench, "--daemon", args.daemon, "--store", store, "--json",
                          "--duration", str(args.duration), "lifecycle"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])["value"]


def bare_script(redis, n):
    """Transitions per second of the script alone, from redis-benchmark."""
    src = transition_script()
    sha = hashlib.sha1(src.encode()).hexdigest()
    subprocess.run(["redis-cli", "-p", str(redis.port), "SCRIPT", "LOAD", src],
                   check=True, capture_output=True)
    record = json.dumps({"id": "0" * 32, "inviter": "alice", "invitee": "bob", "state": 1,
                         "done": [0, 0, 0, 0], "created": 1, "updated": 1, "expires": 2,
                         "event": 0, "inviter_device": "conn-0123456789abcdef",
                         "by_user": "alice", "by_device": "conn-0123456789abcdef"},
                        separators=(",", ":"))
    head = ('{"jsonrpc":"2.0","method":"session.state_changed","params":{"session":"'
            + "0" * 32 + '","prev":"RSS_UNKNOWN","state":"RSS_READY","event":')
    tail = (',"time":1,"by":"alice","by_device":"conn-0123456789abcdef","inviter":"alice",'
            '"invitee":"bob","topic":""}}\n')
    out = subprocess.run(
        ["redis-benchmark", "-p", str(redis.port), "-c", "50", "-n", str(n), "-r", "1000000000",
         "-q", "EVALSHA", sha, "11", "rv:s:__rand_int__", "rv:ev", "rv:fs", "rv:log",
         "rv:sessions", "rv:k:", "rv:live:__rand_int__", "rv:od:a", "rv:o:a", "rv:od:b",
         "rv:o:b", "0", record, head, tail, "", "__rand_int__", "10000", "rv:events", "t", "",
         "60000", "", "+", "", "", "1", "604800000", "1000", ""],
        capture_output=True, text=True, timeout=300)
    rates = re.findall(r"([0-9.]+) requests per second", out.stdout)
    if not rates:
        raise RuntimeError("redis-benchmark: " + out.stdout[-500:] + out.stderr[-500:])
    return float(rates[-1])


class Subs(threading.Thread):
    """Subscribers to every event, read by one thread: counts per connection, and when
    each session's first event came (at the first subscriber)."""

    def __init__(self, ports, poll=0):
        super().__init__(daemon=True)
        self.poll = poll
        self.clients = []
        for port in ports:
            c = rvtest.Client(port)
            c.hello("obs")
            c.call("subscribe", {"all": True})
            c.sock.setblocking(False)
            self.clients.append(c)
        self.count = [0] * len(self.clients)
        self.first = {}
        self.stop = False

    def run(self):
        # epoll, not select(): more than 1,024 subscribers.
        sel = selectors.DefaultSelector()
        for i, c in enumerate(self.clients):
            sel.register(c.sock, selectors.EVENT_READ, i)
        bufs = [b""] * len(self.clients)
        while not self.stop:
            if self.poll:
                # Look every poll seconds and never sleep on the sockets: a write
                # to a socket nobody waits on wakes nobody, as for a subscriber on
                # another machine, so the node's CPU is its own work.
                time.sleep(self.poll)
                ready = sel.select(0)
            else:
                ready = sel.select(0.2)
            now = time.monotonic()
            for key, _ in ready:
                i = key.data
                try:
                    chunk = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                data = bufs[i] + chunk
                n = data.count(b"\n")
                self.count[i] += n
                bufs[i] = data[data.rfind(b"\n") + 1:]
                if i == 0:
                    for m in re.finditer(rb'"session":"([0-9a-f]{32})","prev":"RSS_UNKNOWN"',
                                         data):
                        self.first.setdefault(m.group(1).decode(), now)
        sel.close()

    def finish(self):
        """Stop reading; the lines each connection received."""
        self.stop = True
        self.join(timeout=10)
        return self.count

    def close(self):
        self.finish()
        for c in self.clients:
            c.close()


class CSubs:
    """The same subscribers read by rendezvous-subs (C, its own process): counts only.
    The Python reader takes most of a core of this 2-core machine."""

    def __init__(self, path, ports, poll=0):
        self.proc = subprocess.Popen([path, str(round(poll * 1000)), *map(str, ports)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("rendezvous-subs did not start")
        self.count = None

    def start(self):
        pass

    def finish(self):
        if self.count is None:
            out, _ = self.proc.communicate(timeout=30)  # closes its standard input
            self.count = [int(v) for v in out.split()]
        return self.count

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def drive(port, rate, seconds):
    """Create-then-cancel at rate transitions per second (open loop); ({session: sent},
    the seconds it took to send them all)."""
    c = rvtest.Client(port)
    c.hello("alice")
    sent, sessions = {}, {}
    replies = []
    got = [0]  # replies read (the loop below takes them out of replies)

    def reader():
        buf = b""
        c.sock.settimeout(30)
        want = int(rate * seconds)
        while got[0] < want:
            try:
                chunk = c.sock.recv(1 << 20)
            except OSError:
                return  # closed, or silent for 30 s
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                replies.append(json.loads(line))
            got[0] += len(lines)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    start = time.monotonic()
    i = 0
    pending_cancel = []
    while i < rate * seconds:
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        # Every other transition cancels a session created earlier.
        if i % 2 == 1 and pending_cancel:
            sid = pending_cancel.pop(0)
            msg = {"jsonrpc": "2.0", "id": i, "method": "session.cancel",
                   "params": {"session": sid}}
        else:
            msg = {"jsonrpc": "2.0", "id": i, "method": "session.create",
                   "params": {"invitee": "bob"}}
            sent[i] = time.monotonic()
        c.sock.sendall((json.dumps(msg) + "\n").encode())
        i += 1
        # Learn the ids created so far, to cancel them.
        while replies:
            r = replies.pop(0)
            if r.get("id") in sent and "result" in r:
                sessions[r["result"]["session"]] = sent[r["id"]]
                pending_cancel.append(r["result"]["session"])
    took = time.monotonic() - start
    t.join(timeout=30)
    for r in replies:
        if r.get("id") in sent and "result" in r:
            sessions[r["result"]["session"]] = sent[r["id"]]
    c.sock.close()
    return sessions, took


def node(redis):
    return rvtest.Daemon("--store", redis.url, "--observer", "obs", "--linger", "1",
                         "--max-sessions-per-user", "1000000")


def spread(args, k, rate, redis):
    """CPU per delivered event on each of k nodes that only deliver (the changes come
    through another node); Redis's CPU per transition; how many cores the machine kept
    busy meanwhile; how much of a core each node was."""
    front = node(redis)
    nodes = [node(redis) for _ in range(k)]
    subs = None
    try:
        ports = [nodes[i % k].port for i in range(subs_for(args, k))]
        if args.reader == "c":
            subs = CSubs(args.subs_bin, ports, args.poll_ms / 1000)
        else:
            subs = Subs(ports, args.poll_ms / 1000)
        subs.start()
        time.sleep(0.5)
        cpu0 = [cpu_seconds(n.proc.pid) for n in nodes]
        r0, ev0 = cpu_seconds(redis.proc.pid), redis_int(redis, "rv:ev")
        m0, t0 = machine_cpu(), time.monotonic()
        _, took = drive(front.port, rate, args.duration)
        elapsed = time.monotonic() - t0
        busy = (machine_cpu() - m0) / elapsed
        if took > args.duration * 1.1:
            raise RuntimeError("the driver fell behind: %.1f s to send %d transitions"
                               % (took, rate * args.duration))
        time.sleep(1)
        cpu1 = [cpu_seconds(n.proc.pid) for n in nodes]
        r1, ev1 = cpu_seconds(redis.proc.pid), redis_int(redis, "rv:ev")
        per_node = []
        count = subs.finish()
        for i in range(k):
            delivered = sum(c for j, c in enumerate(count) if j % k == i)
            per_node.append((cpu1[i] - cpu0[i]) / max(delivered, 1))
        # Over the drive and the second after it, while the last deliveries drain.
        load = [(cpu1[i] - cpu0[i]) / (elapsed + 1) for i in range(k)]
        return per_node, (r1 - r0) / max(ev1 - ev0, 1), busy, load
    finally:
        if subs is not None:
            subs.close()
        for n in [front] + nodes:
            n.stop()


def latency(args, redis):
    a, b = node(redis), node(redis)
    subs = None
    try:
        subs = Subs([b.port])
        subs.start()
        time.sleep(0.3)
        sessions, _ = drive(a.port, args.rate, args.duration)
        time.sleep(1)
        lat = sorted((subs.first[s] - t) * 1000 for s, t in sessions.items() if s in subs.first)
        return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], len(lat)
    finally:
        if subs is not None:
            subs.close()
        a.stop()
        b.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", default=os.path.join(ROOT, "build/tests/bench/rendezvous-bench"))
    p.add_argument("--daemon", default=os.path.join(ROOT, "build/daemon/rendezvousd"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--rate", type=int, default=1000,
                   help="part 3: transitions per second")
    p.add_argument("--spread-rates", default="200,500,1000",
                   help="part 2: the transition rates to measure at (a comma list)")
    p.add_argument("--subs", type=int, default=300)
    p.add_argument("--subs-per-node", type=int, default=0,
                   help="part 2: N subscribers on each node (1, 2, 3 nodes: N, 2N, 3N in "
                        "all) instead of --subs spread across them")
    p.add_argument("--reader", choices=("c", "python"), default="c",
                   help="part 2: who reads the subscribers: rendezvous-subs (C, "
                        "--subs-bin) or a thread of this script")
    p.add_argument("--subs-bin", default=os.path.join(ROOT, "build/tests/bench/rendezvous-subs"))
    p.add_argument("--poll-ms", type=float, default=20,
                   help="part 2: the subscribers' reader looks every N ms instead of "
                        "sleeping on the sockets (0: sleep, each arrival wakes it)")
    p.add_argument("--parts", default="1,2,3", help="which figures, e.g. 3 or 1,2")
    args = p.parse_args()
    args.spread_rates = [int(v) for v in args.spread_rates.split(",")]
    # One descriptor per subscriber.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rvtest.DAEMON = args.daemon
    med = statistics.median
    parts = set(args.parts.split(","))
    if "1" in parts:
        throughput(args)
    if "2" in parts:
        spreading(args)
    if "3" in parts:
        delivery(args)


def throughput(args):
    med = statistics.median
    thru, ceil, mem = [], [], []
    for _ in range(args.runs):
        r = rvtest.Redis()
        try:
            thru.append(bench_lifecycle(args, r.url))
            ceil.append(bare_script(r, 200000))
        finally:
            r.stop()
        mem.append(bench_lifecycle(args, "memory"))
    print("1. transitions/s through one node on Redis: %.0f (runs %s)"
          % (med(thru), ", ".join("%.0f" % v for v in thru)))
    print("   the script alone (redis-benchmark, 50 connections): %.0f/s; ratio %.2f"
          % (med(ceil), med(thru) / med(ceil)))
    print("   --store memory, one node: %.0f/s; Redis costs %.2fx of it"
          % (med(mem), med(thru) / med(mem)))



def subs_for(args, k):
    """How many subscribers k nodes share: --subs, or --subs-per-node each."""
    return args.subs_per_node * k if args.subs_per_node else args.subs


def spreading(args):
    for rate in args.spread_rates:
        spreading_at(args, rate)


def spreading_at(args, rate):
    med = statistics.median
    # The configurations alternate run by run, so that the machine's drift (a noisy VM)
    # falls on all of them alike.
    runs = {k: [] for k in (1, 2, 3)}
    for _ in range(args.runs):
        for k in runs:
            r = rvtest.Redis()
            try:
                runs[k].append(spread(args, k, rate, r))
            finally:
                r.stop()
    costs = {}
    print("2. %d transitions/s, %s:" % (rate, "%d subscribers on each node" % args.subs_per_node
                                       if args.subs_per_node else
                                       "%d subscribers spread across the nodes" % args.subs))
    for k in runs:
        per_node = [med([run[0][i] for run in runs[k]]) for i in range(k)]
        redis_cpu = med([run[1] for run in runs[k]])
        costs[k] = (per_node, redis_cpu)
        # Costs measured on a machine with no core to spare grow with the contention.
        print("   %d node(s): CPU per delivered event per node: %s us (node busy %s of a "
              "core); Redis CPU per transition %.1f us; the machine was busy %.2f of %d "
              "cores"
              % (k, ", ".join("%.2f" % (c * 1e6) for c in per_node),
                 ", ".join("%.2f" % med([run[3][i] for run in runs[k]]) for i in range(k)),
                 redis_cpu * 1e6, med([run[2] for run in runs[k]]), os.cpu_count()))
    base = costs[1][0][0]
    for k in (2, 3):
        print("   %d nodes: per-node cost / one node's: %s" % (
            k, ", ".join("%.2f" % (c / base) for c in costs[k][0])))
    # Each node pays a cost per event it receives (waking up, parsing, applying) and one per
    # delivery: a least-squares line through (deliveries per event, CPU per event) per node.
    # (Not with --subs-per-node: every node then has as many.)
    pts = [(subs_for(args, k) / k, c * subs_for(args, k) / k)
           for k in costs for c in costs[k][0]]
    mx, my = statistics.mean(p[0] for p in pts), statistics.mean(p[1] for p in pts)
    if not args.subs_per_node:
        slope = (sum((x - mx) * (y - my) for x, y in pts) /
                 sum((x - mx) ** 2 for x, _ in pts))
        print("   per node: about %.0f us per event received, plus %.2f us per delivery"
              % ((my - slope * mx) * 1e6, slope * 1e6))
    worst = max(c for k in costs for c in costs[k][0])
    redis_cpu = med([costs[k][1] for k in costs])
    print("   projected, 10 nodes: %.0f deliveries/s (10 x 1/CPU per delivery, worst node); "
          "Redis bounds transitions at about %.0f/s (1/Redis CPU per transition)"
          % (10 / worst, 1 / redis_cpu))


def delivery(args):
    med = statistics.median
    lats = []
    for _ in range(args.runs):
        r = rvtest.Redis()
        try:
            lats.append(latency(args, r))
        finally:
            r.stop()
    print("3. delivery, request on node A -> subscriber on node B, %d/s: p50 %.2f ms, "
          "p99 %.2f ms (medians of %d runs, %d sessions each)"
          % (args.rate, med([l[0] for l in lats]), med([l[1] for l in lats]), args.runs,
             med([l[2] for l in lats])))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Run every scenario against rendezvousd and Redis, interleaved, and print a Markdown table.

Usage: tests/bench/compare.py [--bench PATH] [--daemon PATH] [--runs N] [--quick]
Each scenario runs N times (default 3) alternating the two servers, so that
noise on a shared machine hits both alike; the table shows medians, the
spread (min-max) and the ratio rendezvousd / Redis of the medians. Rows
without a durability level compare rendezvousd --store memory with Redis
without persistence; the durable rows compare the SQLite store with Redis's
append-only file at the same promise.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Rows whose result depends most on this shared machine's timing noise get
# at least this many runs per server (their spread was 2x between runs).
NOISY = 5


# (label, scenario, arguments, higher is better, target[, least runs[, the other server]])
# The other server is Redis unless said: "limit" is tests/bench/limit.c, the
# bare-epoll fan-out limit (issue 17), in the Redis column of its row.
def matrix(quick):
    secs = ["--duration", "3" if quick else "5"]
    rows = [
        ("lifecycle, 1 pair", "lifecycle", ["--pairs", "1", *secs], True, None),
        ("lifecycle, 50 pairs", "lifecycle", ["--pairs", "50", *secs], True, ">= 1.2x", NOISY),
        ("fanout, 10 subscribers", "fanout", ["--subs", "10"], True, ">= 0.7x"),
        ("fanout, 100 subscribers", "fanout", ["--subs", "100"], True, ">= 1.3x"),
        ("fanout, 1000 subscribers", "fanout", ["--subs", "1000"], True, ">= 1.3x"),
        ("fanout, 1000 subscribers, against the bare-epoll limit (limit.c) in the Redis column", "fanout", ["--subs", "1000"], True, ">= 0.5x", 3, "limit"),
        ("latency p99, 10k/s, 10 subscribers", "latency", ["--rate", "10000", "--subs", "10", *secs], False, "<= 1.0x", NOISY),
        # Durable: rendezvousd's default store against Redis's AOF (bench --help).
        ("lifecycle, 50 pairs, normal (AOF, appendfsync everysec)", "lifecycle", ["--pairs", "50", "--durability", "normal", *secs], True, ">= 1.0x", NOISY),
        ("lifecycle, 50 pairs, strict (AOF, appendfsync always)", "lifecycle", ["--pairs", "50", "--durability", "strict", *secs], True, ">= 1.0x", NOISY),
        ("latency p99, 10k/s, 10 subscribers, normal", "latency", ["--rate", "10000", "--subs", "10", "--durability", "normal", *secs], False, "<= 1.0x", NOISY),
        ("recovery after SIGKILL, normal (AOF replay)", "recovery", ["--durability", "normal", "--sessions", "200000" if quick else "1000000"], False, None, 1),
        ("memory per live session", "sessions", ["--sessions", "200000" if quick else "1000000"], False, "<= 512 B"),
        ("memory per idle connection", "connections", ["--connections", "5000" if quick else "19000"], False, "<= 2048 B"),
    ]
    return rows


def run(bench, daemon, server, scenario, args):
    cmd = [bench, "--json", "--server", server, "--daemon", daemon, *args, scenario]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0 or not p.stdout.strip():
        sys.stderr.write(f"failed: {' '.join(cmd)}\n{p.stderr}{p.stdout}\n")
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def fmt(v, unit):
    if unit.startswith("us to recover"):
        return f"{v / 1e6:,.2f} s"
    if unit.startswith("us"):
        return f"{v:,.0f} us"
    if unit.startswith("bytes"):
        return f"{v:,.0f} B"
    return f"{v:,.0f}/s"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/tests/bench/rendezvous-bench"))
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build/daemon/rendezvousd"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer sessions and connections")
    ap.add_argument("--only", help="run only rows whose label contains this text")
    a = ap.parse_args()

    lines = []
    out = lambda s="": (print(s, flush=True), lines.append(s))
    cpu = "?"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    redis_version = next((w[2:] for w in redis_version if w.startswith("v=")), "?")
    out(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} x {cpu}, Linux {platform.release()}, Redis {redis_version}. "
        f"Server pinned to CPU 0, client to CPU 1; {a.runs} runs each "
        f"(at least {NOISY} for the timing-sensitive rows marked *), alternating servers; medians, spread min-max.")
    out()
    out("| scenario | rendezvousd | Redis | ratio | target | met | notes |")
    out("|---|---|---|---|---|---|---|")
    for label, scenario, args, higher, target, *rest in matrix(a.quick):
        least = rest[0] if rest else None
        other = rest[1] if len(rest) > 1 else "redis"
        # A row may ask for fewer runs than --runs (recovery: minutes each), or more.
        runs = least if least is not None and least < NOISY else max(a.runs, least or 0)
        if least == NOISY:
            label += " *"
        if a.only and a.only not in label:
            continue
        res = {"rendezvousd": [], "redis": []}
        complete = True
        for _ in range(runs):
            for server in ("rendezvousd", other):
                r = run(a.bench, a.daemon, server, scenario, args)
                if r is None:
                    complete = False
                    continue
                res["redis" if server == other else server].append(r)
                complete &= r["complete"]
        if not res["rendezvousd"] or not res["redis"]:
            out(f"| {label} | failed | | | {target or ''} | no | |")
            continue
        unit = res["rendezvousd"][0]["unit"]
        med = {k: statistics.median(x["value"] for x in v) for k, v in res.items()}
        spread = {k: (min(x["value"] for x in v), max(x["value"] for x in v)) for k, v in res.items()}
        ratio = med["rendezvousd"] / med["redis"] if med["redis"] else float("nan")
        met = ""
        if target:
            num = float(target.split()[1].rstrip("xB"))
            if target.endswith("B"):
                met = "yes" if med["rendezvousd"] <= num else "no"
            elif target.startswith(">="):
                met = "yes" if ratio >= num else "no"
            else:
                met = "yes" if ratio <= num else "no"
        notes = []
        if runs < a.runs:
            notes.append("%d run%s each" % (runs, "" if runs == 1 else "s"))
        if other != "redis":
            notes.append("the Redis column is %s" % other)
        if scenario == "lifecycle":
            e = [x["extra"] for x in res["rendezvousd"]]
            f = [x["extra"] for x in res["redis"]]
            notes.append("p50/p99/p999 us: ours %s, Redis %s" % (
                "/".join("%.0f" % statistics.median(v[i] for v in e) for i in (2, 3, 4)),
                "/".join("%.0f" % statistics.median(v[i] for v in f) for i in (2, 3, 4))))
            # Bytes written to storage per transition (/proc/PID/io write_bytes).
            if "durability" in " ".join(args):
                we = statistics.median(v[5] for v in e)
                wf = statistics.median(v[5] for v in f)
                if we >= 0 and wf >= 0:
                    notes.append("disk B/transition: ours %.0f, Redis %.0f (%.1fx)" % (
                        we, wf, we / wf if wf else float("nan")))
        if scenario == "latency":
            e = [x["extra"] for x in res["rendezvousd"]]
            f = [x["extra"] for x in res["redis"]]
            notes.append("p50 us: ours %.0f, Redis %.0f" % (statistics.median(v[0] for v in e),
                                                           statistics.median(v[0] for v in f)))
            # Issue 17: no run's p99 above 3x the median.
            notes.append("worst run's p99: ours %.1fx the median, Redis %.1fx" % (
                spread["rendezvousd"][1] / med["rendezvousd"], spread["redis"][1] / med["redis"]))
        if scenario == "recovery":
            e = [x["extra"] for x in res["rendezvousd"]]
            f = [x["extra"] for x in res["redis"]]
            notes.append("files: ours %.0f MiB, Redis %.0f MiB" % (
                statistics.median(v[0] for v in e) / 1048576, statistics.median(v[0] for v in f) / 1048576))
        if scenario == "fanout":
            notes.append("every delivery complete and in order" if complete else "INCOMPLETE")
        out("| %s | %s (%s-%s) | %s (%s-%s) | %.2fx | %s | %s | %s |" % (
            label, fmt(med["rendezvousd"], unit), fmt(spread["rendezvousd"][0], unit).split()[0].rstrip("/s"),
            fmt(spread["rendezvousd"][1], unit).split()[0].rstrip("/s"), fmt(med["redis"], unit),
            fmt(spread["redis"][0], unit).split()[0].rstrip("/s"), fmt(spread["redis"][1], unit).split()[0].rstrip("/s"),
            ratio, target or "", met, "; ".join(notes)))
    out()
    out("ratio = rendezvousd / Redis (medians): above 1 is better for rates, below 1 is better for latency and memory.")


if __name__ == "__main__":
    main()

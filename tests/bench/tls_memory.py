#!/usr/bin/env python3
"""Daemon memory per idle connection, plain against TLS (both after hello).

Usage: tests/bench/tls_memory.py [N]   (default 2000 connections of each kind)
Starts its own rendezvousd (RENDEZVOUSD, default build/daemon/rendezvousd) on
loopback with a throwaway certificate; prints RSS growth per connection.
"""
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from rvtest import Client, Daemon  # noqa: E402


def hold(n, port, tls):
    conns = []
    for i in range(n):
        c = Client(port, tls=tls)
        c.hello("u%d" % i)
        conns.append(c)
    return conns


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as d:
        key, cert = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost"], check=True, capture_output=True)
        daemon = Daemon("--listen-tls", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                        "--max-connections", str(4 * n))
        ctx = ssl.create_default_context(cafile=cert)
        try:
            results = {}
            for kind, port, tls in (("plain", daemon.port, None), ("TLS", daemon.tls_port, ctx)):
                hold(50, port, tls)  # warm up allocator pools
                time.sleep(0.5)
                before = daemon.rss()
                conns = hold(n, port, tls)
                time.sleep(0.5)
                results[kind] = (daemon.rss() - before) / n
                for c in conns:
                    c.close()
                time.sleep(0.5)
            for kind, per in results.items():
                print("%-5s %6.0f bytes per idle connection (%d connections, after hello)" % (kind, per, n))
            print("TLS/plain: %.1fx" % (results["TLS"] / results["plain"]))
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()

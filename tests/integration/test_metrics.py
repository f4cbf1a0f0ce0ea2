#!/usr/bin/env python3
"""--metrics: the Prometheus page parsed by the text format's rules and checked
against activity this test caused; /healthz and /readyz; naming conventions."""
import http.client
import re
import unittest

from rvtest import DaemonTest, lifecycle_to, main

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{family: {"type": t, "help": h, "samples": {(name, labels-tuple): value}}}"""
    families, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, help_ = line[7:].split(" ", 1)
            families.setdefault(name, {})["help"] = help_
        elif line.startswith("# TYPE "):
            name, type_ = line[7:].split(" ")
            assert name not in families or "type" not in families[name], "TYPE twice: " + name
            families.setdefault(name, {})["type"] = type_
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
            key = (m.group(1), labels)
            assert key not in samples, "sample twice: %r" % line
            samples[key] = float(m.group(4))
    return families, samples


class Metrics(DaemonTest):
    daemon_args = ("--metrics", "127.0.0.1:0", "--admin", "root")

    def setUp(self):
        super().setUp()
        m = self.daemon.wait_log(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
        self.mport = int(m.group(1))

    def get(self, path, method="GET"):
        conn = http.client.HTTPConnection("127.0.0.1", self.mport, timeout=10)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read().decode()
        finally:
            conn.close()

    def scrape(self):
        status, ctype, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        return parse(body)

    def value(self, samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0)

    def test_conventions(self):
        families, samples = self.scrape()
        for name, fam in families.items():
            self.assertIn("type", fam, name)
            self.assertTrue(fam.get("help"), name)
            self.assertRegex(name, r"^(rendezvous|process)_[a-z0-9_]+$")
            if fam["type"] == "counter":
                self.assertTrue(name.endswith("_total"), name)
            else:
                self.assertFalse(name.endswith("_total"), name)
            if fam["type"] == "histogram":
                self.assertTrue(name.endswith("_seconds"), name)
        for (name, _), _v in samples.items():
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in families or base in families, "undeclared " + name)

    def test_counts_follow_activity(self):
        before = self.scrape()[1]
        alice, bob, root = self.client("alice"), self.client("bob"), self.client("root")
        watcher = self.client("alice")
        watcher.call("subscribe", {"user": "alice"})
        s1 = lifecycle_to(alice, bob, "RSS_CONNECTED")
        alice.call("session.send", {"session": s1, "data": {"hi": 1}})
        s2 = lifecycle_to(alice, bob, "RSS_INVITATION")
        bob.call("session.decline", {"session": s2})
        s3 = lifecycle_to(alice, bob, "RSS_READY")
        alice.call("session.cancel", {"session": s3})
        s4 = lifecycle_to(alice, bob, "RSS_ACCEPTED")
        root.call("session.terminate", {"session": s4})
        alice.call("session.terminate", {"session": s1})
        lifecycle_to(alice, bob, "RSS_READY")  # still live
        self.assertEqual(bob.error("session.get", {"session": "0" * 32})["code"], 4004)
        self.assertEqual(bob.error("no.such.method")["code"], -32601)
        bob.send_raw(b"{not json\n")
        self.assertEqual(bob.read_msg()["error"]["code"], -32700)
        for _ in range(12):  # events the watcher was sent: wait for them all
            watcher.event()

        fam, s = self.scrape()
        v = lambda name, **l: self.value(s, name, **l) - self.value(before, name, **l)
        self.assertEqual(self.value(s, "rendezvous_sessions", state="RSS_READY"), 1)
        self.assertEqual(self.value(s, "rendezvous_sessions", state="RSS_TERMINATED"), 2)
        self.assertEqual(self.value(s, "rendezvous_sessions", state="RSS_DECLINED"), 1)
        self.assertEqual(self.value(s, "rendezvous_sessions", state="RSS_CANCELLED"), 1)
        self.assertEqual(self.value(s, "rendezvous_sessions", state="RSS_CONNECTED"), 0)
        self.assertEqual(v("rendezvous_sessions_created_total"), 5)
        t = lambda a, b: v("rendezvous_session_transitions_total", **{"from": a, "to": b})
        self.assertEqual(t("RSS_UNKNOWN", "RSS_READY"), 5)
        self.assertEqual(t("RSS_READY", "RSS_INVITATION"), 3)
        self.assertEqual(t("RSS_INVITATION", "RSS_ACCEPTED"), 2)
        self.assertEqual(t("RSS_ACCEPTED", "RSS_CONNECTED"), 1)  # the second connect only records
        self.assertEqual(t("RSS_CONNECTED", "RSS_TERMINATED"), 1)
        self.assertEqual(t("RSS_ACCEPTED", "RSS_TERMINATED"), 1)
        self.assertEqual(t("RSS_INVITATION", "RSS_DECLINED"), 1)
        self.assertEqual(t("RSS_READY", "RSS_CANCELLED"), 1)
        for reason, n in (("terminate", 1), ("admin", 1), ("decline", 1), ("cancel", 1),
                          ("expired", 0), ("peer_lost", 0)):
            self.assertEqual(v("rendezvous_sessions_ended_total", reason=reason), n, reason)
        self.assertEqual(self.value(s, "rendezvous_connections"), 4)
        self.assertEqual(v("rendezvous_connections_accepted_total"), 4)
        self.assertEqual(self.value(s, "rendezvous_subscriptions"), 1)
        self.assertEqual(v("rendezvous_events_published_total"), 15)
        self.assertEqual(self.value(s, "rendezvous_last_event_id"), 15)
        # The watcher's events: alice's sessions, all 15; each is one line.
        self.assertEqual(v("rendezvous_events_delivered_total"), 15)
        self.assertEqual(v("rendezvous_context_delivered_total"), 1)
        self.assertGreater(v("rendezvous_delivered_bytes_total"), 15 * 100)
        for code, n in (("4004", 1), ("-32601", 1), ("-32700", 1), ("4009", 0)):
            self.assertEqual(v("rendezvous_errors_total", code=code), n, code)
        # Histograms: one observation per request of the method, buckets cumulative.
        creates = [(k, val) for k, val in s.items()
                   if k[0] == "rendezvous_request_duration_seconds_bucket"
                   and ("method", "session.create") in k[1]]
        counts = [val for _, val in sorted(creates, key=lambda kv: float(
            dict(kv[0][1])["le"].replace("+Inf", "inf")))]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(counts[-1], 5)
        self.assertEqual(self.value(s, "rendezvous_request_duration_seconds_count",
                                    method="session.create"), 5)
        self.assertGreater(self.value(s, "rendezvous_request_duration_seconds_sum",
                                      method="session.create"), 0)
        # Every change was its own commit here (one client at a time).
        self.assertGreaterEqual(v("rendezvous_store_commit_duration_seconds_count"), 14)
        self.assertEqual(fam["rendezvous_store_commit_duration_seconds"]["type"], "histogram")
        self.assertGreater(self.value(s, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreaterEqual(self.value(s, "process_open_fds"), 6)

    def test_health_and_readiness(self):
        self.assertEqual(self.get("/healthz")[0], 200)
        status, _, body = self.get("/readyz")
        self.assertEqual((status, body), (200, "ready\n"))
        self.assertEqual(self.get("/nothing")[0], 404)
        self.assertEqual(self.get("/metrics", method="POST")[0], 405)
        self.assertEqual(self.get("/metrics", method="HEAD")[0], 200)


if __name__ == "__main__":
    main()

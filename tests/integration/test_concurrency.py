#!/usr/bin/env python3
"""Hundreds of concurrent clients: no event lost, duplicated or reordered."""
import collections

from rvtest import DaemonTest, main

PAIRS = 200       # 400 party connections
OBSERVERS = 4


class Concurrency(DaemonTest):
    daemon_args = ("--observer", "olga")

    def phase(self, clients, method, params_for):
        """Pipeline one request on every client, then collect every reply."""
        ids = [c.request(method, params_for(i)) for i, c in enumerate(clients)]
        out = []
        for c, id in zip(clients, ids):
            msg = c.response(id)
            self.assertNotIn("error", msg, msg)
            out.append(msg["result"])
        return out

    def test_many_clients(self):
        observers = [self.client("olga") for _ in range(OBSERVERS)]
        for o in observers:
            o.call("subscribe", {"all": True})
        inviters = [self.client() for _ in range(PAIRS)]
        invitees = [self.client() for _ in range(PAIRS)]
        everyone = inviters + invitees
        self.phase(everyone, "hello", lambda i: {"user": "p%d" % i})
        for c, i in zip(everyone, range(2 * PAIRS)):
            c.user = "p%d" % i
        self.phase(everyone, "subscribe", lambda i: {"user": "p%d" % i})

        recs = self.phase(inviters, "session.create", lambda i: {"invitee": "p%d" % (PAIRS + i)})
        sids = [r["session"] for r in recs]
        self.phase(inviters, "session.invite", lambda i: {"session": sids[i]})
        self.phase(invitees, "session.accept", lambda i: {"session": sids[i]})
        for i in range(0, PAIRS, 2):  # context data both ways on half the pairs
            inviters[i].call("session.send", {"session": sids[i], "data": {"n": i}})
        self.phase(inviters, "session.connect", lambda i: {"session": sids[i]})
        self.phase(invitees, "session.connect", lambda i: {"session": sids[i]})
        self.phase(inviters, "session.terminate", lambda i: {"session": sids[i], "code": i})

        total = PAIRS * 5
        for o in observers:
            ids = [o.event()["event"] for _ in range(total)]
            self.assertEqual(ids, list(range(1, total + 1)))
            o.no_message(0.1)
        want = ["RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_CONNECTED", "RSS_TERMINATED"]
        for i, c in enumerate(inviters):
            evs = [c.event() for _ in range(5)]
            self.assertEqual([e["state"] for e in evs], want)
            self.assertTrue(all(e["session"] == sids[i] for e in evs))
            self.assertEqual(evs[-1]["code"], i)
        for i, c in enumerate(invitees):
            evs = [c.event() for _ in range(4)]  # nothing before the invitation
            self.assertEqual([e["state"] for e in evs], want[1:])
            ids = [e["event"] for e in evs]
            self.assertEqual(ids, sorted(ids))
            if i % 2 == 0:
                self.assertEqual(c.note(method="session.context_data")["params"]["data"], {"n": i})
        counts = collections.Counter()
        for c in everyone:
            counts[c.call("ping")] += 1
        self.assertEqual(counts["pong"], 2 * PAIRS)


if __name__ == "__main__":
    main()

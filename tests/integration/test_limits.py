#!/usr/bin/env python3
"""Connection limit: an error line, then close; freed slots are reusable."""
import json
import socket

from rvtest import DaemonTest, main


class Limits(DaemonTest):
    daemon_args = ("--max-connections", "3")

    def test_max_connections(self):
        held = [self.client("u%d" % i) for i in range(3)]
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        err = json.loads(data.decode().strip())
        self.assertEqual(err["error"]["code"], 4029)
        self.assertEqual(err["error"]["data"]["max_connections"], 3)
        self.assertIsNone(err["id"])
        for c in held:  # the others are untouched
            self.assertEqual(c.call("ping"), "pong")
        held[0].close()
        self.clients.remove(held[0])
        import time
        deadline = time.monotonic() + 10
        while True:  # the freed slot comes back once the daemon saw the close
            c = self.client()
            try:
                self.assertEqual(c.call("ping"), "pong")
                break
            except (ConnectionError, AssertionError):
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        self.assertIn("connection refused: 3 connections", self.daemon.read_log())


if __name__ == "__main__":
    main()

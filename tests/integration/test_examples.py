#!/usr/bin/env python3
"""examples/: the pairing flow in Python, Node and the shell, run as their headers say
against the real daemon, so that they cannot rot."""
import os
import shutil
import subprocess
import sys

from rvtest import CTL, SOURCE_ROOT, DaemonTest, main, wait_for

EXAMPLES = os.path.join(SOURCE_ROOT, "examples")
# Node.js is installed by scripts/deps.sh (Debian package nodejs): not found fails.
NODE = shutil.which("node") or shutil.which("nodejs") or "node"


class Examples(DaemonTest):
    daemon_args = ("--admin", "root")

    def run_example(self, argv, env):
        r = subprocess.run(argv + ["127.0.0.1:%d" % self.daemon.port], cwd=SOURCE_ROOT,
                           env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # It leaves nothing behind: every connection it opened closes once it exits.
        root = self.client("root")
        wait_for(lambda: all(c.get("user") == "root"
                             for c in root.call("admin.connections")["connections"]),
                 "the example's connections to close")
        return r.stdout

    def test_python(self):
        out = self.run_example(
            [sys.executable, os.path.join(EXAMPLES, "pairing.py")],
            {"PYTHONPATH": os.path.join(SOURCE_ROOT, "clients", "python")})
        self.assertIn("bob sees RSS_INVITATION from alice", out)
        self.assertRegex(out, r"session [0-9a-f]{32} RSS_CONNECTED\n")
        self.assertIn("bob got {'offer': 'v=0 ...'} from alice", out)
        self.assertIn("alice got {'answer': 'v=0 ...'} from bob", out)
        self.assertRegex(out, r"session [0-9a-f]{32} RSS_TERMINATED\n$")

    def test_node(self):
        out = self.run_example([NODE, os.path.join(EXAMPLES, "pairing.js")], {})
        self.assertIn("bob sees RSS_INVITATION from alice", out)
        self.assertRegex(out, r"session [0-9a-f]{32} RSS_CONNECTED\n")
        self.assertIn('bob got {"offer":"v=0 ..."} from alice', out)
        self.assertIn('alice got {"answer":"v=0 ..."} from bob', out)
        self.assertRegex(out, r"session [0-9a-f]{32} RSS_TERMINATED\n$")

    def test_shell(self):
        out = self.run_example(
            ["bash", os.path.join(EXAMPLES, "pairing.sh")],
            {"PATH": os.path.dirname(os.path.abspath(CTL)) + os.pathsep + os.environ["PATH"]})
        self.assertRegex(out, r"state +RSS_CONNECTED\n")
        self.assertRegex(out, r"state +RSS_TERMINATED\n")
        bob = out.split("--- what bob's watch saw\n")[1].split("--- what alice")[0]
        self.assertRegex(bob, r'data [0-9a-f]{32} from alice: \{"offer":"v=0 ..."\}')
        self.assertRegex(bob, r"RSS_CONNECTED -> RSS_TERMINATED by alice code=0")


if __name__ == "__main__":
    main()

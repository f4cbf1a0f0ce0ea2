#!/usr/bin/env python3
"""The README's walkthrough ("Using it"), run as written, at human speed: a
pause longer than --peer-grace between commands. It must end with alice's
terminate, not with the daemon's peer_lost."""
import os
import re
import signal
import subprocess
import tempfile

from rvtest import CTL, SOURCE_ROOT, DaemonTest, main

GRACE = 0.5  # --peer-grace; the pause between commands is three times that


def walkthrough():
    """The indented command lines of README.md's "Using it" section, in order."""
    text = open(os.path.join(SOURCE_ROOT, "README.md")).read()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("\n\n    ", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in ("    " + block).splitlines() if line.startswith("    ")]


class Walkthrough(DaemonTest):
    daemon_args = ("--peer-grace", str(GRACE))

    def test_walkthrough_at_human_speed(self):
        lines = walkthrough()
        self.assertIn("rendezvousctl --user alice terminate $S --code 0", lines)
        script = ("\nsleep %s\n" % (3 * GRACE)).join(lines) + '\necho "session=$S"\n'
        env = {**os.environ, "RENDEZVOUS_CONNECT": "127.0.0.1:%d" % self.daemon.port,
               "PATH": os.path.dirname(os.path.abspath(CTL)) + os.pathsep + os.environ["PATH"]}
        with tempfile.TemporaryDirectory() as cwd:  # $PWD/build/cli is none of ours
            p = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
            try:
                out, err = p.communicate(timeout=120)
            finally:
                try:
                    os.killpg(p.pid, signal.SIGTERM)  # any watch left behind
                except ProcessLookupError:
                    pass
        self.assertEqual(p.returncode, 0, err)
        sid = re.search(r"^session=([0-9a-f]{32})$", out, re.M).group(1)
        rec = self.client("alice").call("session.get", {"session": sid})
        self.assertEqual((rec["state"], rec.get("reason"), rec.get("code")),
                         ("RSS_TERMINATED", None, 0), rec)
        # bob's watch saw every step, ending with alice's terminate
        states = re.findall(r"RSS_[A-Z]+", out)
        self.assertIn("RSS_CONNECTED", states)
        self.assertEqual(states[-1], "RSS_TERMINATED")


if __name__ == "__main__":
    main()

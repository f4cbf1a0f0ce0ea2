#!/usr/bin/env python3
"""The generated systemd unit names a real ExecStart and passes systemd-analyze verify."""
import os
import shutil
import subprocess
import sys
import tempfile

unit = sys.argv[1]
text = open(unit).read()
assert "@" not in text.split("ExecStart=")[1].split("\n")[0], "unsubstituted ExecStart"
assert "ExecStart=/" in text and "/rendezvousd " in text, "ExecStart missing"
if shutil.which("systemd-analyze") is None:
    print("systemd-analyze not installed: checked the unit's text only")
    sys.exit(0)
with tempfile.TemporaryDirectory() as d:
    # verify resolves ExecStart: point it at a stand-in executable of the same name
    exe = text.split("ExecStart=")[1].split()[0]
    copy = os.path.join(d, "rendezvousd.service")
    fake = os.path.join(d, "rendezvousd")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(fake, 0o755)
    with open(copy, "w") as f:
        f.write(text.replace(exe, fake))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", copy], capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip()
    problems = [l for l in out.splitlines() if "rendezvousd.service" in l]
    if p.returncode != 0 or problems:
        print(out)
        sys.exit(1)
print("systemd unit verified")

#!/usr/bin/env python3
"""The systemd units: the generated service names a real ExecStart, both units
pass systemd-analyze verify, and the service's sandbox rates 1.5 or lower in
systemd-analyze security --offline=yes (hostnamed, the best of Debian's own
units, is 1.5). CI has systemd-analyze (scripts/deps.sh installs systemd)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_EXPOSURE = 1.5

service, socket_unit = sys.argv[1], sys.argv[2]
text = open(service).read()
assert "@" not in text.split("ExecStart=")[1].split("\n")[0], "unsubstituted ExecStart"
assert "ExecStart=/" in text and "/rendezvousd" in text, "ExecStart missing"
if shutil.which("systemd-analyze") is None:
    sys.exit("systemd-analyze not installed (scripts/deps.sh installs systemd)")
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
    shutil.copy(socket_unit, os.path.join(d, "rendezvousd.socket"))
    failed = False
    for unit in ("rendezvousd.service", "rendezvousd.socket"):
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", os.path.join(d, unit)],
                           capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        problems = [l for l in out.splitlines() if "rendezvousd." in l]
        if p.returncode != 0 or problems:
            print(out)
            failed = True
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", copy],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for rendezvousd.service: ([0-9.]+)", p.stdout)
    if not m:
        print(p.stdout + p.stderr)
        sys.exit("no exposure level from systemd-analyze security")
    level = float(m.group(1))
    print("systemd-analyze security: exposure %.1f (at most %.1f)" % (level, MAX_EXPOSURE))
    if level > MAX_EXPOSURE:
        print(p.stdout)
        failed = True
    if failed:
        sys.exit(1)
print("systemd units verified")

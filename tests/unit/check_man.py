#!/usr/bin/env python3
"""The man pages say what the programs do: every option of rendezvousd --help
is in rendezvousd(8), every setting a key in rendezvousd.conf(5) (and the
shipped example), every command and option of rendezvousctl --help in
rendezvousctl(1); and scdoc (when installed) renders each page."""
import os
import re
import shutil
import subprocess
import sys

root, daemon, ctl = sys.argv[1:4]
man = os.path.join(root, "man")
ACTIONS = {"config", "check-config", "check-store", "help", "version"}
problems = []


def page(name):
    return open(os.path.join(man, name + ".scd")).read()


dhelp = subprocess.run([daemon, "--help"], capture_output=True, text=True).stdout
options = set(re.findall(r"^  --([a-z-]+)", dhelp, re.M))
assert len(options) > 30, options
d8, conf5 = page("rendezvousd.8"), page("rendezvousd.conf.5")
for o in sorted(options):
    if "*--%s*" % o not in d8:
        problems.append("rendezvousd.8 lacks --%s" % o)
    if o not in ACTIONS and not re.search(r"^\*%s\* = " % re.escape(o), conf5, re.M):
        problems.append("rendezvousd.conf.5 lacks key %s" % o)
example = open(os.path.join(root, "etc", "rendezvousd.conf")).read()
for o in sorted(options - ACTIONS):
    if not re.search(r"^#%s = " % re.escape(o), example, re.M):
        problems.append("etc/rendezvousd.conf lacks %s" % o)

chelp = subprocess.run([ctl, "--help"], capture_output=True, text=True).stdout
c1 = page("rendezvousctl.1")
# (--auth is the daemon's, named in the text of --token-file)
for o in sorted(set(re.findall(r"--([a-z-]+)", chelp)) - {"auth"}):
    if "*--%s*" % o not in c1:
        problems.append("rendezvousctl.1 lacks --%s" % o)
for cmd in re.findall(r"^  ((?:admin )?[a-z]+)(?: |$)", chelp.split("Commands:")[1], re.M):
    if "*%s*" % cmd not in c1 and "*%s " % cmd not in c1:
        problems.append("rendezvousctl.1 lacks the command %s" % cmd)

if shutil.which("scdoc"):
    for name in ("rendezvousd.8", "rendezvousd.conf.5", "rendezvousctl.1"):
        p = subprocess.run(["scdoc"], input=page(name), capture_output=True, text=True)
        if p.returncode != 0:
            problems.append("scdoc %s: %s" % (name, p.stderr.strip()))

for p in problems:
    print(p)
sys.exit(1 if problems else 0)

#!/usr/bin/env python3
"""The man pages say what the programs do, checked against the options table
(daemon/options_table.c, from which rendezvousd's flags, keys, defaults,
reload rules and --help come): every option is in rendezvousd(8) with its
default, every setting a key in rendezvousd.conf(5) (and the shipped
example), and rendezvousd.conf(5)'s RELOADING names exactly the restart-only
ones; --help lists exactly the table. Every command and option of
rendezvousctl --help is in rendezvousctl(1); and scdoc (when installed)
renders each page."""
import os
import re
import shutil
import subprocess
import sys

root, daemon, ctl = sys.argv[1:4]
man = os.path.join(root, "man")
problems = []


def page(name):
    return open(os.path.join(man, name + ".scd")).read()




def table():
    """{name: {"action", "restart", "default"}} from daemon/options_table.c."""
    text = open(os.path.join(root, "daemon", "options_table.c")).read()
    body = text.split("options_table[] = {", 1)[1].split("\n};", 1)[0]
    out = {}
    for entry in re.split(r"\n\t(?=\{\.name = )", body)[1:]:
        name = re.search(r'\.name = "([a-z-]+)"', entry).group(1)
        default = re.search(r'\.def = "([^"]*)"', entry)
        out[name] = {"action": ".type = OPT_ACTION" in entry,
                     "restart": ".restart = true" in entry,
                     "default": default.group(1) if default else None}
    return out


opts = table()
ACTIONS = {n for n, o in opts.items() if o["action"]}
dhelp = subprocess.run([daemon, "--help"], capture_output=True, text=True).stdout
options = set(re.findall(r"^  --([a-z-]+)", dhelp, re.M))
assert len(options) > 30, options
if options != set(opts):
    problems.append("--help and options_table.c differ: %s" % sorted(options ^ set(opts)))
d8, conf5 = page("rendezvousd.8"), page("rendezvousd.conf.5")
for o in sorted(opts):
    if "*--%s*" % o not in d8:
        problems.append("rendezvousd.8 lacks --%s" % o)
        continue
    default = opts[o]["default"]
    # The paragraph that documents it (several options may share one).
    para = d8.split("*--%s*" % o, 1)[1].split("\n\n", 1)[0]
    if default is not None and not re.search(r"(?<![\w.])%s(?![\w])" % re.escape(default), para):
        problems.append("rendezvousd.8: --%s does not give its default %s" % (o, default))
    if o not in ACTIONS and not re.search(r"^\*%s\* = " % re.escape(o), conf5, re.M):
        problems.append("rendezvousd.conf.5 lacks key %s" % o)
reloading = conf5.split("# RELOADING", 1)[1].split("\n# ", 1)[0]
restart = {n for n, o in opts.items() if o["restart"]}
named = set(re.findall(r"\*([a-z-]+)\*", reloading)) & set(opts)
if named != restart:
    problems.append("rendezvousd.conf.5 RELOADING names %s as restart-only; the table: %s"
                    % (sorted(named), sorted(restart)))
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

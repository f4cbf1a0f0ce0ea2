#!/usr/bin/env python3
"""librendezvous exports only rv_* symbols (as jansson's check-exports)."""
import subprocess
import sys

lib = sys.argv[1]
out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                     capture_output=True, text=True).stdout
names = [line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()]
names = [n for n in names if n not in ("RENDEZVOUS_0.1",)]
bad = [n for n in names if not n.startswith("rv_")]
if bad:
    print("exported symbols without the rv_ prefix:", ", ".join(sorted(bad)))
    sys.exit(1)
expected = {"rv_machine_apply", "rv_msg_classify", "rv_client_create", "rv_framer_next"}
missing = expected - set(names)
if missing:
    print("missing exports:", ", ".join(sorted(missing)))
    sys.exit(1)
print(f"exports: {len(names)} symbols, all rv_*")

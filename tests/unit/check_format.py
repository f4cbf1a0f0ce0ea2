#!/usr/bin/env python3
"""Every C file is formatted by .clang-format. clang-format is required
(scripts/deps.sh installs Debian's); without it this check fails rather than
passing unchecked."""
import os
import shutil
import subprocess
import sys

root = sys.argv[1]
exe = shutil.which("clang-format")
if exe is None:
    sys.exit("clang-format not installed: run scripts/deps.sh (Debian package clang-format)")
# Every C file of the tree, found by walking it (a list of folders once missed
# fuzz/): build folders and git's are not sources.
files = []
for top, dirs, names in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not d.startswith((".", "build")) and d != "subprojects")
    files += [os.path.join(top, n) for n in sorted(names) if n.endswith((".c", ".h"))]
for must in ("daemon", "lib", "cli", "fuzz", os.path.join("tests", "unit")):
    if not any(os.path.relpath(f, root).startswith(must + os.sep) for f in files):
        sys.exit("no C file found under %s: is %s the source tree?" % (must, root))
p = subprocess.run([exe, "--style=file", "--dry-run", "--Werror", *files],
                   capture_output=True, text=True, cwd=root)
if p.returncode != 0:
    print(p.stderr[-5000:])
    print("run: clang-format -i " + " ".join(os.path.relpath(f, root) for f in files))
    sys.exit(1)
print(f"{len(files)} files formatted")

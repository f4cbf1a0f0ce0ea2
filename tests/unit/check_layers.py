#!/usr/bin/env python3
"""The layers of daemon/README.md hold: every source file of daemon/, lib/
and cli/ belongs to a layer of its table, includes only its own layer and
those below, and the include graph between modules (a file's stem; rpc_*.c
is rpc, store_*.c is store) has no cycle.

  check_layers.py SOURCE_ROOT            check the tree
  check_layers.py SOURCE_ROOT --self-test also show that an added cycle and an
                                         upward include are caught
"""
import fnmatch
import os
import re
import sys

root = sys.argv[1]
DIRS = ("daemon", "lib", "cli")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layers():
    """[(name, [globs])] top to bottom, from daemon/README.md's table."""
    text = open(os.path.join(root, "daemon", "README.md")).read()
    block = text.split("<!-- layers:", 1)[1]
    rows = []
    for line in block.splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("layer", "---") or set(cells[0]) <= set("-"):
            continue
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    if not rows:
        sys.exit("daemon/README.md: no layer table found")
    return rows


def sources():
    """Every .c and .h of the checked directories, as paths from root."""
    out = []
    for d in DIRS:
        for name in sorted(os.listdir(os.path.join(root, d))):
            if name.endswith((".c", ".h", ".h.in")):
                out.append(f"{d}/{name}")
    return out


def module(path):
    d, name = path.split("/", 1)
    stem = name.split(".")[0]
    if d == "daemon":
        stem = re.sub(r"^(rpc|store)_.*", r"\1", stem)
    return f"{d}/{stem}"


def check(files, texts):
    """Problems found, as strings (none: the layers hold)."""
    table = layers()
    problems = []
    layer_of = {}
    for path in files:
        found = [i for i, (_, globs) in enumerate(table)
                 if any(fnmatch.fnmatch(path, g) for g in globs)]
        if not found:
            problems.append(f"{path}: in no layer of daemon/README.md's table")
            continue
        layer_of[path] = found[0]
    # Where an include "x.h" from a file resolves: its own directory, then lib/.
    by_name = {}
    for path in files:
        by_name.setdefault(path.split("/", 1)[1].replace(".h.in", ".h"), []).append(path)
    edges = {}
    for path in files:
        here = path.split("/", 1)[0]
        for inc in INCLUDE.findall(texts[path]):
            cands = by_name.get(inc, [])
            target = next((c for c in cands if c.startswith(here + "/")),
                          next((c for c in cands if c.startswith("lib/")), None))
            if target is None:
                continue  # a generated or system header
            if path in layer_of and target in layer_of and layer_of[target] < layer_of[path]:
                problems.append(
                    f"{path} includes {inc}: layer {table[layer_of[target]][0]} is above "
                    f"{table[layer_of[path]][0]}")
            a, b = module(path), module(target)
            if a != b:
                edges.setdefault(a, set()).add(b)
    # Cycles between modules (depth-first search, reporting each cycle's path).
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                problems.append("include cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return problems


files = sources()
texts = {p: open(os.path.join(root, p)).read() for p in files}
problems = check(files, texts)
for p in problems:
    print(p)
if problems:
    sys.exit(f"{len(problems)} layering problem(s)")
print(f"{len(files)} files in {len(layers())} layers: no cycle, no include going up")

if "--self-test" in sys.argv:
    # The check must fail when someone adds what it forbids.
    bad = dict(texts)
    bad["daemon/conn.c"] += '\n#include "rpc.h"\n'
    found = check(files, bad)
    assert any("conn.c includes rpc.h" in p for p in found), found
    bad = dict(texts)
    bad["daemon/store.h"] += '\n#include "hub.h"\n'
    bad["daemon/hub.h"] += '\n#include "store.h"\n'
    found = check(files, bad)
    assert any("cycle" in p for p in found), found
    print("self-test: an upward include and a cycle are both reported:")
    for p in found:
        print("  " + p)

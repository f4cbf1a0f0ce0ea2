#!/usr/bin/env python3
"""The model's transition table is lib/machine.c's: for every action the same
roles, the same states it is taken from (the invitee's column too), the same
state it leads to. Both are read as text and normalised.

  check_table.py lib/machine.c proto/model/rendezvous.pml
"""
import re
import sys

machine, model = open(sys.argv[1]).read(), open(sys.argv[2]).read()


def norm(text):
    """Spell both the same: no RV_, no 1u, no spaces, no parentheses; split the fields."""
    text = text.replace("RV_", "").replace("1u", "1")
    text = re.sub(r"[\s()]", "", text)
    return text.split(",")


c_table = machine.split("table[RV_ACTION_COUNT] = {", 1)[1].split("};", 1)[0]
c_rows = {m.group(1): norm(m.group(2))
          for m in re.finditer(r"\[RV_(ACT_[A-Z_]+)\]\s*=\s*\{(.*?)\}\s*,", c_table, re.S)}
m_rows = {m.group(1): norm(m.group(2))
          for m in re.finditer(r"\bT\((ACT_[A-Z_]+),\s*(.*?)\);", model, re.S)}

problems = []
if set(c_rows) != set(m_rows):
    problems.append("actions differ: machine.c %s, model %s" % (sorted(c_rows), sorted(m_rows)))


def canon(f):
    """A field as the set of terms or-ed together, for an order-free compare."""
    return frozenset(f.split("|"))


for a in sorted(set(c_rows) & set(m_rows)):
    c, m = [canon(f) for f in c_rows[a]], [canon(f) for f in m_rows[a]]
    if c != m:
        problems.append("%s: machine.c %s, model %s" % (a, c_rows[a], m_rows[a]))
for p in problems:
    print("check_table:", p)
if problems:
    sys.exit(1)
print("check_table: the model's %d rows are lib/machine.c's" % len(m_rows))

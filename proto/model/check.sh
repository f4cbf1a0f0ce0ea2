#!/usr/bin/env bash
# Check the protocol model with spin: its transition table against
# lib/machine.c; every assertion in every reachable state (an exhaustive
# search, about 45 s and 1.5 GiB); that every session ends (the LTL claim);
# then that the check can fail: each mutant below, the model with one rule
# of the daemon taken out, must be caught.
#   proto/model/check.sh              exits non-zero on any violation
#   BUDGET=3 proto/model/check.sh     a deeper model: requests per device
#                                     (3 needs far more memory than 24 GiB)
set -euo pipefail
cd "$(dirname "$0")"
command -v spin >/dev/null || { echo "model: spin is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
budget=${BUDGET:-2}
python3 check_table.py ../../lib/machine.c rendezvous.pml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build DIR [liveness]: compile DIR/rendezvous.pml into DIR/pan_safety (and
# DIR/pan_liveness). Unoptimised: compiling at -O2 takes longer than it saves.
build() {
    (cd "$1" && spin -DBUDGET="$budget" -a rendezvous.pml >/dev/null &&
        cc -w -DNOCLAIM -DSAFETY -DCOLLAPSE -o pan_safety pan.c &&
        if [ "${2:-}" = liveness ]; then cc -w -DCOLLAPSE -o pan_liveness pan.c; fi)
}
# run WHAT COMMAND...: its summary; the output of a failed search (errors, or a search cut short).
run() {
    local what=$1; shift
    local out
    out=$("$@" 2>&1) || true
    echo "$out" | grep -E 'states, stored|errors:' | sed "s/^/model: $what: /"
    if ! echo "$out" | grep -q 'errors: 0' || echo "$out" | grep -qE 'max search depth too small|out of memory'; then
        echo "$out" | grep -vE '^Depth=' | head -30 >&2
        return 1
    fi
}

mkdir "$work/model"
cp rendezvous.pml "$work/model/"
build "$work/model" liveness
run "safety (every state)" "$work/model/pan_safety" -m100000 -w26 || { echo "model: VIOLATED" >&2; exit 1; }
run "liveness (every session ends)" "$work/model/pan_liveness" -a -m100000 -w24 || { echo "model: VIOLATED" >&2; exit 1; }

# Mutants: NAME, then the daemon's rule as the model writes it, then the rule
# taken out. Each must make the search fail, or the properties check nothing.
mutants=(
    "no glare rule"
    ':: state[s] == RSS_READY && CROSSES(OTHER(s)) ->'
    ':: false ->'
    "a second device's accept taken as a retry"
    ':: answered[s] != NONE && answered[s] != dv -> skip /* 4009 answered elsewhere */'
    ':: false -> skip'
    "an outcome forgotten once its event is queued, not written"
    'pending[L(s, i)] = true;'
    'pending[L(s, i)] = !online[i];'
    "session.ack that forgets nothing"
    'pending[L(s, dv)] = false; acked[L(s, dv)] = true /* session.ack */'
    'acked[L(s, dv)] = true /* session.ack */'
)
for ((i = 0; i < ${#mutants[@]}; i += 3)); do
    name=${mutants[i]}
    dir="$work/mutant$i"
    mkdir "$dir"
    python3 - "${mutants[i + 1]}" "${mutants[i + 2]}" rendezvous.pml "$dir/rendezvous.pml" <<'EOF'
import sys
rule, broken, src, dst = sys.argv[1:]
text = open(src).read()
if text.count(rule) != 1:
    sys.exit("model: mutant: the rule %r is not in the model once" % rule)
open(dst, "w").write(text.replace(rule, broken))
EOF
    build "$dir"
    if run "mutant ($name)" "$dir/pan_safety" -m100000 -w22 >/dev/null 2>&1; then
        echo "model: mutant ($name) was not caught: the properties miss it" >&2
        exit 1
    fi
    echo "model: mutant ($name): caught"
done
echo "model: ok"

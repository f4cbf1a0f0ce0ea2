#!/usr/bin/env bash
# Check the protocol model with spin: its transition table against
# lib/machine.c, then every assertion (safety), then that every session ends
# (the LTL claim, with weak fairness). Bitstate (supertrace) search: a large
# part of the state space in about a minute, not all of it.
#   proto/model/check.sh            exits non-zero on any violation
set -euo pipefail
cd "$(dirname "$0")"
command -v spin >/dev/null || { echo "model: spin is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
python3 check_table.py ../../lib/machine.c rendezvous.pml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp rendezvous.pml "$work/"
cd "$work"
spin -a rendezvous.pml >/dev/null
cc -O2 -w -DNOCLAIM -DSAFETY -DBITSTATE -o pan_safety pan.c
cc -O2 -w -DBITSTATE -DNFAIR=3 -o pan_liveness pan.c
check() {
    local what=$1; shift
    local out
    out=$("$@" 2>&1) || true
    echo "$out" | grep -E 'states, stored|errors:' | sed "s/^/model: $what: /"
    if ! echo "$out" | grep -q 'errors: 0'; then
        echo "$out" | tail -20 >&2
        echo "model: $what: VIOLATED" >&2
        exit 1
    fi
}
check "safety (assertions)" ./pan_safety -w26
check "liveness (every session ends)" ./pan_liveness -a -f -w25
echo "model: ok"

#!/usr/bin/env bash
# Build, then measure rendezvousd against Redis doing the same work on this
# machine, and print a Markdown table (also written to FILE with --out FILE).
#   scripts/run-bench.sh [--quick] [--runs N] [--out FILE]
# Installs redis-server from Debian if it is missing. Takes about 10 minutes
# (2 with --quick). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

scripts/deps.sh
if ! command -v redis-server >/dev/null; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
    # Debian starts a system Redis on 6379; the benchmark starts its own.
fi
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
if [ -n "$out" ]; then
    python3 tests/bench/compare.py "${args[@]}" | tee "$out"
else
    python3 tests/bench/compare.py "${args[@]}"
fi

#!/usr/bin/env bash
# Fuzz framing + JSON-RPC dispatch (fuzz/fuzz_rpc.c) with libFuzzer under
# ASan+UBSan, seeded with the JSON test suite and the golden transcripts.
#   scripts/run-fuzz.sh [SECONDS] [libFuzzer options...]   default 60 s, one process
#   scripts/run-fuzz.sh 14400 -jobs=2 -workers=2           four hours on two cores
# The corpus grows in build-fuzz/corpus/ (kept between runs); crashes are
# written to build-fuzz/artifacts/ and make this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true

scripts/deps.sh
missing=()
for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "run-fuzz: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dir=build-fuzz
[ -f "$dir/build.ninja" ] || CC=clang meson setup "$dir" -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
ninja -C "$dir" fuzz/fuzz_rpc

mkdir -p "$dir/corpus" "$dir/seeds" "$dir/artifacts"
python3 fuzz/make-seeds.py "$dir/seeds"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
exec "$dir/fuzz/fuzz_rpc" -max_total_time="$seconds" -dict=fuzz/rpc.dict -max_len=8192 \
    -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$@" \
    "$dir/corpus" "$dir/seeds"

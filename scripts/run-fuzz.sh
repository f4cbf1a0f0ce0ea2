#!/usr/bin/env bash
# Fuzz with libFuzzer under ASan+UBSan (clang from Debian).
#   scripts/run-fuzz.sh [--target rpc|token|ws|journal|json] [SECONDS] [libFuzzer options...]
# Targets: rpc (default) feeds framing + JSON-RPC dispatch (fuzz/fuzz_rpc.c),
# seeded with the JSON test suite and the golden transcripts; token feeds JWT
# verification (fuzz/fuzz_token.c); ws the WebSocket handshake and frames
# (fuzz/fuzz_ws.c); journal reading the store's journal back at start-up
# (fuzz/fuzz_journal.c); json the fast JSON reader against jansson's
# (fuzz/fuzz_json.c). Default 60 s, one process; to run long
# on two cores: scripts/run-fuzz.sh 14400 -jobs=2 -workers=2
# The corpus grows in build-fuzz/corpus-TARGET/ (kept between runs); a crash
# is written to build-fuzz/artifacts/ and makes this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

target=rpc
if [ "${1:-}" = "--target" ]; then
    target="$2"
    shift 2
fi
case "$target" in rpc|token|ws|journal|json) ;; *) echo "run-fuzz: unknown target '$target'" >&2; exit 2 ;; esac
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
ninja -C "$dir" "fuzz/fuzz_$target"

corpus="$dir/corpus-$target" seeds="$dir/seeds-$target"
mkdir -p "$corpus" "$seeds" "$dir/artifacts"
python3 fuzz/make-seeds.py "$seeds" "$target"
dict=()
[ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
exec "$dir/fuzz/fuzz_$target" -max_total_time="$seconds" "${dict[@]}" -max_len=8192 \
    -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$@" \
    "$corpus" "$seeds"

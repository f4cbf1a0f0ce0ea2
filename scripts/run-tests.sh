#!/usr/bin/env bash
# Install dependencies, build, and run every test (unit and integration).
#   scripts/run-tests.sh              the normal build, in build/
#   scripts/run-tests.sh --sanitize   the same suite under ASan+UBSan, in build-asan/
# Extra arguments go to 'meson test' (e.g. a test name, or --suite unit).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
setup=()
if [ "${1:-}" = "--sanitize" ]; then
    shift
    dir=build-asan
    setup=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

scripts/deps.sh --tests
[ -f "$dir/build.ninja" ] || meson setup "$dir" "${setup[@]}" >/dev/null
ninja -C "$dir"

status=0
meson test -C "$dir" --num-processes 2 --print-errorlogs "$@" || status=$?

# One closing line a person or CI can read: "N passed, N failed".
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        fail += 1
print(f"{ok} passed, {fail} failed" + (f", {skip} skipped" if skip else ""))
PY
exit $status

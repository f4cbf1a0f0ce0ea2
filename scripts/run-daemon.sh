#!/usr/bin/env bash
# Quick start: install dependencies, build, and run rendezvousd in the foreground.
# Arguments go to rendezvousd (default: listen on 127.0.0.1:7420, keep the store in
# ./var). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
exec build/daemon/rendezvousd --state-dir var "$@"

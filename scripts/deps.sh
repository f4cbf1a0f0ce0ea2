#!/usr/bin/env bash
# Install what building and testing rendezvous needs, from Debian 12's packages,
# if any of it is missing. Needs root (or sudo) only when something is missing.
#   scripts/deps.sh [--tests]
set -euo pipefail

# dpkg-dev: meson asks its dpkg-architecture for Debian's library directory
# (/usr/lib/x86_64-linux-gnu); without it 'meson install' uses /usr/lib64,
# where pkg-config does not look. clang-format: the format check (CI fails on
# unformatted code, so it must not skip). systemd: systemd-analyze, for the
# unit checks. spin: the protocol model (proto/model/check.sh). redis-server:
# the tests of the Redis link (daemon/redis.c) start their own, on loopback.
# python3-jsonschema: the tests check every message against proto/schema/.
# python3-venv: the Python client's install test (pip install clients/python).
# nodejs: the Node client's tests (clients/node). mypy: the Python client's
# annotations (mypy --strict).
packages=(gcc libc6-dev binutils meson ninja-build pkg-config dpkg-dev python3 openssl
          libevent-dev libjansson-dev uthash-dev libjwt-dev libssl-dev
          libsqlite3-dev libsystemd-dev libinih-dev libhiredis-dev libwslay-dev scdoc systemd
          clang-format spin redis-server python3-jsonschema
          python3-venv nodejs mypy)

# --tests: also what only the tests use and a daemon does not need: Chromium,
# for the web example's test (tests/integration/test_web_example.py), kept
# out of run-daemon.sh's install for its size.
if [ "${1:-}" = "--tests" ]; then
    packages+=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

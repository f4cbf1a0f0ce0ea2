#!/usr/bin/env bash
# Pairing with rendezvousctl: alice invites bob, bob accepts, both confirm their link,
# they exchange context data, alice hangs up.
#
#     PATH=build/cli:$PATH examples/pairing.sh [HOST:PORT]
set -euo pipefail
export RENDEZVOUS_CONNECT=${1:-127.0.0.1:7420}
alice() { rendezvousctl --user alice --device laptop "$@"; }
bob() { rendezvousctl --user bob --device phone "$@"; }

# Each command is a connection of its own: a watch keeps each party connected
# (and shows what it receives) while the commands run.
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT
alice watch --user alice >"$out/alice" 2>&1 &
bob watch --user bob >"$out/bob" 2>&1 &
until [ -s "$out/alice" ] && [ -s "$out/bob" ]; do sleep 0.05; done   # subscribed

S=$(alice create bob --topic "screen sharing" | awk '$1 == "session" {print $2}')
alice invite "$S" >/dev/null
bob accept "$S" >/dev/null
alice connect "$S" >/dev/null
bob connect "$S" | grep '^state'                   # -> RSS_CONNECTED
alice send "$S" '{"offer": "v=0 ..."}'
bob send "$S" '{"answer": "v=0 ..."}'
alice terminate "$S" --code 0 | grep '^state'      # -> RSS_TERMINATED

until grep -q RSS_TERMINATED "$out/bob"; do sleep 0.05; done
echo "--- what bob's watch saw"
cat "$out/bob"
echo "--- what alice's watch saw"
cat "$out/alice"

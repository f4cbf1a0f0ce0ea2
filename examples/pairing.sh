#!/usr/bin/env bash
# Pairing with rendezvousctl: alice invites bob, bob accepts, both confirm their link,
# they exchange context data, alice hangs up.
#
#     PATH=build/cli:$PATH examples/pairing.sh [HOST:PORT]
set -euo pipefail
export RENDEZVOUS_CONNECT=${1:-127.0.0.1:7420}
ALICE=(rendezvousctl --user alice --device laptop)
BOB=(rendezvousctl --user bob --device phone)
alice() { "${ALICE[@]}" "$@"; }
bob() { "${BOB[@]}" "$@"; }

# Each command is a connection of its own: a watch keeps each party connected
# (and shows what it receives) while the commands run. The watches run as
# plain commands, not through the functions, so that the jobs are the
# rendezvousctl processes themselves and the trap's kill stops them (a
# function in the background is a subshell: killing it would leave its
# rendezvousctl running, reconnecting forever).
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT
"${ALICE[@]}" watch --user alice >"$out/alice" 2>&1 &
"${BOB[@]}" watch --user bob >"$out/bob" 2>&1 &
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

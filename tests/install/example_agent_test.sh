#!/usr/bin/env bash
# The front door for ops agents, end to end: installs the build tree $1 into a temporary prefix,
# builds examples/agent against it out of tree twice (the CMake package, then pkg-config), and
# runs both agents against a real redis-server: each must leave an available snapshot that
# `finalsnap verify` accepts, print the operation's gates as they happened, and, with a deadline
# already passed, be cancelled through its own token with the node left running.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/finalsnap-install.XXXXXX")
port=$(free_port)
cleanup() { stop_redis "$port" "$work/node" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "example_agent_test: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$work/prefix" >/dev/null
[[ -f $work/prefix/include/finalsnap/engine.h ]] || fail "engine.h was not installed"
[[ -f $work/prefix/lib/cmake/finalsnap/finalsnapConfig.cmake ]] || fail "no CMake package"

# The CMake package.
cmake -S "$FINALSNAP_ROOT/examples/agent" -B "$work/agent-build" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/agent-build" -j"$(nproc)" >/dev/null
# pkg-config.
pc=$(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs --static finalsnap)
# shellcheck disable=SC2086  # pkg-config's output is a list of words
g++ -O1 -o "$work/agent-pc" "$FINALSNAP_ROOT/examples/agent/agent.cc" $pc

mkdir -p "$work/node"
start_redis "$port" "$work/node"
redis-cli -p "$port" debug populate 20000 key 64 >/dev/null 2>&1 ||
  for i in $(seq 1 2000); do echo "SET key:$i value-$i"; done | redis-cli -p "$port" >/dev/null
write_fleet "$work/fleet.toml" agentnode "$port"

for agent in "$work/agent-build/agent" "$work/agent-pc"; do
  name=snap-$(basename "$agent")
  out=$(timeout 120 "$agent" "$work/fleet.toml" agentnode "$name") ||
    fail "$agent failed: $out"
  grep -q '^phase capture$' <<<"$out" || fail "no capture phase event: $out"
  grep -q '^gate readback passed' <<<"$out" || fail "no readback gate event: $out"
  grep -q '"SnapshotStatus":"available"' <<<"$out" || fail "snapshot not available: $out"
  "$BUILD/finalsnap" verify "$work/snapshots/$name" >/dev/null || fail "verify refused $name"
done

# Cancelled through the agent's own token (a deadline of 0 s): refused, the node runs on.
set +e
out=$(timeout 120 "$work/agent-pc" "$work/fleet.toml" agentnode cancelled 0)
rc=$?
set -e
((rc == 1)) || fail "a cancelled agent exited $rc: $out"
grep -q "refused (Interrupted)" <<<"$out" || fail "not refused as Interrupted: $out"
grep -q "deadline passed" <<<"$out" || fail "the token's reason is missing: $out"
[[ $(redis-cli -p "$port" ping) == PONG ]] || fail "the node does not answer"
[[ ! -e $work/snapshots/cancelled ]] || fail "a cancelled snapshot was kept"
echo "1 passed, 0 failed"

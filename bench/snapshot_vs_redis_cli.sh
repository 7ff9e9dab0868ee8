#!/usr/bin/env bash
# finalsnap create-snapshot against what people do by hand, on the same node in the same run.
#
#   bench/snapshot_vs_redis_cli.sh [BUILD_DIR [SIZE_MB [ROUNDS]]]     (defaults: build 320 3)
#   BENCH_SHAPE=smallkeys bench/snapshot_vs_redis_cli.sh ...           (default: encodings)
#
# Loads SIZE_MB MB of one data shape (fill_dataset --shape: every type in every encoding by
# default; bench/shapes runs this script for each shape) into a throwaway redis-server, then
# for each round times, with GNU time (wall seconds, peak RSS, user + sys CPU):
#   by hand   redis-cli --rdb - | zstd -1 > file        the node's config as it is (Debian's:
#                                                         diskless, 5 s delay, LZF on)
#   finalsnap create-snapshot into zstd -1 storage        fsync and readback included
#   (then, untimed, create-snapshot again with a writer in a loop: the longest write stall,
#    beside the server's latest_fork_usec for that snapshot)
#   limit     redis-cli --rdb /dev/null                   the node's raw stream with no diskless
#                                                         delay and LZF off: the physical limit
# and prints the best round of each, the ratios (finalsnap / by hand, finalsnap / limit), the
# output sizes and finalsnap's peak RSS, then one JSON line. Progress goes to stderr.
#
# Where the limit is: finalsnap's CPU seconds (user + sys, the best round's) per GB of the raw
# RDB stream (LZF off, as the capture asks for it), against `zstd -1` alone compressing those
# same bytes from a file, and the server's fork child's CPU per GB in finalsnap's rounds.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

BUILD=${1:-build}
SIZE_MB=${2:-320}
ROUNDS=${3:-3}
SHAPE=${BENCH_SHAPE:-encodings}
[[ $SIZE_MB =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: $0 [BUILD_DIR [SIZE_MB [ROUNDS]]]" >&2; exit 2; }
for tool in finalsnap fill_dataset write_stall; do
  [[ -x $BUILD/$tool ]] || { echo "$BUILD/$tool missing: build with FINALSNAP_BENCH=ON" >&2; exit 1; }
done
ensure_packages

work=$(mktemp -d "${TMPDIR:-/tmp}/snapshot_bench.XXXXXX")
port=$(free_port)
# start_redis keeps its pid file in the node directory, so that is what stop_redis is given.
cleanup() { stop_redis "$port" "$work/node" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
log() { printf 'snapshot_bench: %s\n' "$*" >&2; }

mkdir -p "$work/node"
start_redis "$port" "$work/node" --repl-diskless-sync yes --repl-diskless-sync-delay 5 \
  --rdbcompression yes
log "loading $SIZE_MB MB of shape $SHAPE"
"$BUILD/fill_dataset" --port "$port" --bytes "${SIZE_MB}M" --seed 7 --shape "$SHAPE" >&2
keys=$(redis-cli -p "$port" info keyspace |
  awk -F'[=,:]' '/^db[0-9]+:/ { n += $3 } END { print n + 0 }')
used=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
log "used_memory $used bytes"

write_fleet "$work/fleet.toml" bench "$port"

# Wall time at millisecond resolution: GNU time's %e has 10 ms steps.
wall() {
  local t0=$EPOCHREALTIME
  "$@"
  seconds_since "$t0"
}

best_hand=999999; best_snap=999999; best_limit=999999
hand_size=0; snap_size=0; snap_rss=0; stall=0; stall_fork=0; snap_cpu=999999; child_cpu=999999
for round in $(seq 1 "$ROUNDS"); do
  log "round $round: redis-cli --rdb - | zstd -1"
  t=$(wall bash -c "redis-cli -p $port --rdb - 2>/dev/null | zstd -q -1 -o '$work/hand.rdb.zst' -f")
  hand_size=$(stat -c %s "$work/hand.rdb.zst")
  best_hand=$(awk -v a="$best_hand" -v b="$t" 'BEGIN { print (b < a ? b : a) }')

  log "round $round: finalsnap create-snapshot"
  wait_no_child "$port"
  c0=$(children_cpu "$port")
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %U %S' -o "$work/rss" "$BUILD/finalsnap" --fleet "$work/fleet.toml" \
    create-snapshot --cache-cluster-id bench --snapshot-name "bench-$round" >"$work/snap.json"
  t=$(seconds_since "$t0")
  read -r rss user sys <"$work/rss"
  snap_rss=$(( rss > snap_rss ? rss : snap_rss ))
  snap_cpu=$(min_of "$snap_cpu" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')")
  wait_no_child "$port"
  child_cpu=$(min_of "$child_cpu" "$(awk -v a="$c0" -v b="$(children_cpu "$port")" \
    'BEGIN { printf "%.3f", b - a }')")
  snap_size=$(stat -c %s "$work/snapshots/bench-$round/0001.rdb.zst")
  best_snap=$(awk -v a="$best_snap" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
  "$BUILD/finalsnap" --fleet "$work/fleet.toml" delete-snapshot --snapshot-name "bench-$round" \
    --yes >/dev/null

  # The stall is measured in a run of its own: a writer in a tight loop competes for the two
  # cores and would slow the timed run down.
  log "round $round: create-snapshot again, with a writer measuring the longest stall"
  rm -f "$work/stop"
  "$BUILD/write_stall" --port "$port" --stop-file "$work/stop" >"$work/stall.json" &
  writer=$!
  "$BUILD/finalsnap" --fleet "$work/fleet.toml" create-snapshot --cache-cluster-id bench \
    --snapshot-name "stall-$round" >/dev/null
  touch "$work/stop"
  wait "$writer"
  s=$(awk -F'[:,]' '/"longest_stall_ms"/ {print $4}' "$work/stall.json" | tr -d ' ')
  # The server's own fork time for that snapshot: no client can stall for less than this,
  # since the fork blocks the server's main thread whatever the pause does.
  f=$(redis-cli -p "$port" info stats | awk -F: '/^latest_fork_usec:/ {printf "%.1f", $2 / 1000}')
  log "round $round: longest stall $s ms, fork $f ms"
  if awk -v a="$stall" -v b="$s" 'BEGIN { exit !(b > a) }'; then stall=$s; stall_fork=$f; fi
  "$BUILD/finalsnap" --fleet "$work/fleet.toml" delete-snapshot --snapshot-name "stall-$round" \
    --yes >/dev/null

  log "round $round: the limit, redis-cli --rdb /dev/null with no delay and LZF off"
  redis-cli -p "$port" config set repl-diskless-sync-delay 0 >/dev/null
  redis-cli -p "$port" config set rdbcompression no >/dev/null
  t=$(wall bash -c "redis-cli -p $port --rdb /dev/null >/dev/null 2>&1")
  if ((round == 1)); then
    # The same bytes for zstd alone: the raw stream, saved to a file once.
    redis-cli -p "$port" --rdb "$work/raw.rdb" >/dev/null 2>&1
  fi
  redis-cli -p "$port" config set repl-diskless-sync-delay 5 >/dev/null
  redis-cli -p "$port" config set rdbcompression yes >/dev/null
  best_limit=$(awk -v a="$best_limit" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
done

raw_size=$(stat -c %s "$work/raw.rdb")
zstd_cpu=999999
for round in $(seq 1 "$ROUNDS"); do
  cat "$work/raw.rdb" >/dev/null
  /usr/bin/time -f '%U %S' -o "$work/zstd.time" zstd -q -1 -c "$work/raw.rdb" >/dev/null
  read -r user sys <"$work/zstd.time"
  zstd_cpu=$(min_of "$zstd_cpu" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')")
done
per_gb() { awk -v c="$1" -v b="$raw_size" 'BEGIN { printf "%.2f", c / (b / 1e9) }'; }
snap_cpu_gb=$(per_gb "$snap_cpu")
zstd_cpu_gb=$(per_gb "$zstd_cpu")
child_cpu_gb=$(per_gb "$child_cpu")
ratio_cpu=$(awk -v s="$snap_cpu" -v z="$zstd_cpu" 'BEGIN { printf "%.3f", s / z }')

ratio_hand=$(awk -v s="$best_snap" -v h="$best_hand" 'BEGIN { printf "%.3f", s / h }')
ratio_limit=$(awk -v s="$best_snap" -v l="$best_limit" 'BEGIN { printf "%.3f", s / l }')
ratio_size=$(awk -v s="$snap_size" -v h="$hand_size" 'BEGIN { printf "%.3f", s / h }')
rss_mib=$(awk -v k="$snap_rss" 'BEGIN { printf "%.1f", k / 1024 }')
cat <<EOF
data set:                       shape $SHAPE, $SIZE_MB MB loaded, $keys keys, used_memory $used bytes, raw RDB $raw_size bytes, best of $ROUNDS rounds
redis-cli --rdb - | zstd -1:    ${best_hand} s, ${hand_size} bytes
finalsnap create-snapshot:      ${best_snap} s, ${snap_size} bytes, peak RSS ${rss_mib} MiB
raw stream limit:               ${best_limit} s
finalsnap / by hand:            ${ratio_hand}x wall time, ${ratio_size}x size
finalsnap / limit:              ${ratio_limit}x
longest write stall seen:       ${stall} ms (the server's fork in that round: ${stall_fork} ms)
CPU per GB of raw RDB:          finalsnap ${snap_cpu_gb} s, zstd -1 alone ${zstd_cpu_gb} s (${ratio_cpu}x), the server's fork child ${child_cpu_gb} s
EOF
printf '{"shape": "%s", "keys": %s, "raw_rdb_bytes": %s, "finalsnap_cpu_s_per_gb": %s, "zstd_cpu_s_per_gb": %s, "cpu_ratio_vs_zstd": %s, "fork_child_cpu_s_per_gb": %s, "hand_bytes": %s, "finalsnap_bytes": %s, ' \
  "$SHAPE" "$keys" "$raw_size" "$snap_cpu_gb" "$zstd_cpu_gb" "$ratio_cpu" "$child_cpu_gb" \
  "$hand_size" "$snap_size"
printf '"size_mb": %s, "hand_s": %s, "finalsnap_s": %s, "limit_s": %s, "ratio_vs_hand": %s, "ratio_vs_limit": %s, "size_ratio": %s, "peak_rss_mib": %s, "longest_stall_ms": %s, "fork_ms": %s}\n' \
  "$SIZE_MB" "$best_hand" "$best_snap" "$best_limit" "$ratio_hand" "$ratio_limit" \
  "$ratio_size" "$rss_mib" "$stall" "$stall_fork"

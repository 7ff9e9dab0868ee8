#!/usr/bin/env bash
# A 3-shard Redis Cluster snapshotted by finalsnap: all shards in parallel (one
# create-snapshot --replication-group-id) against the same three shards captured one after
# another (create-snapshot --cache-cluster-id of each shard's primary), in the same run.
#
#   bench/group_parallel_vs_sequential.sh [BUILD_DIR [MB_PER_SHARD [ROUNDS]]]  (defaults: build 150 3)
#   BENCH_SHAPE=smallkeys bench/group_parallel_vs_sequential.sh ...  (default: encodings)
#
# Starts three cluster-enabled redis-servers (primaries only: replicas play no part in a capture
# from the primaries), assigns the slots with redis-cli --cluster create, loads MB_PER_SHARD MB
# of one data shape into each shard (fill_dataset --shape, keys under a hash tag of that shard;
# bench/shapes runs this script for each shape), then for
# each round times with GNU time (wall seconds, peak RSS) both ways, into zstd -1 storage with
# fsync and readback. Prints the best round of each, the ratio parallel / sequential and the
# peak RSS of the parallel run, then one JSON line. Progress goes to stderr.
#
# It also adds up the CPU time each way spent (finalsnap's user+sys, and the servers' own plus
# their fork children's): on a machine with N cores the parallel run cannot take less than that
# CPU time / N, so the "floor" says how much of the sequential time parallelism could save.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

BUILD=${1:-build}
MB=${2:-150}
ROUNDS=${3:-3}
SHAPE=${BENCH_SHAPE:-encodings}
[[ $MB =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: $0 [BUILD_DIR [MB_PER_SHARD [ROUNDS]]]" >&2; exit 2; }
for tool in finalsnap fill_dataset; do
  [[ -x $BUILD/$tool ]] || { echo "$BUILD/$tool missing: build with FINALSNAP_BENCH=ON" >&2; exit 1; }
done
ensure_packages

work=$(mktemp -d "${TMPDIR:-/tmp}/group_bench.XXXXXX")
ports=()
cleanup() {
  for i in "${!ports[@]}"; do stop_redis "${ports[$i]}" "$work/node$i" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { printf 'group_bench: %s\n' "$*" >&2; }

for i in 0 1 2; do
  ports[$i]=$(free_port)
  mkdir -p "$work/node$i"
  start_redis "${ports[$i]}" "$work/node$i" --cluster-enabled yes \
    --cluster-config-file "$work/node$i/nodes.conf" --repl-diskless-sync yes \
    --repl-diskless-sync-delay 5 --rdbcompression yes
done
redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" \
  "127.0.0.1:${ports[2]}" --cluster-replicas 0 --cluster-yes >/dev/null
deadline=$((SECONDS + 60))
until [[ $(redis-cli -p "${ports[0]}" cluster info | tr -d '\r' | grep cluster_state) == cluster_state:ok ]]; do
  (( SECONDS < deadline )) || { echo "the cluster did not reach cluster_state:ok" >&2; exit 1; }
  sleep 0.1
done

# A hash tag whose slot the node on port $1 serves, so that fill_dataset's keys land there.
tag_for() {
  local port=$1 id first last c slot
  id=$(redis-cli -p "$port" cluster myid | tr -d '\r')
  read -r first last < <(redis-cli -p "$port" cluster nodes | tr -d '\r' |
    awk -v id="$id" '$1 == id { split($9, r, "-"); print r[1], r[2] }')
  for c in {a..z} {a..z}{a..z}; do
    slot=$(redis-cli -p "$port" cluster keyslot "{$c}" | tr -d '\r')
    if (( slot >= first && slot <= last )); then echo "{$c}"; return; fi
  done
  return 1
}
for i in 0 1 2; do
  tag=$(tag_for "${ports[$i]}")
  log "loading $MB MB of shape $SHAPE into shard $((i + 1)) (port ${ports[$i]}, keys under $tag)"
  "$BUILD/fill_dataset" --port "${ports[$i]}" --bytes "${MB}M" --seed $((7 + i)) \
    --databases 0 --prefix "$tag" --no-functions --shape "$SHAPE" >&2
done

cat >"$work/fleet.toml" <<EOF
[storage]
path = "snapshots"
compression = "zstd"
level = 1
[replication_groups.bench]
endpoints = ["127.0.0.1:${ports[0]}"]
EOF
# Shards are numbered in slot order; each one's member 001 is its primary here.
members=$("$BUILD/finalsnap" --fleet "$work/fleet.toml" describe-replication-groups --output text |
  awk '$1 == "NODEGROUPMEMBERS" && $4 == "primary" { print $2 }')
[[ $(wc -w <<<"$members") -eq 3 ]] || { echo "expected 3 primaries, found: $members" >&2; exit 1; }

# CPU seconds (user+sys, children included) the three servers have used so far.
servers_cpu() {
  local total=0 i pid
  for i in 0 1 2; do
    pid=$(cat "$work/node$i/redis.pid")
    total=$(awk -v t="$total" '{ print t + ($14 + $15 + $16 + $17) / 100 }' "/proc/$pid/stat")
  done
  echo "$total"
}
# finalsnap's user+sys seconds from GNU time's output file.
tool_cpu() { awk '{ print $2 + $3 }' "$work/rss"; }

best_par=999999; best_seq=999999; par_rss=0; seq_rss=0; seq_cpu=0; par_cpu=0
for round in $(seq 1 "$ROUNDS"); do
  log "round $round: the three shards one after another"
  t0=$EPOCHREALTIME
  c0=$(servers_cpu); cpu=0
  for m in $members; do
    /usr/bin/time -f '%M %U %S' -o "$work/rss" "$BUILD/finalsnap" --fleet "$work/fleet.toml" \
      create-snapshot --cache-cluster-id "$m" --snapshot-name "seq-$round-$m" >/dev/null
    rss=$(awk '{ print $1 }' "$work/rss"); seq_rss=$(( rss > seq_rss ? rss : seq_rss ))
    cpu=$(awk -v a="$cpu" -v b="$(tool_cpu)" 'BEGIN { print a + b }')
  done
  t=$(seconds_since "$t0")
  seq_cpu=$(awk -v a="$cpu" -v s="$(servers_cpu)" -v c="$c0" 'BEGIN { printf "%.2f", a + s - c }')
  best_seq=$(awk -v a="$best_seq" -v b="$t" 'BEGIN { print (b < a ? b : a) }')

  log "round $round: the three shards in parallel"
  t0=$EPOCHREALTIME
  c0=$(servers_cpu)
  /usr/bin/time -f '%M %U %S' -o "$work/rss" "$BUILD/finalsnap" --fleet "$work/fleet.toml" \
    create-snapshot --replication-group-id bench --snapshot-name "par-$round" >/dev/null
  t=$(seconds_since "$t0")
  par_cpu=$(awk -v a="$(tool_cpu)" -v s="$(servers_cpu)" -v c="$c0" 'BEGIN { printf "%.2f", a + s - c }')
  rss=$(awk '{ print $1 }' "$work/rss"); par_rss=$(( rss > par_rss ? rss : par_rss ))
  best_par=$(awk -v a="$best_par" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
  rm -rf "${work:?}/snapshots"
done

ratio=$(awk -v p="$best_par" -v s="$best_seq" 'BEGIN { printf "%.3f", p / s }')
cores=$(nproc)
floor=$(awk -v c="$par_cpu" -v n="$cores" -v s="$best_seq" 'BEGIN { printf "%.3f", c / n / s }')
par_mib=$(awk -v k="$par_rss" 'BEGIN { printf "%.1f", k / 1024 }')
seq_mib=$(awk -v k="$seq_rss" 'BEGIN { printf "%.1f", k / 1024 }')
cat <<EOF
data set:                 3 shards x $MB MB of shape $SHAPE, best of $ROUNDS rounds
sequential (3 captures):  ${best_seq} s, peak RSS ${seq_mib} MiB per capture
parallel (1 capture):     ${best_par} s, peak RSS ${par_mib} MiB for 3 shards in flight
parallel / sequential:    ${ratio}x
cpu, last round:          sequential ${seq_cpu} s, parallel ${par_cpu} s (finalsnap + servers);
                          on $cores cores parallel needs at least ${floor}x the sequential time
EOF
printf '{"shape": "%s", "mb_per_shard": %s, "sequential_s": %s, "parallel_s": %s, "ratio": %s, "parallel_peak_rss_mib": %s, "sequential_peak_rss_mib": %s, "sequential_cpu_s": %s, "parallel_cpu_s": %s, "cores": %s, "cpu_floor_ratio": %s}\n' \
  "$SHAPE" "$MB" "$best_seq" "$best_par" "$ratio" "$par_mib" "$seq_mib" "$seq_cpu" "$par_cpu" "$cores" "$floor"

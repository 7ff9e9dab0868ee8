#!/usr/bin/env bash
# End-to-end comparison of `finalsnap verify` with Redis's own `redis-check-rdb` on a large RDB.
#
#   bench/verify_vs_check_rdb.sh [BUILD_DIR [SIZE_MB]]      (defaults: build 320)
#   BENCH_SHAPE=smallkeys bench/verify_vs_check_rdb.sh ...   (default: encodings)
#
# Starts a throwaway redis-server on a free loopback port, fills it with SIZE_MB MB (10^6 bytes,
# as fill_dataset counts) of payload of one data shape (fill_dataset --shape; by default every
# value type and encoding; bench/shapes runs this script for each shape), saves dump.rdb and
# stops the server. It then times, with GNU time (wall
# seconds and peak RSS), `finalsnap verify` on the RDB three times (best and median),
# `redis-check-rdb` once (it is much slower) and `finalsnap verify` on a zstd -1 copy three times.
# Results go to stdout as text and then as one JSON line; progress goes to stderr. Everything
# lives in a temporary directory that is removed on exit. The exit status is non-zero when a
# verifier rejected the file.
#
# Run it from the repository root after the README's build (BUILD_DIR must hold `finalsnap` and
# `fill_dataset`, which the default FINALSNAP_BENCH=ON configuration builds). As root, missing
# redis-server, redis-tools, zstd or time packages are installed with apt-get.
set -euo pipefail

readonly BUILD=${1:-build}
readonly SIZE_MB=${2:-320}
readonly SHAPE=${BENCH_SHAPE:-encodings}
readonly FINALSNAP="$BUILD/finalsnap"
readonly FILL="$BUILD/fill_dataset"
readonly GNU_TIME=/usr/bin/time
# How long the server may take to answer PING, and to exit after SHUTDOWN.
readonly START_DEADLINE_S=20
readonly STOP_DEADLINE_S=120

log() { printf '%s\n' "verify_vs_check_rdb: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  echo "usage: $0 [BUILD_DIR [SIZE_MB]]   (defaults: build 320)" >&2
  exit 2
}

case "${1:-}" in -h | --help) usage ;; esac
[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, got '$SIZE_MB'"

# --- prerequisites ---------------------------------------------------------------------------

ensure_tools() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v redis-check-rdb >/dev/null || missing+=(redis-tools)
  command -v zstd >/dev/null || missing+=(zstd)
  [[ -x $GNU_TIME ]] || missing+=(time)
  ((${#missing[@]} == 0)) && return 0
  if ((EUID == 0)) && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
      { apt-get update -q >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; }
  else
    die "missing ${missing[*]}; install with: sudo apt-get install ${missing[*]}"
  fi
}

ensure_tools
[[ -x $FINALSNAP ]] ||
  die "$FINALSNAP not found: build first (cmake -S . -B $BUILD && cmake --build $BUILD)"
[[ -x $FILL ]] || die "$FILL not found: it is built with -DFINALSNAP_BENCH=ON (the default)"

# --- temp dir and cleanup ------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verify_vs_check_rdb.XXXXXX")
readonly WORK
SERVER_PID=

cleanup() {
  local rc=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -f $WORK/redis.log ]]; then
    log "redis-server log (last 20 lines):"
    tail -n 20 "$WORK/redis.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Seconds since the epoch with fractions, for deadlines and for timing the fill.
now() { date +%s.%N; }
before() { awk -v now="$(now)" -v deadline="$1" 'BEGIN { exit !(now < deadline) }'; }
deadline_in() { awk -v now="$(now)" -v s="$1" 'BEGIN { printf "%.3f", now + s }'; }

# --- the throwaway server -------------------------------------------------------------------

# True when something accepts connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts redis-server on a free port and waits for PING. A port that looked free can be taken
# before the server binds it, so a server that exits during startup is retried on another port.
# The DEBUG command is enabled for loopback clients so that fill_dataset can make PLAIN quicklist
# nodes, one of the encodings the comparison should cover.
start_server() {
  local attempt deadline
  for attempt in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 40000))
    port_in_use "$PORT" && continue
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK" --dbfilename dump.rdb \
      --save "" --appendonly no --daemonize no --logfile "$WORK/redis.log" \
      --enable-debug-command local &
    SERVER_PID=$!
    deadline=$(deadline_in "$START_DEADLINE_S")
    while before "$deadline"; do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
        log "redis-server exited during startup on port $PORT (attempt $attempt)"
        break
      fi
      if [[ $(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; then
        log "redis-server $(redis-server --version | awk '{print $3}')" \
          "pid $SERVER_PID on 127.0.0.1:$PORT"
        return 0
      fi
      sleep 0.05  # the poll interval, not a wait for readiness: the deadline bounds the loop
    done
    [[ -n $SERVER_PID ]] && die "redis-server did not answer PING within ${START_DEADLINE_S}s"
  done
  die "could not start redis-server on a free port"
}

stop_server() {
  local deadline
  redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  deadline=$(deadline_in "$STOP_DEADLINE_S")
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    before "$deadline" || die "redis-server did not exit within ${STOP_DEADLINE_S}s of SHUTDOWN"
    sleep 0.05
  done
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# --- timing helpers --------------------------------------------------------------------------

# timed NAME CMD...: runs CMD under GNU time with its output in $WORK/NAME.{out,err}; sets
# T_SECONDS, T_RSS_KB and T_RC. GNU time's %e has a resolution of 10 ms, which is coarse for a
# verify that takes a few tens of milliseconds, so T_SECONDS is measured around the GNU time run
# with nanosecond clock reads (the fork and exec of time itself add about a millisecond); %e is kept
# as T_GNU_SECONDS to cross-check it. GNU time adds a "Command exited with non-zero status" line
# before the format line when the command fails, so the numbers are read from the last line.
timed() {
  local name=$1 start end
  shift
  T_RC=0
  start=$(now)
  "$GNU_TIME" -f '%e %M' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    T_RC=$?
  end=$(now)
  read -r T_GNU_SECONDS T_RSS_KB < <(tail -n 1 "$WORK/$name.time")
  [[ $T_GNU_SECONDS =~ ^[0-9.]+$ && $T_RSS_KB =~ ^[0-9]+$ ]] ||
    die "could not read the timing of $name: $(cat "$WORK/$name.time")"
  T_SECONDS=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
}

# verify_3x FILE: times `finalsnap verify FILE` three times and sets V_BEST and V_MEDIAN
# (seconds), V_RSS_KB (the largest peak of the three) and V_RC (the first non-zero exit status,
# else 0).
verify_3x() {
  local file=$1 run times=()
  V_RSS_KB=0
  V_RC=0
  for run in 1 2 3; do
    timed "$(basename "$file")-$run" "$FINALSNAP" verify "$file"
    log "finalsnap verify $(basename "$file") run $run: ${T_SECONDS}s" \
      "(GNU time ${T_GNU_SECONDS}s), peak RSS ${T_RSS_KB} KB, exit $T_RC"
    times+=("$T_SECONDS")
    if ((T_RSS_KB > V_RSS_KB)); then V_RSS_KB=$T_RSS_KB; fi
    if ((V_RC == 0)); then V_RC=$T_RC; fi
  done
  mapfile -t times < <(printf '%s\n' "${times[@]}" | sort -g)
  V_BEST=${times[0]}
  V_MEDIAN=${times[1]}
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
bool() { if (($1 == 0)); then echo true; else echo false; fi; }

# --- make the RDB ----------------------------------------------------------------------------

start_server
fill_start=$(now)
log "filling with $SIZE_MB MB of shape $SHAPE"
"$FILL" --port "$PORT" --bytes "${SIZE_MB}M" --shape "$SHAPE" >"$WORK/fill.out" \
  2>"$WORK/fill.err" ||
  die "fill_dataset failed: $(tail -n 5 "$WORK/fill.err")"
fill_seconds=$(awk -v a="$fill_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
keys=$(redis-cli -h 127.0.0.1 -p "$PORT" info keyspace |
  awk -F'[=,:]' '/^db[0-9]+:/ { n += $3 } END { print n + 0 }')
save_start=$(now)
[[ $(redis-cli -h 127.0.0.1 -p "$PORT" save) == OK ]] || die "SAVE failed"
save_seconds=$(awk -v a="$save_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
stop_server

readonly RDB="$WORK/dump.rdb"
[[ -s $RDB ]] || die "the server wrote no $RDB"
rdb_bytes=$(stat -c %s "$RDB")
log "dump.rdb: $rdb_bytes bytes, $keys keys (fill ${fill_seconds}s, SAVE ${save_seconds}s)"

zstd -1 -q "$RDB" -o "$RDB.zst"
zst_bytes=$(stat -c %s "$RDB.zst")

# Read both files once so that every timed run, the first included, finds them in the page cache.
cat "$RDB" "$RDB.zst" >/dev/null

# --- time the verifiers ----------------------------------------------------------------------

verify_3x "$RDB"
fs_best=$V_BEST fs_median=$V_MEDIAN fs_rss_kb=$V_RSS_KB fs_rc=$V_RC
timed check_rdb redis-check-rdb "$RDB"
check_seconds=$T_SECONDS
check_rss_kb=$T_RSS_KB
check_rc=$T_RC
log "redis-check-rdb: ${check_seconds}s (GNU time ${T_GNU_SECONDS}s)," \
  "peak RSS ${check_rss_kb} KB, exit $check_rc"
verify_3x "$RDB.zst"
zst_best=$V_BEST zst_median=$V_MEDIAN zst_rss_kb=$V_RSS_KB zst_rc=$V_RC

# The ratio uses the finalsnap median, the typical run, rather than its best.
ratio=$(awk -v c="$check_seconds" -v f="$fs_median" \
  'BEGIN { if (f > 0) printf "%.1f", c / f; else print "null" }')

# --- report ----------------------------------------------------------------------------------

fs_valid=$(bool "$fs_rc")
check_valid=$(bool "$check_rc")
zst_valid=$(bool "$zst_rc")
# RDB megabytes (10^6 bytes) per second at the median time, the unit `finalsnap verify` prints.
mbps() {
  awk -v b="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.0f", b / 1e6 / t; else print "null" }'
}
fs_mbps=$(mbps "$rdb_bytes" "$fs_median")
check_mbps=$(mbps "$rdb_bytes" "$check_seconds")

printf 'RDB file:              %s bytes (%s MiB), %s keys, from %s MB of payload, shape %s\n' \
  "$rdb_bytes" "$(mib "$rdb_bytes")" "$keys" "$SIZE_MB" "$SHAPE"
printf 'finalsnap verify:      best %ss, median %ss (%s MB/s), peak RSS %s MiB, valid: %s\n' \
  "$fs_best" "$fs_median" "$fs_mbps" "$(mib $((fs_rss_kb * 1024)))" "$fs_valid"
printf 'redis-check-rdb:       %ss (%s MB/s), peak RSS %s MiB, valid: %s\n' \
  "$check_seconds" "$check_mbps" "$(mib $((check_rss_kb * 1024)))" "$check_valid"
printf 'speed ratio:           %sx (redis-check-rdb time / finalsnap verify median time)\n' "$ratio"
printf 'finalsnap verify .zst: %s bytes (%s MiB, zstd -1), best %ss, median %ss,' \
  "$zst_bytes" "$(mib "$zst_bytes")" "$zst_best" "$zst_median"
printf ' peak RSS %s MiB, valid: %s\n' "$(mib $((zst_rss_kb * 1024)))" "$zst_valid"

printf '{"shape":"%s","rdb_bytes":%s,"keys":%s,"target_mb":%s,"fill_s":%s,"save_s":%s,' \
  "$SHAPE" "$rdb_bytes" "$keys" "$SIZE_MB" "$fill_seconds" "$save_seconds"
printf '"finalsnap_best_s":%s,"finalsnap_median_s":%s,"finalsnap_mbps":%s,' \
  "$fs_best" "$fs_median" "$fs_mbps"
printf '"finalsnap_peak_rss_kb":%s,"finalsnap_valid":%s,' "$fs_rss_kb" "$fs_valid"
printf '"check_rdb_s":%s,"check_rdb_mbps":%s,"check_rdb_peak_rss_kb":%s,"check_rdb_valid":%s,' \
  "$check_seconds" "$check_mbps" "$check_rss_kb" "$check_valid"
printf '"speed_ratio":%s,"zst_bytes":%s,"zst_best_s":%s,"zst_median_s":%s,' \
  "$ratio" "$zst_bytes" "$zst_best" "$zst_median"
printf '"zst_peak_rss_kb":%s,"zst_valid":%s}\n' "$zst_rss_kb" "$zst_valid"

# Non-zero when a verifier rejected a file, so that CI notices.
((fs_rc == 0 && check_rc == 0 && zst_rc == 0))

# Shared shell helpers for scripts/demo, scripts/test and bench/*.sh. Source it; it defines
# functions only.

FINALSNAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Every Debian package the build, the tests, the demo and the benchmarks use.
FINALSNAP_PACKAGES=(
  g++ make cmake pkg-config clang libclang-rt-14-dev
  libisal-dev libzstd-dev liblz4-dev libhiredis-dev libuv1-dev libxxhash-dev libssl-dev
  libhttp-parser-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev
  libcurl4-openssl-dev libxml2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools redis-sentinel zstd lz4 time
  # A real S3-compatible store for the object-storage tests and benchmarks: a single-node Ceph
  # cluster with its RADOS Gateway (tests/support/rados_gateway.h), and curl to see it answer.
  ceph-mon ceph-osd radosgw curl
)

# Installs whichever of FINALSNAP_PACKAGES are missing (as root), or prints the exact command.
ensure_packages() {
  local missing=() p
  for p in "${FINALSNAP_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "finalsnap needs these Debian packages; install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  echo "Installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Without recommends: Ceph's daemons would otherwise pull in its manager and dashboards.
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures and builds the main tree in $1 (default build/). Extra arguments go to cmake.
build_tree() {
  local dir=${1:-$FINALSNAP_ROOT/build}
  shift || true
  cmake -S "$FINALSNAP_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# Starts a throwaway redis-server on port $1 in directory $2 and waits (10 s at most) until it
# answers PING. Further arguments are extra config directives (--name value).
start_redis() {
  local port=$1 dir=$2
  shift 2
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
  local deadline=$((SECONDS + 10))
  until redis-cli -p "$port" ping >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "redis-server on port $port did not answer within 10 s; its log:" >&2
      tail -20 "$dir/redis.log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# Stops the redis-server on port $1 without saving and waits (10 s at most) until it is gone.
stop_redis() {
  local port=$1 dir=$2 pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 0
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
}

# The CPU seconds (user + sys) of redis-server $1's reaped fork children so far: INFO cpu's
# used_cpu_user_children + used_cpu_sys_children. Read it once no child runs (wait_no_child).
children_cpu() {
  redis-cli -p "$1" info cpu |
    awk -F: '/^used_cpu_(user|sys)_children:/ { s += $2 } END { printf "%.3f", s }'
}

# Waits (30 s at most) until redis-server $1 has no fork child left (no RDB save or transfer in
# progress), so that children_cpu counts the last one.
wait_no_child() {
  local deadline=$((SECONDS + 30))
  until redis-cli -p "$1" info persistence | grep -q '^rdb_bgsave_in_progress:0'; do
    if [ $SECONDS -ge $deadline ]; then
      echo "redis-server on port $1 still has a fork child after 30 s" >&2
      return 1
    fi
    sleep 0.05
  done
}

# Seconds elapsed since $1, a value of $EPOCHREALTIME, with millisecond precision.
seconds_since() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}

# The smaller of two decimal numbers, e.g. for the best of several timed rounds.
min_of() {
  awk -v a="$1" -v b="$2" 'BEGIN { print (b < a ? b : a) }'
}

# timed_run DIR NAME DEADLINE_S CMD...: runs CMD, killed after DEADLINE_S seconds, with its stdout
# and stderr in DIR/NAME.out and DIR/NAME.err. Sets T_SECONDS (wall, millisecond resolution:
# GNU time's %e has 10 ms steps), T_RSS_KB (peak RSS, GNU time's %M) and T_RC (CMD's exit status;
# 124 when the deadline passed).
timed_run() {
  local dir=$1 name=$2 deadline=$3 t0
  shift 3
  T_RC=0
  t0=$EPOCHREALTIME
  /usr/bin/time -f %M -o "$dir/$name.rss" timeout --foreground -k 5 "$deadline" "$@" \
    >"$dir/$name.out" 2>"$dir/$name.err" || T_RC=$?
  T_SECONDS=$(seconds_since "$t0")
  # GNU time puts "Command exited with non-zero status N" before the %M line when CMD fails.
  T_RSS_KB=$(tail -n 1 "$dir/$name.rss")
}

# write_fleet FILE NAME PORT: a fleet file with one cache cluster NAME at 127.0.0.1:PORT whose
# snapshots go, zstd -1 compressed, to snapshots/ beside FILE.
write_fleet() {
  cat >"$1" <<FLEET
[storage]
path = "snapshots"
compression = "zstd"
level = 1
[cache_clusters.$2]
endpoint = "127.0.0.1:$3"
FLEET
}

// `finalsnap demo`: the whole ElastiCache "delete with a final snapshot" story on this machine,
// with nothing to set up. It starts a throwaway redis-server in a temporary directory, fills it
// with mixed data, fingerprints the data (DEBUG DIGEST), writes a fleet file for it, runs
// DeleteCacheCluster with a final snapshot, restores the snapshot into a fresh redis-server and
// compares the fingerprints. It exits 0 only when the restored data is identical.
//
// Only the engine's public API is used, as any embedding program would use it; the servers and
// the loader are the demo's own (the CLI may not link the test support library).
//
// Output: a narrative for people on stdout by default. With an explicit --output the narrative
// moves to stderr and stdout gets one document (JSON or aws-style text) for scripts.
#include "demo_command.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cli_common.h"
#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"

namespace finalsnap::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kClusterId[] = "demo";
constexpr char kSnapshotName[] = "demo-final";

struct DemoOptions {
  int size_mb = 200;
  bool keep = false;
  std::string redis_server;  // empty: look it up in $PATH
};

// Every failure of the demo travels up as one of these and ends as the error line.
struct DemoError {
  std::string fault;
  std::string message;
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

std::string ReadTail(const fs::path& path, size_t max_bytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

// ---- The temporary directory ----

class TempDir {
 public:
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty() || keep_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  std::optional<DemoError> Create() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/finalsnap-demo-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return DemoError{"InternalFailure", "mkdtemp " + tmpl + ": " + std::strerror(errno)};
    }
    path_ = tmpl;
    return std::nullopt;
  }
  void Keep() { keep_ = true; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool keep_ = false;
};

// ---- redis-server processes ----

std::optional<std::string> FindRedisServer(const std::string& flag) {
  if (!flag.empty()) {
    if (::access(flag.c_str(), X_OK) == 0) return flag;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) dir = ".";
    const fs::path candidate = fs::path(dir) / "redis-server";
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  return std::nullopt;
}

// A loopback port nobody listens on right now. Another process may take it before the server
// binds it; StartServer then tries again with a new one.
std::optional<int> FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  std::optional<int> port;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

Context ConnectLocal(int port, milliseconds timeout) {
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  Context c(redisConnectWithTimeout("127.0.0.1", port, tv));
  if (!c || c->err != 0) return nullptr;
  return c;
}

// One command, binary-safe. Null when the connection failed (c->err says why).
ReplyPtr Call(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data())));
}

std::string ReplyText(const redisReply* r) {
  if (r == nullptr) return "(no reply)";
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR) {
    return std::string(r->str, r->len);
  }
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  return "(reply type " + std::to_string(r->type) + ")";
}

// A redis-server child of ours. The kernel kills it if we die (PR_SET_PDEATHSIG), and it is in
// its own process group, so a Ctrl-C at the terminal reaches only us; the destructor kills and
// reaps it if it still runs, so no failure path leaves a server behind.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() { Kill(); }

  // Starts `binary` on a free port with its working files in `dir`, and waits until it answers
  // PING (a server still loading its RDB answers -LOADING, which counts as not ready yet).
  std::optional<DemoError> Start(const std::string& binary, const fs::path& dir,
                                 const std::vector<std::string>& extra, milliseconds deadline) {
    bool debug_command = true;
    for (int attempt = 0; attempt < 5; ++attempt) {
      const std::optional<int> port = FreePort();
      if (!port) return DemoError{"InternalFailure", "no free loopback port"};
      std::vector<std::string> args = {binary,   "--port",       std::to_string(*port),
                                       "--bind", "127.0.0.1",    "--save",
                                       "",       "--appendonly", "no",
                                       "--dir",  dir.string(),   "--daemonize",
                                       "no",     "--logfile",    ""};
      // DEBUG DIGEST is the strongest equality check a server offers; servers before Redis 7
      // do not know the directive (and have DEBUG on anyway).
      if (debug_command) args.insert(args.end(), {"--enable-debug-command", "yes"});
      args.insert(args.end(), extra.begin(), extra.end());
      log_ = dir / "redis.log";
      if (std::optional<DemoError> e = Spawn(args); e) return e;
      port_ = *port;
      const auto start = Clock::now();
      while (Clock::now() - start < deadline) {
        if (!Running()) break;
        if (Context c = ConnectLocal(port_, milliseconds(500))) {
          ReplyPtr pong = Call(c.get(), {"PING"});
          if (pong && pong->type == REDIS_REPLY_STATUS) return std::nullopt;
        }
        std::this_thread::sleep_for(milliseconds(20));
      }
      const std::string log = ReadTail(log_);
      if (Running()) {
        Kill();
        return DemoError{"InternalFailure",
                         "redis-server did not answer PING in time; its log ends: " + log};
      }
      if (log.find("enable-debug-command") != std::string::npos && debug_command) {
        debug_command = false;
        continue;
      }
      if (log.find("Address already in use") != std::string::npos) continue;
      return DemoError{"InternalFailure", "redis-server exited at start; its log ends: " + log};
    }
    return DemoError{"InternalFailure", "redis-server could not bind a free port in 5 attempts"};
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  // Waits for the process to exit by itself (after a SHUTDOWN); true if it did in time.
  bool WaitForExit(milliseconds deadline) {
    const auto start = Clock::now();
    while (Running()) {
      if (Clock::now() - start > deadline) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return true;
  }

  // SHUTDOWN NOSAVE, then SIGKILL if it has not gone within a few seconds.
  void Stop() {
    if (!Running()) return;
    if (Context c = ConnectLocal(port_, milliseconds(1000))) Call(c.get(), {"SHUTDOWN", "NOSAVE"});
    if (!WaitForExit(milliseconds(5000))) Kill();
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  std::optional<DemoError> Spawn(const std::vector<std::string>& args) {
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      return DemoError{"InternalFailure", "open " + log_.string() + ": " + std::strerror(errno)};
    }
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      ::close(log_fd);
      if (null_fd >= 0) ::close(null_fd);
      return DemoError{"InternalFailure", std::string("fork: ") + std::strerror(err)};
    }
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
      if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    pid_ = pid;
    return std::nullopt;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  fs::path log_;
};

// ---- The data set ----

// xorshift64*: fast, deterministic, good enough to vary sizes and contents.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed ? seed : 1) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  // Uniform in [lo, hi].
  size_t Between(size_t lo, size_t hi) { return lo + static_cast<size_t>(Next() % (hi - lo + 1)); }

 private:
  uint64_t state_;
};

// Fills a server with strings (raw, embstr and int encodings), hashes, lists, sets (intset and
// hashtable), sorted sets, streams, keys with TTLs and a second database, through a pipeline.
// Values are cut from a corpus of words and digits, so they compress about as well as typical
// application data, not as well as zeros.
class Loader {
 public:
  Loader(redisContext* c, uint64_t target_bytes, ProgressLine* progress)
      : c_(c), target_(target_bytes), progress_(progress), rng_(0x5eed) {
    static const char* const kWords[] = {"user",
                                         "session",
                                         "order",
                                         "cart",
                                         "price",
                                         "amount",
                                         "status",
                                         "active",
                                         "queue",
                                         "event",
                                         "click",
                                         "view",
                                         "region",
                                         "eu-west",
                                         "us-east",
                                         "token",
                                         "cache",
                                         "expires",
                                         "retry",
                                         "shard",
                                         "primary",
                                         "replica",
                                         "{\"id\":",
                                         "\"name\":",
                                         "\"tags\":[",
                                         "true",
                                         "false",
                                         "null",
                                         "2026-11-25T01:02:03Z",
                                         "lorem",
                                         "ipsum"};
    Rng r(42);
    while (corpus_.size() < (1u << 20)) {
      if (r.Next() % 4 == 0) {
        corpus_ += std::to_string(r.Next() % 1000000);
      } else {
        corpus_ += kWords[r.Next() % std::size(kWords)];
      }
      corpus_ += (r.Next() % 8 == 0) ? "," : " ";
    }
  }

  std::optional<DemoError> Run() {
    const auto start = Clock::now();
    for (uint64_t i = 0; bytes_ < target_; ++i) {
      AddKey(i);
      if (pending_ >= 512) {
        if (auto e = Drain(); e) return e;
        if (progress_ != nullptr) progress_->Update(bytes_, target_, SecondsSince(start));
      }
    }
    // A second database, so that the keyspace gate has more than db0 to compare.
    Append({"SELECT", "1"});
    for (int i = 0; i < 1000; ++i) {
      const std::string key = "db1:" + std::to_string(i);
      Append({"SET", key, Value(16, 64)});
      ++keys_;
    }
    Append({"SELECT", "0"});
    if (auto e = Drain(); e) return e;
    if (progress_ != nullptr) progress_->Update(bytes_, target_, SecondsSince(start), true);
    return std::nullopt;
  }

  uint64_t bytes() const { return bytes_; }
  uint64_t keys() const { return keys_; }
  // Some of the keys written, for the fallback fingerprint when DEBUG DIGEST is unavailable.
  const std::vector<std::string>& sample() const { return sample_; }

 private:
  std::string Value(size_t lo, size_t hi) {
    const size_t len = rng_.Between(lo, hi);
    const size_t at = rng_.Next() % (corpus_.size() - len);
    return corpus_.substr(at, len);
  }

  void AddKey(uint64_t i) {
    const std::string id = std::to_string(i);
    std::string key;
    std::vector<std::string> cmd;
    const uint64_t kind = i % 16;
    // Every 4096th key is large: a hashtable hash, a multi-node quicklist, a hashtable set or a
    // skiplist sorted set, encodings small keys never reach.
    const bool big = i % 4096 == 4095;
    const size_t lo = big ? 600 : 4;
    const size_t hi = big ? 1200 : 40;
    if (kind < 6) {
      key = "str:" + id;
      const std::string value =
          kind == 5 ? std::to_string(rng_.Next() % 100000000) : Value(32, 1024);
      cmd = {"SET", key, value};
      if (i % 8 == 3) cmd.insert(cmd.end(), {"EX", "604800"});
    } else if (kind < 9) {
      key = "hash:" + id;
      cmd = {"HSET", key};
      const size_t n = rng_.Between(lo, hi);
      for (size_t f = 0; f < n; ++f) {
        cmd.push_back("field:" + std::to_string(f));
        cmd.push_back(Value(8, 128));
      }
    } else if (kind < 11) {
      key = "list:" + id;
      cmd = {"RPUSH", key};
      const size_t n = rng_.Between(lo, hi * 2);
      for (size_t e = 0; e < n; ++e) cmd.push_back(Value(8, 128));
    } else if (kind < 13) {
      key = "set:" + id;
      cmd = {"SADD", key};
      const size_t n = rng_.Between(lo, hi);
      const bool integers = kind == 11 && !big;
      for (size_t m = 0; m < n; ++m) {
        cmd.push_back(integers ? std::to_string(rng_.Next() % 1000000)
                               : "member:" + std::to_string(m) + ":" + Value(4, 32));
      }
    } else if (kind < 15) {
      key = "zset:" + id;
      cmd = {"ZADD", key};
      const size_t n = rng_.Between(lo, hi);
      for (size_t m = 0; m < n; ++m) {
        cmd.push_back(Fixed(static_cast<double>(rng_.Next() % 1000000) / 100.0, 2));
        cmd.push_back("m:" + std::to_string(m) + ":" + Value(4, 32));
      }
    } else {
      // Streams grow by one entry per visit: 64 streams of many entries each.
      key = "stream:" + std::to_string(i / 16 % 64);
      cmd = {"XADD", key, "*", "event", Value(8, 32), "payload", Value(32, 256)};
      if (i / 16 >= 64) {
        Append(cmd);
        return;  // not a new key
      }
    }
    Append(cmd);
    ++keys_;
    if (i % 97 == 0 && sample_.size() < 400) sample_.push_back(key);
  }

  void Append(const std::vector<std::string>& argv) {
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (size_t a = 0; a < argv.size(); ++a) {
      args.push_back(argv[a].data());
      lens.push_back(argv[a].size());
      if (a > 0) bytes_ += argv[a].size();  // the data, not the command names
    }
    redisAppendCommandArgv(c_, static_cast<int>(args.size()), args.data(), lens.data());
    ++pending_;
  }

  std::optional<DemoError> Drain() {
    for (; pending_ > 0; --pending_) {
      void* raw = nullptr;
      if (redisGetReply(c_, &raw) != REDIS_OK) {
        return DemoError{"InternalFailure",
                         std::string("loading data: ") + (c_->errstr[0] ? c_->errstr : "I/O")};
      }
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_ERROR) {
        return DemoError{"InternalFailure", "loading data: " + ReplyText(reply.get())};
      }
    }
    return std::nullopt;
  }

  redisContext* c_;
  uint64_t target_;
  ProgressLine* progress_;
  Rng rng_;
  std::string corpus_;
  uint64_t bytes_ = 0;
  uint64_t keys_ = 0;
  size_t pending_ = 0;
  std::vector<std::string> sample_;
};

// ---- Fingerprints ----

// What "the same data" is checked against: DEBUG DIGEST (every key, value and TTL of every
// database) when the server has DEBUG, else the key counts and a hash of a sample of values.
struct Fingerprint {
  std::string digest;            // 40 hex digits, or empty
  std::string method;            // "DEBUG DIGEST" or "sample of N keys"
  std::map<int, uint64_t> keys;  // per database, from INFO keyspace
  uint64_t dbsize = 0;           // DBSIZE of db0
  uint64_t used_memory = 0;
  std::string version;
  double seconds = 0;  // taking the digest (or the sample)

  uint64_t TotalKeys() const {
    uint64_t total = 0;
    for (const auto& [db, n] : keys) total += n;
    return total;
  }
};

std::string InfoField(const std::string& info, const std::string& name) {
  const std::string needle = "\n" + name + ":";
  const size_t at = ("\n" + info).find(needle);
  if (at == std::string::npos) return {};
  const size_t start = at + needle.size() - 1;  // -1: the "\n" we prepended
  const size_t end = info.find_first_of("\r\n", start);
  return info.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

void HashInto(uint64_t& h, std::string_view bytes) {
  // FNV-1a, with the length mixed in first so that element boundaries count.
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 0x100000001b3ULL; };
  const uint64_t n = bytes.size();
  for (size_t i = 0; i < sizeof(n); ++i) mix(static_cast<unsigned char>(n >> (8 * i)));
  for (const char c : bytes) mix(static_cast<unsigned char>(c));
}

void FlattenReply(const redisReply* r, std::vector<std::string>& out) {
  if (r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; ++i) FlattenReply(r->element[i], out);
  } else {
    out.push_back(ReplyText(r));
  }
}

// The fallback: a content hash of sampled keys, read with type-specific commands and sorted
// where the server's order is not part of the value (hash fields, set members).
std::optional<DemoError> SampleHash(redisContext* c, const std::vector<std::string>& sample,
                                    std::string* out) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::string& key : sample) {
    ReplyPtr type = Call(c, {"TYPE", key});
    if (!type) return DemoError{"InternalFailure", "TYPE failed"};
    const std::string t = ReplyText(type.get());
    std::vector<std::string> parts{key, t};
    ReplyPtr value;
    if (t == "string") value = Call(c, {"GET", key});
    if (t == "hash") value = Call(c, {"HGETALL", key});
    if (t == "list") value = Call(c, {"LRANGE", key, "0", "-1"});
    if (t == "set") value = Call(c, {"SMEMBERS", key});
    if (t == "zset") value = Call(c, {"ZRANGE", key, "0", "-1", "WITHSCORES"});
    if (t == "stream") value = Call(c, {"XRANGE", key, "-", "+"});
    std::vector<std::string> items;
    if (value) FlattenReply(value.get(), items);
    if (t == "hash") {
      std::vector<std::string> pairs;
      for (size_t i = 0; i + 1 < items.size(); i += 2)
        pairs.push_back(items[i] + '\0' + items[i + 1]);
      items = std::move(pairs);
    }
    if (t == "hash" || t == "set") std::sort(items.begin(), items.end());
    ReplyPtr ttl = Call(c, {"PTTL", key});
    parts.push_back(ttl && ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0 ? "ttl" : "no-ttl");
    for (const std::string& p : parts) HashInto(h, p);
    for (const std::string& item : items) HashInto(h, item);
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  *out = buf;
  return std::nullopt;
}

// `timeout` bounds each command, DEBUG DIGEST included, which reads the whole data set.
std::variant<Fingerprint, DemoError> TakeFingerprint(int port,
                                                     const std::vector<std::string>& sample,
                                                     milliseconds timeout) {
  Context c = ConnectLocal(port, timeout);
  if (!c)
    return DemoError{"InternalFailure", "cannot connect to 127.0.0.1:" + std::to_string(port)};
  Fingerprint f;
  ReplyPtr info = Call(c.get(), {"INFO", "all"});
  if (!info || info->type != REDIS_REPLY_STRING) {
    return DemoError{"InternalFailure", "INFO failed: " + ReplyText(info.get())};
  }
  const std::string text = ReplyText(info.get());
  f.version = InfoField(text, "redis_version");
  f.used_memory = std::strtoull(InfoField(text, "used_memory").c_str(), nullptr, 10);
  for (int db = 0; db < 16; ++db) {
    const std::string line = InfoField(text, "db" + std::to_string(db));
    if (line.rfind("keys=", 0) == 0) f.keys[db] = std::strtoull(line.c_str() + 5, nullptr, 10);
  }
  ReplyPtr dbsize = Call(c.get(), {"DBSIZE"});
  if (dbsize && dbsize->type == REDIS_REPLY_INTEGER)
    f.dbsize = static_cast<uint64_t>(dbsize->integer);
  const auto start = Clock::now();
  ReplyPtr digest = Call(c.get(), {"DEBUG", "DIGEST"});
  if (digest && digest->type == REDIS_REPLY_STATUS) {
    f.digest = ReplyText(digest.get());
    f.method = "DEBUG DIGEST";
  } else {
    if (auto e = SampleHash(c.get(), sample, &f.digest); e) return *e;
    f.method = "sample of " + std::to_string(sample.size()) + " keys";
  }
  f.seconds = SecondsSince(start);
  return f;
}

// ---- The demo ----

class Demo {
 public:
  Demo(const DemoOptions& options, const GlobalOptions& globals)
      : options_(options),
        globals_(globals),
        human_(!globals.output_explicit),
        say_(human_ ? std::cout : std::cerr) {}

  CommandResult Run() {
    const auto start = Clock::now();
    std::optional<DemoError> error = Steps();
    if (options_.keep && !dir_.path().empty()) {
      dir_.Keep();
      say_ << "== kept " << dir_.path().string() << "\n";
    } else if (error && !dir_.path().empty()) {
      say_ << "   (run with --keep to keep " << dir_.path().string() << " for a look)\n";
    }
    say_.flush();
    total_seconds_ = SecondsSince(start);
    if (!error && !human_) PrintDocument(Document(), globals_.output, std::cout);
    if (error) return CommandResult::Fail(error->fault, error->message);
    return CommandResult::Ok();
  }

 private:
  std::optional<DemoError> Steps() {
    const std::optional<std::string> binary = FindRedisServer(options_.redis_server);
    if (!binary) {
      return DemoError{"InvalidParameterValue",
                       options_.redis_server.empty()
                           ? "redis-server not found in $PATH (apt-get install redis-server, or "
                             "give --redis-server PATH)"
                           : options_.redis_server + " is not an executable file"};
    }
    if (auto e = dir_.Create(); e) return e;
    const fs::path node_dir = dir_.path() / "node";
    const fs::path restore_dir = dir_.path() / "restore";
    fs::create_directories(node_dir);

    // 1. A node with data.
    if (auto e = server_.Start(*binary, node_dir, {}, milliseconds(10000)); e) return e;
    endpoint_ = "127.0.0.1:" + std::to_string(server_.port());
    say_ << "== started " << *binary << " on " << endpoint_ << " (in " << dir_.path().string()
         << ")\n";
    say_ << "== loading " << options_.size_mb
         << " MiB of mixed data: strings, hashes, lists, sets, sorted sets, streams, TTLs, db0 "
            "and db1\n"
         << std::flush;
    {
      Context c = ConnectLocal(server_.port(), milliseconds(60000));
      if (!c) return DemoError{"InternalFailure", "cannot connect to " + endpoint_};
      ProgressLine progress("   loading", StderrIsTerminal());
      Loader loader(c.get(), static_cast<uint64_t>(options_.size_mb) << 20, &progress);
      const auto load_start = Clock::now();
      if (auto e = loader.Run(); e) return e;
      progress.Finish();
      load_seconds_ = SecondsSince(load_start);
      loaded_bytes_ = loader.bytes();
      sample_ = loader.sample();
    }
    say_ << "   " << HumanBytes(loaded_bytes_) << " of data in " << Fixed(load_seconds_, 1)
         << " s; fingerprinting it with DEBUG DIGEST (every key, value and TTL: a while on a big "
            "data set)\n"
         << std::flush;
    auto before = TakeFingerprint(server_.port(), sample_, SlowCommandTimeout());
    if (auto* e = std::get_if<DemoError>(&before)) return *e;
    before_ = std::get<Fingerprint>(before);
    say_ << "   " << before_.TotalKeys() << " keys (" << KeysText(before_) << "), used_memory "
         << HumanBytes(before_.used_memory) << "; " << before_.method << " " << before_.digest
         << " (" << Fixed(before_.seconds, 1) << " s)\n";

    // 2. A fleet file for it, with the snapshot storage beside it.
    const fs::path fleet_path = dir_.path() / "finalsnap.toml";
    {
      std::ofstream out(fleet_path);
      out << "# Written by `finalsnap demo`: one throwaway node, snapshots beside this file.\n"
             "[storage]\n"
             "path = \"snapshots\"\n"
             "compression = \"zstd\"\n"
             "level = 1\n\n"
             "[cache_clusters."
          << kClusterId << "]\nendpoint = \"" << endpoint_ << "\"\n";
      if (!out) return DemoError{"InternalFailure", "cannot write " + fleet_path.string()};
    }
    std::variant<Fleet, FleetError> loaded = LoadFleet(fleet_path);
    if (auto* e = std::get_if<FleetError>(&loaded)) {
      return DemoError{"InternalFailure", "the demo's own fleet file: " + e->ToString()};
    }
    const Fleet& fleet = std::get<Fleet>(loaded);

    // 3. Delete with a final snapshot.
    say_ << "== finalsnap --fleet " << fleet_path.string() << " delete-cache-cluster "
         << "--cache-cluster-id " << kClusterId << " --final-snapshot-identifier " << kSnapshotName
         << "\n"
         << std::flush;
    {
      ProgressLine progress("   final snapshot", StderrIsTerminal());
      OperationOptions op;
      op.observer = progress.Observer();
      result_ = DeleteCacheCluster(fleet, kClusterId, std::string(kSnapshotName), op);
      progress.Finish();
    }
    PrintGates(result_.gates);
    for (const std::string& note : result_.notes) say_ << "   note: " << note << "\n";
    if (!result_.ok) {
      return DemoError{result_.fault.empty() ? "InvalidCacheClusterState" : result_.fault,
                       result_.message};
    }
    if (!server_.WaitForExit(milliseconds(10000))) {
      return DemoError{"InternalFailure",
                       "the engine reported the node shut down, but its process still runs"};
    }
    if (!result_.snapshot || result_.snapshot->node_snapshots.empty()) {
      return DemoError{"InternalFailure", "the engine reported success without a snapshot"};
    }
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    say_ << "   node gone; snapshot " << kSnapshotName << ": " << HumanBytes(node.rdb_bytes)
         << " RDB -> " << HumanBytes(node.stored_bytes) << " " << CompressionName(node.compression)
         << " in " << Fixed(result_.seconds, 2) << " s\n";

    // 4. Restore into a fresh server.
    say_ << "== restore --snapshot-name " << kSnapshotName << " --target-dir "
         << restore_dir.string() << "\n"
         << std::flush;
    auto opened = SnapshotStore::Open(fleet.storage.path, SnapshotStore::Access::kReadOnly);
    if (auto* e = std::get_if<std::string>(&opened)) return DemoError{"InternalFailure", *e};
    const auto restore_start = Clock::now();
    const RestoreResult restored =
        RestoreSnapshot(std::get<SnapshotStore>(opened), kSnapshotName, restore_dir);
    restore_seconds_ = SecondsSince(restore_start);
    if (!restored.status.ok()) {
      return DemoError{"InvalidSnapshotState", "restore: " + restored.status.message()};
    }
    say_ << "   " << HumanBytes(restored.rdb_bytes) << " written to "
         << (restored.files.empty() ? restore_dir.string() : restored.files.front().string())
         << " in " << Fixed(restore_seconds_, 2) << " s\n";

    const auto load_start = Clock::now();
    // Loading is paced by the RDB's size; allow for a slow disk on a big data set.
    const milliseconds deadline(60000 + static_cast<int64_t>(options_.size_mb) * 500);
    if (auto e =
            restored_server_.Start(*binary, restore_dir, {"--dbfilename", "dump.rdb"}, deadline);
        e) {
      return e;
    }
    reload_seconds_ = SecondsSince(load_start);
    say_ << "== started a fresh redis-server on the restored dump.rdb (127.0.0.1:"
         << restored_server_.port() << "), loaded in " << Fixed(reload_seconds_, 2) << " s\n";
    say_ << "   fingerprinting the restored data\n" << std::flush;
    auto after = TakeFingerprint(restored_server_.port(), sample_, SlowCommandTimeout());
    if (auto* e = std::get_if<DemoError>(&after)) return *e;
    after_ = std::get<Fingerprint>(after);
    restored_server_.Stop();

    identical_ = before_.digest == after_.digest && before_.keys == after_.keys &&
                 before_.dbsize == after_.dbsize;
    PrintSummary();
    if (!identical_) {
      return DemoError{"InvalidSnapshotState",
                       "the restored data differs: " + before_.method + " " + before_.digest +
                           " before, " + after_.digest + " after; " +
                           std::to_string(before_.TotalKeys()) + " keys before, " +
                           std::to_string(after_.TotalKeys()) + " after"};
    }
    return std::nullopt;
  }

  // DEBUG DIGEST hashes everything, at some 30 MB/s: allow well over that for a big data set.
  milliseconds SlowCommandTimeout() const {
    return milliseconds(60000 + static_cast<int64_t>(options_.size_mb) * 200);
  }

  static std::string KeysText(const Fingerprint& f) {
    std::string s;
    for (const auto& [db, n] : f.keys) {
      if (!s.empty()) s += ", ";
      s += "db" + std::to_string(db) + " " + std::to_string(n);
    }
    return s.empty() ? "none" : s;
  }

  void PrintGates(const std::vector<GateVerdict>& gates) {
    for (const GateVerdict& g : gates) {
      char head[64];
      std::snprintf(head, sizeof(head), "   [%s] %-9s %-20s", g.passed ? "pass" : "FAIL",
                    g.phase.c_str(), g.gate.c_str());
      say_ << head << " " << g.evidence << "\n";
    }
  }

  double Ratio() const {
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    return node.stored_bytes == 0
               ? 0
               : static_cast<double>(node.rdb_bytes) / static_cast<double>(node.stored_bytes);
  }

  void PrintSummary() {
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    const double rate =
        result_.seconds > 0 ? static_cast<double>(node.rdb_bytes) / 1e6 / result_.seconds : 0;
    say_ << "== summary\n"
         << "   server            redis " << before_.version << "\n"
         << "   data set          " << HumanBytes(loaded_bytes_) << " loaded in "
         << Fixed(load_seconds_, 1) << " s, " << before_.TotalKeys() << " keys, used_memory "
         << HumanBytes(before_.used_memory) << "\n"
         << "   final snapshot    " << HumanBytes(node.rdb_bytes) << " RDB (version "
         << node.rdb_version << ") -> " << HumanBytes(node.stored_bytes) << " "
         << CompressionName(node.compression) << " level " << node.compression_level
         << ", compression ratio " << Fixed(Ratio(), 2) << "\n"
         << "   delete-cache-cluster " << Fixed(result_.seconds, 2) << " s (" << Fixed(rate, 1)
         << " MB/s of RDB), " << result_.gates.size() << " gates passed\n"
         << "   restore           " << Fixed(restore_seconds_, 2)
         << " s; redis-server loaded it in " << Fixed(reload_seconds_, 2) << " s\n"
         << "   " << before_.method << "  before " << before_.digest << "\n"
         << "   " << std::string(before_.method.size(), ' ') << "  after  " << after_.digest << "\n"
         << "   keys              before " << KeysText(before_) << "; after " << KeysText(after_)
         << "\n"
         << "   data identical: " << (identical_ ? "yes" : "NO") << "\n"
         << std::flush;
  }

  Json Document() const {
    const NodeSnapshot& node = result_.snapshot->node_snapshots.front();
    Json demo;
    demo["Endpoint"] = endpoint_;
    demo["EngineVersion"] = before_.version;
    demo["LoadedBytes"] = loaded_bytes_;
    demo["LoadSeconds"] = std::round(load_seconds_ * 1000) / 1000;
    demo["UsedMemoryBytes"] = before_.used_memory;
    demo["RdbBytes"] = node.rdb_bytes;
    demo["StoredBytes"] = node.stored_bytes;
    demo["Compression"] = std::string(CompressionName(node.compression));
    demo["CompressionRatio"] = std::round(Ratio() * 100) / 100;
    demo["DeleteSeconds"] = std::round(result_.seconds * 1000) / 1000;
    demo["RestoreSeconds"] = std::round(restore_seconds_ * 1000) / 1000;
    demo["ReloadSeconds"] = std::round(reload_seconds_ * 1000) / 1000;
    demo["FingerprintMethod"] = before_.method;
    demo["DigestBefore"] = before_.digest;
    demo["DigestAfter"] = after_.digest;
    demo["DigestSeconds"] = std::round(before_.seconds * 1000) / 1000;
    demo["KeysBefore"] = before_.TotalKeys();
    demo["KeysAfter"] = after_.TotalKeys();
    demo["DbSizeBefore"] = before_.dbsize;
    demo["DbSizeAfter"] = after_.dbsize;
    demo["DataIdentical"] = identical_;
    demo["Directory"] = options_.keep ? Json(dir_.path().string()) : Json();
    demo["TotalSeconds"] = std::round(total_seconds_ * 1000) / 1000;
    Json doc;
    doc["Demo"] = std::move(demo);
    doc["CacheCluster"] = CacheClusterJson(result_.cluster);
    doc["Snapshot"] = SnapshotJson(*result_.snapshot);
    doc["Gates"] = GatesJson(result_.gates);
    return doc;
  }

  const DemoOptions& options_;
  const GlobalOptions& globals_;
  const bool human_;  // narrative on stdout; otherwise on stderr, with a document on stdout
  std::ostream& say_;

  TempDir dir_;  // declared before the servers: they are stopped before their files go
  ServerProcess server_;
  ServerProcess restored_server_;
  std::string endpoint_;
  std::vector<std::string> sample_;
  uint64_t loaded_bytes_ = 0;
  double load_seconds_ = 0;
  double restore_seconds_ = 0;
  double reload_seconds_ = 0;
  double total_seconds_ = 0;
  Fingerprint before_;
  Fingerprint after_;
  OperationResult result_;
  bool identical_ = false;
};

}  // namespace

Command RegisterDemoCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "demo",
      "Start a throwaway local redis-server, fill it with mixed data, delete it with a final "
      "snapshot, restore the snapshot into a fresh server and check the data is identical. Needs "
      "no fleet file.");
  // Owned by the closure, which outlives parsing: CLI11 writes the values here.
  auto options = std::make_shared<DemoOptions>();
  sub->add_option("--size-mb", options->size_mb, "MiB of data to load")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  sub->add_flag("--keep", options->keep, "Keep the temporary directory (fleet file, snapshot)");
  sub->add_option("--redis-server", options->redis_server,
                  "The redis-server binary (default: the one in $PATH)");
  return Command{sub, "Demo", [options, &globals] { return Demo(*options, globals).Run(); }};
}

}  // namespace finalsnap::cli

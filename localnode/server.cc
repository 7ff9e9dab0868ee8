// LocalServer: spawns redis-server with fork/exec, polls it with PING until it is ready, and
// shuts it down with SHUTDOWN NOSAVE (SIGKILL as the fallback). Every wait has a deadline.
#include "localnode/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "localnode/process.h"

namespace finalsnap::localnode {
namespace {

using Clock = std::chrono::steady_clock;

// Polling interval for waits on the server: short enough not to slow anyone down, long enough
// not to spin. Every wait that uses it also has a deadline.
constexpr std::chrono::milliseconds kPollInterval{5};
// sun_path holds 108 bytes on Linux; stay clear of the limit.
constexpr size_t kMaxUnixSocketPath = 100;
constexpr int kStartAttempts = 5;
constexpr int kClusterBusOffset = 10000;

// A free port; in cluster mode the bus port (port + 10000) must exist and be free as well.
Expected<int> FindFreePort(bool cluster) {
  for (int i = 0; i < 100; ++i) {
    const int port = ProbePort(0);
    if (port == 0) continue;
    if (!cluster) return port;
    if (port + kClusterBusOffset <= 65535 && ProbePort(port + kClusterBusOffset) != 0) return port;
  }
  return Status::Error("no free loopback port found");
}

// The file from byte `offset` on: what one start attempt added to a log that outlives attempts.
std::string ReadFrom(const std::string& path, std::streamoff offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(offset);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::streamoff FileSize(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return in ? static_cast<std::streamoff>(in.tellg()) : 0;
}

}  // namespace

// Redis reads configuration lines with sdssplitargs(), which understands these escapes.
std::string QuoteConfigArg(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char ch : value) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      out += "\\x";
      out += kHex[ch >> 4];
      out += kHex[ch & 0xf];
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

LocalServer::LocalServer(ServerOptions options) : options_(std::move(options)) {
  binary_ = !options_.binary.empty() ? options_.binary
            : is_sentinel()          ? "redis-sentinel"
                                     : "redis-server";
}

LocalServer::~LocalServer() {
  Stop();
  if (options_.keep_dir) scratch_.Keep();
}

std::string LocalServer::Describe() const {
  return std::string(is_sentinel() ? "redis-sentinel (" : "redis-server (") + binary_ + ")";
}

Status LocalServer::PrepareDir() {
  if (!dir_.empty()) return {};
  if (options_.dir.empty()) {
    if (Status made = scratch_.Create("finalsnap-redis"); !made.ok()) return made;
    dir_ = scratch_.path().string();
  } else {
    std::error_code ec;
    std::filesystem::create_directories(options_.dir, ec);
    if (ec) return Status::Error("cannot create " + options_.dir + ": " + ec.message());
    dir_ = options_.dir;
  }
  const std::string sock = dir_ + "/redis.sock";
  if (sock.size() <= kMaxUnixSocketPath && !is_sentinel()) unix_socket_ = sock;
  return {};
}

Status LocalServer::Start() {
  if (Running())
    return Status::Error(Describe() + " is already running on port " + std::to_string(port_));
  const std::optional<std::string> found = FindProgram(binary_);
  if (!found) {
    return Status::Error(std::string(is_sentinel() ? "redis-sentinel" : "redis-server") +
                         " binary '" + binary_ + "' is missing or not executable");
  }
  binary_ = *found;
  if (Status dir = PrepareDir(); !dir.ok()) return dir;
  for (const auto& [name, value] : options_.config) {
    if (name == "requirepass") password_ = value;
  }
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    Expected<bool> up = SpawnAndWait();
    if (!up.ok()) return up.error();
    if (*up) return {};
  }
  return Status::Error(Describe() + ": " + std::to_string(kStartAttempts) +
                       " attempts found their port taken by the time the server bound it\n" +
                       LogTail());
}

Expected<std::vector<std::string>> LocalServer::BuildArgs() {
  if (is_sentinel()) {
    // Sentinel reads a file only and must be able to rewrite it (it saves its myid, the replicas
    // and sentinels it discovers, and every failover there). Written afresh on every start: a
    // file from an earlier run would carry that run's port and myid.
    std::string text = "port " + std::to_string(port_) + "\nbind " + host_ + "\ndir " +
                       QuoteConfigArg(dir_) + "\nlogfile " + QuoteConfigArg(log_path()) +
                       "\ndaemonize no\n";
    for (const auto& [name, value] : options_.config)
      text += name + " " + QuoteConfigArg(value) + "\n";
    for (const std::string& line : options_.sentinel_config) text += line + "\n";
    const std::string path = sentinel_config_path();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return Status::Error("cannot write " + path);
    return std::vector<std::string>{binary_, path};
  }
  std::vector<std::string> args = {
      binary_,   "--port", std::to_string(port_), "--bind", host_,         "--dir", dir_,
      "--save",  "",       "--appendonly",        "no",     "--daemonize", "no",    "--logfile",
      log_path()};
  // DEBUG DIGEST is the strongest equality check a server offers; servers before Redis 7 do not
  // know the directive (and have DEBUG on anyway).
  if (debug_directive_) args.insert(args.end(), {"--enable-debug-command", "local"});
  if (!unix_socket_.empty()) {
    args.insert(args.end(), {"--unixsocket", unix_socket_, "--unixsocketperm", "700"});
  }
  for (const auto& [name, value] : options_.config) {
    args.push_back("--" + name);
    args.push_back(value);
  }
  return args;
}

Status LocalServer::Spawn(std::vector<std::string> args) {
  Expected<pid_t> pid = SpawnChild(args, dir_ + "/redis.stdout");
  if (!pid.ok()) return Status::Error("cannot start '" + binary_ + "': " + pid.error().message());
  pid_ = *pid;
  return {};
}

Expected<bool> LocalServer::SpawnAndWait() {
  bool cluster = false;
  for (const auto& [name, value] : options_.config) {
    cluster = cluster || (name == "cluster-enabled" && value == "yes");
  }
  Expected<int> port = FindFreePort(cluster);
  if (!port.ok()) return port.error();
  port_ = *port;
  exit_status_.reset();
  Expected<std::vector<std::string>> args = BuildArgs();
  if (!args.ok()) return args.error();
  // Both files outlive an attempt (the server appends): only what this attempt wrote counts.
  const std::string out_path = dir_ + "/redis.stdout";
  const std::streamoff log_start = FileSize(log_path());
  const std::streamoff out_start = FileSize(out_path);
  if (Status spawned = Spawn(std::move(args).value()); !spawned.ok()) return spawned;

  const auto deadline = Clock::now() + options_.start_timeout;
  std::string last_error = "no attempt yet";
  while (true) {
    if (!Running()) {
      // The log says why; a lost race for the port, or a directive an old server does not know,
      // is worth another attempt.
      const std::string log = ReadFrom(log_path(), log_start) + ReadFrom(out_path, out_start);
      if (log.find("Address already in use") != std::string::npos) return false;
      if (debug_directive_ && log.find("enable-debug-command") != std::string::npos) {
        debug_directive_ = false;
        return false;
      }
      return Status::Error(Describe() + " exited during start-up on port " + std::to_string(port_) +
                           " with wait status " + std::to_string(exit_status_.value_or(-1)) + "\n" +
                           LogTail());
    }
    if (Expected<Context> c = Connect(std::chrono::milliseconds(500)); c.ok()) {
      Expected<Reply> pong = Command(c->get(), {"PING"});
      if (pong.ok() && pong->type == Reply::Type::kStatus && pong->str == "PONG") return true;
      // For example "-LOADING": the server is up but not ready yet.
      last_error = pong.ok() ? pong->ToString() : pong.error().message();
    } else {
      last_error = c.error().message();
    }
    if (Clock::now() >= deadline) {
      Kill(SIGKILL);
      WaitForExit();
      return Status::Error(Describe() + " did not answer PING on port " + std::to_string(port_) +
                           " within " + std::to_string(options_.start_timeout.count()) +
                           " ms; last error: " + last_error + "\n" + LogTail());
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void LocalServer::Reap(int status) { exit_status_ = status; }

bool LocalServer::Running() {
  if (pid_ <= 0 || exit_status_.has_value()) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    Reap(status);
    return false;
  }
  // ECHILD: somebody else reaped it; it is not running either way.
  if (r < 0 && errno == ECHILD) {
    Reap(-1);
    return false;
  }
  return true;
}

std::optional<int> LocalServer::WaitForExit(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Running()) {
    if (Clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_status_;
}

void LocalServer::Kill(int signal) {
  if (pid_ > 0 && Running()) ::kill(pid_, signal);
}

void LocalServer::Stop(std::chrono::milliseconds deadline) {
  if (!Running()) return;
  // SHUTDOWN closes the connection instead of replying; an I/O error here means success. An
  // unreachable server is left to SIGKILL below.
  if (Expected<Context> c = Connect(std::chrono::milliseconds(1000)); c.ok()) {
    auto* r = static_cast<redisReply*>(redisCommand(c->get(), "SHUTDOWN NOSAVE"));
    if (r != nullptr) freeReplyObject(r);
  }
  if (WaitForExit(deadline).has_value()) return;
  Kill(SIGKILL);
  // SIGKILL cannot be ignored, so this wait is bounded by the kernel, not by the server.
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  Reap(status);
}

Expected<Context> LocalServer::Connect(std::chrono::milliseconds timeout) const {
  if (port_ == 0) return Status::Error(Describe() + ": Connect before Start");
  Expected<Context> c = localnode::Connect(host_, port_, timeout);
  if (!c.ok() || password_.empty()) return c;
  Expected<Reply> auth = Command(c->get(), {"AUTH", password_});
  if (!auth.ok()) return auth.error();
  if (!auth->ok()) {
    return Status::Error("AUTH with the configured requirepass failed: " + auth->ToString());
  }
  return c;
}

std::string LocalServer::LogTail(size_t lines) const {
  std::string out = "--- " + log_path() + " (last " + std::to_string(lines) + " lines) ---\n" +
                    FileTail(log_path(), lines);
  const std::string stdout_text = FileTail(dir_ + "/redis.stdout", lines);
  if (!stdout_text.empty()) out += "\n--- redis-server stdout/stderr ---\n" + stdout_text;
  return out;
}

}  // namespace finalsnap::localnode

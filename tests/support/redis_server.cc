// RedisServer: spawns redis-server with fork/exec, polls it with PING until it is ready, and
// shuts it down with SHUTDOWN NOSAVE (SIGKILL as the fallback).
#include "support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace finalsnap::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Polling interval for waits on the server: short enough not to slow tests down, long enough
// not to spin. Every wait that uses it also has a deadline.
constexpr std::chrono::milliseconds kPollInterval{5};
// sun_path holds 108 bytes on Linux; stay clear of the limit.
constexpr size_t kMaxUnixSocketPath = 100;
constexpr int kStartAttempts = 5;
constexpr int kClusterBusOffset = 10000;

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Binds `port` on 127.0.0.1 (0 = any free one) and returns the bound port, or 0 on failure. The
// socket is closed again: the port is only probably free when the server binds it, which is why
// Start() retries on "Address already in use".
int ProbePort(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  int result = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    result = ntohs(addr.sin_port);
  }
  ::close(fd);
  return result;
}

// A free port; in cluster mode the bus port (port + 10000) must exist and be free as well.
int FindFreePort(bool cluster) {
  for (int i = 0; i < 100; ++i) {
    int port = ProbePort(0);
    if (port == 0) continue;
    if (!cluster) return port;
    if (port + kClusterBusOffset <= 65535 && ProbePort(port + kClusterBusOffset) != 0) return port;
  }
  throw std::runtime_error("RedisServer: no free loopback port found");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string LastLines(const std::string& text, size_t lines) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (size_t n = 0; n < lines && pos > 0; ++n) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return pos == 0 ? text : text.substr(pos + 1);
}

Reply ConvertReply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(ConvertReply(r->element[i]));
      break;
    default:
      // hiredis 0.14 speaks RESP2 only; anything else is nil here.
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

}  // namespace

std::string Reply::ToString() const {
  switch (type) {
    case Type::kNil:
      return "(nil)";
    case Type::kString:
      return "\"" + str + "\"";
    case Type::kStatus:
      return str;
    case Type::kError:
      return "(error) " + str;
    case Type::kInteger:
      return "(integer) " + std::to_string(integer);
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out += ", ";
        out += elements[i].ToString();
      }
      return out + "]";
    }
  }
  return "?";
}

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

RedisContextPtr ConnectTo(const std::string& host, int port, std::chrono::milliseconds timeout) {
  timeval tv = ToTimeval(timeout);
  RedisContextPtr c(!host.empty() && host[0] == '/'
                        ? redisConnectUnixWithTimeout(host.c_str(), tv)
                        : redisConnectWithTimeout(host.c_str(), port, tv));
  if (c == nullptr) throw std::runtime_error("cannot allocate a hiredis context");
  if (c->err != 0) {
    throw std::runtime_error("cannot connect to redis at " + host + ":" + std::to_string(port) +
                             ": " + c->errstr);
  }
  // Without a socket timeout a hung server would hang the test instead of failing it.
  if (redisSetTimeout(c.get(), tv) != REDIS_OK) {
    throw std::runtime_error("cannot set the hiredis timeout: " + std::string(c->errstr));
  }
  return c;
}

Reply Execute(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
  if (r == nullptr) {
    throw std::runtime_error("redis command '" + (argv.empty() ? std::string() : argv[0]) +
                             "' failed: " + c->errstr);
  }
  Reply out = ConvertReply(r);
  freeReplyObject(r);
  return out;
}

std::map<std::string, std::string> ParseInfo(std::string_view text) {
  std::map<std::string, std::string> fields;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fields.emplace(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  return fields;
}

std::map<uint64_t, rdb::DbCounts> ParseKeyspace(const std::map<std::string, std::string>& info) {
  std::map<uint64_t, rdb::DbCounts> out;
  for (const auto& [name, value] : info) {
    if (name.size() < 3 || name.compare(0, 2, "db") != 0) continue;
    uint64_t db = 0;
    auto [end, ec] = std::from_chars(name.data() + 2, name.data() + name.size(), db);
    if (ec != std::errc() || end != name.data() + name.size()) continue;
    rdb::DbCounts counts;
    // value: "keys=3,expires=1,avg_ttl=0"
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = item.substr(0, eq), number = item.substr(eq + 1);
      uint64_t n = 0;
      std::from_chars(number.data(), number.data() + number.size(), n);
      if (key == "keys") counts.keys = n;
      if (key == "expires") counts.expires = n;
    }
    if (counts.keys > 0) out[db] = counts;
  }
  return out;
}

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {}

RedisServer::RedisServer(std::vector<std::pair<std::string, std::string>> config) {
  options_.config = std::move(config);
}

RedisServer::RedisServer(std::initializer_list<std::pair<std::string, std::string>> config)
    : RedisServer(std::vector<std::pair<std::string, std::string>>(config)) {}

RedisServer::~RedisServer() {
  try {
    Stop();
  } catch (...) {
    // A destructor must not throw; Stop() already fell back to SIGKILL where it could.
  }
  if (!dir_.empty() && !options_.keep_dir && !EnvFlag("FINALSNAP_KEEP_TMP")) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void RedisServer::Start() {
  if (pid_ > 0 && Running()) throw std::logic_error("RedisServer::Start: already running");
  binary_ = options_.binary;
  if (binary_.empty()) {
    const char* env =
        std::getenv(is_sentinel() ? "FINALSNAP_REDIS_SENTINEL" : "FINALSNAP_REDIS_SERVER");
    binary_ = env != nullptr && *env != '\0'
                  ? env
                  : (is_sentinel() ? "/usr/bin/redis-sentinel" : "/usr/bin/redis-server");
  }
  if (!IsExecutableFile(binary_)) {
    if (is_sentinel()) {
      throw std::runtime_error(
          "redis-sentinel binary '" + binary_ +
          "' is missing or not executable. These tests need a real Redis Sentinel: install it "
          "with `apt-get install redis-sentinel`, or point FINALSNAP_REDIS_SENTINEL at one.");
    }
    throw std::runtime_error(
        "redis-server binary '" + binary_ +
        "' is missing or not executable. These tests need a real Redis server: install it with "
        "`apt-get install redis-server redis-tools`, or point FINALSNAP_REDIS_SERVER at one.");
  }
  if (dir_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/finalsnap-redis-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("RedisServer: mkdtemp(" + tmpl +
                               ") failed: " + std::strerror(errno));
    }
    dir_ = tmpl;
    std::string sock = dir_ + "/redis.sock";
    if (sock.size() <= kMaxUnixSocketPath && !is_sentinel()) unix_socket_ = sock;
  }
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    if (SpawnAndWait()) return;
  }
  throw std::runtime_error("RedisServer: " + std::to_string(kStartAttempts) +
                           " attempts found their port taken by the time redis-server bound it\n" +
                           LogTail());
}

std::vector<std::string> RedisServer::BuildArgs() {
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
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << text;
      out.flush();
      if (!out) throw std::runtime_error("RedisServer: cannot write " + path);
    }
    return {binary_, path};
  }
  std::vector<std::string> args = {binary_,        "--port",      std::to_string(port_),
                                   "--bind",       host_,         "--dir",
                                   dir_,           "--save",      "",
                                   "--appendonly", "no",          "--enable-debug-command",
                                   "local",        "--daemonize", "no",
                                   "--logfile",    log_path()};
  if (!unix_socket_.empty()) {
    args.insert(args.end(), {"--unixsocket", unix_socket_, "--unixsocketperm", "700"});
  }
  for (const auto& [name, value] : options_.config) {
    args.push_back("--" + name);
    args.push_back(value);
  }
  return args;
}

bool RedisServer::SpawnAndWait() {
  bool cluster = false;
  for (const auto& [name, value] : options_.config) {
    cluster = cluster || (name == "cluster-enabled" && value == "yes");
    if (name == "requirepass") password_ = value;
  }
  port_ = FindFreePort(cluster);
  exit_status_.reset();
  connection_.reset();

  std::vector<std::string> args = BuildArgs();
  // Prepared before fork(): the child may only make async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out_path = dir_ + "/redis.stdout";
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2];
  if (out_fd < 0 || null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    if (out_fd >= 0) ::close(out_fd);
    if (null_fd >= 0) ::close(null_fd);
    throw std::runtime_error("RedisServer: cannot set up the child's files: " +
                             std::string(std::strerror(err)));
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(out_fd);
    ::close(null_fd);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    throw std::runtime_error("RedisServer: fork failed: " + std::string(std::strerror(err)));
  }
  if (pid == 0) {
    // A test that crashes must not leave servers behind: the kernel kills this child when the
    // thread that forked it exits.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    int err = errno;
    ssize_t ignored = ::write(exec_pipe[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(null_fd);
  ::close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  pid_ = pid;
  if (n == sizeof(exec_errno)) {
    WaitForExit();
    throw std::runtime_error("RedisServer: cannot execute '" + binary_ +
                             "': " + std::strerror(exec_errno));
  }

  const auto deadline = Clock::now() + options_.start_timeout;
  std::string last_error = "no attempt yet";
  while (true) {
    if (!Running()) {
      // The log says why; a lost race for the port is the one failure worth another attempt.
      std::string log = ReadFile(log_path()) + ReadFile(out_path);
      if (log.find("Address already in use") != std::string::npos) return false;
      throw std::runtime_error(std::string(is_sentinel() ? "redis-sentinel (" : "redis-server (") +
                               binary_ + ") exited during start-up on port " +
                               std::to_string(port_) + " with wait status " +
                               std::to_string(exit_status_.value_or(-1)) + "\n" + LogTail());
    }
    try {
      RedisContextPtr c = Connect(std::chrono::milliseconds(500));
      Reply pong = Execute(c.get(), {"PING"});
      if (pong.type == Reply::Type::kStatus && pong.str == "PONG") return true;
      // For example "-LOADING": the server is up but not ready yet.
      last_error = pong.ToString();
    } catch (const std::runtime_error& e) {
      last_error = e.what();
    }
    if (Clock::now() >= deadline) {
      Kill(SIGKILL);
      WaitForExit();
      throw std::runtime_error(std::string(is_sentinel() ? "redis-sentinel (" : "redis-server (") +
                               binary_ + ") did not answer PING on port " + std::to_string(port_) +
                               " within " + std::to_string(options_.start_timeout.count()) +
                               " ms; last error: " + last_error + "\n" + LogTail());
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void RedisServer::Reap(int status) {
  exit_status_ = status;
  connection_.reset();
}

bool RedisServer::Running() {
  if (pid_ <= 0 || exit_status_.has_value()) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
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

std::optional<int> RedisServer::WaitForExit(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (Running()) {
    if (Clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_status_;
}

void RedisServer::Kill(int signal) {
  if (pid_ > 0 && Running()) ::kill(pid_, signal);
}

void RedisServer::Stop(std::chrono::milliseconds deadline) {
  connection_.reset();
  if (!Running()) return;
  try {
    // SHUTDOWN closes the connection instead of replying; an I/O error here means success.
    RedisContextPtr c = Connect(std::chrono::milliseconds(1000));
    redisReply* r = static_cast<redisReply*>(redisCommand(c.get(), "SHUTDOWN NOSAVE"));
    if (r != nullptr) freeReplyObject(r);
  } catch (const std::runtime_error&) {
    // Not reachable: SIGKILL below will do.
  }
  if (WaitForExit(deadline).has_value()) return;
  Kill(SIGKILL);
  // SIGKILL cannot be ignored, so this wait is bounded by the kernel, not by the server.
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  Reap(status);
}

RedisContextPtr RedisServer::Connect(std::chrono::milliseconds timeout) const {
  if (port_ == 0) throw std::logic_error("RedisServer::Connect before Start");
  RedisContextPtr c = ConnectTo(host_, port_, timeout);
  if (!password_.empty()) {
    Reply r = Execute(c.get(), {"AUTH", password_});
    if (!r.ok())
      throw std::runtime_error("AUTH with the configured requirepass failed: " + r.ToString());
  }
  return c;
}

Reply RedisServer::CommandArgv(const std::vector<std::string>& argv) {
  if (!connection_) connection_ = Connect();
  try {
    return Execute(connection_.get(), argv);
  } catch (...) {
    // A hiredis context is unusable after an I/O error; the next command reconnects.
    connection_.reset();
    throw;
  }
}

std::map<std::string, std::string> RedisServer::Info(const std::string& section) {
  Reply r = section.empty() ? Command("INFO") : Command("INFO", section);
  if (r.type != Reply::Type::kString) {
    throw std::runtime_error("INFO " + section + " failed: " + r.ToString());
  }
  return ParseInfo(r.str);
}

std::map<uint64_t, rdb::DbCounts> RedisServer::Keyspace() {
  return ParseKeyspace(Info("keyspace"));
}

std::string RedisServer::Version() {
  auto info = Info("server");
  auto it = info.find("redis_version");
  if (it == info.end()) throw std::runtime_error("INFO server has no redis_version");
  return it->second;
}

std::string RedisServer::Save() {
  Reply r = Command("SAVE");
  if (!r.ok()) throw std::runtime_error("SAVE failed: " + r.ToString() + "\n" + LogTail());
  Reply name = Command("CONFIG", "GET", "dbfilename");
  if (name.type != Reply::Type::kArray || name.elements.size() != 2) {
    throw std::runtime_error("CONFIG GET dbfilename failed: " + name.ToString());
  }
  return dir_ + "/" + name.elements[1].str;
}

std::string RedisServer::LogTail(size_t lines) const {
  std::string out = "--- " + log_path() + " (last " + std::to_string(lines) + " lines) ---\n" +
                    LastLines(ReadFile(log_path()), lines);
  std::string stdout_text = ReadFile(dir_ + "/redis.stdout");
  if (!stdout_text.empty()) {
    out += "\n--- redis-server stdout/stderr ---\n" + LastLines(stdout_text, lines);
  }
  return out;
}

}  // namespace finalsnap::testing

// RedisServer: a real redis-server child process for integration tests and benchmarks, in its own
// temporary directory on a free loopback port, plus a small synchronous hiredis client for it.
// The process, the client and their deadlines are localnode's (localnode/server.h, shared with
// `finalsnap demo`); this layer adds the tests' defaults and conveniences and throws on failure.
//
//   RedisServer server({{"rdbcompression", "no"}});
//   server.Start();                                   // throws, with the server log, on failure
//   server.Command("SET", "k", "v");
//   std::map<uint64_t, rdb::DbCounts> keyspace = server.Keyspace();
//   std::string rdb_path = server.Save();             // SAVE, then <dir>/dump.rdb
//   // The destructor shuts the server down and removes its directory.
//
// The binary is /usr/bin/redis-server (Debian's redis-server package) unless the environment
// variable FINALSNAP_REDIS_SERVER names another. A missing binary is an error, never a skip: tests
// that need Redis must fail loudly on a machine without it.
//
// The server runs with `--save "" --appendonly no` (nothing is written unless a test asks),
// `--enable-debug-command local` (DEBUG DIGEST, DEBUG RELOAD, ...), a log file in its directory,
// and a unix socket there too when the path fits. Callers add any other directive; with
// `requirepass`, the server's own connections (Connect, Command, Stop) authenticate with it.
// FINALSNAP_KEEP_TMP=1 keeps every server's directory for a look after the test.
//
// The server is started with PR_SET_PDEATHSIG, so a crashed test leaves no server behind: the
// kernel kills it when the thread that called Start() exits. Start it from a thread that outlives
// it (the test's own thread does).
//
// Sentinel mode runs a Redis Sentinel instead, under the same guarantees (own directory, free
// port, PDEATHSIG, SHUTDOWN NOSAVE then SIGKILL):
//
//   RedisServerOptions options;
//   options.mode = RedisServerOptions::Mode::kSentinel;
//   options.sentinel_config = {"sentinel monitor m 127.0.0.1 6379 1"};
//   RedisServer sentinel(options);
//   sentinel.Start();
//   sentinel.Command("SENTINEL", "get-master-addr-by-name", "m");
//
// Sentinel takes its configuration from a file only, and rewrites that file whenever its view
// changes (it refuses to start when it cannot), so Start() writes <dir>/sentinel.conf afresh on
// every start: a restarted sentinel is a new one, with a new ID. Its binary is
// /usr/bin/redis-sentinel (Debian's redis-sentinel package) unless FINALSNAP_REDIS_SENTINEL names
// another. SAVE, Keyspace() and the unix socket do not apply to a sentinel.
#ifndef FINALSNAP_TESTS_SUPPORT_REDIS_SERVER_H_
#define FINALSNAP_TESTS_SUPPORT_REDIS_SERVER_H_

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "finalsnap/rdb/validator.h"
#include "localnode/client.h"
#include "localnode/server.h"

namespace finalsnap::testing {

// The default deadline for waits on a server: start-up, shutdown, a command's reply.
inline constexpr std::chrono::milliseconds kServerDeadline = localnode::kDefaultDeadline;

using RedisContextDeleter = localnode::ContextDeleter;
using RedisContextPtr = localnode::Context;
// A reply, copied out of hiredis' redisReply so it outlives it.
using Reply = localnode::Reply;

// Connects to host:port (TCP) or, if `host` starts with '/', to that unix socket. Throws
// std::runtime_error on failure. Commands on the context time out after `timeout`.
RedisContextPtr ConnectTo(const std::string& host, int port,
                          std::chrono::milliseconds timeout = kServerDeadline);

// Sends one command (binary-safe) and returns its reply. An error reply is returned as
// Reply::Type::kError; a connection failure or timeout throws std::runtime_error.
Reply Execute(redisContext* c, const std::vector<std::string>& argv);

// QuoteConfigArg (a value as one argument of a config-file line), ParseInfo (INFO text to
// field -> value), ParseInfoFields ("ip=...,port=..." to name -> value) and ParseKeyspace (INFO
// keyspace to per-database counts).
using localnode::ParseInfo;
using localnode::ParseInfoFields;
using localnode::ParseKeyspace;
using localnode::QuoteConfigArg;

// localnode's options (mode, config, sentinel_config, binary, start_timeout, dir, keep_dir). An
// empty `binary` here means $FINALSNAP_REDIS_SERVER, else /usr/bin/redis-server (in sentinel
// mode: $FINALSNAP_REDIS_SENTINEL, else /usr/bin/redis-sentinel).
using RedisServerOptions = localnode::ServerOptions;

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {});
  // Shorthands for a server with only extra config directives. The initializer_list overload
  // makes `RedisServer server({{"rdbcompression", "no"}})` unambiguous.
  explicit RedisServer(std::vector<std::pair<std::string, std::string>> config);
  explicit RedisServer(std::initializer_list<std::pair<std::string, std::string>> config);
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  // Stops the server if it still runs and removes its directory (unless kept).
  ~RedisServer() = default;

  // Creates the directory, picks a free port, spawns the server and waits until it answers PING.
  // A port taken between the probe and the server's bind is retried on another port. Throws
  // std::runtime_error naming the binary (and how to install it) if it is missing, or with the
  // tail of the server's log if it does not come up; std::logic_error if it already runs.
  void Start();
  // SHUTDOWN NOSAVE, then waits for the process to exit; SIGKILL if it has not gone by the
  // deadline. Harmless if the server is not running.
  void Stop(std::chrono::milliseconds deadline = kServerDeadline);
  // Sends `signal` to the server process (e.g. SIGKILL to simulate a crash); does not wait.
  void Kill(int signal) { server_.Kill(signal); }
  // Waits for the process to exit (for example after a SHUTDOWN sent by the code under test).
  // Returns the wait status, or nullopt if it still runs at the deadline.
  std::optional<int> WaitForExit(std::chrono::milliseconds deadline = kServerDeadline) {
    return server_.WaitForExit(deadline);
  }
  // True while the process has not exited.
  bool Running() { return server_.Running(); }

  const std::string& host() const { return server_.host(); }
  int port() const { return server_.port(); }
  // The server's directory (its `dir`): the RDB file and the logs are here.
  const std::string& dir() const { return server_.dir(); }
  // The unix socket path, or empty when the directory path was too long for one.
  const std::string& unix_socket() const { return server_.unix_socket(); }
  pid_t pid() const { return server_.pid(); }
  std::string log_path() const { return server_.log_path(); }
  // Sentinel mode: the configuration file the sentinel reads and rewrites.
  std::string sentinel_config_path() const { return server_.sentinel_config_path(); }
  // The `requirepass` directive's value once started, or empty.
  const std::string& password() const { return server_.password(); }
  bool is_sentinel() const { return server_.is_sentinel(); }

  // A new connection of the caller's own (for example to keep a SELECTed database), already
  // authenticated when `requirepass` is configured. ConnectTo(host(), port()) gives a bare one.
  RedisContextPtr Connect(std::chrono::milliseconds timeout = kServerDeadline) const;

  // Runs one command on the server's own connection (database 0 unless a SELECT was sent through
  // it). Arguments may be strings, string views, C strings or integers.
  template <typename... Args>
  Reply Command(const Args&... args) {
    std::vector<std::string> argv;
    argv.reserve(sizeof...(args));
    (argv.push_back(ToArg(args)), ...);
    return CommandArgv(argv);
  }
  Reply CommandArgv(const std::vector<std::string>& argv);

  // INFO <section> as field -> value; throws if the reply is not a string.
  std::map<std::string, std::string> Info(const std::string& section = "");
  // Keys and expires per database, from INFO keyspace; databases without keys are absent.
  std::map<uint64_t, rdb::DbCounts> Keyspace();
  // INFO server's redis_version, e.g. "7.0.15".
  std::string Version();
  // Runs SAVE and returns the path of the file written (dir + CONFIG GET dbfilename).
  std::string Save();

  // The last `lines` lines of the server's log and of its stdout/stderr, for failure messages.
  std::string LogTail(size_t lines = 40) const { return server_.LogTail(lines); }

 private:
  template <typename T>
  static std::string ToArg(const T& value) {
    if constexpr (std::is_arithmetic_v<T>) {
      return std::to_string(value);
    } else {
      return std::string(value);
    }
  }

  localnode::LocalServer server_;
  RedisContextPtr connection_;  // declared after server_: closed before the server stops
};

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_REDIS_SERVER_H_

// LocalServer: a real redis-server (or redis-sentinel) child process on a free loopback port, in
// a directory of its own, started and stopped under deadlines. `finalsnap demo` runs its nodes
// with it; the tests' RedisServer (tests/support) is this plus a throwing convenience layer.
//
//   ServerOptions options;
//   options.config = {{"rdbcompression", "no"}};
//   LocalServer server(options);
//   if (Status r = server.Start(); !r.ok()) return r.error();   // the log's tail included
//   Expected<Context> c = server.Connect();
//   ...
//   server.Stop();                       // SHUTDOWN NOSAVE, SIGKILL at the deadline
//
// The server runs with `--save "" --appendonly no` (nothing is written unless asked),
// `--enable-debug-command local` (DEBUG DIGEST, DEBUG RELOAD, ...; left out, and the start
// retried, for a server before Redis 7 that does not know the directive), its log in
// <dir>/redis.log, its stdout and stderr in <dir>/redis.stdout, and a unix socket
// <dir>/redis.sock when the path fits. `config` adds or overrides directives; with
// `requirepass`, the server's own connections (Connect, Stop) authenticate with it.
//
// The child is in its own process group (a Ctrl-C at the terminal reaches only its parent) and
// is started with PR_SET_PDEATHSIG: the kernel kills it when the thread that called Start()
// exits, so a crash leaves no server behind. Start it from a thread that outlives it. The
// destructor stops it if it still runs.
//
// Sentinel mode runs redis-sentinel on <dir>/sentinel.conf, written afresh on every Start() from
// `config` (as `name "value"` lines) and `sentinel_config` (verbatim lines): sentinel reads its
// configuration from a file only and rewrites it, and a restarted sentinel is a new one. The
// unix socket does not apply to a sentinel.
#ifndef FINALSNAP_LOCALNODE_SERVER_H_
#define FINALSNAP_LOCALNODE_SERVER_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "finalsnap/status.h"
#include "localnode/client.h"
#include "localnode/files.h"

namespace finalsnap::localnode {

struct ServerOptions {
  enum class Mode {
    kServer,    // redis-server, configured on its command line
    kSentinel,  // redis-sentinel <dir>/sentinel.conf
  };
  Mode mode = Mode::kServer;
  // Extra configuration directives as {name, value}, passed as `--name value` after the
  // defaults (so they override them), e.g. {"rdbcompression", "no"}. In sentinel mode they are
  // written to sentinel.conf as `name "value"` lines instead.
  std::vector<std::pair<std::string, std::string>> config;
  // Sentinel mode only: lines appended verbatim to sentinel.conf after `config`, e.g.
  // "sentinel monitor m 127.0.0.1 6379 2".
  std::vector<std::string> sentinel_config;
  // The program: a path, or a name looked up in $PATH. Empty means "redis-server"
  // ("redis-sentinel" in sentinel mode).
  std::string binary;
  // How long Start() waits for the server to answer PING, per attempt. A server loading a big
  // RDB answers -LOADING until it is done, which counts as not ready yet.
  std::chrono::milliseconds start_timeout = kDefaultDeadline;
  // The server's directory (its `dir`). Empty means a fresh one under $TMPDIR, removed when the
  // LocalServer goes unless `keep_dir`; a directory given here is the caller's and stays.
  std::string dir;
  bool keep_dir = false;
};

class LocalServer {
 public:
  explicit LocalServer(ServerOptions options = {});
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;
  // Stops the server if it still runs; removes its directory if it made one (unless kept).
  ~LocalServer();

  // Picks a free port, spawns the server and waits until it answers PING. A port taken between
  // the probe and the server's bind is retried on another port. Fails when it already runs,
  // when the binary is missing, or, with the tail of the server's log, when it does not come
  // up. May be called again after Stop(): same directory, new port.
  Status Start();
  // SHUTDOWN NOSAVE, then waits for the process to exit; SIGKILL if it has not gone by the
  // deadline. Harmless if the server is not running.
  void Stop(std::chrono::milliseconds deadline = kDefaultDeadline);
  // Sends `signal` to the server process (e.g. SIGKILL to simulate a crash); does not wait.
  void Kill(int signal);
  // Waits for the process to exit (for example after a SHUTDOWN sent by someone else). Returns
  // the wait status, or nullopt if it still runs at the deadline.
  std::optional<int> WaitForExit(std::chrono::milliseconds deadline = kDefaultDeadline);
  // True while the process has not exited.
  bool Running();

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  // The program Start() ran (or will run): options().binary resolved through $PATH.
  const std::string& binary() const { return binary_; }
  const std::string& dir() const { return dir_; }
  // The unix socket path, or empty when the directory path was too long for one.
  const std::string& unix_socket() const { return unix_socket_; }
  pid_t pid() const { return pid_; }
  std::string log_path() const { return dir_ + "/redis.log"; }
  // Sentinel mode: the configuration file the sentinel reads and rewrites.
  std::string sentinel_config_path() const { return dir_ + "/sentinel.conf"; }
  // The `requirepass` directive's value once started, or empty.
  const std::string& password() const { return password_; }
  bool is_sentinel() const { return options_.mode == ServerOptions::Mode::kSentinel; }
  const ServerOptions& options() const { return options_; }

  // A new connection, already authenticated when `requirepass` is configured.
  // localnode::Connect(host(), port()) gives a bare one.
  Expected<Context> Connect(std::chrono::milliseconds timeout = kDefaultDeadline) const;

  // The last `lines` lines of the server's log and of its stdout/stderr, for failure messages.
  std::string LogTail(size_t lines = 40) const;

 private:
  // Makes the directory on the first start.
  Status PrepareDir();
  // One attempt on a fresh port: true when the server answers, false when the attempt may be
  // repeated (the port was taken; the directive the server does not know was dropped).
  Expected<bool> SpawnAndWait();
  // The argv for one start on port_; in sentinel mode, also (re)writes sentinel.conf.
  Expected<std::vector<std::string>> BuildArgs();
  Status Spawn(std::vector<std::string> args);
  std::string Describe() const;  // "redis-server (/usr/bin/redis-server)"
  void Reap(int status);

  ServerOptions options_;
  std::string binary_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  ScratchDir scratch_;  // when options_.dir is empty
  std::string dir_;
  std::string unix_socket_;
  std::string password_;         // from a `requirepass` directive
  bool debug_directive_ = true;  // passes --enable-debug-command
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// `value` as one argument of a Redis configuration-file line: double-quoted, with the escapes
// the config parser reads, so empty values, spaces and quotes survive.
std::string QuoteConfigArg(std::string_view value);

}  // namespace finalsnap::localnode

#endif  // FINALSNAP_LOCALNODE_SERVER_H_

// The operations of engine.h, each a coroutine on one libuv loop that walks the gates in order:
//
//   preflight  target-resolved -> topology-consistent -> snapshot-name-free -> storage-ready
//   quiesce    writes-paused       (CLIENT PAUSE WRITE, renewed: the timeout is a dead-man switch)
//   capture    rdb-complete -> rdb-checksum -> rdb-parsed -> keycount-match
//   store      durable -> readback
//   destroy    nodes-shutdown      (SHUTDOWN NOSAVE, then confirm the port refuses connections)
//
// Every refusal goes through Refuse(): unpause, put the node's config back, drop the partial
// snapshot, record the failed gate. Nothing is ever shut down after a failed gate.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <memory>

#include "async.h"
#include "finalsnap/decoder.h"
#include "finalsnap/engine.h"
#include "loop.h"
#include "node_client.h"
#include "pipeline.h"
#include "repl_stream.h"

namespace finalsnap {
namespace {

using detail::BufferPool;
using detail::CaptureOptions;
using detail::CaptureResult;
using detail::CommandOutcome;
using detail::Loop;
using detail::NodeAddress;
using detail::NodeAuth;
using detail::NodeClient;
using detail::NodeTimeouts;
using detail::Pipeline;
using detail::PipelineResult;
using detail::ReplicationCapture;
using detail::ServerFacts;
using detail::Task;
using std::chrono::milliseconds;

constexpr size_t kPoolBuffers = 16;
constexpr size_t kBufferSize = 256 * 1024;

std::string FileExtension(Compression c) {
  switch (c) {
    case Compression::kZstd:
      return ".rdb.zst";
    case Compression::kLz4:
      return ".rdb.lz4";
    case Compression::kNone:
      break;
  }
  return ".rdb";
}

std::string KeyspaceText(const std::map<uint64_t, rdb::DbCounts>& m) {
  if (m.empty()) return "no keys";
  std::string s;
  for (const auto& [db, c] : m) {
    if (!s.empty()) s += ", ";
    s += "db" + std::to_string(db) + " " + std::to_string(c.keys) + " keys/" +
         std::to_string(c.expires) + " expires";
  }
  return s;
}

// Builds a command's argv. Coroutine bodies use this rather than braced lists: GCC 12 cannot
// keep an initializer_list's backing array in a coroutine frame ("array used as initializer").
template <typename... Args>
std::vector<std::string> Argv(Args&&... args) {
  std::vector<std::string> v;
  v.reserve(sizeof...(args));
  (v.emplace_back(std::forward<Args>(args)), ...);
  return v;
}

std::string Hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// One TCP connect attempt to host:port with a 500 ms limit: empty if it connected, else why not
// ("connection refused", "timed out", ...). Blocking, for the destroy's final check only.
std::string ProbeTcp(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return "cannot resolve " + host;
  }
  std::string why;
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string("socket: ") + std::strerror(errno);
  } else if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    why.clear();
  } else if (errno != EINPROGRESS) {
    why = std::strerror(errno);
  } else {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 500) <= 0) {
      why = "timed out";
    } else {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      why = err == 0 ? std::string() : std::string(std::strerror(err));
    }
  }
  if (fd >= 0) ::close(fd);
  freeaddrinfo(res);
  for (char& c : why) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return why;
}

// A refusal travelling up from a step: the gate, the fault and the message.
struct Refusal {
  // A constructor rather than aggregate initialisation: GCC 12 miscompiles braced string
  // literals in co_return ("array used as initializer").
  Refusal(std::string g, std::string f, std::string m)
      : gate(std::move(g)), fault(std::move(f)), message(std::move(m)) {}
  std::string gate;
  std::string fault;
  std::string message;
};

// The configuration a capture may change on a node, and what it was before.
struct ConfigChange {
  std::string name;
  std::string original;
  std::string applied;
};

class Operation {
 public:
  Operation(const Fleet& fleet, const CacheClusterEntry& entry, const OperationOptions& options)
      : fleet_(fleet), entry_(entry), options_(options), pause_timer_(loop_) {
    result_.cluster.cache_cluster_id = entry.id;
    result_.cluster.endpoint = entry.endpoint.ToString();
    result_.cluster.capture = std::string(CaptureModeName(entry.settings.capture));
  }

  // destroy: delete-cache-cluster; else create-snapshot. snapshot: the name, if one is taken.
  OperationResult Run(bool destroy, std::optional<std::string> snapshot) {
    destroy_ = destroy;
    snapshot_name_ = std::move(snapshot);
    const auto start = std::chrono::steady_clock::now();
    WatchSignals();
    OperationResult r = detail::RunToCompletion(loop_, Main());
    for (uv_signal_t* s : signals_) {
      uv_signal_stop(s);
      uv_close(reinterpret_cast<uv_handle_t*>(s),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_signal_t*>(h); });
    }
    signals_.clear();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
  }

 private:
  // Wall-clock milliseconds (not the loop's cached time: fsync and readback block the loop).
  static double Ms() {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void Gate(const std::string& gate, const std::string& phase, bool passed,
            const std::string& evidence) {
    GateVerdict v;
    v.gate = gate;
    v.phase = phase;
    v.passed = passed;
    v.evidence = evidence;
    v.node = entry_.endpoint.ToString();
    v.at_ms = Ms() - start_ms_;
    result_.gates.push_back(v);
  }

  void WatchSignals() {
    for (int signum : {SIGINT, SIGTERM}) {
      auto* s = new uv_signal_t;
      uv_signal_init(loop_.get(), s);
      s->data = this;
      uv_signal_start(
          s,
          [](uv_signal_t* h, int sig) {
            auto* self = static_cast<Operation*>(h->data);
            if (self->interrupted_) return;
            self->interrupted_ = sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)";
            if (self->active_capture_ != nullptr) self->active_capture_->Cancel(*self->interrupted_);
          },
          signum);
      signals_.push_back(s);
    }
  }
  // A refusal for an operation stopped by a signal, when one arrived.
  std::optional<Refusal> Interrupted() const {
    if (!interrupted_) return std::nullopt;
    return Refusal("", "Interrupted", "the operation was " + *interrupted_ +
                                          " before it finished; nothing was shut down");
  }

  Task<OperationResult> Main();
  Task<std::optional<Refusal>> Preflight();
  Task<std::optional<Refusal>> Quiesce();
  std::optional<Refusal> BeginSnapshot();
  // INFO persistence as a field map; empty if the command failed.
  Task<std::map<std::string, std::string>> Persistence() {
    CommandOutcome p = co_await node_->Command(Argv("INFO", "persistence"));
    std::map<std::string, std::string> fields;
    if (p.ok()) fields = detail::ParseInfo(p.reply.str);
    co_return fields;
  }
  Task<std::optional<Refusal>> Capture();
  Task<std::optional<Refusal>> Store();
  Task<std::optional<Refusal>> Destroy();
  Task<bool> Unpause();
  Task<int> RestoreConfig();
  Task<std::optional<Refusal>> CaptureBgsaveFile(Pipeline& pipeline, BufferPool& pool);

  Loop loop_;
  const Fleet& fleet_;
  const CacheClusterEntry& entry_;
  const OperationOptions& options_;
  OperationResult result_;
  bool destroy_ = false;
  std::optional<std::string> snapshot_name_;
  double start_ms_ = 0;

  std::unique_ptr<NodeClient> node_;
  ServerFacts facts_;
  std::map<uint64_t, rdb::DbCounts> expected_;
  std::optional<SnapshotStore> store_;
  std::unique_ptr<SnapshotWriter> writer_;
  Snapshot initial_;
  std::string file_;
  int fd_ = -1;
  Snapshot manifest_;
  std::vector<ConfigChange> config_changes_;
  bool paused_ = false;
  detail::Timer pause_timer_;
  std::string pause_command_;
  PipelineResult pipeline_result_;
  CaptureResult capture_result_;
  // SIGINT/SIGTERM while the operation runs: the capture is cancelled and the operation refuses
  // at the next step, so the node is unpaused and put back before the process exits.
  std::optional<std::string> interrupted_;
  ReplicationCapture* active_capture_ = nullptr;
  std::vector<uv_signal_t*> signals_;
};

Task<OperationResult> Operation::Main() {
  start_ms_ = Ms();
  std::optional<Refusal> refusal = co_await Preflight();
  if (!refusal && options_.dry_run) {
    result_.ok = true;
    result_.plan.push_back("pause writes on " + entry_.endpoint.ToString() + " (CLIENT PAUSE " +
                           std::to_string(entry_.settings.pause_timeout_ms) + " WRITE, renewed)");
    if (snapshot_name_) {
      result_.plan.push_back("stream the RDB (" +
                             std::string(CaptureModeName(entry_.settings.capture)) +
                             ") through the validator into snapshot " + *snapshot_name_ + " (" +
                             std::string(CompressionName(fleet_.storage.compression)) + ")");
      result_.plan.push_back("fsync, read back and check the snapshot");
    }
    if (destroy_) {
      result_.plan.push_back("SHUTDOWN NOSAVE " + entry_.endpoint.ToString() +
                             " and confirm it no longer accepts connections");
    } else {
      result_.plan.push_back("unpause once the server has forked; put its config back");
    }
    co_return result_;
  }
  if (!refusal) refusal = Interrupted();
  if (!refusal) refusal = co_await Quiesce();
  if (!refusal) refusal = Interrupted();
  if (!refusal && snapshot_name_) refusal = co_await Capture();
  if (refusal && interrupted_) refusal = Interrupted();  // the capture failed because of it
  if (!refusal) refusal = Interrupted();
  if (!refusal && snapshot_name_) refusal = co_await Store();
  if (!refusal) refusal = Interrupted();
  if (!refusal && destroy_) refusal = co_await Destroy();

  if (refusal) {
    // Refuse: writes resume, the node is left as it was, no partial snapshot remains.
    result_.ok = false;
    result_.fault = refusal->fault;
    result_.failed_gate = refusal->gate;
    result_.message = refusal->gate.empty()
                          ? refusal->message
                          : "gate " + refusal->gate + " refused: " + refusal->message;
    if (writer_) writer_->Abort();
    // A command that timed out closed the connection: open a new one to put the node back.
    if (node_ && !node_->connected() && (paused_ || !config_changes_.empty())) {
      Status again = co_await node_->Connect();
      if (!again.ok()) result_.notes.push_back("could not reconnect: " + again.message());
    }
    if (node_ && node_->connected()) {
      if (paused_) co_await Unpause();
      co_await RestoreConfig();
    } else if (paused_ || !config_changes_.empty()) {
      result_.notes.push_back("could not reach the node to unpause it; the pause expires on its "
                              "own within " +
                              std::to_string(entry_.settings.pause_timeout_ms) + " ms");
    }
    result_.cluster.status = "available";
    co_return result_;
  }
  if (!destroy_) {
    if (node_ && !node_->connected()) {
      Status again = co_await node_->Connect();
      if (!again.ok()) result_.notes.push_back("could not reconnect: " + again.message());
    }
    if (paused_) co_await Unpause();
    co_await RestoreConfig();
    result_.cluster.status = "available";
  } else {
    result_.cluster.status = "deleted";
  }
  result_.ok = true;
  co_return result_;
}

Task<std::optional<Refusal>> Operation::Preflight() {
  // target-resolved: the node answers (with AUTH if configured).
  const ResolvedSecret password = ResolvePassword(entry_.settings);
  if (!password.ok()) {
    Gate("target-resolved", "preflight", false, password.error);
    co_return Refusal{"target-resolved", "InvalidParameterValue", password.error};
  }
  NodeAuth auth{entry_.settings.username, password.value};
  NodeTimeouts timeouts{milliseconds(entry_.settings.connect_timeout_ms),
                        milliseconds(entry_.settings.command_timeout_ms)};
  node_ = std::make_unique<NodeClient>(
      loop_, NodeAddress{entry_.endpoint.host, entry_.endpoint.port}, auth, timeouts);
  if (Status s = co_await node_->Connect(); !s.ok()) {
    Gate("target-resolved", "preflight", false, s.message());
    co_return Refusal{"target-resolved", "InvalidCacheClusterState",
                      "cache cluster " + entry_.id + " is not reachable: " + s.message()};
  }
  CommandOutcome info = co_await node_->Command(Argv("INFO", "all"));
  if (!info.ok()) {
    Gate("target-resolved", "preflight", false, "INFO failed: " + info.Error());
    co_return Refusal{"target-resolved", "InvalidCacheClusterState",
                      "INFO on " + entry_.endpoint.ToString() + " failed: " + info.Error()};
  }
  const auto fields = detail::ParseInfo(info.reply.str);
  facts_ = detail::ParseServerFacts(fields);
  result_.cluster.engine = facts_.engine;
  result_.cluster.engine_version = facts_.version;
  result_.cluster.role = facts_.role;
  result_.cluster.used_memory = facts_.used_memory;
  Gate("target-resolved", "preflight", true,
       facts_.engine + " " + facts_.version + " at " + entry_.endpoint.ToString() +
           " answered" + (auth.password ? " (AUTH" +
                                              (auth.username.empty() ? "" : " as " + auth.username) +
                                              ")"
                                        : "") +
           "; used_memory " + std::to_string(facts_.used_memory));

  // topology-consistent: a standalone primary, the shape a cache cluster has. ROLE lists only
  // replicas that are online, INFO counts every attached one; both must agree it is alone.
  CommandOutcome role_reply = co_await node_->Command(Argv("ROLE"));
  std::optional<detail::RoleInfo> role;
  if (role_reply.ok()) role = detail::ParseRole(role_reply.reply);
  std::string topology_fault;
  if (role && role->role != facts_.role) {
    topology_fault = "ROLE says " + role->role + " but INFO says " + facts_.role;
  } else if (role && !role->replicas.empty()) {
    topology_fault = "the node is the primary of a replication group with " +
                     std::to_string(role->replicas.size()) +
                     " online replica(s); use delete-replication-group";
  }
  if (!topology_fault.empty()) {
    // ROLE already refused.
  } else if (facts_.loading) {
    topology_fault = "the node is still loading its dataset";
  } else if (facts_.cluster_enabled) {
    topology_fault = "the node is a Redis Cluster member; use delete-replication-group";
  } else if (facts_.role != "master") {
    topology_fault = "the node is a replica (role " + facts_.role +
                     "); a cache cluster is a standalone primary";
  } else if (facts_.connected_replicas > 0) {
    topology_fault = "the node is the primary of a replication group with " +
                     std::to_string(facts_.connected_replicas) +
                     " replica(s); use delete-replication-group";
  }
  if (!topology_fault.empty()) {
    Gate("topology-consistent", "preflight", false, topology_fault);
    co_return Refusal{"topology-consistent", "InvalidCacheClusterState", topology_fault};
  }
  Gate("topology-consistent", "preflight", true,
       "standalone primary (INFO and ROLE agree), no replicas attached, cluster mode off");

  if (!snapshot_name_) co_return std::nullopt;

  // snapshot-name-free: a valid name nobody has taken.
  if (std::string why = CheckSnapshotName(*snapshot_name_); !why.empty()) {
    Gate("snapshot-name-free", "preflight", false, why);
    co_return Refusal{"snapshot-name-free", "InvalidParameterValue",
                      "snapshot name '" + *snapshot_name_ + "': " + why};
  }
  auto opened = SnapshotStore::Open(fleet_.storage.path);
  if (auto* error = std::get_if<std::string>(&opened)) {
    // Without a store no name can be checked: the storage is what refuses.
    Gate("storage-ready", "preflight", false, *error);
    co_return Refusal{"storage-ready", "InvalidParameterValue", *error};
  }
  store_.emplace(std::move(std::get<SnapshotStore>(opened)));
  if (store_->Exists(*snapshot_name_)) {
    Gate("snapshot-name-free", "preflight", false, "a snapshot named " + *snapshot_name_ +
                                                      " exists in " + store_->root().string());
    co_return Refusal{"snapshot-name-free", "SnapshotAlreadyExistsFault",
                      "Snapshot " + *snapshot_name_ + " already exists."};
  }
  // The name is free only once it is ours: the partial directory claims it under the store's
  // lock, so two operations racing for one name cannot both pass. (A dry run only looks.)
  if (!options_.dry_run) {
    if (std::optional<Refusal> r = BeginSnapshot()) co_return r;
  }
  Gate("snapshot-name-free", "preflight", true,
       "no snapshot named " + *snapshot_name_ +
           (writer_ ? "; claimed by " + writer_->dir().filename().string() : ""));

  // storage-ready: writable, with room for the snapshot (the dataset's size in memory is an
  // upper bound for its RDB; a compressed copy is smaller still).
  if (Status s = store_->CheckWritable(); !s.ok()) {
    Gate("storage-ready", "preflight", false, s.message());
    co_return Refusal{"storage-ready", "InvalidParameterValue",
                      "snapshot storage is not writable: " + s.message()};
  }
  const uint64_t estimate = fleet_.storage.compression == Compression::kNone
                                ? facts_.used_memory
                                : facts_.used_memory / 2;
  const uint64_t free_bytes = store_->FreeBytes();
  if (free_bytes < estimate) {
    const std::string why = std::to_string(free_bytes) + " bytes free in " +
                            store_->root().string() + ", " + std::to_string(estimate) +
                            " estimated for the snapshot";
    Gate("storage-ready", "preflight", false, why);
    co_return Refusal{"storage-ready", "InvalidParameterValue", "not enough room: " + why};
  }
  Gate("storage-ready", "preflight", true,
       store_->root().string() + " writable, " + std::to_string(free_bytes) +
           " bytes free for an estimated " + std::to_string(estimate));
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::Quiesce() {
  // The transfer starts at once, not after the diskless delay, and the server skips LZF: the
  // stream is recompressed here anyway, and LZF in the forked child is the slowest stage of the
  // whole transfer. Both are put back afterwards (create-snapshot) or on any refusal.
  if (snapshot_name_ && entry_.settings.capture == CaptureMode::kSync) {
    std::vector<std::pair<std::string, std::string>> wanted;
    wanted.emplace_back("repl-diskless-sync-delay", "0");
    wanted.emplace_back("rdbcompression", "no");
    for (const auto& [name, value] : wanted) {
      CommandOutcome get = co_await node_->Command(Argv("CONFIG", "GET", name));
      if (!get.ok() || get.reply.elements.size() != 2) continue;  // renamed CONFIG: leave it
      const std::string original = get.reply.elements[1].str;
      if (original == value) continue;
      CommandOutcome set = co_await node_->Command(Argv("CONFIG", "SET", name, value));
      if (set.ok()) config_changes_.push_back({name, original, value});
    }
  }

  // writes-paused: CLIENT PAUSE WRITE (6.2+) or plain CLIENT PAUSE, renewed well before it
  // expires; if this process dies the pause lapses by itself.
  const bool write_mode = facts_.AtLeast(6, 2);
  const std::string timeout = std::to_string(entry_.settings.pause_timeout_ms);
  std::vector<std::string> pause = Argv("CLIENT", "PAUSE", timeout);
  if (write_mode) pause.push_back("WRITE");
  CommandOutcome paused = co_await node_->Command(pause);
  if (!paused.ok()) {
    Gate("writes-paused", "quiesce", false, "CLIENT PAUSE failed: " + paused.Error());
    co_return Refusal{"writes-paused", "InvalidCacheClusterState",
                      "CLIENT PAUSE on " + entry_.endpoint.ToString() + " failed: " +
                          paused.Error()};
  }
  paused_ = true;
  pause_timer_.Repeat(milliseconds(std::max(entry_.settings.pause_timeout_ms / 3, 50)),
                      [this, pause] {
                        if (node_ && node_->connected()) {
                          node_->Send(pause, node_->timeouts().command, [](CommandOutcome) {});
                        }
                      });
  CommandOutcome keyspace = co_await node_->Command(Argv("INFO", "keyspace"));
  if (!keyspace.ok()) {
    Gate("writes-paused", "quiesce", false, "INFO keyspace failed: " + keyspace.Error());
    co_return Refusal{"writes-paused", "InvalidCacheClusterState",
                      "INFO keyspace failed: " + keyspace.Error()};
  }
  expected_ = detail::ParseKeyspace(detail::ParseInfo(keyspace.reply.str));
  Gate("writes-paused", "quiesce", true,
       "CLIENT PAUSE " + timeout + (write_mode ? " WRITE" : " (all clients; server before 6.2)") +
           " held, renewed every " +
           std::to_string(std::max(entry_.settings.pause_timeout_ms / 3, 50)) +
           " ms; keyspace while paused: " + KeyspaceText(expected_));
  co_return std::nullopt;
}

Task<bool> Operation::Unpause() {
  pause_timer_.Stop();
  if (!paused_) co_return true;
  paused_ = false;
  if (!facts_.AtLeast(6, 2)) {
    result_.notes.push_back("servers before 6.2 have no CLIENT UNPAUSE: writes resume when the "
                            "pause expires, within " +
                            std::to_string(entry_.settings.pause_timeout_ms) + " ms");
    co_return true;
  }
  CommandOutcome r = co_await node_->Command(Argv("CLIENT", "UNPAUSE"));
  if (!r.ok()) {
    result_.notes.push_back("CLIENT UNPAUSE failed (" + r.Error() +
                            "); the pause expires on its own within " +
                            std::to_string(entry_.settings.pause_timeout_ms) + " ms");
  }
  co_return r.ok();
}

Task<int> Operation::RestoreConfig() {
  int failed = 0;
  // A slow or briefly unreachable node gets a few tries over a few seconds, each on a fresh
  // connection with a longer timeout: leaving the node changed is the worse outcome.
  const milliseconds patient = std::max(node_->timeouts().command, milliseconds(5000));
  for (const ConfigChange& c : config_changes_) {
    CommandOutcome r;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (!node_->connected()) {
        if (Status s = co_await node_->Connect(); !s.ok()) {
          r.status = s;
          continue;
        }
      }
      r = co_await node_->Command(Argv("CONFIG", "SET", c.name, c.original),
                                  attempt == 0 ? node_->timeouts().command : patient);
      if (r.ok()) break;
    }
    if (r.ok()) {
      result_.notes.push_back("set " + c.name + " to " + c.applied + " for the transfer and put it "
                              "back to " + c.original);
    } else {
      ++failed;
      result_.notes.push_back("could not put " + c.name + " back to " + c.original + ": " +
                              r.Error());
    }
  }
  config_changes_.clear();
  co_return failed;
}

// Creates the partial snapshot directory and its file, claiming the name; done in preflight,
// before writes are paused, so its fsyncs never lengthen the stall.
std::optional<Refusal> Operation::BeginSnapshot() {
  initial_.snapshot_name = *snapshot_name_;
  initial_.cache_cluster_id = entry_.id;
  initial_.engine = facts_.engine;
  initial_.engine_version = facts_.version;
  initial_.num_node_groups = 1;
  initial_.final_snapshot_of = destroy_ ? "delete-cache-cluster" : "";
  auto begun = store_->Begin(initial_);
  if (auto* error = std::get_if<std::string>(&begun)) {
    if (store_->Exists(*snapshot_name_)) {
      // Another operation took the name since the check: the store's lock decided the race.
      Gate("snapshot-name-free", "preflight", false, *error);
      return Refusal("snapshot-name-free", "SnapshotAlreadyExistsFault",
                     "Snapshot " + *snapshot_name_ + " already exists.");
    }
    Gate("storage-ready", "preflight", false, *error);
    return Refusal("storage-ready", "InvalidParameterValue", *error);
  }
  writer_ = std::move(std::get<std::unique_ptr<SnapshotWriter>>(begun));
  file_ = "0001" + FileExtension(fleet_.storage.compression);
  auto created = writer_->CreateFile(file_);
  if (auto* error = std::get_if<std::string>(&created)) {
    Gate("storage-ready", "preflight", false, *error);
    return Refusal("storage-ready", "InvalidSnapshotState", *error);
  }
  fd_ = std::get<int>(created);
  return std::nullopt;
}

Task<std::optional<Refusal>> Operation::Capture() {
  const Snapshot& initial = initial_;
  const std::string& file = file_;
  const int fd = fd_;

  BufferPool pool(kPoolBuffers, kBufferSize);
  Pipeline pipeline(loop_, pool, {fleet_.storage.compression, fleet_.storage.level}, fd);
  const auto snapshot_time = std::chrono::system_clock::now();
  std::optional<Refusal> refusal;

  if (entry_.settings.capture == CaptureMode::kBgsaveFile) {
    refusal = co_await CaptureBgsaveFile(pipeline, pool);
  } else {
    CaptureOptions copts;
    copts.address = {entry_.endpoint.host, entry_.endpoint.port};
    copts.auth = node_->auth();
    copts.timeouts = node_->timeouts();
    copts.rdb_only = facts_.AtLeast(6, 2);
    if (facts_.engine == "valkey" && facts_.major >= 9) copts.announce_version = facts_.version;
    copts.transfer_timeout = milliseconds(entry_.settings.transfer_timeout_ms);
    ReplicationCapture capture(loop_, pool, pipeline, copts);
    active_capture_ = &capture;
    capture.OnForked([this] {
      // From the fork on the RDB is a point-in-time image: a snapshot that keeps the node
      // running lets writes go on now; a destroy holds the pause to the end.
      if (!destroy_ && paused_) {
        pause_timer_.Stop();
        if (facts_.AtLeast(6, 2)) {
          // Counted as unpaused only once the server said so: if the connection is lost, the
          // end of the operation reconnects and unpauses again.
          node_->Send({"CLIENT", "UNPAUSE"}, node_->timeouts().command,
                      [this](CommandOutcome o) {
                        if (o.ok()) paused_ = false;
                      });
        } else {
          paused_ = false;  // nothing to send: the pause lapses by itself
        }
      }
    });
    const double transfer_start = Ms();
    capture.OnProgress([this, transfer_start](uint64_t bytes) {
      if (!options_.progress) return;
      TransferProgress p;
      p.bytes = bytes;
      p.expected = facts_.used_memory;
      p.seconds = (Ms() - transfer_start) / 1000.0;
      options_.progress(p);
    });
    capture_result_ = co_await capture.Run();
    active_capture_ = nullptr;
    if (!capture_result_.status.ok()) {
      const rdb::Validator& v = pipeline.validator();
      const bool rdb_fault = v.failed();
      const std::string gate =
          rdb_fault ? (v.diagnostic().code == rdb::Errc::kChecksumMismatch ? "rdb-checksum"
                                                                            : "rdb-parsed")
                    : "rdb-complete";
      Gate(gate, "capture", false,
           capture_result_.step + ": " + capture_result_.status.message());
      refusal = Refusal{gate, "InvalidSnapshotState",
                        "capture from " + entry_.endpoint.ToString() + " failed (" +
                            capture_result_.step + "): " + capture_result_.status.message()};
    }
  }
  if (refusal) {
    pipeline.Abort();
    co_return refusal;
  }
  pipeline_result_ = co_await pipeline.Finish();
  const rdb::Report& report = pipeline_result_.report;

  // rdb-complete: the whole payload arrived and the RDB reached its end.
  if (!pipeline_result_.rdb_complete) {
    const std::string why = pipeline_result_.rdb_error ? pipeline_result_.rdb_error->ToString()
                                                       : pipeline_result_.status.message();
    Gate("rdb-complete", "capture", false, why);
    co_return Refusal{"rdb-complete", "InvalidSnapshotState", why};
  }
  if (!pipeline_result_.status.ok()) {
    Gate("rdb-complete", "capture", false, pipeline_result_.status.message());
    co_return Refusal{"rdb-complete", "InvalidSnapshotState", pipeline_result_.status.message()};
  }
  std::string framing = entry_.settings.capture == CaptureMode::kBgsaveFile
                            ? "BGSAVE file"
                            : capture_result_.framing + " framing";
  Gate("rdb-complete", "capture", true,
       std::to_string(pipeline_result_.payload_bytes) + " RDB bytes, " + framing +
           (capture_result_.offset ? ", +FULLRESYNC " + capture_result_.replid + " " +
                                         std::to_string(*capture_result_.offset)
                                   : ""));
  // rdb-checksum
  Gate("rdb-checksum", "capture", true,
       std::string(rdb::ChecksumVerdictName(report.checksum)) + ": CRC-64 " +
           Hex64(report.computed_crc) +
           (report.checksum == rdb::ChecksumVerdict::kDisabled
                ? " computed; the server has rdbchecksum no"
                : ""));
  // rdb-parsed
  Gate("rdb-parsed", "capture", true,
       "RDB version " + std::to_string(report.rdb_version) + " parsed from magic to EOF: " +
           std::to_string(report.TotalKeys()) + " keys, " + std::to_string(report.functions) +
           " function libraries");
  // keycount-match
  if (report.databases != expected_) {
    const std::string why = "RDB has " + KeyspaceText(report.databases) +
                            "; INFO keyspace while paused had " + KeyspaceText(expected_);
    Gate("keycount-match", "capture", false, why);
    co_return Refusal{"keycount-match", "InvalidSnapshotState", why};
  }
  Gate("keycount-match", "capture", true, KeyspaceText(expected_));

  NodeSnapshot node;
  node.node_group_id = "0001";
  node.cache_node_id = "0001";
  node.cache_cluster_id = entry_.id;
  node.source_endpoint = entry_.endpoint.ToString();
  node.cache_size = facts_.used_memory;
  node.snapshot_create_time = SnapshotTimeString(snapshot_time);
  node.file = file;
  node.compression = fleet_.storage.compression;
  node.compression_level = fleet_.storage.level;
  node.rdb_bytes = report.bytes;
  node.rdb_version = report.rdb_version;
  node.crc64 = report.computed_crc;
  node.keyspace = report.databases;
  node.repl_id = capture_result_.replid.empty() ? report.Aux("repl-id").value_or("")
                                                : capture_result_.replid;
  if (capture_result_.offset) {
    node.repl_offset = capture_result_.offset;
  } else if (auto off = report.Aux("repl-offset")) {
    node.repl_offset = std::stoull(*off);
  }
  manifest_ = initial;
  manifest_.node_snapshots.push_back(node);
  co_return std::nullopt;
}

// bgsave-file: BGSAVE, wait for it, then stream the node's own RDB file through the pipeline.
// The file must be readable from here: for agents on the node's host.
Task<std::optional<Refusal>> Operation::CaptureBgsaveFile(Pipeline& pipeline, BufferPool& pool) {
  auto fail = [this](const std::string& why) {
    Gate("rdb-complete", "capture", false, why);
    return Refusal{"rdb-complete", "InvalidSnapshotState", why};
  };
  CommandOutcome dir = co_await node_->Command(Argv("CONFIG", "GET", "dir"));
  CommandOutcome name = co_await node_->Command(Argv("CONFIG", "GET", "dbfilename"));
  if (!dir.ok() || !name.ok() || dir.reply.elements.size() != 2 ||
      name.reply.elements.size() != 2) {
    co_return fail("cannot read the node's dir and dbfilename: " + dir.Error() + name.Error());
  }
  const std::string path = dir.reply.elements[1].str + "/" + name.reply.elements[1].str;
  // Completion is judged by the save counter (rdb_saves, 7.0+; LASTSAVE has one-second steps,
  // so two saves within a second would look like none), else by LASTSAVE.
  auto field = [](const std::map<std::string, std::string>& f, const char* k) {
    auto it = f.find(k);
    return it == f.end() ? std::string() : it->second;
  };
  const auto before = co_await Persistence();
  CommandOutcome last_before = co_await node_->Command(Argv("LASTSAVE"));
  CommandOutcome bg = co_await node_->Command(Argv("BGSAVE"));
  if (!bg.ok()) co_return fail("BGSAVE refused: " + bg.Error());
  // "Background saving started" means the child has forked: the file will be the point-in-time
  // image, and a snapshot that keeps the node running lets writes go on. "scheduled" means it
  // forks later, so the pause holds until the save is seen running.
  bool forked = bg.reply.str.find("started") != std::string::npos;
  if (forked && !destroy_ && paused_) co_await Unpause();
  const double deadline = Ms() + (entry_.settings.transfer_timeout_ms > 0
                                      ? entry_.settings.transfer_timeout_ms
                                      : 24.0 * 3600 * 1000);
  for (;;) {
    const auto f = co_await Persistence();
    if (f.empty()) co_return fail("INFO persistence failed");
    const bool running = field(f, "rdb_bgsave_in_progress") == "1";
    if (running && !forked) {
      forked = true;
      if (!destroy_ && paused_) co_await Unpause();
    }
    bool finished;
    if (!field(before, "rdb_saves").empty()) {
      finished = !running && std::stoull(field(f, "rdb_saves")) > std::stoull(field(before, "rdb_saves"));
    } else {
      CommandOutcome last = co_await node_->Command(Argv("LASTSAVE"));
      finished = !running && last.ok() && last.reply.integer != last_before.reply.integer;
    }
    if (!running && field(f, "rdb_last_bgsave_status") == "err" && forked) {
      co_return fail("BGSAVE failed on the node (rdb_last_bgsave_status err)");
    }
    if (finished) break;
    if (Ms() > deadline) co_return fail("BGSAVE did not finish in time");
    co_await detail::Sleep(loop_, milliseconds(20));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) co_return fail("cannot open the node's RDB " + path + ": " + std::strerror(errno));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t total = 0;
  const double transfer_start = Ms();
  for (;;) {
    int id = pool.Acquire();
    while (id < 0) {
      co_await detail::Sleep(loop_, milliseconds(1));  // the compressor returns buffers
      id = pool.Acquire();
    }
    const ssize_t n = ::read(fd, pool.data(id), pool.size());
    if (n <= 0) {
      pool.Unref(id);
      if (n < 0) {
        const std::string why = std::string("reading ") + path + ": " + std::strerror(errno);
        ::close(fd);
        co_return fail(why);
      }
      break;
    }
    total += static_cast<uint64_t>(n);
    const bool ok = pipeline.Push(id, {pool.data(id), static_cast<size_t>(n)});
    pool.Unref(id);
    if (!ok) break;  // the validator refused: reported by the gates below
    if (options_.progress) {
      TransferProgress tp;
      tp.bytes = total;
      tp.expected = facts_.used_memory;
      tp.seconds = (Ms() - transfer_start) / 1000.0;
      options_.progress(tp);
    }
  }
  ::close(fd);
  capture_result_.payload_bytes = total;
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::Store() {
  // durable: fsync file and directory, rename into place.
  manifest_.gates = result_.gates;
  std::string evidence;
  if (Status s = writer_->Commit(manifest_, &evidence); !s.ok()) {
    Gate("durable", "store", false, s.message());
    co_return Refusal{"durable", "InvalidSnapshotState", s.message()};
  }
  Gate("durable", "store", true, evidence);
  // readback: the stored object, read back and decompressed, has the stream's CRC-64.
  if (Status s = Readback(*store_, *snapshot_name_, &evidence); !s.ok()) {
    Gate("readback", "store", false, s.message());
    // A snapshot that does not read back is not a snapshot: it goes.
    (void)store_->Delete(*snapshot_name_);
    co_return Refusal{"readback", "InvalidSnapshotState", s.message()};
  }
  Gate("readback", "store", true, evidence);
  manifest_.gates = result_.gates;
  if (Status s = store_->ReplaceManifest(manifest_); !s.ok()) {
    result_.notes.push_back("could not record the store gates in the manifest: " + s.message());
  }
  result_.snapshot = manifest_;
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::Destroy() {
  // The snapshot connection is already closed. SHUTDOWN NOSAVE: a plain SHUTDOWN would save and
  // wait for replicas. Success is the connection closing with no reply.
  pause_timer_.Stop();
  CommandOutcome r = co_await node_->Command(Argv("SHUTDOWN", "NOSAVE"));
  if (r.status.ok() && r.reply.is_error()) {
    Gate("nodes-shutdown", "destroy", false, "SHUTDOWN NOSAVE refused: " + r.reply.str);
    co_return Refusal{"nodes-shutdown", "InvalidCacheClusterState",
                      "SHUTDOWN NOSAVE refused by " + entry_.endpoint.ToString() + ": " +
                          r.reply.str};
  }
  paused_ = false;  // the pause ends with the process
  // Confirm: the port refuses connections. A connect that merely times out proves nothing (the
  // listener may still be closing), so only a refusal counts.
  const double deadline = Ms() + 10000;
  std::string last;
  for (;;) {
    last = ProbeTcp(entry_.endpoint.host, entry_.endpoint.port);
    if (last.empty() || last.find("refused") == std::string::npos) {
      if (Ms() > deadline) {
        Gate("nodes-shutdown", "destroy", false,
             "SHUTDOWN NOSAVE sent, but the port still does not refuse connections after 10 s (" +
                 (last.empty() ? std::string("it accepts them") : last) + ")");
        co_return Refusal{"nodes-shutdown", "InvalidCacheClusterState",
                          entry_.endpoint.ToString() + " still accepts connections after SHUTDOWN NOSAVE"};
      }
      co_await detail::Sleep(loop_, milliseconds(20));
      continue;
    }
    break;
  }
  Gate("nodes-shutdown", "destroy", true,
       "SHUTDOWN NOSAVE closed the connection; a new connection is refused (" + last + ")");
  co_return std::nullopt;
}

OperationResult NotFound(std::string_view id) {
  OperationResult r;
  r.fault = "CacheClusterNotFound";
  r.message = "CacheCluster " + std::string(id) + " not found.";
  r.cluster.cache_cluster_id = std::string(id);
  return r;
}

}  // namespace

OperationResult DeleteCacheCluster(const Fleet& fleet, std::string_view cache_cluster_id,
                                   const std::optional<std::string>& final_snapshot,
                                   const OperationOptions& options) {
  const CacheClusterEntry* entry = fleet.FindCacheCluster(cache_cluster_id);
  if (entry == nullptr) return NotFound(cache_cluster_id);
  Operation op(fleet, *entry, options);
  return op.Run(/*destroy=*/true, final_snapshot);
}

OperationResult CreateSnapshot(const Fleet& fleet, std::string_view cache_cluster_id,
                               const std::string& snapshot_name,
                               const OperationOptions& options) {
  const CacheClusterEntry* entry = fleet.FindCacheCluster(cache_cluster_id);
  if (entry == nullptr) return NotFound(cache_cluster_id);
  Operation op(fleet, *entry, options);
  return op.Run(/*destroy=*/false, snapshot_name);
}

namespace {

Task<CacheClusterInfo> Describe(Loop& loop, const CacheClusterEntry& entry) {
  CacheClusterInfo info;
  info.cache_cluster_id = entry.id;
  info.endpoint = entry.endpoint.ToString();
  info.capture = std::string(CaptureModeName(entry.settings.capture));
  const ResolvedSecret password = ResolvePassword(entry.settings);
  if (!password.ok()) {
    info.status = "unreachable";
    info.error = password.error;
    co_return info;
  }
  NodeClient node(loop, NodeAddress{entry.endpoint.host, entry.endpoint.port},
                  NodeAuth{entry.settings.username, password.value},
                  NodeTimeouts{milliseconds(entry.settings.connect_timeout_ms),
                               milliseconds(entry.settings.command_timeout_ms)});
  if (Status s = co_await node.Connect(); !s.ok()) {
    info.status = "unreachable";
    info.error = s.message();
    co_return info;
  }
  CommandOutcome r = co_await node.Command(Argv("INFO", "all"));
  if (!r.ok()) {
    info.status = "unreachable";
    info.error = r.Error();
    co_return info;
  }
  const ServerFacts f = detail::ParseServerFacts(detail::ParseInfo(r.reply.str));
  info.status = f.rdb_bgsave_in_progress ? "snapshotting" : "available";
  info.engine = f.engine;
  info.engine_version = f.version;
  info.role = f.role;
  info.used_memory = f.used_memory;
  co_return info;
}

Task<std::vector<CacheClusterInfo>> DescribeAll(Loop& loop,
                                                std::vector<const CacheClusterEntry*> entries) {
  std::vector<Task<CacheClusterInfo>> tasks;
  for (const CacheClusterEntry* e : entries) tasks.push_back(Describe(loop, *e));
  detail::WhenAll<CacheClusterInfo> all(std::move(tasks));
  std::vector<CacheClusterInfo> infos = co_await all;
  co_return infos;
}

}  // namespace

std::vector<CacheClusterInfo> DescribeCacheClusters(const Fleet& fleet,
                                                    std::optional<std::string_view> id) {
  std::vector<const CacheClusterEntry*> entries;
  for (const CacheClusterEntry& e : fleet.cache_clusters) {
    if (!id || fleet.FindCacheCluster(*id) == &e) entries.push_back(&e);
  }
  Loop loop;
  return detail::RunToCompletion(loop, DescribeAll(loop, entries));
}

RestoreResult RestoreSnapshot(const SnapshotStore& store, std::string_view name,
                              const std::filesystem::path& target_dir) {
  RestoreResult result;
  const std::optional<Snapshot> snapshot = store.Describe(name);
  const std::optional<std::filesystem::path> dir = store.SnapshotDir(name);
  if (!snapshot || !dir || snapshot->snapshot_status != "available") {
    result.status = Status::Error("Snapshot " + std::string(name) + " not found or not available");
    return result;
  }
  std::error_code ec;
  std::filesystem::create_directories(target_dir, ec);
  for (const NodeSnapshot& node : snapshot->node_snapshots) {
    const std::filesystem::path out_dir =
        snapshot->node_snapshots.size() == 1 ? target_dir : target_dir / node.node_group_id;
    std::filesystem::create_directories(out_dir, ec);
    const std::filesystem::path out = out_dir / "dump.rdb";
    const int in_fd = ::open((*dir / node.file).c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) {
      result.status = Status::Error("cannot open " + (*dir / node.file).string() + ": " +
                                    std::strerror(errno));
      return result;
    }
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out_fd < 0) {
      result.status =
          Status::Error("cannot create " + out.string() + ": " + std::strerror(errno) +
                        (errno == EEXIST ? " (restore never overwrites a dump.rdb)" : ""));
      ::close(in_fd);
      return result;
    }
    auto decoder = StreamDecoder::Create(node.compression);
    rdb::Validator validator;
    std::vector<uint8_t> buf(1 << 20);
    std::string error;
    uint64_t written = 0;
    for (;;) {
      const ssize_t n = ::read(in_fd, buf.data(), buf.size());
      if (n < 0) {
        error = std::string("read: ") + std::strerror(errno);
        break;
      }
      if (n == 0) {
        if (Status s = decoder->Finish(); !s.ok()) error = s.message();
        break;
      }
      Status s = decoder->Decode({buf.data(), static_cast<size_t>(n)},
                                 [&](std::span<const uint8_t> out_bytes) {
                                   if (!error.empty()) return;
                                   validator.Feed(out_bytes);
                                   const uint8_t* p = out_bytes.data();
                                   size_t left = out_bytes.size();
                                   while (left > 0) {
                                     const ssize_t w = ::write(out_fd, p, left);
                                     if (w < 0) {
                                       if (errno == EINTR) continue;
                                       error = std::string("write: ") + std::strerror(errno);
                                       return;
                                     }
                                     p += w;
                                     left -= static_cast<size_t>(w);
                                     written += static_cast<uint64_t>(w);
                                   }
                                 });
      if (!s.ok()) {
        error = s.message();
        break;
      }
      if (!error.empty()) break;
    }
    ::close(in_fd);
    if (error.empty() && validator.Finish() != rdb::Progress::kDone) {
      error = validator.diagnostic().ToString();
    }
    if (error.empty() && validator.report().computed_crc != node.crc64) {
      error = "CRC-64 " + Hex64(validator.report().computed_crc) + " differs from the manifest's " +
              Hex64(node.crc64);
    }
    if (error.empty() && ::fsync(out_fd) != 0) error = std::string("fsync: ") + std::strerror(errno);
    ::close(out_fd);
    if (!error.empty()) {
      std::filesystem::remove(out, ec);
      result.status = Status::Error(node.file + ": " + error);
      return result;
    }
    result.files.push_back(out);
    result.rdb_bytes += written;
  }
  return result;
}

}  // namespace finalsnap

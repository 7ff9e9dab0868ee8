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
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>

#include "async.h"
#include "finalsnap/decoder.h"
#include "finalsnap/engine.h"
#include "finalsnap/text.h"
#include "loop.h"
#include "node_client.h"
#include "pipeline.h"
#include "repl_stream.h"
#include "tcp_probe.h"
#include "topology.h"

namespace finalsnap {
namespace {

using detail::Argv;
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

// What an operation was asked to act on.
struct Target {
  enum class Kind {
    kCacheCluster,  // a standalone node: [cache_clusters.<id>]
    kGroup,         // a whole replication group: [replication_groups.<id>]
    kMember,        // one member cache cluster of a group ("<group>-002")
  };
  Kind kind = Kind::kCacheCluster;
  std::string id;  // as the caller wrote it
  const CacheClusterEntry* cluster = nullptr;
  const ReplicationGroupEntry* group = nullptr;

  const NodeSettings& settings() const { return cluster ? cluster->settings : group->settings; }
  bool is_group_target() const { return kind == Kind::kGroup; }
  // ElastiCache's fault for a target in the wrong state.
  std::string StateFault() const {
    return kind == Kind::kGroup ? "InvalidReplicationGroupStateFault" : "InvalidCacheClusterState";
  }
  std::string Noun() const {
    return kind == Kind::kGroup ? "replication group " + group->id
                                : "cache cluster " + (cluster ? cluster->id : id);
  }
};

// What the operation does once the snapshot (if any) is proven.
enum class Finish {
  kKeep,           // create-snapshot: everything keeps running, put back as it was
  kDestroyAll,     // delete-cache-cluster, delete-replication-group
  kRetainPrimary,  // delete-replication-group --retain-primary-cluster: replicas only
  kRemoveMember,   // delete-cache-cluster on a replica of a group: that replica only
};

// One shard's part of the operation: where its RDB comes from and how far it got.
struct ShardRun {
  explicit ShardRun(Loop& loop) : pause_timer(loop) {}
  detail::GroupShard* shard = nullptr;
  detail::GroupNode* source = nullptr;  // the node the RDB is captured from
  std::vector<ConfigChange> config_changes;  // on the source, to put back
  bool paused = false;                       // writes paused on the shard's primary
  detail::Timer pause_timer;
  std::vector<std::string> pause_command;
  std::map<uint64_t, rdb::DbCounts> expected;  // INFO keyspace while paused
  std::string file;
  int fd = -1;
  PipelineResult pipeline_result;
  CaptureResult capture_result;
  ReplicationCapture* active_capture = nullptr;
  // Made by PrepareCaptures before writes are paused, so that the replication connection is
  // open and past AUTH/REPLCONF when the pause starts: inside it only PSYNC remains. Declared
  // in this order so that they are destroyed capture first, pool last.
  std::unique_ptr<BufferPool> pool;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<ReplicationCapture> capture;
  uint64_t progress_bytes = 0;
};

class Operation {
 public:
  Operation(const Fleet& fleet, Target target, const OperationOptions& options)
      : fleet_(fleet), target_(std::move(target)), options_(options) {
    if (target_.kind == Target::Kind::kCacheCluster) {
      result_.cluster.cache_cluster_id = target_.cluster->id;
      result_.cluster.endpoint = target_.cluster->endpoint.ToString();
    } else {
      result_.cluster.cache_cluster_id = target_.id;
      result_.cluster.replication_group_id = target_.group->id;
    }
    result_.cluster.capture = std::string(CaptureModeName(target_.settings().capture));
  }

  OperationResult Run(Finish finish, std::optional<std::string> snapshot) {
    finish_ = finish;
    snapshot_name_ = std::move(snapshot);
    const auto start = std::chrono::steady_clock::now();
    OperationResult r;
    {
      detail::CancelWatch watch(loop_, options_.cancel, [this](const std::string& reason) {
        if (interrupted_) return;
        interrupted_ = reason.empty() ? std::string("cancelled") : reason;
        CancelCaptures(*interrupted_);
      });
      r = detail::RunToCompletion(loop_, Main());
    }
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
            const std::string& evidence, const std::string& node = "") {
    GateVerdict v;
    v.gate = gate;
    v.phase = phase;
    v.passed = passed;
    v.evidence = evidence;
    v.node = node;
    v.at_ms = Ms() - start_ms_;
    result_.gates.push_back(v);
    if (options_.observer) {
      OperationEvent e;
      e.kind = OperationEvent::Kind::kGate;
      e.phase = phase;
      e.gate = v;
      options_.observer(e);
    }
  }
  // Announces a phase to the observer, once, as the operation enters it.
  void Enter(const std::string& phase) {
    if (!options_.observer) return;
    OperationEvent e;
    e.kind = OperationEvent::Kind::kPhase;
    e.phase = phase;
    options_.observer(e);
  }

  bool Destroys() const { return finish_ != Finish::kKeep; }
  // Whether the node is still running once the operation has succeeded.
  bool Survives(const detail::GroupNode* n) const {
    return std::find(destroy_order_.begin(), destroy_order_.end(), n) == destroy_order_.end();
  }
  bool AnyPaused() const {
    for (const auto& r : runs_) {
      if (r->paused) return true;
    }
    return false;
  }
  bool AnyConfigChanged() const {
    for (const auto& r : runs_) {
      if (!r->config_changes.empty()) return true;
    }
    return false;
  }

  // The first shard to fail stops the others: its refusal is the one reported.
  void FailCapture(const Refusal& r) {
    if (first_capture_refusal_) return;
    first_capture_refusal_ = r;
    CancelCaptures("stopped: the capture of another shard failed");
  }
  void CancelCaptures(const std::string& why) {
    for (auto& r : runs_) {
      if (r->active_capture != nullptr) r->active_capture->Cancel(why);
    }
  }
  // A refusal for a cancelled operation (OperationOptions::cancel), once it was cancelled.
  std::optional<Refusal> Interrupted() const {
    if (!interrupted_) return std::nullopt;
    return Refusal("", "Interrupted", "the operation was cancelled (" + *interrupted_ +
                                          ") before it finished; nothing was shut down");
  }

  Task<OperationResult> Main();
  Task<std::optional<Refusal>> Preflight();
  std::optional<Refusal> CheckFits();
  std::optional<Refusal> BeginSnapshot();
  Task<std::optional<Refusal>> Quiesce();
  Task<std::optional<Refusal>> PauseShard(ShardRun& run);
  Task<std::optional<Refusal>> Capture();
  Task<std::optional<Refusal>> CaptureShard(ShardRun& run);
  Task<std::optional<Refusal>> PrepareCaptures();
  Task<std::optional<Refusal>> PrepareShard(ShardRun& run);
  Task<std::optional<Refusal>> CaptureBgsaveFile(ShardRun& run, Pipeline& pipeline,
                                                 BufferPool& pool);
  Task<std::optional<Refusal>> Store();
  Task<std::optional<Refusal>> Destroy();
  Task<std::optional<Refusal>> ShutDown(detail::GroupNode& node);
  Task<bool> ForgetInSentinels();
  Task<bool> Unpause(ShardRun& run);
  Task<int> RestoreConfig(ShardRun& run);
  Task<bool> PutBack(bool everything);
  // INFO persistence of `node` as a field map; empty if the command failed.
  Task<std::map<std::string, std::string>> Persistence(NodeClient& node) {
    CommandOutcome p = co_await node.Command(Argv("INFO", "persistence"));
    std::map<std::string, std::string> fields;
    if (p.ok()) fields = detail::ParseInfo(p.reply.str);
    co_return fields;
  }
  void Progress();
  void Describe(const std::string& status);

  Loop loop_;
  const Fleet& fleet_;
  Target target_;
  const OperationOptions& options_;
  OperationResult result_;
  Finish finish_ = Finish::kKeep;
  std::optional<std::string> snapshot_name_;
  double start_ms_ = 0;
  double transfer_start_ms_ = 0;

  detail::Topology topology_;
  detail::GroupNode* member_ = nullptr;  // Kind::kMember: the member asked for
  std::vector<std::unique_ptr<ShardRun>> runs_;
  // The nodes a destroy shuts down, replicas before primaries.
  std::vector<detail::GroupNode*> destroy_order_;
  std::optional<SnapshotStore> store_;
  std::unique_ptr<SnapshotWriter> writer_;
  Snapshot manifest_;
  // The cancel token's reason, once cancelled while the operation runs: the captures are
  // cancelled and the operation refuses at the next step, so the nodes are unpaused and put
  // back before the caller goes on (a CLI then exits).
  std::optional<std::string> interrupted_;
  std::optional<Refusal> first_capture_refusal_;
};

Task<OperationResult> Operation::Main() {
  start_ms_ = Ms();
  Enter("preflight");
  std::optional<Refusal> refusal = co_await Preflight();
  if (!refusal && options_.dry_run) {
    result_.ok = true;
    for (const auto& run : runs_) {
      result_.plan.push_back("pause writes on " + run->shard->primary->address.ToString() +
                             " (CLIENT PAUSE " +
                             std::to_string(target_.settings().pause_timeout_ms) +
                             " WRITE, renewed)");
    }
    if (snapshot_name_) {
      for (const auto& run : runs_) {
        result_.plan.push_back(
            "stream the RDB of " + run->source->address.ToString() + " (" +
            std::string(CaptureModeName(target_.settings().capture)) +
            ") through the validator into snapshot " + *snapshot_name_ + " as " +
            run->shard->node_group_id + FileExtension(fleet_.storage.compression));
      }
      result_.plan.push_back("fsync, read back and check the snapshot");
    }
    for (const detail::GroupNode* n : destroy_order_) {
      result_.plan.push_back("SHUTDOWN NOSAVE " + n->address.ToString() + " (" +
                             (n->primary ? "primary" : "replica") +
                             ") and confirm it no longer accepts connections");
    }
    if (Destroys() && !topology_.sentinels.empty()) {
      result_.plan.push_back(std::string(finish_ == Finish::kDestroyAll ? "SENTINEL REMOVE "
                                                                        : "SENTINEL RESET ") +
                             target_.group->master_name + " on " +
                             std::to_string(topology_.sentinels.size()) + " sentinel(s)");
    }
    if (finish_ != Finish::kDestroyAll) {
      result_.plan.push_back(finish_ == Finish::kKeep
                                 ? "unpause once the server has forked; put its config back"
                                 : "unpause the nodes that stay and put their config back");
    }
    Describe("available");
    co_return result_;
  }
  if (!refusal) refusal = Interrupted();
  if (!refusal && snapshot_name_) refusal = co_await PrepareCaptures();
  if (!refusal) refusal = Interrupted();
  if (!refusal) {
    Enter("quiesce");
    refusal = co_await Quiesce();
  }
  if (!refusal) refusal = Interrupted();
  if (!refusal && snapshot_name_) {
    Enter("capture");
    refusal = co_await Capture();
  }
  if (refusal && interrupted_) refusal = Interrupted();  // the capture failed because of it
  if (!refusal) refusal = Interrupted();
  if (!refusal && snapshot_name_) {
    Enter("store");
    refusal = co_await Store();
  }
  if (!refusal) refusal = Interrupted();
  if (!refusal && Destroys()) {
    Enter("destroy");
    refusal = co_await Destroy();
  }

  if (refusal) {
    // Refuse: writes resume, the nodes are left as they were, no partial snapshot remains.
    result_.ok = false;
    result_.fault = refusal->fault;
    result_.failed_gate = refusal->gate;
    result_.message = refusal->gate.empty()
                          ? refusal->message
                          : "gate " + refusal->gate + " refused: " + refusal->message;
    if (writer_) writer_->Abort();
    co_await PutBack(/*everything=*/true);
    Describe("available");
    co_return result_;
  }
  co_await PutBack(/*everything=*/false);
  Describe(finish_ == Finish::kKeep ? "available" : "deleted");
  result_.ok = true;
  co_return result_;
}

// Unpauses and puts back the config of every node that is still running (everything: after a
// refusal; else the survivors of a destroy). A command that timed out closed its connection: a
// new one is opened to put the node back.
Task<bool> Operation::PutBack(bool everything) {
  for (auto& run : runs_) {
    const bool primary_left = everything || Survives(run->shard->primary);
    const bool source_left = everything || Survives(run->source);
    std::vector<detail::GroupNode*> nodes;
    nodes.push_back(run->shard->primary);
    if (run->source != run->shard->primary) nodes.push_back(run->source);
    for (detail::GroupNode* n : nodes) {
      const bool needed = n == run->shard->primary ? primary_left && run->paused
                                                   : source_left && !run->config_changes.empty();
      if (needed && !n->client->connected()) {
        Status again = co_await n->client->Connect();
        if (!again.ok()) {
          result_.notes.push_back("could not reconnect to " + n->address.ToString() + ": " +
                                  again.message());
        }
      }
    }
    if (primary_left && run->paused) {
      if (run->shard->primary->client->connected()) {
        co_await Unpause(*run);
      } else {
        result_.notes.push_back("could not reach " + run->shard->primary->address.ToString() +
                                " to unpause it; the pause expires on its own within " +
                                std::to_string(target_.settings().pause_timeout_ms) + " ms");
      }
    }
    if (source_left) co_await RestoreConfig(*run);
  }
  co_return true;
}

// The target's fields for the result: the cache cluster, and for groups the live topology.
void Operation::Describe(const std::string& status) {
  if (!topology_.shards.empty()) {
    const detail::GroupNode* n = member_ != nullptr ? member_ : topology_.shards[0].primary;
    result_.cluster.endpoint = n->address.ToString();
    result_.cluster.engine = n->facts.engine;
    result_.cluster.engine_version = n->facts.version;
    result_.cluster.role = n->facts.role;
    result_.cluster.used_memory = n->facts.used_memory;
  }
  result_.cluster.status = status;
  if (target_.kind == Target::Kind::kCacheCluster) return;
  ReplicationGroupInfo g;
  g.replication_group_id = target_.group->id;
  g.status = status;
  g.cluster_enabled = topology_.cluster_enabled;
  g.discovered_via = topology_.discovered_via;
  for (const detail::GroupShard& s : topology_.shards) {
    NodeGroupInfo ng;
    ng.node_group_id = s.node_group_id;
    ng.status = status;
    ng.slot_ranges = s.slots;
    ng.slots = detail::SlotRangesText(s.slots);
    for (const detail::GroupNode* n : s.members) {
      GroupMember m;
      m.cache_cluster_id = n->cache_cluster_id;
      m.endpoint = n->address.ToString();
      m.current_role = n->primary ? "primary" : "replica";
      m.status = status == "deleted" && Survives(n) ? "available" : status;
      m.repl_offset = n->primary ? n->facts.master_repl_offset : n->applied_offset;
      m.used_memory = n->facts.used_memory;
      m.link = n->primary ? "" : (n->link_up ? "up" : "down");
      ng.members.push_back(std::move(m));
    }
    g.node_groups.push_back(std::move(ng));
    if (g.engine.empty()) {
      g.engine = s.primary->facts.engine;
      g.engine_version = s.primary->facts.version;
    }
  }
  if (finish_ == Finish::kRetainPrimary || finish_ == Finish::kRemoveMember) {
    if (status == "deleted") g.status = "available";  // the group itself stays
  }
  result_.group = std::move(g);
}

Task<std::optional<Refusal>> Operation::Preflight() {
  // target-resolved: every node (and sentinel) answers, with AUTH if configured.
  const NodeSettings& settings = target_.settings();
  const ResolvedSecret password = ResolvePassword(settings);
  if (!password.ok()) {
    Gate("target-resolved", "preflight", false, password.error);
    co_return Refusal{"target-resolved", "InvalidParameterValue", password.error};
  }
  detail::DiscoveryRequest request;
  if (target_.kind == Target::Kind::kCacheCluster) {
    request.endpoints.push_back(target_.cluster->endpoint);
  } else {
    request.group_id = target_.group->id;
    request.endpoints = target_.group->endpoints;
    request.sentinels = target_.group->sentinels;
    request.master_name = target_.group->master_name;
  }
  request.auth = NodeAuth{settings.username, password.value};
  request.timeouts = NodeTimeouts{milliseconds(settings.connect_timeout_ms),
                                  milliseconds(settings.command_timeout_ms)};
  topology_ = co_await detail::Discover(loop_, request);
  if (!topology_.unreachable.empty()) {
    Gate("target-resolved", "preflight", false, topology_.unreachable);
    co_return Refusal{"target-resolved", target_.StateFault(),
                      target_.Noun() + " is not reachable: " + topology_.unreachable};
  }
  {
    std::string evidence;
    for (const auto& n : topology_.nodes) {
      if (!evidence.empty()) evidence += "; ";
      evidence += n->facts.engine + " " + n->facts.version + " at " + n->address.ToString() +
                  " answered";
    }
    if (request.auth.password) {
      evidence += " (AUTH" +
                  (request.auth.username.empty() ? "" : " as " + request.auth.username) + ")";
    }
    if (!topology_.sentinels.empty()) {
      evidence += "; discovered through " + std::to_string(topology_.sentinels.size()) +
                  " sentinel(s) for " + target_.group->master_name;
    }
    if (topology_.nodes.size() == 1) {
      evidence += "; used_memory " + std::to_string(topology_.nodes[0]->facts.used_memory);
    }
    Gate("target-resolved", "preflight", true, evidence);
  }

  // topology-consistent: roles agree, and the operation fits what was found.
  if (!topology_.inconsistent.empty()) {
    Gate("topology-consistent", "preflight", false, topology_.inconsistent);
    co_return Refusal{"topology-consistent", target_.StateFault(), topology_.inconsistent};
  }
  if (std::optional<Refusal> r = CheckFits()) co_return r;

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
  uint64_t used = 0;
  for (const auto& run : runs_) used += run->source->facts.used_memory;
  const uint64_t estimate = fleet_.storage.compression == Compression::kNone ? used : used / 2;
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

// The second half of topology-consistent: the operation fits the topology found. Chooses each
// shard's source and the nodes a destroy shuts down.
std::optional<Refusal> Operation::CheckFits() {
  auto refuse = [this](const std::string& fault, const std::string& why) {
    Gate("topology-consistent", "preflight", false, why);
    return Refusal("topology-consistent", fault, why);
  };
  if (target_.kind == Target::Kind::kMember) {
    member_ = topology_.FindMember(target_.id);
    if (member_ == nullptr) {
      std::string ids;
      for (const auto& n : topology_.nodes) ids += (ids.empty() ? "" : ", ") + n->cache_cluster_id;
      const std::string why = "replication group " + target_.group->id + " has no member " +
                              target_.id + " (members: " + ids + ")";
      Gate("topology-consistent", "preflight", false, why);
      return Refusal("topology-consistent", "CacheClusterNotFound",
                     "CacheCluster " + target_.id + " not found.");
    }
    result_.cluster.cache_cluster_id = member_->cache_cluster_id;
    if (Destroys()) {
      const detail::GroupShard* shard = topology_.ShardOf(member_);
      if (topology_.cluster_enabled) {
        return refuse("InvalidCacheClusterState",
                      member_->cache_cluster_id + " is a member of a Redis Cluster replication "
                      "group; delete-replication-group removes the group");
      }
      if (member_->primary) {
        return refuse("InvalidCacheClusterState",
                      member_->cache_cluster_id + " is the primary of replication group " +
                          target_.group->id + "; delete-replication-group removes the group");
      }
      if (shard->replicas.size() <= 1) {
        return refuse("InvalidCacheClusterState",
                      member_->cache_cluster_id + " is the last replica of replication group " +
                          target_.group->id);
      }
    }
  }
  if (finish_ == Finish::kRetainPrimary && topology_.shards.size() > 1) {
    return refuse("InvalidParameterCombination",
                  "RetainPrimaryCluster applies to a group with one shard; " + target_.group->id +
                      " has " + std::to_string(topology_.shards.size()));
  }
  for (detail::GroupShard& shard : topology_.shards) {
    auto run = std::make_unique<ShardRun>(loop_);
    run->shard = &shard;
    run->source = shard.primary;
    if (member_ != nullptr) {
      if (topology_.ShardOf(member_) != &shard) continue;
      // A member's own snapshot comes from that member; removing a replica snapshots the group.
      if (finish_ == Finish::kKeep) run->source = member_;
    } else if (options_.snapshot_from_replica && snapshot_name_) {
      if (shard.replicas.empty()) {
        return refuse(target_.StateFault(), "shard " + shard.node_group_id +
                                                " has no replica to take the snapshot from");
      }
      run->source = shard.replicas.front();
    }
    runs_.push_back(std::move(run));
  }
  switch (finish_) {
    case Finish::kKeep:
      break;
    case Finish::kRemoveMember:
      destroy_order_.push_back(member_);
      break;
    case Finish::kDestroyAll:
    case Finish::kRetainPrimary:
      for (detail::GroupShard& s : topology_.shards) {
        for (detail::GroupNode* r : s.replicas) destroy_order_.push_back(r);
      }
      if (finish_ == Finish::kDestroyAll) {
        for (detail::GroupShard& s : topology_.shards) destroy_order_.push_back(s.primary);
      }
      break;
  }
  std::string evidence = topology_.topology_evidence;
  if (member_ != nullptr) {
    evidence += "; " + member_->cache_cluster_id + " is " + member_->address.ToString() + " (" +
                (member_->primary ? "primary" : "replica") + ")";
  }
  if (options_.snapshot_from_replica && snapshot_name_ && member_ == nullptr) {
    evidence += "; snapshots from replicas";
    for (const auto& run : runs_) evidence += " " + run->source->address.ToString();
  }
  Gate("topology-consistent", "preflight", true, evidence);
  return std::nullopt;
}

// Creates the partial snapshot directory and one file per shard, claiming the name; done in
// preflight, before writes are paused, so its fsyncs never lengthen the stall.
std::optional<Refusal> Operation::BeginSnapshot() {
  Snapshot initial;
  initial.snapshot_name = *snapshot_name_;
  if (target_.kind == Target::Kind::kCacheCluster) {
    initial.cache_cluster_id = target_.cluster->id;
  } else {
    initial.replication_group_id = target_.group->id;
    if (target_.kind == Target::Kind::kMember && finish_ == Finish::kKeep) {
      initial.cache_cluster_id = member_->cache_cluster_id;
    }
  }
  initial.engine = topology_.shards[0].primary->facts.engine;
  initial.engine_version = topology_.shards[0].primary->facts.version;
  initial.num_node_groups = static_cast<int>(runs_.size());
  switch (finish_) {
    case Finish::kKeep:
      break;
    case Finish::kDestroyAll:
    case Finish::kRetainPrimary:
      initial.final_snapshot_of =
          target_.kind == Target::Kind::kGroup ? "delete-replication-group" : "delete-cache-cluster";
      break;
    case Finish::kRemoveMember:
      initial.final_snapshot_of = "delete-cache-cluster";
      break;
  }
  manifest_ = initial;
  auto begun = store_->Begin(initial);
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
  for (auto& run : runs_) {
    run->file = run->shard->node_group_id + FileExtension(fleet_.storage.compression);
    auto created = writer_->CreateFile(run->file);
    if (auto* error = std::get_if<std::string>(&created)) {
      Gate("storage-ready", "preflight", false, *error);
      return Refusal("storage-ready", "InvalidSnapshotState", *error);
    }
    run->fd = std::get<int>(created);
  }
  return std::nullopt;
}

Task<std::optional<Refusal>> Operation::Quiesce() {
  // The transfer starts at once, not after the diskless delay, and the server skips LZF: the
  // stream is recompressed here anyway, and LZF in the forked child is the slowest stage of the
  // whole transfer. Both are put back afterwards (for nodes that keep running) or on any refusal.
  if (snapshot_name_ && target_.settings().capture == CaptureMode::kSync) {
    for (auto& run : runs_) {
      NodeClient& node = *run->source->client;
      std::vector<std::pair<std::string, std::string>> wanted;
      wanted.emplace_back("repl-diskless-sync-delay", "0");
      wanted.emplace_back("rdbcompression", "no");
      for (const auto& [name, value] : wanted) {
        CommandOutcome get = co_await node.Command(Argv("CONFIG", "GET", name));
        if (!get.ok() || get.reply.elements.size() != 2) continue;  // renamed CONFIG: leave it
        const std::string original = get.reply.elements[1].str;
        if (original == value) continue;
        CommandOutcome set = co_await node.Command(Argv("CONFIG", "SET", name, value));
        if (set.ok()) run->config_changes.push_back({name, original, value});
      }
    }
  }
  // writes-paused on every primary before any capture starts, so that all shards are cut at
  // the same moment. The pauses are sent together; replicas are never paused (a paused replica
  // stops applying the stream).
  std::vector<Task<std::optional<Refusal>>> pauses;
  for (auto& run : runs_) pauses.push_back(PauseShard(*run));
  detail::WhenAll<std::optional<Refusal>> all(std::move(pauses));
  std::vector<std::optional<Refusal>> outcomes = co_await all;
  for (std::optional<Refusal>& r : outcomes) {
    if (r) co_return r;
  }
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::PauseShard(ShardRun& run) {
  // CLIENT PAUSE WRITE (6.2+) or plain CLIENT PAUSE, renewed well before it expires; if this
  // process dies the pause lapses by itself.
  detail::GroupNode& primary = *run.shard->primary;
  const std::string where = primary.address.ToString();
  const int timeout_ms = target_.settings().pause_timeout_ms;
  const bool write_mode = primary.facts.AtLeast(6, 2);
  run.pause_command = Argv("CLIENT", "PAUSE", std::to_string(timeout_ms));
  if (write_mode) run.pause_command.push_back("WRITE");
  CommandOutcome paused = co_await primary.client->Command(run.pause_command);
  if (!paused.ok()) {
    Gate("writes-paused", "quiesce", false, "CLIENT PAUSE failed: " + paused.Error(), where);
    co_return Refusal{"writes-paused", target_.StateFault(),
                      "CLIENT PAUSE on " + where + " failed: " + paused.Error()};
  }
  run.paused = true;
  const int period = std::max(timeout_ms / 3, 50);
  NodeClient* client = primary.client.get();
  const std::vector<std::string> renew = run.pause_command;
  run.pause_timer.Repeat(milliseconds(period), [client, renew] {
    if (client->connected()) client->Send(renew, client->timeouts().command, [](CommandOutcome) {});
  });
  CommandOutcome keyspace = co_await primary.client->Command(Argv("INFO", "all"));
  if (!keyspace.ok()) {
    Gate("writes-paused", "quiesce", false, "INFO failed: " + keyspace.Error(), where);
    co_return Refusal{"writes-paused", target_.StateFault(), "INFO on " + where + " failed: " +
                                                                 keyspace.Error()};
  }
  const auto info = detail::ParseInfo(keyspace.reply.str);
  run.expected = detail::ParseKeyspace(info);
  std::string evidence = "CLIENT PAUSE " + std::to_string(timeout_ms) +
                         (write_mode ? " WRITE" : " (all clients; server before 6.2)") +
                         " held, renewed every " + std::to_string(period) +
                         " ms; keyspace while paused: " + KeyspaceText(run.expected);
  if (run.source != run.shard->primary) {
    // A replica is a faithful source once it has applied everything the paused primary had:
    // same replication id, applied offset at least the primary's (REDIS-FACTS §2; "at least",
    // because the primary's PINGs to its replicas move the offset during the pause).
    auto field = [&](const std::string& k) {
      auto it = info.find(k);
      return it == info.end() ? std::string() : it->second;
    };
    const std::string replid = field("master_replid");
    const uint64_t target_offset = std::stoull("0" + field("master_repl_offset"));
    const double deadline = Ms() + target_.settings().command_timeout_ms;
    std::string last;
    for (;;) {
      CommandOutcome r = co_await run.source->client->Command(Argv("INFO", "replication"));
      if (r.ok()) {
        const auto ri = detail::ParseInfo(r.reply.str);
        auto get = [&](const char* k) {
          auto it = ri.find(k);
          return it == ri.end() ? std::string() : it->second;
        };
        const uint64_t applied = std::stoull("0" + get("slave_repl_offset"));
        last = "replid " + get("master_replid") + ", applied offset " + std::to_string(applied);
        if (get("master_replid") == replid && get("master_link_status") == "up" &&
            applied >= target_offset) {
          evidence += "; replica " + run.source->address.ToString() + " caught up (" + last +
                      " >= primary's " + std::to_string(target_offset) + ")";
          break;
        }
      } else {
        last = r.Error();
      }
      if (Ms() > deadline) {
        const std::string why = "replica " + run.source->address.ToString() +
                                " did not catch up with the paused primary (offset " +
                                std::to_string(target_offset) + ", replid " + replid +
                                ") in time: " + last;
        Gate("writes-paused", "quiesce", false, why, where);
        co_return Refusal{"writes-paused", target_.StateFault(), why};
      }
      co_await detail::Sleep(loop_, milliseconds(10));
    }
  }
  Gate("writes-paused", "quiesce", true, evidence, where);
  co_return std::nullopt;
}

Task<bool> Operation::Unpause(ShardRun& run) {
  run.pause_timer.Stop();
  if (!run.paused) co_return true;
  run.paused = false;
  detail::GroupNode& primary = *run.shard->primary;
  const std::string within = std::to_string(target_.settings().pause_timeout_ms) + " ms";
  if (!primary.facts.AtLeast(6, 2)) {
    result_.notes.push_back("servers before 6.2 have no CLIENT UNPAUSE: writes on " +
                            primary.address.ToString() + " resume when the pause expires, within " +
                            within);
    co_return true;
  }
  CommandOutcome r = co_await primary.client->Command(Argv("CLIENT", "UNPAUSE"));
  if (!r.ok()) {
    result_.notes.push_back("CLIENT UNPAUSE on " + primary.address.ToString() + " failed (" +
                            r.Error() + "); the pause expires on its own within " + within);
  }
  co_return r.ok();
}

Task<int> Operation::RestoreConfig(ShardRun& run) {
  int failed = 0;
  NodeClient& node = *run.source->client;
  // A slow or briefly unreachable node gets a few tries over a few seconds, each on a fresh
  // connection with a longer timeout: leaving the node changed is the worse outcome.
  const milliseconds patient = std::max(node.timeouts().command, milliseconds(5000));
  const std::string where = runs_.size() > 1 || run.source != run.shard->primary
                                ? " on " + run.source->address.ToString()
                                : "";
  for (const ConfigChange& c : run.config_changes) {
    CommandOutcome r;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (!node.connected()) {
        if (Status s = co_await node.Connect(); !s.ok()) {
          r.status = s;
          continue;
        }
      }
      r = co_await node.Command(Argv("CONFIG", "SET", c.name, c.original),
                                attempt == 0 ? node.timeouts().command : patient);
      if (r.ok()) break;
    }
    if (r.ok()) {
      result_.notes.push_back("set " + c.name + where + " to " + c.applied +
                              " for the transfer and put it back to " + c.original);
    } else {
      ++failed;
      result_.notes.push_back("could not put " + c.name + where + " back to " + c.original +
                              ": " + r.Error());
    }
  }
  run.config_changes.clear();
  co_return failed;
}

void Operation::Progress() {
  if (!options_.observer) return;
  OperationEvent e;
  e.kind = OperationEvent::Kind::kProgress;
  e.phase = "capture";
  for (const auto& run : runs_) {
    e.progress.bytes += run->progress_bytes;
    e.progress.expected += run->source->facts.used_memory;
  }
  e.progress.seconds = (Ms() - transfer_start_ms_) / 1000.0;
  options_.observer(e);
}

Task<std::optional<Refusal>> Operation::Capture() {
  // Every shard at once; the first to fail stops the others.
  transfer_start_ms_ = Ms();
  std::vector<Task<std::optional<Refusal>>> captures;
  for (auto& run : runs_) captures.push_back(CaptureShard(*run));
  detail::WhenAll<std::optional<Refusal>> all(std::move(captures));
  std::vector<std::optional<Refusal>> outcomes = co_await all;
  // The shard that failed first is the one to report: it cancelled the others.
  if (first_capture_refusal_) co_return first_capture_refusal_;
  for (std::optional<Refusal>& r : outcomes) {
    if (r) co_return r;
  }
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::PrepareCaptures() {
  std::vector<Task<std::optional<Refusal>>> prepares;
  for (auto& run : runs_) prepares.push_back(PrepareShard(*run));
  detail::WhenAll<std::optional<Refusal>> all(std::move(prepares));
  std::vector<std::optional<Refusal>> outcomes = co_await all;
  for (std::optional<Refusal>& r : outcomes) {
    if (r) co_return r;
  }
  co_return std::nullopt;
}

// Before the pause: the pipeline (with its file read back while it is written) and, for a sync
// capture, the replication connection through AUTH and REPLCONF. A node that refuses the
// handshake is refused here, before its writes were ever paused.
Task<std::optional<Refusal>> Operation::PrepareShard(ShardRun& run) {
  detail::GroupNode& source = *run.source;
  run.pool = std::make_unique<BufferPool>(kPoolBuffers, kBufferSize);
  run.pipeline = std::make_unique<Pipeline>(
      loop_, *run.pool, detail::CompressionSettings{fleet_.storage.compression, fleet_.storage.level},
      run.fd, detail::ReadbackSettings{writer_->dir() / run.file});
  if (target_.settings().capture == CaptureMode::kBgsaveFile) co_return std::nullopt;
  CaptureOptions copts;
  copts.address = source.address;
  copts.auth = source.client->auth();
  copts.timeouts = source.client->timeouts();
  copts.rdb_only = source.facts.AtLeast(6, 2);
  if (source.facts.engine == "valkey" && source.facts.major >= 9) {
    copts.announce_version = source.facts.version;
  }
  copts.transfer_timeout = milliseconds(target_.settings().transfer_timeout_ms);
  run.capture = std::make_unique<ReplicationCapture>(loop_, *run.pool, *run.pipeline, copts);
  run.active_capture = run.capture.get();
  CaptureResult prepared = co_await run.capture->Prepare();
  run.active_capture = nullptr;
  if (prepared.status.ok()) co_return std::nullopt;
  const std::string where = source.address.ToString();
  Gate("rdb-complete", "capture", false, prepared.step + ": " + prepared.status.message(), where);
  co_return Refusal{"rdb-complete", "InvalidSnapshotState",
                    "capture from " + where + " failed (" + prepared.step +
                        "): " + prepared.status.message()};
}

Task<std::optional<Refusal>> Operation::CaptureShard(ShardRun& run) {
  detail::GroupNode& source = *run.source;
  const std::string where = source.address.ToString();
  BufferPool& pool = *run.pool;
  Pipeline& pipeline = *run.pipeline;
  const auto snapshot_time = std::chrono::system_clock::now();
  std::optional<Refusal> refusal;

  if (target_.settings().capture == CaptureMode::kBgsaveFile) {
    refusal = co_await CaptureBgsaveFile(run, pipeline, pool);
  } else {
    ReplicationCapture& capture = *run.capture;
    run.active_capture = &capture;
    ShardRun* r = &run;
    capture.OnForked([this, r] {
      // From the fork on the RDB is a point-in-time image: a snapshot that keeps the shard's
      // primary running lets writes go on now; a destroy holds the pause to the end.
      if (Destroys() || !r->paused) return;
      r->pause_timer.Stop();
      detail::GroupNode& primary = *r->shard->primary;
      if (primary.facts.AtLeast(6, 2)) {
        // Counted as unpaused only once the server said so: if the connection is lost, the
        // end of the operation reconnects and unpauses again.
        primary.client->Send({"CLIENT", "UNPAUSE"}, primary.client->timeouts().command,
                             [r](CommandOutcome o) {
                               if (o.ok()) r->paused = false;
                             });
      } else {
        r->paused = false;  // nothing to send: the pause lapses by itself
      }
    });
    capture.OnProgress([this, r](uint64_t bytes) {
      r->progress_bytes = bytes;
      Progress();
    });
    run.capture_result = co_await capture.Run();
    run.active_capture = nullptr;
    if (!run.capture_result.status.ok()) {
      const rdb::Validator& v = pipeline.validator();
      const bool rdb_fault = v.failed();
      const std::string gate =
          rdb_fault ? (v.diagnostic().code == rdb::Errc::kChecksumMismatch ? "rdb-checksum"
                                                                            : "rdb-parsed")
                    : "rdb-complete";
      Gate(gate, "capture", false,
           run.capture_result.step + ": " + run.capture_result.status.message(), where);
      refusal = Refusal{gate, "InvalidSnapshotState",
                        "capture from " + where + " failed (" + run.capture_result.step +
                            "): " + run.capture_result.status.message()};
    }
  }
  if (refusal) {
    pipeline.Abort();
    FailCapture(*refusal);
    co_return refusal;
  }
  run.pipeline_result = co_await pipeline.Finish();
  // The transfer's memory (pool, codec contexts, readback buffers) goes now, not at the end.
  run.capture.reset();
  run.pipeline.reset();
  run.pool.reset();
  const PipelineResult& pr = run.pipeline_result;
  const rdb::Report& report = pr.report;
  auto refuse = [&](const std::string& gate, const std::string& why) {
    Gate(gate, "capture", false, why, where);
    Refusal r(gate, "InvalidSnapshotState", why);
    FailCapture(r);
    return r;
  };

  // rdb-complete: the whole payload arrived and the RDB reached its end.
  if (!pr.rdb_complete) {
    co_return refuse("rdb-complete",
                     pr.rdb_error ? pr.rdb_error->ToString() : pr.status.message());
  }
  if (!pr.status.ok()) co_return refuse("rdb-complete", pr.status.message());
  const std::string framing = target_.settings().capture == CaptureMode::kBgsaveFile
                                  ? "BGSAVE file"
                                  : run.capture_result.framing + " framing";
  Gate("rdb-complete", "capture", true,
       std::to_string(pr.payload_bytes) + " RDB bytes, " + framing +
           (run.capture_result.offset ? ", +FULLRESYNC " + run.capture_result.replid + " " +
                                            std::to_string(*run.capture_result.offset)
                                      : ""),
       where);
  Gate("rdb-checksum", "capture", true,
       std::string(rdb::ChecksumVerdictName(report.checksum)) + ": CRC-64 " +
           Hex64(report.computed_crc) +
           (report.checksum == rdb::ChecksumVerdict::kDisabled
                ? " computed; the server has rdbchecksum no"
                : ""),
       where);
  Gate("rdb-parsed", "capture", true,
       "RDB version " + std::to_string(report.rdb_version) + " parsed from magic to EOF: " +
           std::to_string(report.TotalKeys()) + " keys, " + std::to_string(report.functions) +
           " function libraries",
       where);
  // keycount-match: the RDB has what the paused primary had.
  if (report.databases != run.expected) {
    co_return refuse("keycount-match", "RDB has " + KeyspaceText(report.databases) +
                                           "; INFO keyspace on the paused primary had " +
                                           KeyspaceText(run.expected));
  }
  Gate("keycount-match", "capture", true, KeyspaceText(run.expected), where);

  NodeSnapshot node;
  node.node_group_id = run.shard->node_group_id;
  node.cache_node_id = "0001";
  node.cache_cluster_id = target_.kind == Target::Kind::kCacheCluster ? target_.cluster->id
                                                                     : source.cache_cluster_id;
  node.source_endpoint = where;
  node.cache_size = source.facts.used_memory;
  node.snapshot_create_time = SnapshotTimeString(snapshot_time);
  node.slots = run.shard->slots;
  node.file = run.file;
  node.compression = fleet_.storage.compression;
  node.compression_level = fleet_.storage.level;
  node.rdb_bytes = report.bytes;
  node.rdb_version = report.rdb_version;
  node.crc64 = report.computed_crc;
  node.keyspace = report.databases;
  node.repl_id = run.capture_result.replid.empty() ? report.Aux("repl-id").value_or("")
                                                   : run.capture_result.replid;
  if (run.capture_result.offset) {
    node.repl_offset = run.capture_result.offset;
  } else if (auto off = report.Aux("repl-offset")) {
    node.repl_offset = std::stoull(*off);
  }
  // Shards finish in any order; the manifest lists them by NodeGroupId.
  auto at = std::find_if(manifest_.node_snapshots.begin(), manifest_.node_snapshots.end(),
                         [&](const NodeSnapshot& n) { return n.node_group_id > node.node_group_id; });
  manifest_.node_snapshots.insert(at, node);
  co_return std::nullopt;
}

// bgsave-file: BGSAVE, wait for it, then stream the node's own RDB file through the pipeline.
// The file must be readable from here: for agents on the node's host.
Task<std::optional<Refusal>> Operation::CaptureBgsaveFile(ShardRun& run, Pipeline& pipeline,
                                                          BufferPool& pool) {
  NodeClient& node = *run.source->client;
  const std::string where = run.source->address.ToString();
  auto fail = [this, &where](const std::string& why) {
    Gate("rdb-complete", "capture", false, why, where);
    return Refusal{"rdb-complete", "InvalidSnapshotState", why};
  };
  CommandOutcome dir = co_await node.Command(Argv("CONFIG", "GET", "dir"));
  CommandOutcome name = co_await node.Command(Argv("CONFIG", "GET", "dbfilename"));
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
  const auto before = co_await Persistence(node);
  CommandOutcome last_before = co_await node.Command(Argv("LASTSAVE"));
  CommandOutcome bg = co_await node.Command(Argv("BGSAVE"));
  if (!bg.ok()) co_return fail("BGSAVE refused: " + bg.Error());
  // "Background saving started" means the child has forked: the file will be the point-in-time
  // image, and a snapshot that keeps the node running lets writes go on. "scheduled" means it
  // forks later, so the pause holds until the save is seen running.
  bool forked = bg.reply.str.find("started") != std::string::npos;
  if (forked && !Destroys() && run.paused) co_await Unpause(run);
  const double deadline = Ms() + (target_.settings().transfer_timeout_ms > 0
                                      ? target_.settings().transfer_timeout_ms
                                      : 24.0 * 3600 * 1000);
  for (;;) {
    const auto f = co_await Persistence(node);
    if (f.empty()) co_return fail("INFO persistence failed");
    const bool running = field(f, "rdb_bgsave_in_progress") == "1";
    if (running && !forked) {
      forked = true;
      if (!Destroys() && run.paused) co_await Unpause(run);
    }
    bool finished;
    if (!field(before, "rdb_saves").empty()) {
      finished = !running &&
                 std::stoull(field(f, "rdb_saves")) > std::stoull(field(before, "rdb_saves"));
    } else {
      CommandOutcome last = co_await node.Command(Argv("LASTSAVE"));
      finished = !running && last.ok() && last.reply.integer != last_before.reply.integer;
    }
    if (!running && field(f, "rdb_last_bgsave_status") == "err" && forked) {
      co_return fail("BGSAVE failed on the node (rdb_last_bgsave_status err)");
    }
    if (finished) break;
    if (Ms() > deadline) co_return fail("BGSAVE did not finish in time");
    if (interrupted_ || first_capture_refusal_) co_return fail("stopped while BGSAVE ran");
    co_await detail::Sleep(loop_, milliseconds(20));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) co_return fail("cannot open the node's RDB " + path + ": " + std::strerror(errno));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t total = 0;
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
    run.progress_bytes = total;
    Progress();
  }
  ::close(fd);
  run.capture_result.payload_bytes = total;
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::Store() {
  // durable: fsync every file and the directory, rename into place.
  manifest_.gates = result_.gates;
  std::string evidence;
  if (Status s = writer_->Commit(manifest_, &evidence); !s.ok()) {
    Gate("durable", "store", false, s.message());
    co_return Refusal{"durable", "InvalidSnapshotState", s.message()};
  }
  Gate("durable", "store", true, evidence);
  // readback: the stored objects, read back and decompressed, have the streams' CRC-64s.
  std::vector<ReadbackReport> readbacks;
  for (auto& run : runs_) {
    if (run->pipeline_result.readback) readbacks.push_back(*run->pipeline_result.readback);
  }
  if (Status s = CheckReadback(readbacks, manifest_, &evidence); !s.ok()) {
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
  // Right before anything is shut down, the group must still be what was snapshotted: a
  // replica that died or a failover since preflight refuses the destroy.
  if (topology_.is_group) {
    const std::string changed = co_await detail::Recheck(topology_);
    if (!changed.empty()) {
      Gate("topology-consistent", "destroy", false, changed);
      co_return Refusal{"topology-consistent", target_.StateFault(),
                        "the group changed during the operation: " + changed +
                            "; nothing was shut down"};
    }
    Gate("topology-consistent", "destroy", true,
         "every member still answers with the role and link it had at preflight");
  }
  // Replicas before primaries: a primary shut down first would be failed over.
  for (detail::GroupNode* n : destroy_order_) {
    if (std::optional<Refusal> r = co_await ShutDown(*n)) co_return r;
  }
  if (!topology_.sentinels.empty()) co_await ForgetInSentinels();
  co_return std::nullopt;
}

Task<std::optional<Refusal>> Operation::ShutDown(detail::GroupNode& node) {
  // The snapshot connection is already closed. SHUTDOWN NOSAVE: a plain SHUTDOWN would save and
  // wait for replicas. Success is the connection closing with no reply.
  const std::string where = node.address.ToString();
  for (auto& run : runs_) {
    if (run->shard->primary == &node) run->pause_timer.Stop();
  }
  if (!node.client->connected()) {
    if (Status s = co_await node.client->Connect(); !s.ok()) {
      Gate("nodes-shutdown", "destroy", false, "cannot reconnect: " + s.message(), where);
      co_return Refusal{"nodes-shutdown", target_.StateFault(),
                        "cannot reach " + where + " to shut it down: " + s.message()};
    }
  }
  CommandOutcome r = co_await node.client->Command(Argv("SHUTDOWN", "NOSAVE"));
  if (r.status.ok() && r.reply.is_error()) {
    Gate("nodes-shutdown", "destroy", false, "SHUTDOWN NOSAVE refused: " + r.reply.str, where);
    co_return Refusal{"nodes-shutdown", target_.StateFault(),
                      "SHUTDOWN NOSAVE refused by " + where + ": " + r.reply.str};
  }
  for (auto& run : runs_) {
    if (run->shard->primary == &node) run->paused = false;  // the pause ends with the process
    if (run->source == &node) run->config_changes.clear();  // and so does the config
  }
  // Confirm: the port refuses connections. A connect that merely times out proves nothing (the
  // listener may still be closing), so only a refusal counts.
  const double deadline = Ms() + 10000;
  std::string last;
  for (;;) {
    detail::TcpProbe probe(loop_, node.address.host, node.address.port, milliseconds(500));
    last = co_await probe;
    if (last.empty() || last.find("refused") == std::string::npos) {
      if (Ms() > deadline) {
        Gate("nodes-shutdown", "destroy", false,
             "SHUTDOWN NOSAVE sent, but the port still does not refuse connections after 10 s (" +
                 (last.empty() ? std::string("it accepts them") : last) + ")",
             where);
        co_return Refusal{"nodes-shutdown", target_.StateFault(),
                          where + " still accepts connections after SHUTDOWN NOSAVE"};
      }
      co_await detail::Sleep(loop_, milliseconds(20));
      continue;
    }
    break;
  }
  Gate("nodes-shutdown", "destroy", true,
       std::string(node.primary ? "primary" : "replica") +
           ": SHUTDOWN NOSAVE closed the connection; a new connection is refused (" + last + ")",
       where);
  co_return std::nullopt;
}

// Once the group is gone no sentinel may keep watching it (or try to fail it over): SENTINEL
// REMOVE on each. When the primary stays, SENTINEL RESET makes them forget the removed replicas.
Task<bool> Operation::ForgetInSentinels() {
  const std::string& name = target_.group->master_name;
  const bool remove = finish_ == Finish::kDestroyAll;
  bool all = true;
  std::string evidence;
  for (const NodeAddress& a : topology_.sentinels) {
    NodeClient sentinel(loop_, a, NodeAuth{}, NodeTimeouts{});
    std::string outcome;
    if (Status s = co_await sentinel.Connect(); !s.ok()) {
      outcome = s.message();
    } else {
      std::vector<std::string> command = Argv("SENTINEL", remove ? "REMOVE" : "RESET", name);
      CommandOutcome r = co_await sentinel.Command(command);
      outcome = r.ok() ? "" : r.Error();
    }
    if (!outcome.empty()) {
      all = false;
      result_.notes.push_back("sentinel " + a.ToString() + " did not take SENTINEL " +
                              (remove ? "REMOVE " : "RESET ") + name + ": " + outcome);
    }
    evidence += (evidence.empty() ? "" : ", ") + a.ToString() + (outcome.empty() ? "" : " (failed)");
  }
  result_.notes.push_back(std::string(remove ? "SENTINEL REMOVE " : "SENTINEL RESET ") + name +
                          " on " + evidence);
  co_return all;
}

OperationResult Fault(std::string fault, std::string message, std::string_view id) {
  OperationResult r;
  r.fault = std::move(fault);
  r.message = std::move(message);
  r.cluster.cache_cluster_id = std::string(id);
  return r;
}

// A cache cluster id: a standalone node of the fleet file, or a member of one of its groups
// ("<group>-002", "<group>-0001-002"); nullopt if it is neither.
std::optional<Target> ResolveCacheCluster(const Fleet& fleet, std::string_view id) {
  Target t;
  t.id = std::string(id);
  if (const CacheClusterEntry* e = fleet.FindCacheCluster(id)) {
    t.kind = Target::Kind::kCacheCluster;
    t.cluster = e;
    return t;
  }
  for (const ReplicationGroupEntry& g : fleet.replication_groups) {
    if (id.size() <= g.id.size() + 1 || !EqualsIgnoreCase(id.substr(0, g.id.size()), g.id) ||
        id[g.id.size()] != '-') {
      continue;
    }
    const std::string_view rest = id.substr(g.id.size() + 1);
    auto digits = [](std::string_view s) {
      return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    const bool one_shard = rest.size() == 3 && digits(rest);
    const bool sharded = rest.size() == 8 && rest[4] == '-' && digits(rest.substr(0, 4)) &&
                         digits(rest.substr(5));
    if (!one_shard && !sharded) continue;
    t.kind = Target::Kind::kMember;
    t.group = &g;
    return t;
  }
  return std::nullopt;
}

OperationResult CacheClusterNotFound(std::string_view id) {
  return Fault("CacheClusterNotFound", "CacheCluster " + std::string(id) + " not found.", id);
}

OperationResult ReplicationGroupNotFound(std::string_view id) {
  OperationResult r = Fault("ReplicationGroupNotFoundFault",
                            "ReplicationGroup " + std::string(id) + " not found.", "");
  return r;
}

}  // namespace

std::vector<std::string> ReplicationGroupInfo::MemberClusters() const {
  std::vector<std::string> ids;
  for (const NodeGroupInfo& g : node_groups) {
    for (const GroupMember& m : g.members) ids.push_back(m.cache_cluster_id);
  }
  return ids;
}

OperationResult DeleteCacheCluster(const Fleet& fleet, std::string_view cache_cluster_id,
                                   const std::optional<std::string>& final_snapshot,
                                   const OperationOptions& options) {
  std::optional<Target> target = ResolveCacheCluster(fleet, cache_cluster_id);
  if (!target) return CacheClusterNotFound(cache_cluster_id);
  const Finish finish =
      target->kind == Target::Kind::kMember ? Finish::kRemoveMember : Finish::kDestroyAll;
  Operation op(fleet, std::move(*target), options);
  return op.Run(finish, final_snapshot);
}

OperationResult CreateSnapshot(const Fleet& fleet, std::string_view cache_cluster_id,
                               const std::string& snapshot_name,
                               const OperationOptions& options) {
  std::optional<Target> target = ResolveCacheCluster(fleet, cache_cluster_id);
  if (!target) return CacheClusterNotFound(cache_cluster_id);
  Operation op(fleet, std::move(*target), options);
  return op.Run(Finish::kKeep, snapshot_name);
}

OperationResult DeleteReplicationGroup(const Fleet& fleet, std::string_view replication_group_id,
                                       const std::optional<std::string>& final_snapshot,
                                       bool retain_primary_cluster,
                                       const OperationOptions& options) {
  const ReplicationGroupEntry* group = fleet.FindReplicationGroup(replication_group_id);
  if (group == nullptr) return ReplicationGroupNotFound(replication_group_id);
  Target target;
  target.kind = Target::Kind::kGroup;
  target.id = group->id;
  target.group = group;
  Operation op(fleet, std::move(target), options);
  return op.Run(retain_primary_cluster ? Finish::kRetainPrimary : Finish::kDestroyAll,
                final_snapshot);
}

OperationResult CreateReplicationGroupSnapshot(const Fleet& fleet,
                                               std::string_view replication_group_id,
                                               const std::string& snapshot_name,
                                               const OperationOptions& options) {
  const ReplicationGroupEntry* group = fleet.FindReplicationGroup(replication_group_id);
  if (group == nullptr) return ReplicationGroupNotFound(replication_group_id);
  Target target;
  target.kind = Target::Kind::kGroup;
  target.id = group->id;
  target.group = group;
  Operation op(fleet, std::move(target), options);
  return op.Run(Finish::kKeep, snapshot_name);
}

namespace {

detail::DiscoveryRequest RequestFor(const NodeSettings& settings, const ResolvedSecret& password) {
  detail::DiscoveryRequest r;
  r.auth = NodeAuth{settings.username, password.value};
  r.timeouts = NodeTimeouts{milliseconds(settings.connect_timeout_ms),
                            milliseconds(settings.command_timeout_ms)};
  return r;
}

Task<std::vector<CacheClusterInfo>> DescribeCluster(Loop& loop, const CacheClusterEntry& entry) {
  CacheClusterInfo info;
  info.cache_cluster_id = entry.id;
  info.endpoint = entry.endpoint.ToString();
  info.capture = std::string(CaptureModeName(entry.settings.capture));
  const ResolvedSecret password = ResolvePassword(entry.settings);
  std::vector<CacheClusterInfo> out;
  if (!password.ok()) {
    info.status = "unreachable";
    info.error = password.error;
    out.push_back(info);
    co_return out;
  }
  NodeClient node(loop, NodeAddress{entry.endpoint.host, entry.endpoint.port},
                  NodeAuth{entry.settings.username, password.value},
                  NodeTimeouts{milliseconds(entry.settings.connect_timeout_ms),
                               milliseconds(entry.settings.command_timeout_ms)});
  CommandOutcome r;
  if (Status s = co_await node.Connect(); !s.ok()) {
    r.status = s;
  } else {
    r = co_await node.Command(Argv("INFO", "all"));
  }
  if (!r.ok()) {
    info.status = "unreachable";
    info.error = r.Error();
    out.push_back(info);
    co_return out;
  }
  const ServerFacts f = detail::ParseServerFacts(detail::ParseInfo(r.reply.str));
  info.status = f.rdb_bgsave_in_progress ? "snapshotting" : "available";
  info.engine = f.engine;
  info.engine_version = f.version;
  info.role = f.role;
  info.used_memory = f.used_memory;
  out.push_back(info);
  co_return out;
}

ReplicationGroupInfo GroupInfoOf(const ReplicationGroupEntry& entry, const detail::Topology& t) {
  ReplicationGroupInfo g;
  g.replication_group_id = entry.id;
  g.cluster_enabled = t.cluster_enabled;
  g.discovered_via = t.discovered_via;
  if (!t.unreachable.empty() || !t.inconsistent.empty()) {
    g.status = t.unreachable.empty() ? "inconsistent" : "unreachable";
    g.error = t.unreachable.empty() ? t.inconsistent : t.unreachable;
  } else {
    g.status = "available";
  }
  for (const detail::GroupShard& s : t.shards) {
    NodeGroupInfo ng;
    ng.node_group_id = s.node_group_id;
    ng.status = "available";
    ng.slot_ranges = s.slots;
    ng.slots = detail::SlotRangesText(s.slots);
    for (const detail::GroupNode* n : s.members) {
      GroupMember m;
      m.cache_cluster_id = n->cache_cluster_id;
      m.endpoint = n->address.ToString();
      m.current_role = n->primary ? "primary" : "replica";
      m.status = n->facts.rdb_bgsave_in_progress ? "snapshotting" : "available";
      m.repl_offset = n->primary ? n->facts.master_repl_offset : n->applied_offset;
      m.used_memory = n->facts.used_memory;
      m.link = n->primary ? "" : (n->link_up ? "up" : "down");
      ng.members.push_back(std::move(m));
    }
    if (g.engine.empty()) {
      g.engine = s.primary->facts.engine;
      g.engine_version = s.primary->facts.version;
    }
    g.node_groups.push_back(std::move(ng));
  }
  if (g.engine.empty() && !t.nodes.empty()) {  // an inconsistent group still says what it runs
    g.engine = t.nodes[0]->facts.engine;
    g.engine_version = t.nodes[0]->facts.version;
  }
  return g;
}

Task<std::vector<ReplicationGroupInfo>> DescribeGroup(Loop& loop,
                                                      const ReplicationGroupEntry& entry) {
  std::vector<ReplicationGroupInfo> out;
  const ResolvedSecret password = ResolvePassword(entry.settings);
  if (!password.ok()) {
    ReplicationGroupInfo g;
    g.replication_group_id = entry.id;
    g.status = "unreachable";
    g.error = password.error;
    out.push_back(std::move(g));
    co_return out;
  }
  detail::DiscoveryRequest request = RequestFor(entry.settings, password);
  request.group_id = entry.id;
  request.endpoints = entry.endpoints;
  request.sentinels = entry.sentinels;
  request.master_name = entry.master_name;
  detail::Topology t = co_await detail::Discover(loop, request);
  out.push_back(GroupInfoOf(entry, t));
  co_return out;
}

// Runs one describe task per entry concurrently and concatenates their results in order.
template <typename T>
Task<std::vector<T>> Gather(std::vector<Task<std::vector<T>>> tasks) {
  detail::WhenAll<std::vector<T>> all(std::move(tasks));
  std::vector<std::vector<T>> parts = co_await all;
  std::vector<T> out;
  for (auto& p : parts) {
    for (auto& x : p) out.push_back(std::move(x));
  }
  co_return out;
}

}  // namespace

std::vector<CacheClusterInfo> DescribeCacheClusters(const Fleet& fleet,
                                                    std::optional<std::string_view> id) {
  Loop loop;
  std::vector<Task<std::vector<CacheClusterInfo>>> clusters;
  for (const CacheClusterEntry& e : fleet.cache_clusters) {
    if (!id || fleet.FindCacheCluster(*id) == &e) clusters.push_back(DescribeCluster(loop, e));
  }
  std::vector<CacheClusterInfo> out = detail::RunToCompletion(loop, Gather(std::move(clusters)));
  // Members of replication groups are cache clusters too.
  std::vector<Task<std::vector<ReplicationGroupInfo>>> groups;
  for (const ReplicationGroupEntry& g : fleet.replication_groups) {
    std::optional<Target> t = id ? ResolveCacheCluster(fleet, *id) : std::nullopt;
    if (!id || (t && t->group == &g)) groups.push_back(DescribeGroup(loop, g));
  }
  for (const ReplicationGroupInfo& g :
       detail::RunToCompletion(loop, Gather(std::move(groups)))) {
    for (const NodeGroupInfo& ng : g.node_groups) {
      for (const GroupMember& m : ng.members) {
        if (id && !EqualsIgnoreCase(*id, m.cache_cluster_id)) continue;
        CacheClusterInfo info;
        info.cache_cluster_id = m.cache_cluster_id;
        info.replication_group_id = g.replication_group_id;
        info.status = m.status;
        info.engine = g.engine;
        info.engine_version = g.engine_version;
        info.endpoint = m.endpoint;
        info.role = m.current_role == "primary" ? "master" : "slave";
        info.used_memory = m.used_memory;
        if (const ReplicationGroupEntry* e = fleet.FindReplicationGroup(g.replication_group_id)) {
          info.capture = std::string(CaptureModeName(e->settings.capture));
        }
        out.push_back(std::move(info));
      }
    }
  }
  return out;
}

std::vector<ReplicationGroupInfo> DescribeReplicationGroups(const Fleet& fleet,
                                                            std::optional<std::string_view> id) {
  Loop loop;
  std::vector<Task<std::vector<ReplicationGroupInfo>>> groups;
  for (const ReplicationGroupEntry& g : fleet.replication_groups) {
    if (!id || fleet.FindReplicationGroup(*id) == &g) groups.push_back(DescribeGroup(loop, g));
  }
  return detail::RunToCompletion(loop, Gather(std::move(groups)));
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


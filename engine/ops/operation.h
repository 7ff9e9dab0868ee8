// The operation behind every public entry point of engine.h, private to ops/: a group of shards
// walked through one table of gates (kGates in operation.cc), on one libuv loop.
//
//   preflight  target-resolved -> topology-consistent -> snapshot-name-free -> storage-ready
//   quiesce    writes-paused       (CLIENT PAUSE WRITE, renewed: the timeout is a dead-man switch)
//   capture    rdb-complete -> rdb-checksum -> rdb-parsed -> keycount-match
//   store      durable -> readback
//   destroy    topology-consistent -> nodes-shutdown   (SHUTDOWN NOSAVE, then the port refuses)
//
// Each row of the table names its phase and gate and the member function that decides it,
// either once for the operation or for every shard at once (the first shard to refuse stops the
// others, and its refusal is the one reported). A step passes with Pass() and refuses with
// Refuse(), which records the verdict and returns the refusal; Main() then unpauses, puts the
// nodes' config back and drops the partial snapshot. Nothing is shut down after a refusal.
//
// One file per phase: preflight.cc, quiesce.cc, capture.cc, store.cc, destroy.cc; operation.cc
// has the table, Main() and what every phase shares (put back, plan, result shapes).
#ifndef FINALSNAP_OPS_OPERATION_H_
#define FINALSNAP_OPS_OPERATION_H_

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "async.h"
#include "finalsnap/engine.h"
#include "journal.h"
#include "loop.h"
#include "node_client.h"
#include "pipeline.h"
#include "repl_stream.h"
#include "topology.h"

namespace finalsnap::ops {

using detail::Argv;
using detail::BufferPool;
using detail::CommandOutcome;
using detail::GroupNode;
using detail::GroupShard;
using detail::Loop;
using detail::NodeClient;
using detail::Task;

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
// What a step gives back: nothing when it passed.
using Verdict = std::optional<Refusal>;

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

// The configuration a capture may change on a node, and what it was before.
struct ConfigChange {
  std::string name;
  std::string original;
  std::string applied;
};

// One shard's part of the operation: where its RDB comes from and how far it got.
struct ShardRun {
  explicit ShardRun(Loop& loop) : pause_timer(loop) {}
  GroupShard* shard = nullptr;
  GroupNode* source = nullptr;               // the node the RDB is captured from
  std::vector<ConfigChange> config_changes;  // on the source, to put back
  bool paused = false;                       // writes paused on the shard's primary
  detail::Timer pause_timer;
  std::vector<std::string> pause_command;
  std::map<uint64_t, rdb::DbCounts> expected;  // INFO keyspace while paused
  std::string file;
  int fd = -1;
  std::chrono::system_clock::time_point snapshot_time;
  detail::PipelineResult pipeline_result;
  detail::CaptureResult capture_result;
  detail::ReplicationCapture* active_capture = nullptr;
  // Made by PrepareShard before writes are paused, so that the replication connection is open
  // and past AUTH/REPLCONF when the pause starts: inside it only PSYNC remains. Declared in this
  // order so that they are destroyed capture first, readback last.
  std::unique_ptr<StreamingReadback> readback;    // follows the file as the pipeline writes it
  std::optional<ReadbackReport> readback_report;  // what it found: the `readback` gate's evidence
  std::unique_ptr<BufferPool> pool;
  std::unique_ptr<detail::Pipeline> pipeline;
  std::unique_ptr<detail::ReplicationCapture> capture;
  uint64_t progress_bytes = 0;                 // RDB bytes received so far
  std::optional<uint64_t> expected_bytes;      // the RDB's exact size, once known
  bool transferred = false;                    // the pipeline finished: file written, read back
};

class Operation {
 public:
  Operation(const Fleet& fleet, Target target, const OperationOptions& options);
  // Repairs the storage's abandoned journals first (not in a dry run), then runs the operation,
  // or, when an earlier run of this very delete passed its point of no return and died, finishes
  // that one (journal.h, kResumeGates).
  OperationResult Run(Finish finish, std::optional<std::string> snapshot);

  // One row of the gate table: a named step of a phase.
  enum class When { kAlways, kSnapshot, kDestroy };
  struct Gate {
    std::string_view phase;
    std::string_view gate;
    When when;
    Task<Verdict> (Operation::*whole)() = nullptr;              // once for the operation, or
    Task<Verdict> (Operation::*each)(ShardRun& run) = nullptr;  // for every shard at once
    // Runs before the phases above it begin (the capture's handshake, done before the pause),
    // so it announces no phase of its own.
    bool ahead = false;
  };

 private:
  static const Gate kGates[];
  // An interrupted delete, finished: the nodes still up are checked and shut down.
  static const Gate kResumeGates[];

  // Wall-clock milliseconds (not the loop's cached time: fsync and readback block the loop).
  static double Ms();
  bool Applies(const Gate& g) const;
  Task<OperationResult> Main();
  // Runs `step` on every shard at once. The first shard to refuse stops the others' transfers,
  // and its refusal is the one returned.
  Task<Verdict> OnEveryShard(Task<Verdict> (Operation::*step)(ShardRun&));
  Task<Verdict> Step(Task<Verdict> (Operation::*step)(ShardRun&), ShardRun& run);
  void CancelCaptures(const std::string& why);
  bool Stopping() const { return interrupted_.has_value() || first_refusal_.has_value(); }
  // A refusal for a cancelled operation (OperationOptions::cancel), once it was cancelled.
  Verdict Interrupted() const;

  // The verdicts. The current row's gate, or (RefuseGate) another gate of its phase, such as a
  // capture refused by its checksum.
  void Pass(const std::string& evidence, const std::string& node = "");
  Refusal Refuse(const std::string& fault, const std::string& message,
                 const std::string& evidence = "", const std::string& node = "");
  Refusal RefuseGate(std::string_view gate, const std::string& fault, const std::string& message,
                     const std::string& evidence = "", const std::string& node = "");
  void Record(std::string_view gate, bool passed, const std::string& evidence,
              const std::string& node);
  void Enter(std::string_view phase);

  bool Destroys() const { return finish_ != Finish::kKeep; }
  // Whether the node is still running once the operation has succeeded.
  bool Survives(const GroupNode* n) const;
  std::string FileFor(const GroupShard& shard) const;

  // preflight.cc
  Task<Verdict> ResolveTarget();
  Task<Verdict> CheckTopology();
  Verdict ChooseSources();
  Task<Verdict> ClaimName();
  Verdict BeginSnapshot();
  Task<Verdict> CheckStorage();
  // permissions.cc: every command the operation will send, checked for the ACL user on the
  // node it goes to (ACL DRYRUN, else a harmless probe, else "unchecked").
  Task<Verdict> CheckPermissions();
  // claim.cc: one operation per target, fleet-wide: every node named finalsnap:<id> on the
  // command connection, then no other finalsnap claim in CLIENT LIST.
  Task<Verdict> ClaimTarget();
  std::string claim_name_;  // "finalsnap:<16 hex digits>", random per operation
  // quiesce.cc
  Task<Verdict> PauseWrites(ShardRun& run);
  Task<bool> Unpause(ShardRun& run);
  Task<int> RestoreConfig(ShardRun& run);
  // capture.cc
  Task<Verdict> PrepareShard(ShardRun& run);
  Task<Verdict> CaptureShard(ShardRun& run);
  Task<Verdict> CaptureBgsaveFile(ShardRun& run);
  Task<Verdict> CheckChecksum(ShardRun& run);
  Task<Verdict> CheckParsed(ShardRun& run);
  Task<Verdict> CheckKeycount(ShardRun& run);
  Task<std::map<std::string, std::string>> Persistence(NodeClient& node);
  void Progress();
  // store.cc
  Task<Verdict> Commit();
  Task<Verdict> ReadBack();
  NodeSnapshot NodeSnapshotOf(const ShardRun& run) const;
  // destroy.cc
  Task<Verdict> RecheckTopology();
  Task<Verdict> ShutDownNodes();
  Task<Verdict> ShutDown(GroupNode& node);
  Task<bool> ForgetInSentinels();
  // journal (operation.cc): the events an operation writes before it acts (journal.h).
  std::string CommandName() const;
  JournalState Header() const;
  // Creates the journal before the first step that may change a node.
  Verdict OpenJournal(const Gate& g);
  // Appends `event`; a refusal of the current gate if it cannot be written.
  Verdict Journaled(const nlohmann::json& event);
  // The point of no return of a destroy (and the end of a create-snapshot's proof).
  Verdict Proven();
  // Before Main(): repairs abandoned journals, then adopts this target's pending delete, or
  // refuses when another command meets one.
  Task<Verdict> Recover();
  // Once the operation ended: the journal goes, unless something is left to repair or finish.
  void CloseJournal(bool put_back, bool refused);
  // resume.cc: the gates of kResumeGates.
  Task<Verdict> ResumeTarget();
  Task<Verdict> CheckResumedSnapshot();
  Task<Verdict> RecheckResumed();
  // operation.cc
  Task<bool> PutBack(bool everything);
  void Plan();
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
  const Gate* gate_ = nullptr;  // the row being run
  std::string phase_;           // the phase last announced

  detail::Topology topology_;
  GroupNode* member_ = nullptr;  // Kind::kMember: the member asked for
  std::vector<std::unique_ptr<ShardRun>> runs_;
  // The nodes a destroy shuts down, replicas before primaries.
  std::vector<GroupNode*> destroy_order_;
  std::optional<SnapshotStore> store_;
  std::unique_ptr<SnapshotWriter> writer_;
  Snapshot manifest_;
  // The cancel token's reason, once cancelled while the operation runs: the captures are
  // cancelled and the operation refuses at the next step, so the nodes are unpaused and put
  // back before the caller goes on (a CLI then exits).
  std::optional<std::string> interrupted_;
  // The first refusal of a step run on every shard: it stops the other shards.
  std::optional<Refusal> first_refusal_;
  // The operation's journal, once it exists; on a resume, the interrupted run's, adopted.
  std::unique_ptr<Journal> journal_;
  bool resuming_ = false;
  bool shutdown_sent_ = false;  // some node was sent SHUTDOWN NOSAVE by this run
};

// A cache cluster id: a standalone node of the fleet file, or a member of one of its groups
// ("<group>-002", "<group>-0001-002"); nullopt if it is neither (operations.cc).
std::optional<Target> ResolveCacheCluster(const Fleet& fleet, std::string_view id);

// ReplicationGroup's fields for the group `group_id` as discovered (describe.cc): its status
// says whether it answered and agreed, each member's whether it is snapshotting.
ReplicationGroupInfo GroupInfoOf(const std::string& group_id, const detail::Topology& t);

// Repairs every abandoned journal under the fleet's storage (recover.cc): the body of Recover().
Task<RecoveryReport> RecoverJournals(Loop& loop, const Fleet& fleet,
                                     const std::function<void(const OperationEvent&)>& observer);

// "db0 5 keys/1 expires, db3 ..." or "no keys".
std::string KeyspaceText(const std::map<uint64_t, rdb::DbCounts>& m);

}  // namespace finalsnap::ops

#endif  // FINALSNAP_OPS_OPERATION_H_

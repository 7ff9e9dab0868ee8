// The engine's operations, as the CLI and the API server call them: ElastiCache's
// delete-cache-cluster (with or without a final snapshot), create-snapshot, describe-cache-clusters
// and restore, for self-hosted nodes named in a fleet file.
//
// Each operation runs its gates in order (DESIGN.md, "Gates") on its own libuv loop and returns
// every verdict with its evidence. A destroy happens only when every earlier gate passed; any
// refusal unpauses the node, restores what the operation changed on it, removes the partial
// snapshot and names the gate that refused.
//
// Start reading at DeleteCacheCluster; engine/ops/ is its implementation.
#ifndef FINALSNAP_ENGINE_H_
#define FINALSNAP_ENGINE_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/cancel.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"

namespace finalsnap {

// One shard's transfer: how far its RDB got through each stage of the byte path.
struct ShardProgress {
  std::string node_group_id;  // "0001"
  std::string node;           // host:port the RDB comes from
  uint64_t received = 0;      // RDB bytes received and validated
  uint64_t stored = 0;        // bytes written to the snapshot file (after compression)
  uint64_t read_back = 0;     // of those, bytes read back from the device
  // The RDB's size: exact (`exact`) once the server sent `$<length>`, the node's RDB file was
  // opened, or the transfer ended (then it is `received`); before that, estimated from the
  // node's used_memory. A finished transfer therefore always shows 100 %.
  uint64_t expected = 0;
  bool exact = false;
  bool done = false;  // the transfer ended and the file is written
};

// Transfer progress, reported on the operation's thread while a capture runs.
struct TransferProgress {
  uint64_t bytes = 0;     // RDB bytes received and validated so far, all shards
  uint64_t expected = 0;  // the sum of the shards' expected sizes
  bool exact = false;     // every shard's expected size is exact
  double seconds = 0;     // since the transfer began
  std::vector<ShardProgress> shards;  // in NodeGroupId order
};

// What an operation reports while it runs, in order, on the operation's thread: the one event
// stream that the CLI's progress line, the API's DescribeEvents and an embedding program read.
struct OperationEvent {
  enum class Kind {
    kPhase,     // a phase begins: preflight, quiesce, capture, store, destroy
    kGate,      // a gate's verdict, as OperationResult::gates will hold it
    kProgress,  // bytes of the transfer so far, after each read of a stream: throttle in the
                // observer (the CLI's progress line draws at most five times a second)
    kRecovery,  // a repair of an operation whose process died (Recover), in `message`
  };
  Kind kind = Kind::kPhase;
  std::string phase;          // kPhase: the phase begun; kGate: the gate's phase
  GateVerdict gate;           // kGate
  TransferProgress progress;  // kProgress
  std::string message;        // kRecovery
};

struct OperationOptions {
  bool dry_run = false;  // run the preflight gates and say what would be done; change nothing
  // Replication groups: take each shard's snapshot from an in-sync replica instead of its
  // primary (sparing the primary the fork), once the replica has applied everything the paused
  // primary had. The primary is still the one paused, and the default is the primary
  // (ElastiCache: "freshest data").
  bool snapshot_from_replica = false;
  // Receives every OperationEvent as it happens, on the operation's loop thread, progress once
  // per read of the stream. It must return quickly: the loop (pause renewals included) and the
  // byte path wait while it runs.
  std::function<void(const OperationEvent&)> observer;
  // Cancel it (from any thread) to stop the operation: it refuses at its next step with fault
  // "Interrupted" and the token's reason, after unpausing and putting the nodes back. Nothing
  // is shut down once cancelled; a shutdown already under way is finished. The engine installs
  // no signal handlers: the caller maps signals to this token (finalsnap/cancel.h).
  CancelToken cancel;
};

// ElastiCache's CacheCluster, as far as a self-hosted node has the fields.
struct CacheClusterInfo {
  std::string cache_cluster_id;
  std::string replication_group_id;  // for a member of a replication group, else empty
  std::string status;  // "available", "deleting", "deleted", "snapshotting", "unreachable"
  std::string engine;
  std::string engine_version;
  std::string endpoint;  // host:port
  std::string role;      // "master" / "slave"
  std::string capture;   // "sync" / "bgsave-file"
  uint64_t used_memory = 0;
  std::optional<std::string> error;  // why it is unreachable
};

// One member of a replication group's node group (shard), as ElastiCache lists it.
struct GroupMember {
  std::string cache_cluster_id;  // "<group>-001" (one shard) or "<group>-0001-001" (Cluster)
  std::string cache_node_id = "0001";
  std::string endpoint;          // host:port
  std::string current_role;      // "primary" / "replica"
  std::string status;            // "available", "unreachable", ...
  uint64_t repl_offset = 0;      // primary: master_repl_offset; replica: applied offset
  uint64_t used_memory = 0;
  std::string link;              // replica: master_link_status ("up" / "down"); else empty
};

// One node group (shard): its primary first, then its replicas.
struct NodeGroupInfo {
  std::string node_group_id;  // "0001", "0002", ... in slot order
  std::string status;
  std::string slots;  // "0-5460" (Redis Cluster only; empty otherwise)
  std::vector<std::pair<int, int>> slot_ranges;
  std::vector<GroupMember> members;
};

// ElastiCache's ReplicationGroup, as far as a self-hosted group has the fields.
struct ReplicationGroupInfo {
  std::string replication_group_id;
  std::string status;  // "available", "deleting", "deleted", "snapshotting", "unreachable"
  std::string engine;
  std::string engine_version;
  bool cluster_enabled = false;  // a sharded Redis Cluster
  std::string discovered_via;    // "endpoints", "sentinel"
  std::vector<NodeGroupInfo> node_groups;
  std::optional<std::string> error;  // why it is unreachable or inconsistent
  // Every member's cache cluster id, in node-group order.
  std::vector<std::string> MemberClusters() const;
};

struct OperationResult {
  bool ok = false;
  // On refusal: ElastiCache's fault name (CacheClusterNotFound, SnapshotAlreadyExistsFault,
  // InvalidCacheClusterState, InvalidParameterValue, InvalidSnapshotState, ...), the message,
  // and the gate that refused (empty when nothing got as far as a gate).
  std::string fault;
  std::string message;
  std::string failed_gate;
  std::vector<GateVerdict> gates;
  CacheClusterInfo cluster;
  std::optional<ReplicationGroupInfo> group;  // for a replication group, or a member of one
  std::optional<Snapshot> snapshot;  // the stored snapshot's manifest, when one was taken
  // What the operation changed on the node and put back, or could not put back.
  std::vector<std::string> notes;
  std::vector<std::string> plan;  // dry run: the steps it would take
  double seconds = 0;
};

// Takes the final snapshot (when `final_snapshot` is set), proves it, and shuts the node down.
OperationResult DeleteCacheCluster(const Fleet& fleet, std::string_view cache_cluster_id,
                                   const std::optional<std::string>& final_snapshot,
                                   const OperationOptions& options = {});

// The same capture with no destroy: the node keeps running, with everything the operation
// changed on it put back. Writes stall only until the server has forked.
OperationResult CreateSnapshot(const Fleet& fleet, std::string_view cache_cluster_id,
                               const std::string& snapshot_name,
                               const OperationOptions& options = {});

// ElastiCache's delete-replication-group: pauses writes on every primary at once, takes each
// shard's final snapshot in parallel (when `final_snapshot` is set), proves every file, then
// shuts down all replicas and after them the primaries. With `retain_primary_cluster` only the
// replicas go and the (single) primary is unpaused and kept; more than one shard is refused
// (InvalidParameterCombination). Groups named with sentinels are discovered through them, and
// every sentinel forgets the group (SENTINEL REMOVE) once it is gone.
OperationResult DeleteReplicationGroup(const Fleet& fleet, std::string_view replication_group_id,
                                       const std::optional<std::string>& final_snapshot,
                                       bool retain_primary_cluster,
                                       const OperationOptions& options = {});

// create-snapshot --replication-group-id: the same cross-shard capture with no destroy.
OperationResult CreateReplicationGroupSnapshot(const Fleet& fleet,
                                               std::string_view replication_group_id,
                                               const std::string& snapshot_name,
                                               const OperationOptions& options = {});

// An operation whose process died (SIGKILL, a crash, a reboot), as a recovery found it in its
// journal (<storage>/.journal/) and repaired it: every setting the operation changed put back to
// the value the journal recorded before the change (never the node's current one), writes
// unpaused, its partial snapshot removed. A delete that had passed its point of no return (its
// final snapshot passed every store gate) is not undone: its nodes are put back and it stays
// pending, shown as "deleting", until the same delete is run again and finishes it.
struct Recovery {
  std::string operation_id;
  std::string command;  // "create-snapshot", "delete-cache-cluster", "delete-replication-group"
  std::string target;   // the cache cluster or replication group
  bool replication_group = false;  // the target is a replication group, not a cache cluster
  std::optional<std::string> snapshot_name;
  std::vector<std::string> repairs;   // what was done, in order
  std::vector<std::string> failures;  // what could not be done: the journal stays, to retry
  bool pending_delete = false;
  std::string next_step;  // for a pending delete: the command that finishes it
};

struct RecoveryReport {
  std::vector<Recovery> recovered;  // journals repaired, or pending deletes found
  std::vector<std::string> errors;  // journals that could not be read: left alone
  bool ok() const;                  // no error and no failure
};

// Repairs every abandoned operation journal in the fleet's storage (journals of operations that
// are still running are left alone) and lists the pending deletes. Every operation does this
// first; `finalsnap recover` does only this. Each repair is also reported to options.observer as
// a kRecovery event.
RecoveryReport Recover(const Fleet& fleet, const OperationOptions& options = {});

// The live topology of the fleet's replication groups (all, or the one named).
std::vector<ReplicationGroupInfo> DescribeReplicationGroups(const Fleet& fleet,
                                                            std::optional<std::string_view> id);

// The live state of the fleet's cache clusters (all, or the one named): the standalone ones
// and every member of every replication group.
std::vector<CacheClusterInfo> DescribeCacheClusters(const Fleet& fleet,
                                                    std::optional<std::string_view> id);

}  // namespace finalsnap

#endif  // FINALSNAP_ENGINE_H_

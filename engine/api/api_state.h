// ApiState: what the API server remembers between requests and across restarts: the operations
// it started (running, or how they ended), the cache clusters and replication groups it deleted,
// and the events DescribeEvents shows (every gate verdict, every refusal, every outcome).
//
// ElastiCache's deletes are asynchronous: DeleteCacheCluster answers at once with the cluster
// "deleting" and the work goes on. So the server needs a registry that (1) refuses a second
// operation on a target that has one running (InvalidCacheClusterState /
// InvalidReplicationGroupState) or a second claim on a snapshot name, atomically with the check,
// (2) overrides the live status of a target while its operation runs, and (3) hides a target
// once it has been deleted, as ElastiCache answers CacheClusterNotFound for a deleted cluster.
//
// The state lives in <api.state>/state.json (written to a temporary file, fsynced and renamed
// into place after every change), under an flock(2) on <api.state>/.lock so that two servers
// cannot share it. An operation still "running" in the file when a server starts was cut short
// by a crash or kill of the previous server: it is recorded as "interrupted" (never as done),
// with an event saying its outcome is unknown, and its target is not marked deleted.
//
// Thread-safe: every member may be called from any thread.
#ifndef FINALSNAP_ENGINE_API_STATE_H_
#define FINALSNAP_ENGINE_API_STATE_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "finalsnap/engine.h"
#include "finalsnap/status.h"
#include "query_api.h"

namespace finalsnap::detail {

inline constexpr char kSourceCacheCluster[] = "cache-cluster";
inline constexpr char kSourceReplicationGroup[] = "replication-group";

struct ApiEvent {
  uint64_t seq = 0;  // increasing; DescribeEvents' order and marker
  std::chrono::system_clock::time_point date;
  std::string source_type;  // kSourceCacheCluster or kSourceReplicationGroup
  std::string source_id;
  std::string message;
};

struct ApiOperation {
  std::string id;           // "op-000017"
  std::string action;       // "DeleteCacheCluster", "CreateSnapshot", "DeleteReplicationGroup"
  std::string source_type;  // what it acts on: kSourceCacheCluster or kSourceReplicationGroup
  std::string target_id;    // as the fleet file spells it
  // Which incarnation of the target: its endpoint(s) when the operation began. A target id that
  // the fleet file later points at another endpoint is a new target, not a deleted one.
  std::string identity;
  std::string snapshot_name;  // empty: no snapshot
  bool retain_primary_cluster = false;
  std::string status = "running";  // "running", "succeeded", "failed", "interrupted"
  std::string fault;
  std::string message;
  std::string failed_gate;
  std::chrono::system_clock::time_point started;
  std::chrono::system_clock::time_point ended;
  // What the target looked like when the operation began (for answers while it runs).
  std::string engine;
  std::string engine_version;
  std::string request_id;
  // Gate verdicts already recorded as events while the operation ran (RecordGate); Finish adds
  // only the ones after them. Not saved: a restarted server has no running operation.
  size_t gates_recorded = 0;

  // DeleteCacheCluster and DeleteReplicationGroup destroy; CreateSnapshot does not.
  bool destroys() const { return action.rfind("Delete", 0) == 0; }
  // The status a target shows while this operation runs: "deleting" or "snapshotting".
  std::string target_status() const { return destroys() ? "deleting" : "snapshotting"; }
};

class ApiState {
 public:
  // Opens (creating, 0700) the state directory and takes its lock, loads state.json if there is
  // one, and records operations left running by a previous server as interrupted. On failure
  // the error's message names the path and the reason (another server holding the lock, an
  // unreadable or corrupt state file).
  static Expected<std::unique_ptr<ApiState>> Open(const std::filesystem::path& dir);
  ~ApiState();
  ApiState(const ApiState&) = delete;
  ApiState& operator=(const ApiState&) = delete;

  // Registers `op` (status "running") unless its target has a running operation
  // (InvalidCacheClusterState / InvalidReplicationGroupState), has been deleted (its NotFound
  // fault), or its snapshot name is claimed by a running operation (SnapshotAlreadyExistsFault).
  // The check and the registration are one step. Records `event` for the target, then saves.
  // Returns the operation as registered (its id and start time set), or the refusal.
  Expected<ApiOperation, ApiError> Begin(ApiOperation op, const std::string& event);

  // Records one gate verdict of running operation `id` as an event, as it happens, so that
  // DescribeEvents shows a delete in progress. Kept in memory until Finish saves.
  void RecordGate(const std::string& id, const GateVerdict& gate);

  // Records how operation `id` ended: its status, one event per gate verdict (dated when the
  // gate was reached) and per note, and one for the outcome, naming the gate that refused. A
  // successful delete marks its target deleted. Saves.
  void Finish(const std::string& id, const OperationResult& result);

  // The running operation on a target (ids compare case-insensitively).
  std::optional<ApiOperation> Running(std::string_view source_type, std::string_view id) const;
  std::vector<ApiOperation> Running() const;
  // The running operation whose snapshot is `name`.
  std::optional<ApiOperation> RunningForSnapshot(std::string_view name) const;
  // Whether this incarnation of the target was deleted through the API.
  bool IsDeleted(std::string_view source_type, std::string_view id,
                 std::string_view identity) const;

  // Every retained event, oldest first (at most kMaxEvents, none older than 14 days).
  std::vector<ApiEvent> Events() const;
  void AddEvent(std::string_view source_type, std::string_view source_id, std::string message);

  // What Open found: one line per operation it marked interrupted.
  const std::vector<std::string>& recovered() const { return recovered_; }

  static constexpr size_t kMaxEvents = 10000;
  static constexpr size_t kMaxFinishedOperations = 1000;

 private:
  explicit ApiState(std::filesystem::path dir, int lock_fd);
  void AddEventLocked(std::chrono::system_clock::time_point date, std::string_view source_type,
                      std::string_view source_id, std::string message);
  // "Gate <gate> (<phase>) passed|REFUSED [on <node>]: <evidence>", dated when it was reached.
  void AddGateEventLocked(const ApiOperation& op, const GateVerdict& gate,
                          std::chrono::system_clock::time_point now);
  // Loads state.json, if there is one; an unreadable or corrupt file is an error.
  Status LoadLocked();
  // Writes state.json; a failure is remembered and reported by the next successful save (the
  // API keeps working from memory rather than refusing every request).
  void SaveLocked();

  std::filesystem::path dir_;
  int lock_fd_;
  mutable std::mutex mu_;
  uint64_t next_op_ = 1;
  uint64_t next_event_ = 1;
  std::vector<ApiOperation> operations_;  // oldest first
  struct Deleted {
    std::string source_type;
    std::string id;
    std::string identity;
    std::chrono::system_clock::time_point date;
  };
  std::vector<Deleted> deleted_;
  std::vector<ApiEvent> events_;  // oldest first
  std::vector<std::string> recovered_;
  Status save_status_;  // of the last save
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_API_STATE_H_

// ApiState (api_state.h): the API server's registry of operations, deleted targets and events,
// persisted as <state>/state.json.
#include "api_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "file_io.h"

namespace finalsnap::detail {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::system_clock;

constexpr auto kEventRetention = std::chrono::hours(24 * 14);  // ElastiCache keeps 14 days

std::string Errno() { return std::strerror(errno); }

Clock::time_point TimeFrom(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return {};
  return ParseIsoTimestamp(j[key].get<std::string>()).value_or(Clock::time_point{});
}

std::string StringFrom(const Json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return {};
  return j[key].get<std::string>();
}

Json OperationToJson(const ApiOperation& op) {
  Json j;
  j["Id"] = op.id;
  j["Action"] = op.action;
  j["SourceType"] = op.source_type;
  j["TargetId"] = op.target_id;
  j["Identity"] = op.identity;
  j["SnapshotName"] = op.snapshot_name;
  j["RetainPrimaryCluster"] = op.retain_primary_cluster;
  j["Status"] = op.status;
  j["Fault"] = op.fault;
  j["Message"] = op.message;
  j["FailedGate"] = op.failed_gate;
  j["Started"] = IsoTimestamp(op.started);
  if (op.status != "running") j["Ended"] = IsoTimestamp(op.ended);
  j["Engine"] = op.engine;
  j["EngineVersion"] = op.engine_version;
  j["RequestId"] = op.request_id;
  return j;
}

ApiOperation OperationFromJson(const Json& j) {
  ApiOperation op;
  op.id = StringFrom(j, "Id");
  op.action = StringFrom(j, "Action");
  op.source_type = StringFrom(j, "SourceType");
  op.target_id = StringFrom(j, "TargetId");
  op.identity = StringFrom(j, "Identity");
  op.snapshot_name = StringFrom(j, "SnapshotName");
  op.retain_primary_cluster = j.value("RetainPrimaryCluster", false);
  op.status = StringFrom(j, "Status");
  op.fault = StringFrom(j, "Fault");
  op.message = StringFrom(j, "Message");
  op.failed_gate = StringFrom(j, "FailedGate");
  op.started = TimeFrom(j, "Started");
  op.ended = TimeFrom(j, "Ended");
  op.engine = StringFrom(j, "Engine");
  op.engine_version = StringFrom(j, "EngineVersion");
  op.request_id = StringFrom(j, "RequestId");
  return op;
}

std::string NotFoundFault(std::string_view source_type) {
  return source_type == kSourceCacheCluster ? "CacheClusterNotFound"
                                            : "ReplicationGroupNotFoundFault";
}

std::string NotFoundMessage(std::string_view source_type, std::string_view id) {
  return (source_type == kSourceCacheCluster ? "CacheCluster " : "ReplicationGroup ") +
         std::string(id) + " not found.";
}

// "cache cluster myRedisCluster" / "replication group myReplGroup".
std::string TargetName(const ApiOperation& op) {
  return (op.source_type == kSourceCacheCluster ? "cache cluster " : "replication group ") +
         op.target_id;
}

std::string Outcome(const ApiOperation& op, const OperationResult& result) {
  const std::string target = TargetName(op);
  if (result.ok) {
    if (op.action == "DeleteCacheCluster" || op.action == "DeleteReplicationGroup") {
      std::string m =
          (op.source_type == kSourceCacheCluster ? "Cache cluster " : "Replication group ") +
          op.target_id + " deleted";
      if (!op.snapshot_name.empty()) {
        m += " after its final snapshot " + op.snapshot_name +
             " was verified (complete, checksummed, parsed, key counts, durable, read back)";
      } else {
        m += " without a final snapshot";
      }
      if (op.retain_primary_cluster) m += "; the primary cluster was retained";
      return m + ".";
    }
    return "Snapshot " + op.snapshot_name + " of " + target +
           " is available (verified: complete, checksummed, parsed, key counts, durable, read "
           "back).";
  }
  std::string m = op.action + " of " + target;
  if (result.fault == "Interrupted") {
    m += " was interrupted (" + result.message + ")";
  } else if (!result.failed_gate.empty()) {
    m += " refused at gate " + result.failed_gate + " (" + result.fault + "): " + result.message;
  } else {
    m += " refused before any gate (" + result.fault + "): " + result.message;
  }
  if (op.destroys()) m += ". Nothing was shut down";
  m += "; the " +
       std::string(op.source_type == kSourceCacheCluster ? "cache cluster" : "replication group") +
       " is available again.";
  return m;
}

}  // namespace

ApiState::ApiState(std::filesystem::path dir, int lock_fd)
    : dir_(std::move(dir)), lock_fd_(lock_fd) {}

ApiState::~ApiState() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // drops the flock
}

Expected<std::unique_ptr<ApiState>> ApiState::Open(const std::filesystem::path& dir) {
  // Missing parents 0755 and the directory itself 0700, whatever the umask.
  if (!dir.parent_path().empty()) {
    if (Status s = detail::CreateDirectories(dir.parent_path(), 0755); !s.ok()) {
      return Status::Error("cannot create API state directory " + dir.string() + ": " +
                           s.message());
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Error("cannot create API state directory " + dir.string() + ": " + Errno());
  }
  ::chmod(dir.c_str(), 0700);
  const std::filesystem::path lock_path = dir / ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot open " + lock_path.string() + ": " + Errno());
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const std::string why =
        errno == EWOULDBLOCK ? "another finalsnap serve is using this state directory" : Errno();
    ::close(fd);
    return Status::Error("cannot lock " + lock_path.string() + ": " + why);
  }
  std::unique_ptr<ApiState> state(new ApiState(dir, fd));
  std::lock_guard<std::mutex> lock(state->mu_);
  if (Status loaded = state->LoadLocked(); !loaded.ok()) return loaded;
  const Clock::time_point now = Clock::now();
  bool changed = false;
  for (ApiOperation& op : state->operations_) {
    if (op.status != "running") continue;
    op.status = "interrupted";
    op.fault = "Interrupted";
    op.message =
        "finalsnap serve stopped while the operation was running; its outcome is "
        "unknown (check the node and the snapshot: it was not recorded as done)";
    op.ended = now;
    const std::string line = op.action + " of " + TargetName(op) + " (" + op.id + ", started " +
                             IsoTimestamp(op.started) + ") was interrupted: " + op.message + ".";
    state->AddEventLocked(now, op.source_type, op.target_id, line);
    state->recovered_.push_back(line);
    changed = true;
  }
  if (changed) state->SaveLocked();
  if (!state->save_status_.ok()) return state->save_status_;
  return state;
}

Status ApiState::LoadLocked() {
  const std::filesystem::path path = dir_ / "state.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::Ok();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("cannot read " + path.string() + ": " + Errno());
  std::stringstream text;
  text << in.rdbuf();
  Json j = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("StateVersion", 0) != 1) {
    return Status::Error(path.string() +
                         " is not a finalsnap API state file (version 1); move it away to "
                         "start with an empty state");
  }
  next_op_ = j.value("NextOperation", uint64_t{1});
  next_event_ = j.value("NextEvent", uint64_t{1});
  if (j.contains("Operations") && j["Operations"].is_array()) {
    for (const Json& o : j["Operations"]) operations_.push_back(OperationFromJson(o));
  }
  if (j.contains("Deleted") && j["Deleted"].is_array()) {
    for (const Json& d : j["Deleted"]) {
      deleted_.push_back(Deleted{StringFrom(d, "SourceType"), StringFrom(d, "Id"),
                                 StringFrom(d, "Identity"), TimeFrom(d, "Date")});
    }
  }
  if (j.contains("Events") && j["Events"].is_array()) {
    for (const Json& e : j["Events"]) {
      events_.push_back(ApiEvent{e.value("Seq", uint64_t{0}), TimeFrom(e, "Date"),
                                 StringFrom(e, "SourceType"), StringFrom(e, "SourceIdentifier"),
                                 StringFrom(e, "Message")});
    }
  }
  for (const ApiEvent& e : events_) next_event_ = std::max(next_event_, e.seq + 1);
  return Status::Ok();
}

void ApiState::SaveLocked() {
  Json j;
  j["StateVersion"] = 1;
  j["NextOperation"] = next_op_;
  j["NextEvent"] = next_event_;
  Json ops = Json::array();
  for (const ApiOperation& op : operations_) ops.push_back(OperationToJson(op));
  j["Operations"] = std::move(ops);
  Json deleted = Json::array();
  for (const Deleted& d : deleted_) {
    deleted.push_back(Json{{"SourceType", d.source_type},
                           {"Id", d.id},
                           {"Identity", d.identity},
                           {"Date", IsoTimestamp(d.date)}});
  }
  j["Deleted"] = std::move(deleted);
  Json events = Json::array();
  for (const ApiEvent& e : events_) {
    events.push_back(Json{{"Seq", e.seq},
                          {"Date", IsoTimestamp(e.date)},
                          {"SourceType", e.source_type},
                          {"SourceIdentifier", e.source_id},
                          {"Message", e.message}});
  }
  j["Events"] = std::move(events);
  const std::string text = j.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";

  // Temp file, fsync, rename, fsync the directory: a crash leaves the old state or the new one.
  const std::filesystem::path path = dir_ / "state.json";
  if (Status s = WriteFileAtomic(path, text); !s.ok()) {
    save_status_ = Status::Error("cannot save " + path.string() + " (" + s.message() + ")");
    return;
  }
  save_status_ = Status::Ok();
}

void ApiState::AddEventLocked(Clock::time_point date, std::string_view source_type,
                              std::string_view source_id, std::string message) {
  events_.push_back(ApiEvent{next_event_++, date, std::string(source_type), std::string(source_id),
                             std::move(message)});
  // Keep the newest kMaxEvents, and nothing past the retention window.
  const Clock::time_point cutoff = Clock::now() - kEventRetention;
  size_t drop = events_.size() > kMaxEvents ? events_.size() - kMaxEvents : 0;
  while (drop < events_.size() && events_[drop].date < cutoff) ++drop;
  if (drop > 0) events_.erase(events_.begin(), events_.begin() + static_cast<long>(drop));
}

Expected<ApiOperation, ApiError> ApiState::Begin(ApiOperation op, const std::string& event) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Deleted& d : deleted_) {
    if (d.source_type == op.source_type && IdEquals(d.id, op.target_id) &&
        d.identity == op.identity) {
      return ApiError::Of(NotFoundFault(op.source_type),
                          NotFoundMessage(op.source_type, op.target_id));
    }
  }
  for (const ApiOperation& running : operations_) {
    if (running.status != "running") continue;
    if (running.source_type == op.source_type && IdEquals(running.target_id, op.target_id)) {
      const bool cluster = op.source_type == kSourceCacheCluster;
      return ApiError::Of(cluster ? "InvalidCacheClusterState" : "InvalidReplicationGroupState",
                          (cluster ? "Cache cluster " : "Replication group ") + running.target_id +
                              " is " + running.target_status() + " (" + running.action + " " +
                              running.id + " is running); " + op.action +
                              " is not allowed until it ends.");
    }
    if (!op.snapshot_name.empty() && IdEquals(running.snapshot_name, op.snapshot_name)) {
      return ApiError::Of("SnapshotAlreadyExistsFault", "Snapshot " + running.snapshot_name +
                                                            " already exists (it is being "
                                                            "created by " +
                                                            running.action + " " + running.id +
                                                            ").");
    }
  }
  char id[32];
  std::snprintf(id, sizeof(id), "op-%06llu", static_cast<unsigned long long>(next_op_++));
  op.id = id;
  op.status = "running";
  op.started = Clock::now();
  operations_.push_back(op);
  AddEventLocked(op.started, op.source_type, op.target_id, event + " (" + op.id + ")");
  SaveLocked();
  if (!save_status_.ok()) {
    // An operation the next server could not know about must not start: it would never be
    // reported as interrupted after a crash.
    operations_.pop_back();
    if (!events_.empty()) events_.pop_back();
    return ApiError::Of("InternalFailure",
                        "the operation was not started: " + save_status_.message());
  }
  return op;
}

void ApiState::AddGateEventLocked(const ApiOperation& op, const GateVerdict& gate,
                                  Clock::time_point now) {
  auto date = op.started + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double, std::milli>(gate.at_ms));
  if (date > now) date = now;
  std::string line =
      "Gate " + gate.gate + " (" + gate.phase + ") " + (gate.passed ? "passed" : "REFUSED");
  if (!gate.node.empty()) line += " on " + gate.node;
  line += ": " + gate.evidence;
  AddEventLocked(date, op.source_type, op.target_id, std::move(line));
}

void ApiState::RecordGate(const std::string& id, const GateVerdict& gate) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(operations_.begin(), operations_.end(),
                         [&](const ApiOperation& op) { return op.id == id; });
  if (it == operations_.end() || it->status != "running") return;
  AddGateEventLocked(*it, gate, Clock::now());
  ++it->gates_recorded;
  // Not saved here: the operation's loop waits while this runs, and Finish saves every event.
}

void ApiState::Finish(const std::string& id, const OperationResult& result) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(operations_.begin(), operations_.end(),
                         [&](const ApiOperation& op) { return op.id == id; });
  if (it == operations_.end()) return;
  ApiOperation& op = *it;
  const Clock::time_point now = Clock::now();
  op.ended = now;
  op.fault = result.fault;
  op.message = result.message;
  op.failed_gate = result.failed_gate;
  op.status = result.ok ? "succeeded" : (result.fault == "Interrupted" ? "interrupted" : "failed");

  // One event per verdict not yet recorded live (RecordGate), dated when it was reached.
  for (size_t i = op.gates_recorded; i < result.gates.size(); ++i) {
    AddGateEventLocked(op, result.gates[i], now);
  }
  for (const std::string& note : result.notes) {
    AddEventLocked(now, op.source_type, op.target_id, "Note: " + note);
  }
  AddEventLocked(now, op.source_type, op.target_id, Outcome(op, result));
  if (result.ok && op.destroys()) {
    deleted_.push_back(Deleted{op.source_type, op.target_id, op.identity, now});
  }

  // Keep every running operation and the newest finished ones.
  size_t finished = 0;
  for (const ApiOperation& o : operations_) finished += o.status != "running" ? 1 : 0;
  for (auto o = operations_.begin(); finished > kMaxFinishedOperations && o != operations_.end();) {
    if (o->status != "running") {
      o = operations_.erase(o);
      --finished;
    } else {
      ++o;
    }
  }
  SaveLocked();
}

std::optional<ApiOperation> ApiState::Running(std::string_view source_type,
                                              std::string_view id) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const ApiOperation& op : operations_) {
    if (op.status == "running" && op.source_type == source_type && IdEquals(op.target_id, id)) {
      return op;
    }
  }
  return std::nullopt;
}

std::vector<ApiOperation> ApiState::Running() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ApiOperation> running;
  for (const ApiOperation& op : operations_) {
    if (op.status == "running") running.push_back(op);
  }
  return running;
}

std::optional<ApiOperation> ApiState::RunningForSnapshot(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const ApiOperation& op : operations_) {
    if (op.status == "running" && !op.snapshot_name.empty() && IdEquals(op.snapshot_name, name)) {
      return op;
    }
  }
  return std::nullopt;
}

bool ApiState::IsDeleted(std::string_view source_type, std::string_view id,
                         std::string_view identity) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Deleted& d : deleted_) {
    if (d.source_type == source_type && IdEquals(d.id, id) && d.identity == identity) return true;
  }
  return false;
}

std::vector<ApiEvent> ApiState::Events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

void ApiState::AddEvent(std::string_view source_type, std::string_view source_id,
                        std::string message) {
  std::lock_guard<std::mutex> lock(mu_);
  AddEventLocked(Clock::now(), source_type, source_id, std::move(message));
  SaveLocked();
}

}  // namespace finalsnap::detail

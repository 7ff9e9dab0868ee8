// The gate table, the walk through it, and what every phase shares: verdicts, events, putting
// the nodes back, the dry run's plan and the result's shapes.
#include "operation.h"

#include <unistd.h>

#include <algorithm>
#include <span>

#include "failpoint.h"
#include "finalsnap/text.h"

namespace finalsnap::ops {

// The whole operation, in order. A step refuses the operation by returning a Refusal; Main()
// stops at the first, puts everything back and reports it. A dry run stops after preflight.
const Operation::Gate Operation::kGates[] = {
    {"preflight", "target-resolved", When::kAlways, &Operation::ResolveTarget},
    {"preflight", "topology-consistent", When::kAlways, &Operation::CheckTopology},
    {"preflight", "permissions", When::kAlways, &Operation::CheckPermissions},
    {"preflight", "target-claimed", When::kAlways, &Operation::ClaimTarget},
    {"preflight", "snapshot-name-free", When::kSnapshot, &Operation::ClaimName},
    {"preflight", "storage-ready", When::kSnapshot, &Operation::CheckStorage},
    {"capture", "rdb-complete", When::kSnapshot, nullptr, &Operation::PrepareShard, /*ahead=*/true},
    {"quiesce", "writes-paused", When::kAlways, nullptr, &Operation::PauseWrites},
    {"capture", "rdb-complete", When::kSnapshot, nullptr, &Operation::CaptureShard},
    {"capture", "rdb-checksum", When::kSnapshot, nullptr, &Operation::CheckChecksum},
    {"capture", "rdb-parsed", When::kSnapshot, nullptr, &Operation::CheckParsed},
    {"capture", "keycount-match", When::kSnapshot, nullptr, &Operation::CheckKeycount},
    {"store", "durable", When::kSnapshot, &Operation::Commit},
    {"store", "readback", When::kSnapshot, &Operation::ReadBack},
    {"destroy", "topology-consistent", When::kDestroy, &Operation::RecheckTopology},
    {"destroy", "nodes-shutdown", When::kDestroy, &Operation::ShutDownNodes},
};

// Finishing a delete that an earlier run took past its point of no return (its journal says
// `proven`) and then died: the snapshot is already stored and proven, so only the nodes that are
// still up are claimed (no second finalsnap may finish it at the same time), checked against
// the journal and shut down (resume.cc).
const Operation::Gate Operation::kResumeGates[] = {
    {"preflight", "target-resolved", When::kAlways, &Operation::ResumeTarget},
    {"preflight", "permissions", When::kAlways, &Operation::CheckPermissions},
    {"preflight", "target-claimed", When::kAlways, &Operation::ClaimTarget},
    {"preflight", "snapshot-available", When::kSnapshot, &Operation::CheckResumedSnapshot},
    {"destroy", "topology-consistent", When::kDestroy, &Operation::RecheckResumed},
    {"destroy", "nodes-shutdown", When::kDestroy, &Operation::ShutDownNodes},
};

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

Operation::Operation(const Fleet& fleet, Target target, const OperationOptions& options)
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

OperationResult Operation::Run(Finish finish, std::optional<std::string> snapshot) {
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

double Operation::Ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool Operation::Applies(const Gate& g) const {
  switch (g.when) {
    case When::kAlways:
      return true;
    case When::kSnapshot:
      return snapshot_name_.has_value();
    case When::kDestroy:
      return Destroys();
  }
  return false;
}

// Failpoints (core/failpoint.h, test-only): "journal-written", "<phase>/<gate>" after each gate
// passes (e.g. "quiesce/writes-paused", "store/durable", "store/readback"), "capture/mid-capture"
// once a shard has received 1 MiB, and "destroy/replicas-shutdown" between the replicas' and the
// primaries' shutdown.
Task<OperationResult> Operation::Main() {
  start_ms_ = Ms();
  Verdict refusal = co_await Recover();
  const std::span<const Gate> gates =
      resuming_ ? std::span<const Gate>(kResumeGates) : std::span<const Gate>(kGates);
  for (const Gate& g : gates) {
    if (refusal) break;
    if (!Applies(g)) continue;
    if (options_.dry_run && g.phase != "preflight") break;
    refusal = Interrupted();
    if (refusal) break;
    gate_ = &g;
    if (!options_.dry_run && !journal_ && g.phase != "preflight") {
      refusal = OpenJournal(g);
      if (refusal) break;
      detail::Failpoint("journal-written");
    }
    // Without a snapshot, a destroy's point of no return is its first destroy gate.
    if (g.when == When::kDestroy && !resuming_) {
      refusal = Proven();
      if (refusal) break;
    }
    if (!g.ahead) Enter(g.phase);
    // Named, as in Step().
    Task<Verdict> task = g.whole != nullptr ? (this->*g.whole)() : OnEveryShard(g.each);
    refusal = co_await task;
    // A step that failed because the operation was cancelled reports the cancellation.
    if (refusal && interrupted_) refusal = Interrupted();
    if (refusal) break;
    if (!g.ahead) detail::Failpoint(std::string(g.phase) + "/" + std::string(g.gate));
  }
  gate_ = nullptr;
  if (refusal) {
    // Refuse: writes resume, the nodes are left as they were, no partial snapshot remains.
    result_.ok = false;
    result_.fault = refusal->fault;
    result_.failed_gate = refusal->gate;
    result_.message = refusal->gate.empty()
                          ? refusal->message
                          : "gate " + refusal->gate + " refused: " + refusal->message;
    if (writer_) writer_->Abort();
    const bool back = co_await PutBack(/*everything=*/true);
    CloseJournal(back, /*refused=*/true);
    Describe("available");
    co_return result_;
  }
  if (options_.dry_run) {
    Plan();
    Describe("available");
    result_.ok = true;
    co_return result_;
  }
  const bool back = co_await PutBack(/*everything=*/false);
  CloseJournal(back, /*refused=*/false);
  Describe(finish_ == Finish::kKeep ? "available" : "deleted");
  result_.ok = true;
  co_return result_;
}

Task<Verdict> Operation::OnEveryShard(Task<Verdict> (Operation::*step)(ShardRun&)) {
  first_refusal_.reset();
  std::vector<Task<Verdict>> steps;
  for (auto& run : runs_) steps.push_back(Step(step, *run));
  detail::WhenAll<Verdict> all(std::move(steps));
  co_await all;
  co_return first_refusal_;
}

Task<Verdict> Operation::Step(Task<Verdict> (Operation::*step)(ShardRun&), ShardRun& run) {
  // Named: GCC 12 miscompiles a call through a member pointer inside a co_await expression.
  Task<Verdict> task = (this->*step)(run);
  Verdict r = co_await task;
  if (r && !first_refusal_) {
    first_refusal_ = r;
    CancelCaptures("stopped: the capture of another shard failed");
  }
  co_return r;
}

void Operation::CancelCaptures(const std::string& why) {
  for (auto& r : runs_) {
    if (r->active_capture != nullptr) r->active_capture->Cancel(why);
  }
}

Verdict Operation::Interrupted() const {
  if (!interrupted_) return std::nullopt;
  return Refusal("", "Interrupted", "the operation was cancelled (" + *interrupted_ +
                                        ") before it finished; nothing was shut down");
}

void Operation::Pass(const std::string& evidence, const std::string& node) {
  Record(gate_->gate, true, evidence, node);
}

Refusal Operation::Refuse(const std::string& fault, const std::string& message,
                          const std::string& evidence, const std::string& node) {
  return RefuseGate(gate_->gate, fault, message, evidence, node);
}

Refusal Operation::RefuseGate(std::string_view gate, const std::string& fault,
                              const std::string& message, const std::string& evidence,
                              const std::string& node) {
  Record(gate, false, evidence.empty() ? message : evidence, node);
  return Refusal(std::string(gate), fault, message);
}

void Operation::Record(std::string_view gate, bool passed, const std::string& evidence,
                       const std::string& node) {
  GateVerdict v;
  v.gate = std::string(gate);
  v.phase = std::string(gate_->phase);
  v.passed = passed;
  v.evidence = evidence;
  v.node = node;
  v.at_ms = Ms() - start_ms_;
  result_.gates.push_back(v);
  if (options_.observer) {
    OperationEvent e;
    e.kind = OperationEvent::Kind::kGate;
    e.phase = v.phase;
    e.gate = v;
    options_.observer(e);
  }
}

void Operation::Enter(std::string_view phase) {
  if (phase == phase_) return;
  phase_ = std::string(phase);
  if (journal_) {
    if (Status s = journal_->Append({{"event", "phase"}, {"phase", phase_}}); !s.ok()) {
      result_.notes.push_back(s.message());
    }
  }
  if (!options_.observer) return;
  OperationEvent e;
  e.kind = OperationEvent::Kind::kPhase;
  e.phase = phase_;
  options_.observer(e);
}

bool Operation::Survives(const GroupNode* n) const {
  return std::find(destroy_order_.begin(), destroy_order_.end(), n) == destroy_order_.end();
}

std::string Operation::FileFor(const GroupShard& shard) const {
  switch (fleet_.storage.compression) {
    case Compression::kZstd:
      return shard.node_group_id + ".rdb.zst";
    case Compression::kLz4:
      return shard.node_group_id + ".rdb.lz4";
    case Compression::kNone:
      break;
  }
  return shard.node_group_id + ".rdb";
}

// Unpauses and puts back the config of every node that is still running (everything: after a
// refusal; else the survivors of a destroy). A command that timed out closed its connection: a
// new one is opened to put the node back. False if some setting could not be put back (the
// journal then stays, for `finalsnap recover`).
Task<bool> Operation::PutBack(bool everything) {
  bool all = true;
  for (auto& run : runs_) {
    const bool primary_left = everything || Survives(run->shard->primary);
    const bool source_left = everything || Survives(run->source);
    std::vector<GroupNode*> nodes;
    nodes.push_back(run->shard->primary);
    if (run->source != run->shard->primary) nodes.push_back(run->source);
    for (GroupNode* n : nodes) {
      const bool needed = (n == run->shard->primary && primary_left && run->paused) ||
                          (n == run->source && source_left && !run->config_changes.empty());
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
    if (source_left) {
      const int failed = co_await RestoreConfig(*run);
      if (failed != 0) all = false;
    }
  }
  co_return all;
}

// A dry run's answer: what the operation would do, step by step, after preflight passed.
void Operation::Plan() {
  for (const auto& run : runs_) {
    result_.plan.push_back("pause writes on " + run->shard->primary->address.ToString() +
                           " (CLIENT PAUSE " + std::to_string(target_.settings().pause_timeout_ms) +
                           " WRITE, renewed)");
  }
  if (snapshot_name_) {
    for (const auto& run : runs_) {
      result_.plan.push_back("stream the RDB of " + run->source->address.ToString() + " (" +
                             std::string(CaptureModeName(target_.settings().capture)) +
                             ") through the validator into snapshot " + *snapshot_name_ + " as " +
                             FileFor(*run->shard));
    }
    result_.plan.push_back("fsync, read back and check the snapshot");
  }
  for (const GroupNode* n : destroy_order_) {
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
}

// The target's fields for the result: the cache cluster, and for groups the live topology.
void Operation::Describe(const std::string& status) {
  if (!topology_.shards.empty()) {
    const GroupNode* n = member_ != nullptr ? member_ : topology_.shards[0].primary;
    result_.cluster.endpoint = n->address.ToString();
    result_.cluster.engine = n->facts.engine;
    result_.cluster.engine_version = n->facts.version;
    result_.cluster.role = n->facts.role;
    result_.cluster.used_memory = n->facts.used_memory;
  }
  result_.cluster.status = status;
  if (target_.kind == Target::Kind::kCacheCluster) return;
  ReplicationGroupInfo g = GroupInfoOf(target_.group->id, topology_);
  g.status = status;
  g.error.reset();  // the result's fault and message say what went wrong
  for (NodeGroupInfo& ng : g.node_groups) {
    ng.status = status;
    for (GroupMember& m : ng.members) {
      const GroupNode* n = topology_.FindMember(m.cache_cluster_id);
      m.status = status == "deleted" && n != nullptr && Survives(n) ? "available" : status;
    }
  }
  if (finish_ == Finish::kRetainPrimary || finish_ == Finish::kRemoveMember) {
    if (status == "deleted") g.status = "available";  // the group itself stays
  }
  result_.group = std::move(g);
}

}  // namespace finalsnap::ops

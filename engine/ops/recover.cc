// Recovery from finalsnap's own death: the journal an operation writes as it goes (journal.h),
// the repair of journals whose process is gone, and the take-over of an interrupted delete.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "finalsnap/text.h"
#include "operation.h"

namespace finalsnap {

bool RecoveryReport::ok() const {
  return errors.empty() && std::all_of(recovered.begin(), recovered.end(),
                                       [](const Recovery& r) { return r.failures.empty(); });
}

namespace ops {

using json = nlohmann::json;
using std::chrono::milliseconds;

namespace {

std::string FinishName(Finish f) {
  switch (f) {
    case Finish::kKeep:
      return "keep";
    case Finish::kDestroyAll:
      return "destroy-all";
    case Finish::kRetainPrimary:
      return "retain-primary";
    case Finish::kRemoveMember:
      return "remove-member";
  }
  return "keep";
}

// What a journal's target is part of: two operations on the same key meet on the same nodes.
std::string TargetKey(const Fleet& fleet, const std::string& kind, const std::string& id) {
  if (kind == "cache-cluster") return "cache-cluster:" + Lower(id);
  if (kind == "group") return "group:" + Lower(id);
  std::optional<Target> t = ResolveCacheCluster(fleet, id);
  if (t && t->group != nullptr) return "group:" + Lower(t->group->id);
  return "member:" + Lower(id);
}

const NodeSettings* SettingsFor(const Fleet& fleet, const JournalState& j) {
  if (j.target_kind == "cache-cluster") {
    const CacheClusterEntry* e = fleet.FindCacheCluster(j.target);
    return e != nullptr ? &e->settings : nullptr;
  }
  if (j.target_kind == "group") {
    const ReplicationGroupEntry* g = fleet.FindReplicationGroup(j.target);
    return g != nullptr ? &g->settings : nullptr;
  }
  std::optional<Target> t = ResolveCacheCluster(fleet, j.target);
  return t && t->group != nullptr ? &t->group->settings : nullptr;
}

// The command that finishes a pending delete.
std::string FinishCommand(const JournalState& j) {
  std::string c = "finalsnap " + j.command +
                  (j.command == "delete-replication-group" ? " --replication-group-id "
                                                           : " --cache-cluster-id ") +
                  j.target;
  if (j.snapshot) c += " --final-snapshot-identifier " + *j.snapshot;
  if (j.finish == "retain-primary") c += " --retain-primary-cluster";
  return c;
}

// Puts back what the journal says the operation changed, on every node not known to be down.
Task<Recovery> RepairJournal(Loop& loop, const Fleet& fleet, const JournalState& j) {
  Recovery r;
  r.operation_id = j.operation_id;
  r.command = j.command;
  r.target = j.target;
  r.replication_group = j.target_kind == "group";
  r.snapshot_name = j.snapshot;
  r.pending_delete = j.PendingDelete();
  if (r.pending_delete) r.next_step = FinishCommand(j);
  if (j.recovered) co_return r;
  std::vector<std::string> nodes;
  auto add = [&](const std::string& n) {
    if (!j.down.contains(n) && std::find(nodes.begin(), nodes.end(), n) == nodes.end()) {
      nodes.push_back(n);
    }
  };
  for (const JournalConfig& c : j.config) add(c.node);
  for (const std::string& n : j.paused) add(n);
  const NodeSettings* settings = SettingsFor(fleet, j);
  if (!nodes.empty() && settings == nullptr) {
    r.failures.push_back(j.target +
                         " is no longer in the fleet file, so its nodes cannot be "
                         "reached with its settings; put it back in and run "
                         "finalsnap recover");
    co_return r;
  }
  std::optional<std::string> password;
  if (!nodes.empty()) {
    ResolvedSecret secret = ResolvePassword(*settings);
    if (!secret.ok()) {
      r.failures.push_back(secret.error().message());
      co_return r;
    }
    password = *secret;
  }
  for (const std::string& address : nodes) {
    const size_t colon = address.rfind(':');
    detail::NodeAddress a{address.substr(0, colon),
                          static_cast<uint16_t>(std::stoul(address.substr(colon + 1)))};
    NodeClient client(
        loop, a, detail::NodeAuth{settings->username, password},
        detail::NodeTimeouts{milliseconds(settings->connect_timeout_ms),
                             milliseconds(std::max(settings->command_timeout_ms, 5000))});
    Status connected = co_await client.Connect();
    if (!connected.ok()) {
      if (detail::NothingListening(connected)) {
        r.repairs.push_back(address +
                            " is not running: nothing to put back there (a restarted "
                            "server reads its configuration file)");
      } else {
        r.failures.push_back("cannot reach " + address + ": " + connected.message());
      }
      continue;
    }
    for (const JournalConfig& c : j.config) {
      if (c.node != address) continue;
      CommandOutcome set = co_await client.Command(Argv("CONFIG", "SET", c.name, c.original));
      if (set.ok()) {
        r.repairs.push_back("put " + c.name + " on " + address + " back to " + c.original);
      } else {
        r.failures.push_back("could not put " + c.name + " on " + address + " back to " +
                             c.original + ": " + set.Error());
      }
    }
    if (std::find(j.paused.begin(), j.paused.end(), address) != j.paused.end()) {
      CommandOutcome un = co_await client.Command(Argv("CLIENT", "UNPAUSE"));
      r.repairs.push_back(un.ok() ? "lifted the write pause on " + address
                                  : address + " has no CLIENT UNPAUSE (" + un.Error() +
                                        "): its pause lapsed on its own");
    }
  }
  if (!r.failures.empty()) co_return r;
  Expected<SnapshotStore> store = SnapshotStore::Open(fleet.storage.path);
  if (!store.ok()) {
    r.failures.push_back(store.error().message());
    co_return r;
  }
  // Committed but never read back: not a proven snapshot, so not one to show as available.
  if (j.snapshot && j.durable && !j.proven && store->SnapshotDir(*j.snapshot)) {
    if (Status s = store->Delete(*j.snapshot); s.ok()) {
      r.repairs.push_back("removed snapshot " + *j.snapshot +
                          ": it was stored but never read back and checked");
    } else {
      r.failures.push_back("could not remove snapshot " + *j.snapshot + ": " + s.message());
    }
  }
  Expected<std::vector<std::string>> swept = store->SweepAbandonedPartials();
  if (!swept.ok()) {
    r.failures.push_back(swept.error().message());
  } else {
    for (const std::string& name : *swept) {
      r.repairs.push_back("removed " + name + " from " + store->root().string());
    }
  }
  co_return r;
}

}  // namespace

Task<RecoveryReport> RecoverJournals(Loop& loop, const Fleet& fleet,
                                     const std::function<void(const OperationEvent&)>& observer) {
  RecoveryReport report;
  auto tell = [&](const std::string& message) {
    if (!observer) return;
    OperationEvent e;
    e.kind = OperationEvent::Kind::kRecovery;
    e.message = message;
    observer(e);
  };
  for (FoundJournal& found : ScanJournals(fleet.storage.path)) {
    if (found.running) continue;
    if (!found.state.ok()) {
      report.errors.push_back("journal " + found.path.string() + " cannot be read (" +
                              found.state.error().message() + "); it is left alone");
      tell(report.errors.back());
      continue;
    }
    Expected<std::unique_ptr<Journal>> adopted = Journal::Adopt(found.path);
    if (!adopted.ok()) {
      if (adopted.error().message().find("is running") != std::string::npos) continue;
      report.errors.push_back(adopted.error().message());
      tell(report.errors.back());
      continue;
    }
    Journal& journal = **adopted;
    Recovery r = co_await RepairJournal(loop, fleet, journal.state());
    if (r.failures.empty()) {
      Status closed =
          r.pending_delete
              ? (journal.state().recovered ? Status() : journal.Append({{"event", "recovered"}}))
              : journal.Remove();
      if (!closed.ok()) r.failures.push_back(closed.message());
    }
    const std::string who = "operation " + r.operation_id + " (" + r.command + " " + r.target +
                            ", finalsnap died while it ran): ";
    for (const std::string& x : r.repairs) tell(who + x);
    for (const std::string& x : r.failures) tell(who + "could not repair: " + x);
    if (r.pending_delete) {
      tell(who + "the delete passed its point of no return and is unfinished; run `" + r.next_step +
           "` to finish it");
    }
    report.recovered.push_back(std::move(r));
  }
  co_return report;
}

std::string Operation::CommandName() const {
  if (finish_ == Finish::kKeep) return "create-snapshot";
  return target_.kind == Target::Kind::kGroup ? "delete-replication-group" : "delete-cache-cluster";
}

JournalState Operation::Header() const {
  JournalState h;
  h.operation_id = NewOperationId();
  h.command = CommandName();
  switch (target_.kind) {
    case Target::Kind::kCacheCluster:
      h.target_kind = "cache-cluster";
      h.target = target_.cluster->id;
      break;
    case Target::Kind::kGroup:
      h.target_kind = "group";
      h.target = target_.group->id;
      break;
    case Target::Kind::kMember:
      h.target_kind = "member";
      h.target = target_.id;
      break;
  }
  h.finish = FinishName(finish_);
  h.snapshot = snapshot_name_;
  h.pid = ::getpid();
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) == 0) h.host = host;
  h.started = SnapshotTimeString(std::chrono::system_clock::now());
  return h;
}

Verdict Operation::OpenJournal(const Gate& g) {
  if (!store_) {
    Expected<SnapshotStore> opened = SnapshotStore::Open(fleet_.storage.path);
    if (!opened.ok()) {
      return RefuseGate(g.gate, "InvalidParameterValue",
                        "cannot keep the operation journal: " + opened.error().message() +
                            "; nothing was changed");
    }
    store_.emplace(*std::move(opened));
  }
  Expected<std::unique_ptr<Journal>> created = Journal::Create(store_->root(), Header());
  if (!created.ok()) {
    return RefuseGate(g.gate, "InvalidParameterValue",
                      "cannot write the operation journal: " + created.error().message() +
                          "; nothing was changed");
  }
  journal_ = *std::move(created);
  if (writer_)
    return Journaled({{"event", "partial"}, {"dir", writer_->dir().filename().string()}});
  return std::nullopt;
}

Verdict Operation::Journaled(const json& event) {
  if (!journal_) return std::nullopt;
  if (Status s = journal_->Append(event); !s.ok()) {
    return Refuse(target_.StateFault(), "the operation journal could not be written (" +
                                            s.message() + "); nothing more is changed");
  }
  return std::nullopt;
}

Verdict Operation::Proven() {
  if (!journal_ || journal_->state().proven) return std::nullopt;
  json event = {{"event", "proven"}};
  if (Destroys()) {
    json nodes = json::array();
    for (const GroupNode* n : destroy_order_) {
      nodes.push_back({{"node", n->address.ToString()},
                       {"member", n->cache_cluster_id.empty() ? target_.id : n->cache_cluster_id},
                       {"role", n->primary ? "primary" : "replica"}});
    }
    event["destroy"] = nodes;
    json sentinels = json::array();
    for (const detail::NodeAddress& a : topology_.sentinels) sentinels.push_back(a.ToString());
    event["sentinels"] = sentinels;
    if (target_.group != nullptr) event["master_name"] = target_.group->master_name;
  }
  return Journaled(event);
}

void Operation::CloseJournal(bool put_back, bool refused) {
  if (!journal_) return;
  const JournalState& j = journal_->state();
  if (refused && j.PendingDelete() && (resuming_ || shutdown_sent_)) {
    if (put_back) (void)journal_->Append({{"event", "recovered"}});
    result_.notes.push_back(std::string("the delete had passed its point of no return (") +
                            (shutdown_sent_
                                 ? "nodes were already sent SHUTDOWN"
                                 : "its final snapshot is proven and an earlier run began it") +
                            "), so it stays pending: run `" + FinishCommand(j) + "` to finish it");
  } else if (!put_back) {
    result_.notes.push_back("not every setting could be put back; the journal " +
                            journal_->path().string() + " stays, and `finalsnap recover` retries");
  } else if (Status s = journal_->Remove(); !s.ok()) {
    result_.notes.push_back(s.message());
  }
  journal_.reset();
}

Task<Verdict> Operation::Recover() {
  if (!options_.dry_run) {
    RecoveryReport report = co_await RecoverJournals(loop_, fleet_, options_.observer);
    for (const Recovery& r : report.recovered) {
      for (const std::string& x : r.repairs) {
        result_.notes.push_back("recovered operation " + r.operation_id + ": " + x);
      }
      for (const std::string& x : r.failures) {
        result_.notes.push_back("could not recover operation " + r.operation_id + ": " + x);
      }
    }
    for (const std::string& e : report.errors) result_.notes.push_back(e);
  }
  const JournalState mine = Header();
  const std::string key = TargetKey(fleet_, mine.target_kind, mine.target);
  for (FoundJournal& found : ScanJournals(fleet_.storage.path)) {
    if (found.running || !found.state.ok() || !found.state->PendingDelete()) continue;
    const JournalState& j = *found.state;
    if (TargetKey(fleet_, j.target_kind, j.target) != key) continue;
    const bool same = j.command == mine.command && EqualsIgnoreCase(j.target, mine.target) &&
                      j.finish == mine.finish &&
                      j.snapshot.has_value() == mine.snapshot.has_value() &&
                      (!j.snapshot || EqualsIgnoreCase(*j.snapshot, *mine.snapshot));
    const std::string what = "a " + j.command + " of " + j.target +
                             (j.snapshot ? " with final snapshot " + *j.snapshot : "") +
                             " (operation " + j.operation_id + ", started " + j.started +
                             ") passed its point of no return and was interrupted";
    if (!same) {
      co_return Refusal("", target_.StateFault(),
                        what + "; an accepted delete is finished, not undone: run `" +
                            FinishCommand(j) + "` first");
    }
    Expected<std::unique_ptr<Journal>> adopted = Journal::Adopt(found.path);
    if (!adopted.ok()) {
      co_return Refusal("", target_.StateFault(),
                        what + ", and it cannot be taken over: " + adopted.error().message());
    }
    journal_ = *std::move(adopted);
    resuming_ = true;
    result_.notes.push_back(what + "; this run finishes it");
    co_return std::nullopt;
  }
  co_return std::nullopt;
}

}  // namespace ops

RecoveryReport Recover(const Fleet& fleet, const OperationOptions& options) {
  detail::Loop loop;
  return detail::RunToCompletion(loop, ops::RecoverJournals(loop, fleet, options.observer));
}

}  // namespace finalsnap

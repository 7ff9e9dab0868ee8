// kResumeGates: finishing a delete whose earlier run passed its point of no return and died.
// The final snapshot is stored and proven; the journal lists the nodes to shut down, in order,
// and which of them were already sent SHUTDOWN NOSAVE. Only the nodes still up are claimed
// (ClaimTarget, claim.cc), checked against it (their roles) and shut down; ShutDownNodes
// (destroy.cc) does the rest. The permissions gate runs again for what is left to send (the
// claim, ROLE, SHUTDOWN NOSAVE, the sentinels' part): a user who lost +shutdown since the
// interruption is refused before anything is shut down, and the delete stays pending.
#include "operation.h"

namespace finalsnap::ops {

using std::chrono::milliseconds;

namespace {

detail::NodeAddress AddressOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return {host_port.substr(0, colon),
          static_cast<uint16_t>(std::stoul(host_port.substr(colon + 1)))};
}

}  // namespace

// target-resolved: every node of the journal's destroy list answers, or refuses connections (it
// is down already: shut down by the interrupted run, or gone on its own).
Task<Verdict> Operation::ResumeTarget() {
  const JournalState& j = journal_->state();
  const NodeSettings& settings = target_.settings();
  const ResolvedSecret password = ResolvePassword(settings);
  if (!password.ok()) co_return Refuse("InvalidParameterValue", password.error().message());
  const detail::NodeAuth auth{settings.username, *password};
  const detail::NodeTimeouts timeouts{milliseconds(settings.connect_timeout_ms),
                                      milliseconds(settings.command_timeout_ms)};
  topology_.is_group = target_.kind != Target::Kind::kCacheCluster;
  for (const std::string& s : j.sentinels) topology_.sentinels.push_back(AddressOf(s));
  std::string evidence;
  size_t down = 0;
  for (const JournalNode& n : j.destroy) {
    if (j.down.contains(n.address)) {
      ++down;
      continue;
    }
    auto node = std::make_unique<GroupNode>();
    node->address = AddressOf(n.address);
    node->cache_cluster_id = n.member;
    node->primary = n.primary;
    node->client = std::make_unique<NodeClient>(loop_, node->address, auth, timeouts);
    Status connected = co_await node->client->Connect();
    if (!connected.ok()) {
      if (!detail::NothingListening(connected)) {
        co_return Refuse(target_.StateFault(),
                         "cannot reach " + n.address +
                             " to finish the interrupted delete: " + connected.message(),
                         connected.message(), n.address);
      }
      ++down;
      (void)journal_->Append({{"event", "down"}, {"node", n.address}});
      evidence += (evidence.empty() ? "" : "; ") + n.address + " already refuses connections" +
                  (j.shutdown_sent.contains(n.address) ? " (sent SHUTDOWN NOSAVE before)"
                                                       : " (it was not shut down by finalsnap)");
      continue;
    }
    // The server's version, for the permissions gate (ACL DRYRUN is 7.0+). A node that does not
    // answer INFO is checked by probes instead.
    CommandOutcome info = co_await node->client->Command(detail::Argv("INFO", "server"));
    if (info.ok()) node->facts = detail::ParseServerFacts(detail::ParseInfo(info.reply.str));
    destroy_order_.push_back(node.get());
    topology_.nodes.push_back(std::move(node));
  }
  Pass("finishing operation " + j.operation_id + " (" + j.command + ", started " + j.started +
       "): " + std::to_string(destroy_order_.size()) + " node(s) still up, " +
       std::to_string(down) + " already down" + (evidence.empty() ? "" : "; " + evidence));
  co_return std::nullopt;
}

// snapshot-available: the final snapshot the interrupted run proved is still in the storage.
Task<Verdict> Operation::CheckResumedSnapshot() {
  Expected<SnapshotStore> opened =
      SnapshotStore::Open(fleet_.storage.path, SnapshotStore::Access::kReadOnly);
  std::optional<Snapshot> snapshot;
  if (opened.ok()) snapshot = opened->Describe(*snapshot_name_);
  if (!snapshot || snapshot->snapshot_status != "available") {
    const std::string why = !opened.ok() ? opened.error().message()
                            : snapshot   ? "its status is " + snapshot->snapshot_status
                                         : "it is not in the storage";
    co_return Refuse("InvalidSnapshotState",
                     "the final snapshot " + *snapshot_name_ +
                         " of the interrupted delete is no longer available (" + why +
                         "); nothing more is shut down",
                     why);
  }
  result_.snapshot = *snapshot;
  Pass("final snapshot " + snapshot->snapshot_name + " is available (" +
       std::to_string(snapshot->node_snapshots.size()) + " shard(s)), proven by operation " +
       journal_->state().operation_id);
  co_return std::nullopt;
}

// topology-consistent: each node still up has the role the journal recorded. A failover since
// the interruption refuses: nothing more is shut down.
Task<Verdict> Operation::RecheckResumed() {
  for (GroupNode* n : destroy_order_) {
    const std::string where = n->address.ToString();
    CommandOutcome role = co_await n->client->Command(Argv("ROLE"));
    if (!role.ok() || role.reply.elements.empty()) {
      co_return Refuse(
          target_.StateFault(),
          "ROLE on " + where + " failed: " + role.Error() + "; nothing more was shut down",
          "ROLE failed: " + role.Error(), where);
    }
    const bool primary = role.reply.elements[0].str == "master";
    if (primary != n->primary) {
      const std::string changed = where + " is now a " + (primary ? "primary" : "replica") +
                                  ", the journal recorded a " +
                                  (n->primary ? "primary" : "replica");
      co_return Refuse(target_.StateFault(),
                       "the group changed since the interrupted delete: " + changed +
                           "; nothing more was shut down",
                       changed, where);
    }
  }
  Pass(std::to_string(destroy_order_.size()) +
       " node(s) still up answer with the roles the journal recorded");
  co_return std::nullopt;
}

}  // namespace finalsnap::ops

// destroy: topology-consistent (again) -> nodes-shutdown, then the sentinels forget the group.
// Reached only when every earlier gate passed.
#include "failpoint.h"
#include "operation.h"
#include "tcp_probe.h"

namespace finalsnap::ops {

using std::chrono::milliseconds;

// Right before anything is shut down, the group must still be what was snapshotted: a replica
// that died or a failover since preflight refuses the destroy. (A standalone node has nothing
// to recheck.)
Task<Verdict> Operation::RecheckTopology() {
  if (!topology_.is_group) co_return std::nullopt;
  const std::string changed = co_await detail::Recheck(topology_);
  if (!changed.empty()) {
    co_return Refuse(target_.StateFault(),
                     "the group changed during the operation: " + changed +
                         "; nothing was shut down",
                     changed);
  }
  Pass("every member still answers with the role and link it had at preflight");
  co_return std::nullopt;
}

// nodes-shutdown: replicas before primaries (a primary shut down first would be failed over).
Task<Verdict> Operation::ShutDownNodes() {
  for (size_t i = 0; i < destroy_order_.size(); ++i) {
    GroupNode* n = destroy_order_[i];
    if (n->primary && i > 0 && !destroy_order_[i - 1]->primary) {
      detail::Failpoint("destroy/replicas-shutdown");
    }
    if (Verdict r = co_await ShutDown(*n)) co_return r;
  }
  if (!topology_.sentinels.empty()) co_await ForgetInSentinels();
  co_return std::nullopt;
}

Task<Verdict> Operation::ShutDown(GroupNode& node) {
  // The snapshot connection is already closed. SHUTDOWN NOSAVE: a plain SHUTDOWN would save and
  // wait for replicas. Success is the connection closing with no reply.
  const std::string where = node.address.ToString();
  for (auto& run : runs_) {
    if (run->shard->primary == &node) run->pause_timer.Stop();
  }
  if (!node.client->connected()) {
    if (Status s = co_await node.client->Connect(); !s.ok()) {
      co_return Refuse(target_.StateFault(),
                       "cannot reach " + where + " to shut it down: " + s.message(),
                       "cannot reconnect: " + s.message(), where);
    }
  }
  if (Verdict j = Journaled({{"event", "shutdown"}, {"node", where}})) co_return j;
  shutdown_sent_ = true;
  CommandOutcome r = co_await node.client->Command(Argv("SHUTDOWN", "NOSAVE"));
  if (r.status.ok() && r.reply.is_error()) {
    co_return Refuse(target_.StateFault(),
                     "SHUTDOWN NOSAVE refused by " + where + ": " + r.reply.str,
                     "SHUTDOWN NOSAVE refused: " + r.reply.str, where);
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
    if (!last.empty() && last.find("refused") != std::string::npos) break;
    if (Ms() > deadline) {
      co_return Refuse(target_.StateFault(),
                       where + " still accepts connections after SHUTDOWN NOSAVE",
                       "SHUTDOWN NOSAVE sent, but the port still does not refuse connections "
                       "after 10 s (" +
                           (last.empty() ? std::string("it accepts them") : last) + ")",
                       where);
    }
    co_await detail::Sleep(loop_, milliseconds(20));
  }
  if (journal_) (void)journal_->Append({{"event", "down"}, {"node", where}});
  Pass(std::string(node.primary ? "primary" : "replica") +
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
  for (const detail::NodeAddress& a : topology_.sentinels) {
    NodeClient sentinel(loop_, a, detail::NodeAuth{}, detail::NodeTimeouts{});
    std::string outcome;
    if (Status s = co_await sentinel.Connect(); !s.ok()) {
      outcome = s.message();
    } else {
      CommandOutcome r = co_await sentinel.Command(Argv("SENTINEL", remove ? "REMOVE" : "RESET", name));
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

}  // namespace finalsnap::ops

// Sentinel discovery: the primary as a quorum of the fleet's sentinels names it, and its replicas
// as they list them.
#include "discovery.h"
#include "finalsnap/text.h"

namespace finalsnap::detail::discovery {

Task<std::optional<NodeAddress>> Discovery::AskSentinels() {
  std::optional<NodeAddress> agreed;
  std::string agreed_by;
  for (const Endpoint& e : request_.sentinels) {
    // Sentinels keep their own ACLs; they are asked without the nodes' credentials.
    NodeClient sentinel(loop_, AddressOf(e), NodeAuth{}, request_.timeouts);
    if (Status s = co_await sentinel.Connect(); !s.ok()) {
      topology_.unreachable = "sentinel " + e.ToString() + " is not reachable: " + s.message();
      co_return std::nullopt;
    }
    const std::string who = "sentinel " + e.ToString();
    const std::vector<std::string> addr_argv =
        Argv("SENTINEL", "get-master-addr-by-name", request_.master_name);
    CommandOutcome addr = co_await sentinel.Command(addr_argv);
    if (Denied(addr, addr_argv, who, /*sentinel=*/true)) co_return std::nullopt;
    if (!addr.ok() || addr.reply.elements.size() != 2) {
      topology_.unreachable = "sentinel " + e.ToString() + " does not know master '" +
                              request_.master_name + "'" +
                              (addr.ok() ? std::string() : ": " + addr.Error());
      co_return std::nullopt;
    }
    const NodeAddress p{addr.reply.elements[0].str,
                        static_cast<uint16_t>(ToU64(addr.reply.elements[1].str).value_or(0))};
    if (!agreed) {
      agreed = p;
      agreed_by = e.ToString();
    } else if (!SameAddress(*agreed, p.host, p.port)) {
      Inconsistent("sentinels disagree about the primary: " + agreed_by + " names " +
                   agreed->ToString() + ", " + e.ToString() + " names " + p.ToString());
      co_return std::nullopt;
    }
    const std::vector<std::string> master_argv = Argv("SENTINEL", "MASTER", request_.master_name);
    CommandOutcome master = co_await sentinel.Command(master_argv);
    if (Denied(master, master_argv, who, /*sentinel=*/true)) co_return std::nullopt;
    if (!master.ok()) {
      Inconsistent("SENTINEL MASTER on " + e.ToString() + " failed: " + master.Error());
      co_return std::nullopt;
    }
    const std::string flags = FlatMap(master.reply)["flags"];
    for (const char* bad : {"failover_in_progress", "promoted", "s_down", "o_down"}) {
      if (HasFlag(flags, bad)) {
        Inconsistent(
            std::string("sentinel ") + e.ToString() + " reports the primary as " + bad +
            (HasFlag(flags, "failover_in_progress") ? " (a failover is in progress)" : "") +
            " (flags " + flags + ")");
        co_return std::nullopt;
      }
    }
    const std::vector<std::string> replicas_argv =
        Argv("SENTINEL", "REPLICAS", request_.master_name);
    CommandOutcome replicas = co_await sentinel.Command(replicas_argv);
    if (Denied(replicas, replicas_argv, who, /*sentinel=*/true)) co_return std::nullopt;
    std::map<std::string, std::string> seen;
    if (replicas.ok()) {
      for (const Reply& r : replicas.reply.elements) {
        auto m = FlatMap(r);
        seen[CanonicalHost(m["ip"]) + ":" + m["port"]] = m["flags"];
      }
    }
    sentinel_replicas_.push_back(std::move(seen));
    topology_.sentinels.push_back(AddressOf(e));
  }
  co_return agreed;
}

Task<bool> Discovery::CheckSentinelReplicas(const GroupShard& shard) {
  for (size_t i = 0; i < sentinel_replicas_.size(); ++i) {
    const std::string who = topology_.sentinels[i].ToString();
    for (const auto& [addr, flags] : sentinel_replicas_[i]) {
      if (HasFlag(flags, "s_down") || HasFlag(flags, "o_down") || HasFlag(flags, "disconnected")) {
        co_return Inconsistent("sentinel " + who + " reports replica " + addr + " as down (flags " +
                               flags + ")");
      }
      bool member = false;
      for (const GroupNode* r : shard.replicas) {
        member = member ||
                 CanonicalHost(r->address.host) + ":" + std::to_string(r->address.port) == addr;
      }
      if (!member) {
        co_return Inconsistent("sentinel " + who + " knows replica " + addr +
                               ", which the primary does not list as online");
      }
    }
    if (sentinel_replicas_[i].size() != shard.replicas.size()) {
      co_return Inconsistent(
          "sentinel " + who + " knows " + std::to_string(sentinel_replicas_[i].size()) +
          " replica(s), the primary lists " + std::to_string(shard.replicas.size()));
    }
  }
  co_return true;
}

}  // namespace finalsnap::detail::discovery

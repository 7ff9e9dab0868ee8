// Topology discovery's own parts, private to the node stage: the walk (topology.cc), Sentinel
// (sentinel_discovery.cc) and Redis Cluster (cluster_discovery.cc).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "topology.h"

// GCC 12: a coroutine is never called with a temporary argument inside a co_await (it frees the
// temporary twice), so every such argument is named first.
namespace finalsnap::detail::discovery {

std::optional<uint64_t> ToU64(std::string_view s);
std::string Field(const std::map<std::string, std::string>& m, const std::string& k);
// Hosts compared as the nodes announce them: "localhost" is the loopback address.
std::string CanonicalHost(std::string host);
bool SameAddress(const NodeAddress& a, const std::string& host, uint16_t port);
bool AddressLess(const GroupNode* a, const GroupNode* b);
std::string Pad(size_t n, int width);
// A sentinel's reply to SENTINEL MASTER / one entry of SENTINEL REPLICAS: a flat field/value
// array (RESP2) as a map.
std::map<std::string, std::string> FlatMap(const Reply& r);
bool HasFlag(const std::string& flags, std::string_view flag);
NodeAddress AddressOf(const Endpoint& e);

class Discovery {
 public:
  Discovery(Loop& loop, const DiscoveryRequest& request) : loop_(loop), request_(request) {}

  Task<Topology> Run();

 private:
  // The node at `address`, connected and with INFO read; an existing one is reused. On failure
  // sets topology_.unreachable and returns nullptr.
  Task<GroupNode*> Attach(NodeAddress address);
  Task<bool> Standalone();
  Task<bool> Replicated(NodeAddress primary_address);
  Task<bool> Cluster(GroupNode* seed);
  // The primary as the sentinels see it; sets unreachable/inconsistent on failure.
  Task<std::optional<NodeAddress>> AskSentinels();
  Task<bool> CheckSentinelReplicas(const GroupShard& shard);
  void NameMembers();
  bool Inconsistent(std::string why) {
    if (topology_.inconsistent.empty()) topology_.inconsistent = std::move(why);
    return false;
  }
  // True (and discovery stops) when `r` is a NOPERM for `argv` on `node`: the refusal names it
  // as such. Sentinels are asked without the nodes' credentials, as their default user.
  bool Denied(const CommandOutcome& r, const std::vector<std::string>& argv,
              const std::string& node, bool sentinel = false) {
    if (!r.denied()) return false;
    if (topology_.denied.empty()) {
      topology_.denied =
          NoPermText(sentinel ? std::string() : request_.auth.username, argv, node, r.reply.str);
    }
    Inconsistent(topology_.denied);
    return true;
  }

  Loop& loop_;
  const DiscoveryRequest& request_;
  Topology topology_;
  std::vector<std::map<std::string, std::string>> sentinel_replicas_;  // per sentinel, by addr
};

}  // namespace finalsnap::detail::discovery

// Replication groups, Redis Cluster and Sentinel made of RedisServer nodes. Each fixture starts its
// nodes one after another on the calling thread, wires them up with ordinary commands (replicaof,
// CLUSTER ..., sentinel.conf) and then polls the nodes' own view (INFO, CLUSTER NODES,
// SENTINEL ...) until the topology is what it claims to be, or throws at the deadline.
#include "support/redis_topology.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace finalsnap::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Polls of a topology ask several nodes each time; 20 ms keeps that cheap on a shared machine and
// is still far below the time gossip or a sync takes.
constexpr milliseconds kTopologyPoll{20};

// Directives every replication-group and cluster node gets before the caller's (which can
// override them). Redis 7 syncs replicas disklessly and first waits repl-diskless-sync-delay
// (5 s) for more replicas to arrive, so that one transfer serves them all; every replica's first
// sync, and every sync the engine starts, would pay those 5 s.
const std::vector<std::pair<std::string, std::string>> kNodeDefaults = {
    {"repl-diskless-sync-delay", "0"}};

std::vector<std::pair<std::string, std::string>> WithDefaults(
    const std::vector<std::pair<std::string, std::string>>& config) {
  auto out = kNodeDefaults;
  out.insert(out.end(), config.begin(), config.end());
  return out;
}

// Redis Cluster's key hash: CRC16-CCITT in its XMODEM variant (polynomial 0x1021, initial value
// 0, no reflection), as in Redis' crc16.c.
uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

// The tags "a" .. "z", "aa", "ab", ... (bijective base 26), so the first ones tried are short.
std::string TagName(uint64_t n) {
  std::string out;
  ++n;
  while (n > 0) {
    --n;
    out.insert(out.begin(), static_cast<char>('a' + n % 26));
    n /= 26;
  }
  return out;
}

std::string Describe(const RedisServer& node) {
  return std::string(node.is_sentinel() ? "sentinel " : "node ") + node.host() + ":" +
         std::to_string(node.port());
}

// The log tails of `nodes`, for a timeout's message.
std::string LogTails(const std::vector<RedisServer*>& nodes, size_t lines = 15) {
  std::string out;
  for (const RedisServer* node : nodes)
    out += "\n" + Describe(*node) + ":\n" + node->LogTail(lines);
  return out;
}

// Polls `problem` (empty = done) until it reports nothing or `deadline` passes; then throws with
// what it last reported. A command failing on a node (connection refused, a timeout) counts as
// "not yet", not as a failure: nodes restart links and re-handshake while a topology forms.
template <typename Problem>
void PollUntil(const std::string& what, milliseconds deadline, Problem problem,
               const std::vector<RedisServer*>& nodes) {
  const auto until = Clock::now() + deadline;
  std::string last;
  while (true) {
    try {
      last = problem();
    } catch (const std::runtime_error& e) {
      last = e.what();
    }
    if (last.empty()) return;
    if (Clock::now() >= until) {
      throw std::runtime_error(what + ": not done within " + std::to_string(deadline.count()) +
                               " ms; last seen: " + last + LogTails(nodes));
    }
    std::this_thread::sleep_for(kTopologyPoll);
  }
}

void ExpectOk(const Reply& r, const std::string& what, RedisServer& node) {
  if (!r.ok()) {
    throw std::runtime_error(what + " on " + Describe(node) + " replied " + r.ToString() + "\n" +
                             node.LogTail(15));
  }
}

std::string InfoField(const std::map<std::string, std::string>& info, const std::string& name) {
  auto it = info.find(name);
  return it == info.end() ? std::string() : it->second;
}

uint64_t ToU64(std::string_view text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw std::runtime_error("not a number: '" + std::string(text) + "'");
  }
  return n;
}

// Empty when every replica's link is up and the primary lists each replica's port as online.
std::string ReplicationProblem(RedisServer& primary, const std::vector<RedisServer*>& replicas) {
  for (RedisServer* replica : replicas) {
    const auto info = replica->Info("replication");
    if (InfoField(info, "role") != "slave") return Describe(*replica) + " is not a replica";
    if (InfoField(info, "master_port") != std::to_string(primary.port())) {
      return Describe(*replica) + " replicates port " + InfoField(info, "master_port");
    }
    if (InfoField(info, "master_link_status") != "up") {
      return Describe(*replica) +
             " has master_link_status:" + InfoField(info, "master_link_status");
    }
  }
  const auto info = primary.Info("replication");
  std::set<std::string> online;
  for (const auto& [name, value] : info) {
    if (name.rfind("slave", 0) != 0 || name == "slave_read_repl_offset" ||
        name == "slave_repl_offset") {
      continue;
    }
    const auto fields = ParseInfoFields(value);
    auto state = fields.find("state");
    auto port = fields.find("port");
    if (state != fields.end() && port != fields.end() && state->second == "online") {
      online.insert(port->second);
    }
  }
  for (RedisServer* replica : replicas) {
    if (!online.count(std::to_string(replica->port()))) {
      return Describe(primary) + " does not list " + Describe(*replica) + " as online (" +
             InfoField(info, "connected_slaves") + " connected)";
    }
  }
  return "";
}

std::vector<RedisServer*> Pointers(const std::vector<std::unique_ptr<RedisServer>>& servers) {
  std::vector<RedisServer*> out;
  for (const auto& s : servers) out.push_back(s.get());
  return out;
}

// Stops the nodes in order, swallowing errors: used by destructors, where Stop() has already
// fallen back to SIGKILL wherever it could.
void StopAll(const std::vector<RedisServer*>& nodes) {
  for (RedisServer* node : nodes) {
    try {
      node->Stop();
    } catch (...) {
    }
  }
}

// The fields of one CLUSTER NODES line that the fixture checks. A line is "<id>
// <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...".
struct ClusterNodeLine {
  std::string id;
  std::set<std::string> flags;
  std::string master;
  std::string link;
  std::vector<std::string> slots;
};

std::vector<ClusterNodeLine> ParseClusterNodes(const std::string& text) {
  std::vector<ClusterNodeLine> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.size() < 8) throw std::runtime_error("malformed CLUSTER NODES line: " + line);
    ClusterNodeLine node;
    node.id = w[0];
    std::istringstream flags(w[2]);
    for (std::string flag; std::getline(flags, flag, ',');) node.flags.insert(flag);
    node.master = w[3];
    node.link = w[7];
    node.slots.assign(w.begin() + 8, w.end());
    out.push_back(std::move(node));
  }
  return out;
}

std::string SlotsText(SlotRange r) {
  return r.first == r.last ? std::to_string(r.first)
                           : std::to_string(r.first) + "-" + std::to_string(r.last);
}

}  // namespace

// --- Cluster key slots ------------------------------------------------------------------------

int KeySlot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    // "{}" is not a tag: the whole key is hashed then.
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kClusterSlots - 1);
}

std::string HashTagFor(SlotRange range) {
  if (range.size() <= 0 || range.first < 0 || range.last >= kClusterSlots) {
    throw std::invalid_argument("HashTagFor: no slots in " + SlotsText(range));
  }
  // Even a one-slot range is hit within ~16384 tries on average; the bound only stops a loop
  // that cannot end.
  for (uint64_t n = 0; n < 100 * static_cast<uint64_t>(kClusterSlots); ++n) {
    std::string tag = "{" + TagName(n) + "}";
    if (range.Contains(KeySlot(tag))) return tag;
  }
  throw std::runtime_error("HashTagFor: no tag found for slots " + SlotsText(range));
}

std::vector<std::string> HashTagsFor(const std::vector<SlotRange>& ranges) {
  std::vector<std::string> out;
  for (const SlotRange& r : ranges) out.push_back(HashTagFor(r));
  return out;
}

std::vector<SlotRange> EvenSlotRanges(size_t count) {
  if (count == 0 || count > static_cast<size_t>(kClusterSlots)) {
    throw std::invalid_argument("EvenSlotRanges: " + std::to_string(count) + " shards");
  }
  const int n = static_cast<int>(count);
  std::vector<SlotRange> out;
  int first = 0;
  for (int i = 0; i < n; ++i) {
    // The first kClusterSlots % n shards get one slot more, as redis-cli --cluster create does.
    const int size = kClusterSlots / n + (i < kClusterSlots % n ? 1 : 0);
    out.push_back({first, first + size - 1});
    first += size;
  }
  return out;
}

// --- Shared waits -----------------------------------------------------------------------------

void WaitForReplicasLinked(RedisServer& primary, const std::vector<RedisServer*>& replicas,
                           milliseconds deadline) {
  std::vector<RedisServer*> nodes = {&primary};
  nodes.insert(nodes.end(), replicas.begin(), replicas.end());
  PollUntil(
      "replicas of " + Describe(primary) + " linked", deadline,
      [&] { return ReplicationProblem(primary, replicas); }, nodes);
}

void WaitForReplicasCaughtUp(RedisServer& primary, const std::vector<RedisServer*>& replicas,
                             milliseconds deadline) {
  const uint64_t target = ToU64(InfoField(primary.Info("replication"), "master_repl_offset"));
  std::vector<RedisServer*> nodes = {&primary};
  nodes.insert(nodes.end(), replicas.begin(), replicas.end());
  PollUntil(
      "replicas of " + Describe(primary) + " at offset " + std::to_string(target), deadline,
      [&]() -> std::string {
        for (RedisServer* replica : replicas) {
          const std::string offset = InfoField(replica->Info("replication"), "slave_repl_offset");
          if (offset.empty() || ToU64(offset) < target) {
            return Describe(*replica) + " has slave_repl_offset " + offset;
          }
        }
        return "";
      },
      nodes);
}

// --- Replication group ------------------------------------------------------------------------

ReplicationGroupFixture::ReplicationGroupFixture(ReplicationGroupOptions options)
    : options_(std::move(options)) {}

ReplicationGroupFixture::~ReplicationGroupFixture() {
  StopAll(replicas());
  if (primary_) StopAll({primary_.get()});
}

void ReplicationGroupFixture::Start() {
  if (primary_) throw std::logic_error("ReplicationGroupFixture::Start: already started");
  primary_ = std::make_unique<RedisServer>(WithDefaults(options_.config));
  primary_->Start();
  for (size_t i = 0; i < options_.replicas; ++i) {
    auto config = WithDefaults(options_.config);
    // As a start-up directive, so the replica never serves as an empty primary of its own.
    config.emplace_back("replicaof", primary_->host() + " " + std::to_string(primary_->port()));
    replicas_.push_back(std::make_unique<RedisServer>(std::move(config)));
    replicas_.back()->Start();
    // One sync at a time: a replica that asks while the previous one's RDB child still runs
    // waits for the primary's next replication cron, up to a second later.
    WaitForReplicasLinked(*primary_, {replicas_.back().get()}, options_.deadline);
  }
  WaitForReplicasLinked(*primary_, replicas(), options_.deadline);
}

void ReplicationGroupFixture::WaitForReplicasCaughtUp(std::optional<milliseconds> deadline) {
  testing::WaitForReplicasCaughtUp(*primary_, replicas(), deadline.value_or(options_.deadline));
}

std::vector<RedisServer*> ReplicationGroupFixture::replicas() const { return Pointers(replicas_); }

std::vector<RedisServer*> ReplicationGroupFixture::nodes() const {
  std::vector<RedisServer*> out;
  if (primary_) out.push_back(primary_.get());
  for (RedisServer* r : replicas()) out.push_back(r);
  return out;
}

// --- Redis Cluster ----------------------------------------------------------------------------

ClusterFixture::ClusterFixture(ClusterOptions options) : options_(std::move(options)) {}

ClusterFixture::~ClusterFixture() {
  for (Shard& shard : shards_) StopAll(Pointers(shard.replicas));
  StopAll(primaries());
}

void ClusterFixture::Start() {
  if (!shards_.empty()) throw std::logic_error("ClusterFixture::Start: already started");
  const std::vector<SlotRange> ranges = EvenSlotRanges(options_.shards);
  // The node's directory is its `dir`, and Redis resolves a relative cluster-config-file against
  // it, so each node gets its own nodes.conf (Redis locks that file: two nodes cannot share it).
  std::vector<std::pair<std::string, std::string>> config = {
      {"cluster-enabled", "yes"},
      {"cluster-config-file", "nodes.conf"},
      {"cluster-node-timeout", std::to_string(options_.node_timeout.count())}};
  config = WithDefaults(config);
  config.insert(config.end(), options_.config.begin(), options_.config.end());

  shards_.resize(options_.shards);
  for (size_t s = 0; s < shards_.size(); ++s) {
    Shard& shard = shards_[s];
    shard.slots = ranges[s];
    shard.hash_tag = HashTagFor(ranges[s]);
    shard.primary = std::make_unique<RedisServer>(config);
    shard.primary->Start();
    for (size_t r = 0; r < options_.replicas_per_shard; ++r) {
      shard.replicas.push_back(std::make_unique<RedisServer>(config));
      shard.replicas.back()->Start();
    }
  }
  for (RedisServer* node : nodes()) {
    Reply id = node->Command("CLUSTER", "MYID");
    if (id.type != Reply::Type::kString || id.str.empty()) {
      throw std::runtime_error("CLUSTER MYID on " + Describe(*node) + " replied " + id.ToString());
    }
    ids_.emplace_back(node, id.str);
  }
  for (size_t s = 0; s < shards_.size(); ++s) {
    RedisServer& primary = *shards_[s].primary;
    // Distinct config epochs before the nodes meet: otherwise every primary claims its slots at
    // epoch 0 and the cluster first has to resolve the collision, bumping epochs one at a time.
    ExpectOk(primary.Command("CLUSTER", "SET-CONFIG-EPOCH", s + 1), "CLUSTER SET-CONFIG-EPOCH",
             primary);
    ExpectOk(
        primary.Command("CLUSTER", "ADDSLOTSRANGE", shards_[s].slots.first, shards_[s].slots.last),
        "CLUSTER ADDSLOTSRANGE", primary);
  }
  // Every pair meets directly. One node meeting all the others would do too, but then the others
  // learn of each other only through gossip, a hop about every second, which took seconds longer.
  const std::vector<RedisServer*> all = nodes();
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) {
      ExpectOk(all[i]->Command("CLUSTER", "MEET", all[j]->host(), all[j]->port()), "CLUSTER MEET",
               *all[i]);
    }
  }
  // CLUSTER REPLICATE names the primary by ID, which the replica only accepts once the handshake
  // with that primary is over and it knows the node as a master.
  for (Shard& shard : shards_) {
    const std::string& primary_id = node_id(*shard.primary);
    for (auto& replica : shard.replicas) {
      RedisServer& node = *replica;
      PollUntil(Describe(node) + " replicating " + Describe(*shard.primary), options_.deadline,
                [&]() -> std::string {
                  Reply nodes = node.Command("CLUSTER", "NODES");
                  if (nodes.type != Reply::Type::kString)
                    return "CLUSTER NODES: " + nodes.ToString();
                  bool known = false;
                  for (const ClusterNodeLine& line : ParseClusterNodes(nodes.str)) {
                    known =
                        known || (line.id == primary_id && line.flags.count("master") &&
                                  !line.flags.count("handshake") && !line.flags.count("noaddr"));
                  }
                  if (!known) return "the replica does not know its primary yet";
                  Reply r = node.Command("CLUSTER", "REPLICATE", primary_id);
                  return r.ok() ? "" : "CLUSTER REPLICATE: " + r.ToString();
                },
                {shard.primary.get(), &node});
    }
  }
  WaitForHealthy();
}

std::string ClusterFixture::HealthProblem() {
  const std::vector<RedisServer*> all = nodes();
  for (RedisServer* node : all) {
    Reply info_reply = node->Command("CLUSTER", "INFO");
    if (info_reply.type != Reply::Type::kString) {
      return Describe(*node) + ": CLUSTER INFO " + info_reply.ToString();
    }
    const auto info = ParseInfo(info_reply.str);
    if (InfoField(info, "cluster_state") != "ok") {
      return Describe(*node) + " has cluster_state:" + InfoField(info, "cluster_state");
    }
    if (InfoField(info, "cluster_known_nodes") != std::to_string(all.size())) {
      return Describe(*node) + " knows " + InfoField(info, "cluster_known_nodes") + " of " +
             std::to_string(all.size()) + " nodes";
    }
    if (InfoField(info, "cluster_slots_ok") != std::to_string(kClusterSlots)) {
      return Describe(*node) + " has cluster_slots_ok:" + InfoField(info, "cluster_slots_ok");
    }

    Reply nodes_reply = node->Command("CLUSTER", "NODES");
    if (nodes_reply.type != Reply::Type::kString) {
      return Describe(*node) + ": CLUSTER NODES " + nodes_reply.ToString();
    }
    std::map<std::string, ClusterNodeLine> seen;
    for (ClusterNodeLine& line : ParseClusterNodes(nodes_reply.str)) seen[line.id] = line;
    for (const Shard& shard : shards_) {
      const std::string& primary_id = node_id(*shard.primary);
      auto p = seen.find(primary_id);
      if (p == seen.end()) return Describe(*node) + " does not list " + Describe(*shard.primary);
      for (const char* bad : {"handshake", "fail", "fail?", "noaddr", "slave"}) {
        if (p->second.flags.count(bad)) {
          return Describe(*node) + " flags " + Describe(*shard.primary) + " " + bad;
        }
      }
      if (p->second.link != "connected") {
        return Describe(*node) + " has its link to " + Describe(*shard.primary) + " " +
               p->second.link;
      }
      if (p->second.slots != std::vector<std::string>{SlotsText(shard.slots)}) {
        return Describe(*node) + " does not see " + Describe(*shard.primary) + " with slots " +
               SlotsText(shard.slots);
      }
      for (const auto& replica : shard.replicas) {
        auto r = seen.find(node_id(*replica));
        if (r == seen.end()) return Describe(*node) + " does not list " + Describe(*replica);
        if (!r->second.flags.count("slave") || r->second.master != primary_id) {
          return Describe(*node) + " does not see " + Describe(*replica) + " as a replica of " +
                 Describe(*shard.primary);
        }
        for (const char* bad : {"handshake", "fail", "fail?", "noaddr"}) {
          if (r->second.flags.count(bad)) {
            return Describe(*node) + " flags " + Describe(*replica) + " " + bad;
          }
        }
        if (r->second.link != "connected") {
          return Describe(*node) + " has its link to " + Describe(*replica) + " " + r->second.link;
        }
      }
    }
  }
  for (Shard& shard : shards_) {
    std::string problem = ReplicationProblem(*shard.primary, Pointers(shard.replicas));
    if (!problem.empty()) return problem;
  }
  return "";
}

void ClusterFixture::WaitForHealthy(std::optional<milliseconds> deadline) {
  PollUntil(
      "cluster of " + std::to_string(nodes().size()) + " nodes healthy",
      deadline.value_or(options_.deadline), [&] { return HealthProblem(); }, nodes());
}

void ClusterFixture::WaitForReplicasCaughtUp(std::optional<milliseconds> deadline) {
  for (Shard& shard : shards_) {
    testing::WaitForReplicasCaughtUp(*shard.primary, Pointers(shard.replicas),
                                     deadline.value_or(options_.deadline));
  }
}

std::vector<RedisServer*> ClusterFixture::primaries() const {
  std::vector<RedisServer*> out;
  for (const Shard& shard : shards_) out.push_back(shard.primary.get());
  return out;
}

std::vector<RedisServer*> ClusterFixture::replicas(size_t shard) const {
  return Pointers(shards_.at(shard).replicas);
}

std::vector<RedisServer*> ClusterFixture::nodes() const {
  std::vector<RedisServer*> out;
  for (const Shard& shard : shards_) {
    out.push_back(shard.primary.get());
    for (const auto& r : shard.replicas) out.push_back(r.get());
  }
  return out;
}

std::vector<SlotRange> ClusterFixture::slot_ranges() const {
  std::vector<SlotRange> out;
  for (const Shard& shard : shards_) out.push_back(shard.slots);
  return out;
}

size_t ClusterFixture::ShardOfSlot(int slot) const {
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (shards_[s].slots.Contains(slot)) return s;
  }
  throw std::out_of_range("ClusterFixture::ShardOfSlot: no shard has slot " + std::to_string(slot));
}

const std::string& ClusterFixture::node_id(const RedisServer& node) const {
  for (const auto& [server, id] : ids_) {
    if (server == &node) return id;
  }
  throw std::out_of_range("ClusterFixture::node_id: not a started node of this cluster");
}

// --- Sentinel ---------------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> ReplyFields(const Reply& flat) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    out.emplace_back(flat.elements[i].str, flat.elements[i + 1].str);
  }
  return out;
}

std::string ReplyField(const Reply& flat, std::string_view field) {
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2) {
    if (flat.elements[i].str == field) return flat.elements[i + 1].str;
  }
  return "";
}

SentinelFixture::SentinelFixture(std::string host, int port, size_t replicas,
                                 SentinelOptions options)
    : host_(std::move(host)), port_(port), replicas_(replicas), options_(std::move(options)) {}

SentinelFixture::SentinelFixture(ReplicationGroupFixture& group, SentinelOptions options)
    : SentinelFixture(group.primary().host(), group.primary().port(), group.replica_count(),
                      std::move(options)) {
  if (options_.auth_pass.empty()) options_.auth_pass = group.primary().password();
}

SentinelFixture::~SentinelFixture() { Stop(); }

void SentinelFixture::Start() {
  if (!sentinels_.empty()) throw std::logic_error("SentinelFixture::Start: already started");
  const size_t quorum = options_.quorum != 0 ? options_.quorum : options_.sentinels / 2 + 1;
  const std::string& name = options_.master_name;
  for (size_t i = 0; i < options_.sentinels; ++i) {
    RedisServerOptions o;
    o.mode = RedisServerOptions::Mode::kSentinel;
    o.config = options_.config;
    o.sentinel_config = {"sentinel monitor " + name + " " + host_ + " " + std::to_string(port_) +
                             " " + std::to_string(quorum),
                         "sentinel down-after-milliseconds " + name + " " +
                             std::to_string(options_.down_after.count()),
                         "sentinel failover-timeout " + name + " " +
                             std::to_string(options_.failover_timeout.count())};
    if (!options_.auth_pass.empty()) {
      o.sentinel_config.push_back("sentinel auth-pass " + name + " " +
                                  QuoteConfigArg(options_.auth_pass));
    }
    o.sentinel_config.insert(o.sentinel_config.end(), options_.extra_lines.begin(),
                             options_.extra_lines.end());
    sentinels_.push_back(std::make_unique<RedisServer>(std::move(o)));
    sentinels_.back()->Start();
  }
  WaitForDiscovery();
}

std::string SentinelFixture::DiscoveryProblem() {
  const std::string& name = options_.master_name;
  // The entries a sentinel lists stay there after the node goes; only unflagged ones count.
  auto healthy = [](const Reply& entry) {
    const std::string flags = ReplyField(entry, "flags");
    return flags.find("s_down") == std::string::npos && flags.find("o_down") == std::string::npos &&
           flags.find("disconnected") == std::string::npos;
  };
  for (size_t i = 0; i < sentinels_.size(); ++i) {
    RedisServer& s = *sentinels_[i];
    if (!s.Running()) continue;
    Reply master = s.Command("SENTINEL", "master", name);
    if (master.type != Reply::Type::kArray) return Describe(s) + ": " + master.ToString();
    if (!healthy(master)) {
      return Describe(s) + " flags the primary " + ReplyField(master, "flags");
    }
    Reply replicas = s.Command("SENTINEL", "replicas", name);
    if (replicas.type != Reply::Type::kArray) return Describe(s) + ": " + replicas.ToString();
    size_t linked = 0;
    for (const Reply& r : replicas.elements) {
      // master-link-status comes from the replica's INFO, which the sentinel reads every 10 s.
      if (healthy(r) && ReplyField(r, "master-link-status") == "ok") ++linked;
    }
    if (linked != replicas_) {
      return Describe(s) + " knows " + std::to_string(linked) + " linked replicas of " +
             std::to_string(replicas_) + ": " + replicas.ToString();
    }
    Reply others = s.Command("SENTINEL", "sentinels", name);
    if (others.type != Reply::Type::kArray) return Describe(s) + ": " + others.ToString();
    std::set<std::string> known;
    for (const Reply& o : others.elements) {
      if (healthy(o)) known.insert(ReplyField(o, "port"));
    }
    for (size_t j = 0; j < sentinels_.size(); ++j) {
      if (j == i || !sentinels_[j]->Running()) continue;
      // Sentinels announce themselves every 2 s on the primary's __sentinel__:hello channel.
      if (!known.count(std::to_string(sentinels_[j]->port()))) {
        return Describe(s) + " does not know " + Describe(*sentinels_[j]) + " yet";
      }
    }
  }
  return "";
}

void SentinelFixture::WaitForDiscovery(std::optional<milliseconds> deadline) {
  PollUntil(
      std::to_string(sentinels_.size()) + " sentinels discovering " + options_.master_name,
      deadline.value_or(options_.deadline), [&] { return DiscoveryProblem(); },
      Pointers(sentinels_));
}

std::optional<std::pair<std::string, int>> SentinelFixture::MasterAddr(size_t i) {
  Reply r = sentinel(i).Command("SENTINEL", "get-master-addr-by-name", options_.master_name);
  if (r.type != Reply::Type::kArray || r.elements.size() != 2) return std::nullopt;
  return std::make_pair(r.elements[0].str, static_cast<int>(ToU64(r.elements[1].str)));
}

void SentinelFixture::WaitForMasterAddr(const std::string& host, int port,
                                        std::optional<milliseconds> deadline) {
  PollUntil(
      "sentinels reporting " + host + ":" + std::to_string(port) + " as " + options_.master_name,
      deadline.value_or(options_.deadline),
      [&]() -> std::string {
        for (size_t i = 0; i < sentinels_.size(); ++i) {
          if (!sentinels_[i]->Running()) continue;
          auto addr = MasterAddr(i);
          if (!addr || addr->first != host || addr->second != port) {
            return Describe(*sentinels_[i]) + " reports " +
                   (addr ? addr->first + ":" + std::to_string(addr->second) : "nothing");
          }
        }
        return "";
      },
      Pointers(sentinels_));
}

void SentinelFixture::Stop() { StopAll(Pointers(sentinels_)); }

std::vector<int> SentinelFixture::ports() const {
  std::vector<int> out;
  for (const auto& s : sentinels_) out.push_back(s->port());
  return out;
}

}  // namespace finalsnap::testing

// quiesce: writes-paused on every shard's primary, and what undoes it (Unpause, RestoreConfig).
#include "operation.h"

#include <algorithm>

namespace finalsnap::ops {

using std::chrono::milliseconds;

// writes-paused, for one shard. The pauses of all shards are sent together, and no capture
// starts before every primary is paused, so that all shards are cut at the same moment.
// Replicas are never paused (a paused replica stops applying the stream).
Task<Verdict> Operation::PauseWrites(ShardRun& run) {
  // First, the transfer is made to start at once, not after the diskless delay, and the server
  // skips LZF: the stream is recompressed here anyway, and LZF in the forked child is the
  // slowest stage of the whole transfer. Both are put back afterwards (for nodes that keep
  // running) or on any refusal.
  if (snapshot_name_ && target_.settings().capture == CaptureMode::kSync) {
    NodeClient& node = *run.source->client;
    const std::pair<const char*, const char*> wanted[] = {{"repl-diskless-sync-delay", "0"},
                                                          {"rdbcompression", "no"}};
    for (const auto& [name, value] : wanted) {
      CommandOutcome get = co_await node.Command(Argv("CONFIG", "GET", name));
      if (!get.ok() || get.reply.elements.size() != 2) continue;  // renamed CONFIG: leave it
      const std::string original = get.reply.elements[1].str;
      if (original == value) continue;
      // Journaled before the change: a crash from here on puts back this value, never the
      // node's current one.
      if (Verdict r = Journaled({{"event", "config"},
                                 {"node", run.source->address.ToString()},
                                 {"name", name},
                                 {"original", original}})) {
        co_return r;
      }
      CommandOutcome set = co_await node.Command(Argv("CONFIG", "SET", name, value));
      if (set.ok()) run.config_changes.push_back({name, original, value});
    }
  }
  // CLIENT PAUSE WRITE (6.2+) or plain CLIENT PAUSE, renewed well before it expires; if this
  // process dies the pause lapses by itself.
  GroupNode& primary = *run.shard->primary;
  const std::string where = primary.address.ToString();
  const int timeout_ms = target_.settings().pause_timeout_ms;
  const bool write_mode = primary.facts.AtLeast(6, 2);
  run.pause_command = Argv("CLIENT", "PAUSE", std::to_string(timeout_ms));
  if (write_mode) run.pause_command.push_back("WRITE");
  if (Verdict r = Journaled({{"event", "pause"}, {"node", where}})) co_return r;
  CommandOutcome paused = co_await primary.client->Command(run.pause_command);
  if (!paused.ok()) {
    co_return Refuse(target_.StateFault(), "CLIENT PAUSE on " + where + " failed: " + paused.Error(),
                     "CLIENT PAUSE failed: " + paused.Error(), where);
  }
  run.paused = true;
  const int period = std::max(timeout_ms / 3, 50);
  NodeClient* client = primary.client.get();
  const std::vector<std::string> renew = run.pause_command;
  run.pause_timer.Repeat(milliseconds(period), [client, renew] {
    if (client->connected()) client->Send(renew, client->timeouts().command, [](CommandOutcome) {});
  });
  CommandOutcome keyspace = co_await primary.client->Command(Argv("INFO", "all"));
  if (!keyspace.ok()) {
    co_return Refuse(target_.StateFault(), "INFO on " + where + " failed: " + keyspace.Error(),
                     "INFO failed: " + keyspace.Error(), where);
  }
  const auto info = detail::ParseInfo(keyspace.reply.str);
  run.expected = detail::ParseKeyspace(info);
  std::string evidence = "CLIENT PAUSE " + std::to_string(timeout_ms) +
                         (write_mode ? " WRITE" : " (all clients; server before 6.2)") +
                         " held, renewed every " + std::to_string(period) +
                         " ms; keyspace while paused: " + KeyspaceText(run.expected);
  if (run.source != run.shard->primary) {
    // A replica is a faithful source once it has applied everything the paused primary had:
    // same replication id, applied offset at least the primary's (REDIS-FACTS §2; "at least",
    // because the primary's PINGs to its replicas move the offset during the pause).
    auto field = [](const std::map<std::string, std::string>& f, const char* k) {
      auto it = f.find(k);
      return it == f.end() ? std::string() : it->second;
    };
    const std::string replid = field(info, "master_replid");
    const uint64_t target_offset = std::stoull("0" + field(info, "master_repl_offset"));
    const double deadline = Ms() + target_.settings().command_timeout_ms;
    std::string last;
    for (;;) {
      CommandOutcome r = co_await run.source->client->Command(Argv("INFO", "replication"));
      if (r.ok()) {
        const auto ri = detail::ParseInfo(r.reply.str);
        const uint64_t applied = std::stoull("0" + field(ri, "slave_repl_offset"));
        last = "replid " + field(ri, "master_replid") + ", applied offset " +
               std::to_string(applied);
        if (field(ri, "master_replid") == replid && field(ri, "master_link_status") == "up" &&
            applied >= target_offset) {
          evidence += "; replica " + run.source->address.ToString() + " caught up (" + last +
                      " >= primary's " + std::to_string(target_offset) + ")";
          break;
        }
      } else {
        last = r.Error();
      }
      if (Ms() > deadline) {
        co_return Refuse(target_.StateFault(),
                         "replica " + run.source->address.ToString() +
                             " did not catch up with the paused primary (offset " +
                             std::to_string(target_offset) + ", replid " + replid +
                             ") in time: " + last,
                         "", where);
      }
      co_await detail::Sleep(loop_, milliseconds(10));
    }
  }
  Pass(evidence, where);
  co_return std::nullopt;
}

Task<bool> Operation::Unpause(ShardRun& run) {
  run.pause_timer.Stop();
  if (!run.paused) co_return true;
  run.paused = false;
  GroupNode& primary = *run.shard->primary;
  const std::string within = std::to_string(target_.settings().pause_timeout_ms) + " ms";
  if (!primary.facts.AtLeast(6, 2)) {
    result_.notes.push_back("servers before 6.2 have no CLIENT UNPAUSE: writes on " +
                            primary.address.ToString() + " resume when the pause expires, within " +
                            within);
    co_return true;
  }
  CommandOutcome r = co_await primary.client->Command(Argv("CLIENT", "UNPAUSE"));
  if (!r.ok()) {
    result_.notes.push_back("CLIENT UNPAUSE on " + primary.address.ToString() + " failed (" +
                            r.Error() + "); the pause expires on its own within " + within);
  }
  co_return r.ok();
}

Task<int> Operation::RestoreConfig(ShardRun& run) {
  int failed = 0;
  NodeClient& node = *run.source->client;
  // A slow or briefly unreachable node gets a few tries over a few seconds, each on a fresh
  // connection with a longer timeout: leaving the node changed is the worse outcome.
  const milliseconds patient = std::max(node.timeouts().command, milliseconds(5000));
  const std::string where = runs_.size() > 1 || run.source != run.shard->primary
                                ? " on " + run.source->address.ToString()
                                : "";
  bool gone = false;
  for (const ConfigChange& c : run.config_changes) {
    CommandOutcome r;
    for (int attempt = 0; attempt < 3 && !gone; ++attempt) {
      if (!node.connected()) {
        if (Status s = co_await node.Connect(attempt == 0 ? node.timeouts().command : patient);
            !s.ok()) {
          r.status = s;
          gone = detail::NothingListening(s);
          continue;
        }
      }
      r = co_await node.Command(Argv("CONFIG", "SET", c.name, c.original),
                                attempt == 0 ? node.timeouts().command : patient);
      if (r.ok()) break;
    }
    if (r.ok()) {
      result_.notes.push_back("set " + c.name + where + " to " + c.applied +
                              " for the transfer and put it back to " + c.original);
    } else if (gone) {
      result_.notes.push_back(run.source->address.ToString() + " is not running, so " + c.name +
                              " needs no putting back (a restarted server reads its "
                              "configuration file)");
    } else {
      ++failed;
      result_.notes.push_back("could not put " + c.name + where + " back to " + c.original +
                              ": " + r.Error());
    }
  }
  run.config_changes.clear();
  co_return failed;
}

}  // namespace finalsnap::ops

// permissions (preflight): every command the operation will send, checked for the configured ACL
// user on the node it will go to, before anything changes on any node. A user without +shutdown
// is refused here, not after the whole data set was captured.
//
// What is sent where (the plan below follows quiesce.cc, capture.cc, destroy.cc and claim.cc):
//
//   every member            CLIENT SETNAME, CLIENT LIST           the claim (target-claimed)
//   each shard's primary    CLIENT PAUSE <t> [WRITE], CLIENT UNPAUSE (6.2+)
//   the snapshot's source   sync: CONFIG GET/SET repl-diskless-sync-delay and rdbcompression,
//                           REPLCONF capa eof, REPLCONF rdb-only 1 (6.2+), REPLCONF version
//                           (Valkey 9+), PSYNC ? -1; a replica source also INFO replication
//                           bgsave-file: CONFIG GET dir and dbfilename, INFO persistence,
//                           LASTSAVE, BGSAVE
//   a group's members       INFO replication (the destroy's topology recheck); ROLE when
//                           finishing an interrupted delete (resume.cc)
//   each node shut down     SHUTDOWN NOSAVE
//   each sentinel           SENTINEL REMOVE <master> (RESET when the primary stays), as the
//                           sentinel's default user: sentinels are asked without credentials
//
// Discovery's own commands (INFO, ROLE, CLUSTER NODES, CLUSTER INFO, SENTINEL ...) have run by
// now; a NOPERM there stopped discovery and was refused under this gate's name (preflight.cc).
//
// How each command is checked, per node:
//   1. ACL DRYRUN <user> <command as sent> (7.0+, when the user may run ACL DRYRUN): +OK, or a
//      bulk string saying why not.
//   2. Else a harmless probe (below): the command itself when it only reads, else a variant the
//      server rejects for its arguments, which it parses only after the ACL check (processCommand
//      checks arity, then ACLs, then runs the command): -NOPERM means denied, any other answer
//      means the ACL let it through.
//   3. Else the evidence says "unchecked" for that command; never "allowed".
#include "finalsnap/text.h"
#include "operation.h"

namespace finalsnap::ops {

using detail::CommandName;
using detail::NoPermText;
using detail::Reply;
using detail::ServerFacts;
using std::chrono::milliseconds;

namespace {

// How a command is checked where ACL DRYRUN cannot be used.
enum class Probe {
  kRun,   // it only reads: the command itself
  kBad,   // a variant with an argument the server refuses after its ACL check
  kNone,  // no harmless way: unchecked
};

struct Check {
  std::vector<std::string> argv;  // as the operation sends it
  std::string why;                // what the operation sends it for
  Probe probe = Probe::kNone;
  std::vector<std::string> probe_argv;  // kBad
  std::string no_probe;                 // kNone: why there is none
  // The operation goes on without it when the server does not have it (renamed or disabled):
  // quiesce.cc leaves the node's transfer settings as they are when CONFIG fails.
  bool optional = false;
};

// One node's (or sentinel's) checks, and what they found.
struct NodeChecks {
  NodeClient* client = nullptr;
  std::unique_ptr<NodeClient> own;  // a sentinel's connection of the gate's own
  bool sentinel = false;
  std::string address;
  std::string label;  // "127.0.0.1:7000 (primary)"
  std::string user;   // as ACL DRYRUN names it
  ServerFacts facts;
  std::vector<Check> checks;
};

struct Findings {
  std::vector<std::string> denied;       // NoPermText, with what it is needed for
  std::vector<std::string> unavailable;  // a required command the server does not have
  std::vector<std::string> allowed;      // command names
  std::vector<std::string> unchecked;    // command names, with why
  std::vector<std::string> notes;        // optional commands the server does not have
  std::string method;                    // how they were checked
  std::string error;                     // the node could not be asked at all
};

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// The server has no such command (or subcommand): renamed, disabled or too old. Checked before
// ACLs, so it says nothing about permissions.
bool UnknownCommand(const Reply& r) {
  return r.is_error() &&
         (StartsWith(r.str, "ERR unknown command") || StartsWith(r.str, "ERR unknown subcommand") ||
          StartsWith(r.str, "ERR Unknown subcommand") ||
          (StartsWith(r.str, "ERR Command '") && Contains(r.str, "not found")));
}

// The check for `argv` where ACL DRYRUN cannot be used. Each probe was tried on Debian's
// redis-server 7.0.15 with a user that has the command and one that has not: the first gets the
// error quoted, the second -NOPERM, and neither changes anything on the node.
Check For(std::vector<std::string> argv, std::string why, const ServerFacts& facts,
          const std::string& tag) {
  Check c;
  c.argv = std::move(argv);
  c.why = std::move(why);
  const std::string name = CommandName(c.argv);
  auto bad = [&c](std::vector<std::string> probe) {
    c.probe = Probe::kBad;
    c.probe_argv = std::move(probe);
  };
  if (StartsWith(name, "INFO") || name == "ROLE" || name == "LASTSAVE" || name == "CONFIG GET" ||
      name == "CLIENT LIST" || name == "CLUSTER NODES" || name == "CLUSTER INFO") {
    c.probe = Probe::kRun;
  } else if (name == "CLIENT SETNAME") {
    // "ERR Client names cannot contain spaces, newlines or special characters."
    bad({"CLIENT", "SETNAME", "finalsnap permission probe"});
  } else if (name == "CLIENT PAUSE") {
    // "ERR timeout is not an integer or out of range": no pause, not even a zero-length one
    // (CLIENT PAUSE 0 would pause for a moment, and turn another's WRITE pause into ALL).
    std::vector<std::string> probe = c.argv;
    probe[2] = "finalsnap-probe";
    bad(probe);
  } else if (name == "CONFIG SET") {
    // An odd argument count: "ERR syntax error" (7.0), "wrong number of arguments" (earlier).
    std::vector<std::string> probe = c.argv;
    probe.push_back("finalsnap-probe");
    bad(probe);
  } else if (name == "REPLCONF") {
    // Options come in pairs: "ERR syntax error".
    bad({"REPLCONF", "finalsnap-probe"});
  } else if (name == "PSYNC") {
    if (facts.AtLeast(7, 0)) {
      // 7.0 parses the offset first: "ERR value is not an integer or out of range" (and two
      // log lines). Earlier versions take a bad offset as a request for a full resync.
      bad({"PSYNC", "?", "finalsnap-probe"});
    } else {
      c.no_probe = "a malformed PSYNC starts a full resync before 7.0";
    }
  } else if (name == "BGSAVE") {
    // Only SCHEDULE is an argument: "ERR syntax error".
    bad({"BGSAVE", "finalsnap-probe"});
  } else if (name == "SHUTDOWN") {
    // NOSAVE with SAVE is "ERR syntax error" on every version (6.2 and earlier take one
    // argument at most); it is parsed whole before anything is done.
    bad({"SHUTDOWN", "NOSAVE", "SAVE"});
  } else if (name == "SENTINEL REMOVE" || name == "SENTINEL RESET") {
    // A master name nobody has: "ERR No such master with that name" / ":0".
    bad({"SENTINEL", c.argv[1], "finalsnap-probe-" + tag});
  } else if (name == "CLIENT UNPAUSE") {
    // It takes no argument to get wrong, and run as it is it would lift anyone's pause.
    c.no_probe = "no harmless probe (it would lift another client's pause)";
  } else {
    c.no_probe = "no harmless probe";
  }
  return c;
}

// Runs one node's checks, in order, on its command connection.
Task<Findings> CheckNode(NodeChecks& n) {
  Findings f;
  if (n.own) {
    if (Status s = co_await n.own->Connect(); !s.ok()) {
      f.error = s.message();
      co_return f;
    }
  }
  NodeClient& client = *n.client;
  bool dryrun = true;
  for (const Check& c : n.checks) {
    const std::string name = CommandName(c.argv);
    if (dryrun) {
      std::vector<std::string> argv = detail::Argv("ACL", "DRYRUN", n.user);
      argv.insert(argv.end(), c.argv.begin(), c.argv.end());
      CommandOutcome r = co_await client.Command(argv);
      if (!r.status.ok()) {
        f.error = r.status.message();
        co_return f;
      }
      if (r.reply.ok()) {
        f.allowed.push_back(name);
        continue;
      }
      if (r.reply.type == Reply::Type::kString) {
        // DRYRUN's "no": a bulk string ("This user has no permissions to run the 'shutdown'
        // command", or to access a key or channel).
        f.denied.push_back(NoPermText(n.user, c.argv, n.label, r.reply.str) + ", needed " + c.why);
        continue;
      }
      if (r.reply.is_error() && StartsWith(r.reply.str, "ERR Command '")) {
        // DRYRUN works, but the server has no such command.
        if (c.optional) {
          f.notes.push_back(name + " unavailable (" + r.reply.str + ")");
        } else {
          f.unavailable.push_back(name + " on " + n.label + " (" + r.reply.str + "), needed " +
                                  c.why);
        }
        continue;
      }
      // The user may not run ACL DRYRUN (NOPERM), or the server has none (before 7.0): probes.
      dryrun = false;
      f.method = "probes (ACL DRYRUN: " + r.Error() + ")";
    }
    if (c.probe == Probe::kNone) {
      f.unchecked.push_back(name + " (" + c.no_probe + ")");
      continue;
    }
    const std::vector<std::string>& probe = c.probe == Probe::kRun ? c.argv : c.probe_argv;
    CommandOutcome r = co_await client.Command(probe);
    if (!r.status.ok()) {
      f.error = r.status.message();
      co_return f;
    }
    if (r.denied()) {
      f.denied.push_back(NoPermText(n.user, c.argv, n.label, r.reply.str) + ", needed " + c.why);
    } else if (UnknownCommand(r.reply)) {
      if (c.optional) {
        f.notes.push_back(name + " unavailable (" + r.reply.str + ")");
      } else {
        f.unavailable.push_back(name + " on " + n.label + " (" + r.reply.str + "), needed " +
                                c.why);
      }
    } else {
      f.allowed.push_back(name);
    }
  }
  if (f.method.empty()) f.method = "ACL DRYRUN";
  co_return f;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (const std::string& p : parts) s += (s.empty() ? "" : sep) + p;
  return s;
}

}  // namespace

Task<Verdict> Operation::CheckPermissions() {
  const NodeSettings& settings = target_.settings();
  const std::string user = settings.username.empty() ? "default" : settings.username;
  const std::string tag = Hex64(static_cast<uint64_t>(Ms() * 1000));
  std::vector<std::unique_ptr<NodeChecks>> nodes;
  auto checks_of = [&](GroupNode* node) -> NodeChecks& {
    for (auto& n : nodes) {
      if (n->client == node->client.get()) return *n;
    }
    auto n = std::make_unique<NodeChecks>();
    n->client = node->client.get();
    n->address = node->address.ToString();
    n->label = n->address + (node->primary ? " (primary)" : " (replica)");
    n->user = user;
    n->facts = node->facts;
    nodes.push_back(std::move(n));
    return *nodes.back();
  };
  auto add = [&](GroupNode* node, std::vector<std::string> argv, const std::string& why,
                 bool optional) {
    NodeChecks& n = checks_of(node);
    for (const Check& c : n.checks) {
      if (c.argv == argv) return;
    }
    Check c = For(std::move(argv), why, n.facts, tag);
    c.optional = optional;
    n.checks.push_back(std::move(c));
  };
  const bool snapshot = snapshot_name_.has_value();
  const bool sync = settings.capture == CaptureMode::kSync;
  // The claim: every member, on its command connection (claim.cc).
  for (const auto& node : topology_.nodes) {
    GroupNode* n = node.get();
    add(n, detail::Argv("CLIENT", "SETNAME", "finalsnap:permission-check"), "to claim the node",
        false);
    add(n,
        n->facts.AtLeast(5, 0) ? detail::Argv("CLIENT", "LIST", "TYPE", "normal")
                               : detail::Argv("CLIENT", "LIST"),
        "to see whether another operation claimed the node", false);
  }
  for (const auto& run : runs_) {
    GroupNode* primary = run->shard->primary;
    std::vector<std::string> pause =
        detail::Argv("CLIENT", "PAUSE", std::to_string(settings.pause_timeout_ms));
    if (primary->facts.AtLeast(6, 2)) pause.push_back("WRITE");
    add(primary, pause, "to pause writes", false);
    if (primary->facts.AtLeast(6, 2)) {
      add(primary, detail::Argv("CLIENT", "UNPAUSE"), "to lift the pause", false);
    }
    if (!snapshot) continue;
    GroupNode* source = run->source;
    if (source != primary) {
      add(source, detail::Argv("INFO", "replication"), "to see the replica catch up", false);
    }
    if (sync) {
      // Arrays, not braced lists: GCC 12 cannot keep an initializer_list in a coroutine frame.
      const char* const transfer_settings[] = {"repl-diskless-sync-delay", "rdbcompression"};
      for (const char* name : transfer_settings) {
        add(source, detail::Argv("CONFIG", "GET", name), "to read the transfer settings", true);
      }
      add(source, detail::Argv("CONFIG", "SET", "repl-diskless-sync-delay", "0"),
          "to start the transfer at once and put the setting back", true);
      add(source, detail::Argv("CONFIG", "SET", "rdbcompression", "no"),
          "to skip LZF in the transfer and put the setting back", true);
      add(source, detail::Argv("REPLCONF", "capa", "eof"), "for the capture", false);
      if (source->facts.AtLeast(6, 2)) {
        add(source, detail::Argv("REPLCONF", "rdb-only", "1"), "for the capture", false);
      }
      if (source->facts.engine == "valkey" && source->facts.major >= 9) {
        add(source, detail::Argv("REPLCONF", "version", source->facts.version), "for the capture",
            false);
      }
      add(source, detail::Argv("PSYNC", "?", "-1"), "for the capture", false);
    } else {
      const char* const file_settings[] = {"dir", "dbfilename"};
      for (const char* name : file_settings) {
        add(source, detail::Argv("CONFIG", "GET", name), "to find the node's RDB file", false);
      }
      add(source, detail::Argv("INFO", "persistence"), "to follow the BGSAVE", false);
      add(source, detail::Argv("LASTSAVE"), "to follow the BGSAVE", false);
      add(source, detail::Argv("BGSAVE"), "for the capture", false);
    }
  }
  if (Destroys()) {
    if (topology_.is_group) {
      for (const auto& node : topology_.nodes) {
        add(node.get(), resuming_ ? detail::Argv("ROLE") : detail::Argv("INFO", "replication"),
            "to check the group again right before the shutdown", false);
      }
    }
    for (GroupNode* n : destroy_order_) {
      add(n, detail::Argv("SHUTDOWN", "NOSAVE"), "to shut the node down", false);
    }
  }
  if (Destroys() && !topology_.sentinels.empty()) {
    // Sentinels are asked without the nodes' credentials (topology.cc, destroy.cc), so as their
    // default user, on a connection of this gate's own.
    const bool remove = finish_ == Finish::kDestroyAll;
    for (const detail::NodeAddress& a : topology_.sentinels) {
      auto n = std::make_unique<NodeChecks>();
      n->own = std::make_unique<NodeClient>(
          loop_, a, detail::NodeAuth{},
          detail::NodeTimeouts{milliseconds(settings.connect_timeout_ms),
                               milliseconds(settings.command_timeout_ms)});
      n->client = n->own.get();
      n->sentinel = true;
      n->address = a.ToString();
      n->label = "sentinel " + n->address;
      n->user = "default";
      n->checks.push_back(
          For(detail::Argv("SENTINEL", remove ? "REMOVE" : "RESET", target_.group->master_name),
              remove ? "to make the sentinel forget the deleted group"
                     : "to make the sentinel forget the removed replicas",
              n->facts, tag));
      nodes.push_back(std::move(n));
    }
  }

  std::vector<Task<Findings>> tasks;
  for (auto& n : nodes) tasks.push_back(CheckNode(*n));
  detail::WhenAll<Findings> all(std::move(tasks));
  std::vector<Findings> found = co_await all;

  std::vector<std::string> denied, unavailable, evidence;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeChecks& n = *nodes[i];
    const Findings& f = found[i];
    denied.insert(denied.end(), f.denied.begin(), f.denied.end());
    unavailable.insert(unavailable.end(), f.unavailable.begin(), f.unavailable.end());
    if (!f.error.empty()) {
      if (n.sentinel) {
        // The sentinels' part comes after every shutdown and is not the operation's success:
        // one that cannot be asked now is recorded, and SENTINEL REMOVE is tried all the same.
        evidence.push_back(n.label + ": unchecked (" + f.error + ")");
        continue;
      }
      co_return Refuse(target_.StateFault(),
                       "could not check the ACL user's permissions on " + n.label + ": " + f.error +
                           "; nothing was changed on any node",
                       f.error, n.address);
    }
    std::string e = n.label + ", " + f.method + " as " + n.user + ": " +
                    (f.allowed.empty() ? std::string("nothing") : Join(f.allowed, ", ")) +
                    " allowed";
    if (!f.unchecked.empty()) e += "; unchecked: " + Join(f.unchecked, ", ");
    if (!f.notes.empty()) e += "; " + Join(f.notes, ", ") + ", the transfer runs without it";
    evidence.push_back(e);
  }
  if (!denied.empty()) {
    co_return Refuse(target_.StateFault(),
                     Join(denied, "; ") +
                         "; nothing was changed on any node (README.md, \"The ACL user\", lists "
                         "what each operation needs)",
                     Join(denied, "; "));
  }
  if (!unavailable.empty()) {
    co_return Refuse(target_.StateFault(),
                     "the server does not have " + Join(unavailable, "; ") +
                         " (renamed or disabled?); nothing was changed on any node");
  }
  Pass(Join(evidence, "; "));
  co_return std::nullopt;
}

}  // namespace finalsnap::ops

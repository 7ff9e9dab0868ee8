// The operation journal (ops-private): what an operation is about to change on a node, written
// and fsynced before it changes it, so that a crash of finalsnap never costs a node its
// configuration, and an accepted delete can always be finished.
//
//   <storage root>/.journal/<operation id>.jsonl      0600, in a 0700 directory
//
// One JSON object per line, appended and fdatasynced one at a time. The first line is the
// header; every later line is an event:
//
//   {"journal":1,"operation_id":"…","command":"delete-replication-group","target_kind":"group",
//    "target":"orders","finish":"destroy-all","snapshot":"orders-final","pid":…,"host":"…",
//    "started":"2026-12-05T15:00:00Z"}
//   {"event":"partial","dir":".partial-orders-final-…"}      the snapshot's partial directory
//   {"event":"phase","phase":"quiesce"}                       each phase as it is entered
//   {"event":"config","node":"10.0.0.5:6379","name":"rdbcompression","original":"yes"}
//                                                             before CONFIG SET changes it
//   {"event":"pause","node":"10.0.0.5:6379"}                  before CLIENT PAUSE
//   {"event":"durable"}                                       the snapshot is committed
//   {"event":"proven","destroy":[{"node":"…","member":"orders-002","role":"replica"},…],
//    "sentinels":["…"],"master_name":"…"}                    every store gate passed (or, with
//                                                             no snapshot, the destroy began):
//                                                             from here a delete is finished,
//                                                             never undone
//   {"event":"shutdown","node":"…"}                           before SHUTDOWN NOSAVE
//   {"event":"down","node":"…"}                               the port refuses connections
//   {"event":"recovered"}                                     a recovery put the nodes back
//
// The running operation holds an exclusive flock(2) on its journal: a journal nobody holds
// belongs to an operation whose process is gone. It is removed when the operation ends with
// every node put back; one that could not put a node back stays for `finalsnap recover`.
//
// Nothing in a journal is trusted: every field is checked (config names are the two a capture
// changes, values are short printable strings, nodes are host:port), and a journal that does not
// parse is reported and left alone, never acted on.
#ifndef FINALSNAP_OPS_JOURNAL_H_
#define FINALSNAP_OPS_JOURNAL_H_

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/status.h"
#include "unique_fd.h"

namespace finalsnap::ops {

inline constexpr std::string_view kJournalDir = ".journal";

// A node the destroy shuts down, in the order it does.
struct JournalNode {
  std::string address;  // host:port
  std::string member;   // its cache cluster id
  bool primary = false;
};

struct JournalConfig {
  std::string node;
  std::string name;
  std::string original;
};

// A journal, as read back (or as written so far).
struct JournalState {
  // The header.
  std::string operation_id;  // 16 hex digits
  std::string command;       // create-snapshot, delete-cache-cluster, delete-replication-group
  std::string target_kind;   // "cache-cluster", "member", "group"
  std::string target;        // the id as the fleet file (or the member's name) has it
  std::string finish;        // "keep", "destroy-all", "retain-primary", "remove-member"
  std::optional<std::string> snapshot;
  long pid = 0;
  std::string host;
  std::string started;
  // The events.
  std::string partial;
  std::string phase;
  std::vector<JournalConfig> config;  // first change of each name on each node only
  std::vector<std::string> paused;
  bool durable = false;
  bool proven = false;
  std::vector<JournalNode> destroy;
  std::vector<std::string> sentinels;
  std::string master_name;
  std::set<std::string> shutdown_sent;
  std::set<std::string> down;
  bool recovered = false;

  bool Destroys() const { return finish != "keep"; }
  // A delete past the point of no return: the snapshot (if any) passed every store gate.
  bool PendingDelete() const { return Destroys() && proven; }
  // Applies one line; an error says what is wrong with it.
  Status Apply(const nlohmann::json& line, bool header);
};

// Parses a whole journal. The error names the line and the reason.
Expected<JournalState> ParseJournal(std::string_view text);

// One journal file, open and locked: the running operation's own, or an abandoned one adopted by
// a recovery or a re-run.
class Journal {
 public:
  // Creates <root>/.journal/<id>.jsonl, locks it and writes `header`'s header line, fsynced with
  // the directory.
  static Expected<std::unique_ptr<Journal>> Create(const std::filesystem::path& root,
                                                   const JournalState& header);
  // Opens and locks an existing journal. Fails with "running" in the message if another process
  // holds it, or with the parse error.
  static Expected<std::unique_ptr<Journal>> Adopt(const std::filesystem::path& path);

  // Appends one event, fdatasynced, and applies it to state().
  Status Append(const nlohmann::json& event);
  // Removes the file (the operation is over) and fsyncs the directory.
  Status Remove();

  const JournalState& state() const { return state_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  Journal(std::filesystem::path path, detail::UniqueFd fd, JournalState state)
      : path_(std::move(path)), fd_(std::move(fd)), state_(std::move(state)) {}
  std::filesystem::path path_;
  detail::UniqueFd fd_;
  JournalState state_;
};

// The journals under `root`, each read without taking its lock: `running` when a live process
// holds it. A journal that cannot be read or parsed is listed with its error.
struct FoundJournal {
  std::filesystem::path path;
  bool running = false;
  Expected<JournalState> state;
};
std::vector<FoundJournal> ScanJournals(const std::filesystem::path& root);

// A fresh operation id: 16 random hex digits.
std::string NewOperationId();

}  // namespace finalsnap::ops

#endif  // FINALSNAP_OPS_JOURNAL_H_

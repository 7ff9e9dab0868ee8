// What the fleet-aware subcommands share: loading the fleet file into a CommandResult-style
// failure, the documents they print (ElastiCache's shapes from finalsnap/elasticache.h, the
// same the API server sends, with finalsnap's own fields beside them), aws-CLI-like text output,
// the confirmation prompt and the progress line for long transfers.
//
// Everything here prints only to the stream it is given (or stderr for the terminal-only prompt
// and progress line); nothing exits.
#ifndef FINALSNAP_TOOLS_CLI_COMMON_H_
#define FINALSNAP_TOOLS_CLI_COMMON_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "command.h"
#include "finalsnap/elasticache.h"
#include "finalsnap/engine.h"
#include "finalsnap/fleet.h"
#include "finalsnap/storage.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace finalsnap::cli {

// Ordered, so that fields print in the order ElastiCache documents them: the shapes' own type.
using Json = ModelJson;

// Loads the fleet file named by --fleet, $FINALSNAP_FLEET or ./finalsnap.toml. A refused file
// becomes InvalidParameterValue with FleetError::ToString() ("file:line:col: key k: why").
Expected<Fleet, CommandResult> LoadFleetForCommand(const GlobalOptions& globals);

// Repairs what operations whose process died left behind in the fleet's storage (Recover(),
// what `finalsnap recover` does), printing each repair and each pending delete on stderr as
// "finalsnap: ...". Every command that reads or changes the storage or the nodes calls it first,
// except a dry run, which changes nothing.
void RecoverAbandoned(const Fleet& fleet);

// The documents below are ElastiCache's shapes with finalsnap's own fields after them.

// SnapshotShape with NodeGroupConfiguration, plus every field of the manifest (SnapshotToJson)
// the shape does not have: FinalSnapshotOf, Gates, ManifestVersion and, for each node, its File,
// Compression, sizes, Crc64, Keyspace, SourceEndpoint and replication position.
Json SnapshotJson(const Snapshot& snapshot);
// [{Gate, Phase, Passed, Evidence, Node, AtMs}], the same shape the manifest uses.
Json GatesJson(const std::vector<GateVerdict>& gates);
// CacheClusterShape in the CLI's style (ShapeStyle::kCli: a member without a value is null, a
// list is always there) with its node (CacheNodes, ConfigurationEndpoint), plus finalsnap's own
// Role, CaptureMode, UsedMemoryBytes and StatusReason.
Json CacheClusterJson(const CacheClusterInfo& info);
// ReplicationGroupShape in the CLI's style, plus finalsnap's own ReplicationOffset and LinkStatus
// on each member and EngineVersion, DiscoveredVia and StatusReason on the group.
Json ReplicationGroupJson(const ReplicationGroupInfo& info);

// The end of every operation command: prints `doc` plus the result's Gates and Notes when the
// operation got as far as a gate (a refusal's evidence is what an operator needs to see), and
// turns the result into the command's outcome, with `default_fault` for a refusal that named
// none.
CommandResult ReportOperation(const OperationResult& result, Json doc,
                              const GlobalOptions& globals, std::string_view default_fault);

// Prints a document on `out`: indented JSON, or the aws CLI's text form (one line per object,
// its name upper-cased, then its scalar fields separated by tabs; nested lists and objects on
// lines of their own).
void PrintDocument(const Json& doc, OutputFormat format, std::ostream& out);

// "1.5 GiB", "200.0 MiB", "512 B": binary units, one decimal.
std::string HumanBytes(uint64_t bytes);

// True when stderr is a terminal, where a redrawn progress line makes sense.
bool StderrIsTerminal();

// --yes, as every delete takes it.
void AddYesFlag(CLI::App* sub, bool& yes);
// What a delete of a target takes besides its id: --final-snapshot-identifier (returned; its
// count() says whether it was given at all, which is what asks for a final snapshot), --yes and
// --dry-run.
CLI::Option* AddDeleteOptions(CLI::App* sub, std::string& final_snapshot, bool& yes,
                              bool& dry_run);

// The one gate every destructive command (a delete of any kind) passes before it contacts a
// node or touches storage. With `yes` (--yes) it proceeds. Otherwise, when standard input and
// standard error are both terminals, it asks `question` and proceeds only on "y" or "yes" (any
// case); a "no" or end of input is Interrupted("aborted"). Without a terminal there is no one to
// ask: a script, cron or `ssh host finalsnap ...` is refused with MissingParameter and exit 252,
// saying that nothing was changed and that --yes is how a script says "I mean it". This goes
// beyond the aws CLI on purpose: an unattended delete is where a mistake costs the data.
// Returns std::nullopt when the command may proceed.
std::optional<CommandResult> ConfirmDestructive(std::string_view command,
                                                const std::string& question, bool yes);

// One line on stderr, redrawn in place with '\r' at most five times a second, showing bytes so
// far, the rate and an ETA against an expected total. Inert when `enabled` is false, so callers
// need not test for a terminal themselves. The destructor ends the line if one was drawn.
class ProgressLine {
 public:
  ProgressLine(std::string label, bool enabled);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // An OperationOptions::observer that draws the transfer's progress events; empty (no
  // reporting at all) when disabled.
  std::function<void(const OperationEvent&)> Observer();
  // Draws `done` of `expected` bytes `seconds` after the start (throttled unless `force`).
  void Update(uint64_t done, uint64_t expected, double seconds, bool force = false);
  // Draws the latest values if the throttle held them back, then ends the line with a newline
  // if anything was drawn. Idempotent.
  void Finish();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  size_t width_ = 0;  // of the last line drawn, to blank what a shorter line leaves behind
  std::chrono::steady_clock::time_point last_draw_{};
  // The latest values reported, drawn or not: Finish shows them, so the line ends on the final
  // count rather than on whatever the throttle last let through.
  uint64_t last_done_ = 0;
  uint64_t last_expected_ = 0;
  double last_seconds_ = 0;
  bool pending_ = false;  // reported since the last draw
  bool exact_ = false;    // the operation's expected size is exact, not an estimate
};

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_CLI_COMMON_H_

// `finalsnap recover`: finds the journals of operations whose process died (SIGKILL, a crash, a
// reboot) in the fleet's storage and repairs them from the journal: the nodes' settings put back
// to the values recorded before they were changed, writes unpaused, partial snapshots removed.
// Deletes that passed their point of no return are listed with the command that finishes them.
// Every other command does the same first; this one does only that, and says so.
#include "recover_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "cli_common.h"

namespace finalsnap::cli {
namespace {

Json Strings(const std::vector<std::string>& v) {
  Json list = Json::array();
  for (const std::string& s : v) list.push_back(s);
  return list;
}

CommandResult RunRecover(const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const RecoveryReport report = Recover(*loaded);
  Json doc;
  Json recovered = Json::array();
  for (const Recovery& r : report.recovered) {
    Json one;
    one["OperationId"] = r.operation_id;
    one["Command"] = r.command;
    one["Target"] = r.target;
    one["SnapshotName"] = r.snapshot_name ? Json(*r.snapshot_name) : Json();
    one["Repairs"] = Strings(r.repairs);
    one["Failures"] = Strings(r.failures);
    one["PendingDelete"] = r.pending_delete;
    if (r.pending_delete) one["NextStep"] = r.next_step;
    recovered.push_back(std::move(one));
  }
  doc["Recovered"] = std::move(recovered);
  doc["Errors"] = Strings(report.errors);
  PrintDocument(doc, globals.output, std::cout);
  if (!report.ok()) {
    return CommandResult::Fail("InvalidCacheClusterState",
                               "not everything could be repaired (see Failures and Errors); the "
                               "journals concerned are kept, run finalsnap recover again");
  }
  return CommandResult::Ok();
}

}  // namespace

Command RegisterRecoverCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "recover",
      "Repair what operations interrupted by finalsnap's own death left behind: put the nodes' "
      "settings back from the journal, unpause writes, remove partial snapshots, and list the "
      "deletes to finish.");
  return Command{sub, "Recover", [&globals] { return RunRecover(globals); }};
}

}  // namespace finalsnap::cli

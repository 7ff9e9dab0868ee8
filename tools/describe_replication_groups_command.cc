// `finalsnap describe-replication-groups`: discovers each of the fleet's replication groups (or
// the one named) from its endpoints or sentinels and shows shards, members and roles. A group
// that does not answer is reported with its status and reason, not as a failed command.
#include "describe_replication_groups_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli_common.h"
#include "finalsnap/engine.h"

namespace finalsnap::cli {
namespace {

CommandResult RunDescribeGroups(const std::string& id, const GlobalOptions& globals) {
  Expected<Fleet, CommandResult> loaded = LoadFleetForCommand(globals);
  if (!loaded.ok()) return loaded.error();
  const Fleet& fleet = *loaded;
  RecoverAbandoned(fleet);

  std::optional<std::string_view> filter;
  if (!id.empty()) {
    if (fleet.FindReplicationGroup(id) == nullptr) {
      return CommandResult::Fail("ReplicationGroupNotFoundFault",
                                 "ReplicationGroup " + id + " not found.");
    }
    filter = id;
  }
  Json list = Json::array();
  for (const ReplicationGroupInfo& info : DescribeReplicationGroups(fleet, filter)) {
    list.push_back(ReplicationGroupJson(info));
  }
  Json doc;
  doc["ReplicationGroups"] = std::move(list);
  PrintDocument(doc, globals.output, std::cout);
  return CommandResult::Ok();
}

}  // namespace

Command RegisterDescribeReplicationGroupsCommand(CLI::App& app, const GlobalOptions& globals) {
  CLI::App* sub = app.add_subcommand(
      "describe-replication-groups",
      "Show the live topology of the fleet's replication groups: shards, members, roles.");
  // Owned by the closure, which outlives parsing: CLI11 writes the value here.
  auto id = std::make_shared<std::string>();
  sub->add_option("--replication-group-id", *id, "Only this replication group (case-insensitive)");
  return Command{sub, "DescribeReplicationGroups",
                 [id, &globals] { return RunDescribeGroups(*id, globals); }};
}

}  // namespace finalsnap::cli

// The `describe-replication-groups` subcommand: the live topology of the fleet's replication
// groups (ElastiCache's DescribeReplicationGroups).
#ifndef FINALSNAP_TOOLS_DESCRIBE_REPLICATION_GROUPS_COMMAND_H_
#define FINALSNAP_TOOLS_DESCRIBE_REPLICATION_GROUPS_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `describe-replication-groups`. An unknown id fails with ReplicationGroupNotFoundFault; a
// group that does not answer or is inconsistent is listed with its status and reason.
Command RegisterDescribeReplicationGroupsCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DESCRIBE_REPLICATION_GROUPS_COMMAND_H_

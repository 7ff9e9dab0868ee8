// The `restore` subcommand: writes a snapshot's RDB files, decompressed and validated, as
// dump.rdb files that redis-server loads.
#ifndef FINALSNAP_TOOLS_RESTORE_COMMAND_H_
#define FINALSNAP_TOOLS_RESTORE_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `restore`. A missing snapshot is SnapshotNotFoundFault; --endpoint is not supported yet.
Command RegisterRestoreCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_RESTORE_COMMAND_H_

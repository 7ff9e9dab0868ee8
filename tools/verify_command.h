// The `finalsnap verify PATH` subcommand: checks an .rdb, .rdb.zst or .rdb.lz4 file, or every RDB
// file in a directory, and reports what it holds (JSON, or a few redis-check-rdb-like lines).
#ifndef FINALSNAP_TOOLS_VERIFY_COMMAND_H_
#define FINALSNAP_TOOLS_VERIFY_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds the `verify` subcommand to `app`. Fails with InvalidParameterValue when the path is
// missing or unreadable and with InvalidSnapshotState when a file is not a valid RDB.
Command RegisterVerifyCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_VERIFY_COMMAND_H_

// The `demo` subcommand: a throwaway local redis-server, filled with mixed data, deleted with a
// final snapshot, restored into a fresh server and compared, with no fleet file needed.
#ifndef FINALSNAP_TOOLS_DEMO_COMMAND_H_
#define FINALSNAP_TOOLS_DEMO_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `demo`. Succeeds only when the restored server holds exactly the data the first one had.
Command RegisterDemoCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_DEMO_COMMAND_H_

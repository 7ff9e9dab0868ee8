// The `recover` subcommand: repairs what operations whose process died left behind.
#ifndef FINALSNAP_TOOLS_RECOVER_COMMAND_H_
#define FINALSNAP_TOOLS_RECOVER_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `recover`: Recover() on the fleet's storage, printing what was repaired, what could not
// be (exit 254, the journal kept for the next try) and the deletes still pending.
Command RegisterRecoverCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_RECOVER_COMMAND_H_

// The `serve` subcommand: the ElastiCache-compatible Query API (finalsnap/api.h) on
// --listen (default [api] listen, loopback), until SIGINT or SIGTERM.
#ifndef FINALSNAP_TOOLS_SERVE_COMMAND_H_
#define FINALSNAP_TOOLS_SERVE_COMMAND_H_

#include "command.h"

namespace finalsnap::cli {

// Adds `serve`. Prints one JSON line on stdout once listening ({"Listening": {"Address", "Port"},
// "Url"}), logs requests and operation outcomes on stderr, and exits 0 after a clean shutdown.
// Fails (InvalidParameterValue) when it cannot start: no credentials, an unreadable secret, a
// state directory in use by another server, an address that cannot be bound.
Command RegisterServeCommand(CLI::App& app, const GlobalOptions& globals);

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_SERVE_COMMAND_H_

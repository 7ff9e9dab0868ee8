// The contract between the finalsnap CLI's main (finalsnap_main.cc) and its subcommands:
// GlobalOptions, the Command a subcommand registers, the CommandResult it returns, exit codes.
//
// Each subcommand lives in its own file and exposes one function,
//   Command RegisterXxxCommand(CLI::App& app, const GlobalOptions& globals);
// which adds a CLI11 subcommand to `app` and returns how to run it. main parses the command line,
// runs the chosen command and turns its CommandResult into the aws-CLI-style error line and exit
// code, in one place. Commands print their own output (stdout) but never exit.
#ifndef FINALSNAP_TOOLS_COMMAND_H_
#define FINALSNAP_TOOLS_COMMAND_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "finalsnap/cancel.h"

namespace CLI {
class App;
}  // namespace CLI

namespace finalsnap::cli {

// Exit codes, as the aws CLI uses them.
inline constexpr int kExitSuccess = 0;
inline constexpr int kExitInterrupted = 130;
inline constexpr int kExitUsage = 252;   // the command line could not be parsed
inline constexpr int kExitFailed = 254;  // the operation failed or was refused

enum class OutputFormat { kJson, kText };

// Options given before (or after) the subcommand. They are filled in by parsing, so a command
// reads them when it runs, not when it registers.
struct GlobalOptions {
  OutputFormat output = OutputFormat::kJson;
  // Whether --output was given at all. A command meant for people (demo) prints text unless the
  // user asked for a format explicitly.
  bool output_explicit = false;
  std::string fleet;  // --fleet, else $FINALSNAP_FLEET; empty means ./finalsnap.toml
  // Cancelled by SIGINT, SIGTERM or SIGHUP while a cancellable command runs (signals.h); such a
  // command passes it to its operation.
  CancelToken cancel;
};

// A failed or refused operation. main prints it on stderr as
//   An error occurred (<fault>) when calling the <operation> operation: <message>
// using ElastiCache's fault names (InvalidParameterValue, InvalidSnapshotState, ...).
struct CommandError {
  std::string fault;
  std::string message;
};

struct CommandResult {
  std::optional<CommandError> error;  // empty on success
  // The error is the command line's fault, found before anything was contacted or changed: exit
  // 252 (kExitUsage) rather than 254, as the aws CLI does for a parameter it refuses itself.
  bool usage = false;
  // The user stopped the command (declined a confirmation): main prints `interrupted_message`
  // on stderr, without the error line, and exits 130, as the aws CLI does on Ctrl-C.
  bool interrupted = false;
  std::string interrupted_message;

  bool ok() const { return !error.has_value() && !interrupted; }
  static CommandResult Ok() { return {}; }
  static CommandResult Fail(std::string fault, std::string message) {
    CommandResult result;
    result.error = CommandError{std::move(fault), std::move(message)};
    return result;
  }
  static CommandResult Usage(std::string fault, std::string message) {
    CommandResult result = Fail(std::move(fault), std::move(message));
    result.usage = true;
    return result;
  }
  static CommandResult Interrupted(std::string message) {
    CommandResult result;
    result.interrupted = true;
    result.interrupted_message = std::move(message);
    return result;
  }
};

struct Command {
  CLI::App* app = nullptr;  // the subcommand, owned by the root App
  std::string operation;    // the aws-style operation name for error lines, e.g. "Verify"
  std::function<CommandResult()> run;
  // Runs an operation that must put nodes back when stopped: signals cancel
  // GlobalOptions::cancel instead of ending the process.
  bool cancellable = false;
};

}  // namespace finalsnap::cli

#endif  // FINALSNAP_TOOLS_COMMAND_H_

// The finalsnap command-line tool: parses the command line with CLI11, runs one subcommand and
// maps its result to the aws CLI's conventions (the error line on stderr, exit codes 0/252/254).
//
// Adding a subcommand: write tools/<name>_command.{h,cc} with RegisterXxxCommand (see command.h)
// and add one line to RegisterCommands below. Nothing else here needs to change.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "command.h"
#include "create_snapshot_command.h"
#include "delete_cache_cluster_command.h"
#include "delete_replication_group_command.h"
#include "delete_snapshot_command.h"
#include "demo_command.h"
#include "describe_cache_clusters_command.h"
#include "describe_replication_groups_command.h"
#include "describe_snapshots_command.h"
#include "finalsnap/elasticache.h"
#include "recover_command.h"
#include "restore_command.h"
#include "serve_command.h"
#include "signals.h"
#include "verify_command.h"

namespace finalsnap::cli {
namespace {

std::vector<Command> RegisterCommands(CLI::App& app, const GlobalOptions& globals) {
  std::vector<Command> commands;
  commands.push_back(RegisterDeleteCacheClusterCommand(app, globals));
  commands.push_back(RegisterDeleteReplicationGroupCommand(app, globals));
  commands.push_back(RegisterCreateSnapshotCommand(app, globals));
  commands.push_back(RegisterDescribeSnapshotsCommand(app, globals));
  commands.push_back(RegisterDeleteSnapshotCommand(app, globals));
  commands.push_back(RegisterRecoverCommand(app, globals));
  commands.push_back(RegisterDescribeCacheClustersCommand(app, globals));
  commands.push_back(RegisterDescribeReplicationGroupsCommand(app, globals));
  commands.push_back(RegisterVerifyCommand(app, globals));
  commands.push_back(RegisterRestoreCommand(app, globals));
  commands.push_back(RegisterDemoCommand(app, globals));
  commands.push_back(RegisterServeCommand(app, globals));
  return commands;
}

// The error line must stay one line whatever a message carries (keys are binary-safe).
std::string OneLine(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\x%02x", byte);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

void PrintError(std::string_view fault, std::string_view operation, std::string_view message) {
  std::cerr << "An error occurred (" << fault << ") when calling the " << operation
            << " operation: " << OneLine(message) << std::endl;
}

// The first option of `app` or of any subcommand or option group under it that was given an
// empty or whitespace-only value, as "--name" (or "PATH" for a positional). Giving an option
// means "I want this": `--final-snapshot-identifier "$UNSET"` must never read as "no final
// snapshot", and an empty id, name or path names nothing. Raw results are read, so this works
// whether or not CLI11 went on to convert or validate them.
std::optional<std::string> FindBlankValue(const CLI::App& app) {
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0) continue;
    for (const std::string& value : option->results()) {
      if (!IsBlank(value)) continue;
      std::string name = option->get_name(/*positional=*/false, /*all_options=*/false);
      if (!option->get_envname().empty()) name += " (or $" + option->get_envname() + ")";
      return name;
    }
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (std::optional<std::string> found = FindBlankValue(*sub)) return found;
  }
  return std::nullopt;
}

// The command line as CLI11's parse(vector) takes it (reversed), with every "--name=" written
// as "--name" "": CLI11 reads "--name=" as a missing value, which would hide from
// FindBlankValue that an empty value was given (`--final-snapshot-identifier="$UNSET"`).
std::vector<std::string> SplitEmptyAssignments(int argc, char** argv) {
  std::vector<std::string> args;
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    options_ended = options_ended || arg == "--";
    if (!options_ended && arg.size() > 3 && arg.rfind("--", 0) == 0 && arg.back() == '=' &&
        arg.find('=') == arg.size() - 1) {
      args.emplace_back(arg.substr(0, arg.size() - 1));
      args.emplace_back();
    } else {
      args.emplace_back(arg);
    }
  }
  std::reverse(args.begin(), args.end());
  return args;
}

// The operation named in error lines: the chosen subcommand's, or the tool's own.
std::string_view OperationOf(const std::vector<Command>& commands) {
  for (const Command& command : commands) {
    if (command.app->parsed()) return command.operation;
  }
  return "finalsnap";
}

// Refuses a blank value (FindBlankValue) before anything is contacted, as the API refuses an
// empty parameter: InvalidParameterValue, exit 252.
std::optional<int> RefuseBlankValue(const CLI::App& app, const std::vector<Command>& commands) {
  const std::optional<std::string> blank = FindBlankValue(app);
  if (!blank) return std::nullopt;
  std::string message = "The value of " + *blank + " must not be empty or blank.";
  if (blank->rfind("--final-snapshot-identifier", 0) == 0) {
    message += " Leave the option out to delete without a final snapshot.";
  }
  PrintError("InvalidParameterValue", OperationOf(commands),
             message + " Nothing was contacted or changed.");
  return kExitUsage;
}

int Execute(const Command& command) {
  try {
    const CommandResult result = command.run();
    if (result.ok()) return kExitSuccess;
    if (result.interrupted) {
      std::cerr << OneLine(result.interrupted_message) << std::endl;
      return kExitInterrupted;
    }
    PrintError(result.error->fault, command.operation, result.error->message);
    if (result.usage) return kExitUsage;
    // An operation stopped by SIGINT/SIGTERM (it unpaused and put the node back first).
    return result.error->fault == "Interrupted" ? kExitInterrupted : kExitFailed;
  } catch (const std::exception& e) {
    PrintError("InternalFailure", command.operation, e.what());
  } catch (...) {
    PrintError("InternalFailure", command.operation, "unknown exception");
  }
  return kExitFailed;
}

int Run(int argc, char** argv) {
  CLI::App app(
      "finalsnap: take a verified final snapshot of self-hosted Redis and Valkey nodes, "
      "then shut them down (the ElastiCache final-snapshot workflow).",
      "finalsnap");
  GlobalOptions globals;
  std::string output = "json";
  CLI::Option* output_option = app.add_option("--output", output, "Output format")
                                   ->check(CLI::IsMember({"json", "text"}))
                                   ->capture_default_str();
  app.add_option("--fleet", globals.fleet,
                 "Fleet file (default $FINALSNAP_FLEET, ./finalsnap.toml)")
      ->envname("FINALSNAP_FLEET");
  app.require_subcommand(1);
  // Subcommands inherit this: global options are accepted after the subcommand as well, as the
  // aws CLI accepts `aws elasticache ... --output text`.
  app.fallthrough();
  // Errors print CLI11's message followed by the usage of the (sub)command at fault.
  app.failure_message(CLI::FailureMessage::help);

  const std::vector<Command> commands = RegisterCommands(app, globals);
  try {
    app.parse(SplitEmptyAssignments(argc, argv));
  } catch (const CLI::ParseError& e) {
    // --help and friends are "errors" with exit code 0; they print to stdout.
    if (e.get_exit_code() != 0) {
      // A blank value is the error to report, whatever else CLI11 found wrong with it.
      if (std::optional<int> refused = RefuseBlankValue(app, commands)) return *refused;
    }
    const int code = app.exit(e, std::cout, std::cerr);
    return code == 0 ? kExitSuccess : kExitUsage;
  }
  if (std::optional<int> refused = RefuseBlankValue(app, commands)) return *refused;
  globals.output = output == "text" ? OutputFormat::kText : OutputFormat::kJson;
  globals.output_explicit = output_option->count() > 0;

  for (const Command& command : commands) {
    if (!command.app->parsed()) continue;
    if (command.cancellable) CancelOnSignals(globals.cancel);
    return Execute(command);
  }
  // require_subcommand(1) makes this unreachable; keep the exit code honest regardless.
  std::cerr << app.help() << std::flush;
  return kExitUsage;
}

}  // namespace
}  // namespace finalsnap::cli

int main(int argc, char** argv) {
  // Nothing may escape main as an exception: that would abort without the error line.
  try {
    return finalsnap::cli::Run(argc, argv);
  } catch (const std::exception& e) {
    finalsnap::cli::PrintError("InternalFailure", "finalsnap", e.what());
  } catch (...) {
    finalsnap::cli::PrintError("InternalFailure", "finalsnap", "unknown exception");
  }
  return finalsnap::cli::kExitFailed;
}

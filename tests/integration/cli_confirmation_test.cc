// The CLI's two guards against losing data by mistake, through the real `finalsnap` binary and
// real redis-server processes (a standalone node and a primary with a replica):
//
//   1. Every option that takes a value, of every command (found in the binary's own --help, so a
//      new option is covered the day it is added), given empty, blank or whitespace-only, is
//      refused with InvalidParameterValue and exit 252 before anything is contacted: with and
//      without a terminal, with and without --yes, as "--name VALUE" and as "--name=".
//   2. A delete of any kind without a terminal on standard input proceeds only with --yes.
//
// And the invariant they exist for, checked after every run: a run that ends with a node shut
// down either had no --final-snapshot-identifier and was confirmed (--yes, or "y" typed at the
// prompt), or left an `available` snapshot of exactly the requested name.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/redis_server.h"
#include "support/redis_topology.h"
#include "support/storage_entries.h"
#include "support/temp_dir.h"

namespace finalsnap {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ProcessResult;
using testing::RedisServer;
using testing::RunCommand;
using testing::RunOptions;
using testing::TempDir;

// How standard input is attached, and what is typed at a "[y/N]" question.
struct Stdin {
  bool terminal = false;
  std::optional<std::string> answer;  // none: end of input (Ctrl-D)
};

// The options of `finalsnap [SUBCOMMAND] --help` that take a value (a line such as
// "  --snapshot-name TEXT REQUIRED" or "  PATH TEXT REQUIRED"; flags have no type word).
std::set<std::string> ValueOptions(const std::string& help) {
  static const std::regex kValueOption(R"(^\s+(?:-\w,)?(--[a-z][a-z0-9-]*|[A-Z]+) [A-Z]+)");
  std::set<std::string> options;
  std::istringstream lines(help);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, kValueOption)) options.insert(m[1]);
  }
  return options;
}

// The subcommand names listed under "Subcommands:" in `finalsnap --help`.
std::vector<std::string> Subcommands(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream lines(help);
  bool listing = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Subcommands:", 0) == 0) {
      listing = true;
      continue;
    }
    if (listing && line.size() > 2 && line[0] == ' ' && line[2] != ' ') {
      names.push_back(line.substr(2, line.find(' ', 2) - 2));
    }
  }
  return names;
}

bool Contains(const std::vector<std::string>& args, const std::string& what) {
  return std::find(args.begin(), args.end(), what) != args.end();
}

class CliConfirmationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_.Start();
    ASSERT_TRUE(node_.Command("DEBUG", "POPULATE", 500, "key", 32).ok());
    group_.Start();
    ASSERT_TRUE(group_.primary().Command("DEBUG", "POPULATE", 300, "g", 32).ok());
    group_.WaitForReplicasCaughtUp();
    std::ofstream(fleet_path())
        << "[storage]\npath = \"snapshots\"\n\n[cache_clusters.c1]\nendpoint = \"127.0.0.1:"
        << node_.port() << "\"\n\n[replication_groups.g1]\nendpoints = [\"127.0.0.1:"
        << group_.primary().port() << "\"]\n";
    // A snapshot for the commands that need one (delete-snapshot, restore, verify).
    const ProcessResult r =
        Cli({"create-snapshot", "--cache-cluster-id", "c1", "--snapshot-name", "kept"}, {});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    node_digest_ = Digest(node_);
    group_digest_ = Digest(group_.primary());
  }

  std::string fleet_path() const { return (dir_.path() / "finalsnap.toml").string(); }
  fs::path storage() const { return dir_.path() / "snapshots"; }

  static std::string Digest(RedisServer& server) { return server.Command("DEBUG", "DIGEST").str; }

  // Runs the binary with `args` as given (the caller places --fleet), then checks the
  // invariant for this run.
  ProcessResult Run(const std::vector<std::string>& args, const Stdin& in) {
    std::vector<std::string> argv = {FINALSNAP_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.env.emplace_back("FINALSNAP_FLEET", std::nullopt);
    options.terminal = in.terminal;
    options.terminal_answer = in.answer;
    options.timeout = std::chrono::milliseconds(60'000);
    ProcessResult r = RunCommand(argv, options);
    ExpectInvariant(args, in, r);
    return r;
  }

  ProcessResult Cli(std::vector<std::string> args, const Stdin& in) {
    args.insert(args.begin(), {"--fleet", fleet_path()});
    return Run(args, in);
  }

  // A node shut down by this run means: no --final-snapshot-identifier and a confirmation, or
  // an available snapshot of exactly the requested name.
  void ExpectInvariant(const std::vector<std::string>& args, const Stdin& in,
                       const ProcessResult& r) {
    const bool node_down = node_up_ && !node_.Running();
    const bool group_down = group_up_ && !(group_.primary().Running() &&
                                           group_.replica(0).Running());
    node_up_ = node_up_ && !node_down;
    group_up_ = group_up_ && !group_down;
    if (!node_down && !group_down) return;
    const auto fsi = std::find(args.begin(), args.end(), "--final-snapshot-identifier");
    if (fsi == args.end()) {
      const bool confirmed = Contains(args, "--yes") || (in.terminal && in.answer == "y");
      EXPECT_TRUE(confirmed) << "a node was shut down without confirmation\n" << r.Describe();
      return;
    }
    ASSERT_NE(fsi + 1, args.end()) << r.Describe();
    const std::string name = *(fsi + 1);
    const ProcessResult described =
        RunCommand({FINALSNAP_CLI, "--fleet", fleet_path(), "describe-snapshots",
                    "--snapshot-name", name});
    ASSERT_EQ(described.exit_code, 0)
        << "a node was shut down, and its final snapshot '" << name << "' is not there\n"
        << r.Describe() << "\n"
        << described.Describe();
    const json snapshots = json::parse(described.stdout_text)["Snapshots"];
    ASSERT_EQ(snapshots.size(), 1u) << described.Describe();
    EXPECT_EQ(snapshots[0]["SnapshotName"], name) << described.Describe();
    EXPECT_EQ(snapshots[0]["SnapshotStatus"], "available") << described.Describe();
  }

  // Nothing was touched: both targets answer with the data they had, and storage holds only
  // the snapshot made in SetUp.
  void ExpectUntouched(const std::string& context) {
    SCOPED_TRACE(context);
    ASSERT_TRUE(node_.Running());
    ASSERT_TRUE(group_.primary().Running());
    ASSERT_TRUE(group_.replica(0).Running());
    EXPECT_EQ(Digest(node_), node_digest_);
    EXPECT_EQ(Digest(group_.primary()), group_digest_);
    EXPECT_TRUE(node_.Command("SET", "probe", "1").ok()) << "writes left paused";
    EXPECT_EQ(node_.Command("DEL", "probe").integer, 1);
    EXPECT_EQ(testing::StorageEntries(storage()), std::vector<std::string>({"kept"}));
    EXPECT_FALSE(fs::exists(dir_.path() / "restored"));
  }

  TempDir dir_{"finalsnap-cli-confirmation"};
  RedisServer node_;
  testing::ReplicationGroupFixture group_{{.replicas = 1}};
  bool node_up_ = true;
  bool group_up_ = true;
  std::string node_digest_;
  std::string group_digest_;
};

TEST_F(CliConfirmationTest, EveryValueOptionRefusesABlankValueBeforeAnythingRuns) {
  // A command line per subcommand that would go ahead and act: every required option has a
  // good value, and the deletes name live targets and a final snapshot.
  const std::string restored = (dir_.path() / "restored").string();
  const std::map<std::string, std::vector<std::string>> valid = {
      {"delete-cache-cluster", {"--cache-cluster-id", "c1", "--final-snapshot-identifier", "fin"}},
      {"delete-replication-group",
       {"--replication-group-id", "g1", "--final-snapshot-identifier", "fin"}},
      {"create-snapshot", {"--cache-cluster-id", "c1", "--snapshot-name", "s2"}},
      {"describe-snapshots", {"--snapshot-name", "kept"}},
      {"delete-snapshot", {"--snapshot-name", "kept"}},
      {"recover", {}},
      {"describe-cache-clusters", {"--cache-cluster-id", "c1"}},
      {"describe-replication-groups", {"--replication-group-id", "g1"}},
      {"verify", {"kept"}},
      {"restore", {"--snapshot-name", "kept", "--target-dir", restored}},
      {"demo", {"--size-mb", "1"}},
      {"serve", {"--listen", "127.0.0.1:0"}},
  };
  const std::map<std::string, std::set<std::string>> expected_options = {
      {"delete-cache-cluster", {"--cache-cluster-id", "--final-snapshot-identifier"}},
      {"delete-replication-group", {"--replication-group-id", "--final-snapshot-identifier"}},
      {"create-snapshot", {"--cache-cluster-id", "--replication-group-id", "--snapshot-name"}},
      {"describe-snapshots", {"--snapshot-name", "--cache-cluster-id", "--replication-group-id"}},
      {"delete-snapshot", {"--snapshot-name"}},
      {"recover", {}},
      {"describe-cache-clusters", {"--cache-cluster-id"}},
      {"describe-replication-groups", {"--replication-group-id"}},
      {"verify", {"PATH"}},
      {"restore", {"--snapshot-name", "--target-dir", "--endpoint"}},
      {"demo", {"--size-mb", "--redis-server"}},
      {"serve", {"--listen"}},
  };

  const ProcessResult root_help = RunCommand({FINALSNAP_CLI, "--help"});
  ASSERT_EQ(root_help.exit_code, 0) << root_help.Describe();
  const std::set<std::string> globals = ValueOptions(root_help.stdout_text);
  EXPECT_EQ(globals, (std::set<std::string>{"--fleet", "--output"})) << root_help.stdout_text;
  const std::vector<std::string> commands = Subcommands(root_help.stdout_text);
  ASSERT_EQ(commands.size(), valid.size()) << root_help.stdout_text;

  const std::vector<std::string> blanks = {"", " ", "\t", "  \n "};
  const std::vector<Stdin> inputs = {{false, std::nullopt}, {true, std::nullopt}};
  size_t runs = 0;
  for (const std::string& command : commands) {
    ASSERT_EQ(valid.count(command), 1u) << "no valid command line for new command " << command;
    ASSERT_EQ(expected_options.count(command), 1u) << command;
    const ProcessResult help = RunCommand({FINALSNAP_CLI, command, "--help"});
    ASSERT_EQ(help.exit_code, 0) << help.Describe();
    std::set<std::string> options = ValueOptions(help.stdout_text);
    // The help is read right: each command lists the value options it is known to have (a new
    // one fails here until it has a good value below, and is then covered).
    EXPECT_EQ(options, expected_options.at(command)) << help.stdout_text;
    options.insert(globals.begin(), globals.end());
    const bool has_yes = command.rfind("delete-", 0) == 0;
    for (const std::string& option : options) {
      // The valid command line with `option` set to `value` (replacing a value it has).
      auto with = [&](const std::string& value, bool assignment) {
        std::vector<std::string> args = {"--fleet", fleet_path(), command};
        const std::vector<std::string>& base = valid.at(command);
        for (size_t i = 0; i < base.size(); ++i) {
          const bool positional = base[i].rfind("--", 0) != 0 &&
                                  (i == 0 || base[i - 1].rfind("--", 0) != 0);
          if (base[i] == option || (positional && option == "PATH")) {
            if (!positional) ++i;  // skip the option's value too
            continue;
          }
          args.push_back(base[i]);
        }
        if (option == "--fleet") args.erase(args.begin(), args.begin() + 2);
        // create-snapshot and restore take exactly one of a group: the option replaces its
        // sibling.
        for (const auto& [a, b] : {std::pair<std::string, std::string>{"--replication-group-id",
                                                                       "--cache-cluster-id"},
                                   {"--endpoint", "--target-dir"}}) {
          if (option == a) {
            auto it = std::find(args.begin(), args.end(), b);
            if (it != args.end()) args.erase(it, it + 2);
          }
        }
        if (option == "PATH") {
          args.push_back(value);
        } else if (assignment) {
          args.push_back(option + "=" + value);
        } else {
          args.push_back(option);
          args.push_back(value);
        }
        return args;
      };
      for (const std::string& blank : blanks) {
        for (const Stdin& in : inputs) {
          for (const bool yes : {false, true}) {
            if (yes && !has_yes) continue;
            std::vector<std::string> args = with(blank, /*assignment=*/false);
            if (yes) args.push_back("--yes");
            const ProcessResult r = Run(args, in);
            ++runs;
            const std::string shown = option == "PATH" ? "PATH" : option;
            EXPECT_EQ(r.exit_code, 252) << r.Describe();
            EXPECT_NE(r.stderr_text.find("An error occurred (InvalidParameterValue)"),
                      std::string::npos)
                << r.Describe();
            EXPECT_NE(r.stderr_text.find(shown), std::string::npos) << r.Describe();
            EXPECT_EQ(r.stderr_text.find("[y/N]"), std::string::npos)
                << "asked before refusing\n"
                << r.Describe();
            EXPECT_TRUE(r.stdout_text.empty()) << r.Describe();
          }
        }
      }
      if (option != "PATH") {
        // "--name=" is the same empty value.
        const ProcessResult r = Run(with("", /*assignment=*/true), {});
        ++runs;
        EXPECT_EQ(r.exit_code, 252) << r.Describe();
        EXPECT_NE(r.stderr_text.find("(InvalidParameterValue)"), std::string::npos)
            << r.Describe();
      }
    }
  }
  // Every command and option above was reached: 11 commands, each with its own value options
  // and the two global ones.
  EXPECT_GE(runs, 11u * 3u * blanks.size() * inputs.size());
  ExpectUntouched("after every blank value");

  // The issue's own reproduction: an unset variable as the snapshot name, no terminal.
  for (const bool yes : {false, true}) {
    std::vector<std::string> args = {"delete-cache-cluster", "--cache-cluster-id", "c1",
                                     "--final-snapshot-identifier", ""};
    if (yes) args.push_back("--yes");
    const ProcessResult r = Cli(args, {});
    EXPECT_EQ(r.exit_code, 252) << r.Describe();
    EXPECT_NE(r.stderr_text.find("Leave the option out to delete without a final snapshot"),
              std::string::npos)
        << r.Describe();
  }
  ExpectUntouched("after the reproduction");
}

TEST_F(CliConfirmationTest, DeletesWithoutATerminalNeedYes) {
  const std::vector<std::vector<std::string>> deletes = {
      {"delete-cache-cluster", "--cache-cluster-id", "c1"},
      {"delete-cache-cluster", "--cache-cluster-id", "c1", "--final-snapshot-identifier", "fin"},
      {"delete-replication-group", "--replication-group-id", "g1"},
      {"delete-replication-group", "--replication-group-id", "g1", "--final-snapshot-identifier",
       "fin"},
      {"delete-snapshot", "--snapshot-name", "kept"},
  };
  for (const std::vector<std::string>& args : deletes) {
    // No terminal, no --yes: refused, saying why and that nothing changed.
    ProcessResult r = Cli(args, {});
    EXPECT_EQ(r.exit_code, 252) << r.Describe();
    EXPECT_NE(r.stderr_text.find("An error occurred (MissingParameter)"), std::string::npos)
        << r.Describe();
    EXPECT_NE(r.stderr_text.find("standard input is not a terminal"), std::string::npos)
        << r.Describe();
    EXPECT_NE(r.stderr_text.find("Nothing was contacted or changed"), std::string::npos)
        << r.Describe();
    EXPECT_NE(r.stderr_text.find("--yes"), std::string::npos) << r.Describe();
    EXPECT_TRUE(r.stdout_text.empty()) << r.Describe();
    // On a terminal, the question is asked; "n" and end of input both decline.
    for (const std::optional<std::string>& answer :
         {std::optional<std::string>("n"), std::optional<std::string>()}) {
      r = Cli(args, {true, answer});
      EXPECT_EQ(r.exit_code, 130) << r.Describe();
      EXPECT_NE(r.stderr_text.find("[y/N]"), std::string::npos) << r.Describe();
    }
    // A dry run changes nothing and needs no confirmation.
    if (args[0] != "delete-snapshot") {
      std::vector<std::string> dry = args;
      dry.push_back("--dry-run");
      r = Cli(dry, {});
      EXPECT_EQ(r.exit_code, 0) << r.Describe();
    }
  }
  ExpectUntouched("after every declined delete");

  // Confirmed at the terminal with a final snapshot: the node goes, the snapshot is there.
  ProcessResult r = Cli({"delete-cache-cluster", "--cache-cluster-id", "c1",
                         "--final-snapshot-identifier", "fin-c1"},
                        {true, "y"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(node_.WaitForExit(std::chrono::milliseconds(10'000)).has_value());
  ExpectInvariant({"delete-cache-cluster", "--cache-cluster-id", "c1",
                   "--final-snapshot-identifier", "fin-c1"},
                  {true, "y"}, r);
  EXPECT_FALSE(node_up_);
  EXPECT_TRUE(fs::exists(storage() / "fin-c1" / "manifest.json"));

  // --yes without a terminal and without a final snapshot: the one way to lose the data, asked
  // for explicitly.
  r = Cli({"delete-replication-group", "--replication-group-id", "g1", "--yes"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(group_.primary().WaitForExit(std::chrono::milliseconds(10'000)).has_value());
  ExpectInvariant({"delete-replication-group", "--replication-group-id", "g1", "--yes"}, {}, r);
  EXPECT_FALSE(group_up_);

  // delete-snapshot with --yes and no terminal goes ahead.
  r = Cli({"delete-snapshot", "--snapshot-name", "kept", "--yes"}, {});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_FALSE(fs::exists(storage() / "kept"));
}

}  // namespace
}  // namespace finalsnap

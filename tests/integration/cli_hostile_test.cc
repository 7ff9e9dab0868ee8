// Hostile input through the real `finalsnap` binary (issue 11): a snapshot copied into storage by
// hand with a manifest that names paths, a snapshot file that is a symbolic link to a FIFO, a
// symbolic link with a snapshot's name, verify on a pipe, --fleet /dev/zero, a secret pasted into
// the wrong key, a zstd file that declares a huge window, a short API secret, and umask 000.
//
// The snapshot every case starts from is made by `finalsnap create-snapshot` from a real
// redis-server; every wait is bounded by RunCommand's deadline.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/big_window_zstd.h"
#include "support/files.h"
#include "support/process.h"
#include "support/redis_server.h"
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

const std::string kNoChecksum =
    FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb/redis-7.0.15-nochecksum.rdb";

using finalsnap::testing::DumpsUnder;
using finalsnap::testing::Mode;
using finalsnap::testing::ReadText;
using finalsnap::testing::WriteText;

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

class CliHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_.Start();
    ASSERT_TRUE(node_.Command("DEBUG", "POPULATE", 2000, "key", 64).ok());
    WriteText(fleet(),
              "[storage]\npath = \"snapshots\"\n\n[cache_clusters.c1]\nendpoint = "
              "\"127.0.0.1:" +
                  std::to_string(node_.port()) + "\"\n");
    const ProcessResult r =
        Cli({"create-snapshot", "--cache-cluster-id", "c1", "--snapshot-name", "kept"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  fs::path fleet() const { return tmp_.path() / "finalsnap.toml"; }
  fs::path storage() const { return tmp_.path() / "snapshots"; }

  ProcessResult Cli(std::vector<std::string> args, RunOptions options = {}) {
    args.insert(args.begin(), {FINALSNAP_CLI, "--fleet", fleet().string()});
    options.env.emplace_back("FINALSNAP_FLEET", std::nullopt);
    options.timeout = std::chrono::seconds(60);
    return RunCommand(args, options);
  }

  // Copies snapshot "kept" to `name` by hand, as an operator might, and lets `edit` change its
  // manifest: a snapshot finalsnap never vouched for.
  void CopyByHand(const std::string& name, const std::function<void(json&)>& edit) {
    fs::copy(storage() / "kept", storage() / name, fs::copy_options::recursive);
    const fs::path manifest = storage() / name / "manifest.json";
    json j = json::parse(ReadText(manifest));
    j["SnapshotName"] = name;
    edit(j);
    WriteText(manifest, j.dump(2));
  }

  TempDir tmp_;
  RedisServer node_;
};

TEST_F(CliHostileTest, RestoreRefusesAnEscapingNodeGroupIdAndWritesNothing) {
  // Two node snapshots, the second of node group "../../escaped": restore would write
  // <target>/../../escaped/dump.rdb.
  CopyByHand("handmade", [&](json& j) {
    json second = j["NodeSnapshots"][0];
    const std::string file = second["File"];
    fs::copy_file(storage() / "handmade" / file, storage() / "handmade" / ("0002-" + file));
    second["File"] = "0002-" + file;
    second["NodeGroupId"] = "../../escaped";
    j["NodeSnapshots"].push_back(second);
    j["NumNodeGroups"] = 2;
  });
  const fs::path target = tmp_.path() / "restore" / "a";
  const ProcessResult r =
      Cli({"restore", "--snapshot-name", "handmade", "--target-dir", target.string()});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  EXPECT_NE(r.stderr_text.find("InvalidSnapshotState"), std::string::npos) << r.Describe();
  EXPECT_NE(r.stderr_text.find("NodeSnapshots[1].NodeGroupId"), std::string::npos) << r.Describe();
  EXPECT_TRUE(DumpsUnder(tmp_.path()).empty());
  EXPECT_FALSE(fs::exists(tmp_.path() / "escaped"));

  // describe-snapshots shows it failed, never available.
  const ProcessResult described = Cli({"describe-snapshots", "--snapshot-name", "handmade"});
  ASSERT_EQ(described.exit_code, 0) << described.Describe();
  const json shown = json::parse(described.stdout_text)["Snapshots"][0];
  EXPECT_EQ(shown["SnapshotStatus"], "failed");
  EXPECT_NE(shown.value("StatusMessage", "").find("NodeSnapshots[1].NodeGroupId"),
            std::string::npos)
      << described.stdout_text;
}

TEST_F(CliHostileTest, RestoreAndVerifyRefuseAnAbsoluteFile) {
  const fs::path outside = tmp_.path() / "elsewhere" / "x.rdb.zst";
  fs::create_directories(outside.parent_path());
  CopyByHand("absolute", [&](json& j) {
    fs::copy_file(storage() / "absolute" / std::string(j["NodeSnapshots"][0]["File"]), outside);
    j["NodeSnapshots"][0]["File"] = outside.string();
  });
  const ProcessResult restore = Cli({"restore", "--snapshot-name", "absolute", "--target-dir",
                                     (tmp_.path() / "restore").string()});
  EXPECT_EQ(restore.exit_code, 254) << restore.Describe();
  EXPECT_NE(restore.stderr_text.find("NodeSnapshots[0].File"), std::string::npos)
      << restore.Describe();
  EXPECT_TRUE(DumpsUnder(tmp_.path()).empty());

  const ProcessResult verify = Cli({"verify", "absolute"});
  EXPECT_EQ(verify.exit_code, 254) << verify.Describe();
  EXPECT_NE(verify.stderr_text.find("NodeSnapshots[0].File"), std::string::npos)
      << verify.Describe();
  // The file outside was not verified: no report names it.
  EXPECT_EQ(verify.stdout_text.find(outside.string()), std::string::npos) << verify.Describe();
}

TEST_F(CliHostileTest, ASymlinkToAFifoFailsPromptlyInsteadOfHanging) {
  std::string file;
  CopyByHand("fifo", [&](json& j) { file = j["NodeSnapshots"][0]["File"]; });
  const fs::path fifo = tmp_.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::remove(storage() / "fifo" / file);
  fs::create_symlink(fifo, storage() / "fifo" / file);

  RunOptions bounded;
  bounded.timeout = std::chrono::seconds(20);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"restore", "--snapshot-name", "fifo", "--target-dir",
                                 (tmp_.path() / "restore").string()},
        std::vector<std::string>{"verify", "fifo"}}) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> argv = {FINALSNAP_CLI, "--fleet", fleet().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    const ProcessResult r = RunCommand(argv, bounded);
    EXPECT_FALSE(r.timed_out) << r.Describe();
    EXPECT_EQ(r.exit_code, 254) << r.Describe();
    EXPECT_NE(r.stderr_text.find("symbolic link"), std::string::npos) << r.Describe();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  }
  EXPECT_TRUE(DumpsUnder(tmp_.path()).empty());
}

TEST_F(CliHostileTest, ASymlinkWithTheNameIsRefusedBeforeAnyCapture) {
  fs::create_symlink(tmp_.path() / "nowhere", storage() / "taken");
  const auto syncs = [this] {
    const std::string info = node_.Command("INFO", "stats").str;
    const size_t at = info.find("sync_full:");
    return info.substr(at, info.find('\r', at) - at);
  };
  const std::string syncs_before = syncs();
  const ProcessResult r =
      Cli({"create-snapshot", "--cache-cluster-id", "c1", "--snapshot-name", "TAKEN"});
  EXPECT_EQ(r.exit_code, 254) << r.Describe();
  EXPECT_NE(r.stderr_text.find("SnapshotAlreadyExistsFault"), std::string::npos) << r.Describe();
  const json doc = json::parse(r.stdout_text, nullptr, false);
  ASSERT_TRUE(doc.contains("Gates")) << r.Describe();
  const json& last = doc["Gates"].back();
  EXPECT_EQ(last["Gate"], "snapshot-name-free") << r.Describe();
  EXPECT_EQ(last["Passed"], false) << r.Describe();
  for (const json& gate : doc["Gates"]) EXPECT_NE(gate["Phase"], "capture") << r.Describe();
  // The node never sent an RDB, and kept its configuration and writes.
  EXPECT_EQ(syncs(), syncs_before);
  EXPECT_EQ(node_.Command("CONFIG", "GET", "rdbcompression").elements.at(1).str, "yes");
  EXPECT_TRUE(node_.Command("SET", "probe", "1").ok());
  for (const auto& entry : fs::directory_iterator(storage())) {
    EXPECT_NE(entry.path().filename().string().rfind(".partial-", 0), 0u) << entry.path();
  }
}

TEST_F(CliHostileTest, VerifyOfAChecksumLessRdbOnAPipeTakesOnePass) {
  // As a user types it: through a real pipe, as `-` and as /dev/stdin.
  for (const std::string path : {"-", "/dev/stdin"}) {
    const ProcessResult r = RunCommand(
        {"sh", "-c",
         "cat " + Quoted(kNoChecksum) + " | " + Quoted(FINALSNAP_CLI) + " verify " + path});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    const json doc = json::parse(r.stdout_text);
    EXPECT_EQ(doc["Valid"], true) << r.Describe();
    EXPECT_EQ(doc["Checksum"]["Verdict"], "disabled") << r.Describe();
    EXPECT_EQ(doc["StoredBytes"], fs::file_size(kNoChecksum)) << r.Describe();
    EXPECT_EQ(doc["Path"], path);
  }
  // Standard input that no path can open again (RunCommand's socket): `-` reads it directly.
  RunOptions socket;
  socket.stdin_data = ReadText(kNoChecksum);
  const ProcessResult r = Cli({"verify", "-"}, socket);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(json::parse(r.stdout_text)["Valid"], true) << r.Describe();
}

TEST_F(CliHostileTest, AFleetFileThatNeverEndsIsRefusedQuickly) {
  RunOptions bounded;
  bounded.timeout = std::chrono::seconds(30);
  const ProcessResult r =
      RunCommand({FINALSNAP_CLI, "--fleet", "/dev/zero", "describe-snapshots"}, bounded);
  EXPECT_FALSE(r.timed_out) << r.Describe();
  EXPECT_EQ(r.term_signal, 0) << r.Describe();
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.stderr_text.find("fleet file is larger than 16 MiB"), std::string::npos)
      << r.Describe();
}

TEST_F(CliHostileTest, ASecretPastedIntoTheWrongKeyIsNeverShown) {
  const std::string secret = "Zx9hunter2Qw7secret";
  // In password_file (a path that does not exist), and as an endpoint.
  WriteText(fleet(),
            "[storage]\npath = \"snapshots\"\n\n[cache_clusters.c1]\nendpoint = "
            "\"127.0.0.1:" +
                std::to_string(node_.port()) + "\"\npassword_file = \"" + secret + "\"\n");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"describe-cache-clusters"},
        std::vector<std::string>{"create-snapshot", "--cache-cluster-id", "c1", "--snapshot-name",
                                 "n1"},
        std::vector<std::string>{"--output", "text", "describe-cache-clusters"}}) {
    const ProcessResult r = Cli(args);
    EXPECT_EQ(r.stdout_text.find(secret), std::string::npos) << r.Describe();
    EXPECT_EQ(r.stderr_text.find(secret), std::string::npos) << r.Describe();
    EXPECT_NE((r.stdout_text + r.stderr_text).find("cache_clusters.c1.password_file"),
              std::string::npos)
        << r.Describe();
  }
  WriteText(fleet(), "[cache_clusters.c1]\nendpoint = \"" + secret + "\"\n");
  const ProcessResult r = Cli({"describe-cache-clusters"});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_EQ((r.stdout_text + r.stderr_text).find(secret), std::string::npos) << r.Describe();
  EXPECT_NE(r.stderr_text.find("cache_clusters.c1.endpoint"), std::string::npos) << r.Describe();
}

TEST_F(CliHostileTest, AnObjectStoreUrlIsRefusedRatherThanSilentlyUsingLocalStorage) {
  // "kept" lies in ./snapshots, the default local path: with url set, no command may fall back
  // to it, show it, or capture into it.
  WriteText(fleet(),
            "[storage]\nurl = \"s3://backups/fleet\"\n\n[cache_clusters.c1]\nendpoint = "
            "\"127.0.0.1:" +
                std::to_string(node_.port()) + "\"\n");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"describe-snapshots"}, std::vector<std::string>{"verify", "kept"},
        std::vector<std::string>{"delete-cache-cluster", "--cache-cluster-id", "c1",
                                 "--final-snapshot-identifier", "last", "--yes"}}) {
    const ProcessResult r = Cli(args);
    EXPECT_NE(r.exit_code, 0) << r.Describe();
    EXPECT_NE(r.stderr_text.find("storage.url (s3://backups/fleet)"), std::string::npos)
        << r.Describe();
    EXPECT_EQ(r.stdout_text.find("kept"), std::string::npos) << r.Describe();
  }
  EXPECT_EQ(node_.Keyspace()[0].keys, 2000u);  // the node still runs, with its data
  EXPECT_FALSE(fs::exists(storage() / "last"));
}

TEST_F(CliHostileTest, AZstdFileWithAHugeWindowIsRefusedWithBoundedMemory) {
  const fs::path path = tmp_.path() / "big.rdb.zst";
  const std::vector<uint8_t> frame = testing::BigWindowZstd();
  WriteText(path, std::string(frame.begin(), frame.end()));
  // GNU time reports the command's peak RSS in KiB on the last line of stderr.
  const ProcessResult r =
      RunCommand({"/usr/bin/time", "-f", "maxrss_kib=%M", FINALSNAP_CLI, "verify", path.string()});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.stderr_text.find("window larger than 8 MiB"), std::string::npos) << r.Describe();
  const size_t at = r.stderr_text.rfind("maxrss_kib=");
  ASSERT_NE(at, std::string::npos) << r.Describe();
  const long kib = std::stol(r.stderr_text.substr(at + 11));
  EXPECT_LT(kib, 48 * 1024) << r.Describe();
}

TEST_F(CliHostileTest, AShortApiSecretIsRefusedByServe) {
  WriteText(fleet(),
            "[[api.credentials]]\naccess_key_id = "
            "\"AKIAHOSTILE\"\nsecret_access_key_env = \"FINALSNAP_HOSTILE_SECRET\"\n");
  RunOptions options;
  options.env.emplace_back("FINALSNAP_HOSTILE_SECRET", "fifteen-bytes!!");
  options.timeout = std::chrono::seconds(30);
  const ProcessResult r = RunCommand(
      {FINALSNAP_CLI, "--fleet", fleet().string(), "serve", "--listen", "127.0.0.1:0"}, options);
  EXPECT_FALSE(r.timed_out) << r.Describe();
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.stderr_text.find("api.credentials[0].secret_access_key_env"), std::string::npos)
      << r.Describe();
  EXPECT_NE(r.stderr_text.find("shorter than 16 bytes"), std::string::npos) << r.Describe();
  EXPECT_EQ(r.stderr_text.find("fifteen-bytes!!"), std::string::npos) << r.Describe();
}

TEST_F(CliHostileTest, ModesDoNotDependOnTheUmask) {
  WriteText(fleet(),
            "[storage]\npath = \"p/q/snapshots\"\n\n[cache_clusters.c1]\nendpoint = "
            "\"127.0.0.1:" +
                std::to_string(node_.port()) + "\"\n");
  const std::string cli = Quoted(FINALSNAP_CLI) + " --fleet " + Quoted(fleet().string());
  const fs::path target = tmp_.path() / "r" / "into";
  const ProcessResult made = RunCommand(
      {"sh", "-c",
       "umask 000 && " + cli + " create-snapshot --cache-cluster-id c1 --snapshot-name m0 && " +
           cli + " restore --snapshot-name m0 --target-dir " + Quoted(target.string())});
  ASSERT_EQ(made.exit_code, 0) << made.Describe();
  const fs::path root = tmp_.path() / "p" / "q" / "snapshots";
  EXPECT_EQ(Mode(tmp_.path() / "p"), 0755u);
  EXPECT_EQ(Mode(tmp_.path() / "p" / "q"), 0755u);
  EXPECT_EQ(Mode(root), 0700u);
  EXPECT_EQ(Mode(root / "m0"), 0700u);
  for (const auto& entry : fs::directory_iterator(root / "m0")) {
    EXPECT_EQ(Mode(entry.path()), 0600u) << entry.path();
  }
  EXPECT_EQ(Mode(tmp_.path() / "r"), 0700u);
  EXPECT_EQ(Mode(target), 0700u);
  EXPECT_EQ(Mode(target / "dump.rdb"), 0600u);
}

}  // namespace
}  // namespace finalsnap

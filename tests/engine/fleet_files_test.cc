// Tests for the fleet-file loader (fleet.h) on disk: relative paths resolve against the fleet
// file, errors name the file as given, passwords and API secrets are read from the environment
// and files without ever being echoed, and hostile files (any kind, any size) are capped.
#include <gtest/gtest.h>

#include "fleet_helpers.h"

namespace finalsnap {
namespace {

using namespace fleet_helpers;  // NOLINT: the shared helpers, as if defined here

// --- Files on disk.

TEST(FleetLoadTest, RelativePathsResolveAgainstTheFleetFile) {
  TempDir dir;
  const fs::path file = dir.path() / "finalsnap.toml";
  WriteFile(file, R"([storage]
path = "snaps"

[cache_clusters.a]
endpoint = "127.0.0.1:6379"
password_file = "secrets/pw"

[api]
state = "../elsewhere/state"
)");
  auto loaded = LoadFleet(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  const Fleet& fleet = *loaded;
  EXPECT_EQ(fleet.file, file);
  EXPECT_EQ(fleet.storage.path, dir.path() / "snaps");
  EXPECT_EQ(fleet.cache_clusters.at(0).settings.password_file, dir.path() / "secrets" / "pw");
  EXPECT_EQ(fleet.api.state, dir.path().parent_path() / "elsewhere" / "state");
}

TEST(FleetLoadTest, DefaultStoragePathIsBesideTheFleetFile) {
  TempDir dir;
  const fs::path file = dir.path() / "fleet.toml";
  WriteFile(file, "");
  auto loaded = LoadFleet(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ(loaded->storage.path, dir.path() / "snapshots");
}

TEST(FleetLoadTest, ErrorsNameTheFileAsGiven) {
  TempDir dir;
  const fs::path file = dir.path() / "finalsnap.toml";
  WriteFile(file, "[storage]\nlevel = \"1\"\n");
  auto loaded = LoadFleet(file);
  ASSERT_TRUE(!loaded.ok());
  const FleetError& error = loaded.error();
  EXPECT_EQ(error.file, file.string());
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.key, "storage.level");
}

TEST(FleetLoadTest, MissingFileIsAnError) {
  TempDir dir;
  const fs::path file = dir.path() / "nope.toml";
  auto loaded = LoadFleet(file);
  ASSERT_TRUE(!loaded.ok());
  const FleetError& error = loaded.error();
  EXPECT_EQ(error.message, "fleet file not found");
  EXPECT_EQ(error.file, file.string());
  EXPECT_EQ(error.line, 0);
  EXPECT_EQ(error.ToString(), file.string() + ": fleet file not found");
}

TEST(FleetLoadTest, DirectoryIsAnError) {
  TempDir dir;
  auto loaded = LoadFleet(dir.path());
  ASSERT_TRUE(!loaded.ok());
  EXPECT_EQ(loaded.error().message, "fleet file is a directory");
}

TEST(FleetLoadTest, DefaultFleetPathPrefersFlagThenEnvironment) {
  {
    ScopedEnv env("FINALSNAP_FLEET", "/from/env.toml");
    EXPECT_EQ(DefaultFleetPath("/from/flag.toml"), fs::path("/from/flag.toml"));
    EXPECT_EQ(DefaultFleetPath(""), fs::path("/from/env.toml"));
  }
  {
    ScopedEnv env("FINALSNAP_FLEET", "");
    EXPECT_EQ(DefaultFleetPath(""), fs::path("finalsnap.toml"));
  }
  {
    ScopedEnv env("FINALSNAP_FLEET", nullptr);
    EXPECT_EQ(DefaultFleetPath(""), fs::path("finalsnap.toml"));
  }
}

// --- Secrets.

TEST(FleetSecretTest, NoPasswordConfiguredIsNotAnError) {
  const ResolvedSecret secret = ResolvePassword(NodeSettings{});
  EXPECT_TRUE(secret.ok());
  EXPECT_FALSE(secret->has_value());
}

TEST(FleetSecretTest, PasswordFromEnvironment) {
  NodeSettings settings;
  settings.password_env = "FINALSNAP_TEST_REDIS_PASSWORD";
  {
    ScopedEnv env("FINALSNAP_TEST_REDIS_PASSWORD", "s3cret value\n");
    const ResolvedSecret secret = ResolvePassword(settings);
    ASSERT_TRUE(secret.ok()) << secret.error().message();
    // A variable's value is taken exactly as set: only files get their newline removed.
    EXPECT_EQ(*secret, "s3cret value\n");
  }
  {
    ScopedEnv env("FINALSNAP_TEST_REDIS_PASSWORD", nullptr);
    const ResolvedSecret secret = ResolvePassword(settings);
    EXPECT_FALSE(secret.ok());
    EXPECT_EQ(secret.error().message(),
              "password_env: the environment variable it names is not set");
  }
  {
    ScopedEnv env("FINALSNAP_TEST_REDIS_PASSWORD", "");
    const ResolvedSecret secret = ResolvePassword(settings);
    EXPECT_EQ(secret.error().message(), "password_env: the environment variable it names is empty");
  }
}

TEST(FleetSecretTest, PasswordFromFile) {
  TempDir dir;
  NodeSettings settings;
  struct Case {
    std::string_view contents;
    std::string_view password;
  };
  const Case cases[] = {
      {"s3cret", "s3cret"},
      {"s3cret\n", "s3cret"},
      {"s3cret\r\n", "s3cret"},
      // Only one newline is the editor's; the rest belongs to the password.
      {"s3cret\n\n", "s3cret\n"},
      {" spaced ", " spaced "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.contents);
    settings.password_file = dir.path() / "pw";
    WriteFile(settings.password_file, c.contents);
    const ResolvedSecret secret = ResolvePassword(settings);
    ASSERT_TRUE(secret.ok()) << secret.error().message();
    EXPECT_EQ(*secret, c.password);
  }
}

TEST(FleetSecretTest, PasswordFileErrorsNameTheKeyNotTheValue) {
  TempDir dir;
  NodeSettings settings;

  // The path is the key's value, and a secret pasted into password_file would be that value:
  // errors name the key only.
  settings.password_file = dir.path() / "missing";
  ResolvedSecret secret = ResolvePassword(settings);
  EXPECT_FALSE(secret.ok());
  EXPECT_EQ(secret.error().message(),
            "password_file: cannot read the file it names: No such file or directory");
  EXPECT_EQ(secret.error().message().find(settings.password_file.string()), std::string::npos);

  settings.password_file = dir.path() / "empty";
  settings.password_key = "cache_clusters.a.password_file";
  WriteFile(settings.password_file, "\n");
  secret = ResolvePassword(settings);
  EXPECT_EQ(secret.error().message(), "cache_clusters.a.password_file: the file it names is empty");

  settings.password_file = dir.path();
  secret = ResolvePassword(settings);
  EXPECT_NE(secret.error().message().find("is a directory"), std::string::npos)
      << secret.error().message();

  // A file too large to be a password (the wrong file) is refused without quoting it.
  const std::string marker = "hunter2-Xq9";
  std::string big = marker;
  big.resize(70 << 10, 'x');
  settings.password_file = dir.path() / "big";
  WriteFile(settings.password_file, big);
  secret = ResolvePassword(settings);
  EXPECT_FALSE(secret.ok());
  EXPECT_NE(secret.error().message().find("larger than 64 KiB"), std::string::npos)
      << secret.error().message();
  EXPECT_EQ(secret.error().message().find(marker), std::string::npos);
}

TEST(FleetSecretTest, ApiSecretFromEnvironmentAndFile) {
  TempDir dir;
  const fs::path file = dir.path() / "fleet.toml";
  WriteFile(dir.path() / "api.secret", "file-secret-of-16+\n");
  WriteFile(file, R"([[api.credentials]]
access_key_id = "AKIAENV"
secret_access_key_env = "FINALSNAP_TEST_API_SECRET"

[[api.credentials]]
access_key_id = "AKIAFILE"
secret_access_key_file = "api.secret"
)");
  auto loaded = LoadFleet(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  const Fleet& fleet = *loaded;
  ASSERT_EQ(fleet.api.credentials.size(), 2u);

  {
    ScopedEnv env("FINALSNAP_TEST_API_SECRET", "env-secret-of-24-bytes!!");
    const ResolvedSecret secret = ResolveApiSecret(fleet.api.credentials[0]);
    ASSERT_TRUE(secret.ok()) << secret.error().message();
    EXPECT_EQ(*secret, "env-secret-of-24-bytes!!");
  }
  {
    ScopedEnv env("FINALSNAP_TEST_API_SECRET", nullptr);
    const ResolvedSecret secret = ResolveApiSecret(fleet.api.credentials[0]);
    EXPECT_EQ(secret.error().message(),
              "api.credentials[0].secret_access_key_env: the environment variable it names is "
              "not set");
  }
  const ResolvedSecret from_file = ResolveApiSecret(fleet.api.credentials[1]);
  ASSERT_TRUE(from_file.ok()) << from_file.error().message();
  EXPECT_EQ(*from_file, "file-secret-of-16+");

  // A credential built by hand without a source is an error, not an empty secret.
  ApiCredential bare;
  bare.access_key_id = "AKIABARE";
  const ResolvedSecret none = ResolveApiSecret(bare);
  EXPECT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("AKIABARE"), std::string::npos);
}

// --- Hostile files and pasted secrets (issue 11).

TEST(FleetHostileTest, EveryKindOfFileIsCapped) {
  // /dev/zero never ends: it must be refused after the cap, quickly, not read until bad_alloc.
  const auto start = std::chrono::steady_clock::now();
  auto loaded = LoadFleet("/dev/zero");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().message, "fleet file is larger than 16 MiB");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));

  // A FIFO nobody writes to reads as empty rather than blocking the command.
  TempDir dir;
  const fs::path fifo = dir.path() / "fleet.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto from_fifo = LoadFleet(fifo);
  EXPECT_TRUE(from_fifo.ok()) << from_fifo.error().ToString();

  // A secret file of any kind is capped the same way.
  NodeSettings settings;
  settings.password_file = "/dev/zero";
  const ResolvedSecret secret = ResolvePassword(settings);
  ASSERT_FALSE(secret.ok());
  EXPECT_NE(secret.error().message().find("larger than 64 KiB"), std::string::npos)
      << secret.error().message();
}

// A secret pasted into the wrong key, quoted or not, never comes back in an error.
TEST(FleetHostileTest, NoErrorEchoesAValue) {
  const std::string secret = "Zx9-hunter2-Qw7";
  const std::string texts[] = {
      "[cache_clusters.a]\nendpoint = \"" + secret + "\"\n",
      "[cache_clusters.a]\nendpoint = \"h:1\"\ncapture = \"" + secret + "\"\n",
      "[cache_clusters.a]\nendpoint = \"h:1\"\nengine = \"" + secret + "\"\n",
      "[defaults]\npassword_env = \"" + secret + "\"\n",
      "[storage]\ncompression = \"" + secret + "\"\n",
      "[replication_groups.g]\nendpoints = [\"h:1\", \"" + secret + "\"]\n",
      "[api]\nlisten = \"" + secret + "\"\n",
      // Unquoted, it is a TOML syntax error; toml++ would quote the text it choked on.
      "[cache_clusters.a]\nendpoint = \"h:1\"\npassword_file = " + secret + "\n",
      "[cache_clusters.a]\nendpoint = \"h:1\"\npassword_env = tru" + secret + "\n",
      "[defaults]\npause_timeout_ms = 99999999999\n",
  };
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    const FleetError error = MustFail(text);
    EXPECT_EQ(error.ToString().find(secret), std::string::npos) << error.ToString();
    EXPECT_EQ(error.ToString().find("hunter2"), std::string::npos) << error.ToString();
    EXPECT_EQ(error.ToString().find("99999999999"), std::string::npos) << error.ToString();
  }
}

TEST(FleetHostileTest, SecretErrorsNameTheKeyNotTheValue) {
  const std::string secret = "Zx9hunter2Qw7";  // a valid environment variable name, too
  ::unsetenv(secret.c_str());
  const Fleet fleet =
      MustParse("[cache_clusters.a]\nendpoint = \"h:1\"\npassword_env = \"" + secret +
                "\"\n\n[cache_clusters.b]\nendpoint = \"h:2\"\n" + "password_file = \"" + secret +
                "\"\n\n[[api.credentials]]\n" +
                "access_key_id = \"AK\"\nsecret_access_key_file = \"" + secret + "\"\n");
  const ResolvedSecret a = ResolvePassword(fleet.cache_clusters.at(0).settings);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message(),
            "cache_clusters.a.password_env: the environment variable it names is not set");
  const ResolvedSecret b = ResolvePassword(fleet.cache_clusters.at(1).settings);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message(),
            "cache_clusters.b.password_file: cannot read the file it names: No such file or "
            "directory");
  const ResolvedSecret api = ResolveApiSecret(fleet.api.credentials.at(0));
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.error().message().find(secret), std::string::npos) << api.error().message();
  EXPECT_EQ(api.error().message().rfind("api.credentials[0].secret_access_key_file: ", 0), 0u)
      << api.error().message();
}

TEST(FleetHostileTest, ApiSecretsHaveAtLeastSixteenBytes) {
  const Fleet fleet = MustParse(
      "[[api.credentials]]\naccess_key_id = \"AK\"\n"
      "secret_access_key_env = \"FINALSNAP_TEST_SHORT_SECRET\"\n");
  {
    ScopedEnv env("FINALSNAP_TEST_SHORT_SECRET", "fifteen-bytes!!");
    const ResolvedSecret secret = ResolveApiSecret(fleet.api.credentials.at(0));
    ASSERT_FALSE(secret.ok());
    EXPECT_EQ(secret.error().message(),
              "api.credentials[0].secret_access_key_env: the secret is shorter than 16 bytes; "
              "use a random secret of at least that length");
  }
  {
    ScopedEnv env("FINALSNAP_TEST_SHORT_SECRET", "x");
    EXPECT_FALSE(ResolveApiSecret(fleet.api.credentials.at(0)).ok());
  }
  {
    ScopedEnv env("FINALSNAP_TEST_SHORT_SECRET", "sixteen-bytes!!!");
    const ResolvedSecret secret = ResolveApiSecret(fleet.api.credentials.at(0));
    ASSERT_TRUE(secret.ok()) << secret.error().message();
    EXPECT_EQ(*secret, "sixteen-bytes!!!");
  }
}

}  // namespace
}  // namespace finalsnap

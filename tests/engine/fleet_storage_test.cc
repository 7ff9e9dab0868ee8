// The fleet file's object store: [storage] url = "s3://bucket/prefix" and its settings, each
// refusal naming the key, and where the store's credentials come from (fleet file, profile,
// environment), as the aws CLI finds them, without a secret ever in a message.
#include <gtest/gtest.h>

#include "fleet_helpers.h"

namespace finalsnap {
namespace {

using namespace fleet_helpers;  // NOLINT

TEST(FleetStorageTest, AnS3UrlWithEverySettingParses) {
  const Fleet fleet = MustParse(R"(
[storage]
url = "s3://backups-1/fleet/prod/"
endpoint = "http://127.0.0.1:7480/"
region = "us-west-2"
addressing = "path"
access_key_id = "AKID_1"
secret_access_key_env = "S3_SECRET"
part_size_mib = 8
parts_in_flight = 3
compression = "lz4"
)");
  ASSERT_TRUE(fleet.storage.object_store.has_value());
  const ObjectStoreSettings& s3 = *fleet.storage.object_store;
  EXPECT_EQ(s3.bucket, "backups-1");
  EXPECT_EQ(s3.prefix, "fleet/prod");
  EXPECT_EQ(s3.Url(), "s3://backups-1/fleet/prod");
  EXPECT_EQ(s3.endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(s3.region, "us-west-2");
  EXPECT_FALSE(s3.virtual_addressing);
  EXPECT_EQ(s3.access_key_id, "AKID_1");
  EXPECT_EQ(s3.secret_env, "S3_SECRET");
  EXPECT_EQ(s3.secret_key, "storage.secret_access_key_env");
  EXPECT_EQ(s3.part_size_bytes, uint64_t{8} << 20);
  EXPECT_EQ(s3.parts_in_flight, 3);
  EXPECT_EQ(fleet.storage.compression, Compression::kLz4);
}

TEST(FleetStorageTest, DefaultsAreAwsLikeWithoutAnEndpointAndPathStyleWithOne) {
  const Fleet aws = MustParse("[storage]\nurl = \"s3://bucket\"\n");
  ASSERT_TRUE(aws.storage.object_store.has_value());
  EXPECT_TRUE(aws.storage.object_store->virtual_addressing);
  EXPECT_EQ(aws.storage.object_store->prefix, "");
  EXPECT_EQ(aws.storage.object_store->part_size_bytes, uint64_t{16} << 20);
  EXPECT_EQ(aws.storage.object_store->parts_in_flight, 4);
  const Fleet local =
      MustParse("[storage]\nurl = \"s3://bucket\"\nendpoint = \"https://minio:9000\"\n");
  EXPECT_FALSE(local.storage.object_store->virtual_addressing);
  EXPECT_FALSE(MustParse("[storage]\npath = \"snaps\"\n").storage.object_store.has_value());
}

TEST(FleetStorageTest, EachBadSettingIsRefusedNamingItsKey) {
  struct Case {
    const char* text;
    const char* key;
    const char* says;
  };
  const Case cases[] = {
      {"url = \"s3://b-1\"\npath = \"x\"", "storage.url", "url and path are both set"},
      {"url = \"https://b/x\"", "storage.url", "s3://bucket"},
      {"url = \"s3://Bucket\"", "storage.url", "lower-case"},
      {"url = \"s3://ab\"", "storage.url", "3 to 63"},
      {"url = \"s3://bucket/a//b\"", "storage.url", "prefix"},
      {"url = \"s3://bucket/a/../b\"", "storage.url", "prefix"},
      {"url = \"s3://bucket/a b\"", "storage.url", "prefix"},
      {"url = \"s3://b-1\"\nendpoint = \"127.0.0.1:7480\"", "storage.endpoint", "http://"},
      {"url = \"s3://b-1\"\nendpoint = \"http://user:pw@host\"", "storage.endpoint", "no user"},
      {"url = \"s3://b-1\"\nregion = \"US West\"", "storage.region", "region name"},
      {"url = \"s3://b-1\"\naddressing = \"dns\"", "storage.addressing", "path"},
      {"url = \"s3://b.1\"\naddressing = \"virtual\"\nendpoint = \"https://s3.example\"",
       "storage.url", "virtual addressing over https"},
      {"url = \"s3://b-1\"\nprofile = \"p\"\naccess_key_id = \"A\"\nsecret_access_key_env = \"E\"",
       "storage.access_key_id", "both set"},
      {"url = \"s3://b-1\"\naccess_key_id = \"A\"", "storage", "secret_access_key_env"},
      {"url = \"s3://b-1\"\nsecret_access_key_env = \"E\"", "storage.secret_access_key_env",
       "access_key_id"},
      {"url = \"s3://b-1\"\npart_size_mib = 4", "storage.part_size_mib", "between 5 and 5120"},
      {"url = \"s3://b-1\"\nparts_in_flight = 65", "storage.parts_in_flight", "between 1 and 64"},
      {"path = \"x\"\nendpoint = \"http://h\"", "storage.endpoint", "needs url"},
      {"url = \"s3://b-1\"\nendpiont = \"http://h\"", "storage.endpiont",
       "did you mean 'endpoint'"},
  };
  for (const Case& c : cases) {
    const FleetError error = MustFail(std::string("[storage]\n") + c.text + "\n");
    EXPECT_EQ(error.key, c.key) << c.text;
    EXPECT_NE(error.message.find(c.says), std::string::npos) << c.text << " -> " << error.message;
  }
}

TEST(FleetStorageTest, AnInlineSecretIsRefusedWithoutEchoingIt) {
  const FleetError error = MustFail(
      "[storage]\nurl = \"s3://b-1\"\naccess_key_id = \"A\"\nsecret_access_key = \"hunter2-x\"\n");
  EXPECT_EQ(error.key, "storage.secret_access_key");
  EXPECT_EQ(error.ToString().find("hunter2"), std::string::npos);
}

class CredentialsTest : public ::testing::Test {
 protected:
  TempDir dir_;
  // No ambient credentials: every test says where they come from.
  ScopedEnv id_{"AWS_ACCESS_KEY_ID", nullptr};
  ScopedEnv secret_{"AWS_SECRET_ACCESS_KEY", nullptr};
  ScopedEnv token_{"AWS_SESSION_TOKEN", nullptr};
  ScopedEnv profile_{"AWS_PROFILE", nullptr};
  ScopedEnv region_{"AWS_REGION", nullptr};
  ScopedEnv default_region_{"AWS_DEFAULT_REGION", nullptr};
  ScopedEnv credentials_file_{"AWS_SHARED_CREDENTIALS_FILE", nullptr};
  ScopedEnv config_file_{"AWS_CONFIG_FILE", nullptr};
  ScopedEnv home_{"HOME", nullptr};

  ObjectStoreSettings Bucket() {
    ObjectStoreSettings s;
    s.bucket = "b-1";
    return s;
  }
  void SetUp() override {
    ::setenv("HOME", dir_.path().c_str(), 1);
    fs::create_directories(dir_.path() / ".aws");
  }
};

TEST_F(CredentialsTest, TheFleetFilesKeyAndSecretComeFirst) {
  ScopedEnv env("FINALSNAP_TEST_S3_SECRET", "from-the-env-var");
  ::setenv("AWS_ACCESS_KEY_ID", "AMBIENT", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret", 1);
  ObjectStoreSettings s = Bucket();
  s.access_key_id = "AKID_FILE";
  s.secret_env = "FINALSNAP_TEST_S3_SECRET";
  s.secret_key = "storage.secret_access_key_env";
  Expected<ObjectStoreCredentials> c = ResolveObjectStoreCredentials(s);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->access_key_id, "AKID_FILE");
  EXPECT_EQ(c->secret_access_key, "from-the-env-var");
  EXPECT_EQ(c->region, "us-east-1");
  EXPECT_EQ(c->source, "storage.secret_access_key_env");
}

TEST_F(CredentialsTest, AProfileIsReadFromTheSharedFilesWithItsRegion) {
  WriteFile(dir_.path() / ".aws/credentials",
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = def-secret\n"
            "# a comment\n[backup]\r\naws_access_key_id = BK\r\n"
            "aws_secret_access_key=bk-secret\r\naws_session_token = tok\r\n");
  WriteFile(dir_.path() / ".aws/config", "[profile backup]\nregion = eu-west-1\n");
  ObjectStoreSettings s = Bucket();
  s.profile = "backup";
  Expected<ObjectStoreCredentials> c = ResolveObjectStoreCredentials(s);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->access_key_id, "BK");
  EXPECT_EQ(c->secret_access_key, "bk-secret");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ(c->region, "eu-west-1");
  EXPECT_EQ(c->source, "profile backup");

  // With nothing else set, the default profile is used; AWS_REGION wins over a profile's region.
  ::setenv("AWS_REGION", "ap-south-1", 1);
  Expected<ObjectStoreCredentials> d = ResolveObjectStoreCredentials(Bucket());
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->access_key_id, "DEF");
  EXPECT_EQ(d->region, "ap-south-1");
}

TEST_F(CredentialsTest, TheEnvironmentComesBeforeTheDefaultProfile) {
  WriteFile(dir_.path() / ".aws/credentials",
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = def-secret\n");
  ::setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  Expected<ObjectStoreCredentials> c = ResolveObjectStoreCredentials(Bucket());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->access_key_id, "ENVID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  Expected<ObjectStoreCredentials> half = ResolveObjectStoreCredentials(Bucket());
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message().find("only one of"), std::string::npos);
}

TEST_F(CredentialsTest, MissingCredentialsSayWhereTheyWereLookedForAndNoSecretLeaks) {
  WriteFile(dir_.path() / ".aws/credentials",
            "[other]\naws_access_key_id = O\naws_secret_access_key = other-secret\n");
  Expected<ObjectStoreCredentials> none = ResolveObjectStoreCredentials(Bucket());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("no credentials for s3://b-1"), std::string::npos);
  EXPECT_NE(none.error().message().find("profile default"), std::string::npos);

  ObjectStoreSettings s = Bucket();
  s.profile = "missing";
  Expected<ObjectStoreCredentials> missing = ResolveObjectStoreCredentials(s);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("storage.profile: profile missing"), std::string::npos);

  WriteFile(dir_.path() / ".aws/credentials", "[half]\naws_access_key_id = H\n");
  s.profile = "half";
  Expected<ObjectStoreCredentials> half = ResolveObjectStoreCredentials(s);
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message().find("no aws_access_key_id and aws_secret_access_key"),
            std::string::npos);
  EXPECT_EQ(half.error().message().find("other-secret"), std::string::npos);
}

}  // namespace
}  // namespace finalsnap

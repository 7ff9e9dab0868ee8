// The snapshot store tests' shared parts (storage_test.cc, storage_store_test.cc): file and
// mode helpers, a store opened for writing, and snapshots and node snapshots to commit.
#ifndef FINALSNAP_TESTS_ENGINE_STORAGE_HELPERS_H_
#define FINALSNAP_TESTS_ENGINE_STORAGE_HELPERS_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "finalsnap/storage.h"
#include "finalsnap/verify.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace finalsnap::storage_helpers {

namespace fs = std::filesystem;

const std::string kFixture =
    FINALSNAP_SOURCE_DIR "/../shared/fixtures/rdb/redis-7.0.15-default.rdb";

inline std::vector<uint8_t> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Writes all of `bytes` to a descriptor handed out by SnapshotWriter::CreateFile.
inline void WriteFd(int fd, const std::vector<uint8_t>& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    ASSERT_GT(n, 0) << "write failed";
    done += static_cast<size_t>(n);
  }
}

inline unsigned Mode(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// The entries of a directory, by name, sorted.
inline std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The entries that are snapshots or pieces of one: everything but the store's .lock file.
inline std::vector<std::string> SnapshotEntries(const fs::path& dir) {
  std::vector<std::string> names = Entries(dir);
  std::erase(names, ".lock");
  return names;
}
using finalsnap::testing::TempDir;

inline SnapshotStore OpenStore(const fs::path& root) {
  Expected<SnapshotStore> opened = SnapshotStore::Open(root);
  if (!opened.ok()) throw std::runtime_error(opened.error().message());
  return *std::move(opened);
}

inline std::unique_ptr<SnapshotWriter> BeginOrDie(SnapshotStore& store, const Snapshot& initial) {
  Expected<std::unique_ptr<SnapshotWriter>> begun = store.Begin(initial);
  if (!begun.ok()) throw std::runtime_error(begun.error().message());
  return *std::move(begun);
}

inline Snapshot Initial(const std::string& name) {
  Snapshot s;
  s.snapshot_name = name;
  s.cache_cluster_id = "myRedisCluster";
  s.engine = "redis";
  s.engine_version = "7.0.15";
  s.num_node_groups = 1;
  s.final_snapshot_of = "delete-cache-cluster";
  return s;
}

// A NodeSnapshot describing `stored` as the pipeline would: the numbers come from verifying it.
inline NodeSnapshot NodeFor(const fs::path& stored, const std::string& file,
                            const std::string& group) {
  const FileVerification v = VerifyFile(stored.string());
  EXPECT_TRUE(v.ok()) << stored << ": " << v.io_error
                      << (v.rdb_error ? v.rdb_error->ToString() : "");
  NodeSnapshot node;
  node.node_group_id = group;
  node.cache_node_id = "0001";
  node.cache_cluster_id = "myRedisCluster";
  node.source_endpoint = "127.0.0.1:6379";
  node.cache_size = uint64_t{3} << 20;
  node.snapshot_create_time = "2026-11-25T01:02:03.456Z";
  node.file = file;
  node.compression = v.compression;
  node.compression_level = v.compression == Compression::kNone ? 0 : 3;
  node.stored_bytes = v.stored_bytes;
  node.rdb_bytes = v.report.bytes;
  node.rdb_version = v.report.rdb_version;
  node.crc64 = v.report.computed_crc;
  node.keyspace = v.report.databases;
  node.repl_id = "8c5b3d8a4ee7c5a3b4b8e2f9d1c0a7b6e5f4d3c2";
  node.repl_offset = 12345;
  return node;
}

}  // namespace finalsnap::storage_helpers

#endif  // FINALSNAP_TESTS_ENGINE_STORAGE_HELPERS_H_

// Small file helpers the hostile-input tests share: whole-file reads and writes, a path's mode
// and the dump.rdb files under a directory.
#ifndef FINALSNAP_TESTS_SUPPORT_FILES_H_
#define FINALSNAP_TESTS_SUPPORT_FILES_H_

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

namespace finalsnap::testing {

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// The permission bits of `path` itself (lstat: a symlink is not followed), or 0.
inline unsigned Mode(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// Every file called dump.rdb under `dir`, at any depth.
inline std::vector<std::filesystem::path> DumpsUnder(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::end(it); it.increment(ec)) {
    if (it->path().filename() == "dump.rdb") found.push_back(it->path());
  }
  return found;
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_FILES_H_

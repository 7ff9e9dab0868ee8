// TempDir: a fresh directory under $TMPDIR (or /tmp) for one test, removed with everything in it
// when the test ends. localnode's ScratchDir, throwing when the directory cannot be made.
#ifndef FINALSNAP_TESTS_SUPPORT_TEMP_DIR_H_
#define FINALSNAP_TESTS_SUPPORT_TEMP_DIR_H_

#include <filesystem>
#include <string>
#include <string_view>

#include "localnode/files.h"
#include "support/or_throw.h"

namespace finalsnap::testing {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "finalsnap-test") { OrThrow(dir_.Create(prefix)); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return dir_.path(); }
  // The path of `name` inside the directory, as a string.
  std::string operator/(const std::string& name) const { return (path() / name).string(); }

 private:
  localnode::ScratchDir dir_;
};

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_TEMP_DIR_H_

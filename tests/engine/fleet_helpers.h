// The fleet loader tests' shared parts (fleet_test.cc, fleet_files_test.cc): parse or fail a
// text, write a file, set an environment variable for one test.
#ifndef FINALSNAP_TESTS_ENGINE_FLEET_HELPERS_H_
#define FINALSNAP_TESTS_ENGINE_FLEET_HELPERS_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "finalsnap/fleet.h"
#include "support/temp_dir.h"

namespace finalsnap::fleet_helpers {

namespace fs = std::filesystem;

// Where ParseFleet is told the text came from; relative paths resolve against its directory.
const fs::path kFleetFile = "/etc/finalsnap/finalsnap.toml";

inline Fleet MustParse(std::string_view text, const fs::path& file = kFleetFile) {
  auto result = ParseFleet(text, file);
  if (!result.ok()) {
    ADD_FAILURE() << "unexpected error: " << result.error().ToString();
    return Fleet{};
  }
  return std::move(result).value();
}

inline FleetError MustFail(std::string_view text, const fs::path& file = kFleetFile) {
  auto result = ParseFleet(text, file);
  if (!result.ok()) return result.error();
  ADD_FAILURE() << "expected an error for:\n" << text;
  return FleetError{};
}
using testing::TempDir;

inline void WriteFile(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Sets an environment variable for one test and restores the previous value afterwards, so
// that tests do not leak into each other.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace finalsnap::fleet_helpers

#endif  // FINALSNAP_TESTS_ENGINE_FLEET_HELPERS_H_

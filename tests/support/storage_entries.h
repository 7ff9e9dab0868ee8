// What an operation left in a snapshot storage root, for tests that check it: every entry but
// the store's .lock file, and for the journal directory (.journal, engine/ops/journal.h) each
// journal still in it as ".journal/<name>", so that an operation that ended cleanly leaves
// nothing listed but its committed snapshots.
#ifndef FINALSNAP_TESTS_SUPPORT_STORAGE_ENTRIES_H_
#define FINALSNAP_TESTS_SUPPORT_STORAGE_ENTRIES_H_

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace finalsnap::testing {

inline std::vector<std::string> StorageEntries(const std::filesystem::path& root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name == ".lock") continue;
    if (name == ".journal") {
      std::error_code inner;
      for (const auto& j : std::filesystem::directory_iterator(it->path(), inner)) {
        names.push_back(".journal/" + j.path().filename().string());
      }
      continue;
    }
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_STORAGE_ENTRIES_H_

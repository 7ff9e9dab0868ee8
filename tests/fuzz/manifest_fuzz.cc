// libFuzzer target for the manifest loader (engine/store/manifest.cc): JSON text -> Snapshot.
//
// A manifest is data read from disk, and restore, verify and describe trust what it accepts, so
// besides crashes (found by the sanitizers) the invariants below must hold for every input; a
// violated one prints which and traps:
//   - SnapshotFromJson never throws; a refusal has a non-empty message no longer than 1 KiB
//     (errors name the field, and never echo a huge value);
//   - an accepted manifest's SnapshotName passes CheckSnapshotName, every NodeGroupId is exactly
//     four digits, every File passes CheckFileName (a plain name: no '/', no leading '.', not
//     the manifest's own), files and node groups are unique, and the counts stay within the
//     loader's bounds;
//   - an accepted manifest, written again with SnapshotToJson and read back, is accepted and
//     equal (operator==), and writing that gives the same text (a fixed point).
//
// Input: the bytes are the manifest text as they are. Seeds: the manifests the tests write (see
// tests/fuzz/README.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "finalsnap/storage.h"
#include "root.h"

namespace {

#define FUZZ_CHECK(cond, what)                                                           \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "manifest_fuzz: invariant violated (%s): %s\n", what, #cond); \
      __builtin_trap();                                                                  \
    }                                                                                    \
  } while (0)

bool IsNodeGroupId(std::string_view id) {
  if (id.size() != 4) return false;
  for (const char c : id) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  finalsnap::Expected<finalsnap::Snapshot> parsed = finalsnap::SnapshotFromJson(text);
  if (!parsed.ok()) {
    const std::string& message = parsed.error().message();
    FUZZ_CHECK(!message.empty(), "a refusal says why");
    FUZZ_CHECK(message.size() <= 1024, "a refusal does not echo a huge value");
    return 0;
  }
  const finalsnap::Snapshot& snapshot = *parsed;
  FUZZ_CHECK(finalsnap::CheckSnapshotName(snapshot.snapshot_name).ok(), "the name is valid");
  FUZZ_CHECK(snapshot.node_snapshots.size() <= 1024, "node snapshots are bounded");
  for (size_t i = 0; i < snapshot.node_snapshots.size(); ++i) {
    const finalsnap::NodeSnapshot& node = snapshot.node_snapshots[i];
    FUZZ_CHECK(IsNodeGroupId(node.node_group_id), "NodeGroupId is four digits");
    FUZZ_CHECK(finalsnap::detail::CheckFileName(node.file).ok(), "File is a plain name");
    FUZZ_CHECK(node.file.find('/') == std::string::npos && node.file != "." && node.file != ".." &&
                   !node.file.empty(),
               "File has no path component");
    for (size_t j = 0; j < i; ++j) {
      FUZZ_CHECK(snapshot.node_snapshots[j].file != node.file, "files are unique");
      FUZZ_CHECK(snapshot.node_snapshots[j].node_group_id != node.node_group_id,
                 "node groups are unique");
    }
  }

  const std::string written = finalsnap::SnapshotToJson(snapshot);
  finalsnap::Expected<finalsnap::Snapshot> again = finalsnap::SnapshotFromJson(written);
  if (!again.ok()) {
    std::fprintf(stderr, "manifest_fuzz: re-read refused: %s\n%s\n",
                 again.error().message().c_str(), written.c_str());
  }
  FUZZ_CHECK(again.ok(), "a written manifest is accepted");
  FUZZ_CHECK(*again == snapshot, "a written manifest reads back equal");
  FUZZ_CHECK(finalsnap::SnapshotToJson(*again) == written, "writing is a fixed point");
  return 0;
}

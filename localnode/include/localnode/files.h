// The file-system helpers a local server needs and its users share: finding a program in $PATH
// and a scratch directory under $TMPDIR that goes away with its owner.
//
//   std::optional<std::string> redis = FindProgram("redis-server");
//   ScratchDir dir;
//   if (Status r = dir.Create("finalsnap-demo"); !r.ok()) return r.error();
//   ...                                  // dir.path(); the destructor removes it unless Keep()
#ifndef FINALSNAP_LOCALNODE_FILES_H_
#define FINALSNAP_LOCALNODE_FILES_H_

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "finalsnap/status.h"

namespace finalsnap::localnode {

// True for a regular file this process may execute.
bool IsExecutableFile(const std::string& path);

// `name` itself when it contains a '/', else the first executable `name` in $PATH (an empty
// entry is the current directory; no $PATH means /usr/local/bin:/usr/bin:/bin). nullopt when
// there is none (or the path given is not executable).
std::optional<std::string> FindProgram(const std::string& name);

// The last `lines` lines of a text file (all of it when shorter; empty when unreadable).
std::string FileTail(const std::filesystem::path& path, size_t lines);

// A fresh directory <$TMPDIR or /tmp>/<prefix>-XXXXXX (mkdtemp, so mode 0700), removed with
// everything in it when this object goes, unless Keep() was called.
class ScratchDir {
 public:
  ScratchDir() = default;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir();

  // Makes the directory; call once.
  Status Create(std::string_view prefix);
  // Leaves the directory in place when this object goes.
  void Keep() { keep_ = true; }
  // Empty until Create() succeeded.
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace finalsnap::localnode

#endif  // FINALSNAP_LOCALNODE_FILES_H_

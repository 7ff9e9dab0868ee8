#include "finalsnap/rdb/errors.h"

#include <string>

namespace finalsnap::rdb {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "finalsnap.rdb"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kTruncated:
        return "RDB truncated";
      case Errc::kCorrupt:
        return "RDB corrupt";
      case Errc::kUnsupported:
        return "RDB unsupported";
      case Errc::kChecksumMismatch:
        return "RDB checksum mismatch";
    }
    return "unknown RDB error";
  }
};

}  // namespace

const std::error_category& RdbCategory() {
  static const Category category;
  return category;
}

std::string_view ErrcName(Errc e) {
  switch (e) {
    case Errc::kTruncated:
      return "truncated";
    case Errc::kCorrupt:
      return "corrupt";
    case Errc::kUnsupported:
      return "unsupported";
    case Errc::kChecksumMismatch:
      return "checksum-mismatch";
  }
  return "unknown";
}

}  // namespace finalsnap::rdb

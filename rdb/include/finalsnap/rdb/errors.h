// Error identity for the RDB library: an enum of classes and the std::error_category that names
// them. Flow control (need more bytes, done, failed) is separate: see validator.h.
//
// The classes map to what a caller should do about the error:
//   kTruncated         the input ended early; fetching it again may succeed
//   kCorrupt           the bytes are wrong; data loss, never retried silently
//   kUnsupported       a valid file this library cannot read (for example a newer RDB version)
//   kChecksumMismatch  the trailing CRC-64 differs from the one computed over the stream
#ifndef FINALSNAP_RDB_ERRORS_H_
#define FINALSNAP_RDB_ERRORS_H_

#include <string_view>
#include <system_error>

namespace finalsnap::rdb {

enum class Errc {
  kTruncated = 1,
  kCorrupt,
  kUnsupported,
  kChecksumMismatch,
};

const std::error_category& RdbCategory();

inline std::error_code make_error_code(Errc e) { return {static_cast<int>(e), RdbCategory()}; }

// Short machine-friendly class name: "truncated", "corrupt", "unsupported", "checksum-mismatch".
std::string_view ErrcName(Errc e);

}  // namespace finalsnap::rdb

template <>
struct std::is_error_code_enum<finalsnap::rdb::Errc> : std::true_type {};

#endif  // FINALSNAP_RDB_ERRORS_H_

// LZF, the compression Redis applies to long strings in an RDB (lzf_d.c format):
//
//   ctrl < 32        literal run: the next ctrl+1 bytes are copied to the output
//   ctrl >= 32       back-reference: len = ctrl >> 5 (7 means "add the next byte"), then one more
//                    byte; copies len+2 bytes from output position - ((ctrl & 31) << 8 | byte) - 1
//
// Two pieces: LzfDecompress for the short strings the validator keeps (keys, AUX values), and
// LzfChecker, which proves a compressed string well formed as it streams past without producing
// its output: every back-reference points inside the output so far and the output length equals
// the declared one. The checker keeps only a few integers, so any string size streams through.
#ifndef FINALSNAP_RDB_LZF_H_
#define FINALSNAP_RDB_LZF_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace finalsnap::rdb::detail {

// Decompresses `in` into exactly out.size() bytes. Returns false when `in` is malformed or does not
// produce exactly that many bytes.
bool LzfDecompress(std::span<const uint8_t> in, std::span<uint8_t> out);

class LzfChecker {
 public:
  // Starts a string of `compressed` input bytes that must expand to `expanded` bytes.
  void Begin(uint64_t compressed, uint64_t expanded);
  // Consumes input bytes up to the end of this string; returns how many it took. After an error
  // it takes nothing and error() names the fault.
  size_t Feed(const uint8_t* p, size_t n);
  bool complete() const { return in_left_ == 0 && error_ == nullptr; }
  // Called when complete(): nullptr if the string was well formed, else the fault.
  const char* Finish() const;
  const char* error() const { return error_; }

 private:
  enum class Phase : uint8_t { kControl, kLiteral, kLengthByte, kOffsetByte };
  uint64_t in_left_ = 0;
  uint64_t out_pos_ = 0;
  uint64_t out_len_ = 0;
  uint32_t literal_left_ = 0;
  uint32_t ref_len_ = 0;
  uint32_t ref_high_ = 0;
  Phase phase_ = Phase::kControl;
  const char* error_ = nullptr;
};

}  // namespace finalsnap::rdb::detail

#endif  // FINALSNAP_RDB_LZF_H_

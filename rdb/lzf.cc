#include "lzf.h"

#include <algorithm>
#include <cstring>

namespace finalsnap::rdb::detail {

bool LzfDecompress(std::span<const uint8_t> in, std::span<uint8_t> out) {
  size_t ip = 0;
  size_t op = 0;
  while (ip < in.size()) {
    const unsigned ctrl = in[ip++];
    if (ctrl < 32) {
      const size_t len = ctrl + 1;
      if (ip + len > in.size() || op + len > out.size()) return false;
      std::memcpy(out.data() + op, in.data() + ip, len);
      ip += len;
      op += len;
      continue;
    }
    size_t len = ctrl >> 5;
    if (len == 7) {
      if (ip >= in.size()) return false;
      len += in[ip++];
    }
    if (ip >= in.size()) return false;
    const size_t back = ((ctrl & 0x1f) << 8) + in[ip++] + 1;
    len += 2;
    if (back > op || op + len > out.size()) return false;
    // Byte by byte: a back-reference may overlap the bytes it produces.
    for (size_t i = 0; i < len; ++i, ++op) out[op] = out[op - back];
  }
  return op == out.size();
}

void LzfChecker::Begin(uint64_t compressed, uint64_t expanded) {
  *this = LzfChecker{};
  in_left_ = compressed;
  out_len_ = expanded;
}

size_t LzfChecker::Feed(const uint8_t* p, size_t n) {
  const uint8_t* const start = p;
  const uint8_t* const end = p + std::min<uint64_t>(n, in_left_);
  while (p < end && error_ == nullptr) {
    switch (phase_) {
      case Phase::kControl: {
        const unsigned ctrl = *p++;
        if (ctrl < 32) {
          literal_left_ = ctrl + 1;
          if (out_pos_ + literal_left_ > out_len_) error_ = "LZF literal run overflows the output";
          out_pos_ += literal_left_;
          phase_ = Phase::kLiteral;
        } else {
          ref_len_ = ctrl >> 5;
          ref_high_ = (ctrl & 0x1f) << 8;
          phase_ = ref_len_ == 7 ? Phase::kLengthByte : Phase::kOffsetByte;
        }
        break;
      }
      case Phase::kLiteral: {
        const size_t take = std::min<size_t>(literal_left_, end - p);
        p += take;
        literal_left_ -= static_cast<uint32_t>(take);
        if (literal_left_ == 0) phase_ = Phase::kControl;
        break;
      }
      case Phase::kLengthByte:
        ref_len_ += *p++;
        phase_ = Phase::kOffsetByte;
        break;
      case Phase::kOffsetByte: {
        const uint64_t back = uint64_t{ref_high_ | *p++} + 1;
        if (back > out_pos_) {
          error_ = "LZF back-reference before the start of the output";
        } else if (out_pos_ + ref_len_ + 2 > out_len_) {
          error_ = "LZF back-reference overflows the output";
        }
        out_pos_ += ref_len_ + 2;
        phase_ = Phase::kControl;
        break;
      }
    }
  }
  const size_t taken = static_cast<size_t>(p - start);
  in_left_ -= taken;
  return taken;
}

const char* LzfChecker::Finish() const {
  if (error_ != nullptr) return error_;
  if (phase_ != Phase::kControl) return "LZF data ends inside an instruction";
  if (out_pos_ != out_len_) return "LZF data expands to fewer bytes than declared";
  return nullptr;
}

}  // namespace finalsnap::rdb::detail

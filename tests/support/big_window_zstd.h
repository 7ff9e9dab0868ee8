// BigWindowZstd: a hostile but valid zstd frame for the decoder's window limit (issue 11). It
// declares a 128 MiB window (windowLog 27, the library's default limit) and holds an RDB whose one
// string value is 128 MiB of zeros, written as 1024 RLE blocks: about 4 KB on disk. Without a
// window limit, decoding it makes the decoder allocate and touch the whole window.
//
// The real zstd accepts it when allowed that much memory (`zstd -t --memory=128MB`).
#ifndef FINALSNAP_TESTS_SUPPORT_BIG_WINDOW_ZSTD_H_
#define FINALSNAP_TESTS_SUPPORT_BIG_WINDOW_ZSTD_H_

#include <cstdint>
#include <vector>

namespace finalsnap::testing {

inline std::vector<uint8_t> BigWindowZstd() {
  // Magic, a frame header descriptor with no content size, checksum or dictionary, and a window
  // descriptor of exponent 17 (windowLog 10 + 17 = 27), mantissa 0.
  std::vector<uint8_t> out = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3};
  const auto block_header = [&out](uint32_t size, uint32_t type, bool last) {
    const uint32_t h = (size << 3) | (type << 1) | (last ? 1u : 0u);
    out.push_back(static_cast<uint8_t>(h));
    out.push_back(static_cast<uint8_t>(h >> 8));
    out.push_back(static_cast<uint8_t>(h >> 16));
  };
  constexpr uint32_t kValueBytes = uint32_t{1} << 27;
  constexpr uint32_t kMaxBlock = uint32_t{128} << 10;
  // "REDIS0010", SELECTDB 0, a string "k" whose length is 32-bit encoded (0x80 + 4 bytes BE).
  std::vector<uint8_t> head = {'R', 'E',  'D',  'I',  'S',  '0', '0', '1',
                               '0', 0xfe, 0x00, 0x00, 0x01, 'k', 0x80};
  for (int shift = 24; shift >= 0; shift -= 8) {
    head.push_back(static_cast<uint8_t>(kValueBytes >> shift));
  }
  block_header(static_cast<uint32_t>(head.size()), /*raw=*/0, false);
  out.insert(out.end(), head.begin(), head.end());
  for (uint32_t done = 0; done < kValueBytes; done += kMaxBlock) {
    block_header(kMaxBlock, /*RLE=*/1, false);
    out.push_back(0);
  }
  // EOF and an all-zero CRC-64 (checksums disabled).
  const std::vector<uint8_t> tail = {0xff, 0, 0, 0, 0, 0, 0, 0, 0};
  block_header(static_cast<uint32_t>(tail.size()), /*raw=*/0, true);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_BIG_WINDOW_ZSTD_H_

#include "finalsnap/rdb/crc64.h"

#include <isa-l/crc64.h>

namespace finalsnap::rdb {

// ISA-L's reflected Jones CRC pre- and post-inverts its running value; Redis's variant does
// neither, so the inversions are undone on both sides.
uint64_t Crc64(uint64_t crc, std::span<const uint8_t> data) {
  if (data.empty()) return crc;
  return ~crc64_jones_refl(~crc, data.data(), data.size());
}

}  // namespace finalsnap::rdb

// Redis's CRC-64 ("CRC-64/Jones": reflected, polynomial 0xad93d23594c935a9, init 0, xorout 0),
// computed by Intel ISA-L. The check value for "123456789" is 0xe9c6d914c4b8d9ca.
//
// Crc64 is incremental: Update() over consecutive chunks equals one pass over their concatenation.
#ifndef FINALSNAP_RDB_CRC64_H_
#define FINALSNAP_RDB_CRC64_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace finalsnap::rdb {

// Continues a CRC-64 from `crc` over `data`; start from 0.
uint64_t Crc64(uint64_t crc, std::span<const uint8_t> data);

class Crc64Tap {
 public:
  void Update(std::span<const uint8_t> data) { value_ = Crc64(value_, data); }
  uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
};

}  // namespace finalsnap::rdb

#endif  // FINALSNAP_RDB_CRC64_H_

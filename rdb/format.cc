#include "finalsnap/rdb/format.h"

namespace finalsnap::rdb {

std::string_view TypeName(Family family, uint8_t t) {
  if (family == Family::kValkey && t == type::kValkeyHash2) return "hash-v2";
  switch (t) {
    case type::kString:
      return "string";
    case type::kList:
      return "list-linked";
    case type::kSet:
      return "set-hashtable";
    case type::kZset:
      return "zset-v1";
    case type::kHash:
      return "hash-hashtable";
    case type::kZset2:
      return "zset-v2";
    case type::kModulePreGa:
      return "module-pre-release";
    case type::kModule2:
      return "module-value";
    case type::kHashZipmap:
      return "hash-zipmap";
    case type::kListZiplist:
      return "list-ziplist";
    case type::kSetIntset:
      return "set-intset";
    case type::kZsetZiplist:
      return "zset-ziplist";
    case type::kHashZiplist:
      return "hash-ziplist";
    case type::kListQuicklist:
      return "quicklist";
    case type::kStreamListpacks:
      return "stream";
    case type::kHashListpack:
      return "hash-listpack";
    case type::kZsetListpack:
      return "zset-listpack";
    case type::kListQuicklist2:
      return "quicklist-v2";
    case type::kStreamListpacks2:
      return "stream-v2";
    case type::kSetListpack:
      return "set-listpack";
    case type::kStreamListpacks3:
      return "stream-v3";
    case type::kHashMetadataPreGa:
      return "hash-hashtable-md-pre-ga";
    case type::kHashListpackExPreGa:
      return "hash-listpack-md-pre-ga";
    case type::kHashMetadata:
      return "hash-hashtable-md";
    case type::kHashListpackEx:
      return "hash-listpack-md";
    default:
      return "unknown";
  }
}

}  // namespace finalsnap::rdb

// FillDataset: fills a Redis server with a reproducible, randomised data set, in one of two mixes.
//
//   Expected<Context> c = server.Connect();
//   DatasetOptions options;
//   options.key_count = 3000;
//   Expected<DatasetStats> stats = FillDataset(c->get(), options);
//
// Mix::kEveryEncoding (the default; validator tests and benchmarks) holds every value type in
// every encoding Redis 7.0 writes to an RDB file. It cycles through the kinds below, one key of
// each per cycle, each cycle in the next database of `databases`; key names are
// "<prefix><kind>:<n>", n counting per kind:
//
//   str:int        integers of every width (RDB int encodings; shared and 64-bit ones too)
//   str:short      1..20 bytes, some numeric-looking but not canonical ("007")
//   str:long       21 bytes .. 64 KiB of compressible text (LZF-compressed when rdbcompression)
//   str:binary     random bytes, NUL, CR and LF included (incompressible)
//   str:empty      ""
//   list:listpack  a small list (one packed quicklist node)
//   list:quicklist 129..400 elements, integers of every listpack width, strings past 64 and
//                  4095 bytes, so several nodes and every listpack string encoding
//   list:plain     elements larger than the packed threshold, which becomes 16 KiB for the
//                  fill (DEBUG QUICKLIST-PACKED-THRESHOLD): PLAIN quicklist nodes; only when
//                  the server allows DEBUG, see DatasetStats::plain_list_nodes
//   set:intset     16-, 32- and 64-bit intsets
//   set:listpack   small sets of strings (listpack on Redis 7.2+; hashtable on 7.0, which has no
//                  listpack sets)
//   set:hashtable  more than 512 integers, or more than 128 strings
//   zset:listpack  up to 100 members; integer, fractional and infinite scores
//   zset:skiplist  129..300 members, or a member longer than 64 bytes
//   hash:listpack  up to 100 fields, values up to 64 bytes
//   hash:hashtable 513..700 fields, or a value longer than 64 bytes
//   stream:groups  up to 300 entries (several listpack nodes), some deleted, two consumer groups
//                  with pending entries (XREADGROUP), some acknowledged (XACK), claimed (XCLAIM),
//                  an idle consumer (XGROUP CREATECONSUMER) and XSETID's 7.0 fields
//   stream:plain   entries only, with varying field sets
//   stream:empty   a stream emptied by XDEL, or one made by XGROUP CREATE ... MKSTREAM
//
// Mix::kApplication (`finalsnap demo`) is what an application's cache holds: per cycle of 16
// writes, five strings of 32..1024 bytes of text and a counter ("str"), three hashes, two lists,
// a set of integers and one of strings, two sorted sets (4..40 elements of up to 128 bytes, one
// in a thousand with 600..1200: hashtable, skiplist and multi-node encodings) and an entry added
// to one of 64 streams per database ("stream:0".."stream:63", which grow long). It compresses
// about as well as typical application data, not as well as zeros, and has many keys per MB.
//
// The benchmark shapes, each one kind of data a real fleet holds a lot of (names as MixName):
//
//   sessions     session tokens of 40..160 bytes, every one with a TTL
//   json         small JSON documents (a user record, ~80..500 bytes)
//   hashes       small hashes, 3..16 fields (listpack)
//   collections  small sorted sets and lists, 4..32 elements (listpack)
//   smallkeys    the small-key mix: JSON strings, sessions, small hashes, lists, sorted sets
//   huge         a few huge keys: 300k-field hashes, 500k-element lists, 200k-member sorted
//                sets, 32 MiB strings
//   streams      streams of up to 300 entries with two consumer groups (as stream:groups)
//   encodings    kEveryEncoding;  application  kApplication
//
// A fraction of keys get an expiry (EXPIREAT years ahead, so none expire while in use). With
// `with_functions`, Lua libraries are loaded with FUNCTION LOAD REPLACE.
//
// Everything, stream IDs and expiry times included, follows from the seed, so two servers filled
// with the same options hold the same data (same DEBUG DIGEST). Commands are pipelined in
// batches, so a 300 MB fill takes well under a minute.
#ifndef FINALSNAP_LOCALNODE_DATASET_H_
#define FINALSNAP_LOCALNODE_DATASET_H_

#include <hiredis/hiredis.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "finalsnap/rdb/validator.h"
#include "finalsnap/status.h"

namespace finalsnap::localnode {

struct DatasetOptions {
  uint64_t seed = 1;
  // The fill stops once it has written at least `target_bytes` of payload (keys, members and
  // values) and at least `key_count` keys. At least one of the two must be set.
  uint64_t target_bytes = 0;
  uint64_t key_count = 0;
  // Databases used in turn, one per cycle of kinds. The server must have them (`databases`).
  std::vector<uint64_t> databases = {0, 3, 15};
  bool with_functions = true;
  int function_libraries = 2;
  // The fraction of keys that get an expiry, in [0, 1].
  double expire_fraction = 0.1;
  // kEveryEncoding: make list:plain keys with PLAIN quicklist nodes (needs DEBUG; skipped if
  // refused).
  bool plain_list_nodes = true;
  // Prepended to every key name, so fills with different seeds can share a server.
  std::string key_prefix;
  // Commands per pipelined batch; a batch is also flushed once it holds ~8 MB.
  size_t batch_commands = 1000;
  // Called after every batch with the payload bytes written so far.
  std::function<void(uint64_t bytes)> progress;

  enum class Mix {
    kEveryEncoding,
    kApplication,
    kSessions,
    kJsonDocuments,
    kSmallHashes,
    kSmallCollections,
    kSmallKeys,
    kHugeKeys,
    kStreams,
  };
  Mix mix = Mix::kEveryEncoding;
  // Keep every 97th new key, up to this many, in DatasetStats::spot_checks: keys to read back
  // where DEBUG DIGEST is not available.
  size_t spot_checks = 0;
};

struct SampleKey {
  uint64_t db = 0;
  std::string key;
};

struct DatasetStats {
  // What INFO keyspace should say afterwards, for a server that was empty before.
  std::map<uint64_t, rdb::DbCounts> databases;
  std::map<std::string, uint64_t> keys_by_kind;  // "set:intset" -> keys written
  std::map<std::string, SampleKey> samples;      // kind -> its first key, for OBJECT ENCODING
  uint64_t keys = 0;
  uint64_t expires = 0;
  uint64_t bytes = 0;                  // payload bytes: keys, members, fields and values
  uint64_t commands = 0;               // commands sent
  uint64_t functions = 0;              // function libraries loaded
  bool plain_list_nodes = false;       // whether list:plain keys were written
  std::vector<SampleKey> spot_checks;  // see DatasetOptions::spot_checks
};

// A mix's name ("smallkeys", ...; see above) and back; an unknown name is an error that lists
// the known ones.
std::string MixName(DatasetOptions::Mix mix);
Expected<DatasetOptions::Mix> MixByName(std::string_view name);

// Fills the server behind `c` (a blocking hiredis context) as described above. Fails for bad
// options, and, naming the command and key, for an error reply or a connection failure. Leaves
// the connection on database 0 unless the connection failed.
Expected<DatasetStats> FillDataset(redisContext* c, const DatasetOptions& options);

}  // namespace finalsnap::localnode

#endif  // FINALSNAP_LOCALNODE_DATASET_H_

// store: durable -> readback. The files were written and read back during the capture; here
// they are fsynced and committed under the snapshot's name, and the readback's reports are
// judged against the committed manifest.
#include <algorithm>

#include "operation.h"

namespace finalsnap::ops {

// One shard's entry in the manifest, from what its capture saw.
NodeSnapshot Operation::NodeSnapshotOf(const ShardRun& run) const {
  const rdb::Report& report = run.pipeline_result.report;
  const GroupNode& source = *run.source;
  NodeSnapshot node;
  node.node_group_id = run.shard->node_group_id;
  node.cache_node_id = "0001";
  node.cache_cluster_id = target_.kind == Target::Kind::kCacheCluster ? target_.cluster->id
                                                                     : source.cache_cluster_id;
  node.source_endpoint = source.address.ToString();
  node.cache_size = source.facts.used_memory;
  node.snapshot_create_time = SnapshotTimeString(run.snapshot_time);
  node.slots = run.shard->slots;
  node.file = run.file;
  node.compression = fleet_.storage.compression;
  node.compression_level = fleet_.storage.level;
  node.rdb_bytes = report.bytes;
  node.rdb_version = report.rdb_version;
  node.crc64 = report.computed_crc;
  node.keyspace = report.databases;
  node.repl_id = run.capture_result.replid.empty() ? report.Aux("repl-id").value_or("")
                                                   : run.capture_result.replid;
  if (run.capture_result.offset) {
    node.repl_offset = run.capture_result.offset;
  } else if (auto off = report.Aux("repl-offset")) {
    node.repl_offset = std::stoull(*off);
  }
  return node;
}

// durable: fsync every file and the directory, rename into place.
Task<Verdict> Operation::Commit() {
  manifest_.node_snapshots.clear();
  for (const auto& run : runs_) manifest_.node_snapshots.push_back(NodeSnapshotOf(*run));
  std::sort(manifest_.node_snapshots.begin(), manifest_.node_snapshots.end(),
            [](const NodeSnapshot& a, const NodeSnapshot& b) {
              return a.node_group_id < b.node_group_id;
            });
  manifest_.gates = result_.gates;
  std::string evidence;
  if (Status s = writer_->Commit(manifest_, &evidence); !s.ok()) {
    co_return Refuse("InvalidSnapshotState", s.message());
  }
  if (Verdict r = Journaled({{"event", "durable"}})) co_return r;
  Pass(evidence);
  co_return std::nullopt;
}

// readback: the stored files, read back from the device and decompressed while they were
// written, have the streams' CRC-64s and key counts.
Task<Verdict> Operation::ReadBack() {
  std::vector<ReadbackReport> readbacks;
  for (auto& run : runs_) {
    if (run->readback_report) readbacks.push_back(*run->readback_report);
  }
  std::string evidence;
  if (Status s = CheckReadback(readbacks, manifest_, &evidence); !s.ok()) {
    // A snapshot that does not read back is not a snapshot: it goes.
    (void)store_->Delete(*snapshot_name_);
    co_return Refuse("InvalidSnapshotState", s.message());
  }
  // The point of no return of a final snapshot's delete (journal.h).
  if (Verdict r = Proven()) co_return r;
  Pass(evidence);
  manifest_.gates = result_.gates;
  if (Status s = store_->ReplaceManifest(manifest_); !s.ok()) {
    result_.notes.push_back("could not record the store gates in the manifest: " + s.message());
  }
  result_.snapshot = manifest_;
  co_return std::nullopt;
}

}  // namespace finalsnap::ops

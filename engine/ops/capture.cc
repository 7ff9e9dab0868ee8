// capture: rdb-complete -> rdb-checksum -> rdb-parsed -> keycount-match, for every shard at
// once. The stream goes socket (or the node's RDB file) -> pipeline (validator, compressor,
// file) -> StreamingReadback, which reads the file back while it is written.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "failpoint.h"
#include "finalsnap/text.h"
#include "operation.h"

namespace finalsnap::ops {

using std::chrono::milliseconds;

namespace {
constexpr size_t kPoolBuffers = 16;
constexpr size_t kBufferSize = 256 * 1024;
}  // namespace

// Before the pause: the pipeline (with its file read back while it is written) and, for a sync
// capture, the replication connection through AUTH and REPLCONF. A node that refuses the
// handshake is refused here, before its writes were ever paused.
Task<Verdict> Operation::PrepareShard(ShardRun& run) {
  GroupNode& source = *run.source;
  run.pool = std::make_unique<BufferPool>(kPoolBuffers, kBufferSize);
  Expected<std::unique_ptr<StreamingReadback>> started =
      StreamingReadback::Start(writer_->dir() / run.file, fleet_.storage.compression);
  if (!started.ok()) {
    run.readback_report.emplace();  // the `readback` gate refuses it after the commit
    run.readback_report->io_error = started.error().message();
  } else {
    run.readback = *std::move(started);
  }
  run.pipeline = std::make_unique<detail::Pipeline>(
      loop_, *run.pool,
      detail::CompressionSettings{fleet_.storage.compression, fleet_.storage.level}, run.fd,
      run.readback.get());
  if (target_.settings().capture == CaptureMode::kBgsaveFile) co_return std::nullopt;
  detail::CaptureOptions copts;
  copts.address = source.address;
  copts.auth = source.client->auth();
  copts.timeouts = source.client->timeouts();
  copts.rdb_only = source.facts.AtLeast(6, 2);
  if (source.facts.engine == "valkey" && source.facts.major >= 9) {
    copts.announce_version = source.facts.version;
  }
  copts.transfer_timeout = milliseconds(target_.settings().transfer_timeout_ms);
  run.capture =
      std::make_unique<detail::ReplicationCapture>(loop_, *run.pool, *run.pipeline, copts);
  run.active_capture = run.capture.get();
  detail::CaptureResult prepared = co_await run.capture->Prepare();
  run.active_capture = nullptr;
  if (prepared.status.ok()) co_return std::nullopt;
  const std::string where = source.address.ToString();
  co_return Refuse("InvalidSnapshotState",
                   "capture from " + where + " failed (" + prepared.step +
                       "): " + prepared.status.message(),
                   prepared.step + ": " + prepared.status.message(), where);
}

// rdb-complete: the whole payload arrived, was written and the RDB reached its end. A stream
// the validator refuses on the way is refused by its own gate (rdb-checksum, rdb-parsed).
Task<Verdict> Operation::CaptureShard(ShardRun& run) {
  const std::string where = run.source->address.ToString();
  detail::Pipeline& pipeline = *run.pipeline;
  run.snapshot_time = std::chrono::system_clock::now();
  if (transfer_start_ms_ == 0) transfer_start_ms_ = Ms();
  Verdict refusal;
  if (target_.settings().capture == CaptureMode::kBgsaveFile) {
    refusal = co_await CaptureBgsaveFile(run);
  } else {
    detail::ReplicationCapture& capture = *run.capture;
    run.active_capture = &capture;
    ShardRun* r = &run;
    capture.OnForked([this, r] {
      // From the fork on the RDB is a point-in-time image: a snapshot that keeps the shard's
      // primary running lets writes go on now; a destroy holds the pause to the end.
      if (Destroys() || !r->paused) return;
      r->pause_timer.Stop();
      GroupNode& primary = *r->shard->primary;
      if (primary.facts.AtLeast(6, 2)) {
        // Counted as unpaused only once the server said so: if the connection is lost, the
        // end of the operation reconnects and unpauses again.
        primary.client->Send({"CLIENT", "UNPAUSE"}, primary.client->timeouts().command,
                             [r](CommandOutcome o) {
                               if (o.ok()) r->paused = false;
                             });
      } else {
        r->paused = false;  // nothing to send: the pause lapses by itself
      }
    });
    capture.OnProgress([this, r, &capture](uint64_t bytes) {
      r->progress_bytes = bytes;
      if (bytes >= (1 << 20)) detail::Failpoint("capture/mid-capture");
      if (!r->expected_bytes) r->expected_bytes = capture.declared_length();
      Progress();
    });
    run.capture_result = co_await capture.Run();
    run.active_capture = nullptr;
    if (!run.capture_result.status.ok()) {
      const rdb::Validator& v = pipeline.validator();
      const std::string gate =
          !v.failed() ? "rdb-complete"
          : v.diagnostic().code == rdb::Errc::kChecksumMismatch ? "rdb-checksum"
                                                                : "rdb-parsed";
      const std::string& step = run.capture_result.step;
      const std::string why = run.capture_result.status.message();
      refusal = RefuseGate(gate, "InvalidSnapshotState",
                           "capture from " + where + " failed (" + step + "): " + why,
                           step + ": " + why, where);
    }
  }
  if (refusal) {
    pipeline.Abort();
    co_return refusal;
  }
  run.pipeline_result = co_await pipeline.Finish();
  if (run.readback) run.readback_report = run.readback->Wait();
  run.transferred = true;
  run.expected_bytes = run.pipeline_result.payload_bytes;
  Progress();  // the shard's last word: 100 %
  // The transfer's memory (pool, codec contexts, readback buffers) goes now, not at the end.
  run.capture.reset();
  run.pipeline.reset();
  run.pool.reset();
  run.readback.reset();
  const detail::PipelineResult& pr = run.pipeline_result;
  if (!pr.rdb_complete) {
    co_return Refuse("InvalidSnapshotState",
                     pr.rdb_error ? pr.rdb_error->ToString() : pr.status.message(), "", where);
  }
  if (!pr.status.ok()) {
    // The compressor's writes to the snapshot file (a full disk: "write: No space left on
    // device").
    co_return Refuse("InvalidSnapshotState",
                     "storing the snapshot file " + FileFor(*run.shard) + " of " + where + " in " +
                         fleet_.storage.path.string() + " failed: " + pr.status.message(),
                     pr.status.message(), where);
  }
  const std::string framing = target_.settings().capture == CaptureMode::kBgsaveFile
                                  ? "BGSAVE file"
                                  : run.capture_result.framing + " framing";
  Pass(std::to_string(pr.payload_bytes) + " RDB bytes, " + framing +
           (run.capture_result.offset ? ", +FULLRESYNC " + run.capture_result.replid + " " +
                                            std::to_string(*run.capture_result.offset)
                                      : ""),
       where);
  co_return std::nullopt;
}

// rdb-checksum: the RDB's own CRC-64 matched what was computed over the stream (a mismatch
// stopped the transfer at rdb-complete's step, under this gate).
Task<Verdict> Operation::CheckChecksum(ShardRun& run) {
  const rdb::Report& report = run.pipeline_result.report;
  Pass(std::string(rdb::ChecksumVerdictName(report.checksum)) + ": CRC-64 " +
           Hex64(report.computed_crc) +
           (report.checksum == rdb::ChecksumVerdict::kDisabled
                ? " computed; the server has rdbchecksum no"
                : ""),
       run.source->address.ToString());
  co_return std::nullopt;
}

// rdb-parsed: every record from magic to EOF parsed (a parse error stopped the transfer).
Task<Verdict> Operation::CheckParsed(ShardRun& run) {
  const rdb::Report& report = run.pipeline_result.report;
  Pass("RDB version " + std::to_string(report.rdb_version) + " parsed from magic to EOF: " +
           std::to_string(report.TotalKeys()) + " keys, " + std::to_string(report.functions) +
           " function libraries",
       run.source->address.ToString());
  co_return std::nullopt;
}

// keycount-match: the RDB has what the paused primary had.
Task<Verdict> Operation::CheckKeycount(ShardRun& run) {
  const rdb::Report& report = run.pipeline_result.report;
  const std::string where = run.source->address.ToString();
  if (report.databases != run.expected) {
    co_return Refuse("InvalidSnapshotState",
                     "RDB has " + KeyspaceText(report.databases) +
                         "; INFO keyspace on the paused primary had " + KeyspaceText(run.expected),
                     "", where);
  }
  Pass(KeyspaceText(run.expected), where);
  co_return std::nullopt;
}

Task<std::map<std::string, std::string>> Operation::Persistence(NodeClient& node) {
  CommandOutcome p = co_await node.Command(Argv("INFO", "persistence"));
  std::map<std::string, std::string> fields;
  if (p.ok()) fields = detail::ParseInfo(p.reply.str);
  co_return fields;
}

// bgsave-file: BGSAVE, wait for it, then stream the node's own RDB file through the pipeline.
// The file must be readable from here: for agents on the node's host.
Task<Verdict> Operation::CaptureBgsaveFile(ShardRun& run) {
  NodeClient& node = *run.source->client;
  BufferPool& pool = *run.pool;
  const std::string where = run.source->address.ToString();
  auto fail = [this, &where](const std::string& why) {
    return Refuse("InvalidSnapshotState", why, "", where);
  };
  CommandOutcome dir = co_await node.Command(Argv("CONFIG", "GET", "dir"));
  CommandOutcome name = co_await node.Command(Argv("CONFIG", "GET", "dbfilename"));
  if (!dir.ok() || !name.ok() || dir.reply.elements.size() != 2 ||
      name.reply.elements.size() != 2) {
    co_return fail("cannot read the node's dir and dbfilename: " + dir.Error() + name.Error());
  }
  const std::string path = dir.reply.elements[1].str + "/" + name.reply.elements[1].str;
  // Completion is judged by the save counter (rdb_saves, 7.0+; LASTSAVE has one-second steps,
  // so two saves within a second would look like none), else by LASTSAVE.
  auto field = [](const std::map<std::string, std::string>& f, const char* k) {
    auto it = f.find(k);
    return it == f.end() ? std::string() : it->second;
  };
  const double deadline =
      Ms() + (target_.settings().transfer_timeout_ms > 0 ? target_.settings().transfer_timeout_ms
                                                         : 24.0 * 3600 * 1000);
  // A save already running (the server's own `save` schedule, or the fork of a replica's sync
  // that is still finishing) started before the pause, so it is not this cut: wait for it to
  // end, then start ours.
  std::map<std::string, std::string> before;
  CommandOutcome last_before;
  CommandOutcome bg;
  for (;;) {
    before = co_await Persistence(node);
    last_before = co_await node.Command(Argv("LASTSAVE"));
    bg = co_await node.Command(Argv("BGSAVE"));
    if (bg.ok() || bg.Error().find("already in progress") == std::string::npos) break;
    if (Ms() > deadline) co_return fail("BGSAVE refused until the deadline: " + bg.Error());
    if (Stopping()) co_return fail("stopped while waiting for the node's own save to end");
    co_await detail::Sleep(loop_, milliseconds(20));
  }
  if (!bg.ok()) co_return fail("BGSAVE refused: " + bg.Error());
  // "Background saving started" means the child has forked: the file will be the point-in-time
  // image, and a snapshot that keeps the node running lets writes go on. "scheduled" means it
  // forks later, so the pause holds until the save is seen running.
  bool forked = bg.reply.str.find("started") != std::string::npos;
  if (forked && !Destroys() && run.paused) co_await Unpause(run);
  for (;;) {
    const auto f = co_await Persistence(node);
    if (f.empty()) co_return fail("INFO persistence failed");
    const bool running = field(f, "rdb_bgsave_in_progress") == "1";
    if (running && !forked) {
      forked = true;
      if (!Destroys() && run.paused) co_await Unpause(run);
    }
    bool finished;
    if (!field(before, "rdb_saves").empty()) {
      finished = !running &&
                 std::stoull(field(f, "rdb_saves")) > std::stoull(field(before, "rdb_saves"));
    } else {
      CommandOutcome last = co_await node.Command(Argv("LASTSAVE"));
      finished = !running && last.ok() && last.reply.integer != last_before.reply.integer;
    }
    if (!running && field(f, "rdb_last_bgsave_status") == "err" && forked) {
      co_return fail("BGSAVE failed on the node (rdb_last_bgsave_status err)");
    }
    if (finished) break;
    if (Ms() > deadline) co_return fail("BGSAVE did not finish in time");
    if (Stopping()) co_return fail("stopped while BGSAVE ran");
    co_await detail::Sleep(loop_, milliseconds(20));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) co_return fail("cannot open the node's RDB " + path + ": " + std::strerror(errno));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  if (struct stat st{}; ::fstat(fd, &st) == 0) run.expected_bytes = static_cast<uint64_t>(st.st_size);
  uint64_t total = 0;
  for (;;) {
    int id = pool.Acquire();
    while (id < 0) {
      co_await detail::Sleep(loop_, milliseconds(1));  // the compressor returns buffers
      id = pool.Acquire();
    }
    const ssize_t n = ::read(fd, pool.data(id), pool.size());
    if (n <= 0) {
      pool.Unref(id);
      if (n < 0) {
        const std::string why = std::string("reading ") + path + ": " + std::strerror(errno);
        ::close(fd);
        co_return fail(why);
      }
      break;
    }
    total += static_cast<uint64_t>(n);
    const bool ok = run.pipeline->Push(id, {pool.data(id), static_cast<size_t>(n)});
    pool.Unref(id);
    if (!ok) break;  // the validator refused: reported when the pipeline finishes
    run.progress_bytes = total;
    Progress();
  }
  ::close(fd);
  run.capture_result.payload_bytes = total;
  co_return std::nullopt;
}

void Operation::Progress() {
  if (!options_.observer) return;
  OperationEvent e;
  e.kind = OperationEvent::Kind::kProgress;
  e.phase = "capture";
  e.progress.exact = true;
  for (const auto& run : runs_) {
    ShardProgress p;
    p.node_group_id = run->shard->node_group_id;
    p.node = run->source->address.ToString();
    p.received = run->progress_bytes;
    p.done = run->transferred;
    // Read back first: the readback never passes what was written when it is read.
    if (run->readback) p.read_back = run->readback->read_bytes();
    if (run->pipeline) p.stored = run->pipeline->stored_bytes();
    if (run->transferred) {
      p.stored = run->pipeline_result.stored_bytes;
      p.read_back = run->readback_report ? run->readback_report->stored_bytes : 0;
    }
    if (run->expected_bytes) {
      p.expected = *run->expected_bytes;
      p.exact = true;
    } else {
      // The RDB of a node is usually well below its used_memory; the estimate is corrected
      // upwards while the transfer passes it, and to the exact size at its end.
      p.expected = std::max(run->source->facts.used_memory, p.received);
    }
    e.progress.bytes += p.received;
    e.progress.expected += p.expected;
    e.progress.exact = e.progress.exact && p.exact;
    e.progress.shards.push_back(std::move(p));
  }
  e.progress.seconds = (Ms() - transfer_start_ms_) / 1000.0;
  options_.observer(e);
}

}  // namespace finalsnap::ops

// ReplicationCapture: fetches one node's RDB over the replication protocol on a raw uv_tcp_t
// (hiredis cannot carry the payload: it buffers whole bulks and rejects `$EOF:` framing) and
// feeds it, by reference, into a Pipeline.
//
// Handshake (REDIS-FACTS §1.2), each reply read before the next command is sent, because a SYNC
// with replies still pending is refused:
//   AUTH [user] pass            when the node needs it
//   REPLCONF capa eof           lets the server stream diskless ($EOF:<mark> framing)
//   REPLCONF rdb-only 1         6.2+: never fed the replication stream; closed after the RDB
//   REPLCONF version x.y.z      Valkey 9+: so the server writes an RDB version we can read
//   PSYNC ? -1                  full resync; +FULLRESYNC <replid> <offset> marks the fork
//
// Then every read lands in a pool buffer and goes through ReplFraming; confirmed payload ranges
// go to the pipeline and the 40-byte mark never does. When the pool is exhausted the socket is
// not read (backpressure) until the compressor hands a buffer back.
#ifndef FINALSNAP_ENGINE_REPL_STREAM_H_
#define FINALSNAP_ENGINE_REPL_STREAM_H_

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "async.h"
#include "loop.h"
#include "node_client.h"
#include "pipeline.h"
#include "repl_framing.h"

namespace finalsnap::detail {

struct CaptureOptions {
  NodeAddress address;
  NodeAuth auth;
  NodeTimeouts timeouts;
  bool rdb_only = true;                        // REPLCONF rdb-only 1 (server 6.2+)
  std::optional<std::string> announce_version;  // REPLCONF version (Valkey 9+)
  // No byte for this long during the transfer fails it (the server sends keepalive newlines
  // every second while it prepares the RDB).
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds transfer_timeout{0};  // 0: no limit
};

struct CaptureResult {
  Status status;
  std::string step;  // where it failed: "connect", "handshake", "transfer"
  std::string replid;
  std::optional<uint64_t> offset;
  std::string framing;  // "length" | "eof-mark"
  uint64_t payload_bytes = 0;
  int keepalives = 0;
  double seconds_to_fork = 0;   // until +FULLRESYNC / the $ line
  double seconds_total = 0;
};

class ReplicationCapture {
 public:
  ReplicationCapture(Loop& loop, BufferPool& pool, Pipeline& pipeline, CaptureOptions options);
  ~ReplicationCapture();
  ReplicationCapture(const ReplicationCapture&) = delete;
  ReplicationCapture& operator=(const ReplicationCapture&) = delete;

  // Called once when the server has forked for this transfer (+FULLRESYNC or the `$` line):
  // from then on the RDB is a point-in-time image.
  void OnForked(std::function<void()> fn) { on_forked_ = std::move(fn); }
  // Called with the payload byte count as data arrives.
  void OnProgress(std::function<void(uint64_t)> fn) { on_progress_ = std::move(fn); }

  // Runs the whole capture; the pipeline has been fed every payload byte when this succeeds.
  Task<CaptureResult> Run();
  // Ends the capture now (the connection is closed); Run() completes with `why`.
  void Cancel(const std::string& why);

 private:
  struct Socket;  // the uv_tcp_t and its requests; freed in the close callback
  struct Range {
    int id;
    const uint8_t* data;
    size_t size;
  };
  struct RunAwaiter;

  void Start();
  void Connect(const sockaddr* addr);
  void SendNext();
  void OnHandshakeLine(const std::string& line);
  void OnRead(ssize_t n, const uv_buf_t* buf);
  void OnPayload(int id, const uint8_t* data, size_t n);
  void Drain(bool done);
  void Finish(Status status, std::string step);
  void StartReading();
  void ArmIdle();

  Loop& loop_;
  BufferPool& pool_;
  Pipeline& pipeline_;
  CaptureOptions options_;
  Socket* socket_ = nullptr;
  ReplFraming framing_;
  std::vector<std::vector<std::string>> handshake_;
  size_t handshake_next_ = 0;
  std::string line_;
  bool streaming_ = false;
  bool reading_ = false;
  bool stalled_ = false;  // reading stopped for want of a free buffer
  bool forked_ = false;
  bool finished_ = false;
  std::deque<Range> pending_;
  uint64_t passed_on_ = 0;
  CaptureResult result_;
  std::function<void()> on_forked_;
  std::function<void(uint64_t)> on_progress_;
  std::function<void()> on_done_;
  Timer timer_;        // connect, handshake-reply and idle deadlines
  Timer transfer_timer_;
  uint64_t started_ms_ = 0;
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_REPL_STREAM_H_

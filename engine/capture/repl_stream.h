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
//
// Two ways to run it:
//   co_await capture.Run();           connect, handshake and PSYNC in one go
//   co_await capture.Prepare();       connect, AUTH and REPLCONF only: nothing forks yet, so this
//   ...pause writes, read keyspace... can run before the writes are paused, and the pause then
//   co_await capture.Run();           covers only PSYNC -> +FULLRESYNC -> fork
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
#include "resolve.h"

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
  double seconds_to_fork = 0;   // from Run() (PSYNC sent, or the connect without Prepare())
                                // until +FULLRESYNC / the $ line
  double seconds_handshake = 0;  // connect + AUTH + REPLCONF, whether in Prepare() or Run()
  double seconds_total = 0;     // from the connect to the end
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
  // The payload's exact size, once the server has sent `$<length>` (a disk-based transfer);
  // nullopt before, and for `$EOF:` framing (diskless), whose size is known only at its end.
  std::optional<uint64_t> declared_length() const { return framing_.declared_length(); }

  // Connects and runs the handshake (AUTH, REPLCONF) without sending PSYNC, so that it can be
  // done before writes are paused. Completes when every handshake reply is in; on failure the
  // result says where ("connect", "handshake") and a later Run() returns the same result. The
  // connection then waits, with no deadline, for Run(). Call it at most once, before Run().
  Task<CaptureResult> Prepare();
  // Runs the capture: after Prepare() only PSYNC remains to send; without it, the connect and the
  // handshake come first. The pipeline has been fed every payload byte when this succeeds.
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
  struct PrepareAwaiter;

  void Start();
  void SendPsync();
  void Prepared();
  void Write(const std::vector<std::string>& argv);
  void Connect(const sockaddr* addr);
  void SendNext();
  void OnHandshakeLine(const std::string& line);
  void OnRead(ssize_t n, const uv_buf_t* buf);
  void OnPayload(int id, const uint8_t* data, size_t n);
  void Drain(bool done);
  void Finish(Status status, std::string step);
  void StartReading();
  void ArmIdle();
  // Batched reads (SO_RCVLOWAT): see kBatchBytes in repl_stream.cc.
  void SetBatching(bool on);

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
  bool started_ = false;     // Start() was called
  bool hold_psync_ = false;  // Prepare(): stop after the handshake
  bool prepared_ = false;    // the handshake is done and PSYNC not yet sent
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
  std::function<void()> on_prepared_;
  std::unique_ptr<PendingLookup> lookup_;  // the name lookup before the connect
  Timer timer_;        // connect, handshake-reply and idle deadlines
  Timer transfer_timer_;
  Timer batch_timer_;          // drops the batching once the stream goes quiet
  bool batching_ = false;      // SO_RCVLOWAT is kBatchBytes
  uint64_t reads_in_tick_ = 0;  // payload reads since batch_timer_ last fired
  double started_ms_ = 0;  // the connect (uv_hrtime, ms)
  double run_ms_ = 0;      // Run() called
};

}  // namespace finalsnap::detail

#endif  // FINALSNAP_ENGINE_REPL_STREAM_H_

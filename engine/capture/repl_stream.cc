#include "repl_stream.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

namespace finalsnap::detail {
namespace {

// While the RDB streams, the socket wakes the loop only once kBatchBytes are queued
// (SO_RCVLOWAT), not for every segment: with the server's fork child as the bottleneck, reads
// were ~30 KiB each, and every wake-up, read and hand-off cost CPU on the core the fork child
// needs. A stream quiet for kBatchQuiet (its end: the server sends nothing after it) goes back
// to waking at once.
constexpr size_t kBatchBytes = size_t{128} << 10;
constexpr std::chrono::milliseconds kBatchQuiet{5};

std::string Resp(const std::vector<std::string>& argv) {
  std::string s = "*" + std::to_string(argv.size()) + "\r\n";
  for (const std::string& a : argv) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

// What a handshake command is, for messages (AUTH's arguments are never shown).
std::string Describe(const std::vector<std::string>& argv) {
  if (argv[0] == "AUTH") return "AUTH";
  std::string s;
  for (const std::string& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Fine-grained (the loop's uv_now() has 1 ms steps): the figures are reported with the pause.
double NowMs() { return static_cast<double>(uv_hrtime()) / 1e6; }

}  // namespace

struct ReplicationCapture::Socket {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  ReplicationCapture* owner;
};

struct ReplicationCapture::RunAwaiter {
  ReplicationCapture& c;
  bool await_ready() const noexcept { return c.finished_; }
  void await_suspend(std::coroutine_handle<> h) {
    c.on_done_ = [h] { h.resume(); };
  }
  void await_resume() const noexcept {}
};

struct ReplicationCapture::PrepareAwaiter {
  ReplicationCapture& c;
  bool await_ready() const noexcept { return c.prepared_ || c.finished_; }
  void await_suspend(std::coroutine_handle<> h) {
    c.on_prepared_ = [h] { h.resume(); };
  }
  void await_resume() const noexcept {}
};

ReplicationCapture::ReplicationCapture(Loop& loop, BufferPool& pool, Pipeline& pipeline,
                                       CaptureOptions options)
    : loop_(loop),
      pool_(pool),
      pipeline_(pipeline),
      options_(std::move(options)),
      timer_(loop),
      transfer_timer_(loop),
      batch_timer_(loop) {}

ReplicationCapture::~ReplicationCapture() {
  if (!finished_) {
    on_done_ = nullptr;
    Finish(Status::Error("capture abandoned"), "transfer");
  }
  pool_.SetOnFree(nullptr);
}

Task<CaptureResult> ReplicationCapture::Prepare() {
  if (!started_ && !finished_) {
    hold_psync_ = true;
    Start();
  }
  PrepareAwaiter prepared{*this};
  co_await prepared;
  if (finished_) co_return result_;  // failed (or cancelled) before the handshake was done
  CaptureResult r;
  r.seconds_handshake = result_.seconds_handshake;
  co_return r;
}

Task<CaptureResult> ReplicationCapture::Run() {
  run_ms_ = NowMs();
  if (prepared_) {
    prepared_ = false;
    SendPsync();
  } else if (!started_ && !finished_) {
    Start();
  }
  // Otherwise Prepare() failed (finished_, and the result says why), or it is still under way,
  // which the contract excludes.
  RunAwaiter done{*this};
  co_await done;
  co_return result_;
}

void ReplicationCapture::Cancel(const std::string& why) {
  Finish(Status::Error(why), streaming_ ? "transfer" : "handshake");
}

void ReplicationCapture::Start() {
  started_ = true;
  started_ms_ = NowMs();
  if (!hold_psync_) run_ms_ = started_ms_;
  if (options_.auth.password) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options_.auth.username.empty()) auth.push_back(options_.auth.username);
    auth.push_back(*options_.auth.password);
    handshake_.push_back(std::move(auth));
  }
  handshake_.push_back({"REPLCONF", "capa", "eof"});
  if (options_.rdb_only) handshake_.push_back({"REPLCONF", "rdb-only", "1"});
  if (options_.announce_version) {
    handshake_.push_back({"REPLCONF", "version", *options_.announce_version});
  }

  // Resolved on libuv's thread pool (a numeric address at once), so the loop never waits on DNS.
  lookup_ = ResolveAddress(loop_, options_.address.host, options_.address.port, [this](Resolved r) {
    if (finished_) return;
    if (!r.error.empty()) {
      // Posted: this may run inside Start(), whose caller is suspending a coroutine.
      loop_.Post([this, why = r.error] { Finish(Status::Error(why), "connect"); });
      return;
    }
    Connect(r.address());
  });
}

void ReplicationCapture::Connect(const sockaddr* addr) {
  socket_ = new Socket{};
  socket_->owner = this;
  uv_tcp_init(loop_.get(), &socket_->tcp);
  socket_->tcp.data = socket_;
  socket_->connect_req.data = socket_;
  timer_.Start(options_.timeouts.connect, [this] {
    Finish(Status::Error("connect to " + options_.address.ToString() + " timed out after " +
                         std::to_string(options_.timeouts.connect.count()) + " ms"),
           "connect");
  });
  const int rc = uv_tcp_connect(&socket_->connect_req, &socket_->tcp, addr,
                                [](uv_connect_t* req, int status) {
                                  auto* s = static_cast<Socket*>(req->data);
                                  if (s->owner == nullptr) return;
                                  ReplicationCapture* self = s->owner;
                                  if (status < 0) {
                                    self->Finish(Status::Error("cannot connect to " +
                                                               self->options_.address.ToString() +
                                                               ": " + uv_strerror(status)),
                                                 "connect");
                                    return;
                                  }
                                  uv_tcp_nodelay(&s->tcp, 1);
                                  self->StartReading();
                                  self->SendNext();
                                });
  if (rc < 0) {
    loop_.Post([this, rc] {
      Finish(Status::Error("cannot connect to " + options_.address.ToString() + ": " +
                           uv_strerror(rc)),
             "connect");
    });
  }
}

void ReplicationCapture::StartReading() {
  if (reading_ || socket_ == nullptr) return;
  reading_ = true;
  stalled_ = false;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&socket_->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* s = static_cast<Socket*>(h->data);
        buf->base = nullptr;
        buf->len = 0;
        if (s->owner == nullptr) return;
        const int id = s->owner->pool_.Acquire();
        if (id < 0) return;  // read_cb gets UV_ENOBUFS: stop until a buffer is free
        buf->base = reinterpret_cast<char*>(s->owner->pool_.data(id));
        buf->len = s->owner->pool_.size();
      },
      [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* s = static_cast<Socket*>(stream->data);
        if (s->owner != nullptr) {
          s->owner->OnRead(n, buf);
        }
      });
}

void ReplicationCapture::SendNext() {
  if (handshake_next_ >= handshake_.size()) {
    result_.seconds_handshake = (NowMs() - started_ms_) / 1000.0;
    if (hold_psync_) {
      Prepared();
    } else {
      SendPsync();
    }
    return;
  }
  timer_.Start(options_.timeouts.command, [this] {
    Finish(Status::Error(Describe(handshake_[handshake_next_]) + " on " +
                         options_.address.ToString() + " got no reply within " +
                         std::to_string(options_.timeouts.command.count()) + " ms"),
           "handshake");
  });
  Write(handshake_[handshake_next_]);
}

void ReplicationCapture::Prepared() {
  // The connection now waits for Run() with no deadline: nothing is outstanding.
  timer_.Stop();
  hold_psync_ = false;
  prepared_ = true;
  if (on_prepared_) {
    loop_.Post([fn = std::move(on_prepared_)] { fn(); });
    on_prepared_ = nullptr;
  }
}

void ReplicationCapture::SendPsync() {
  streaming_ = true;
  ArmIdle();
  batch_timer_.Repeat(kBatchQuiet, [this] {
    // A quiet stream (its end, which the server follows with nothing, or a pause) must not
    // wait for kBatchBytes: back to waking for every byte.
    if (reads_in_tick_ == 0 && batching_) SetBatching(false);
    reads_in_tick_ = 0;
  });
  if (options_.transfer_timeout.count() > 0) {
    transfer_timer_.Start(options_.transfer_timeout, [this] {
      Finish(Status::Error("the transfer did not finish within " +
                           std::to_string(options_.transfer_timeout.count()) + " ms"),
             "transfer");
    });
  }
  Write({"PSYNC", "?", "-1"});
}

void ReplicationCapture::Write(const std::vector<std::string>& argv) {
  struct WriteReq {
    uv_write_t req;
    std::string data;
    Socket* socket;
  };
  auto* w = new WriteReq{{}, Resp(argv), socket_};
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&socket_->tcp), &buf, 1,
           [](uv_write_t* req, int status) {
             auto* wr = static_cast<WriteReq*>(req->data);
             Socket* s = wr->socket;
             delete wr;
             if (status < 0 && status != UV_ECANCELED && s->owner != nullptr) {
               s->owner->Finish(Status::Error(std::string("write to the server failed: ") +
                                              uv_strerror(status)),
                                "handshake");
             }
           });
}

void ReplicationCapture::SetBatching(bool on) {
  int fd = -1;
  if (socket_ == nullptr || uv_fileno(reinterpret_cast<uv_handle_t*>(&socket_->tcp), &fd) != 0) {
    return;
  }
  const int lowat = on ? static_cast<int>(kBatchBytes) : 1;
  // Linux wakes the reader at once when the mark drops below what is queued (tcp_set_rcvlowat).
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0) batching_ = on;
}

void ReplicationCapture::ArmIdle() {
  timer_.Start(options_.idle_timeout, [this] {
    Finish(Status::Error("no data from " + options_.address.ToString() + " for " +
                         std::to_string(options_.idle_timeout.count()) + " ms after " +
                         std::to_string(framing_.seen()) + " payload bytes"),
           "transfer");
  });
}

void ReplicationCapture::OnRead(ssize_t n, const uv_buf_t* buf) {
  const int id = buf->base == nullptr
                     ? -1
                     : static_cast<int>((reinterpret_cast<uint8_t*>(buf->base) - pool_.data(0)) /
                                        static_cast<ptrdiff_t>(pool_.size()));
  if (n == UV_ENOBUFS) {
    // Every buffer is in flight: stop reading until the compressor returns one.
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&socket_->tcp));
    reading_ = false;
    stalled_ = true;
    pool_.SetOnFree([this] {
      if (stalled_ && !finished_) StartReading();
    });
    return;
  }
  if (n <= 0) {
    if (id >= 0) pool_.Unref(id);
    if (n == 0) return;
    const std::string where =
        streaming_ ? " after " + std::to_string(framing_.seen()) + " payload bytes" : "";
    Finish(Status::Error(n == UV_EOF ? "the server closed the connection" + where
                                     : std::string("read failed: ") + uv_strerror(static_cast<int>(n)) + where),
           streaming_ ? "transfer" : "handshake");
    return;
  }
  if (!streaming_) {
    // Handshake replies are short status lines; take them out of the buffer and return it.
    line_.append(buf->base, static_cast<size_t>(n));
    pool_.Unref(id);
    size_t eol;
    while (!finished_ && (eol = line_.find("\r\n")) != std::string::npos) {
      const std::string reply = line_.substr(0, eol);
      line_.erase(0, eol + 2);
      OnHandshakeLine(reply);
    }
    return;
  }
  ArmIdle();
  ++reads_in_tick_;
  if (!batching_) SetBatching(true);
  OnPayload(id, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n));
}

void ReplicationCapture::OnHandshakeLine(const std::string& line) {
  if (handshake_next_ >= handshake_.size()) {
    // Prepared and waiting for Run(): no command is outstanding, so the server has no reason to
    // say anything.
    Finish(Status::Error(options_.address.ToString() + " sent \"" + line.substr(0, 80) +
                         "\" before PSYNC"),
           "handshake");
    return;
  }
  const std::vector<std::string>& argv = handshake_[handshake_next_];
  if (line.empty() || line[0] != '+') {
    Finish(Status::Error(Describe(argv) + " refused by " + options_.address.ToString() + ": " +
                         line),
           "handshake");
    return;
  }
  ++handshake_next_;
  SendNext();
}

void ReplicationCapture::OnPayload(int id, const uint8_t* data, size_t n) {
  const ReplFraming::FeedResult r = framing_.Feed({data, n});
  if (r.status == ReplFraming::Status::kError) {
    pool_.Unref(id);
    Finish(Status::Error(framing_.error()), "transfer");
    return;
  }
  if (!forked_ && (!framing_.replid().empty() || framing_.mode() != ReplFraming::Mode::kUnknown)) {
    forked_ = true;
    result_.seconds_to_fork = (NowMs() - run_ms_) / 1000.0;
    if (on_forked_) on_forked_();
  }
  if (r.payload_size > 0) {
    pending_.push_back(Range{id, data + r.payload_offset, r.payload_size});
  } else {
    pool_.Unref(id);
  }
  Drain(r.status == ReplFraming::Status::kDone);
  if (finished_) return;
  if (on_progress_) on_progress_(passed_on_);
  if (r.status == ReplFraming::Status::kDone) Finish(Status::Ok(), "transfer");
}

void ReplicationCapture::Drain(bool done) {
  const uint64_t confirmed = framing_.confirmed();
  while (!pending_.empty() && passed_on_ < confirmed) {
    Range& r = pending_.front();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(r.size, confirmed - passed_on_));
    if (!pipeline_.Push(r.id, {r.data, n})) {
      const rdb::Validator& v = pipeline_.validator();
      Finish(Status::Error(v.failed() ? v.diagnostic().ToString() : "the pipeline failed"),
             "transfer");
      return;
    }
    passed_on_ += n;
    r.data += n;
    r.size -= n;
    if (r.size == 0) {
      pool_.Unref(r.id);
      pending_.pop_front();
    }
  }
  if (done) {
    // What is left is the end mark: never payload.
    for (const Range& r : pending_) pool_.Unref(r.id);
    pending_.clear();
  }
}

void ReplicationCapture::Finish(Status status, std::string step) {
  if (finished_) return;
  finished_ = true;
  timer_.Stop();
  transfer_timer_.Stop();
  batch_timer_.Stop();
  stalled_ = false;
  if (socket_ != nullptr) {
    // The snapshot connection is closed before anything else happens to the node.
    socket_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&socket_->tcp),
             [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
    socket_ = nullptr;
  }
  for (const Range& r : pending_) pool_.Unref(r.id);
  pending_.clear();
  result_.status = std::move(status);
  if (!result_.status.ok()) result_.step = std::move(step);
  result_.replid = framing_.replid();
  result_.offset = framing_.offset();
  result_.framing = framing_.mode() == ReplFraming::Mode::kLength    ? "length"
                    : framing_.mode() == ReplFraming::Mode::kEofMark ? "eof-mark"
                                                                     : "";
  result_.payload_bytes = passed_on_;
  result_.keepalives = framing_.keepalives();
  result_.seconds_total = (NowMs() - started_ms_) / 1000.0;
  prepared_ = false;
  if (on_prepared_) {
    loop_.Post([fn = std::move(on_prepared_)] { fn(); });
    on_prepared_ = nullptr;
  }
  if (on_done_) {
    // Resumed on the next loop turn, outside the libuv callback we may be in.
    loop_.Post([fn = std::move(on_done_)] { fn(); });
    on_done_ = nullptr;
  }
}

}  // namespace finalsnap::detail

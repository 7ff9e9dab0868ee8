// The ElastiCache-compatible Query API (`finalsnap serve`): an HTTP/1.1 server that the real
// aws CLI and the AWS SDKs drive unchanged, given --endpoint-url:
//
//   aws elasticache delete-cache-cluster --cache-cluster-id myRedisCluster
//       --final-snapshot-identifier bkup-20150515-final --endpoint-url http://127.0.0.1:8080
//
// Actions: DeleteCacheCluster, DeleteReplicationGroup, CreateSnapshot, DescribeSnapshots,
// DeleteSnapshot, DescribeCacheClusters, DescribeReplicationGroups, DescribeEvents. As in
// ElastiCache, deletes and snapshots are asynchronous: the answer comes at once with the target
// "deleting" (or "snapshotting") and the snapshot "creating"; DescribeSnapshots shows the
// snapshot "available" once every gate has passed, DescribeCacheClusters and
// DescribeReplicationGroups show the target until it is gone (then its NotFound fault), and
// DescribeEvents shows every gate verdict and, on a refusal, which gate refused.
//
// Every request must be signed with Signature Version 4 by a key of the fleet file's
// [[api.credentials]]; nothing unsigned or wrongly signed reaches an action. State (operations,
// deleted targets, events) lives in [api] state and survives a restart; an operation cut short
// by a crash is reported as interrupted, never as done.
//
// Serve runs until ServeOptions::stop is cancelled (or request_stop is called), then stops
// accepting, cancels the running operations so that they reach a safe point (the capture
// stopped, the node unpaused and put back) and returns once they have ended. It installs no
// signal handlers: `finalsnap serve` cancels the token on SIGINT, SIGTERM and SIGHUP. The implementation is
// engine/api/api_server.cc; this header includes no libuv header.
#ifndef FINALSNAP_API_H_
#define FINALSNAP_API_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include "finalsnap/cancel.h"
#include "finalsnap/fleet.h"
#include "finalsnap/status.h"

namespace finalsnap {

struct ServeOptions {
  // Cancel it from any thread to stop the server (its reason goes to the log and to the
  // refusal of every operation still running).
  CancelToken stop;
  // Overrides [api] listen. Port 0 picks a free port (reported to on_listening).
  std::optional<Endpoint> listen;
  // Called once the server listens, on the server's thread, with the address it is bound to and
  // a function that asks the server to stop as cancelling `stop` does. request_stop may be called from
  // any thread, until Serve returns.
  std::function<void(const Endpoint& bound, std::function<void()> request_stop)> on_listening;
  // One line per request and per operation event worth a log line. Called from several threads,
  // one call at a time.
  std::function<void(std::string_view line)> log;
  // Threads that answer requests that talk to nodes (describes, and the checks before an
  // operation starts), which may wait up to the nodes' timeouts. Requests answered from storage
  // and state (DescribeSnapshots, DeleteSnapshot, DescribeEvents) have two threads of their own,
  // so that a node that never answers cannot delay them.
  int request_threads = 4;
  // Overrides of the HTTP server's deadlines (unset: its defaults, 30 s, 30 s and 60 s; see
  // engine/api/http_request_parser.h, HttpLimits): how long a whole request may take to arrive
  // from its first byte, how long an answer may wait for a client that does not read it, and how
  // long an idle keep-alive connection is kept. For embedders and tests.
  std::optional<std::chrono::milliseconds> request_timeout;
  std::optional<std::chrono::milliseconds> write_timeout;
  std::optional<std::chrono::milliseconds> idle_timeout;
};

// Runs the API server for `fleet` until it is stopped. Fails at once (without listening) when
// the state directory is locked by another server or unusable, when there are no
// [[api.credentials]] or a secret cannot be read, or when the address cannot be bound.
Status Serve(const Fleet& fleet, const ServeOptions& options);

}  // namespace finalsnap

#endif  // FINALSNAP_API_H_

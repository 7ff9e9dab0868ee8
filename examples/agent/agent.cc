// An ops agent that embeds finalsnap: it takes a verified snapshot of one cache cluster on a
// thread of its own, watches the operation's events as they happen, and cancels it through a
// token of its own when asked to stop (here: when a deadline passes, or on SIGINT, which the
// agent, not the engine, turns into a cancellation).
//
//   agent FLEET_FILE CACHE_CLUSTER_ID SNAPSHOT_NAME [DEADLINE_SECONDS]
//
// It prints one line per event and, at the end, the snapshot as ElastiCache describes it (JSON);
// exit 0 when the snapshot is available, 1 when the operation refused, 2 on a usage error.
// Built against the installed package: see CMakeLists.txt beside this file.
#include <finalsnap/cancel.h>
#include <finalsnap/elasticache.h>
#include <finalsnap/engine.h>
#include <finalsnap/fleet.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::cerr << "usage: agent FLEET_FILE CACHE_CLUSTER_ID SNAPSHOT_NAME [DEADLINE_SECONDS]\n";
    return 2;
  }
  auto loaded = finalsnap::LoadFleet(argv[1]);
  if (!loaded.ok()) {
    std::cerr << "fleet: " << loaded.error().ToString() << "\n";
    return 2;
  }
  const finalsnap::Fleet fleet = *loaded;
  const auto deadline = std::chrono::seconds(argc == 5 ? std::atoi(argv[4]) : 600);

  // The agent's own stop: SIGINT is waited for on a thread of the agent's, like any event.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  finalsnap::OperationOptions options;
  finalsnap::CancelToken cancel = options.cancel;
  std::mutex mu;  // the observer runs on the operation's thread
  options.observer = [&mu](const finalsnap::OperationEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    switch (e.kind) {
      case finalsnap::OperationEvent::Kind::kPhase:
        std::cout << "phase " << e.phase << "\n";
        break;
      case finalsnap::OperationEvent::Kind::kGate:
        std::cout << "gate " << e.gate.gate << " " << (e.gate.passed ? "passed" : "REFUSED")
                  << ": " << e.gate.evidence << "\n";
        break;
      case finalsnap::OperationEvent::Kind::kProgress:
        break;  // a real agent would export these as metrics
      case finalsnap::OperationEvent::Kind::kRecovery:
        std::cout << "recovered " << e.message << "\n";
        break;
    }
  };

  finalsnap::OperationResult result;
  bool done = false;
  std::condition_variable finished;
  std::thread operation([&] {
    result = finalsnap::CreateSnapshot(fleet, argv[2], argv[3], options);
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    finished.notify_all();
  });
  std::thread([stop_signals, cancel]() mutable {
    int signum = 0;
    if (sigwait(&stop_signals, &signum) == 0) cancel.Cancel("the agent got SIGINT");
  }).detach();
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!finished.wait_for(lock, deadline, [&] { return done; })) {
      cancel.Cancel("the agent's deadline passed");
    }
  }
  operation.join();

  if (!result.ok) {
    std::cout << "refused (" << result.fault << "): " << result.message << "\n";
    return 1;
  }
  std::cout << finalsnap::SnapshotShape(*result.snapshot, true).dump() << "\n";
  return 0;
}

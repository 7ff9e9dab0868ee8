// RadosGateway: a real S3-compatible object store for tests and benchmarks. A throwaway
// single-node Ceph cluster (one monitor, one OSD on the RAM-backed memstore, no mgr, no cephx
// between the daemons) and its RADOS Gateway (beast frontend), all on loopback, in a temporary
// directory of their own, started in about 2 s from Debian 12's ceph-mon, ceph-osd and radosgw.
// RGW checks the SigV4 signature of every request; the S3 user is made with radosgw-admin.
//
//   RadosGateway rgw;
//   rgw.Start();                        // throws, with the daemons' logs, on failure
//   rgw.endpoint();                     // "http://127.0.0.1:41234"
//   rgw.access_key(); rgw.secret_key();
//   rgw.Kill();                         // SIGKILL the gateway alone (the store stays)
//   rgw.StartGateway();                 // and bring it back, on the same port
//   // The destructor kills every daemon and removes the directory.
//
// Settings and why (each is a pitfall met on the way): msgr v2 only on 127.0.0.1 with
// cluster_addr set (else the OSD listens on every address); size-1 pools allowed explicitly;
// paxos_propose_interval 0.05 (start-up 13 s -> 2 s: each pool creation waits for a commit);
// RGW's ms_mon_client_mode = crc (with cephx off, "secure" mode never connects); RGW started
// only once the OSD is active (else its first read waits for the objecter's 5 s tick); RGW's
// garbage collection after 5 s (memstore keeps deleted data in RAM for 2 h otherwise);
// rados_osd_op_timeout 20 s (a full store answers 408 instead of hanging); and
// MALLOC_MMAP_THRESHOLD_ so the OSD gives memory back after deletes.
//
// RGW 16.2 behaviour a client must tolerate: an empty <ETag> in CompleteMultipartUpload's answer
// (HEAD gives the real one), 404 NoSuchKey for ListParts of an aborted upload and 500 for
// completing one, an empty <Message/> in error bodies, path-style addressing only.
//
// Missing daemons are an error naming the packages, never a skip. FINALSNAP_KEEP_TMP=1 keeps the
// directory (logs included) after the test.
#ifndef FINALSNAP_TESTS_SUPPORT_RADOS_GATEWAY_H_
#define FINALSNAP_TESTS_SUPPORT_RADOS_GATEWAY_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "localnode/files.h"

namespace finalsnap::testing {

class RadosGateway {
 public:
  struct Options {
    uint64_t memstore_bytes = uint64_t{1} << 30;  // the OSD's capacity (RAM, used lazily)
    std::chrono::milliseconds start_timeout{120'000};
  };

  RadosGateway() : RadosGateway(Options{}) {}
  explicit RadosGateway(Options options);
  ~RadosGateway();
  RadosGateway(const RadosGateway&) = delete;
  RadosGateway& operator=(const RadosGateway&) = delete;

  // Bootstraps the cluster, starts the three daemons, creates the S3 user and waits until the
  // gateway answers HTTP. Throws std::runtime_error (with log tails) on failure.
  void Start();
  // SIGKILLs the gateway only; the monitor and OSD (and every object) stay.
  void Kill();
  // Starts the gateway again after Kill(), on the same port, and waits until it answers.
  void StartGateway();
  bool gateway_running();

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(rgw_port_); }
  int port() const { return rgw_port_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  std::string dir() const { return scratch_.path().string(); }
  // The tail of every daemon's log, for assertion messages.
  std::string Logs() const;

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
  };
  void Bootstrap();
  void Spawn(const std::string& name, const std::vector<std::string>& argv);
  void WaitForOsd();
  void WaitForGateway();
  void KillChild(Child& child);
  std::string Conf() const { return dir() + "/ceph.conf"; }

  Options options_;
  localnode::ScratchDir scratch_;
  std::vector<Child> children_;
  int mon_port_ = 0;
  int rgw_port_ = 0;
  std::string access_key_;
  std::string secret_key_;
};

}  // namespace finalsnap::testing

#endif  // FINALSNAP_TESTS_SUPPORT_RADOS_GATEWAY_H_

// RadosGateway (rados_gateway.h): a single-node Ceph cluster and its S3 gateway for tests.
#include "support/rados_gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "localnode/files.h"
#include "localnode/process.h"
#include "support/process.h"

namespace finalsnap::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPoll{50};

std::string RandomText(size_t length, std::string_view alphabet) {
  std::random_device device;
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string out;
  for (size_t i = 0; i < length; ++i) out += alphabet[pick(device)];
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int FreePort() {
  for (int i = 0; i < 100; ++i) {
    if (const int port = localnode::ProbePort(0); port != 0) return port;
  }
  throw std::runtime_error("RadosGateway: no free loopback port");
}

// The HTTP status of GET / on 127.0.0.1:port, or 0 when nothing answers.
int HttpStatus(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int status = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    char reply[64] = {};
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()) &&
        ::read(fd, reply, sizeof reply - 1) > 12 && std::string_view(reply).starts_with("HTTP/")) {
      status = std::atoi(reply + 9);
    }
  }
  ::close(fd);
  return status;
}

RunOptions LongRun() {
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  return options;
}

void Run(const std::vector<std::string>& argv) {
  const ProcessResult r = RunCommand(argv, LongRun());
  if (r.exit_code != 0) throw std::runtime_error("RadosGateway: " + r.Describe());
}

}  // namespace

RadosGateway::RadosGateway(Options options) : options_(options) {}

RadosGateway::~RadosGateway() {
  // The gateway first (the cluster's client), then the OSD, then the monitor. SIGKILL: the
  // cluster is thrown away, and a memstore OSD given SIGTERM would first write its RAM to disk.
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) KillChild(*it);
  const char* keep = std::getenv("FINALSNAP_KEEP_TMP");
  if (keep != nullptr && *keep != '\0' && std::string_view(keep) != "0") scratch_.Keep();
}

void RadosGateway::KillChild(Child& child) {
  if (child.pid <= 0) return;
  ::kill(child.pid, SIGKILL);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  child.pid = -1;
}

void RadosGateway::Spawn(const std::string& name, const std::vector<std::string>& argv) {
  // A fixed mmap threshold makes large buffers mmaps that are unmapped on free, so the OSD's RSS
  // drops back after deletes (measured: ~900 MB kept without it, 59 MB with it).
  Expected<pid_t> pid = localnode::SpawnChild(argv, dir() + "/log/" + name + ".out",
                                              {"MALLOC_MMAP_THRESHOLD_=262144"});
  if (!pid.ok()) throw std::runtime_error("RadosGateway: " + pid.error().message());
  for (Child& child : children_) {
    if (child.name == name) {
      child.pid = *pid;
      return;
    }
  }
  children_.push_back({name, *pid});
}

std::string RadosGateway::Logs() const {
  std::string out;
  for (const char* name : {"mon.a.log", "osd.0.log", "client.rgw.proto.log", "radosgw.out"}) {
    out += "--- " + std::string(name) + "\n" + localnode::FileTail(dir() + "/log/" + name, 20);
  }
  return out;
}

void RadosGateway::Start() {
  for (const char* program : {"ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph",
                              "monmaptool", "ceph-authtool"}) {
    if (!localnode::FindProgram(program)) {
      throw std::runtime_error(std::string(program) +
                               " is missing. The object-storage tests need a real Ceph RADOS "
                               "Gateway: apt-get install --no-install-recommends ceph-mon "
                               "ceph-osd radosgw");
    }
  }
  if (Status created = scratch_.Create("finalsnap-rgw"); !created.ok()) {
    throw std::runtime_error("RadosGateway: " + created.message());
  }
  Bootstrap();
  Spawn("mon", {*localnode::FindProgram("ceph-mon"), "-c", Conf(), "-f", "-i", "a"});
  const std::string osd_uuid = ReadFile("/proc/sys/kernel/random/uuid").substr(0, 36);
  const ProcessResult osd_id = RunCommand(
      {"ceph", "-c", Conf(), "--connect-timeout", "30", "osd", "new", osd_uuid}, LongRun());
  if (osd_id.exit_code != 0 || osd_id.stdout_text.find('0') != 0) {
    throw std::runtime_error("RadosGateway: ceph osd new: " + osd_id.Describe() + Logs());
  }
  Run({"ceph-osd", "-c", Conf(), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid});
  Spawn("osd", {*localnode::FindProgram("ceph-osd"), "-c", Conf(), "-f", "-i", "0"});
  WaitForOsd();
  StartGateway();
  // The S3 user, once the gateway has created its zone (doing it earlier races the gateway).
  access_key_ = RandomText(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
  secret_key_ = RandomText(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
  Run({"radosgw-admin", "-c", Conf(), "user", "create", "--uid=tester", "--display-name=tester",
       "--access-key=" + access_key_, "--secret-key=" + secret_key_});
}

void RadosGateway::Bootstrap() {
  const std::string d = dir();
  for (const char* sub : {"/mon/ceph-a", "/osd/ceph-0", "/run", "/log", "/crash", "/rgw"}) {
    std::filesystem::create_directories(d + sub);
  }
  mon_port_ = FreePort();
  rgw_port_ = FreePort();
  const std::string fsid = ReadFile("/proc/sys/kernel/random/uuid").substr(0, 36);
  std::ofstream conf(Conf());
  conf << "[global]\n"
       << "fsid = " << fsid << "\n"
       << "mon_host = v2:127.0.0.1:" << mon_port_ << "\n"
       << "public_addr = 127.0.0.1\ncluster_addr = 127.0.0.1\n"
       << "ms_bind_msgr1 = false\nms_bind_ipv6 = false\n"
       << "auth_cluster_required = none\nauth_service_required = none\n"
       << "auth_client_required = none\n"
       << "run_dir = " << d << "/run\nadmin_socket = " << d << "/run/$name.asok\n"
       << "pid_file = " << d << "/run/$name.pid\nlog_file = " << d << "/log/$name.log\n"
       << "mon_cluster_log_file = " << d << "/log/cluster.log\ncrash_dir = " << d << "/crash\n"
       << "keyring = " << d << "/keyring\n"
       << "osd_pool_default_size = 1\nosd_pool_default_min_size = 1\n"
       << "mon_allow_pool_size_one = true\nmon_warn_on_pool_no_redundancy = false\n"
       << "osd_pool_default_pg_num = 8\nosd_pool_default_pgp_num = 8\n"
       << "osd_pool_default_pg_autoscale_mode = off\nosd_crush_chooseleaf_type = 0\n"
       << "ms_async_op_threads = 2\nlog_max_recent = 500\n"
       << "mon_warn_on_insecure_global_id_reclaim_allowed = false\n"
       << "mon_warn_on_insecure_global_id_reclaim = false\n"
       << "[mon]\nmon_data = " << d << "/mon/$cluster-$id\n"
       << "paxos_propose_interval = 0.05\npaxos_min_wait = 0.01\n"
       << "mon_data_avail_warn = 1\nmon_data_avail_crit = 0\n"
       << "[osd]\nosd_data = " << d << "/osd/$cluster-$id\nosd_objectstore = memstore\n"
       << "memstore_device_bytes = " << options_.memstore_bytes << "\n"
       << "osd_op_num_shards = 2\nosd_op_num_threads_per_shard = 1\n"
       << "osd_crush_update_on_start = true\n"
       << "[client.rgw.proto]\nms_mon_client_mode = crc\n"
       << "rgw_frontends = beast endpoint=127.0.0.1:" << rgw_port_ << "\n"
       << "rgw_thread_pool_size = 16\nrgw_data = " << d << "/rgw\n"
       << "rgw_enable_lc_threads = false\nrgw_enable_quota_threads = false\n"
       << "rgw_dynamic_resharding = false\nrgw_run_sync_thread = false\n"
       << "rgw_enable_usage_log = false\n"
       << "rgw_gc_obj_min_wait = 5\nrgw_gc_processor_period = 5\n"
       << "rados_osd_op_timeout = 20\n";
  conf.close();
  if (!conf) throw std::runtime_error("RadosGateway: cannot write " + Conf());
  // ceph-mon --mkfs wants a keyring with the "mon." key even with cephx off.
  Run({"ceph-authtool", "--create-keyring", d + "/keyring", "--gen-key", "-n", "mon.", "--cap",
       "mon", "allow *"});
  Run({"monmaptool", "--create", "--fsid", fsid, "--addv", "a",
       "[v2:127.0.0.1:" + std::to_string(mon_port_) + "]", d + "/monmap"});
  Run({"ceph-mon", "-c", Conf(), "--mkfs", "-i", "a", "--monmap", d + "/monmap", "--keyring",
       d + "/keyring"});
}

void RadosGateway::WaitForOsd() {
  const auto deadline = Clock::now() + options_.start_timeout;
  while (ReadFile(dir() + "/log/osd.0.log").find("state: booting -> active") == std::string::npos) {
    for (const Child& child : children_) {
      if (child.pid > 0 && ::waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
        throw std::runtime_error("RadosGateway: " + child.name + " died during start-up\n" +
                                 Logs());
      }
    }
    if (Clock::now() > deadline) {
      throw std::runtime_error("RadosGateway: the OSD did not become active in time\n" + Logs());
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void RadosGateway::StartGateway() {
  Spawn("radosgw",
        {*localnode::FindProgram("radosgw"), "-c", Conf(), "-f", "-n", "client.rgw.proto"});
  WaitForGateway();
}

bool RadosGateway::gateway_running() {
  for (Child& child : children_) {
    if (child.name != "radosgw" || child.pid <= 0) continue;
    if (::waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
      child.pid = -1;
      return false;
    }
    return true;
  }
  return false;
}

void RadosGateway::WaitForGateway() {
  const auto deadline = Clock::now() + options_.start_timeout;
  while (HttpStatus(rgw_port_) != 200) {
    if (!gateway_running()) {
      throw std::runtime_error("RadosGateway: radosgw died during start-up\n" + Logs());
    }
    if (Clock::now() > deadline) {
      throw std::runtime_error("RadosGateway: radosgw did not answer in time\n" + Logs());
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void RadosGateway::Kill() {
  for (Child& child : children_) {
    if (child.name == "radosgw") KillChild(child);
  }
}

}  // namespace finalsnap::testing

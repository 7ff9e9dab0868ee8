// The operation journal: its lines, its file and the scan for abandoned ones (journal.h).
#include "journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "file_io.h"
#include "finalsnap/text.h"

namespace finalsnap::ops {

namespace fs = std::filesystem;
using detail::ErrnoMessage;
using detail::UniqueFd;
using json = nlohmann::json;

namespace {

// A journal is a few dozen short lines; anything near this is not one of ours.
constexpr size_t kMaxJournalBytes = 1 << 20;
constexpr size_t kMaxField = 256;

bool Printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// A string field: present, short and printable.
Expected<std::string> Field(const json& j, const char* key, bool required = true) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (!required) return std::string();
    return Status::Error(std::string("missing \"") + key + "\"");
  }
  if (!it->is_string()) return Status::Error(std::string("\"") + key + "\" is not a string");
  std::string v = it->get<std::string>();
  if (v.size() > kMaxField || !Printable(v)) {
    return Status::Error(std::string("\"") + key + "\" is not a short printable string");
  }
  return v;
}

// host:port, the port a number from 1 to 65535.
Expected<std::string> NodeField(const json& j, const char* key) {
  Expected<std::string> v = Field(j, key);
  if (!v.ok()) return v;
  const size_t colon = v->rfind(':');
  const std::string port = colon == std::string::npos ? "" : v->substr(colon + 1);
  if (colon == 0 || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoul(port) == 0 || std::stoul(port) > 65535) {
    return Status::Error(std::string("\"") + key + "\" is not host:port");
  }
  return v;
}

bool OneOf(const std::string& v, std::initializer_list<const char*> allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
}

}  // namespace

Status JournalState::Apply(const json& line, bool header) {
  if (!line.is_object()) return Status::Error("not a JSON object");
  if (header) {
    auto version = line.find("journal");
    if (version == line.end() || !version->is_number_integer() || version->get<int>() != 1) {
      return Status::Error("not a version 1 journal header");
    }
    Expected<std::string> id = Field(line, "operation_id");
    if (!id.ok()) return id.error();
    if (id->size() != 16 || !std::all_of(id->begin(), id->end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        })) {
      return Status::Error("\"operation_id\" is not 16 hex digits");
    }
    operation_id = *id;
    for (auto [key, out] : {std::pair{"command", &command}, std::pair{"target_kind", &target_kind},
                            std::pair{"target", &target}, std::pair{"finish", &finish},
                            std::pair{"host", &host}, std::pair{"started", &started}}) {
      Expected<std::string> v = Field(line, key);
      if (!v.ok()) return v.error();
      *out = *v;
    }
    if (!OneOf(command, {"create-snapshot", "delete-cache-cluster", "delete-replication-group"})) {
      return Status::Error("unknown \"command\"");
    }
    if (!OneOf(target_kind, {"cache-cluster", "member", "group"})) {
      return Status::Error("unknown \"target_kind\"");
    }
    if (!OneOf(finish, {"keep", "destroy-all", "retain-primary", "remove-member"})) {
      return Status::Error("unknown \"finish\"");
    }
    if (line.contains("snapshot") && !line["snapshot"].is_null()) {
      Expected<std::string> s = Field(line, "snapshot");
      if (!s.ok()) return s.error();
      snapshot = *s;
    }
    auto pid_it = line.find("pid");
    if (pid_it == line.end() || !pid_it->is_number_integer()) {
      return Status::Error("\"pid\" is not a number");
    }
    pid = pid_it->get<long>();
    return Status();
  }
  Expected<std::string> event = Field(line, "event");
  if (!event.ok()) return event.error();
  if (*event == "partial") {
    Expected<std::string> dir = Field(line, "dir");
    if (!dir.ok()) return dir.error();
    if (dir->find('/') != std::string::npos || dir->rfind(".partial-", 0) != 0) {
      return Status::Error("\"dir\" is not a partial directory's name");
    }
    partial = *dir;
  } else if (*event == "phase") {
    Expected<std::string> p = Field(line, "phase");
    if (!p.ok()) return p.error();
    phase = *p;
  } else if (*event == "config") {
    Expected<std::string> node = NodeField(line, "node");
    Expected<std::string> name = Field(line, "name");
    Expected<std::string> original = Field(line, "original");
    for (const auto* e : {&node, &name, &original}) {
      if (!e->ok()) return e->error();
    }
    // Only what a capture changes is ever put back.
    if (!OneOf(*name, {"rdbcompression", "repl-diskless-sync-delay"})) {
      return Status::Error("\"name\" is not a setting finalsnap changes");
    }
    const bool seen = std::any_of(config.begin(), config.end(), [&](const JournalConfig& c) {
      return c.node == *node && c.name == *name;
    });
    if (!seen) config.push_back({*node, *name, *original});
  } else if (*event == "pause") {
    Expected<std::string> node = NodeField(line, "node");
    if (!node.ok()) return node.error();
    if (std::find(paused.begin(), paused.end(), *node) == paused.end()) paused.push_back(*node);
  } else if (*event == "durable") {
    durable = true;
  } else if (*event == "proven") {
    proven = true;
    destroy.clear();
    sentinels.clear();
    if (auto d = line.find("destroy"); d != line.end()) {
      if (!d->is_array() || d->size() > 1024) return Status::Error("\"destroy\" is not a list");
      for (const json& n : *d) {
        if (!n.is_object()) return Status::Error("a \"destroy\" entry is not an object");
        Expected<std::string> node = NodeField(n, "node");
        Expected<std::string> member = Field(n, "member");
        Expected<std::string> role = Field(n, "role");
        for (const auto* e : {&node, &member, &role}) {
          if (!e->ok()) return e->error();
        }
        if (!OneOf(*role, {"primary", "replica"})) return Status::Error("unknown \"role\"");
        destroy.push_back({*node, *member, *role == "primary"});
      }
    }
    if (auto s = line.find("sentinels"); s != line.end()) {
      if (!s->is_array() || s->size() > 64) return Status::Error("\"sentinels\" is not a list");
      for (const json& a : *s) {
        json wrapped = {{"node", a}};
        Expected<std::string> node = NodeField(wrapped, "node");
        if (!node.ok()) return node.error();
        sentinels.push_back(*node);
      }
    }
    Expected<std::string> name = Field(line, "master_name", /*required=*/false);
    if (!name.ok()) return name.error();
    master_name = *name;
  } else if (*event == "shutdown" || *event == "down") {
    Expected<std::string> node = NodeField(line, "node");
    if (!node.ok()) return node.error();
    (*event == "shutdown" ? shutdown_sent : down).insert(*node);
  } else if (*event == "recovered") {
    recovered = true;
  } else {
    return Status::Error("unknown event");
  }
  return Status();
}

Expected<JournalState> ParseJournal(std::string_view text) {
  JournalState state;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    // A last line without its newline was being written when the process died: it was never
    // acted on (each event is written before what it announces), so it is dropped.
    if (end == std::string_view::npos) break;
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    ++line_no;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return Status::Error("line " + std::to_string(line_no) + ": not JSON");
    }
    if (Status s = state.Apply(j, line_no == 1); !s.ok()) {
      return Status::Error("line " + std::to_string(line_no) + ": " + s.message());
    }
  }
  if (line_no == 0) return Status::Error("empty");
  return state;
}

namespace {

// Reads a journal through its open descriptor, refusing anything but a small regular file.
Expected<JournalState> ReadJournal(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::Error(ErrnoMessage(errno));
  if (!S_ISREG(st.st_mode)) return Status::Error("not a regular file");
  if (static_cast<size_t>(st.st_size) > kMaxJournalBytes) return Status::Error("too large");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  if (n < 0) return Status::Error(ErrnoMessage(errno));
  text.resize(static_cast<size_t>(n));
  return ParseJournal(text);
}

int LockNb(int fd) {
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

std::string NewOperationId() {
  std::random_device device;
  return Hex64((uint64_t{device()} << 32) ^ uint64_t{device()});
}

Expected<std::unique_ptr<Journal>> Journal::Create(const fs::path& root,
                                                   const JournalState& header) {
  const fs::path dir = root / kJournalDir;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Error("create " + dir.string() + ": " + ErrnoMessage(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Error(dir.string() + " is not a directory");
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) {
    return Status::Error("chmod " + dir.string() + ": " + ErrnoMessage(errno));
  }
  const fs::path path = dir / (header.operation_id + ".jsonl");
  UniqueFd fd(
      ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return Status::Error("create " + path.string() + ": " + ErrnoMessage(errno));
  if (::fchmod(fd.get(), 0600) != 0 || LockNb(fd.get()) != 0) {
    const std::string why = ErrnoMessage(errno);
    ::unlink(path.c_str());
    return Status::Error("lock " + path.string() + ": " + why);
  }
  json line = {{"journal", 1},
               {"operation_id", header.operation_id},
               {"command", header.command},
               {"target_kind", header.target_kind},
               {"target", header.target},
               {"finish", header.finish},
               {"snapshot", header.snapshot ? json(*header.snapshot) : json(nullptr)},
               {"pid", header.pid},
               {"host", header.host},
               {"started", header.started}};
  JournalState state;
  if (Status s = state.Apply(line, /*header=*/true); !s.ok()) {
    ::unlink(path.c_str());
    return Status::Error("journal header: " + s.message());
  }
  const std::string text = line.dump() + "\n";
  Status written = detail::WriteAll(fd.get(), text);
  if (written.ok()) written = detail::FsyncFd(fd.get());
  if (written.ok()) written = detail::FsyncDir(dir);
  if (!written.ok()) {
    ::unlink(path.c_str());
    return Status::Error("write " + path.string() + ": " + written.message());
  }
  return std::unique_ptr<Journal>(new Journal(path, std::move(fd), std::move(state)));
}

Expected<std::unique_ptr<Journal>> Journal::Adopt(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() < 0) return Status::Error("open " + path.string() + ": " + ErrnoMessage(errno));
  if (LockNb(fd.get()) != 0) {
    if (errno == EWOULDBLOCK) return Status::Error(path.string() + ": its operation is running");
    return Status::Error("lock " + path.string() + ": " + ErrnoMessage(errno));
  }
  Expected<JournalState> state = ReadJournal(fd.get());
  if (!state.ok()) return Status::Error(path.string() + ": " + state.error().message());
  return std::unique_ptr<Journal>(new Journal(path, std::move(fd), *std::move(state)));
}

Status Journal::Append(const json& event) {
  JournalState next = state_;
  if (Status s = next.Apply(event, /*header=*/false); !s.ok()) {
    return Status::Error("journal event: " + s.message());
  }
  const std::string text = event.dump() + "\n";
  if (Status s = detail::WriteAll(fd_.get(), text); !s.ok()) {
    return Status::Error("write " + path_.string() + ": " + s.message());
  }
  if (::fdatasync(fd_.get()) != 0) {
    return Status::Error("fdatasync " + path_.string() + ": " + ErrnoMessage(errno));
  }
  state_ = std::move(next);
  return Status();
}

Status Journal::Remove() {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
    return Status::Error("remove " + path_.string() + ": " + ErrnoMessage(errno));
  }
  fd_.Reset();
  return detail::FsyncDir(path_.parent_path());
}

std::vector<FoundJournal> ScanJournals(const fs::path& root) {
  std::vector<FoundJournal> found;
  std::error_code ec;
  const fs::path dir = root / kJournalDir;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != 16 + 6 || name.substr(16) != ".jsonl") continue;
    UniqueFd fd(::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (fd.get() < 0) {
      found.push_back({it->path(), false, Status::Error(ErrnoMessage(errno))});
      continue;
    }
    // A shared lock is refused while the operation holds its exclusive one.
    bool running = false;
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) {
      running = errno == EWOULDBLOCK;
    } else {
      ::flock(fd.get(), LOCK_UN);
    }
    found.push_back({it->path(), running, ReadJournal(fd.get())});
  }
  std::sort(found.begin(), found.end(),
            [](const FoundJournal& a, const FoundJournal& b) { return a.path < b.path; });
  return found;
}

}  // namespace finalsnap::ops

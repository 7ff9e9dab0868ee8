#include "failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace finalsnap::detail {

namespace {

struct Setting {
  std::string name;
  int signal = SIGKILL;
};

const Setting& Configured() {
  static const Setting setting = [] {
    Setting s;
    const char* value = std::getenv("FINALSNAP_FAILPOINT");
    if (value == nullptr) return s;
    std::string v = value;
    const size_t colon = v.find(':');
    if (colon != std::string::npos) {
      if (v.substr(colon + 1) == "stop") s.signal = SIGSTOP;
      v.resize(colon);
    }
    s.name = v;
    return s;
  }();
  return setting;
}

}  // namespace

void Failpoint(std::string_view name) {
  const Setting& s = Configured();
  if (s.name.empty() || s.name != name) return;
  ::kill(::getpid(), s.signal);
}

}  // namespace finalsnap::detail

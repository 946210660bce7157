#include "backends/fault.hpp"

#ifdef STRATA_FAULT_INJECTION

#include <atomic>
#include <cstdlib>
#include <string>

#include <csignal>
#include <unistd.h>

namespace strata::fault {

namespace {

struct armed {
  std::string name;
  long after = 0;
  std::atomic<long> hits{0};

  armed() {
    if (auto spec = std::getenv("STRATA_CRASH_AT")) {
      std::string s{spec};
      auto colon = s.find(':');
      name = s.substr(0, colon);
      after = colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
    }
  }
};

} // namespace

void point(const char* name) {
  static armed a;
  if (a.name.empty() || a.name != name)
    return;
  if (++a.hits == a.after)
    ::kill(::getpid(), SIGKILL);
}

} // namespace strata::fault

#endif

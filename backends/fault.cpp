#include "backends/fault.hpp"

#ifdef STRATA_FAULT_INJECTION

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include <csignal>
#include <unistd.h>

namespace strata::fault {

namespace {

/// Reads "<name>:<n>" (n defaults to 1) from environment variable `var`.
void read_spec(const char* var, std::string& name, long& n) {
  if (auto spec = std::getenv(var)) {
    std::string s{spec};
    auto colon = s.find(':');
    name = s.substr(0, colon);
    n = colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
  }
}

/// A crash point armed by environment variable `var`: the process sends
/// itself `signal` on the n-th pass.
struct armed {
  std::string name;
  long after = 0;
  std::atomic<long> hits{0};
  int signal;

  armed(const char* var, int sig) : signal(sig) {
    read_spec(var, name, after);
  }

  void pass(const char* point) {
    // raise, not kill(getpid()): a signal sent to the process may be taken
    // by another thread, and this one would run on (and, say, send its
    // votes) until the stop or kill reaches it.
    if (!name.empty() && name == point && ++hits == after)
      ::raise(signal);
  }
};

armed& crash_arm() {
  static armed instance{"STRATA_CRASH_AT", SIGKILL};
  return instance;
}

armed& hang_arm() {
  static armed instance{"STRATA_STOP_AT", SIGSTOP};
  return instance;
}

} // namespace

void point(const char* name) {
  crash_arm().pass(name);
  hang_arm().pass(name);
}

void arm_crash(const char* name, long n) {
  auto& a = crash_arm();
  a.name = name;
  a.after = n;
  a.hits = 0;
}

namespace {

/// Armed throw and fail points: passes left per name. Several may be armed
/// at once (an I/O error and a failing cleanup after it).
struct throw_arms {
  std::mutex mtx;
  std::map<std::string, long> left;

  throw_arms() {
    std::string name;
    long n = 0;
    read_spec("STRATA_THROW_AT", name, n);
    if (!name.empty() && n > 0)
      left[name] = n;
  }

  /// Counts a pass of `name`; true if it is armed.
  bool take(const char* name) {
    std::lock_guard<std::mutex> guard{mtx};
    auto i = left.find(name);
    if (i == left.end())
      return false;
    if (--i->second == 0)
      left.erase(i);
    return true;
  }
};

throw_arms& arms() {
  static throw_arms instance;
  return instance;
}

} // namespace

void throw_point(const char* name) {
  if (arms().take(name))
    throw std::runtime_error{std::string{"fault injected at "} + name};
}

bool fires(const char* name) {
  return arms().take(name);
}

void arm_throw(const char* name, long n) {
  auto& a = arms();
  std::lock_guard<std::mutex> guard{a.mtx};
  if (n > 0)
    a.left[name] = n;
  else
    a.left.erase(name);
}

} // namespace strata::fault

#endif

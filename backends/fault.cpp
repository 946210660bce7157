#include "backends/fault.hpp"

#ifdef STRATA_FAULT_INJECTION

#include <atomic>
#include <cstdlib>
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

struct armed {
  std::string name;
  long after = 0;
  std::atomic<long> hits{0};

  armed() {
    read_spec("STRATA_CRASH_AT", name, after);
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

namespace {

struct throw_arms {
  std::mutex mtx;
  std::string name;
  long left = 0;

  throw_arms() {
    read_spec("STRATA_THROW_AT", name, left);
  }
};

throw_arms& arms() {
  static throw_arms instance;
  return instance;
}

} // namespace

void throw_point(const char* name) {
  auto& a = arms();
  std::lock_guard<std::mutex> guard{a.mtx};
  if (a.left <= 0 || a.name != name)
    return;
  --a.left;
  throw std::runtime_error{std::string{"fault injected at "} + name};
}

bool fires(const char* name) {
  auto& a = arms();
  std::lock_guard<std::mutex> guard{a.mtx};
  if (a.left <= 0 || a.name != name)
    return false;
  --a.left;
  return true;
}

void arm_throw(const char* name, long n) {
  auto& a = arms();
  std::lock_guard<std::mutex> guard{a.mtx};
  a.name = name;
  a.left = n;
}

} // namespace strata::fault

#endif

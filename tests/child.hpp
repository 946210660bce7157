#pragma once

// What the store processes of the crash tests share (tests/*_child.cpp).

#include <cstdio>
#include <string>

#include <unistd.h>

#include <caf/actor_system_config.hpp>

#include "strata/system.hpp"

namespace strata::test {

/// One unbuffered line: whatever was printed before a SIGKILL is out.
inline void say(const std::string& line) {
  auto text = line + "\n";
  if (::write(1, text.data(), text.size()) < 0)
    std::perror("write");
}

struct child_config : caf::actor_system_config {
  child_config() {
    configure(*this);
  }
};

} // namespace strata::test

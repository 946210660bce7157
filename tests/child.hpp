#pragma once

// What the store processes of the crash tests share (tests/*_child.cpp).

#include <cstdio>
#include <string>

#include <unistd.h>

#include <caf/actor_system_config.hpp>

#include "strata/options.hpp"
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

/// The durable 4-shard store the crash tests kill, in `dir`.
inline store_options child_store(const std::string& dir) {
  store_options o;
  o.data_dir = dir;
  o.shards = 4;
  o.map_size = 64 << 20;
  o.sync = sync_mode::durable;
  o.log_level = "warning";
  return o;
}

} // namespace strata::test

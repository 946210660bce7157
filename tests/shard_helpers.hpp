#pragma once

// Helpers of the backend tests that drive a shard_core directly.

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/shard_core.hpp"

namespace strata::test {

/// A shard core in `dir` on `kind`, without syncs, flushing often; the
/// memory engine keeps its data across a reopen.
inline shard_core_options core_options(const std::string& dir, engine_kind kind) {
  shard_core_options o;
  o.dir = dir;
  o.engine = kind;
  o.no_sync = true;
  o.flush_entries = 64;
  o.snapshot = kind == engine_kind::memory;
  return o;
}

/// Writes `ops` as one request; it must succeed.
inline void write_ok(shard_core& s, std::vector<operation> ops) {
  write_group g{&ops};
  REQUIRE(s.write(g).at(0).code == errc::none);
}

} // namespace strata::test

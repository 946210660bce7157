#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/coordinator.hpp"
#include "actors/shard.hpp"
#include "actors/storage.hpp"
#include "backends/decision_log.hpp"
#include "tests/fixture.hpp"

namespace strata::test {

/// A storage actor that reaches its shards only through messages, as it does
/// when shards live on other nodes: no direct reads of local environments.
inline transactional_storage_actor open_routed(fixture& f, uint32_t n) {
  std::vector<shard_actor> shards;
  for (uint32_t i = 0; i < n; ++i) {
    shard_options so;
    so.store.dir = f.dir / ("routed-" + std::to_string(i));
    so.store.shard = i;
    so.store.shard_count = n;
    so.store.no_sync = true;
    so.store.flush_entries = 50;
    auto s = spawn_shard(f.sys(), so);
    REQUIRE(s);
    shards.push_back(s->actor);
  }
  kv_store_options lo;
  lo.dir = f.dir / "routed-coordinator";
  lo.no_sync = true;
  auto log = open_kv_store(lo, nullptr);
  REQUIRE(log);
  router_config rc;
  // Through the shard actors, as for shards on other nodes.
  std::vector<participant_actor> participants(shards.begin(), shards.end());
  rc.coordinator = spawn_coordinator(f.sys(), *log, participants, uint64_t{1} << 20,
                                     std::chrono::milliseconds{10000});
  rc.shards = std::move(shards);
  rc.incarnation = decision_log::next_incarnation(**log);
  rc.max_value_size = uint64_t{1} << 20;
  rc.timeout = std::chrono::milliseconds{10000};
  f.store = f.sys().spawn(storage, std::move(rc));
  return f.store;
}

} // namespace strata::test

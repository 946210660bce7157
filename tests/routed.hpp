#pragma once

#include <chrono>
#include <memory>
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

/// `n` shards of one store in the fixture's directory (`<name>0`, `<name>1`,
/// ...), without sync unless `tune` says otherwise, each with its store for
/// direct checks.
inline std::vector<local_shard>
spawn_shards(fixture& f, uint32_t n, const std::string& name = "shard",
             void (*tune)(shard_core_options&) = nullptr) {
  std::vector<local_shard> shards;
  for (uint32_t i = 0; i < n; ++i) {
    shard_options so;
    so.store.dir = f.dir / (name + std::to_string(i));
    so.store.shard = i;
    so.store.shard_count = n;
    so.store.no_sync = true;
    parse_engine(test_engine(), so.store.engine);
    if (so.store.engine == engine_kind::graph)
      so.store.graph = test_graph();
    if (tune)
      tune(so.store);
    auto s = spawn_shard(f.sys(), so);
    REQUIRE(s);
    shards.push_back(*s);
  }
  return shards;
}

/// A coordinator over `participants`, with its decision log (also returned
/// through `log`, if given) in the fixture's directory `<name>`.
inline coordinator_actor coordinate(fixture& f, std::vector<participant_actor> participants,
                                    const std::string& name = "coordinator",
                                    std::shared_ptr<shard_core>* log = nullptr,
                                    uint64_t max_frame = 64ull << 20) {
  shard_core_options lo;
  lo.dir = f.dir / name;
  lo.no_sync = true;
  lo.changes.enabled = false;
  parse_engine(test_engine(), lo.engine);
  if (lo.engine == engine_kind::graph)
    lo.graph = test_graph();
  auto store = open_shard_core(lo, nullptr);
  REQUIRE(store);
  if (log)
    *log = *store;
  return spawn_coordinator(f.sys(), *store, std::move(participants), uint64_t{1} << 20,
                           std::chrono::milliseconds{10000}, max_frame);
}

/// A storage actor that reaches its shards only through messages, as it does
/// when shards live on other nodes: no direct reads of local environments.
/// `local`, if given, receives the shards for direct access.
inline observable_storage_actor open_routed(fixture& f, uint32_t n,
                                               std::vector<local_shard>* local = nullptr) {
  std::vector<shard_actor> shards;
  auto spawned = spawn_shards(f, n, "routed-",
                              [](shard_core_options& o) { o.flush_entries = 50; });
  for (auto& s : spawned)
    shards.push_back(s.actor);
  if (local)
    *local = spawned;
  std::shared_ptr<shard_core> log;
  // Through the shard actors, as for shards on other nodes.
  std::vector<participant_actor> participants(shards.begin(), shards.end());
  auto coordinator = coordinate(f, participants, "routed-coordinator", &log);
  router_config rc;
  rc.coordinator = coordinator;
  rc.shards = std::move(shards);
  rc.incarnation = decision_log::next_incarnation(*log);
  rc.max_value_size = uint64_t{1} << 20;
  rc.timeout = std::chrono::milliseconds{10000};
  f.store = f.sys().spawn(storage, std::move(rc));
  return f.store;
}

} // namespace strata::test

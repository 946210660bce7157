#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "strata/actors.hpp"

namespace strata {

struct storage_state {
  static inline const char* name = "strata.storage";
  std::vector<shard_actor> shards;
  uint64_t max_value_size = 0;
  std::chrono::milliseconds timeout{0};
};

/// The storage actor routes each key to its shard by `routing::shard_of` and
/// scatters/gathers what spans shards:
///
/// ```
///                 ┌──get/set/del/has (one key)──delegate──▶ shard(key) ──▶ client
///  client ──▶ storage
///                 └──size/clear/scan/get_many/set_many/del_many/batch
///                        ──request──▶ every shard involved ──▶ combine ──▶ client
/// ```
///
/// Scans merge the shards' pages in key order. set_many, del_many and batch
/// are atomic within each shard; across shards each shard's part commits on
/// its own.
storage_actor::behavior_type
storage(storage_actor::stateful_pointer<storage_state> self,
        std::vector<shard_actor> shards, uint64_t max_value_size,
        std::chrono::milliseconds timeout);

} // namespace strata

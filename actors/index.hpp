#pragma once

#include <string>

#include <caf/actor_system.hpp>

#include "strata/actors.hpp"

namespace strata {

/// Spawns the actor of index `name` of `store` (see `index_actor`). It asks
/// the store for its figures and sends its queries with their hint set to
/// the index, so each shard answers them through its part of the index (or
/// QUERY_ERROR if it cannot). The store ends it when the store ends.
index_actor spawn_index(caf::actor_system& sys, indexed_storage_actor store, std::string name);

} // namespace strata

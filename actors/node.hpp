#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "strata/actors.hpp"

namespace strata {

struct node_state {
  static inline const char* name = "strata.node";
  /// The shards this node hosts, by index (their supervisors).
  std::map<uint32_t, shard_actor> shards;
  /// What `ping` answers: id, address, the hosted shards.
  node_info self_info;
};

/// The published actor of a shard node: hands out the shards it hosts and
/// answers heartbeats. It is linked to the shards' supervisors, so stopping
/// it stops them.
node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               std::map<uint32_t, shard_actor> shards,
                               std::string address);

/// Spawns the node actor of a shard node hosting `shards`, reachable at
/// `address` (what `ping` reports).
node_actor spawn_node(caf::actor_system& sys, std::map<uint32_t, shard_actor> shards,
                      std::string address);

} // namespace strata

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

/// Data types of the cluster layer (spec level 5, Distributed: `getNodes`).
namespace strata {

/// What a node does for the shards it hosts.
enum class node_role : uint8_t {
  /// Serves reads and writes of its shards.
  primary = 0,
  /// Holds a copy; reserved for replication.
  replica = 1,
};

/// How a node looks from the store that uses it.
enum class node_status : uint8_t {
  /// Connected and answering heartbeats.
  healthy = 0,
  /// Connected, but a heartbeat went unanswered (or a local shard is being
  /// restarted): requests may be slow or fail.
  degraded = 1,
  /// Not connected (never reached, or the connection was lost) or, for a
  /// local shard, given up after too many restarts. Requests fail at once.
  offline = 2,
};

const char* to_string(node_role x);
const char* to_string(node_status x);

/// One entry of the node registry (the spec's `NodeInfo`).
struct node_info {
  /// The CAF node id of the process ("" while it was never reached).
  std::string id;
  /// "host:port" of a shard node; "local" for the store's own process.
  std::string address;
  node_role role = node_role::primary;
  node_status status = node_status::healthy;
  /// When the node last answered, in milliseconds since the Unix epoch
  /// (0: never).
  int64_t last_seen_ms = 0;
  /// The shards of the store that live there.
  std::vector<uint32_t> shards;
  /// Why the node is degraded or offline; empty while healthy.
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("strata::node_info"), x.id, x.address, x.role,
           x.status, x.last_seen_ms, x.shards, x.error);
}

} // namespace strata

#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/duration.hpp>

#include "actors/interfaces.hpp"
#include "actors/relay.hpp"
#include "strata/actors.hpp"

namespace strata {


/// Where the proxy finds its shard and how it treats the connection.
struct remote_shard_config {
  uint32_t shard = 0;
  std::string host;
  uint16_t port = 0;
  /// Timeout of every request to the node (and of connecting); a request
  /// fails at the first heartbeat tick after it.
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
  /// Connect through CAF's OpenSSL module.
  bool tls = false;
  /// Checked here before a write goes over the network.
  uint64_t max_value_size = 16ull << 20;
  /// The node's frame limit: bigger requests are refused here
  /// (QUOTA_EXCEEDED) instead of making the node drop the connection.
  uint64_t max_frame = 64ull << 20;
};

struct remote_shard_state {
  static inline const char* name = "strata.remote_shard";
  enum class link { connecting, connected, offline };

  remote_shard_config cfg;
  std::string address;
  link state = link::offline;
  /// Counts connection attempts; answers of older attempts are ignored.
  uint64_t attempt = 0;
  node_actor node;
  shard_actor target;
  relay_table relay;
  /// The registry entry: id, status, last seen, error.
  node_info seen;
  std::chrono::milliseconds backoff{0};
  std::chrono::steady_clock::time_point retry_at;
  std::chrono::steady_clock::time_point last_answer;
  bool ping_in_flight = false;
  /// Asked about in-doubt transactions after every (re)connect.
  coordinator_actor coordinator;

  relay_table::mode mode() const;
  caf::error unavailable() const;
  caf::error lost(const caf::error& err) const;
};

/// Connects to the node asynchronously and keeps the connection:
///
/// ```
///  offline ──tick, backoff over──▶ connecting ──connect + shard(i)──▶ connected
///     ▲                                 │ failed: backoff doubles          │
///     └─────────────────────────────────┴──── down (node or shard) ◀──────┘
/// ```
///
/// While connecting, requests wait for the attempt; while offline they fail
/// at once with CONNECTION_FAILED. When the connection is lost, every
/// request in flight fails at once with CONNECTION_LOST (no waiting for
/// timeouts), and reconnecting starts after `reconnect_min`. Every request
/// to the node has the finite `timeout`, checked on each heartbeat tick.
/// Once connected, the shard is told to resolve its transactions in doubt
/// with the store's coordinator (a node that restarted may hold some). Heartbeats ping the node every `heartbeat`;
/// no answer within three of them marks it degraded.
/// Nothing to do: a lost connection shows as a down message.
inline void relay_failed(remote_shard_actor::stateful_pointer<remote_shard_state>,
                         const caf::error&) {
  // nop
}

remote_shard_actor::behavior_type
remote_shard(remote_shard_actor::stateful_pointer<remote_shard_state> self,
             remote_shard_config cfg);

/// Spawns the proxy of the shard `cfg` names on its shard node.
remote_shard_actor spawn_remote_shard(caf::actor_system& sys, remote_shard_config cfg);

} // namespace strata

#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <caf/duration.hpp>

#include "actors/interfaces.hpp"
#include "actors/relay.hpp"
#include "actors/shard.hpp"
#include "backends/shard_slot.hpp"
#include "strata/actors.hpp"
#include "strata/options.hpp"

namespace strata {


/// How to supervise one shard.
struct shard_supervisor_config {
  /// How the shard is (re)opened.
  shard_options shard;
  /// At most this many restarts within `window`; one more failure leaves
  /// the shard offline.
  uint32_t max_restarts = 3;
  std::chrono::milliseconds window{10000};
  /// Where readers in this process find the open store.
  std::shared_ptr<shard_slot> slot;
};

struct shard_supervisor_state {
  static inline const char* name = "strata.shard_supervisor";
  enum class phase { running, restarting, offline };

  shard_supervisor_config cfg;
  phase now = phase::running;
  shard_actor target;
  /// The current instance's writer: writes go to it directly.
  shard_writer_actor writer;
  /// Instances that failed: their exit messages may still arrive.
  std::vector<caf::actor_addr> failed;
  relay_table relay;
  /// When the shard failed, within the restart window.
  std::deque<std::chrono::steady_clock::time_point> failures;
  uint64_t restarts = 0;
  std::string last_failure;
  /// The current instance's store, and the failed instance's: reopening
  /// waits until that is closed.
  std::weak_ptr<shard_core> current;
  std::weak_ptr<shard_core> closing;
  std::chrono::steady_clock::time_point reopen_deadline;
  /// Asked about in-doubt transactions after every restart.
  coordinator_actor coordinator;

  relay_table::mode mode() const;
  caf::error unavailable() const;
  caf::error lost(const caf::error& err) const;
};

/// Supervises one shard of this process and stands in for it:
///
/// ```
///  clients ──▶ supervisor ──request──▶ shard (+ its writer) ──▶ supervisor ──▶ clients
///                  │ shard failed (exception, unexpected exit)
///                  ▼
///   fail requests in flight (CONNECTION_LOST); hold new ones
///   wait until the old store is closed, reopen the LMDB environment
///   (replaying its WAL), spawn a new shard, send the held requests,
///   resolve transactions in doubt with the coordinator
///                  │ more than max_restarts failures within the window
///                  ▼
///   offline: every request fails at once with CONNECTION_FAILED
/// ```
///
/// Clients keep their handle across restarts. The supervisor is linked to
/// the shard, so stopping it stops the shard.
/// A request the shard answered with an error other than a strata one: the
/// shard failed (its exit message may come later); restart it now.
void relay_failed(supervised_shard_actor::stateful_pointer<shard_supervisor_state> self,
                  const caf::error& err);

supervised_shard_actor::behavior_type
shard_supervisor(supervised_shard_actor::stateful_pointer<shard_supervisor_state> self,
                 shard_supervisor_config cfg, local_shard first);

/// Opens local shard `i` of the store `opts` describes and spawns its
/// supervisor. `slot` receives where readers in this process find the
/// shard's store; `lock` (the data directory's) lives as long as the shard.
caf::expected<supervised_shard_actor>
spawn_supervised_shard(caf::actor_system& sys, const store_options& opts, uint32_t i,
                       std::shared_ptr<const void> lock,
                       std::shared_ptr<shard_slot>& slot);

} // namespace strata

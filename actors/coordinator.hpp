#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <caf/response_promise.hpp>

#include "actors/shard_writer.hpp"
#include "strata/actors.hpp"

namespace strata {

class kv_store;

/// What the coordinator needs of a shard: its side of commits. Both a shard
/// actor and, in the same process, its writer offer it; talking to the
/// writer directly saves a hop per message.
using participant_actor = caf::typed_actor<
  caf::replies_to<atom::commit, txn_part>::with<uint64_t>,
  caf::reacts_to<atom::prepare, uint64_t, txn_part>,
  caf::replies_to<atom::resolve, uint64_t, bool>::with<uint64_t>,
  caf::reacts_to<atom::sync>>;

struct coordinator_state {
  static inline const char* name = "strata.coordinator";
  /// The decision log: a store of its own (own LMDB environment and WAL).
  std::shared_ptr<kv_store> log;
  shard_writer_actor log_writer;
  std::vector<participant_actor> shards;
  uint64_t max_value_size = 0;
  std::chrono::milliseconds timeout{0};
  /// Two-phase commits between their first prepare and their logged
  /// decision. A shard asking about one of them aborts it (presumed abort);
  /// one whose decision is being logged gets its answer after the log write.
  struct undecided {
    bool aborted = false;
    bool logging = false;
    std::vector<caf::response_promise> asking;
  };
  std::unordered_map<uint64_t, undecided> open;
  /// Commits applied by every shard, whose decisions may leave the log once
  /// the shards have synced their outcome records (a barrier).
  std::vector<uint64_t> applied;
  bool barrier_running = false;
};

/// Decisions leave the log in batches of this many, after a barrier.
constexpr size_t decision_batch = 64;

/// Spawns the coordinator over its decision log (opened by the caller) and
/// the store's shards (their writers where local). It checks the parts it
/// gets like a shard would (`max_value_size`) and re-drives every decision
/// found in the log.
coordinator_actor spawn_coordinator(caf::actor_system& sys,
                                    std::shared_ptr<kv_store> log,
                                    std::vector<participant_actor> shards,
                                    uint64_t max_value_size,
                                    std::chrono::milliseconds timeout);

} // namespace strata

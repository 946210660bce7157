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

struct coordinator_state {
  static inline const char* name = "strata.coordinator";
  /// The decision log: a store of its own (own LMDB environment and WAL).
  std::shared_ptr<kv_store> log;
  shard_writer_actor log_writer;
  std::vector<shard_actor> shards;
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
};

/// The decision log's key of a transaction: "d/" and 16 hex digits.
std::string decision_key(uint64_t txid);

/// Reads the coordinator's incarnation from `log`, stores the next one
/// durably and returns it. Transaction ids start with it, so that they stay
/// unique across restarts.
uint64_t next_incarnation(kv_store& log);

/// Spawns the coordinator over its decision log (opened by the caller) and
/// the store's shards. It re-drives every decision found in the log.
coordinator_actor spawn_coordinator(caf::actor_system& sys,
                                    std::shared_ptr<kv_store> log,
                                    std::vector<shard_actor> shards,
                                    std::chrono::milliseconds timeout);

} // namespace strata

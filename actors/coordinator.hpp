#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <unordered_map>
#include <vector>

#include <caf/response_promise.hpp>

#include "actors/interfaces.hpp"
#include "actors/shard_writer.hpp"
#include "strata/actors.hpp"

namespace strata {

class shard_core;


/// One two-phase commit in progress (defined with the coordinator).
struct commit_run;
using commit_run_ptr = std::shared_ptr<commit_run>;

/// What the coordinator sends one shard in the next round: the prepares and
/// the outcomes of every transaction that reached that step since the last
/// round, in one message each.
struct shard_round {
  std::vector<txn_prepare> prepares;
  std::vector<commit_run_ptr> preparing;
  std::vector<txn_outcome> outcomes;
  std::vector<commit_run_ptr> resolving;
};

struct coordinator_state {
  static inline const char* name = "strata.coordinator";
  /// The decision log: a store of its own (own LMDB environment and WAL).
  std::shared_ptr<shard_core> log;
  shard_writer_actor log_writer;
  std::vector<participant_actor> shards;
  uint64_t max_value_size = 0;
  /// Shard nodes' frame limit: a round's prepares go in messages of at most
  /// half of it.
  uint64_t max_frame = 0;
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
  /// Logged commits being applied: how many of their shards have yet to
  /// confirm the outcome (at once or on a retry).
  std::unordered_map<uint64_t, size_t> unsettled;
  /// Commits applied by every shard, whose decisions may leave the log once
  /// the shards have synced their outcome records (a barrier).
  std::vector<uint64_t> applied;
  bool barrier_running = false;
  /// A barrier failed: the next one waits for the retry timer.
  bool barrier_backoff = false;
  /// The next round: per shard, and the commit decisions to log.
  std::vector<shard_round> round;
  std::vector<commit_run_ptr> deciding;
  bool flush_scheduled = false;
  /// Per shard: outcomes it did not confirm (an error, or a short answer).
  /// Its prepared locks stay until one arrives, so they are sent again, every
  /// `outcome_retry`, until the shard confirms them (outcomes are idempotent).
  std::vector<std::vector<txn_outcome>> unconfirmed;
  /// Commit decisions that are durable in the log but missing from its store
  /// (it could not apply them; a reopen replays them).
  std::set<uint64_t> unapplied;
  /// Commits whose decisions left the log lately (the highest ids,
  /// `forgotten_kept` of them): a transaction whose commit answer was lost
  /// asks about its own at once, long before it would go from here.
  std::set<uint64_t> forgotten;
  bool retry_scheduled = false;
  /// Doubles while retries fail, up to `outcome_retry_max`.
  std::chrono::milliseconds retry_delay{0};
};

/// How long the coordinator waits before sending unconfirmed outcomes again.
constexpr std::chrono::milliseconds outcome_retry{200};
constexpr std::chrono::milliseconds outcome_retry_max{10000};

/// Decisions leave the log in batches of this many, after a barrier.
constexpr size_t decision_batch = 64;

/// How many forgotten commit decisions `status` still answers for.
constexpr size_t forgotten_kept = size_t{1} << 16;

/// Spawns the coordinator over its decision log (opened by the caller) and
/// the store's shards (their writers where local). It checks the parts it
/// gets like a shard would (`max_value_size`) and re-drives every decision
/// found in the log.
coordinator_actor spawn_coordinator(caf::actor_system& sys,
                                    std::shared_ptr<shard_core> log,
                                    std::vector<participant_actor> shards,
                                    uint64_t max_value_size,
                                    std::chrono::milliseconds timeout,
                                    uint64_t max_frame = 64ull << 20);

} // namespace strata

#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/response_promise.hpp>
#include <caf/typed_actor.hpp>

#include "backends/shard_core.hpp"
#include "actors/interfaces.hpp"
#include "strata/actors.hpp"

namespace strata {


/// The one answer to a batch of prepares or of outcomes. Its items are
/// queued together, so they commit in the same group.
struct batch_answer {
  caf::response_promise promise;
  /// Prepares: one vote per transaction (no error is a yes).
  std::vector<caf::error> votes;
  /// Outcomes: deletes that found their key, per transaction.
  std::vector<uint64_t> counts;
  /// An outcome that could not be logged fails the whole batch.
  caf::error failed;
  size_t left = 0;
};

/// A write waiting for the next group commit.
struct pending_write {
  /// Which request it came from; decides the shape of the answer (`item`:
  /// one entry of a batch_answer).
  enum class reply { unit, existed, count, batch, item, status } shape;
  write_request::type kind = write_request::type::plain;
  std::vector<operation> ops;
  txn_part part;
  uint64_t txid = 0;
  bool commit = false;
  caf::response_promise promise;
  std::shared_ptr<batch_answer> batch;
  size_t index = 0;
  /// Test builds: answer CONNECTION_LOST whatever happened.
  bool lose_answer = false;
};

/// A transactional read waiting for a lock to go.
struct parked_read {
  std::string key;
  std::optional<scan_request> range;
  caf::response_promise promise;
};

/// A watcher waiting for a commit after `after`.
struct parked_await {
  uint64_t after = 0;
  std::chrono::steady_clock::time_point until;
  caf::response_promise promise;
};

struct shard_writer_state {
  static inline const char* name = "strata.shard_writer";
  std::shared_ptr<shard_core> store;
  std::vector<pending_write> pending;
  /// The group being committed (a buffer reused from group to group).
  std::vector<pending_write> group;
  /// Plain writes to keys that prepared transactions are about to write.
  std::vector<pending_write> blocked;
  std::vector<parked_read> parked;
  std::vector<parked_await> awaits;
  /// A tick that expires awaits is in the mailbox.
  bool tick_scheduled = false;
  bool flush_scheduled = false;
  /// A step of index builds or drops is in the mailbox.
  bool build_scheduled = false;
};

/// Group commit: a write is queued and a flush message is sent to self; the
/// flush runs after every write already in the mailbox, makes them durable
/// with one WAL append and one sync, applies them, and then answers each.
/// Writes that arrive during the sync form the next group. Spawned detached:
/// the sync blocks its thread, never a scheduler worker.
///
/// Transactions' prepares and outcomes ride in the same groups. Plain writes
/// and transactional reads of keys that a prepared transaction is about to
/// write wait here until its outcome is applied, then run in arrival order.
shard_writer_actor::behavior_type
shard_writer(shard_writer_actor::stateful_pointer<shard_writer_state> self,
             std::shared_ptr<shard_core> store);

/// Spawns a detached writer for `store`.
shard_writer_actor spawn_shard_writer(caf::actor_system& sys,
                                      std::shared_ptr<shard_core> store);

} // namespace strata

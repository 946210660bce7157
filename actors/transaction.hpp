#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_addr.hpp>

#include "actors/event_registry.hpp"
#include "actors/interfaces.hpp"
#include "actors/unique_indexes.hpp"
#include "actors/relay.hpp"
#include "strata/actors.hpp"

namespace strata {

class shard_slot;

/// What a transaction actor needs to know about its store.
struct transaction_context {
  std::vector<shard_actor> shards;
  /// The stores of shards in this process (null for remote ones): reads go
  /// straight to them, saving a message hop.
  std::vector<std::shared_ptr<shard_slot>> local;
  coordinator_actor coordinator;
  uint64_t max_value_size = 0;
  /// Timeout of its requests to shards and the coordinator.
  std::chrono::milliseconds timeout{0};
  /// The store: a transaction ends with it (and releases the shards' files),
  /// also while a remote client still holds its handle.
  caf::actor_addr store;
  /// Begun by a client in another process. CAF 0.17 keeps every actor whose
  /// handle went over the network in the registry until it ends, and never
  /// learns that the remote handle is gone: such a transaction ends itself,
  /// a timeout after its deadline (after its commit, if that takes longer).
  bool remote_client = false;
  /// The store's unique indexes: a commit takes the claims they plan.
  unique_actor unique;
  std::shared_ptr<unique_registry> registry;
  /// The store's event subscriptions: `before:set` and `before:delete`
  /// subscribers are asked about the writes at commit.
  std::shared_ptr<event_registry> events;
};

struct transaction_state {
  static inline const char* name = "strata.transaction";
  uint64_t txid = 0;
  txn_options opts;
  transaction_context ctx;
  txn_state state = txn_state::active;
  /// Why the transaction is no longer active (for error messages).
  std::string ended;
  std::chrono::steady_clock::time_point deadline;
  bool committing = false;
  /// Reads sent to shards and not answered yet; a commit waits for them.
  size_t reads_in_flight = 0;
  std::function<void()> on_reads_done;
  using buffer = std::map<std::string, std::optional<bytes>, std::less<>>;
  /// Buffered writes: a value, or nullopt for a delete.
  buffer writes;
  /// Values read so far (REPEATABLE_READ and SERIALIZABLE reread them).
  buffer cache;
  /// Per shard: keys read, with the shard's sequence number at the first read.
  std::vector<std::map<std::string, uint64_t>> reads;
  /// Per shard: ranges scanned (SERIALIZABLE).
  std::vector<std::vector<range_mark>> ranges;
  std::vector<std::pair<std::string, buffer>> savepoints;
  /// Answers still owed (a commit; reads and scans waiting for a shard). A
  /// transaction ends with its store, and CAF 0.17 would drop these
  /// unanswered: the destructor answers them.
  relay_table owed;
  /// Status requests (by their `owed` number) waiting for the commit to end.
  std::vector<uint64_t> awaiting_commit;
  /// This transaction, whose monitor on its store the destructor removes.
  caf::actor_addr self_addr;
  /// A remote client's transaction: its deadline passed, and it is waiting
  /// out one more timeout before it ends.
  bool lingering = false;

  transaction_state() = default;
  transaction_state(const transaction_state&) = delete;
  transaction_state& operator=(const transaction_state&) = delete;
  ~transaction_state();
};


/// One open transaction: optimistic concurrency control. Writes are buffered
/// here; reads go to the shards, which answer with the value and the
/// sequence number it reflects; commit sends each shard its writes plus the
/// reads to validate (which reads depends on the isolation level), in one
/// phase for one shard and through the coordinator's two-phase commit for
/// several. A transaction holds nothing in the shards until it commits, so
/// a timeout (checked on every request) only has to forget the buffer.
transaction_impl::behavior_type
transaction(transaction_impl::stateful_pointer<transaction_state> self,
            uint64_t txid, txn_options opts, transaction_context ctx);

/// Spawns transaction `txid` (not linked or monitored: see `begin`).
transaction_impl spawn_transaction(caf::actor_system& sys, uint64_t txid, txn_options opts,
                                   transaction_context ctx);

} // namespace strata

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <caf/local_actor.hpp>

#include "actors/interfaces.hpp"

namespace strata {

/// A store's unique indexes as its routers share them.
struct unique_registry {
  enum known_state : int { unknown = 0, none = 1, some = 2 };
  /// Whether the store has unique indexes: writes plan claims unless `none`.
  std::atomic<int> known{unknown};
  std::mutex mtx;
  /// Spawned by the first router (`unique_of`).
  unique_actor actor;
};

/// What the unique-index actor works with.
struct unique_config {
  std::vector<shard_actor> shards;
  coordinator_actor coordinator;
  uint64_t incarnation = 0;
  std::shared_ptr<std::atomic<uint64_t>> next_txn;
  std::chrono::milliseconds timeout{0};
  std::shared_ptr<unique_registry> registry;
};

/// The store's unique indexes. Each value a document holds in a unique index
/// is claimed under a reserved key routed like any key (`unique_constraint`
/// in backends/indexes.hpp): the shard that owns the value decides who holds
/// it. A write that changes claimed values asks here for its plan: the
/// actor reads the values its keys hold and the claims involved, each with
/// its shard's sequence number, and answers the claim writes and those
/// reads as parts of a transaction; the writer commits its data with them,
/// and the commit validates the reads, so two writers racing for one value
/// on different shards cannot both win (the loser retries and meets the
/// claim: DUPLICATE_KEY).
///
/// ```
///  router / transaction ──plan(ops)──▶ unique ──read keys, claims──▶ shards
///        │ ◀────────────── claim parts ──┘
///        └──commit(data + claims)──▶ coordinator ──2PC──▶ shards
/// ```
///
/// Creating a unique index registers it here first, so writes claim its
/// values from then on, then on every shard; a build then claims the values
/// of the documents already stored, shard by shard, page by page, each page
/// one validated transaction. The index stays "building" until the build
/// ends, and a build that meets two documents with one value marks the index
/// "failed" (it keeps refusing new duplicates until dropped). The outcome is
/// kept under the index's own claim key, so a reopened store knows it, and
/// an unfinished build starts over (claiming is idempotent).
/// Adds `more` to `parts`, shard by shard (a transaction's parts and the
/// claims planned for it).
void add_parts(std::vector<shard_part>& parts, std::vector<shard_part> more);

/// The store's unique-index actor, spawned by the first of its routers to
/// ask (`router`), and ending with that one.
unique_actor unique_of(caf::local_actor* router, const unique_config& cfg);

} // namespace strata

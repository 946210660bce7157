#pragma once

// The typed interfaces strata's actors use among themselves, beside the
// public ones in strata/actors.hpp (storage, transaction, shard,
// coordinator, node): what an actor answers as spawned, or offers only to
// the actors that build a store.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "strata/actors.hpp"

namespace strata {

/// The write half of a shard: the only actor that writes to the shard's LMDB
/// environment. Its handlers mirror the shard's writes, so the shard can
/// delegate to it and the answer goes straight to the client.
using shard_writer_actor = caf::typed_actor<
  caf::reacts_to<atom::set, std::string, bytes>,
  caf::replies_to<atom::del, std::string>::with<bool>,
  caf::reacts_to<atom::clear>,
  caf::reacts_to<atom::set_many, std::vector<entry>>,
  caf::replies_to<atom::del_many, std::vector<std::string>>::with<uint64_t>,
  caf::replies_to<atom::batch, std::vector<operation>>::with<batch_result>,
  caf::replies_to<atom::commit, uint64_t, txn_part>::with<uint64_t>,
  caf::replies_to<atom::prepare, std::vector<txn_prepare>>::with<std::vector<caf::error>>,
  caf::replies_to<atom::resolve, std::vector<txn_outcome>>::with<std::vector<uint64_t>>,
  caf::reacts_to<atom::sync>,
  caf::replies_to<atom::status, uint64_t>::with<bool>,
  // Transactional reads that found their key locked wait here for the
  // outcome that releases it.
  caf::replies_to<atom::read, std::string>::with<maybe_bytes, uint64_t>,
  caf::replies_to<atom::read, scan_request>::with<scan_page, uint64_t>,
  // Index definitions change on the writer's thread, between groups.
  caf::reacts_to<atom::create_index, index_spec>,
  caf::reacts_to<atom::drop_index, std::string>,
  // Watchers wait here for the next commit (see shard_actor).
  caf::replies_to<atom::await, uint64_t, uint32_t>::with<uint64_t>,
  // Answers the waits that expired (sent to itself).
  caf::reacts_to<atom::tick>,
  // Commits everything queued so far (sent to itself).
  caf::reacts_to<atom::flush>,
  // One step of the pending index builds and drops (sent to itself).
  caf::reacts_to<atom::build>>;

/// The store's unique indexes (actors/unique_indexes.hpp): it plans the
/// claims of writes and builds the claims of existing documents.
using unique_actor = caf::typed_actor<
  // The claims `ops` take and give up, as parts for the shards (claim
  // writes and the reads that validate them), to commit with the write;
  // nothing if the store has no unique index. DUPLICATE_KEY if a value is
  // taken.
  caf::replies_to<atom::plan, std::vector<operation>>::with<std::vector<shard_part>>,
  // Creates a unique index on every shard; writes claim its values from
  // then on, and the claims of the documents already stored are built.
  caf::reacts_to<atom::create_index, index_spec>,
  // Forgets a unique index the shards dropped.
  caf::reacts_to<atom::drop_index, std::string>,
  // The unique indexes' store-wide state (spec, state, error).
  caf::replies_to<atom::indexes>::with<std::vector<index_info>>,
  // One step of a build (sent to itself).
  caf::reacts_to<atom::build>>;

/// What the coordinator needs of a shard: its side of commits. Both a shard
/// actor and, in the same process, its writer offer it; talking to the
/// writer directly saves a hop per message.
using participant_actor = caf::typed_actor<
  caf::replies_to<atom::commit, uint64_t, txn_part>::with<uint64_t>,
  caf::replies_to<atom::status, uint64_t>::with<bool>,
  caf::replies_to<atom::prepare, std::vector<txn_prepare>>::with<std::vector<caf::error>>,
  caf::replies_to<atom::resolve, std::vector<txn_outcome>>::with<std::vector<uint64_t>>,
  caf::reacts_to<atom::sync>>;

/// The coordinator as spawned: its interface plus the flush it sends itself.
using coordinator_impl = coordinator_actor::extend<caf::reacts_to<atom::flush>,
                                                   caf::reacts_to<atom::retry>>;

/// A shard on a shard node, as the store's other actors see it: a stable
/// `shard_actor` handle that survives reconnects, plus a timer tick and the
/// node's registry entry.
using remote_shard_actor = shard_actor::extend<
  caf::reacts_to<atom::tick>,
  caf::reacts_to<atom::retry>,
  caf::replies_to<atom::nodes>::with<node_info>>;

/// A transaction actor as spawned: its interface plus the timer that ends a
/// remote client's transaction.
using transaction_impl = transaction_actor::extend<caf::reacts_to<atom::timeout>>;

/// A supervised shard: the stable handle of a shard in this process, plus a
/// restart timer tick.
using supervised_shard_actor = shard_actor::extend<caf::reacts_to<atom::restart>>;

} // namespace strata

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "strata/messages/atoms.hpp"
#include "strata/messages/wire.hpp"

/// strata's typed actor interfaces, declared once. Each wider interface
/// extends a narrower one, so a handle to a richer store converts to a handle
/// of any poorer level.
namespace strata {

/// Level 1 of the specification, Storage plus BatchStorage: a key-value store
/// of byte values. Keys are 1 to 511 bytes (INVALID_KEY otherwise); values
/// above the store's `max_value_size` are INVALID_VALUE. A write is answered
/// once it is durable (unless the store runs in no-sync mode).
using storage_actor = caf::typed_actor<
  // The value of a key; an empty optional if the key does not exist.
  caf::replies_to<atom::get, std::string>::with<maybe_bytes>,
  // Stores a value, replacing an old one.
  caf::reacts_to<atom::set, std::string, bytes>,
  // Deletes a key; true if it existed.
  caf::replies_to<atom::del, std::string>::with<bool>,
  // Whether a key exists.
  caf::replies_to<atom::has, std::string>::with<bool>,
  // Deletes every key.
  caf::reacts_to<atom::clear>,
  // Number of keys.
  caf::replies_to<atom::size>::with<uint64_t>,
  // One page of an ordered scan over keys (and values).
  caf::replies_to<atom::scan, scan_request>::with<scan_page>,
  // Values of several keys, in request order.
  caf::replies_to<atom::get_many, std::vector<std::string>>::with<
    std::vector<maybe_bytes>>,
  // Stores several entries.
  caf::reacts_to<atom::set_many, std::vector<entry>>,
  // Deletes several keys; answers how many existed.
  caf::replies_to<atom::del_many, std::vector<std::string>>::with<uint64_t>,
  // Applies a list of operations; see batch_result.
  caf::replies_to<atom::batch, std::vector<operation>>::with<batch_result>>;

/// Level 2 of the specification, QueryableStorage: the storage interface
/// plus queries over the documents it holds (values written as documents by
/// the typed client or `strata-cli set --doc`; other values are invisible to
/// queries). Patterns and pipelines are JSON text (docs/queries.md); a bad
/// one answers QUERY_ERROR naming what is wrong and where.
using queryable_storage_actor = storage_actor::extend<
  // One page of results in the pattern's order (order_by, then key); page on
  // with the page's continuation.
  caf::replies_to<atom::query, query_request>::with<query_page>,
  // How many documents match the pattern's where clause.
  caf::replies_to<atom::count, std::string>::with<uint64_t>,
  // The first result, if any (empty vector: none).
  caf::replies_to<atom::find_one, std::string>::with<std::vector<query_result>>,
  // Every result; QUOTA_EXCEEDED past `limits::max_find_results`.
  caf::replies_to<atom::find_many, std::string>::with<std::vector<query_result>>,
  // Runs an aggregation pipeline: an encoded document, an array of results.
  caf::replies_to<atom::aggregate, std::string>::with<bytes>>;

/// One secondary index of a store, as an actor: its figures and build
/// progress, and queries answered through it. A store hands it out
/// (`index, name`); its entries live in the shards beside the data, and it
/// ends with its store.
using index_actor = caf::typed_actor<
  // Definition, state, build progress and figures, summed over the shards;
  // KEY_NOT_FOUND once the index is dropped.
  caf::replies_to<atom::info>::with<index_info>,
  // Queries answered through this index (as if the pattern's hint named
  // it): QUERY_ERROR if it is not ready or has neither a condition nor the
  // order of the pattern on its fields.
  caf::replies_to<atom::query, query_request>::with<query_page>,
  caf::replies_to<atom::count, std::string>::with<uint64_t>,
  caf::replies_to<atom::find_many, std::string>::with<std::vector<query_result>>>;

/// Level 2 of the specification, IndexedStorage: queries plus secondary
/// indexes that the planner uses, kept in the same durable write as the data.
using indexed_storage_actor = queryable_storage_actor::extend<
  // Creates an index on every shard and builds it in the background;
  // DUPLICATE_KEY if the name is taken, QUERY_ERROR for a bad definition.
  caf::reacts_to<atom::create_index, index_spec>,
  // Drops an index; KEY_NOT_FOUND if there is none of that name.
  caf::reacts_to<atom::drop_index, std::string>,
  // Every index with its state and figures, summed over the shards.
  caf::replies_to<atom::indexes>::with<std::vector<index_info>>,
  // The actor of one index; KEY_NOT_FOUND if there is none of that name.
  caf::replies_to<atom::index, std::string>::with<index_actor>,
  // How each shard runs the pattern (its first page), and what it took.
  caf::replies_to<atom::explain, std::string>::with<query_plan>>;

/// One open transaction (the spec's Transaction). Writes are buffered in the
/// transaction and reads see them; nothing reaches the store before commit.
/// After commit, rollback or a timeout, every request fails with
/// TRANSACTION_ABORTED (naming the state). A commit that fails with
/// TRANSACTION_ABORTED or VERSION_CONFLICT certainly changed nothing; one
/// whose outcome could not be learned fails with CONNECTION_LOST ("may or
/// may not have been applied") and leaves the state `unknown`.
using transaction_actor = caf::typed_actor<
  caf::replies_to<atom::get, std::string>::with<maybe_bytes>,
  caf::reacts_to<atom::set, std::string, bytes>,
  caf::replies_to<atom::del, std::string>::with<bool>,
  caf::replies_to<atom::has, std::string>::with<bool>,
  caf::replies_to<atom::scan, scan_request>::with<scan_page>,
  // A query over the transaction's view (its own writes included); under
  // SERIALIZABLE what it read is validated at commit. Each page reads the
  // whole key space.
  caf::replies_to<atom::query, query_request>::with<query_page>,
  // Makes every write durable and visible at once, or fails (for example
  // VERSION_CONFLICT) and changes nothing.
  caf::reacts_to<atom::commit>,
  // Drops every write.
  caf::reacts_to<atom::rollback>,
  // Remembers the writes so far under a name (a newer one of the same name
  // replaces it).
  caf::reacts_to<atom::savepoint, std::string>,
  // Drops the writes made after the savepoint, which stays.
  caf::reacts_to<atom::rollback_to, std::string>,
  // Id and state.
  caf::replies_to<atom::info>::with<txn_info>,
  // Id and state once a commit in progress has ended: what a client whose
  // commit answer was lost (a timeout) asks to learn the outcome.
  caf::replies_to<atom::status>::with<txn_info>>;

/// Level 3 of the specification, TransactionalStorage: the indexed storage
/// interface plus transactions. `set_many`, `del_many`, `batch` and `clear` are atomic
/// across shards.
using transactional_storage_actor = indexed_storage_actor::extend<
  // Opens a transaction; INVALID_VALUE for unusable options.
  caf::replies_to<atom::begin, txn_options>::with<transaction_actor>,
  // The node registry (the spec's getNodes): this process and every shard
  // node the store uses, with status and last heartbeat.
  caf::replies_to<atom::nodes>::with<std::vector<node_info>>,
  // Each shard's figures, engine and that engine's capabilities, in shard
  // order.
  caf::replies_to<atom::info>::with<std::vector<shard_info>>>;

/// A subscriber of a store's events (`on`) and watches: any actor with these
/// handlers, or one the typed client spawns around functions.
using event_actor = caf::typed_actor<
  // before:get, before:set, before:delete: asked before the operations are
  // applied. An error answer vetoes them: the client gets that error and
  // nothing is written. No answer in time: the subscription's policy.
  caf::reacts_to<atom::before, std::vector<storage_event>>,
  // after:get, after:set, after:delete: told after the operations.
  caf::reacts_to<atom::after, std::vector<storage_event>>,
  // change (and watches): commits, in commit order per shard, each one
  // whole. The answer is the credit for the next delivery.
  caf::reacts_to<atom::change, std::vector<change_batch>>,
  // error: an operation failed; or a watch ended, with the position it had
  // delivered.
  caf::reacts_to<atom::failed, error_event>>;

/// One watch: it reads the shards' change logs after its position, filters
/// them and delivers to its subscriber, which paces it by answering. It ends
/// with its subscriber, on `unwatch`, or with an error event.
using watcher_actor = caf::typed_actor<
  // Filter, position delivered (a resume token), commits delivered.
  caf::replies_to<atom::info>::with<watch_info>,
  // Ends the watch.
  caf::reacts_to<atom::unwatch>>;

/// Level 4 of the specification, ObservableStorage: the transactional
/// interface plus events, watches and the change feed (docs/events.md).
using observable_storage_actor = transactional_storage_actor::extend<
  // Subscribes an actor to one kind of event (again: new options).
  // INVALID_VALUE for unusable options.
  caf::reacts_to<atom::on, event_kind, event_actor, subscribe_options>,
  // Ends that subscription; nothing happens if there is none.
  caf::reacts_to<atom::off, event_kind, event_actor>,
  // Starts a watcher delivering the changes that pass the filter to the
  // subscriber, from a resume token or from now. QUERY_ERROR for a bad
  // pattern, INVALID_VALUE for a bad token or options, CONSISTENCY_VIOLATION
  // for a token older than the retention.
  caf::replies_to<atom::watch, watch_options, event_actor>::with<watcher_actor>,
  // Reads the retained change log after a resume token ("oldest": from the
  // oldest commit retained; empty: from now): at most the given number of
  // commits per shard that pass the filter, and the token to continue from.
  caf::replies_to<atom::changes, std::string, uint32_t, change_filter_spec>::with<
    std::vector<change_batch>, std::string>>;

/// The two-phase-commit coordinator of a store.
using coordinator_actor = caf::typed_actor<
  // Commits a transaction's parts atomically: in one phase if one shard is
  // involved, else in two. Answers how many deletes found their key.
  caf::replies_to<atom::commit, uint64_t, std::vector<shard_part>>::with<uint64_t>,
  // Whether a transaction committed: asked by shards about the ones in doubt
  // after a restart, and by a transaction whose commit answer was lost.
  // Unknown ones did not (presumed abort); one still collecting votes is
  // aborted by the question.
  caf::replies_to<atom::status, uint64_t>::with<bool>>;

/// One shard: a complete single-environment store plus operator figures and
/// its side of transactions. Within a shard, set_many, del_many and batch
/// are atomic.
using shard_actor = storage_actor::extend<
  // Entry count, map size and use, commits.
  caf::replies_to<atom::info>::with<shard_info>,
  // A read inside a transaction: the value and the shard's sequence number
  // it reflects. Waits while a prepared transaction is about to write it.
  caf::replies_to<atom::read, std::string>::with<maybe_bytes, uint64_t>,
  caf::replies_to<atom::read, scan_request>::with<scan_page, uint64_t>,
  // One-phase commit of a transaction's part: validate, apply. Answers how
  // many deletes found their key. The shard remembers the transaction id
  // (also across restarts): committing the same id again changes nothing.
  caf::replies_to<atom::commit, uint64_t, txn_part>::with<uint64_t>,
  // Whether the one-phase commit of a transaction id was applied, in order
  // with the commits sent before: an id not seen yet is fenced (its commit,
  // should it still arrive, is refused), so the answer stays true.
  // KEY_NOT_FOUND for an id too old to remember.
  caf::replies_to<atom::status, uint64_t>::with<bool>,
  // Phase one for a batch of transactions: validate each part, then log the
  // valid ones durably (one group commit) and lock them. One vote per
  // transaction, in order: no error is a yes.
  caf::replies_to<atom::prepare, std::vector<txn_prepare>>::with<std::vector<caf::error>>,
  // Phase two for a batch: commit or drop each prepared transaction. Applied
  // and logged, but synced only with a later group or barrier: the
  // coordinator's log holds the decisions until then. Answers, per
  // transaction, how many deletes found their key.
  caf::replies_to<atom::resolve, std::vector<txn_outcome>>::with<std::vector<uint64_t>>,
  // Barrier: makes everything the shard logged so far durable.
  caf::reacts_to<atom::sync>,
  // Resolves the transactions in doubt by asking the coordinator; answers
  // how many there were.
  caf::replies_to<atom::recover, coordinator_actor>::with<uint64_t>,
  // The shard's first results of a query after a position, in its order.
  caf::replies_to<atom::query, shard_query>::with<shard_hits>,
  // How many of the shard's documents match a pattern.
  caf::replies_to<atom::count, std::string>::with<uint64_t>,
  // The shard's half of an aggregation pipeline (see backends/aggregate.hpp).
  caf::replies_to<atom::partial, std::string>::with<bytes>,
  // The shard's side of index management (see indexed_storage_actor).
  caf::reacts_to<atom::create_index, index_spec>,
  caf::reacts_to<atom::drop_index, std::string>,
  caf::replies_to<atom::indexes>::with<std::vector<index_info>>,
  // The commits after a position in the shard's change log that pass a
  // filter (INVALID_VALUE without a log, CONSISTENCY_VIOLATION for a
  // position older than its retention).
  caf::replies_to<atom::changes, change_request>::with<change_page>,
  // Answers the log's newest position once it is above the given one, or
  // after at most the given milliseconds.
  caf::replies_to<atom::await, uint64_t, uint32_t>::with<uint64_t>>;

} // namespace strata

namespace strata {

/// A shard node: a `strata-node --host-shards` process serving some shards
/// of a cluster's store. Stores connect to it and ask for their shards.
using node_actor = caf::typed_actor<
  // The shard of that index; INVALID_VALUE if this node does not host it.
  caf::replies_to<atom::shard, uint32_t>::with<shard_actor>,
  // Heartbeat: who the node is and which shards it hosts.
  caf::replies_to<atom::ping>::with<node_info>>;

} // namespace strata

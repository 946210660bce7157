#pragma once

#include <cstdint>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>

#include "strata/messages/cluster.hpp"
#include "strata/messages/events.hpp"
#include "strata/messages/kv.hpp"
#include "strata/messages/query.hpp"
#include "strata/messages/txn.hpp"

/// CAF serialization of the key-value layer's types, and the wire-only types.
/// Every type here is announced in strata/messages/announce.hpp.
namespace strata {

/// A value that may be absent (a get of a missing key).
using maybe_bytes = caf::optional<bytes>;

/// Outcome of `batch` (the spec's `BatchResult`).
struct batch_result {
  /// True if every operation was applied.
  bool success = false;
  /// How many operations were applied.
  uint64_t operations = 0;
  /// Why operations were not applied; empty on success.
  std::vector<caf::error> errors;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_result& x) {
  return f(caf::meta::type_name("strata::batch_result"), x.success,
           x.operations, x.errors);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entry& x) {
  return f(caf::meta::type_name("strata::entry"), x.key, x.value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, operation& x) {
  return f(caf::meta::type_name("strata::operation"), x.kind, x.key, x.value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scan_request& x) {
  return f(caf::meta::type_name("strata::scan_request"), x.prefix, x.start,
           x.after, x.limit, x.values);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scan_page& x) {
  return f(caf::meta::type_name("strata::scan_page"), x.entries, x.more);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_info& x) {
  return f(caf::meta::type_name("strata::shard_info"), x.shard, x.entries,
           x.map_size, x.map_used, x.commits, x.flushes, x.in_doubt, x.restarts,
           x.path, x.engine, x.capabilities, x.tuning);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, txn_options& x) {
  return f(caf::meta::type_name("strata::txn_options"), x.level, x.timeout_ms,
           x.read_only, x.retries);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, txn_info& x) {
  return f(caf::meta::type_name("strata::txn_info"), x.id, x.state);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, read_mark& x) {
  return f(caf::meta::type_name("strata::read_mark"), x.key, x.seq);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, range_mark& x) {
  return f(caf::meta::type_name("strata::range_mark"), x.lo, x.hi, x.seq);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, txn_part& x) {
  return f(caf::meta::type_name("strata::txn_part"), x.writes, x.reads,
           x.ranges);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_part& x) {
  return f(caf::meta::type_name("strata::shard_part"), x.shard, x.part);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, txn_prepare& x) {
  return f(caf::meta::type_name("strata::txn_prepare"), x.txid, x.part);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, txn_outcome& x) {
  return f(caf::meta::type_name("strata::txn_outcome"), x.txid, x.commit);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_request& x) {
  return f(caf::meta::type_name("strata::query_request"), x.pattern, x.continuation,
           x.limit);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_result& x) {
  return f(caf::meta::type_name("strata::query_result"), x.key, x.value, x.score, x.shard);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_page& x) {
  return f(caf::meta::type_name("strata::query_page"), x.results, x.more, x.continuation);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_query& x) {
  return f(caf::meta::type_name("strata::shard_query"), x.pattern, x.after, x.want);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_hit& x) {
  return f(caf::meta::type_name("strata::shard_hit"), x.key, x.value, x.sort, x.score);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_hits& x) {
  return f(caf::meta::type_name("strata::shard_hits"), x.hits, x.more, x.plan, x.estimated,
           x.examined, x.micros);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_plan& x) {
  return f(caf::meta::type_name("strata::shard_plan"), x.shard, x.plan, x.estimated,
           x.examined, x.returned, x.micros);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, query_plan& x) {
  return f(caf::meta::type_name("strata::query_plan"), x.shards, x.returned, x.micros);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, index_field& x) {
  return f(caf::meta::type_name("strata::index_field"), x.name, x.type, x.descending);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, index_spec& x) {
  return f(caf::meta::type_name("strata::index_spec"), x.name, x.fields, x.unique, x.sparse);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, index_info& x) {
  return f(caf::meta::type_name("strata::index_info"), x.spec, x.state, x.error, x.built,
           x.total, x.entries, x.size, x.hits, x.misses);
}

/// Prints an op_kind in CAF's diagnostics.
inline std::string to_string(op_kind x) {
  switch (x) {
    case op_kind::set: return "set";
    case op_kind::del: return "del";
    case op_kind::clear: return "clear";
  }
  return "invalid";
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, change& x) {
  return f(caf::meta::type_name("strata::change"), x.kind, x.key, x.had_old, x.old_value,
           x.new_value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, change_batch& x) {
  return f(caf::meta::type_name("strata::change_batch"), x.shard, x.seq, x.txid, x.time,
           x.changes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, change_filter_spec& x) {
  return f(caf::meta::type_name("strata::change_filter_spec"), x.pattern, x.regex, x.where);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, change_request& x) {
  return f(caf::meta::type_name("strata::change_request"), x.after, x.limit, x.filter);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, change_page& x) {
  return f(caf::meta::type_name("strata::change_page"), x.batches, x.last, x.more, x.floor);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, storage_event& x) {
  return f(caf::meta::type_name("strata::storage_event"), x.kind, x.key, x.value, x.found);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, subscribe_options& x) {
  return f(caf::meta::type_name("strata::subscribe_options"), x.timeout_ms,
           x.proceed_on_timeout);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, watch_options& x) {
  return f(caf::meta::type_name("strata::watch_options"), x.filter, x.from, x.window,
           x.max_batches);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, watch_info& x) {
  return f(caf::meta::type_name("strata::watch_info"), x.filter, x.position, x.delivered,
           x.in_flight);
}

/// A failed operation (`error` events), or a watch that ended: what failed,
/// on which key, and for a watch the position it had delivered.
struct error_event {
  caf::error error;
  /// The request ("set", "watch", ...).
  std::string operation;
  std::string key;
  /// A watch's resume token: resuming from it loses nothing.
  std::string position;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, error_event& x) {
  return f(caf::meta::type_name("strata::error_event"), x.error, x.operation, x.key,
           x.position);
}

} // namespace strata

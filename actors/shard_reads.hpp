#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "actors/checks.hpp"
#include "backends/aggregate.hpp"
#include "backends/change_log.hpp"
#include "backends/indexes.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_core.hpp"
#include "strata/actors.hpp"

/// The read requests of a shard, answered from its store in this process:
/// written once, here, for every actor that answers them without a hop (the
/// shard, its supervisor, the router's direct reads of local shards, a
/// transaction's reads). Each checks its input the way every other path does
/// (INVALID_KEY …) and turns a storage failure into a strata error, so that
/// the same request gets the same answer whichever actor serves it. The store
/// reads concurrently with its writer: LMDB readers never block it.
namespace strata::shard_reads {

inline caf::expected<maybe_bytes> get(const shard_core& store, const std::string& key) {
  if (auto err = check_key(key))
    return err;
  return guarded([&] { return to_wire(store.get(key)); });
}

inline caf::expected<bool> has(const shard_core& store, const std::string& key) {
  if (auto err = check_key(key))
    return err;
  return guarded([&] { return store.has(key); });
}

inline caf::expected<uint64_t> size(const shard_core& store) {
  return guarded([&] { return store.size(); });
}

inline caf::expected<scan_page> scan(const shard_core& store, const scan_request& req) {
  return guarded([&] { return store.scan(req); });
}

inline caf::expected<std::vector<maybe_bytes>>
get_many(const shard_core& store, const std::vector<std::string>& keys) {
  if (auto err = check_keys(keys))
    return err;
  return guarded([&] { return to_wire(store.get_many(keys)); });
}

/// Runs `f`, turning a bad pattern into QUERY_ERROR and a result too large
/// for one answer into QUOTA_EXCEEDED, besides storage failures.
template <class F>
auto query_guarded(F f) -> caf::expected<decltype(f())> {
  try {
    return guarded(f);
  } catch (const query_error& e) {
    return make_error(errc::query_error, e.what());
  } catch (const result_too_large& e) {
    return make_error(errc::quota_exceeded, e.what());
  } catch (const codec_error& e) {
    return make_error(errc::serialization_failed, e.what());
  }
}

/// The position a shard query starts after, decoded.
inline std::optional<query_position> position_of(const shard_query& req) {
  if (req.after.empty())
    return std::nullopt;
  auto pos = decode_sort(req.after);
  if (pos.size() != 2 || !pos[0].is_array() || !pos[1].is_string())
    throw query_error{"a query position does not decode"};
  return query_position{pos[0].as_array(), pos[1].as_string()};
}

/// Runs a parsed query on the shard's snapshot: with its best index, or, if
/// `may_scan`, by scanning. Nothing if no index helps and it may not scan.
/// `micros` and the plan's estimate are filled in.
inline std::optional<shard_query_result>
run_on(const shard_core& store, const query_pattern& q,
       const std::optional<query_position>& after, uint64_t want, bool may_scan,
       uint64_t& micros) {
  auto start = std::chrono::steady_clock::now();
  std::optional<shard_query_result> r;
  store.with_snapshot([&](const engine_snapshot& snap) {
    if (auto* ix = store.indexes())
      r = ix->run_indexed(snap, q, after, want);
    if (!r && may_scan)
      r = run_query(snap, q, after, want);
  });
  micros = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
  return r;
}

/// A shard's result as it travels.
inline shard_hits hits_to_wire(shard_query_result r, uint64_t micros) {
  shard_hits out;
  out.more = r.more;
  out.plan = std::move(r.stats.plan);
  out.estimated = r.stats.estimated;
  out.examined = r.stats.examined;
  out.micros = micros;
  out.hits.reserve(r.hits.size());
  for (auto& h : r.hits)
    out.hits.push_back({std::move(h.key), std::move(h.value), encode_sort(h.sort), h.score});
  return out;
}

/// The shard's first `want` results of a query after a position.
inline caf::expected<shard_hits> query(const shard_core& store, const shard_query& req) {
  return query_guarded([&] {
    auto q = parse_query(req.pattern);
    uint64_t micros = 0;
    auto r = run_on(store, q, position_of(req), req.want, true, micros);
    return hits_to_wire(std::move(*r), micros);
  });
}

/// How many of the shard's documents match `pattern`.
inline caf::expected<uint64_t> count(const shard_core& store, const std::string& pattern) {
  return query_guarded([&] {
    auto q = parse_query(pattern);
    uint64_t n = 0;
    store.with_snapshot([&](const engine_snapshot& snap) {
      auto* ix = store.indexes();
      n = ix ? ix->count(snap, q) : count_matches(snap, q);
    });
    return n;
  });
}

/// The shard's half of an aggregation pipeline, encoded.
inline caf::expected<bytes> partial(const shard_core& store, const std::string& pipeline) {
  return query_guarded([&] {
    auto p = parse_pipeline(pipeline);
    document result;
    store.with_snapshot([&](const engine_snapshot& snap) { result = aggregate_partial(snap, p); });
    return encode_document(result);
  });
}

/// The shard's indexes with their figures.
inline caf::expected<std::vector<index_info>> indexes(const shard_core& store) {
  return guarded([&] {
    auto* ix = store.indexes();
    return ix ? ix->list() : std::vector<index_info>{};
  });
}

/// What a transactional read saw: the value (or page) and the shard's
/// sequence number it reflects. `blocked`: a committing transaction is about
/// to write what it asked for, so nothing was read; the shard's writer
/// answers it after that transaction's outcome.
template <class T>
struct versioned {
  T value;
  uint64_t seq = 0;
  bool blocked = false;
};

inline caf::expected<versioned<maybe_bytes>> read(const shard_core& store,
                                                  const std::string& key) {
  // The store's own reads: transactions check their keys, and claims of
  // unique indexes are reserved keys.
  if (auto err = check_key(key, true))
    return err;
  auto r = guarded([&] { return store.read(key); });
  if (!r)
    return std::move(r.error());
  return versioned<maybe_bytes>{to_wire(std::move(r->value)), r->seq, r->blocked};
}

inline caf::expected<versioned<scan_page>> read(const shard_core& store,
                                                const scan_request& req) {
  auto r = guarded([&] { return store.read_range(req); });
  if (!r)
    return std::move(r.error());
  return versioned<scan_page>{std::move(r->page), r->seq, r->blocked};
}

/// The commits after a position in the shard's change log that pass the
/// request's filter. INVALID_VALUE if the shard keeps no log, QUERY_ERROR for
/// a bad filter, CONSISTENCY_VIOLATION for a position the log no longer
/// holds.
inline caf::expected<change_page> changes(const shard_core& store, const change_request& req) {
  auto* log = store.changes();
  if (log == nullptr)
    return make_error(errc::invalid_value,
                      "shard " + std::to_string(store.options().shard)
                        + " keeps no change log (change_log.enabled is off)");
  return query_guarded([&] {
    change_filter filter{req.filter};
    change_page page;
    store.with_snapshot([&](const engine_snapshot& s) {
      page = log->read(s, req, filter, store.options().shard);
    });
    return page;
  });
}

} // namespace strata::shard_reads

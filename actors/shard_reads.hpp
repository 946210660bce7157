#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "actors/checks.hpp"
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
  if (auto err = check_key(key))
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

} // namespace strata::shard_reads

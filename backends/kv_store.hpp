#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/lmdb.hpp"
#include "strata/errc.hpp"
#include "strata/messages/kv.hpp"

namespace strata {

/// Returns why `key` cannot be stored, or an empty string if it can.
std::string key_problem(std::string_view key);

/// Returns why a value of `size` bytes cannot be stored under a maximum of
/// `max_size`, or an empty string if it can.
std::string value_problem(size_t size, uint64_t max_size);

/// Where and how a shard keeps its data.
struct kv_store_options {
  /// Environment directory; created if missing.
  std::string dir;
  /// This shard's index and the store's shard count; both are recorded on
  /// first open and checked on every later one.
  uint32_t shard = 0;
  uint32_t shard_count = 1;
  /// The store this shard belongs to; recorded and checked like the index.
  std::string store_id = "strata";
  /// LMDB map size in bytes: the most this shard can hold. Raising it on a
  /// later open grows the shard; lowering it below the data is ignored.
  uint64_t map_size = 1ull << 30;
  /// Skip the sync at commit (caches and tests only).
  bool no_sync = false;
};

/// Outcome of one write request within a group commit.
struct write_outcome {
  /// `none` if the request's operations were applied.
  errc code = errc::none;
  /// Why not, for people.
  std::string message;
  /// How many delete operations found their key (clear counts every entry).
  uint64_t deleted = 0;
};

/// Write requests committed together: each one is a list of operations that
/// is applied all or nothing.
using write_group = std::vector<const std::vector<operation>*>;

/// One shard's key-value data in one LMDB environment. No actors here.
///
/// Thread safety: the read functions may run concurrently from any threads;
/// `write` must be called by one thread at a time (LMDB has a single writer).
/// Errors throw `storage_error`.
class kv_store {
public:
  /// Opens or creates the shard. Throws CONSISTENCY_VIOLATION if the directory
  /// belongs to another store, shard index or shard count.
  explicit kv_store(kv_store_options opts);
  kv_store(const kv_store&) = delete;
  kv_store& operator=(const kv_store&) = delete;
  ~kv_store();

  /// The value of `key`, if any.
  std::optional<bytes> get(std::string_view key) const;

  /// Whether `key` exists.
  bool has(std::string_view key) const;

  /// Values of `keys` in order, all read from one snapshot.
  std::vector<std::optional<bytes>> get_many(const std::vector<std::string>& keys) const;

  /// One page of keys (and values) in ascending order, from one snapshot.
  scan_page scan(const scan_request& req) const;

  /// Number of entries.
  uint64_t size() const;

  /// Figures for operators.
  shard_info info() const;

  /// Applies each request of `group` in order within one LMDB write
  /// transaction and one sync (group commit), then returns one outcome per
  /// request. If the combined transaction fails, every request is retried in
  /// a transaction of its own, so a failure (e.g. STORAGE_FULL) only fails the
  /// request that caused it. Deletes keep working on a full map: LMDB needs
  /// fresh pages to delete (copy-on-write), so a delete-only request that
  /// hits MDB_MAP_FULL gets a little temporary headroom.
  std::vector<write_outcome> write(const write_group& group);

  const kv_store_options& options() const noexcept {
    return opts_;
  }

private:
  /// Read transactions are reset and reused: renewing one is much cheaper
  /// than beginning a new one.
  class reader;

  lmdb::txn acquire_reader() const;
  void release_reader(lmdb::txn t) const;
  void apply(lmdb::txn& t, const std::vector<operation>& ops, write_outcome& out);
  void check_meta(lmdb::txn& t, MDB_dbi meta);
  write_outcome write_alone(const std::vector<operation>& ops);
  void resize_map(uint64_t size);

  kv_store_options opts_;
  lmdb::env env_;
  MDB_dbi data_ = 0;
  std::atomic<uint64_t> commits_{0};
  /// Readers hold it shared while they look at the map; resizing the map
  /// (which remaps it) holds it exclusively.
  mutable std::shared_mutex map_mtx_;
  mutable std::mutex readers_mtx_;
  mutable std::vector<lmdb::txn> readers_;
};

} // namespace strata

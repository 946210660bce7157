#pragma once

#include <cstdint>
#include <string>
#include <vector>

/// Data types of the key-value layer (spec level 1: Storage and BatchStorage).
/// Plain values without CAF, shared by the storage backends and the wire;
/// strata/messages/wire.hpp makes them serializable. Everything here is a
/// value, because any shard may live in another process.
namespace strata {

/// A stored value as it travels: opaque bytes. The typed client puts a small
/// header and a self-describing document into them (see strata/codec.hpp).
using bytes = std::vector<uint8_t>;

/// Limits that hold for every store.
namespace limits {
/// Longest key LMDB accepts (`mdb_env_get_maxkeysize`).
constexpr size_t max_key_size = 511;
/// Most entries a scan page holds.
constexpr uint32_t max_page_entries = 10000;
/// Entries in a scan page when the request leaves the limit at 0.
constexpr uint32_t default_page_entries = 1000;
/// A page stops growing once its keys and values exceed this many bytes.
constexpr size_t max_page_bytes = 4 * 1024 * 1024;
} // namespace limits

/// A key with its value.
struct entry {
  std::string key;
  bytes value;
};

/// What one operation of a batch does.
enum class op_kind : uint8_t {
  set = 0,
  del = 1,
  clear = 2,
};

/// One operation of `batch` (the spec's `Operation<T>`).
struct operation {
  op_kind kind = op_kind::set;
  std::string key;  // empty for clear
  bytes value;      // empty unless set

  static operation set(std::string k, bytes v) {
    return {op_kind::set, std::move(k), std::move(v)};
  }
  static operation del(std::string k) {
    return {op_kind::del, std::move(k), {}};
  }
  static operation clear() {
    return {op_kind::clear, {}, {}};
  }
};

/// Asks for one page of an ordered scan. Keys come in ascending byte order.
struct scan_request {
  /// Only keys starting with this prefix (empty: all keys).
  std::string prefix;
  /// First key to consider, inclusive (empty: the start of the prefix).
  std::string start;
  /// Continuation from a previous page: only keys strictly after it.
  std::string after;
  /// Most entries in the page; 0 picks `limits::default_page_entries`, and
  /// values above `limits::max_page_entries` are reduced to it.
  uint32_t limit = 0;
  /// Whether the page carries values; keys-only scans leave them empty.
  bool values = true;
};

/// One page of an ordered scan.
struct scan_page {
  /// The entries, ascending by key.
  std::vector<entry> entries;
  /// True if more keys may follow: ask again with `after = entries.back().key`.
  bool more = false;
};

/// Figures of one shard, for operators.
struct shard_info {
  uint32_t shard = 0;
  uint64_t entries = 0;
  uint64_t map_size = 0;
  uint64_t map_used = 0;
  uint64_t commits = 0;
  uint64_t flushes = 0;
  /// Prepared transactions waiting for their outcome.
  uint64_t in_doubt = 0;
  /// How often the shard was restarted after a failure since the store
  /// opened.
  uint64_t restarts = 0;
  std::string path;
  /// The storage engine: "lmdb", "memory", "sqlite" or "json".
  std::string engine;
  /// What the engine can do (`engine_capability_names`): "ordered_scans",
  /// "concurrent_readers", "durable", "transactions", "before_images",
  /// "files".
  std::vector<std::string> capabilities;
  /// The engine's tuning as it stands (`name=value`): what the store's
  /// performance hints and engine settings amount to on this shard.
  std::vector<std::string> tuning;
};

} // namespace strata

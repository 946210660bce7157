#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/engine_settings.hpp"
#include "strata/errc.hpp"
#include "strata/messages/kv.hpp"

namespace strata {

/// The separate ordered key spaces of one shard. Each engine keeps them apart
/// (LMDB: one named database each); a batch may touch several at once.
enum class keyspace : uint8_t {
  /// The users' keys and values.
  data = 0,
  /// Prepared transactions by id (8 bytes, big endian) -> their part.
  prepared = 1,
  /// One-phase commits by transaction id -> "".
  outcomes = 2,
  /// The shard core's settings and counters (identity, floors).
  meta = 3,
  /// Secondary index entries.
  index = 4,
  /// The change log.
  changes = 5,
};

inline constexpr size_t keyspace_count = 6;

/// The name of `ks` ("data", "prepared", ...), as engines store it.
const char* keyspace_name(keyspace ks);

/// Bytes as the view engines read and write.
inline std::string_view view_of(const bytes& x) {
  return {reinterpret_cast<const char*>(x.data()), x.size()};
}

/// A view an engine handed out, copied into owned bytes.
inline bytes bytes_of(std::string_view x) {
  auto first = reinterpret_cast<const uint8_t*>(x.data());
  return bytes(first, first + x.size());
}

/// A decimal number kept under `meta` or an engine's own keys;
/// CONSISTENCY_VIOLATION naming `dir` if it is garbled.
uint64_t parse_stored_number(std::string_view text, const std::string& dir);

/// A transaction id as a key of the `prepared` and `outcomes` spaces: 8 bytes,
/// big endian, so that keys sort like ids.
std::string txid_key(uint64_t txid);

/// The id of such a key; false if it is not 8 bytes.
bool txid_of(std::string_view key, uint64_t& txid);

/// What an engine can do, so that the shard core and the actors ask instead
/// of assuming.
struct engine_capabilities {
  /// Scans return keys in ascending byte order.
  bool ordered_scans = true;
  /// Reads may run on any thread while the writer writes (the router then
  /// reads a local shard directly instead of asking its actor).
  bool concurrent_readers = true;
  /// An applied group survives a crash of the process (and, unless synced
  /// writes are switched off, of the machine).
  bool durable = true;
  /// A batch is applied all or nothing, and a group of batches is made
  /// durable together (group commit); the core builds transactions on that.
  bool transactions = true;
  /// `apply` can return the value each data write replaced.
  bool before_images = true;
  /// The engine keeps a copy of the data on disk that a file copy can back up
  /// while it is closed.
  bool files = true;
};

/// The names of what `caps` has, in declaration order ("ordered_scans",
/// "concurrent_readers", "durable", "transactions", "before_images", "files").
std::vector<std::string> capability_names(const engine_capabilities& caps);

/// Which engine a shard runs on.
enum class engine_kind : uint8_t {
  /// Write-ahead log + memtables + LMDB: durable, the default.
  lmdb,
  /// Ordered maps in memory; optionally saved to a file on a clean close.
  memory,
  /// One SQLite database per shard.
  sqlite,
  /// One JSON document per shard, rewritten by each group.
  json,
  /// One named graph per shard on a SPARQL 1.1 server.
  graph,
};

/// "lmdb", "memory", "sqlite", "json" or "graph".
const char* engine_name(engine_kind kind);

/// Parses an engine name; false if it names none.
bool parse_engine(std::string_view name, engine_kind& kind);

/// How an engine keeps a shard's key spaces.
struct engine_options {
  /// The shard's directory; created if missing.
  std::string dir;
  engine_kind engine = engine_kind::lmdb;
  /// The most the shard can hold, in bytes (LMDB: the map size; memory: the
  /// keys and values it holds). Raising it on a later open grows the shard.
  uint64_t map_size = 1ull << 30;
  /// Skip the syncs (caches and tests only): writes survive a crash of the
  /// process, not of the machine.
  bool no_sync = false;
  /// lmdb: the memtable is written to LMDB once it holds this many entries
  /// or bytes (and when the shard closes).
  size_t flush_entries = 16384;
  size_t flush_bytes = 16u << 20;
  /// lmdb: a full memtable is written to LMDB by a thread of the engine's own
  /// while writes go on into a fresh one. False: the writer flushes it
  /// itself, and writes wait for that.
  bool background_flush = true;
  /// memory: save everything to `dir`/memory.snapshot on a clean close and
  /// load it on open. Without it the data lives as long as the process.
  bool snapshot = false;

  /// sqlite: the database and its tuning.
  sqlite_settings sqlite;
  /// json: the file and how it is written.
  json_settings json;
  /// graph: the SPARQL server and the shard's graph.
  graph_settings graph;
  /// What the store should expect; each engine uses what it can.
  performance_hints hints;
};

/// A callable reference without allocation, for visitors that run during the
/// call only.
template <class Signature>
class function_ref;

template <class R, class... Ts>
class function_ref<R(Ts...)> {
public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref>>>
  function_ref(F&& f) noexcept
    : obj_(const_cast<void*>(static_cast<const void*>(&f))),
      call_([](void* obj, Ts... xs) -> R {
        return (*static_cast<std::remove_reference_t<F>*>(obj))(std::forward<Ts>(xs)...);
      }) {
    // nop
  }

  R operator()(Ts... xs) const {
    return call_(obj_, std::forward<Ts>(xs)...);
  }

private:
  void* obj_;
  R (*call_)(void*, Ts...);
};

/// A consistent view of every key space, as of one sequence number. Valid
/// only inside `engine::read`; the views it hands out only until then. Hold
/// it briefly: the engine's writer may wait for it.
class engine_snapshot {
public:
  virtual ~engine_snapshot() = default;

  /// The last sequence number applied in this view.
  virtual uint64_t seq() const = 0;

  /// Looks up `key`; false if it is not there.
  virtual bool get(keyspace ks, std::string_view key, std::string_view& value) const = 0;

  /// Visits the entries at or after `from` (after it, if `skip_from`) in
  /// ascending key order until `f` returns false.
  virtual void scan(keyspace ks, std::string_view from, bool skip_from,
                    function_ref<bool(std::string_view, std::string_view)> f) const = 0;

  /// Number of entries in `ks`.
  virtual uint64_t count(keyspace ks) const = 0;
};

/// The operations of one batch on one key space (not owned).
struct keyspace_ops {
  keyspace space = keyspace::data;
  const std::vector<operation>* ops = nullptr;
};

/// Writes applied all or nothing under one sequence number.
struct engine_batch {
  std::vector<keyspace_ops> parts;
  /// Return the value each data-space set or delete replaced.
  bool before_images = false;
};

/// What applying one batch did.
struct batch_effect {
  uint64_t seq = 0;
  /// Data-space deletes that found their key (a clear counts every entry).
  uint64_t deleted = 0;
  /// With `before_images`: per data-space set or delete, in order, the value
  /// it replaced (none: the key did not exist).
  std::vector<std::optional<bytes>> before;
};

/// What applying a group did.
struct apply_result {
  /// `none` if every batch was applied.
  errc code = errc::none;
  std::string message;
  /// The group reached the log (with `sync`: durably), so a failure after
  /// that point is repaired by reopening, which applies it. False: nothing of
  /// it happened.
  bool logged = false;
  /// One per batch, if applied.
  std::vector<batch_effect> effects;
};

/// Test builds: the fail point "store.apply", which every engine passes
/// before a batch that writes data, throws TRANSACTION_ABORTED as a failed
/// read or write of the engine would. Nothing in other builds.
void apply_fault_point(const engine_batch& batch);

/// fsync of `path` opened with `flags` (O_RDONLY, or with O_DIRECTORY for a
/// directory); TRANSACTION_ABORTED naming it if that fails.
void sync_path(const std::string& path, int flags);

/// Figures for operators.
struct engine_info {
  uint64_t map_size = 0;
  uint64_t map_used = 0;
  uint64_t flushes = 0;
  /// The engine's tuning as it stands, read back from the engine where it
  /// can be (`name=value`), e.g. what the performance hints changed.
  std::vector<std::string> tuning;
};

/// Keeps a shard's key spaces: reads from consistent snapshots, a grouped
/// apply that numbers each batch, and metadata. No transactions, versions or
/// conflicts here: those live in the shard core above, the same for every
/// engine.
///
/// Thread safety: `read` may run concurrently from any threads if
/// `capabilities().concurrent_readers`; everything else is called by one
/// thread at a time (the shard's writer). Errors throw `storage_error`.
class engine {
public:
  virtual ~engine() = default;

  virtual engine_kind kind() const = 0;

  virtual const engine_capabilities& capabilities() const = 0;

  /// Calls `f` with a consistent snapshot of every key space.
  virtual void read(function_ref<void(const engine_snapshot&)> f) const = 0;

  /// The number the next batch gets. Numbers only grow, also across
  /// restarts; one that a crash may have lost is never handed out again.
  virtual uint64_t next_seq() const = 0;

  /// Applies `group` in order, each batch all or nothing under the next
  /// sequence number, with one log append; `sync` makes it durable before
  /// returning (unless the engine is not durable). On failure before the log
  /// nothing happened; after it the engine refuses writes until reopened.
  virtual apply_result apply(const std::vector<engine_batch>& group, bool sync) = 0;

  /// Makes everything applied so far durable (after groups applied without
  /// `sync`).
  virtual void sync() = 0;

  /// Whether data-space sets are refused for lack of room (STORAGE_FULL);
  /// deletes are still applied and make room.
  virtual bool full() const = 0;

  /// Why the engine refuses writes until reopened; empty while healthy.
  virtual const std::string& broken() const = 0;

  /// Moves everything to the engine's long-term form (LMDB: flushes the
  /// memtables and empties the logs) on the calling thread. False if the
  /// engine is full.
  virtual bool flush() = 0;

  /// Waits until no background work runs (tests, tools).
  virtual void wait_for_flush() = 0;

  virtual engine_info info() const = 0;
};

} // namespace strata

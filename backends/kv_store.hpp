#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/conflicts.hpp"
#include "backends/lmdb.hpp"
#include "backends/wal.hpp"
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
  /// Skip the syncs (caches and tests only): writes survive a crash of the
  /// process, not of the machine.
  bool no_sync = false;
  /// The memtable is written to LMDB once it holds this many entries or
  /// bytes (and when the shard closes).
  size_t flush_entries = 16384;
  size_t flush_bytes = 16u << 20;
};

/// What a shard knows about a transaction's one-phase commit.
enum class commit_status : uint8_t {
  /// It was applied.
  committed,
  /// It was not, and now never will be: a commit of that id arriving later
  /// is refused.
  not_committed,
  /// Too long ago to tell: the shard no longer remembers ids that low.
  forgotten,
};

/// Outcome of one write request within a group commit.
struct write_outcome {
  /// `none` if the request's operations were applied.
  errc code = errc::none;
  /// Why not, for people.
  std::string message;
  /// How many delete operations found their key (clear counts every entry).
  uint64_t deleted = 0;
  /// A plain write that was not applied because a prepared transaction is
  /// about to write one of its keys: retry it after the next outcome.
  bool blocked = false;
  /// A status request: the answer.
  commit_status status = commit_status::not_committed;
};

/// One request of a group commit.
struct write_request {
  enum class type : uint8_t {
    /// `ops`, all or nothing. Blocked while a prepared transaction is about
    /// to write one of its keys.
    plain,
    /// One-phase commit of a transaction that touches only this shard:
    /// validate `part`, then apply its writes (VERSION_CONFLICT if invalid).
    /// With a `txid`, the shard remembers that it committed (`status`); a
    /// second commit of the same id changes nothing and succeeds.
    commit,
    /// Phase one of two: validate `part` of transaction `txid`, log it and
    /// lock it (VERSION_CONFLICT if invalid). Success is a yes vote.
    prepare,
    /// Phase two: apply (`commit`) or drop prepared transaction `txid`.
    /// Unknown ids succeed: the outcome was applied already. Outcomes are
    /// logged without a sync of their own (the coordinator's decision log
    /// holds commits durably until a barrier); a later sync covers them.
    resolve,
    /// Makes everything logged so far durable (after unsynced outcomes).
    barrier,
    /// Whether the one-phase commit of `txid` was applied
    /// (`write_outcome::status`). Answered in order with the group's
    /// commits, and an id not seen yet is fenced: its commit, should it
    /// still arrive, is refused. So the answer stays true.
    status,
  };
  type kind = type::plain;
  const std::vector<operation>* ops = nullptr;
  const txn_part* part = nullptr;
  uint64_t txid = 0;
  bool commit = false;

  static write_request plain_ops(const std::vector<operation>& x) {
    return {type::plain, &x, nullptr, 0, false};
  }
};

/// A read inside a transaction.
struct txn_read {
  /// The value, if the key exists.
  std::optional<bytes> value;
  /// The shard's sequence number the read saw (for validation).
  uint64_t seq = 0;
  /// A prepared transaction is about to write the key: nothing was read;
  /// ask again after its outcome.
  bool blocked = false;
};

/// A scan page read inside a transaction; see txn_read.
struct txn_scan {
  scan_page page;
  uint64_t seq = 0;
  bool blocked = false;
};

/// Write requests committed together: each one is a list of operations that
/// is applied all or nothing.
using write_group = std::vector<const std::vector<operation>*>;

/// One shard's key-value data: a write-ahead log, a memtable and an LMDB
/// environment. No actors here.
///
/// ```
///  write(group) ──▶ WAL append + one fdatasync ──▶ memtable ──▶ outcomes
///                                                     │ (full, or on close)
///                                     flush: one LMDB transaction, synced
///  reads ──▶ memtable, then an LMDB read transaction
/// ```
///
/// A write is durable once its WAL record is synced, so a group of writes
/// costs one sequential sync no matter how many random pages it touches.
/// The memtable holds the newest state of each key written since the last
/// flush (a value, or a tombstone; a clear hides all of LMDB); LMDB catches
/// up in large, durable batches that also record the last sequence number
/// they contain. On open, WAL records after that number are replayed.
///
/// A full map surfaces when a flush does not fit: the shard then refuses
/// writes that store values (STORAGE_FULL), keeps serving reads from the
/// memtable and LMDB, and accepts deletes, flushing them first (with a little
/// temporary headroom, as LMDB's copy-on-write needs fresh pages to free old
/// ones) so that space is freed and writes resume.
///
/// Thread safety: the read functions may run concurrently from any threads;
/// `write` and `flush` must be called by one thread at a time (the shard's
/// writer). Errors throw `storage_error`.
class kv_store {
public:
  /// Opens or creates the shard and replays its WAL. Throws
  /// CONSISTENCY_VIOLATION if the directory belongs to another store, shard
  /// index or shard count.
  explicit kv_store(kv_store_options opts);
  kv_store(const kv_store&) = delete;
  kv_store& operator=(const kv_store&) = delete;
  /// Flushes the memtable, so that the next open has nothing to replay.
  ~kv_store();

  /// The value of `key`, if any.
  std::optional<bytes> get(std::string_view key) const;

  /// Whether `key` exists.
  bool has(std::string_view key) const;

  /// Values of `keys` in order, all read from one snapshot.
  std::vector<std::optional<bytes>> get_many(const std::vector<std::string>& keys) const;

  /// Looks up `keys[i]` for each i in `which`, all from one snapshot, and
  /// calls `found(i, value)` for each key that exists; `value` is valid only
  /// during the call. Saves copying keys and results for batched reads.
  void read_each(const std::vector<std::string>& keys,
                 const std::vector<uint32_t>& which,
                 const std::function<void(uint32_t, std::string_view)>& found) const;

  /// One page of keys (and values) in ascending order, from one snapshot.
  scan_page scan(const scan_request& req) const;

  /// Number of entries.
  uint64_t size() const;

  /// Reads `key` for a transaction: the value and the sequence number it
  /// reflects, unless a prepared transaction is about to write the key.
  txn_read read(std::string_view key) const;

  /// Scans for a transaction, like `read` for a key range.
  txn_scan read_range(const scan_request& req) const;

  /// Transactions prepared on this shard and waiting for their outcome
  /// (after a restart: in doubt until the coordinator answers).
  std::vector<uint64_t> in_doubt() const;

  /// Figures for operators.
  shard_info info() const;

  /// One-phase commits are remembered by transaction id for at least this
  /// many of the highest ids (and across restarts), for `status`.
  static constexpr size_t remembered_commits = size_t{1} << 16;

  /// Makes every request of `group` durable with one WAL append and one sync
  /// (group commit), applies them in order, and returns one outcome per
  /// request. While the shard is full, requests that store values fail with
  /// STORAGE_FULL and the others proceed. If the WAL cannot be written, the
  /// group fails (TRANSACTION_ABORTED, or STORAGE_FULL for a full disk) and
  /// the log is cut back; after a failed sync the shard refuses writes until
  /// it is reopened. A group that is logged but cannot be applied (an LMDB
  /// read error) fails with CONSISTENCY_VIOLATION: it is durable, a reopen
  /// applies it, and until then the shard refuses writes.
  std::vector<write_outcome> write(const write_group& group);

  /// Like `write(group)` for requests of every kind: plain writes,
  /// transaction commits, prepares and outcomes share one append and sync.
  /// Each request sees the effects of those before it. Records that need no
  /// durability (a read-only prepare or its outcome) are not logged.
  std::vector<write_outcome> write(const std::vector<write_request>& group);

  /// Writes the memtable to LMDB in durable transactions and empties the WAL.
  /// Returns false (and marks the shard full) if the map is full. Throws
  /// CONSISTENCY_VIOLATION once the shard refuses writes (the log is kept).
  bool flush();

  const kv_store_options& options() const noexcept {
    return opts_;
  }

private:
  /// Newest state of a key since the last flush.
  struct mem_entry {
    std::optional<bytes> value; // nullopt: deleted
    bool in_lmdb = false;        // the key exists in LMDB (unless cleared)
  };

  using memtable = std::map<std::string, mem_entry, std::less<>>;

  class reader;

  lmdb::txn acquire_reader(uint64_t gen) const;
  void release_reader(lmdb::txn t, uint64_t gen) const;
  void unpin_readers();
  void check_meta(lmdb::txn& t);
  void replay();
  void load_prepared(lmdb::txn& t);
  void load_outcomes(lmdb::txn& t);
  void remember(uint64_t txid, bool committed);
  commit_status status_of(uint64_t txid);
  void apply(const std::vector<operation>& ops, write_outcome& out, uint64_t seq);
  scan_page scan_with(const lmdb::txn& t, const scan_request& req) const;
  bool commit_batch(bool tombstones);
  bool mature_free_pages();
  /// Runs a write transaction; false if the map is full.
  bool fits(const std::function<void()>& txn);
  /// Like `fits`, but retries once with temporary headroom in the map.
  bool with_headroom(const std::function<void()>& txn);
  uint64_t count_locked() const;
  void resize_map(uint64_t size);

  kv_store_options opts_;
  lmdb::env env_;
  MDB_dbi data_ = 0;
  MDB_dbi meta_ = 0;
  MDB_dbi prepared_db_ = 0;
  MDB_dbi outcomes_db_ = 0;
  std::unique_ptr<wal> log_;

  /// Guards the memtable and its counters (the writer mutates them under an
  /// exclusive lock; readers hold it shared for a whole read, so that a key
  /// is either still in the memtable or already in their LMDB snapshot) and
  /// the map, which a resize remaps.
  mutable std::shared_mutex mtx_;
  memtable mem_;
  bool cleared_ = false;      // a clear since the last flush hides LMDB
  uint64_t lmdb_entries_ = 0; // entries in LMDB
  uint64_t live_ = 0;         // memtable entries with a value
  uint64_t shadowed_ = 0;     // memtable entries whose key is in LMDB
  size_t mem_bytes_ = 0;

  /// Locks and recent versions for validating transactions; readers check
  /// its locks under the shared lock.
  conflicts cc_;
  /// Prepared transactions waiting for their outcome, with what they will
  /// write. `logged`: the prepare record is durable (it has writes).
  struct prepared_txn {
    txn_part part;
    bool logged = false;
  };
  std::map<uint64_t, prepared_txn> prepared_;
  /// `prepared_` changed since LMDB last stored it.
  bool prepared_dirty_ = false;

  /// One-phase commits by transaction id (writer thread only): committed
  /// (true), or fenced by a status question that came first (false). The
  /// highest `remembered_commits` ids stay; `outcomes_floor_` is the highest
  /// id let go, at or below which an unknown id may be a forgotten commit.
  /// Transaction ids grow over time (the coordinator's counter), so what
  /// goes first is the oldest. LMDB's `outcomes` database keeps the
  /// committed ones across restarts; the lists say what it lacks.
  std::map<uint64_t, bool> outcomes_;
  uint64_t outcomes_floor_ = 0;
  std::vector<uint64_t> outcomes_added_;
  std::vector<uint64_t> outcomes_dropped_;

  uint64_t next_seq_ = 1;
  uint64_t applied_seq_ = 0; // last sequence number in the memtable
  /// Numbers up to this one were handed out in an earlier run (meta
  /// "seq_floor"); each open starts `seq_gap` above it and its log.
  uint64_t seq_floor_ = 0;
  static constexpr uint64_t seq_gap = uint64_t{1} << 32;
  /// The epoch of the log's records (meta "wal_epoch"; a flush that empties
  /// the log records the next one with its data).
  uint64_t wal_epoch_ = 0;
  bool full_ = false;
  /// Why the shard refuses writes until reopened (a failed WAL sync, or a
  /// logged write that could not be applied); empty while healthy.
  std::string broken_;
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> flushes_{0};

  /// Read transactions for reuse, each with the LMDB generation of its
  /// snapshot (0: reset). LMDB changes only at flushes, so between flushes a
  /// snapshot stays current and need not be renewed.
  struct pooled_reader {
    lmdb::txn txn;
    uint64_t gen = 0;
  };

  std::atomic<uint64_t> lmdb_gen_{1};
  mutable std::mutex readers_mtx_;
  mutable std::vector<pooled_reader> readers_;
};

} // namespace strata

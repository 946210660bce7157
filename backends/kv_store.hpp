#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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
  /// A full memtable is written to LMDB by a thread of the store's own while
  /// writes go on into a fresh one. False: the writer flushes it itself,
  /// and writes wait for that (one memtable in memory, the flush's time in
  /// the tail latency).
  bool background_flush = true;
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

/// One shard's key-value data: a write-ahead log, memtables and an LMDB
/// environment. No actors here.
///
/// ```
///  write(group) ──▶ log append + one fdatasync ──▶ memtable ──▶ outcomes
///                                                     │ full: becomes the
///                                                     ▼ immutable memtable
///            flusher thread: LMDB transactions, synced; then its log is emptied
///  reads ──▶ memtable, immutable memtable, then an LMDB read transaction
/// ```
///
/// A write is durable once its log record is synced, so a group of writes
/// costs one sequential sync no matter how many random pages it touches.
/// The memtable holds the newest state of each key written since it began
/// (a value, or a tombstone; a clear hides everything older). When it
/// reaches `flush_entries` or `flush_bytes` (or its log 4× that), it becomes
/// the immutable memtable, which a thread of the store's own writes to LMDB
/// in large, durable transactions that also record the last sequence number
/// they contain, while writes go on into a fresh memtable and the other of
/// the two logs. So a flush never holds up writes, unless the next memtable
/// fills up to twice the thresholds before it ends: then the writer waits
/// for it (back-pressure; one flush runs at a time). On open, log records
/// after the recorded number are replayed.
///
/// A full map surfaces when a flush does not fit: the shard then refuses
/// writes that store values (STORAGE_FULL), keeps serving reads from the
/// memtables and LMDB, and accepts deletes, flushing everything with them,
/// deletes first (with a little temporary headroom, as LMDB's copy-on-write
/// needs fresh pages to free old ones), so that space is freed and writes
/// resume.
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

  /// Writes everything the memtables hold to LMDB in durable transactions
  /// and empties both logs, on the calling thread (the writer's), after
  /// waiting for a background flush. Returns false (and marks the shard
  /// full) if the map is full. Throws CONSISTENCY_VIOLATION once the shard
  /// refuses writes (the logs are kept).
  bool flush();

  /// Waits until no background flush runs (tests, tools).
  void wait_for_flush();

  const kv_store_options& options() const noexcept {
    return opts_;
  }

private:
  /// Newest state of a key in one memtable.
  struct mem_entry {
    std::optional<bytes> value; // nullopt: deleted
    bool below = false;         // the key was live in the layers below
  };

  /// The writes of a stretch of the log: the newest state of each key they
  /// touched, and whether one of them cleared everything older.
  struct memtable {
    std::map<std::string, mem_entry, std::less<>> entries;
    bool cleared = false; // hides every layer below
    uint64_t live = 0;    // entries with a value
    uint64_t shadowed = 0; // entries whose key is live below
    size_t bytes = 0;
    bool empty() const noexcept {
      return entries.empty() && !cleared;
    }
  };

  /// What one flush writes to LMDB, as of the last record it covers.
  struct flush_job {
    /// The last sequence number in the memtable it writes (`imm_`).
    uint64_t applied = 0;
    /// Prepared transactions (logged ones) and one-phase commit ids as of
    /// `applied`.
    std::map<uint64_t, txn_part> prepared;
    std::vector<uint64_t> outcomes_added;
    std::vector<uint64_t> outcomes_dropped;
    uint64_t outcomes_floor = 0;
    /// The logs whose every record it covers: emptied after it, each with
    /// a new epoch recorded with the data.
    std::vector<int> logs;
    std::vector<uint64_t> epochs;
    /// Run by the flusher thread, while writes go on.
    bool background = false;
  };

  /// What a key looks like through the layers (memtable, the memtable
  /// being flushed, an LMDB snapshot): a value, or not there.
  struct hit {
    bool live = false;
    std::string_view data;
  };

  class reader;

  lmdb::txn acquire_reader(uint64_t gen) const;
  void release_reader(lmdb::txn t, uint64_t gen) const;
  void unpin_readers();
  hit find(std::string_view key, const lmdb::txn& t) const;
  void check_meta(lmdb::txn& t);
  void replay();
  void load_prepared(lmdb::txn& t);
  void load_outcomes(lmdb::txn& t);
  void remember(uint64_t txid, bool committed);
  commit_status status_of(uint64_t txid);
  void apply(const std::vector<operation>& ops, write_outcome& out, uint64_t seq);
  scan_page scan_with(const lmdb::txn& t, const scan_request& req) const;
  uint64_t count_locked() const;
  flush_job take_job(std::vector<int> logs);
  void give_back(flush_job& job);
  static void recount(memtable& m);
  void rotate();
  void after_write();
  void flusher_loop();
  bool run_job(flush_job& job);
  bool commit_batch(flush_job& job, bool tombstones);
  bool mature_free_pages();
  /// Runs a write transaction; false if the map is full.
  bool fits(const std::function<void()>& txn);
  /// Like `fits`, but retries once with temporary headroom in the map.
  bool with_headroom(const std::function<void()>& txn);
  void resize_map(uint64_t size);
  wal& active_log() {
    return *logs_[active_];
  }

  kv_store_options opts_;
  lmdb::env env_;
  MDB_dbi data_ = 0;
  MDB_dbi meta_ = 0;
  MDB_dbi prepared_db_ = 0;
  MDB_dbi outcomes_db_ = 0;

  /// Two write-ahead logs (`wal.log`, `wal.1.log`): new records go to the
  /// active one; the other holds the records of the memtable being flushed,
  /// and is emptied once that flush is in LMDB (LevelDB's log per
  /// memtable). Each has its epoch (meta `wal_epoch`, `wal_epoch.1`).
  std::unique_ptr<wal> logs_[2];
  uint64_t log_epoch_[2] = {0, 0};
  int active_ = 0;

  /// Guards the memtables and their counters (the writer and the flusher
  /// change them under the exclusive lock; readers hold it shared for a
  /// whole read, so that a key is either still in a memtable or already in
  /// their LMDB snapshot) and the map, which a resize remaps.
  mutable std::shared_mutex mtx_;
  /// Takes the writes; becomes `imm_` when full, while a fresh one goes on.
  memtable mem_;
  /// The full memtable being written to LMDB in the background, if any.
  std::unique_ptr<memtable> imm_;
  uint64_t lmdb_entries_ = 0; // entries in LMDB

  /// The background flush: one job at a time (`imm_`), on its own thread.
  std::mutex flush_mtx_;
  std::condition_variable flush_cv_;
  std::optional<flush_job> job_;    // handed to the flusher
  std::optional<flush_job> failed_; // it could not write it (full map, I/O)
  bool flushing_ = false;
  bool stopping_ = false;
  std::thread flusher_;

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
  uint64_t applied_seq_ = 0; // last sequence number in the memtables
  /// Numbers up to this one were handed out in an earlier run (meta
  /// "seq_floor"); each open starts `seq_gap` above it and its log.
  uint64_t seq_floor_ = 0;
  static constexpr uint64_t seq_gap = uint64_t{1} << 32;
  /// LMDB holds no room for what the memtables hold: writes that store
  /// values fail with STORAGE_FULL (set by whichever thread flushes).
  std::atomic<bool> full_{false};
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

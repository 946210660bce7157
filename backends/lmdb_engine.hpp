#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/engine.hpp"
#include "backends/lmdb.hpp"
#include "backends/wal.hpp"

namespace strata {

/// The durable engine: a write-ahead log, memtables and an LMDB environment.
///
/// ```
///  apply(group) ──▶ log append + one fdatasync ──▶ memtable ──▶ effects
///                                                     │ full: becomes the
///                                                     ▼ immutable memtable
///            flusher thread: LMDB transactions, synced; then its log is emptied
///  reads ──▶ memtable, immutable memtable, then an LMDB read transaction
/// ```
///
/// A batch is durable once its log record is synced, so a group costs one
/// sequential sync no matter how many random pages it touches. The memtable
/// holds the newest state of each key written since it began, per key space
/// (a value, or a tombstone; a clear hides everything older). When it reaches
/// `flush_entries` or `flush_bytes` (or its log 4× that), it becomes the
/// immutable memtable, which a thread of the engine's own writes to LMDB in
/// large, durable transactions that also record the last sequence number they
/// contain, while writes go on into a fresh memtable and the other of the two
/// logs. So a flush never holds up writes, unless the next memtable fills up
/// to twice the thresholds before it ends: then the writer waits for it
/// (back-pressure; one flush runs at a time). On open, log records after the
/// recorded number are replayed.
///
/// A full map surfaces when a flush does not fit: the engine then reports
/// `full()`, keeps serving reads from the memtables and LMDB, and on every
/// later apply flushes everything, deletes first (with a little temporary
/// headroom, as LMDB's copy-on-write needs fresh pages to free old ones), so
/// that space is freed and writes resume.
///
/// Each key space is an LMDB named database of the same name; the database
/// `engine` holds the engine's own keys: `format`, `applied`, `seq_floor`,
/// `wal_epoch`, `wal_epoch.1`, `flushes`.
class lmdb_engine final : public engine {
public:
  explicit lmdb_engine(engine_options opts);
  lmdb_engine(const lmdb_engine&) = delete;
  lmdb_engine& operator=(const lmdb_engine&) = delete;
  /// Flushes the memtable, so that the next open has nothing to replay.
  ~lmdb_engine() override;

  engine_kind kind() const override {
    return engine_kind::lmdb;
  }

  const engine_capabilities& capabilities() const override;
  void read(function_ref<void(const engine_snapshot&)> f) const override;
  uint64_t next_seq() const override {
    return next_seq_;
  }
  apply_result apply(const std::vector<engine_batch>& group, bool sync) override;
  void sync() override;
  bool full() const override {
    return full_;
  }
  const std::string& broken() const override {
    return broken_;
  }
  bool flush() override;
  void wait_for_flush() override;
  engine_info info() const override;

private:
  /// Newest state of a key in one memtable.
  struct mem_entry {
    std::optional<bytes> value; // nullopt: deleted
    bool below = false;         // the key was live in the layers below
  };

  using entry_map = std::map<std::string, mem_entry, std::less<>>;

  /// One key space's share of a memtable.
  struct table {
    entry_map entries;
    bool cleared = false;  // hides every layer below
    uint64_t live = 0;     // entries with a value
    uint64_t shadowed = 0; // entries whose key is live below
  };

  /// The writes of a stretch of the log: the newest state of each key they
  /// touched, per key space.
  struct memtable {
    std::array<table, keyspace_count> spaces;
    size_t entries = 0;
    size_t bytes = 0;
    bool empty() const noexcept;
  };

  /// What one flush writes to LMDB, as of the last record it covers.
  struct flush_job {
    /// The last sequence number in the memtable it writes (`imm_`).
    uint64_t applied = 0;
    /// The logs whose every record it covers: emptied after it, each with
    /// a new epoch recorded with the data.
    std::vector<int> logs;
    std::vector<uint64_t> epochs;
    /// Run by the flusher thread, while writes go on.
    bool background = false;
  };

  /// What a key looks like through the layers: a value, or not there.
  struct hit {
    bool live = false;
    std::string_view data;
  };

  class snapshot;

  lmdb::txn acquire_reader(uint64_t gen) const;
  void release_reader(lmdb::txn t, uint64_t gen) const;
  void unpin_readers();
  hit find(keyspace ks, std::string_view key, const lmdb::txn& t) const;
  uint64_t count_locked(keyspace ks) const;
  void replay();
  void replay_legacy(wal_record& rec);
  void apply_one(keyspace ks, const std::vector<operation>& ops, batch_effect& effect,
                 bool images, const lmdb::txn& t);
  void apply_batch(const engine_batch& batch, batch_effect& effect);
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

  engine_options opts_;
  lmdb::env env_;
  std::array<MDB_dbi, keyspace_count> dbs_{};
  /// The engine's own keys (see the class comment).
  MDB_dbi own_ = 0;

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
  std::array<uint64_t, keyspace_count> lmdb_entries_{}; // entries in LMDB

  /// The background flush: one job at a time (`imm_`), on its own thread.
  std::mutex flush_mtx_;
  std::condition_variable flush_cv_;
  std::optional<flush_job> job_; // handed to the flusher
  bool flushing_ = false;
  bool stopping_ = false;
  std::thread flusher_;

  uint64_t next_seq_ = 1;
  uint64_t applied_seq_ = 0; // last sequence number in the memtables
  /// Numbers up to this one were handed out in an earlier run (meta
  /// "seq_floor"); each open starts `seq_gap` above it and its log.
  uint64_t seq_floor_ = 0;
  static constexpr uint64_t seq_gap = uint64_t{1} << 32;
  /// LMDB holds no room for what the memtables hold (set by whichever
  /// thread flushes).
  std::atomic<bool> full_{false};
  /// Why the engine refuses writes until reopened (a failed log sync, or a
  /// logged batch that could not be applied); empty while healthy.
  std::string broken_;
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

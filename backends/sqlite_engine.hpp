#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/engine.hpp"

struct sqlite3;

namespace strata {

/// An engine in one SQLite database per shard (Debian's libsqlite3). Each key
/// space is a table of (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID, so scans
/// come in byte order; the data space is `opts.sqlite.table`, the others
/// `<table>_<space>` (prepared transactions included: two-phase commit keeps
/// its state in its own table). One SQLite transaction per group commit,
/// under the group's last sequence number; `map_size` is the database's page
/// limit. Readers each take a connection of a small pool and read in a
/// transaction of their own, beside the writer (WAL mode).
class sqlite_engine final : public engine {
public:
  explicit sqlite_engine(engine_options opts);
  sqlite_engine(const sqlite_engine&) = delete;
  sqlite_engine& operator=(const sqlite_engine&) = delete;
  ~sqlite_engine() override;

  engine_kind kind() const override {
    return engine_kind::sqlite;
  }

  const engine_capabilities& capabilities() const override {
    return caps_;
  }

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

  void wait_for_flush() override {
    // No background work.
  }

  engine_info info() const override;

  /// The database file (or ":memory:").
  const std::string& path() const noexcept {
    return path_;
  }

  /// One open connection with its statements (defined in the source).
  struct connection;

private:
  class view;

  /// Idle reader connections kept for the next reads.
  static constexpr size_t max_idle_readers = 8;

  std::unique_ptr<connection> open_connection() const;
  void prepare_reads(connection& c) const;
  std::unique_ptr<connection> take_reader() const;
  void give_back(std::unique_ptr<connection> c) const;
  void read_on(const connection& c, function_ref<void(const engine_snapshot&)> f) const;
  void set_synchronous(bool full);
  void apply_one(keyspace ks, const std::vector<operation>& ops, batch_effect& effect,
                 bool images);
  uint64_t used_bytes(const connection& c) const;

  engine_options opts_;
  std::string path_;
  bool in_memory_ = false;
  engine_capabilities caps_;
  std::unique_ptr<connection> writer_;
  mutable std::mutex pool_mtx_;
  /// ":memory:": reads and groups share the writer's connection, in turn.
  mutable std::mutex memory_mtx_;
  mutable std::vector<std::unique_ptr<connection>> readers_;
  uint64_t next_seq_ = 1;
  uint64_t page_size_ = 4096;
  /// The writer's WAL auto-checkpoint interval in pages.
  uint64_t checkpoint_pages_ = 1000;
  /// The writer's connection syncs each commit (synchronous FULL, not NORMAL).
  bool sync_full_ = false;
  /// Groups were committed without a sync since the last one.
  bool unsynced_ = false;
  bool full_ = false;
  std::string broken_;
};

} // namespace strata

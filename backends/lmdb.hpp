#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <lmdb.h>

#include "strata/errc.hpp"

/// A thin RAII layer over LMDB: move-only handles whose destructors release
/// what was not finished. Failures throw `storage_error` with a strata code
/// (see `map_error`); "not found" is a normal result, never an exception.
///
/// LMDB's rules hold here too: one write transaction at a time per
/// environment; a write transaction begins and ends on the same thread; read
/// transactions may move between threads because environments are opened with
/// MDB_NOTLS.
namespace strata::lmdb {

/// Maps an LMDB return code (or errno value) to strata's code. The only place
/// that knows LMDB's codes:
/// - MDB_MAP_FULL, ENOSPC -> STORAGE_FULL
/// - MDB_READERS_FULL, MDB_TXN_FULL, MDB_DBS_FULL, MDB_CURSOR_FULL -> QUOTA_EXCEEDED
/// - MDB_BAD_VALSIZE -> INVALID_VALUE
/// - MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC, MDB_VERSION_MISMATCH,
///   MDB_INVALID, MDB_INCOMPATIBLE -> CONSISTENCY_VIOLATION
/// - ENOENT, EACCES, EPERM, EROFS, EAGAIN, EBUSY (opening) -> CONNECTION_FAILED
/// - anything else (EIO, MDB_BAD_TXN, ...) -> TRANSACTION_ABORTED
errc map_error(int rc);

/// Throws `storage_error{map_error(rc), what + ": " + mdb_strerror(rc)}`.
[[noreturn]] void raise(int rc, std::string_view what);

/// Throws unless `rc` is MDB_SUCCESS.
inline void check(int rc, std::string_view what) {
  if (rc != MDB_SUCCESS)
    raise(rc, what);
}

/// Views bytes as an MDB_val without copying.
inline MDB_val val(const void* data, size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}

inline MDB_val val(std::string_view x) {
  return val(x.data(), x.size());
}

/// Views an MDB_val; valid only while its transaction lives.
inline std::string_view view(const MDB_val& x) {
  return {static_cast<const char*>(x.mv_data), x.mv_size};
}

/// Settings applied before `mdb_env_open`.
struct env_options {
  /// Size of the memory map, the most the environment can hold, in bytes.
  uint64_t map_size = 1ull << 30;
  /// Named databases the environment may hold.
  unsigned max_dbs = 8;
  /// Concurrent read transactions.
  unsigned max_readers = 256;
  /// MDB_NOSYNC: commits do not wait for the disk. A system crash may lose
  /// recent commits; a process crash does not.
  bool no_sync = false;
  /// MDB_NORDAHEAD: no OS read-ahead around the pages a read touches. Saves
  /// I/O and page cache for random reads of a database larger than memory.
  bool no_readahead = false;
};

/// An open environment (one directory holding data.mdb and lock.mdb).
class env {
public:
  /// Opens or creates the environment in the existing directory `dir`.
  env(const std::string& dir, const env_options& opts);
  env(env&& other) noexcept;
  env& operator=(env&& other) noexcept;
  env(const env&) = delete;
  env& operator=(const env&) = delete;
  ~env();

  MDB_env* get() const noexcept {
    return handle_;
  }

  /// Flushes buffers to disk; needed only under MDB_NOSYNC.
  void sync();

  /// Returns the map size and the last used page.
  MDB_envinfo info() const;

  /// The environment's flags (MDB_NOSYNC, MDB_NORDAHEAD, ...).
  unsigned flags() const;

  /// Returns the page size and statistics of the main database.
  MDB_stat stat() const;

private:
  MDB_env* handle_ = nullptr;
};

/// A transaction: aborted by the destructor unless committed.
class txn {
public:
  /// Begins a read-only transaction.
  static txn read(const env& e);

  /// Begins a write transaction. Blocks while another write transaction of
  /// the same environment is open, in any process.
  static txn write(const env& e);

  txn() = default;
  txn(txn&& other) noexcept;
  txn& operator=(txn&& other) noexcept;
  txn(const txn&) = delete;
  txn& operator=(const txn&) = delete;
  ~txn();

  MDB_txn* get() const noexcept {
    return handle_;
  }

  explicit operator bool() const noexcept {
    return handle_ != nullptr;
  }

  /// Commits; the handle is gone afterwards, whether or not this throws.
  void commit();

  /// Aborts; a no-op on an empty handle.
  void abort() noexcept;

  /// Releases the snapshot of a read transaction but keeps its reader slot.
  void reset() noexcept;

  /// Takes a fresh snapshot with a reset read transaction.
  void renew();

  /// Opens (and with `create`, creates) a named database.
  MDB_dbi open_db(const char* name, bool create);

  /// Looks `key` up; the result views the map and lives as long as the txn.
  bool get(MDB_dbi db, std::string_view key, std::string_view& result) const;

  /// Stores `key` = `value`, replacing an old value.
  void put(MDB_dbi db, std::string_view key, std::string_view value);

  /// Deletes `key`; returns whether it existed.
  bool del(MDB_dbi db, std::string_view key);

  /// Deletes every entry of `db`.
  void clear(MDB_dbi db);

  /// Returns the number of entries in `db`.
  uint64_t entries(MDB_dbi db) const;

private:
  explicit txn(MDB_txn* handle) : handle_(handle) {
    // nop
  }

  MDB_txn* handle_ = nullptr;
};

/// A cursor over one database, closed by the destructor.
class cursor {
public:
  cursor(const txn& t, MDB_dbi db);
  cursor(const cursor&) = delete;
  cursor& operator=(const cursor&) = delete;
  ~cursor();

  /// Positions at the first key >= `key`; false if there is none.
  bool seek(std::string_view key);

  /// Positions at the first key; false if the database is empty.
  bool first();

  /// Moves to the next key; false at the end.
  bool next();

  /// The current key and value; valid until the cursor moves.
  std::string_view key() const {
    return view(key_);
  }

  std::string_view value() const {
    return view(value_);
  }

private:
  bool move(MDB_cursor_op op);

  MDB_cursor* handle_ = nullptr;
  MDB_val key_{0, nullptr};
  MDB_val value_{0, nullptr};
};

} // namespace strata::lmdb

#include "backends/sqlite_engine.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <filesystem>
#include <system_error>

#include <sqlite3.h>

namespace strata {

namespace {

std::string table_of(const std::string& base, keyspace ks) {
  return ks == keyspace::data ? base : base + "_" + keyspace_name(ks);
}

/// The strata error for a failed SQLite call: a full database or disk is
/// STORAGE_FULL, everything else aborts what was being done.
storage_error failure(sqlite3* db, int rc, const std::string& what) {
  auto code = rc == SQLITE_FULL ? errc::storage_full : errc::transaction_aborted;
  std::string text = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return storage_error{code, "sqlite: " + what + ": " + text};
}

struct stmt_deleter {
  void operator()(sqlite3_stmt* s) const {
    sqlite3_finalize(s);
  }
};

using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_deleter>;

/// Resets a statement (and its bindings) when the scope ends.
struct reset_on_exit {
  sqlite3_stmt* s;
  ~reset_on_exit() {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
};

void bind(sqlite3_stmt* s, int i, std::string_view x) {
  // An empty blob must not bind as NULL: keys and values may be empty.
  sqlite3_bind_blob64(s, i, x.empty() ? "" : x.data(), x.size(), SQLITE_STATIC);
}

std::string_view column(sqlite3_stmt* s, int i) {
  auto p = static_cast<const char*>(sqlite3_column_blob(s, i));
  auto n = static_cast<size_t>(sqlite3_column_bytes(s, i));
  return p == nullptr ? std::string_view{} : std::string_view{p, n};
}

} // namespace

/// A connection with the statements every reader and the writer use, one set
/// per key space.
struct sqlite_engine::connection {
  sqlite3* db = nullptr;
  struct space {
    stmt_ptr get, scan_from, scan_after, count, put, del, clear;
  };
  std::array<space, keyspace_count> spaces;
  stmt_ptr begin_read, begin_write, commit, rollback, get_seq, set_seq;

  ~connection() {
    // Statements first: a connection closes once they are finalized.
    for (auto& s : spaces)
      s = space{};
    begin_read.reset();
    begin_write.reset();
    commit.reset();
    rollback.reset();
    get_seq.reset();
    set_seq.reset();
    sqlite3_close_v2(db);
  }

  /// Ends an open transaction, if any, without applying it.
  void abandon() const noexcept {
    if (sqlite3_get_autocommit(db) == 0) {
      sqlite3_step(rollback.get());
      sqlite3_reset(rollback.get());
    }
  }

  /// A number a query of one row and column answers.
  uint64_t number(const std::string& sql) const {
    auto s = prepare(sql);
    auto rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW)
      throw failure(db, rc, sql);
    return static_cast<uint64_t>(sqlite3_column_int64(s.get(), 0));
  }

  void exec(const std::string& sql) const {
    char* msg = nullptr;
    auto rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      std::string text = msg != nullptr ? msg : sqlite3_errstr(rc);
      sqlite3_free(msg);
      auto code = rc == SQLITE_FULL ? errc::storage_full : errc::transaction_aborted;
      throw storage_error{code, "sqlite: " + sql + ": " + text};
    }
  }

  stmt_ptr prepare(const std::string& sql) const {
    sqlite3_stmt* s = nullptr;
    auto rc = sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
    if (rc != SQLITE_OK)
      throw failure(db, rc, "prepare " + sql);
    return stmt_ptr{s};
  }

  /// Runs a statement that returns no rows.
  void run(sqlite3_stmt* s, const char* what) const {
    reset_on_exit guard{s};
    auto rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      throw failure(db, rc, what);
  }
};

/// A read transaction on a connection of the pool (or, for ":memory:", on the
/// writer's connection under the engine's lock). Values that `get` hands out
/// are copied, so that they stay valid until the read ends.
class sqlite_engine::view final : public engine_snapshot {
public:
  view(const connection& c, uint64_t seq) : c_(c), seq_(seq) {
    // nop
  }

  uint64_t seq() const override {
    return seq_;
  }

  bool get(keyspace ks, std::string_view key, std::string_view& value) const override {
    auto s = c_.spaces[static_cast<size_t>(ks)].get.get();
    reset_on_exit guard{s};
    bind(s, 1, key);
    auto rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
      return false;
    if (rc != SQLITE_ROW)
      throw failure(c_.db, rc, "get");
    value = held_.emplace_back(column(s, 0));
    return true;
  }

  void scan(keyspace ks, std::string_view from, bool skip_from,
            function_ref<bool(std::string_view, std::string_view)> f) const override {
    auto& sp = c_.spaces[static_cast<size_t>(ks)];
    auto* cached = skip_from ? sp.scan_after.get() : sp.scan_from.get();
    // A scan inside another scan's visitor needs a statement of its own.
    stmt_ptr own;
    auto* s = cached;
    if (sqlite3_stmt_busy(cached)) {
      own = c_.prepare(sqlite3_sql(cached));
      s = own.get();
    }
    reset_on_exit guard{s};
    bind(s, 1, from);
    while (true) {
      auto rc = sqlite3_step(s);
      if (rc == SQLITE_DONE)
        return;
      if (rc != SQLITE_ROW)
        throw failure(c_.db, rc, "scan");
      // Keys and values are copied: a visitor may keep them for the read.
      auto& k = held_.emplace_back(column(s, 0));
      auto& v = held_.emplace_back(column(s, 1));
      if (!f(k, v))
        return;
    }
  }

  uint64_t count(keyspace ks) const override {
    auto s = c_.spaces[static_cast<size_t>(ks)].count.get();
    reset_on_exit guard{s};
    auto rc = sqlite3_step(s);
    if (rc != SQLITE_ROW)
      throw failure(c_.db, rc, "count");
    return static_cast<uint64_t>(sqlite3_column_int64(s, 0));
  }

private:
  const connection& c_;
  uint64_t seq_;
  mutable std::deque<std::string> held_;
};


sqlite_engine::sqlite_engine(engine_options opts) : opts_(std::move(opts)) {
  auto& o = opts_.sqlite;
  if (auto problem = o.problem(); !problem.empty())
    throw storage_error{errc::invalid_value, problem};
  in_memory_ = o.database == ":memory:";
  if (in_memory_) {
    path_ = ":memory:";
  } else {
    std::error_code ec;
    std::filesystem::create_directories(opts_.dir, ec);
    path_ = opts_.dir + "/" + o.database;
  }
  caps_.durable = !in_memory_;
  caps_.files = !in_memory_;
  auto c = open_connection();
  if (o.wal && !in_memory_)
    c->exec("PRAGMA journal_mode=WAL");
  c->exec("PRAGMA synchronous=NORMAL"); // FULL for durable groups: set_synchronous
  c->exec(std::string{"PRAGMA foreign_keys="} + (o.foreign_keys ? "ON" : "OFF"));
  // Write-heavy: checkpoint the WAL every 10 000 pages instead of 1000, so
  // writes pay for fewer checkpoints.
  if (opts_.hints.access == "write-heavy")
    c->exec("PRAGMA wal_autocheckpoint=10000");
  checkpoint_pages_ = c->number("PRAGMA wal_autocheckpoint");
  // Our own table for the sequence number, and one table per key space.
  c->exec("CREATE TABLE IF NOT EXISTS " + o.table
          + "_engine (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
  for (size_t i = 0; i < keyspace_count; ++i)
    c->exec("CREATE TABLE IF NOT EXISTS " + table_of(o.table, static_cast<keyspace>(i))
            + " (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID");
  c->exec("INSERT OR IGNORE INTO " + o.table + "_engine VALUES ('seq', 0)");
  next_seq_ = c->number("SELECT value FROM " + o.table + "_engine WHERE name = 'seq'") + 1;
  if (in_memory_) {
    // A database in memory starts empty each time: numbers start from the
    // clock, so that none handed out by an earlier run comes back.
    auto now = std::chrono::system_clock::now().time_since_epoch();
    next_seq_ = static_cast<uint64_t>(
                  std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())
                + 1;
    c->exec("UPDATE " + o.table + "_engine SET value = " + std::to_string(next_seq_ - 1)
            + " WHERE name = 'seq'");
  }
  page_size_ = c->number("PRAGMA page_size");
  // The shard's size limit: beyond it SQLite answers SQLITE_FULL.
  c->exec("PRAGMA max_page_count="
          + std::to_string(std::max<uint64_t>(64, opts_.map_size / page_size_)));
  prepare_reads(*c);
  for (size_t i = 0; i < keyspace_count; ++i) {
    auto t = table_of(o.table, static_cast<keyspace>(i));
    auto& sp = c->spaces[i];
    sp.put = c->prepare("INSERT INTO " + t
                        + " (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v");
    sp.del = c->prepare("DELETE FROM " + t + " WHERE k = ?1");
    sp.clear = c->prepare("DELETE FROM " + t);
  }
  c->begin_write = c->prepare("BEGIN IMMEDIATE");
  c->set_seq = c->prepare("UPDATE " + o.table + "_engine SET value = ?1 WHERE name = 'seq'");
  writer_ = std::move(c);
  set_synchronous(!opts_.no_sync);
  full_ = used_bytes(*writer_) >= opts_.map_size;
}

sqlite_engine::~sqlite_engine() {
  std::lock_guard<std::mutex> guard{pool_mtx_};
  readers_.clear();
  writer_.reset();
}

std::unique_ptr<sqlite_engine::connection> sqlite_engine::open_connection() const {
  auto c = std::make_unique<connection>();
  // Each connection is used by one thread at a time: no mutex inside SQLite.
  auto flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  auto rc = sqlite3_open_v2(path_.c_str(), &c->db, flags, nullptr);
  if (rc != SQLITE_OK)
    throw failure(c->db, rc, "cannot open " + path_);
  // The writer holds its lock for one group; readers never wait for it in
  // WAL mode, only briefly for a checkpoint.
  sqlite3_busy_timeout(c->db, 10000);
  // Settings first, then the hints where the settings leave SQLite's default.
  auto& o = opts_.sqlite;
  auto& h = opts_.hints;
  if (o.cache_kib > 0)
    c->exec("PRAGMA cache_size=-" + std::to_string(o.cache_kib));
  else if (h.cache_bytes >= 1024)
    c->exec("PRAGMA cache_size=-" + std::to_string(h.cache_bytes / 1024));
  if (o.mmap_bytes > 0)
    c->exec("PRAGMA mmap_size=" + std::to_string(o.mmap_bytes));
  else if ((h.access == "random" || h.access == "read-heavy") && !in_memory_)
    // Reads through the map skip copying pages into the page cache.
    c->exec("PRAGMA mmap_size=" + std::to_string(std::min<uint64_t>(opts_.map_size, 256u << 20)));
  c->begin_read = c->prepare("BEGIN");
  c->commit = c->prepare("COMMIT");
  c->rollback = c->prepare("ROLLBACK");
  return c;
}

void sqlite_engine::prepare_reads(connection& c) const {
  for (size_t i = 0; i < keyspace_count; ++i) {
    auto t = table_of(opts_.sqlite.table, static_cast<keyspace>(i));
    auto& sp = c.spaces[i];
    sp.get = c.prepare("SELECT v FROM " + t + " WHERE k = ?1");
    sp.scan_from = c.prepare("SELECT k, v FROM " + t + " WHERE k >= ?1 ORDER BY k");
    sp.scan_after = c.prepare("SELECT k, v FROM " + t + " WHERE k > ?1 ORDER BY k");
    sp.count = c.prepare("SELECT count(*) FROM " + t);
  }
  c.get_seq = c.prepare("SELECT value FROM " + opts_.sqlite.table + "_engine WHERE name = 'seq'");
}

std::unique_ptr<sqlite_engine::connection> sqlite_engine::take_reader() const {
  {
    std::lock_guard<std::mutex> guard{pool_mtx_};
    if (!readers_.empty()) {
      auto c = std::move(readers_.back());
      readers_.pop_back();
      return c;
    }
  }
  auto c = open_connection();
  c->exec("PRAGMA query_only=ON");
  prepare_reads(*c);
  return c;
}

void sqlite_engine::give_back(std::unique_ptr<connection> c) const {
  std::lock_guard<std::mutex> guard{pool_mtx_};
  if (readers_.size() < max_idle_readers)
    readers_.push_back(std::move(c));
}

void sqlite_engine::read_on(const connection& c,
                            function_ref<void(const engine_snapshot&)> f) const {
  c.run(c.begin_read.get(), "begin a read");
  struct end_read {
    const connection& c;
    ~end_read() {
      c.abandon();
    }
  } ender{c};
  // The transaction's first statement fixes its snapshot.
  auto s = c.get_seq.get();
  uint64_t seq = 0;
  {
    reset_on_exit guard{s};
    auto rc = sqlite3_step(s);
    if (rc != SQLITE_ROW)
      throw failure(c.db, rc, "read the sequence number");
    seq = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
  }
  view v{c, seq};
  f(v);
}

void sqlite_engine::read(function_ref<void(const engine_snapshot&)> f) const {
  if (in_memory_) {
    // ":memory:" is one database per connection: reads use the writer's,
    // one at a time and never during a group.
    std::lock_guard<std::mutex> guard{memory_mtx_};
    read_on(*writer_, f);
    return;
  }
  auto c = take_reader();
  read_on(*c, f); // a failure drops the connection
  give_back(std::move(c));
}

void sqlite_engine::set_synchronous(bool full) {
  if (full == sync_full_)
    return;
  // In WAL mode NORMAL survives a crash of the process; FULL syncs each
  // commit, so that it also survives one of the machine.
  writer_->exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  sync_full_ = full;
}

uint64_t sqlite_engine::used_bytes(const connection& c) const {
  auto pages = c.number("PRAGMA page_count");
  auto free = c.number("PRAGMA freelist_count");
  return (pages - std::min(pages, free)) * page_size_;
}

void sqlite_engine::apply_one(keyspace ks, const std::vector<operation>& ops,
                              batch_effect& effect, bool images) {
  auto& c = *writer_;
  auto& sp = c.spaces[static_cast<size_t>(ks)];
  bool data = ks == keyspace::data;
  images = images && data;
  auto before = [&](const std::string& key) {
    auto s = sp.get.get();
    reset_on_exit guard{s};
    bind(s, 1, key);
    auto rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
      effect.before.emplace_back(bytes_of(column(s, 0)));
    else if (rc == SQLITE_DONE)
      effect.before.emplace_back();
    else
      throw failure(c.db, rc, "read a before image");
  };
  for (auto& op : ops) {
    switch (op.kind) {
      case op_kind::set: {
        if (images)
          before(op.key);
        auto s = sp.put.get();
        bind(s, 1, op.key);
        bind(s, 2, view_of(op.value));
        c.run(s, "set");
        break;
      }
      case op_kind::del: {
        if (images)
          before(op.key);
        auto s = sp.del.get();
        bind(s, 1, op.key);
        c.run(s, "delete");
        if (data)
          effect.deleted += static_cast<uint64_t>(sqlite3_changes64(c.db));
        break;
      }
      case op_kind::clear:
        c.run(sp.clear.get(), "clear");
        if (data)
          effect.deleted += static_cast<uint64_t>(sqlite3_changes64(c.db));
        break;
    }
  }
}

apply_result sqlite_engine::apply(const std::vector<engine_batch>& group, bool sync) {
  apply_result out;
  if (!broken_.empty()) {
    out.code = errc::transaction_aborted;
    out.message = broken_;
    return out;
  }
  std::unique_lock<std::mutex> memory_guard{memory_mtx_, std::defer_lock};
  if (in_memory_)
    memory_guard.lock();
  auto& c = *writer_;
  // Without WAL, a later checkpoint cannot make a NORMAL commit durable:
  // every commit of a durable store syncs.
  auto durable = (sync || !opts_.sqlite.wal) && caps_.durable && !opts_.no_sync;
  std::vector<batch_effect> effects(group.size());
  auto seq = next_seq_;
  try {
    set_synchronous(durable);
    c.run(c.begin_write.get(), "begin a group");
    try {
      for (size_t i = 0; i < group.size(); ++i) {
        apply_fault_point(group[i]);
        effects[i].seq = seq++;
        for (auto& part : group[i].parts)
          apply_one(part.space, *part.ops, effects[i], group[i].before_images);
      }
      // The group's last number, in the same transaction as its writes.
      auto s = c.set_seq.get();
      sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(seq - 1));
      c.run(s, "record the sequence number");
      c.run(c.commit.get(), "commit a group");
    } catch (...) {
      c.abandon();
      throw;
    }
  } catch (const storage_error& e) {
    // Nothing of the group happened: SQLite rolled it back whole.
    if (e.code() == errc::storage_full)
      full_ = true;
    out.code = e.code();
    out.message = e.what();
    return out;
  }
  next_seq_ = seq;
  unsynced_ = unsynced_ || (!durable && caps_.durable && !opts_.no_sync);
  out.logged = true;
  out.effects = std::move(effects);
  // Deletes that made room lift `full` again, with some headroom.
  if (full_ && used_bytes(c) < opts_.map_size / 10 * 9)
    full_ = false;
  return out;
}

void sqlite_engine::sync() {
  if (!unsynced_)
    return;
  std::unique_lock<std::mutex> memory_guard{memory_mtx_, std::defer_lock};
  if (in_memory_)
    memory_guard.lock();
  // A checkpoint syncs the WAL before it copies anything back (without WAL
  // every commit was synced already).
  writer_->exec("PRAGMA wal_checkpoint(PASSIVE)");
  unsynced_ = false;
}

bool sqlite_engine::flush() {
  if (!in_memory_ && opts_.sqlite.wal)
    writer_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  unsynced_ = false;
  return !full_;
}

engine_info sqlite_engine::info() const {
  engine_info result;
  result.map_size = opts_.map_size;
  if (in_memory_) {
    std::lock_guard<std::mutex> guard{memory_mtx_};
    result.map_used = used_bytes(*writer_);
  } else {
    auto c = take_reader();
    result.map_used = used_bytes(*c);
    // Read back from a connection: every one gets the same tuning.
    result.tuning = {"cache_size=" + std::to_string(static_cast<int64_t>(c->number("PRAGMA cache_size"))),
                     "mmap_size=" + std::to_string(c->number("PRAGMA mmap_size")),
                     "wal_autocheckpoint=" + std::to_string(checkpoint_pages_)};
    give_back(std::move(c));
  }
  return result;
}

} // namespace strata

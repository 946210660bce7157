#include "backends/lmdb.hpp"

#include <cerrno>
#include <utility>

namespace strata::lmdb {

errc map_error(int rc) {
  switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
      return errc::storage_full;
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
    case MDB_CURSOR_FULL:
      return errc::quota_exceeded;
    case MDB_BAD_VALSIZE:
      return errc::invalid_value;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_PANIC:
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE:
      return errc::consistency_violation;
    case ENOENT:
    case EACCES:
    case EPERM:
    case EROFS:
    case EAGAIN:
    case EBUSY:
      return errc::connection_failed;
    default:
      return errc::transaction_aborted;
  }
}

void raise(int rc, std::string_view what) {
  std::string msg{what};
  msg += ": ";
  msg += mdb_strerror(rc);
  throw storage_error{map_error(rc), msg};
}

// -- env ----------------------------------------------------------------------

env::env(const std::string& dir, const env_options& opts) {
  check(mdb_env_create(&handle_), "cannot create LMDB environment");
  auto fail = [this](int rc, std::string_view what) {
    mdb_env_close(handle_); // required even when mdb_env_open failed
    handle_ = nullptr;
    raise(rc, what);
  };
  if (auto rc = mdb_env_set_mapsize(handle_, opts.map_size))
    fail(rc, "cannot set the map size");
  if (auto rc = mdb_env_set_maxdbs(handle_, opts.max_dbs))
    fail(rc, "cannot set the number of databases");
  if (auto rc = mdb_env_set_maxreaders(handle_, opts.max_readers))
    fail(rc, "cannot set the number of readers");
  unsigned flags = MDB_NOTLS;
  if (opts.no_sync)
    flags |= MDB_NOSYNC;
  if (opts.no_readahead)
    flags |= MDB_NORDAHEAD;
  if (auto rc = mdb_env_open(handle_, dir.c_str(), flags, 0644))
    fail(rc, "cannot open LMDB environment in " + dir);
}

env::env(env&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {
  // nop
}

env& env::operator=(env&& other) noexcept {
  std::swap(handle_, other.handle_);
  return *this;
}

env::~env() {
  if (handle_)
    mdb_env_close(handle_);
}

void env::sync() {
  check(mdb_env_sync(handle_, 1), "cannot sync LMDB environment");
}

unsigned env::flags() const {
  unsigned result = 0;
  check(mdb_env_get_flags(handle_, &result), "cannot read the environment's flags");
  return result;
}

MDB_envinfo env::info() const {
  MDB_envinfo result;
  check(mdb_env_info(handle_, &result), "cannot read environment info");
  return result;
}

MDB_stat env::stat() const {
  MDB_stat result;
  check(mdb_env_stat(handle_, &result), "cannot read environment stats");
  return result;
}

// -- txn ----------------------------------------------------------------------

txn txn::read(const env& e) {
  MDB_txn* h = nullptr;
  check(mdb_txn_begin(e.get(), nullptr, MDB_RDONLY, &h),
        "cannot begin read transaction");
  return txn{h};
}

txn txn::write(const env& e) {
  MDB_txn* h = nullptr;
  check(mdb_txn_begin(e.get(), nullptr, 0, &h),
        "cannot begin write transaction");
  return txn{h};
}

txn::txn(txn&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {
  // nop
}

txn& txn::operator=(txn&& other) noexcept {
  std::swap(handle_, other.handle_);
  return *this;
}

txn::~txn() {
  abort();
}

void txn::commit() {
  // mdb_txn_commit frees the handle even when it fails.
  check(mdb_txn_commit(std::exchange(handle_, nullptr)), "commit failed");
}

void txn::abort() noexcept {
  if (handle_)
    mdb_txn_abort(std::exchange(handle_, nullptr));
}

void txn::reset() noexcept {
  mdb_txn_reset(handle_);
}

void txn::renew() {
  check(mdb_txn_renew(handle_), "cannot renew read transaction");
}

MDB_dbi txn::open_db(const char* name, bool create) {
  MDB_dbi result = 0;
  check(mdb_dbi_open(handle_, name, create ? MDB_CREATE : 0, &result),
        std::string{"cannot open database "} + name);
  return result;
}

bool txn::get(MDB_dbi db, std::string_view key, std::string_view& result) const {
  auto k = val(key);
  MDB_val v;
  auto rc = mdb_get(handle_, db, &k, &v);
  if (rc == MDB_NOTFOUND)
    return false;
  check(rc, "get failed");
  result = view(v);
  return true;
}

void txn::put(MDB_dbi db, std::string_view key, std::string_view value) {
  auto k = val(key);
  auto v = val(value);
  check(mdb_put(handle_, db, &k, &v, 0), "put failed");
}

bool txn::del(MDB_dbi db, std::string_view key) {
  auto k = val(key);
  auto rc = mdb_del(handle_, db, &k, nullptr);
  if (rc == MDB_NOTFOUND)
    return false;
  check(rc, "delete failed");
  return true;
}

void txn::clear(MDB_dbi db) {
  check(mdb_drop(handle_, db, 0), "clear failed");
}

uint64_t txn::entries(MDB_dbi db) const {
  MDB_stat st;
  check(mdb_stat(handle_, db, &st), "cannot read database stats");
  return st.ms_entries;
}

// -- cursor -------------------------------------------------------------------

cursor::cursor(const txn& t, MDB_dbi db) {
  check(mdb_cursor_open(t.get(), db, &handle_), "cannot open cursor");
}

cursor::~cursor() {
  mdb_cursor_close(handle_);
}

bool cursor::move(MDB_cursor_op op) {
  auto rc = mdb_cursor_get(handle_, &key_, &value_, op);
  if (rc == MDB_NOTFOUND)
    return false;
  check(rc, "cursor move failed");
  return true;
}

bool cursor::seek(std::string_view key) {
  key_ = val(key);
  return move(MDB_SET_RANGE);
}

bool cursor::first() {
  return move(MDB_FIRST);
}

bool cursor::next() {
  return move(MDB_NEXT);
}

} // namespace strata::lmdb

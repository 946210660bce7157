#include "backends/kv_store.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <random>
#include <system_error>

#include "backends/fault.hpp"

namespace strata {

std::string key_problem(std::string_view key) {
  if (key.empty())
    return "key is empty; keys are 1 to 511 bytes";
  if (key.size() > limits::max_key_size)
    return "key is " + std::to_string(key.size())
           + " bytes; keys are 1 to 511 bytes";
  return {};
}

std::string value_problem(size_t size, uint64_t max_size) {
  if (size > max_size)
    return "value is " + std::to_string(size) + " bytes, above max_value_size ("
           + std::to_string(max_size) + " bytes)";
  return {};
}

namespace {

constexpr const char* format_version = "1";

lmdb::env open_env(const kv_store_options& opts) {
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  if (ec)
    throw storage_error{errc::connection_failed,
                        "cannot create shard directory " + opts.dir + ": "
                          + ec.message()};
  lmdb::env_options eo;
  eo.map_size = opts.map_size;
  eo.no_sync = opts.no_sync;
  return lmdb::env{opts.dir, eo};
}

std::string_view as_view(const bytes& x) {
  return {reinterpret_cast<const char*>(x.data()), x.size()};
}

bytes to_bytes(std::string_view x) {
  auto first = reinterpret_cast<const uint8_t*>(x.data());
  return bytes(first, first + x.size());
}

/// A random, non-zero epoch for the write-ahead log.
uint64_t fresh_epoch() {
  std::random_device rd;
  uint64_t x = 0;
  while (x == 0)
    x = (uint64_t{rd()} << 32) ^ rd();
  return x;
}

bool has_prefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

/// A transaction id as an LMDB key: 8 bytes, big endian, so that keys sort
/// like ids.
std::string txid_key(uint64_t txid) {
  std::string key(8, '\0');
  for (int b = 0; b < 8; ++b)
    key[static_cast<size_t>(b)] = static_cast<char>((txid >> (8 * (7 - b))) & 0xff);
  return key;
}

/// The id of such a key; false if it is not 8 bytes.
bool txid_of(std::string_view key, uint64_t& txid) {
  if (key.size() != 8)
    return false;
  txid = 0;
  for (auto ch : key)
    txid = (txid << 8) | static_cast<unsigned char>(ch);
  return true;
}

/// The sequence number stored in `meta`; CONSISTENCY_VIOLATION if garbled.
uint64_t parse_seq(std::string_view text, const std::string& dir) {
  uint64_t x = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  if (ec != std::errc{} || end != text.data() + text.size())
    throw storage_error{errc::consistency_violation,
                        dir + ": the stored sequence number '" + std::string{text}
                          + "' is corrupt"};
  return x;
}

} // namespace

/// Holds the memtable lock shared and borrows a pooled read transaction,
/// renewed after the lock was taken, for one read.
class kv_store::reader {
public:
  explicit reader(const kv_store& owner)
    : owner_(owner), guard_(owner.mtx_), gen_(owner.lmdb_gen_.load()),
      txn_(owner.acquire_reader(gen_)) {
    // nop
  }

  ~reader() {
    owner_.release_reader(std::move(txn_), gen_);
  }

  const lmdb::txn& operator*() const {
    return txn_;
  }

  const lmdb::txn* operator->() const {
    return &txn_;
  }

private:
  const kv_store& owner_;
  std::shared_lock<std::shared_mutex> guard_;
  uint64_t gen_;
  lmdb::txn txn_;
};

namespace {

/// What a key looks like to a reader: found in the memtable (value or
/// tombstone), or to be looked up in LMDB.
enum class mem_hit { value, deleted, miss };

std::string_view as_view(const std::optional<bytes>& x) {
  return x ? as_view(*x) : std::string_view{};
}

} // namespace

kv_store::kv_store(kv_store_options opts)
  : opts_(std::move(opts)), env_(open_env(opts_)) {
  // A small map must learn that it is full while the memtable is small.
  opts_.flush_bytes = std::min<size_t>(opts_.flush_bytes, opts_.map_size / 64);
  // Named databases are opened once, in one write transaction, before any
  // other transaction can use their handles.
  auto t = lmdb::txn::write(env_);
  data_ = t.open_db("data", true);
  meta_ = t.open_db("meta", true);
  prepared_db_ = t.open_db("prepared", true);
  outcomes_db_ = t.open_db("outcomes", true);
  check_meta(t);
  load_prepared(t);
  load_outcomes(t);
  lmdb_entries_ = t.entries(data_);
  t.commit();
  log_ = std::make_unique<wal>(opts_.dir + "/wal.log", !opts_.no_sync);
  log_->set_epoch(wal_epoch_);
  replay();
}

kv_store::~kv_store() {
  try {
    flush();
  } catch (const storage_error&) {
    // The WAL still holds everything; the next open replays it.
  }
  // Reader slots must be released before the environment closes.
  std::lock_guard<std::mutex> guard{readers_mtx_};
  readers_.clear();
}

void kv_store::check_meta(lmdb::txn& t) {
  const std::pair<const char*, std::string> expected[] = {
    {"format", format_version},
    {"store", opts_.store_id},
    {"shard", std::to_string(opts_.shard)},
    {"shards", std::to_string(opts_.shard_count)},
  };
  std::string_view found;
  if (!t.get(meta_, "format", found)) {
    for (auto& [key, value] : expected)
      t.put(meta_, key, value);
    return;
  }
  for (auto& [key, value] : expected) {
    if (!t.get(meta_, key, found))
      found = "(missing)";
    if (found != value)
      throw storage_error{
        errc::consistency_violation,
        opts_.dir + " was created with " + key + " = " + std::string{found}
          + " but is opened with " + key + " = " + value
          + "; open it with the settings it was created with"};
  }
  if (t.get(meta_, "applied", found))
    applied_seq_ = parse_seq(found, opts_.dir);
  if (t.get(meta_, "seq_floor", found))
    seq_floor_ = parse_seq(found, opts_.dir);
  if (t.get(meta_, "wal_epoch", found))
    wal_epoch_ = parse_seq(found, opts_.dir);
  if (t.get(meta_, "outcomes_floor", found))
    outcomes_floor_ = parse_seq(found, opts_.dir);
}

void kv_store::load_prepared(lmdb::txn& t) {
  // Transactions prepared before the last flush; the WAL may hold their
  // outcomes.
  lmdb::cursor c{t, prepared_db_};
  for (bool ok = c.first(); ok; ok = c.next()) {
    prepared_txn p;
    uint64_t txid = 0;
    if (!txid_of(c.key(), txid) || !wal::decode_part(c.value(), p.part))
      throw storage_error{errc::consistency_violation,
                          opts_.dir + ": a prepared transaction record is corrupt"};
    p.logged = true;
    cc_.lock(txid, p.part);
    prepared_.emplace(txid, std::move(p));
  }
}

void kv_store::load_outcomes(lmdb::txn& t) {
  lmdb::cursor c{t, outcomes_db_};
  for (bool ok = c.first(); ok; ok = c.next()) {
    uint64_t txid = 0;
    if (!txid_of(c.key(), txid))
      throw storage_error{errc::consistency_violation,
                          opts_.dir + ": a one-phase commit record is corrupt"};
    outcomes_.emplace(txid, true);
  }
}

void kv_store::remember(uint64_t txid, bool committed) {
  outcomes_[txid] = committed;
  if (committed)
    outcomes_added_.push_back(txid);
  while (outcomes_.size() > remembered_commits) {
    auto oldest = outcomes_.begin();
    outcomes_floor_ = std::max(outcomes_floor_, oldest->first);
    if (oldest->second)
      outcomes_dropped_.push_back(oldest->first);
    outcomes_.erase(oldest);
  }
}

commit_status kv_store::status_of(uint64_t txid) {
  if (auto i = outcomes_.find(txid); i != outcomes_.end())
    return i->second ? commit_status::committed : commit_status::not_committed;
  if (txid <= outcomes_floor_)
    return commit_status::forgotten;
  remember(txid, false); // the fence
  return commit_status::not_committed;
}

void kv_store::replay() {
  // Records up to `applied` are in LMDB already; later ones are replayed in
  // order into the memtable, which then holds exactly their newest state.
  auto in_lmdb = applied_seq_;
  next_seq_ = in_lmdb + 1;
  log_->replay([&](wal_record& rec) {
    if (rec.seq <= in_lmdb)
      return;
    write_outcome ignored;
    switch (rec.kind) {
      case wal_record::type::write:
        apply(rec.ops, ignored, rec.seq);
        break;
      case wal_record::type::commit_one:
        apply(rec.ops, ignored, rec.seq);
        remember(rec.txid, true);
        break;
      case wal_record::type::prepare: {
        cc_.lock(rec.txid, rec.part);
        prepared_[rec.txid] = prepared_txn{std::move(rec.part), true};
        prepared_dirty_ = true;
        break;
      }
      case wal_record::type::commit:
      case wal_record::type::abort:
        if (auto i = prepared_.find(rec.txid); i != prepared_.end()) {
          if (rec.kind == wal_record::type::commit)
            apply(i->second.part.writes, ignored, rec.seq);
          cc_.unlock(rec.txid);
          prepared_.erase(i);
          prepared_dirty_ = true;
        }
        break;
    }
    applied_seq_ = rec.seq;
    next_seq_ = rec.seq + 1;
  });
  // Sequence numbers handed out before a crash may not all be on disk
  // (outcomes are applied, and seen by reads, before their sync). New ones
  // start far above any of them, durably before the first is handed out, so
  // that a read from before the crash cannot validate against another write
  // that reused its number. Transactions validate from here on.
  applied_seq_ = std::max(applied_seq_, seq_floor_) + seq_gap;
  next_seq_ = applied_seq_ + 1;
  seq_floor_ = applied_seq_;
  cc_.reset(applied_seq_);
  // The log is emptied now: into LMDB by a flush (which starts a new epoch),
  // or, if LMDB holds all of it already, right here. Only a full map keeps it.
  bool emptied = true;
  if (!mem_.empty() || cleared_ || prepared_dirty_ || !outcomes_added_.empty())
    emptied = flush();
  auto epoch = emptied ? fresh_epoch() : log_->epoch();
  if (!with_headroom([&] {
        if (STRATA_FAIL_POINT("store.record_floor")) // test builds: a full map
          throw storage_error{errc::storage_full, "injected: map full"};
        auto t = lmdb::txn::write(env_);
        t.put(meta_, "seq_floor", std::to_string(seq_floor_));
        t.put(meta_, "wal_epoch", std::to_string(epoch));
        t.commit();
      }))
    throw storage_error{errc::storage_full,
                        opts_.dir + ": no room to record the sequence number; "
                                    "raise map_size"};
  if (emptied)
    log_->reset(epoch);
}

lmdb::txn kv_store::acquire_reader(uint64_t gen) const {
  // `gen` was read before the snapshot is taken, so a snapshot is at least as
  // new as its label.
  {
    std::lock_guard<std::mutex> guard{readers_mtx_};
    if (!readers_.empty()) {
      auto p = std::move(readers_.back());
      readers_.pop_back();
      // A snapshot taken since the last LMDB commit is still current: reuse
      // it without renewing. Between flushes that is every read.
      if (p.gen != gen) {
        if (p.gen != 0)
          p.txn.reset();
        p.txn.renew();
      }
      return std::move(p.txn);
    }
  }
  return lmdb::txn::read(env_);
}

void kv_store::release_reader(lmdb::txn t, uint64_t gen) const {
  if (!t)
    return;
  std::lock_guard<std::mutex> guard{readers_mtx_};
  readers_.push_back(pooled_reader{std::move(t), gen});
}

void kv_store::unpin_readers() {
  // Idle readers keep their snapshot; after a commit that would keep LMDB
  // from reusing the pages the commit freed, and a remap invalidates it.
  std::lock_guard<std::mutex> guard{readers_mtx_};
  for (auto& p : readers_) {
    if (p.gen != 0) {
      p.txn.reset();
      p.gen = 0;
    }
  }
}

std::optional<bytes> kv_store::get(std::string_view key) const {
  reader r{*this};
  if (auto i = mem_.find(key); i != mem_.end())
    return i->second.value;
  std::string_view v;
  if (cleared_ || !r->get(data_, key, v))
    return std::nullopt;
  return to_bytes(v);
}

bool kv_store::has(std::string_view key) const {
  reader r{*this};
  if (auto i = mem_.find(key); i != mem_.end())
    return i->second.value.has_value();
  std::string_view v;
  return !cleared_ && r->get(data_, key, v);
}

std::vector<std::optional<bytes>>
kv_store::get_many(const std::vector<std::string>& keys) const {
  std::vector<std::optional<bytes>> result;
  result.reserve(keys.size());
  reader r{*this};
  std::string_view v;
  for (auto& key : keys) {
    if (auto i = mem_.find(key); i != mem_.end())
      result.push_back(i->second.value);
    else if (!key.empty() && !cleared_ && r->get(data_, key, v))
      result.emplace_back(to_bytes(v));
    else
      result.emplace_back(std::nullopt);
  }
  return result;
}

void kv_store::read_each(
  const std::vector<std::string>& keys, const std::vector<uint32_t>& which,
  const std::function<void(uint32_t, std::string_view)>& found) const {
  reader r{*this};
  std::string_view v;
  for (auto i : which) {
    auto& key = keys[i];
    if (auto m = mem_.find(key); m != mem_.end()) {
      if (m->second.value)
        found(i, as_view(*m->second.value));
    } else if (!key.empty() && !cleared_ && r->get(data_, key, v)) {
      found(i, v);
    }
  }
}

scan_page kv_store::scan(const scan_request& req) const {
  reader r{*this};
  return scan_with(*r, req);
}

txn_read kv_store::read(std::string_view key) const {
  reader r{*this};
  txn_read result;
  if (cc_.write_locked(key)) {
    result.blocked = true;
    return result;
  }
  result.seq = applied_seq_;
  if (auto i = mem_.find(key); i != mem_.end()) {
    result.value = i->second.value;
    return result;
  }
  std::string_view v;
  if (!cleared_ && r->get(data_, key, v))
    result.value = to_bytes(v);
  return result;
}

txn_scan kv_store::read_range(const scan_request& req) const {
  reader r{*this};
  txn_scan result;
  auto lo = std::max({std::string_view{req.start}, std::string_view{req.prefix},
                      std::string_view{req.after}});
  if (cc_.write_locked(lo, prefix_end(req.prefix))) {
    result.blocked = true;
    return result;
  }
  result.seq = applied_seq_;
  result.page = scan_with(*r, req);
  return result;
}

std::vector<uint64_t> kv_store::in_doubt() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<uint64_t> result;
  for (auto& [txid, p] : prepared_)
    if (p.logged)
      result.push_back(txid);
  return result;
}

scan_page kv_store::scan_with(const lmdb::txn& t, const scan_request& req) const {
  scan_page page;
  auto limit = req.limit == 0 ? limits::default_page_entries
                              : std::min(req.limit, limits::max_page_entries);
  std::string_view prefix = req.prefix;
  std::string_view seek = std::max(std::string_view{req.start}, prefix);
  bool skip_equal = false;
  if (!req.after.empty() && std::string_view{req.after} >= seek) {
    seek = req.after;
    skip_equal = true;
  }
  // Merge two ordered sources: LMDB (unless cleared) and the memtable, whose
  // entries win over LMDB's and whose tombstones hide them.
  lmdb::cursor c{t, data_};
  bool in_lmdb = !cleared_ && (seek.empty() ? c.first() : c.seek(seek));
  if (in_lmdb && skip_equal && c.key() == seek)
    in_lmdb = c.next();
  auto m = mem_.lower_bound(seek);
  if (m != mem_.end() && skip_equal && m->first == seek)
    ++m;
  size_t page_bytes = 0;
  for (;;) {
    bool from_mem;
    if (in_lmdb && m != mem_.end())
      from_mem = std::string_view{m->first} <= c.key();
    else if (m != mem_.end())
      from_mem = true;
    else if (in_lmdb)
      from_mem = false;
    else
      return page;
    std::string_view key = from_mem ? std::string_view{m->first} : c.key();
    if (!has_prefix(key, prefix))
      return page; // keys are sorted: nothing further can match
    bool live = true;
    std::string_view value;
    if (from_mem) {
      live = m->second.value.has_value();
      value = as_view(m->second.value);
    } else {
      value = c.value();
    }
    if (live) {
      if (page.entries.size() == limit || page_bytes >= limits::max_page_bytes) {
        page.more = true;
        return page;
      }
      entry e;
      e.key = std::string{key};
      if (req.values)
        e.value = to_bytes(value);
      page_bytes += e.key.size() + e.value.size();
      page.entries.push_back(std::move(e));
    }
    if (from_mem) {
      if (in_lmdb && c.key() == m->first)
        in_lmdb = c.next(); // the memtable's entry replaces LMDB's
      ++m;
    } else {
      in_lmdb = c.next();
    }
  }
}

uint64_t kv_store::count_locked() const {
  return cleared_ ? live_ : lmdb_entries_ + live_ - shadowed_;
}

uint64_t kv_store::size() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  return count_locked();
}

shard_info kv_store::info() const {
  shard_info result;
  result.shard = opts_.shard;
  result.entries = size();
  MDB_envinfo ei;
  MDB_stat st;
  {
    // A resize remaps the environment under the exclusive lock.
    std::shared_lock<std::shared_mutex> guard{mtx_};
    ei = env_.info();
    st = env_.stat();
  }
  result.map_size = ei.me_mapsize;
  result.map_used = (ei.me_last_pgno + 1) * uint64_t{st.ms_psize};
  result.commits = commits_;
  result.flushes = flushes_;
  result.in_doubt = in_doubt().size();
  result.path = opts_.dir;
  return result;
}

void kv_store::apply(const std::vector<operation>& ops, write_outcome& out,
                     uint64_t seq) {
  if (STRATA_FAIL_POINT("store.apply")) // test builds: as an LMDB read error
    throw storage_error{errc::transaction_aborted, "fault injected at store.apply"};
  // Runs on the writer thread, the only one that changes the memtable or
  // LMDB, so reading them here needs no lock; changes take it exclusively.
  auto gen = lmdb_gen_.load();
  auto t = acquire_reader(gen);
  auto lmdb_has = [&](const std::string& key) {
    std::string_view v;
    return !cleared_ && t.get(data_, key, v);
  };
  std::unique_lock<std::shared_mutex> guard{mtx_};
  for (auto& op : ops) {
    switch (op.kind) {
      case op_kind::set:
      case op_kind::del: {
        auto i = mem_.find(op.key);
        if (i == mem_.end()) {
          bool in_lmdb = lmdb_has(op.key);
          if (op.kind == op_kind::del && !in_lmdb)
            break; // deleting a key that exists nowhere changes nothing
          i = mem_.emplace(op.key, mem_entry{std::nullopt, in_lmdb}).first;
          mem_bytes_ += op.key.size() + 64;
          if (in_lmdb) {
            // The key counted in LMDB; from now on the memtable decides.
            ++shadowed_;
            i->second.value = bytes{}; // placeholder: "live" until changed
            ++live_;
          }
        }
        auto& e = i->second;
        if (e.value) {
          mem_bytes_ -= e.value->size();
          --live_;
          if (op.kind == op_kind::del)
            ++out.deleted;
        }
        if (op.kind == op_kind::set) {
          e.value = op.value;
          mem_bytes_ += op.value.size();
          ++live_;
        } else {
          e.value = std::nullopt;
        }
        break;
      }
      case op_kind::clear:
        out.deleted += count_locked();
        mem_.clear();
        cleared_ = true;
        live_ = 0;
        shadowed_ = 0;
        mem_bytes_ = 0;
        break;
    }
  }
  // Readers see the data and its sequence number change together.
  applied_seq_ = seq;
  guard.unlock();
  release_reader(std::move(t), gen);
}

std::vector<write_outcome> kv_store::write(const write_group& group) {
  std::vector<write_request> requests;
  requests.reserve(group.size());
  for (auto* ops : group)
    requests.push_back(write_request::plain_ops(*ops));
  return write(requests);
}

std::vector<write_outcome> kv_store::write(const std::vector<write_request>& group) {
  using type = write_request::type;
  std::vector<write_outcome> out(group.size());
  if (!broken_.empty()) {
    for (auto& o : out)
      o = write_outcome{errc::transaction_aborted, broken_, 0, false};
    return out;
  }
  auto stores_values = [](const std::vector<operation>& ops) {
    return std::any_of(ops.begin(), ops.end(),
                       [](auto& op) { return op.kind == op_kind::set; });
  };
  auto full_error = [this] {
    return write_outcome{errc::storage_full,
                         opts_.dir + ": the map is full (map_size "
                           + std::to_string(opts_.map_size)
                           + " bytes); delete data or raise map_size",
                         0, false};
  };
  // Pass 1, under the lock that readers share: validate, lock, number and
  // encode, so that each request sees the ones before it. Nothing is applied
  // before the records are durable.
  std::vector<std::string> records;
  std::vector<std::pair<size_t, uint64_t>> accepted; // request, sequence number
  std::vector<uint64_t> prepared_now; // undone if the append fails
  std::vector<uint64_t> resolved_now; // outcomes of this group
  bool durable = false; // whether the group's records need a sync
  bool barrier = false;
  std::vector<size_t> statuses; // answered once the group is applied
  std::vector<uint64_t> committing; // one-phase commits accepted in pass 1
  auto answer_statuses = [&] {
    for (auto i : statuses)
      out[i].status = status_of(group[i].txid);
  };
  records.reserve(group.size());
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto seq = next_seq_;
  for (size_t i = 0; i < group.size(); ++i) {
    auto& req = group[i];
    switch (req.kind) {
      case type::plain: {
        auto& ops = *req.ops;
        if (full_ && stores_values(ops)) {
          out[i] = full_error();
          continue;
        }
        auto waits = std::any_of(ops.begin(), ops.end(), [this](auto& op) {
          return op.kind == op_kind::clear ? cc_.write_locked("", "")
                                           : cc_.write_locked(op.key);
        });
        if (waits) {
          out[i].blocked = true;
          continue;
        }
        records.push_back(wal::encode(seq, ops));
        cc_.wrote(ops, seq);
        accepted.emplace_back(i, seq++);
        durable = true;
        break;
      }
      case type::commit: {
        auto& part = *req.part;
        if (req.txid != 0) {
          if (auto k = outcomes_.find(req.txid); k != outcomes_.end()) {
            if (!k->second)
              out[i] = write_outcome{errc::transaction_aborted,
                                     "transaction " + txn_name(req.txid)
                                       + " was given up before its commit arrived",
                                     0, false};
            continue; // committed before: nothing to do again
          }
        }
        if (full_ && stores_values(part.writes)) {
          out[i] = full_error();
          continue;
        }
        if (auto problem = cc_.check(0, part); !problem.empty()) {
          out[i] = write_outcome{errc::version_conflict, problem, 0, false};
          continue;
        }
        if (part.writes.empty()) {
          if (req.txid != 0) // validated reads: nothing to store
            remember(req.txid, true);
          continue;
        }
        if (req.txid != 0)
          committing.push_back(req.txid);
        records.push_back(req.txid != 0
                            ? wal::encode_commit_one(seq, req.txid, part.writes)
                            : wal::encode(seq, part.writes));
        cc_.wrote(part.writes, seq);
        accepted.emplace_back(i, seq++);
        durable = true;
        break;
      }
      case type::prepare: {
        auto& part = *req.part;
        if (prepared_.count(req.txid) > 0)
          continue; // prepared before: the vote stands
        if (full_ && stores_values(part.writes)) {
          out[i] = full_error();
          continue;
        }
        if (auto problem = cc_.check(req.txid, part); !problem.empty()) {
          out[i] = write_outcome{errc::version_conflict, problem, 0, false};
          continue;
        }
        cc_.lock(req.txid, part);
        bool logged = !part.writes.empty();
        prepared_[req.txid] = prepared_txn{part, logged};
        if (!logged)
          continue; // read-only: its locks need not survive a crash
        prepared_now.push_back(req.txid);
        records.push_back(wal::encode_prepare(seq, req.txid, part));
        accepted.emplace_back(i, seq++);
        durable = true;
        break;
      }
      case type::resolve: {
        auto p = prepared_.find(req.txid);
        if (p == prepared_.end()
            || std::find(resolved_now.begin(), resolved_now.end(), req.txid)
                 != resolved_now.end())
          continue; // resolved before, or never prepared: nothing to do
        resolved_now.push_back(req.txid);
        if (!p->second.logged) {
          cc_.unlock(req.txid);
          prepared_.erase(p);
          continue;
        }
        if (req.commit)
          cc_.wrote(p->second.part.writes, seq);
        records.push_back(wal::encode_outcome(seq, req.txid, req.commit));
        accepted.emplace_back(i, seq++);
        break;
      }
      case type::barrier:
        barrier = true;
        break;
      case type::status:
        // Fenced now, unless a commit of it is accepted before it in this
        // group: then the answer waits until that one is applied (or not).
        if (std::find(committing.begin(), committing.end(), req.txid) == committing.end()
            && outcomes_.count(req.txid) == 0 && req.txid > outcomes_floor_)
          remember(req.txid, false);
        statuses.push_back(i);
        break;
    }
  }
  guard.unlock();
  if (accepted.empty()) {
    if (barrier) {
      try {
        log_->sync();
      } catch (const storage_error& e) {
        broken_ = std::string{e.what()} + "; reopen the shard to recover from its log";
        for (size_t i = 0; i < group.size(); ++i)
          if (group[i].kind == type::barrier)
            out[i] = write_outcome{e.code(), broken_, 0, false};
      }
    }
    answer_statuses();
    return out;
  }
  auto fail_accepted = [&](errc code, const std::string& msg) {
    for (auto& [i, _] : accepted)
      out[i] = write_outcome{code, msg, 0, false};
  };
  try {
    log_->append(std::move(records), durable || barrier);
  } catch (const storage_error& e) {
    if (log_->sync_failed())
      broken_ = std::string{e.what()} + "; reopen the shard to recover from its log";
    // The prepares of this group never happened. (Versions recorded for the
    // failed writes only make later validations stricter.)
    guard.lock();
    for (auto txid : prepared_now) {
      cc_.unlock(txid);
      prepared_.erase(txid);
    }
    guard.unlock();
    // Their numbers are not handed out again: should cutting the log back
    // have failed too, the records are still there.
    next_seq_ = seq;
    fail_accepted(e.code(), e.what());
    for (size_t i = 0; i < group.size(); ++i)
      if (group[i].kind == type::barrier) // nothing earlier is known durable
        out[i] = write_outcome{e.code(), e.what(), 0, false};
    answer_statuses();
    return out;
  }
  // Durable now: apply in order.
  try {
    for (auto& [i, s] : accepted) {
      auto& req = group[i];
      switch (req.kind) {
        case type::barrier:
        case type::status:
          break;
        case type::plain:
          apply(*req.ops, out[i], s);
          break;
        case type::commit:
          apply(req.part->writes, out[i], s);
          if (req.txid != 0)
            remember(req.txid, true);
          break;
        case type::prepare: {
          std::unique_lock<std::shared_mutex> g{mtx_};
          prepared_dirty_ = true;
          applied_seq_ = s;
          break;
        }
        case type::resolve: {
          auto p = prepared_.find(req.txid);
          if (p == prepared_.end())
            break; // cannot happen: one outcome per transaction and group
          if (req.commit)
            apply(p->second.part.writes, out[i], s);
          std::unique_lock<std::shared_mutex> g{mtx_};
          cc_.unlock(req.txid);
          prepared_.erase(p);
          prepared_dirty_ = true;
          applied_seq_ = s;
          break;
        }
      }
    }
    next_seq_ = seq;
  } catch (const storage_error& e) {
    // Logged but not applied: only a replay can make memory and disk agree
    // again, so the shard refuses writes until it is reopened.
    broken_ = std::string{e.what()} + "; reopen the shard to recover from its log";
    // CONSISTENCY_VIOLATION, not TRANSACTION_ABORTED: the group is durable
    // and a reopen applies it.
    fail_accepted(errc::consistency_violation, "logged but not applied: " + broken_);
    // Logged commits are durable: a reopen applies them.
    for (auto& [i, _] : accepted)
      if (group[i].kind == type::commit && group[i].txid != 0)
        remember(group[i].txid, true);
    answer_statuses();
    return out;
  }
  ++commits_;
  answer_statuses();
  bool deletes_pending = full_; // deletes may have made room
  // Also when the log outgrows the memtable (keys rewritten over and over):
  // the log is what a restart replays.
  if (deletes_pending || mem_.size() >= opts_.flush_entries
      || mem_bytes_ >= opts_.flush_bytes || log_->size() >= 4 * opts_.flush_bytes) {
    try {
      flush();
    } catch (const storage_error&) {
      // Acknowledged anyway: the WAL holds it, and the next flush retries.
    }
  }
  return out;
}

bool kv_store::flush() {
  // A broken shard's memtable may lack records its log holds: flushing it
  // would empty the log and lose them. Only a reopen (a replay) repairs it.
  if (!broken_.empty())
    throw storage_error{errc::consistency_violation, broken_};
  if (mem_.empty() && !cleared_ && !prepared_dirty_ && outcomes_added_.empty()
      && outcomes_dropped_.empty())
    return true;
  // Outcomes are logged without a sync; LMDB must not get ahead of the log.
  log_->sync();
  // The log's next epoch, recorded with the sequence number it starts after.
  wal_epoch_ = fresh_epoch();
  // Deletes first, in a transaction of their own: on a full map they free the
  // space the values need. Then the values, with the sequence number.
  if (!commit_batch(true)) {
    full_ = true;
    return false;
  }
  if (!commit_batch(false)) {
    // LMDB reuses the pages a transaction freed only two transactions later
    // (the previous snapshot stays intact for readers): let the pages the
    // deletes freed mature with one small transaction, then try again.
    if (!mature_free_pages() || !commit_batch(false)) {
      full_ = true;
      return false;
    }
  }
  full_ = false;
  ++flushes_;
  log_->reset(wal_epoch_);
  return true;
}

bool kv_store::commit_batch(bool tombstones) {
  auto attempt = [&] {
    auto t = lmdb::txn::write(env_);
    if (tombstones && cleared_)
      t.clear(data_);
    for (auto& [key, e] : mem_) {
      if (tombstones && !e.value && e.in_lmdb && !cleared_)
        t.del(data_, key);
      else if (!tombstones && e.value)
        t.put(data_, key, as_view(*e.value));
    }
    if (!tombstones) {
      // Prepared transactions outlive the WAL, which is emptied next.
      t.clear(prepared_db_);
      for (auto& [txid, p] : prepared_)
        if (p.logged)
          t.put(prepared_db_, txid_key(txid), wal::encode_part(p.part));
      // One-phase commits the log held, and those let go since.
      for (auto txid : outcomes_added_)
        t.put(outcomes_db_, txid_key(txid), "");
      for (auto txid : outcomes_dropped_)
        t.del(outcomes_db_, txid_key(txid));
      t.put(meta_, "outcomes_floor", std::to_string(outcomes_floor_));
      t.put(meta_, "applied", std::to_string(applied_seq_));
      t.put(meta_, "wal_epoch", std::to_string(wal_epoch_));
    }
    auto entries = t.entries(data_);
    t.commit();
    return entries;
  };
  uint64_t entries = 0;
  auto run = [&] { entries = attempt(); };
  // Deletes may borrow headroom on a full map; values may not.
  if (!(tombstones ? with_headroom(run) : fits(run)))
    return false;
  // LMDB now holds what was committed: drop it from the memtable, and make
  // readers take a new snapshot.
  std::unique_lock<std::shared_mutex> guard{mtx_};
  ++lmdb_gen_;
  unpin_readers();
  lmdb_entries_ = entries;
  if (tombstones) {
    cleared_ = false;
    for (auto i = mem_.begin(); i != mem_.end();) {
      if (!i->second.value) {
        mem_bytes_ -= i->first.size() + 64;
        i = mem_.erase(i);
      } else {
        ++i;
      }
    }
  } else {
    mem_.clear();
    live_ = 0;
    mem_bytes_ = 0;
    prepared_dirty_ = false;
    outcomes_added_.clear();
    outcomes_dropped_.clear();
  }
  shadowed_ = 0;
  for (auto& kv : mem_)
    if (kv.second.in_lmdb)
      ++shadowed_;
  return true;
}

bool kv_store::mature_free_pages() {
  return with_headroom([&] {
    auto t = lmdb::txn::write(env_);
    t.put(meta_, "flushes", std::to_string(flushes_.load()));
    t.commit();
    std::unique_lock<std::shared_mutex> guard{mtx_};
    ++lmdb_gen_;
    unpin_readers();
  });
}

bool kv_store::fits(const std::function<void()>& txn) {
  try {
    txn();
    return true;
  } catch (const storage_error& e) {
    if (e.code() != errc::storage_full)
      throw;
    return false;
  }
}

bool kv_store::with_headroom(const std::function<void()>& txn) {
  if (fits(txn))
    return true;
  // Freeing space needs a few fresh pages first (copy-on-write). Grow the map
  // for this one transaction, then return to the configured size (LMDB keeps
  // it at least as large as the data, so at most a few pages stay above the
  // limit).
  std::unique_lock<std::shared_mutex> guard{mtx_};
  resize_map(opts_.map_size + std::max<uint64_t>(1 << 20, opts_.map_size / 64));
  guard.unlock();
  bool ok = false;
  try {
    ok = fits(txn);
  } catch (...) {
    guard.lock();
    resize_map(opts_.map_size);
    throw;
  }
  guard.lock();
  resize_map(opts_.map_size);
  return ok;
}

void kv_store::resize_map(uint64_t size) {
  // Remapping is allowed only without live transactions; the caller holds the
  // exclusive lock, so the pooled ones are idle.
  ++lmdb_gen_;
  unpin_readers();
  lmdb::check(mdb_env_set_mapsize(env_.get(), size), "cannot resize the map");
}

} // namespace strata

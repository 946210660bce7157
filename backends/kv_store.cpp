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

/// About how much one transaction of a background flush writes (see
/// commit_batch).
constexpr size_t flush_chunk_bytes = size_t{1} << 20;

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
  for (int i = 0; i < 2; ++i) {
    logs_[i] = std::make_unique<wal>(opts_.dir + (i == 0 ? "/wal.log" : "/wal.1.log"),
                                     !opts_.no_sync);
    logs_[i]->set_epoch(log_epoch_[i]);
  }
  replay();
  flusher_ = std::thread{[this] { flusher_loop(); }};
}

kv_store::~kv_store() {
  {
    std::lock_guard<std::mutex> guard{flush_mtx_};
    stopping_ = true;
  }
  flush_cv_.notify_all();
  flusher_.join();
  try {
    flush();
  } catch (const storage_error&) {
    // The logs still hold everything; the next open replays them.
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
    log_epoch_[0] = parse_seq(found, opts_.dir);
  if (t.get(meta_, "wal_epoch.1", found))
    log_epoch_[1] = parse_seq(found, opts_.dir);
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
  // Of the two logs, the one whose records are older goes first (they never
  // interleave: a log becomes the active one only once it was emptied).
  auto in_lmdb = applied_seq_;
  next_seq_ = in_lmdb + 1;
  std::vector<wal_record> records[2];
  for (int i = 0; i < 2; ++i)
    logs_[i]->replay([&](wal_record& rec) {
      if (rec.seq > in_lmdb)
        records[i].push_back(std::move(rec));
    });
  int first = !records[1].empty()
                  && (records[0].empty() || records[1].front().seq < records[0].front().seq)
                ? 1
                : 0;
  for (int log : {first, 1 - first})
    for (auto& rec : records[log]) {
      if (rec.seq <= applied_seq_ && applied_seq_ > in_lmdb)
        throw storage_error{errc::consistency_violation,
                            opts_.dir + ": the write-ahead logs overlap (sequence number "
                              + std::to_string(rec.seq) + " twice)"};
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
    }
  // New records go to the log that held the newer ones.
  active_ = records[1 - first].empty() ? first : 1 - first;
  // Sequence numbers handed out before a crash may not all be on disk
  // (outcomes are applied, and seen by reads, before their sync). New ones
  // start far above any of them, durably before the first is handed out, so
  // that a read from before the crash cannot validate against another write
  // that reused its number. Transactions validate from here on.
  applied_seq_ = std::max(applied_seq_, seq_floor_) + seq_gap;
  next_seq_ = applied_seq_ + 1;
  seq_floor_ = applied_seq_;
  cc_.reset(applied_seq_);
  // The logs are emptied now: into LMDB by a flush (which starts new
  // epochs), or, if LMDB holds all of them already, right here. Only a full
  // map keeps them.
  bool emptied = true;
  if (!mem_.empty() || prepared_dirty_ || !outcomes_added_.empty())
    emptied = flush();
  uint64_t epochs[2];
  for (int i = 0; i < 2; ++i)
    epochs[i] = emptied ? fresh_epoch() : logs_[i]->epoch();
  if (!with_headroom([&] {
        if (STRATA_FAIL_POINT("store.record_floor")) // test builds: a full map
          throw storage_error{errc::storage_full, "injected: map full"};
        auto t = lmdb::txn::write(env_);
        t.put(meta_, "seq_floor", std::to_string(seq_floor_));
        t.put(meta_, "wal_epoch", std::to_string(epochs[0]));
        t.put(meta_, "wal_epoch.1", std::to_string(epochs[1]));
        t.commit();
      }))
    throw storage_error{errc::storage_full,
                        opts_.dir + ": no room to record the sequence number; "
                                    "raise map_size"};
  if (emptied)
    for (int i = 0; i < 2; ++i) {
      logs_[i]->reset(epochs[i]);
      log_epoch_[i] = epochs[i];
    }
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

kv_store::hit kv_store::find(std::string_view key, const lmdb::txn& t) const {
  // The newest layer that knows the key decides; a clear hides what is below.
  const memtable* layers[] = {&mem_, imm_.get()};
  for (auto* m : layers) {
    if (m == nullptr)
      continue;
    if (auto i = m->entries.find(key); i != m->entries.end())
      return {i->second.value.has_value(), as_view(i->second.value)};
    if (m->cleared)
      return {};
  }
  hit result;
  result.live = !key.empty() && t.get(data_, key, result.data);
  return result;
}

std::optional<bytes> kv_store::get(std::string_view key) const {
  reader r{*this};
  auto h = find(key, *r);
  return h.live ? std::optional<bytes>{to_bytes(h.data)} : std::nullopt;
}

bool kv_store::has(std::string_view key) const {
  reader r{*this};
  return find(key, *r).live;
}

std::vector<std::optional<bytes>>
kv_store::get_many(const std::vector<std::string>& keys) const {
  std::vector<std::optional<bytes>> result;
  result.reserve(keys.size());
  reader r{*this};
  for (auto& key : keys) {
    auto h = find(key, *r);
    result.push_back(h.live ? std::optional<bytes>{to_bytes(h.data)} : std::nullopt);
  }
  return result;
}

void kv_store::read_each(
  const std::vector<std::string>& keys, const std::vector<uint32_t>& which,
  const std::function<void(uint32_t, std::string_view)>& found) const {
  reader r{*this};
  for (auto i : which)
    if (auto h = find(keys[i], *r); h.live)
      found(i, h.data);
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
  if (auto h = find(key, *r); h.live)
    result.value = to_bytes(h.data);
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
  // Merge up to three ordered sources, newest first: the memtable, the one
  // being flushed, LMDB. For a key in several, the newest wins (its
  // tombstone hides the older ones); a clear hides the sources below it.
  using iter = std::map<std::string, mem_entry, std::less<>>::const_iterator;
  struct table_pos {
    iter at;
    iter end;
  };
  std::vector<table_pos> tables;
  bool lmdb_visible = true;
  const memtable* layers[] = {&mem_, imm_.get()};
  for (auto* m : layers) {
    if (m == nullptr || !lmdb_visible)
      continue;
    auto at = m->entries.lower_bound(seek);
    if (at != m->entries.end() && skip_equal && at->first == seek)
      ++at;
    tables.push_back(table_pos{at, m->entries.end()});
    lmdb_visible = !m->cleared;
  }
  lmdb::cursor c{t, data_};
  bool in_lmdb = lmdb_visible && (seek.empty() ? c.first() : c.seek(seek));
  if (in_lmdb && skip_equal && c.key() == seek)
    in_lmdb = c.next();
  size_t page_bytes = 0;
  for (;;) {
    // The smallest key among the sources, and the newest source holding it.
    std::optional<std::string_view> key;
    const mem_entry* newest = nullptr;
    for (auto& tp : tables)
      if (tp.at != tp.end && (!key || std::string_view{tp.at->first} < *key)) {
        key = tp.at->first;
        newest = &tp.at->second;
      }
    if (in_lmdb && (!key || c.key() < *key)) {
      key = c.key();
      newest = nullptr;
    }
    if (!key)
      return page;
    if (!has_prefix(*key, prefix))
      return page; // keys are sorted: nothing further can match
    bool live = newest == nullptr || newest->value.has_value();
    std::string_view value = newest != nullptr ? as_view(newest->value) : c.value();
    if (live) {
      if (page.entries.size() == limit || page_bytes >= limits::max_page_bytes) {
        page.more = true;
        return page;
      }
      entry e;
      e.key = std::string{*key};
      if (req.values)
        e.value = to_bytes(value);
      page_bytes += e.key.size() + e.value.size();
      page.entries.push_back(std::move(e));
    }
    // Past this key in every source (older ones' entries are replaced).
    auto done = std::string{*key};
    for (auto& tp : tables)
      if (tp.at != tp.end && tp.at->first == done)
        ++tp.at;
    if (in_lmdb && c.key() == done)
      in_lmdb = c.next();
  }
}

uint64_t kv_store::count_locked() const {
  // Each memtable adds its live entries to what lies below, minus those
  // whose key was live below already; a clear starts from nothing.
  auto below = lmdb_entries_;
  const memtable* layers[] = {imm_.get(), &mem_};
  for (auto* m : layers)
    if (m != nullptr)
      below = m->cleared ? m->live : below + m->live - m->shadowed;
  return below;
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
  // Runs on the writer thread, the only one that changes `mem_`. The lock
  // comes first: the flusher drops `imm_` (and moves LMDB on) under it, so
  // what lies below the memtable stays put while this looks at it.
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto gen = lmdb_gen_.load();
  auto t = acquire_reader(gen);
  // Whether `key` is live below the memtable: in `imm_`, else in LMDB.
  auto live_below = [&](const std::string& key) {
    if (mem_.cleared)
      return false;
    if (imm_) {
      if (auto i = imm_->entries.find(key); i != imm_->entries.end())
        return i->second.value.has_value();
      if (imm_->cleared)
        return false;
    }
    std::string_view v;
    return t.get(data_, key, v);
  };
  for (auto& op : ops) {
    switch (op.kind) {
      case op_kind::set:
      case op_kind::del: {
        auto i = mem_.entries.find(op.key);
        if (i == mem_.entries.end()) {
          bool below = live_below(op.key);
          if (op.kind == op_kind::del && !below)
            break; // deleting a key that exists nowhere changes nothing
          i = mem_.entries.emplace(op.key, mem_entry{std::nullopt, below}).first;
          mem_.bytes += op.key.size() + 64;
          if (below) {
            // The key counted below; from now on the memtable decides.
            ++mem_.shadowed;
            i->second.value = bytes{}; // placeholder: "live" until changed
            ++mem_.live;
          }
        }
        auto& e = i->second;
        if (e.value) {
          mem_.bytes -= e.value->size();
          --mem_.live;
          if (op.kind == op_kind::del)
            ++out.deleted;
        }
        if (op.kind == op_kind::set) {
          e.value = op.value;
          mem_.bytes += op.value.size();
          ++mem_.live;
        } else {
          e.value = std::nullopt;
        }
        break;
      }
      case op_kind::clear:
        out.deleted += count_locked();
        mem_ = memtable{};
        mem_.cleared = true;
        break;
    }
  }
  // Readers see the data and its sequence number change together.
  applied_seq_ = seq;
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
        active_log().sync();
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
    active_log().append(std::move(records), durable || barrier);
  } catch (const storage_error& e) {
    if (active_log().sync_failed())
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
  after_write();
  return out;
}

// -- flushing --------------------------------------------------------------------

kv_store::flush_job kv_store::take_job(std::vector<int> logs) {
  // Runs where `mem_` and the lists change (the writer's thread), with the
  // memtable already handed over to `imm_`.
  flush_job job;
  job.applied = applied_seq_;
  for (auto& [txid, p] : prepared_)
    if (p.logged)
      job.prepared.emplace(txid, p.part);
  job.outcomes_added = std::move(outcomes_added_);
  job.outcomes_dropped = std::move(outcomes_dropped_);
  outcomes_added_.clear();
  outcomes_dropped_.clear();
  job.outcomes_floor = outcomes_floor_;
  job.logs = std::move(logs);
  return job;
}

void kv_store::give_back(flush_job& job) {
  // A job that did not make it: its lists go before the newer ones.
  job.outcomes_added.insert(job.outcomes_added.end(), outcomes_added_.begin(),
                            outcomes_added_.end());
  job.outcomes_dropped.insert(job.outcomes_dropped.end(), outcomes_dropped_.begin(),
                              outcomes_dropped_.end());
  outcomes_added_ = std::move(job.outcomes_added);
  outcomes_dropped_ = std::move(job.outcomes_dropped);
}

void kv_store::rotate() {
  // Outcomes are logged without a sync; LMDB must not get ahead of the log.
  active_log().sync();
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    imm_ = std::make_unique<memtable>(std::move(mem_));
    mem_ = memtable{};
  }
  auto job = take_job({active_});
  job.background = true;
  // The other log was emptied by the last flush: new records go there.
  active_ = 1 - active_;
  {
    std::lock_guard<std::mutex> guard{flush_mtx_};
    job_ = std::move(job);
  }
  flush_cv_.notify_all();
}

void kv_store::wait_for_flush() {
  std::unique_lock<std::mutex> guard{flush_mtx_};
  flush_cv_.wait(guard, [this] { return !job_ && !flushing_; });
}

void kv_store::after_write() {
  auto over = [this](size_t times) {
    return mem_.entries.size() >= times * opts_.flush_entries
           || mem_.bytes >= times * opts_.flush_bytes
           || active_log().size() >= 4 * times * opts_.flush_bytes;
  };
  try {
    // While the map is full, deletes may have made room: everything goes to
    // LMDB at once, deletes first (see flush).
    if (full_) {
      flush();
      return;
    }
    // Also when the log outgrows the memtable (keys rewritten over and over):
    // the log is what a restart replays.
    if (!over(1))
      return;
    if (!opts_.background_flush) {
      flush();
      return;
    }
    bool busy = false;
    {
      std::lock_guard<std::mutex> guard{flush_mtx_};
      busy = job_ || flushing_;
    }
    if (busy) {
      // Writes go on while the last memtable is flushed, up to twice the
      // thresholds; beyond that they wait for the flush (back-pressure).
      if (!over(2))
        return;
      wait_for_flush();
    }
    if (!imm_)
      rotate();
    else
      flush(); // the background flush failed: everything, here
  } catch (const storage_error&) {
    // Acknowledged anyway: the log holds it, and the next flush retries.
  }
}

void kv_store::flusher_loop() {
  std::unique_lock<std::mutex> guard{flush_mtx_};
  for (;;) {
    flush_cv_.wait(guard, [this] { return stopping_ || job_; });
    if (!job_)
      return; // stopping, and nothing to do
    auto job = std::move(*job_);
    job_.reset();
    flushing_ = true;
    guard.unlock();
    bool ok = false;
    try {
      ok = run_job(job);
    } catch (const storage_error&) {
      // An I/O error: the writer retries (see after_write).
    }
    guard.lock();
    flushing_ = false;
    if (!ok)
      failed_ = std::move(job);
    flush_cv_.notify_all();
  }
}

bool kv_store::run_job(flush_job& job) {
  // The emptied logs' next epochs, recorded with the data they went into.
  job.epochs.resize(job.logs.size());
  for (auto& e : job.epochs)
    e = fresh_epoch();
  // Deletes first, in a transaction of their own: on a full map they free the
  // space the values need. Then the values, with the sequence number.
  if (!commit_batch(job, true)) {
    full_ = true;
    return false;
  }
  STRATA_FAULT_POINT("store.mid_flush"); // test builds: deletes in LMDB, values not
  if (!commit_batch(job, false)) {
    // LMDB reuses the pages a transaction freed only two transactions later
    // (the previous snapshot stays intact for readers): let the pages the
    // deletes freed mature with one small transaction, then try again.
    if (!mature_free_pages() || !commit_batch(job, false)) {
      full_ = true;
      return false;
    }
  }
  full_ = false;
  ++flushes_;
  STRATA_FAULT_POINT("store.after_flush"); // test builds: in LMDB, logs not emptied
  for (size_t k = 0; k < job.logs.size(); ++k) {
    auto i = job.logs[k];
    logs_[i]->reset(job.epochs[k]);
    log_epoch_[i] = job.epochs[k];
  }
  return true;
}

bool kv_store::flush() {
  // A broken shard's memtable may lack records its log holds: flushing it
  // would empty the log and lose them. Only a reopen (a replay) repairs it.
  if (!broken_.empty())
    throw storage_error{errc::consistency_violation, broken_};
  wait_for_flush();
  if (failed_) {
    give_back(*failed_);
    failed_.reset();
  }
  if (mem_.empty() && !imm_ && !prepared_dirty_ && outcomes_added_.empty()
      && outcomes_dropped_.empty())
    return true;
  // Outcomes are logged without a sync; LMDB must not get ahead of the log.
  active_log().sync();
  {
    // Everything becomes one memtable: the newer one's entries replace the
    // older one's (a clear in the newer one drops the older one).
    std::unique_lock<std::shared_mutex> guard{mtx_};
    if (!imm_ || mem_.cleared) {
      imm_ = std::make_unique<memtable>(std::move(mem_));
    } else {
      for (auto& [key, e] : mem_.entries) {
        auto i = imm_->entries.find(key);
        if (i != imm_->entries.end())
          i->second.value = std::move(e.value); // live in LMDB as before
        else // not in `imm_`: live below it means live in LMDB
          imm_->entries.emplace(key, mem_entry{std::move(e.value), e.below && !imm_->cleared});
      }
      recount(*imm_);
    }
    mem_ = memtable{};
  }
  // It covers every record of both logs.
  auto job = take_job({0, 1});
  if (!run_job(job)) {
    give_back(job);
    return false;
  }
  prepared_dirty_ = false;
  return true;
}

void kv_store::recount(memtable& m) {
  m.live = 0;
  m.shadowed = 0;
  m.bytes = 0;
  for (auto& [key, e] : m.entries) {
    m.live += e.value ? 1 : 0;
    m.shadowed += e.below ? 1 : 0;
    m.bytes += key.size() + 64 + (e.value ? e.value->size() : 0);
  }
}

bool kv_store::commit_batch(flush_job& job, bool tombstones) {
  // `imm_` changes only here (and in flush, while no job runs), so reading
  // it without the lock is safe.
  auto& table = *imm_;
  // In the background, in transactions of about `flush_chunk_bytes` each:
  // every commit's sync then writes that much, and a log sync of the writer
  // never waits behind the whole memtable's pages (measured: write latency's
  // maximum 59-86 ms with one transaction, 22-33 ms so). Until the last one,
  // LMDB holds part of `imm_`, which hides it from readers, and a replay
  // after a crash writes the same values again. The writer's own flushes
  // (it waits anyway) take one transaction: fewer syncs.
  auto chunk = job.background ? flush_chunk_bytes : SIZE_MAX;
  auto next = table.entries.begin();
  uint64_t entries = 0;
  bool first = true;
  for (;;) {
    auto from = next;
    auto attempt = [&] {
      auto t = lmdb::txn::write(env_);
      if (first && tombstones && table.cleared)
        t.clear(data_);
      size_t written = 0;
      auto i = from;
      for (; i != table.entries.end() && written < chunk; ++i) {
        auto& [key, e] = *i;
        if (tombstones && !e.value && e.below && !table.cleared) {
          t.del(data_, key);
          written += key.size() + 64;
        } else if (!tombstones && e.value) {
          t.put(data_, key, as_view(*e.value));
          written += key.size() + e.value->size() + 64;
        }
      }
      if (!tombstones && i == table.entries.end()) {
        // Prepared transactions outlive the logs, which are emptied next.
        t.clear(prepared_db_);
        for (auto& [txid, part] : job.prepared)
          t.put(prepared_db_, txid_key(txid), wal::encode_part(part));
        // One-phase commits the logs held, and those let go since.
        for (auto txid : job.outcomes_added)
          t.put(outcomes_db_, txid_key(txid), "");
        for (auto txid : job.outcomes_dropped)
          t.del(outcomes_db_, txid_key(txid));
        t.put(meta_, "outcomes_floor", std::to_string(job.outcomes_floor));
        t.put(meta_, "applied", std::to_string(job.applied));
        for (size_t k = 0; k < job.logs.size(); ++k)
          t.put(meta_, job.logs[k] == 0 ? "wal_epoch" : "wal_epoch.1",
                std::to_string(job.epochs[k]));
      }
      entries = t.entries(data_);
      t.commit();
      next = i;
    };
    // Deletes may borrow headroom on a full map; values may not.
    if (!(tombstones ? with_headroom(attempt) : fits(attempt)))
      return false;
    first = false;
    if (next == table.entries.end())
      break;
    // Readers let go of the older snapshot, so that LMDB can reuse its pages.
    std::unique_lock<std::shared_mutex> guard{mtx_};
    ++lmdb_gen_;
    unpin_readers();
  }
  // LMDB now holds what was committed: drop it from the memtable, and make
  // readers take a new snapshot.
  std::unique_lock<std::shared_mutex> guard{mtx_};
  ++lmdb_gen_;
  unpin_readers();
  lmdb_entries_ = entries;
  if (!tombstones) {
    imm_.reset();
    return true;
  }
  for (auto i = table.entries.begin(); i != table.entries.end();) {
    if (!i->second.value)
      i = table.entries.erase(i);
    else
      ++i;
  }
  if (table.cleared) { // LMDB is empty now: nothing lies below
    table.cleared = false;
    for (auto& kv : table.entries)
      kv.second.below = false;
  }
  recount(table);
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

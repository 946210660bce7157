#include "backends/lmdb_engine.hpp"

#include <algorithm>
#include <filesystem>
#include <random>
#include <system_error>

#include "backends/fault.hpp"

namespace strata {

namespace {

/// The layout of the directory: 1 wrote WAL records of types 0-4, 2 writes
/// batches (type 5). A format-1 directory is upgraded on open; a binary that
/// knows only format 1 then refuses it instead of taking batches for a torn
/// tail.
constexpr std::string_view format_version = "2";

lmdb::env open_env(const engine_options& opts) {
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  if (ec)
    throw storage_error{errc::connection_failed,
                        "cannot create shard directory " + opts.dir + ": "
                          + ec.message()};
  lmdb::env_options eo;
  eo.map_size = opts.map_size;
  eo.no_sync = opts.no_sync;
  // Read-ahead only wastes I/O when reads land at random.
  eo.no_readahead = opts.hints.access == "random";
  return lmdb::env{opts.dir, eo};
}

/// About how much one transaction of a background flush writes (see
/// commit_batch).
constexpr size_t flush_chunk_bytes = size_t{1} << 20;

std::string_view as_view(const std::optional<bytes>& x) {
  return x ? view_of(*x) : std::string_view{};
}

/// A random, non-zero epoch for the write-ahead log.
uint64_t fresh_epoch() {
  std::random_device rd;
  uint64_t x = 0;
  while (x == 0)
    x = (uint64_t{rd()} << 32) ^ rd();
  return x;
}

} // namespace

bool lmdb_engine::memtable::empty() const noexcept {
  return std::all_of(spaces.begin(), spaces.end(), [](const table& t) {
    return t.entries.empty() && !t.cleared;
  });
}

/// Holds the memtable lock shared and borrows a pooled read transaction,
/// renewed after the lock was taken, for one read.
class lmdb_engine::snapshot final : public engine_snapshot {
public:
  explicit snapshot(const lmdb_engine& owner)
    : owner_(owner), guard_(owner.mtx_), gen_(owner.lmdb_gen_.load()),
      txn_(owner.acquire_reader(gen_)) {
    // nop
  }

  ~snapshot() override {
    owner_.release_reader(std::move(txn_), gen_);
  }

  uint64_t seq() const override {
    return owner_.applied_seq_;
  }

  bool get(keyspace ks, std::string_view key, std::string_view& value) const override {
    auto h = owner_.find(ks, key, txn_);
    value = h.data;
    return h.live;
  }

  void scan(keyspace ks, std::string_view from, bool skip_from,
            function_ref<bool(std::string_view, std::string_view)> f) const override;

  uint64_t count(keyspace ks) const override {
    return owner_.count_locked(ks);
  }

private:
  const lmdb_engine& owner_;
  std::shared_lock<std::shared_mutex> guard_;
  uint64_t gen_;
  lmdb::txn txn_;
};

void lmdb_engine::snapshot::scan(
  keyspace ks, std::string_view from, bool skip_from,
  function_ref<bool(std::string_view, std::string_view)> f) const {
  // Merge up to three ordered sources, newest first: the memtable, the one
  // being flushed, LMDB. For a key in several, the newest wins (its
  // tombstone hides the older ones); a clear hides the sources below it.
  auto s = static_cast<size_t>(ks);
  struct table_pos {
    entry_map::const_iterator at;
    entry_map::const_iterator end;
  };
  table_pos tables[2];
  size_t n = 0;
  bool lmdb_visible = true;
  const memtable* layers[] = {&owner_.mem_, owner_.imm_.get()};
  for (auto* m : layers) {
    if (m == nullptr || !lmdb_visible)
      continue;
    auto& tab = m->spaces[s];
    auto at = tab.entries.lower_bound(from);
    if (at != tab.entries.end() && skip_from && at->first == from)
      ++at;
    tables[n++] = table_pos{at, tab.entries.end()};
    lmdb_visible = !tab.cleared;
  }
  lmdb::cursor c{txn_, owner_.dbs_[s]};
  bool in_lmdb = lmdb_visible && (from.empty() ? c.first() : c.seek(from));
  if (in_lmdb && skip_from && c.key() == from)
    in_lmdb = c.next();
  for (;;) {
    // The smallest key among the sources, and the newest source holding it.
    std::optional<std::string_view> key;
    const mem_entry* newest = nullptr;
    for (size_t i = 0; i < n; ++i) {
      auto& tp = tables[i];
      if (tp.at != tp.end && (!key || std::string_view{tp.at->first} < *key)) {
        key = tp.at->first;
        newest = &tp.at->second;
      }
    }
    if (in_lmdb && (!key || c.key() < *key)) {
      key = c.key();
      newest = nullptr;
    }
    if (!key)
      return;
    // Both kinds of key outlive the steps below: a memtable's, and LMDB's in
    // a read transaction's pages.
    auto done = *key;
    if (newest == nullptr || newest->value.has_value()) {
      auto value = newest != nullptr ? as_view(newest->value) : c.value();
      if (!f(done, value))
        return;
    }
    // Past this key in every source (older ones' entries are replaced).
    for (size_t i = 0; i < n; ++i) {
      auto& tp = tables[i];
      if (tp.at != tp.end && tp.at->first == done)
        ++tp.at;
    }
    if (in_lmdb && c.key() == done)
      in_lmdb = c.next();
  }
}

lmdb_engine::lmdb_engine(engine_options opts)
  : opts_(std::move(opts)), env_(open_env(opts_)) {
  // Write-heavy: a larger memtable, so fewer and larger LMDB transactions
  // carry the same writes (the WAL keeps them durable meanwhile).
  if (opts_.hints.access == "write-heavy") {
    opts_.flush_entries *= 4;
    opts_.flush_bytes *= 4;
  }
  // A small map must learn that it is full while the memtable is small.
  opts_.flush_bytes = std::min<size_t>(opts_.flush_bytes, opts_.map_size / 64);
  // Named databases are opened once, in one write transaction, before any
  // other transaction can use their handles.
  auto t = lmdb::txn::write(env_);
  for (size_t s = 0; s < keyspace_count; ++s)
    dbs_[s] = t.open_db(keyspace_name(static_cast<keyspace>(s)), true);
  own_ = t.open_db("engine", true);
  auto meta = own_;
  std::string_view found;
  // Format 1 kept these keys among the shard's metadata: they move here.
  for (auto key : {"format", "applied", "seq_floor", "wal_epoch", "wal_epoch.1", "flushes"}) {
    auto shared = dbs_[static_cast<size_t>(keyspace::meta)];
    if (t.get(shared, key, found)) {
      t.put(own_, key, std::string{found});
      t.del(shared, key);
    }
  }
  if (t.get(meta, "format", found) && found != "1" && found != format_version)
    throw storage_error{errc::consistency_violation,
                        opts_.dir + " has format " + std::string{found}
                          + ", which this version of strata cannot read"};
  t.put(meta, "format", format_version);
  if (t.get(meta, "applied", found))
    applied_seq_ = parse_stored_number(found, opts_.dir);
  if (t.get(meta, "seq_floor", found))
    seq_floor_ = parse_stored_number(found, opts_.dir);
  if (t.get(meta, "wal_epoch", found))
    log_epoch_[0] = parse_stored_number(found, opts_.dir);
  if (t.get(meta, "wal_epoch.1", found))
    log_epoch_[1] = parse_stored_number(found, opts_.dir);
  for (size_t s = 0; s < keyspace_count; ++s)
    lmdb_entries_[s] = t.entries(dbs_[s]);
  t.commit();
  for (int i = 0; i < 2; ++i) {
    logs_[i] = std::make_unique<wal>(opts_.dir + (i == 0 ? "/wal.log" : "/wal.1.log"),
                                     !opts_.no_sync);
    logs_[i]->set_epoch(log_epoch_[i]);
  }
  replay();
  flusher_ = std::thread{[this] { flusher_loop(); }};
}

lmdb_engine::~lmdb_engine() {
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

const engine_capabilities& lmdb_engine::capabilities() const {
  static const engine_capabilities caps{};
  return caps;
}

void lmdb_engine::read(function_ref<void(const engine_snapshot&)> f) const {
  snapshot s{*this};
  f(s);
}

void lmdb_engine::replay_legacy(wal_record& rec) {
  // Format 1's records, as the batches that do the same.
  auto key = txid_key(rec.txid);
  std::vector<operation> aux;
  engine_batch batch;
  batch_effect ignored;
  switch (rec.kind) {
    case wal_record::type::batch:
      return;
    case wal_record::type::write:
      batch.parts.push_back({keyspace::data, &rec.ops});
      break;
    case wal_record::type::commit_one:
      aux.push_back(operation::set(key, {}));
      batch.parts.push_back({keyspace::data, &rec.ops});
      batch.parts.push_back({keyspace::outcomes, &aux});
      break;
    case wal_record::type::prepare: {
      auto part = wal::encode_part(rec.part);
      aux.push_back(operation::set(key, bytes(part.begin(), part.end())));
      batch.parts.push_back({keyspace::prepared, &aux});
      break;
    }
    case wal_record::type::commit:
    case wal_record::type::abort: {
      // The prepared part, as the records before this one left it.
      std::optional<txn_part> part;
      read([&](const engine_snapshot& s) {
        std::string_view found;
        txn_part p;
        if (s.get(keyspace::prepared, key, found) && wal::decode_part(found, p))
          part = std::move(p);
      });
      if (!part)
        return; // resolved before
      aux.push_back(operation::del(key));
      if (rec.kind == wal_record::type::commit) {
        rec.ops = std::move(part->writes);
        batch.parts.push_back({keyspace::data, &rec.ops});
      }
      batch.parts.push_back({keyspace::prepared, &aux});
      break;
    }
  }
  ignored.seq = rec.seq;
  apply_batch(batch, ignored);
}

void lmdb_engine::replay() {
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
      if (rec.kind == wal_record::type::batch) {
        engine_batch batch;
        for (auto& [space, ops] : rec.parts)
          batch.parts.push_back({space, &ops});
        batch_effect ignored;
        ignored.seq = rec.seq;
        apply_batch(batch, ignored);
      } else {
        replay_legacy(rec);
      }
      applied_seq_ = rec.seq;
      next_seq_ = rec.seq + 1;
    }
  // New records go to the log that held the newer ones.
  active_ = records[1 - first].empty() ? first : 1 - first;
  // Sequence numbers handed out before a crash may not all be on disk
  // (batches applied without a sync are seen by reads before their sync).
  // New ones start far above any of them, durably before the first is handed
  // out, so that a read from before the crash cannot validate against
  // another write that reused its number.
  applied_seq_ = std::max(applied_seq_, seq_floor_) + seq_gap;
  next_seq_ = applied_seq_ + 1;
  seq_floor_ = applied_seq_;
  // The logs are emptied now: into LMDB by a flush (which starts new
  // epochs), or, if LMDB holds all of them already, right here. Only a full
  // map keeps them.
  bool emptied = true;
  if (!mem_.empty())
    emptied = flush();
  uint64_t epochs[2];
  for (int i = 0; i < 2; ++i)
    epochs[i] = emptied ? fresh_epoch() : logs_[i]->epoch();
  auto meta = own_;
  if (!with_headroom([&] {
        if (STRATA_FAIL_POINT("store.record_floor")) // test builds: a full map
          throw storage_error{errc::storage_full, "injected: map full"};
        auto t = lmdb::txn::write(env_);
        t.put(meta, "seq_floor", std::to_string(seq_floor_));
        t.put(meta, "wal_epoch", std::to_string(epochs[0]));
        t.put(meta, "wal_epoch.1", std::to_string(epochs[1]));
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

lmdb::txn lmdb_engine::acquire_reader(uint64_t gen) const {
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

void lmdb_engine::release_reader(lmdb::txn t, uint64_t gen) const {
  if (!t)
    return;
  std::lock_guard<std::mutex> guard{readers_mtx_};
  readers_.push_back(pooled_reader{std::move(t), gen});
}

void lmdb_engine::unpin_readers() {
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

lmdb_engine::hit lmdb_engine::find(keyspace ks, std::string_view key,
                                   const lmdb::txn& t) const {
  // The newest layer that knows the key decides; a clear hides what is below.
  auto s = static_cast<size_t>(ks);
  const memtable* layers[] = {&mem_, imm_.get()};
  for (auto* m : layers) {
    if (m == nullptr)
      continue;
    auto& tab = m->spaces[s];
    if (auto i = tab.entries.find(key); i != tab.entries.end())
      return {i->second.value.has_value(), as_view(i->second.value)};
    if (tab.cleared)
      return {};
  }
  hit result;
  result.live = !key.empty() && t.get(dbs_[s], key, result.data);
  return result;
}

uint64_t lmdb_engine::count_locked(keyspace ks) const {
  // Each memtable adds its live entries to what lies below, minus those
  // whose key was live below already; a clear starts from nothing.
  auto s = static_cast<size_t>(ks);
  auto below = lmdb_entries_[s];
  const memtable* layers[] = {imm_.get(), &mem_};
  for (auto* m : layers)
    if (m != nullptr) {
      auto& tab = m->spaces[s];
      below = tab.cleared ? tab.live : below + tab.live - tab.shadowed;
    }
  return below;
}

engine_info lmdb_engine::info() const {
  engine_info result;
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
  result.flushes = flushes_;
  result.tuning = {"map_size=" + std::to_string(ei.me_mapsize),
                   std::string{"readahead="} + (env_.flags() & MDB_NORDAHEAD ? "off" : "on"),
                   "memtable_entries=" + std::to_string(opts_.flush_entries),
                   "memtable_bytes=" + std::to_string(opts_.flush_bytes)};
  return result;
}

void lmdb_engine::apply_one(keyspace ks, const std::vector<operation>& ops,
                            batch_effect& effect, bool images, const lmdb::txn& t) {
  auto s = static_cast<size_t>(ks);
  auto& tab = mem_.spaces[s];
  // What `key` looks like below the memtable: in `imm_`, else in LMDB.
  auto below = [&](const std::string& key) -> hit {
    if (tab.cleared)
      return {};
    if (imm_) {
      auto& older = imm_->spaces[s];
      if (auto i = older.entries.find(key); i != older.entries.end())
        return {i->second.value.has_value(), as_view(i->second.value)};
      if (older.cleared)
        return {};
    }
    hit h;
    h.live = t.get(dbs_[s], key, h.data);
    return h;
  };
  bool data = ks == keyspace::data;
  images = images && data;
  for (auto& op : ops) {
    switch (op.kind) {
      case op_kind::set:
      case op_kind::del: {
        auto i = tab.entries.find(op.key);
        if (i == tab.entries.end()) {
          auto h = below(op.key);
          if (images)
            effect.before.push_back(h.live ? std::optional<bytes>{bytes_of(h.data)}
                                            : std::nullopt);
          if (op.kind == op_kind::del && !h.live)
            break; // deleting a key that exists nowhere changes nothing
          i = tab.entries.emplace(op.key, mem_entry{std::nullopt, h.live}).first;
          mem_.bytes += op.key.size() + 64;
          ++mem_.entries;
          if (h.live) {
            // The key counted below; from now on the memtable decides.
            ++tab.shadowed;
            i->second.value = bytes{}; // placeholder: "live" until changed
            ++tab.live;
          }
        } else if (images) {
          effect.before.push_back(i->second.value);
        }
        auto& e = i->second;
        if (e.value) {
          mem_.bytes -= e.value->size();
          --tab.live;
          if (op.kind == op_kind::del && data)
            ++effect.deleted;
        }
        if (op.kind == op_kind::set) {
          e.value = op.value;
          mem_.bytes += op.value.size();
          ++tab.live;
        } else {
          e.value = std::nullopt;
        }
        break;
      }
      case op_kind::clear:
        if (data)
          effect.deleted += count_locked(ks);
        mem_.entries -= tab.entries.size();
        tab = table{};
        tab.cleared = true;
        break;
    }
  }
}

void lmdb_engine::apply_batch(const engine_batch& batch, batch_effect& effect) {
  apply_fault_point(batch); // test builds: as an LMDB read error
  // Runs on the writer thread, the only one that changes `mem_`. The lock
  // comes first: the flusher drops `imm_` (and moves LMDB on) under it, so
  // what lies below the memtable stays put while this looks at it.
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto gen = lmdb_gen_.load();
  auto t = acquire_reader(gen);
  for (auto& part : batch.parts)
    apply_one(part.space, *part.ops, effect, batch.before_images, t);
  // Readers see the data and its sequence number change together.
  applied_seq_ = effect.seq;
  release_reader(std::move(t), gen);
}

apply_result lmdb_engine::apply(const std::vector<engine_batch>& group, bool sync) {
  apply_result out;
  if (!broken_.empty()) {
    out.code = errc::transaction_aborted;
    out.message = broken_;
    return out;
  }
  if (group.empty()) {
    if (sync)
      this->sync();
    out.logged = true;
    return out;
  }
  std::vector<std::string> records;
  records.reserve(group.size());
  auto seq = next_seq_;
  for (auto& batch : group)
    records.push_back(wal::encode_batch(seq++, batch));
  try {
    active_log().append(std::move(records), sync);
  } catch (const storage_error& e) {
    if (active_log().sync_failed())
      broken_ = std::string{e.what()} + "; reopen the shard to recover from its log";
    // Their numbers are not handed out again: should cutting the log back
    // have failed too, the records are still there.
    next_seq_ = seq;
    out.code = e.code();
    out.message = e.what();
    return out;
  }
  out.logged = true;
  out.effects.resize(group.size());
  auto first = next_seq_;
  next_seq_ = seq;
  try {
    for (size_t i = 0; i < group.size(); ++i) {
      out.effects[i].seq = first + i;
      apply_batch(group[i], out.effects[i]);
    }
  } catch (const storage_error& e) {
    // Logged but not applied: only a replay can make memory and disk agree
    // again, so the engine refuses writes until it is reopened. The group is
    // durable and a reopen applies it, hence CONSISTENCY_VIOLATION.
    broken_ = std::string{e.what()} + "; reopen the shard to recover from its log";
    out.code = errc::consistency_violation;
    out.message = "logged but not applied: " + broken_;
    out.effects.clear();
    return out;
  }
  after_write();
  return out;
}

void lmdb_engine::sync() {
  if (!broken_.empty())
    throw storage_error{errc::transaction_aborted, broken_};
  try {
    active_log().sync();
  } catch (const storage_error& e) {
    broken_ = std::string{e.what()} + "; reopen the shard to recover from its log";
    throw storage_error{e.code(), broken_};
  }
}

// -- flushing --------------------------------------------------------------------

void lmdb_engine::rotate() {
  // Batches may be applied without a sync; LMDB must not get ahead of the log.
  active_log().sync();
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    imm_ = std::make_unique<memtable>(std::move(mem_));
    mem_ = memtable{};
  }
  flush_job job;
  job.applied = applied_seq_;
  job.logs = {active_};
  job.background = true;
  // The other log was emptied by the last flush: new records go there.
  active_ = 1 - active_;
  {
    std::lock_guard<std::mutex> guard{flush_mtx_};
    job_ = std::move(job);
  }
  flush_cv_.notify_all();
}

void lmdb_engine::wait_for_flush() {
  std::unique_lock<std::mutex> guard{flush_mtx_};
  flush_cv_.wait(guard, [this] { return !job_ && !flushing_; });
}

void lmdb_engine::after_write() {
  auto over = [this](size_t times) {
    return mem_.entries >= times * opts_.flush_entries
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

void lmdb_engine::flusher_loop() {
  std::unique_lock<std::mutex> guard{flush_mtx_};
  for (;;) {
    flush_cv_.wait(guard, [this] { return stopping_ || job_; });
    if (!job_)
      return; // stopping, and nothing to do
    auto job = std::move(*job_);
    job_.reset();
    flushing_ = true;
    guard.unlock();
    try {
      // A job that fails (full map, I/O) leaves `imm_` in place: the
      // writer's next flush takes it (see after_write).
      run_job(job);
    } catch (const storage_error&) {
      // As above.
    }
    guard.lock();
    flushing_ = false;
    flush_cv_.notify_all();
  }
}

bool lmdb_engine::run_job(flush_job& job) {
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

bool lmdb_engine::flush() {
  // A broken engine's memtable may lack records its log holds: flushing it
  // would empty the log and lose them. Only a reopen (a replay) repairs it.
  if (!broken_.empty())
    throw storage_error{errc::consistency_violation, broken_};
  wait_for_flush();
  if (mem_.empty() && !imm_)
    return true;
  // Batches may be applied without a sync; LMDB must not get ahead of the log.
  active_log().sync();
  {
    // Everything becomes one memtable: the newer one's entries replace the
    // older one's (a clear in the newer one drops the older one's space).
    std::unique_lock<std::shared_mutex> guard{mtx_};
    if (!imm_) {
      imm_ = std::make_unique<memtable>(std::move(mem_));
    } else {
      for (size_t s = 0; s < keyspace_count; ++s) {
        auto& newer = mem_.spaces[s];
        auto& older = imm_->spaces[s];
        if (newer.cleared) {
          older = std::move(newer);
          continue;
        }
        for (auto& [key, e] : newer.entries) {
          auto i = older.entries.find(key);
          if (i != older.entries.end())
            i->second.value = std::move(e.value); // live in LMDB as before
          else // not in the older table: live below it means live in LMDB
            older.entries.emplace(key, mem_entry{std::move(e.value),
                                                 e.below && !older.cleared});
        }
      }
      recount(*imm_);
    }
    mem_ = memtable{};
  }
  // It covers every record of both logs.
  flush_job job;
  job.applied = applied_seq_;
  job.logs = {0, 1};
  return run_job(job);
}

void lmdb_engine::recount(memtable& m) {
  m.entries = 0;
  m.bytes = 0;
  for (auto& tab : m.spaces) {
    tab.live = 0;
    tab.shadowed = 0;
    m.entries += tab.entries.size();
    for (auto& [key, e] : tab.entries) {
      tab.live += e.value ? 1 : 0;
      tab.shadowed += e.below ? 1 : 0;
      m.bytes += key.size() + 64 + (e.value ? e.value->size() : 0);
    }
  }
}

bool lmdb_engine::commit_batch(flush_job& job, bool tombstones) {
  // `imm_` changes only here (and in flush, while no job runs), so reading
  // it without the lock is safe.
  auto& m = *imm_;
  // In the background, in transactions of about `flush_chunk_bytes` each:
  // every commit's sync then writes that much, and a log sync of the writer
  // never waits behind the whole memtable's pages (measured: write latency's
  // maximum 59-86 ms with one transaction, 22-33 ms so). Until the last one,
  // LMDB holds part of `imm_`, which hides it from readers, and a replay
  // after a crash writes the same values again. The writer's own flushes
  // (it waits anyway) take one transaction: fewer syncs.
  auto chunk = job.background ? flush_chunk_bytes : SIZE_MAX;
  size_t space = 0;
  auto next = m.spaces[0].entries.begin();
  std::array<uint64_t, keyspace_count> entries{};
  bool first = true;
  auto meta = own_;
  for (;;) {
    auto from_space = space;
    auto from = next;
    auto attempt = [&] {
      auto t = lmdb::txn::write(env_);
      if (first && tombstones)
        for (size_t s = 0; s < keyspace_count; ++s)
          if (m.spaces[s].cleared)
            t.clear(dbs_[s]);
      size_t written = 0;
      auto s = from_space;
      auto i = from;
      while (s < keyspace_count && written < chunk) {
        auto& tab = m.spaces[s];
        if (i == tab.entries.end()) {
          if (++s < keyspace_count)
            i = m.spaces[s].entries.begin();
          continue;
        }
        auto& [key, e] = *i;
        if (tombstones && !e.value && e.below && !tab.cleared) {
          t.del(dbs_[s], key);
          written += key.size() + 64;
        } else if (!tombstones && e.value) {
          t.put(dbs_[s], key, view_of(*e.value));
          written += key.size() + e.value->size() + 64;
        }
        ++i;
      }
      if (!tombstones && s == keyspace_count) {
        t.put(meta, "applied", std::to_string(job.applied));
        for (size_t k = 0; k < job.logs.size(); ++k)
          t.put(meta, job.logs[k] == 0 ? "wal_epoch" : "wal_epoch.1",
                std::to_string(job.epochs[k]));
      }
      for (size_t k = 0; k < keyspace_count; ++k)
        entries[k] = t.entries(dbs_[k]);
      t.commit();
      space = s;
      next = i;
    };
    // Deletes may borrow headroom on a full map; values may not.
    if (!(tombstones ? with_headroom(attempt) : fits(attempt)))
      return false;
    first = false;
    if (space == keyspace_count)
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
  for (auto& tab : m.spaces) {
    for (auto i = tab.entries.begin(); i != tab.entries.end();) {
      if (!i->second.value)
        i = tab.entries.erase(i);
      else
        ++i;
    }
    if (tab.cleared) { // LMDB is empty now: nothing lies below
      tab.cleared = false;
      for (auto& kv : tab.entries)
        kv.second.below = false;
    }
  }
  recount(m);
  return true;
}

bool lmdb_engine::mature_free_pages() {
  return with_headroom([&] {
    auto t = lmdb::txn::write(env_);
    t.put(own_, "flushes", std::to_string(flushes_.load()));
    t.commit();
    std::unique_lock<std::shared_mutex> guard{mtx_};
    ++lmdb_gen_;
    unpin_readers();
  });
}

bool lmdb_engine::fits(const std::function<void()>& txn) {
  try {
    txn();
    return true;
  } catch (const storage_error& e) {
    if (e.code() != errc::storage_full)
      throw;
    return false;
  }
}

bool lmdb_engine::with_headroom(const std::function<void()>& txn) {
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

void lmdb_engine::resize_map(uint64_t size) {
  // Remapping is allowed only without live transactions; the caller holds the
  // exclusive lock, so the pooled ones are idle.
  ++lmdb_gen_;
  unpin_readers();
  lmdb::check(mdb_env_set_mapsize(env_.get(), size), "cannot resize the map");
}

} // namespace strata

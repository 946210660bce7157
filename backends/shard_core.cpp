#include "backends/shard_core.hpp"
#include "backends/unique.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>

#include "backends/engines.hpp"
#include "backends/wal.hpp"

namespace strata {

std::string key_problem(std::string_view key, bool reserved_ok) {
  if (key.empty())
    return "key is empty; keys are 1 to 511 bytes";
  if (reserved_key(key) && !reserved_ok)
    return "key begins with a zero byte; such keys are reserved for the store";
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

bool has_prefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

} // namespace

shard_core::shard_core(shard_core_options opts)
  : opts_(std::move(opts)), engine_(open_engine(opts_)) {
  recover();
}

shard_core::~shard_core() = default;

void shard_core::recover() {
  const std::pair<const char*, std::string> identity[] = {
    {"store", opts_.store_id},
    {"shard", std::to_string(opts_.shard)},
    {"shards", std::to_string(opts_.shard_count)},
  };
  bool fresh = false;
  uint64_t seq = 0;
  engine_->read([&](const engine_snapshot& s) {
    seq = s.seq();
    std::string_view found;
    fresh = !s.get(keyspace::meta, "store", found);
    for (auto& [key, value] : identity) {
      if (fresh)
        break;
      if (!s.get(keyspace::meta, key, found))
        found = "(missing)";
      if (found != value)
        throw storage_error{
          errc::consistency_violation,
          opts_.dir + " was created with " + key + " = " + std::string{found}
            + " but is opened with " + key + " = " + value
            + "; open it with the settings it was created with"};
    }
    if (s.get(keyspace::meta, "outcomes_floor", found))
      outcomes_floor_ = parse_stored_number(found, opts_.dir);
    // Transactions prepared before the restart: in doubt until their
    // coordinator answers, and locked until then.
    s.scan(keyspace::prepared, {}, false, [&](std::string_view key, std::string_view value) {
      prepared_txn p;
      uint64_t txid = 0;
      if (!txid_of(key, txid) || !wal::decode_part(value, p.part))
        throw storage_error{errc::consistency_violation,
                            opts_.dir + ": a prepared transaction record is corrupt"};
      p.logged = true;
      cc_.lock(txid, p.part);
      prepared_.emplace(txid, std::move(p));
      return true;
    });
    s.scan(keyspace::outcomes, {}, false, [&](std::string_view key, std::string_view) {
      uint64_t txid = 0;
      if (!txid_of(key, txid))
        throw storage_error{errc::consistency_violation,
                            opts_.dir + ": a one-phase commit record is corrupt"};
      outcomes_.emplace(txid, true);
      return true;
    });
  });
  // Transactions validate from here on: reads from before the open are too
  // old (the engine's numbers start above any handed out before).
  cc_.reset(seq);
  while (outcomes_.size() > remembered_commits) {
    auto oldest = outcomes_.begin();
    outcomes_floor_ = std::max(outcomes_floor_, oldest->first);
    dropped_.push_back(oldest->first);
    outcomes_.erase(oldest);
  }
  if (!fresh)
    return;
  std::vector<operation> ops;
  for (auto& [key, value] : identity)
    ops.push_back(operation::set(key, bytes(value.begin(), value.end())));
  engine_batch batch;
  batch.parts.push_back({keyspace::meta, &ops});
  auto res = engine_->apply({batch}, true);
  if (res.code != errc::none)
    throw storage_error{res.code, opts_.dir + ": cannot record the shard's identity: "
                                    + res.message};
}

void shard_core::add_hook(std::shared_ptr<write_hook> hook) {
  hooks_.push_back(std::move(hook));
}

void shard_core::attach_indexes(std::shared_ptr<index_set> indexes) {
  indexes_ = std::move(indexes);
}

void shard_core::write_spaces(const derived_writes& writes) {
  engine_batch batch;
  for (auto& [space, ops] : writes) {
    if (space == keyspace::data)
      throw storage_error{errc::invalid_value, "write_spaces does not write data"};
    if (!ops.empty())
      batch.parts.push_back({space, &ops});
  }
  if (batch.parts.empty())
    return;
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto res = engine_->apply({batch}, true);
  if (res.code != errc::none)
    throw storage_error{res.code, opts_.dir + ": " + res.message};
}

namespace {

/// The engine's data space with a group's earlier writes on top.
class overlay final : public pending_data {
public:
  overlay(const engine_snapshot& below,
          const std::map<std::string, std::optional<bytes>, std::less<>>& written,
          bool cleared, bool planned, uint64_t seq, uint64_t txid, bool full)
    : below_(below), written_(written), cleared_(cleared), planned_(planned), seq_(seq),
      txid_(txid), full_(full) {
    // nop
  }

  bool full() const override {
    return full_;
  }

  bool planned() const override {
    return planned_;
  }

  uint64_t seq() const override {
    return seq_;
  }

  uint64_t txid() const override {
    return txid_;
  }

  const engine_snapshot* snapshot() const override {
    return &below_;
  }

  bool get(std::string_view key, std::string_view& value) const override {
    if (auto i = written_.find(key); i != written_.end()) {
      if (!i->second)
        return false;
      value = view_of(*i->second);
      return true;
    }
    return !cleared_ && below_.get(keyspace::data, key, value);
  }

private:
  const engine_snapshot& below_;
  const std::map<std::string, std::optional<bytes>, std::less<>>& written_;
  bool cleared_;
  bool planned_;
  uint64_t seq_;
  uint64_t txid_;
  bool full_;
};

} // namespace

void shard_core::remember(uint64_t txid, bool committed) {
  outcomes_[txid] = committed;
  while (outcomes_.size() > remembered_commits) {
    auto oldest = outcomes_.begin();
    outcomes_floor_ = std::max(outcomes_floor_, oldest->first);
    if (oldest->second)
      dropped_.push_back(oldest->first);
    outcomes_.erase(oldest);
  }
}

commit_status shard_core::status_of(uint64_t txid) {
  if (auto i = outcomes_.find(txid); i != outcomes_.end())
    return i->second ? commit_status::committed : commit_status::not_committed;
  if (txid <= outcomes_floor_)
    return commit_status::forgotten;
  remember(txid, false); // the fence
  return commit_status::not_committed;
}

// -- reads ---------------------------------------------------------------------

std::optional<bytes> shard_core::get(std::string_view key) const {
  std::optional<bytes> result;
  engine_->read([&](const engine_snapshot& s) {
    std::string_view v;
    if (s.get(keyspace::data, key, v))
      result = bytes_of(v);
  });
  return result;
}

bool shard_core::has(std::string_view key) const {
  bool result = false;
  engine_->read([&](const engine_snapshot& s) {
    std::string_view v;
    result = s.get(keyspace::data, key, v);
  });
  return result;
}

std::vector<std::optional<bytes>>
shard_core::get_many(const std::vector<std::string>& keys) const {
  std::vector<std::optional<bytes>> result;
  result.reserve(keys.size());
  engine_->read([&](const engine_snapshot& s) {
    std::string_view v;
    for (auto& key : keys)
      result.push_back(s.get(keyspace::data, key, v) ? std::optional<bytes>{bytes_of(v)}
                                                     : std::nullopt);
  });
  return result;
}

void shard_core::read_each(
  const std::vector<std::string>& keys, const std::vector<uint32_t>& which,
  const std::function<void(uint32_t, std::string_view)>& found) const {
  engine_->read([&](const engine_snapshot& s) {
    std::string_view v;
    for (auto i : which)
      if (s.get(keyspace::data, keys[i], v))
        found(i, v);
  });
}

scan_page shard_core::scan(const scan_request& req) const {
  scan_page page;
  engine_->read([&](const engine_snapshot& s) { page = scan_with(s, req); });
  return page;
}

uint64_t shard_core::size() const {
  uint64_t n = 0;
  engine_->read([&](const engine_snapshot& s) { n = s.count(keyspace::data); });
  return n;
}

txn_read shard_core::read(std::string_view key) const {
  // The lock check and the snapshot under one shared lock: a prepared
  // transaction's writes are either locked or applied in what this sees.
  std::shared_lock<std::shared_mutex> guard{mtx_};
  txn_read result;
  if (cc_.write_locked(key)) {
    result.blocked = true;
    return result;
  }
  engine_->read([&](const engine_snapshot& s) {
    result.seq = s.seq();
    std::string_view v;
    if (s.get(reserved_key(key) ? keyspace::index : keyspace::data, key, v))
      result.value = bytes_of(v);
  });
  return result;
}

txn_scan shard_core::read_range(const scan_request& req) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  txn_scan result;
  auto lo = std::max({std::string_view{req.start}, std::string_view{req.prefix},
                      std::string_view{req.after}});
  if (cc_.write_locked(lo, prefix_end(req.prefix))) {
    result.blocked = true;
    return result;
  }
  engine_->read([&](const engine_snapshot& s) {
    result.seq = s.seq();
    result.page = scan_with(s, req);
  });
  return result;
}

std::vector<uint64_t> shard_core::in_doubt() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<uint64_t> result;
  for (auto& [txid, p] : prepared_)
    if (p.logged)
      result.push_back(txid);
  return result;
}

scan_page shard_core::scan_with(const engine_snapshot& s, const scan_request& req) const {
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
  size_t page_bytes = 0;
  s.scan(keyspace::data, seek, skip_equal, [&](std::string_view key, std::string_view value) {
    if (!has_prefix(key, prefix))
      return false; // keys are sorted: nothing further can match
    if (page.entries.size() == limit || page_bytes >= limits::max_page_bytes) {
      page.more = true;
      return false;
    }
    entry e;
    e.key = std::string{key};
    if (req.values)
      e.value = bytes_of(value);
    page_bytes += e.key.size() + e.value.size();
    page.entries.push_back(std::move(e));
    return true;
  });
  return page;
}

shard_info shard_core::info() const {
  shard_info result;
  result.shard = opts_.shard;
  result.entries = size();
  auto ei = engine_->info();
  result.map_size = ei.map_size;
  result.map_used = ei.map_used;
  result.commits = commits_;
  result.flushes = ei.flushes;
  result.in_doubt = in_doubt().size();
  result.path = opts_.dir;
  result.engine = engine_name(engine_->kind());
  result.capabilities = capability_names(engine_->capabilities());
  result.tuning = std::move(ei.tuning);
  return result;
}

bool shard_core::flush() {
  return engine_->flush();
}

void shard_core::wait_for_flush() {
  engine_->wait_for_flush();
}

// -- writes --------------------------------------------------------------------

std::vector<write_outcome> shard_core::write(const write_group& group) {
  std::vector<write_request> requests;
  requests.reserve(group.size());
  for (auto* ops : group)
    requests.push_back(write_request::plain_ops(*ops));
  return write(requests);
}

std::vector<write_outcome> shard_core::write(const std::vector<write_request>& group) {
  using type = write_request::type;
  std::vector<write_outcome> out(group.size());
  if (auto& broken = engine_->broken(); !broken.empty()) {
    for (auto& o : out)
      o = write_outcome{errc::transaction_aborted, broken, 0, false};
    return out;
  }
  auto stores_values = [](const std::vector<operation>& ops) {
    return std::any_of(ops.begin(), ops.end(),
                       [](auto& op) { return op.kind == op_kind::set; });
  };
  auto full_error = [this] {
    auto what = engine_->kind() == engine_kind::lmdb
                  ? std::string{": the map is full (map_size "}
                  : std::string{": the "} + engine_name(engine_->kind())
                      + " engine is full (map_size ";
    return write_outcome{errc::storage_full,
                         opts_.dir + what + std::to_string(opts_.map_size)
                           + " bytes); delete data or raise map_size",
                         0, false};
  };
  bool images = std::any_of(hooks_.begin(), hooks_.end(),
                            [](auto& h) { return h->wants_before_images(); });
  // Pass 1, under the lock that transactional reads share: validate, lock,
  // number and turn each request into a batch, so that each one sees the
  // ones before it. Nothing is applied before the batches are logged.
  std::vector<engine_batch> batches;
  std::deque<std::vector<operation>> owned; // operations built here
  std::vector<std::pair<size_t, uint64_t>> accepted; // request, sequence number
  std::vector<uint64_t> prepared_now; // undone if the group is not logged
  std::vector<uint64_t> resolved_now; // outcomes of this group
  bool durable = false; // whether the group needs a sync
  bool barrier = false;
  std::vector<size_t> statuses; // answered once the group is applied
  std::vector<uint64_t> committing; // one-phase commits accepted in pass 1
  auto answer_statuses = [&] {
    for (auto i : statuses)
      out[i].status = status_of(group[i].txid);
  };
  // What the group's accepted batches wrote so far, for hooks that derive
  // writes from the values a batch replaces.
  std::map<std::string, std::optional<bytes>, std::less<>> written;
  bool cleared = false;
  // Per batch, the data operations the hooks learn of: without the claims
  // of unique indexes, which are kept in the index space.
  std::vector<const std::vector<operation>*> user_ops;
  uint64_t seq = 0; // the number the next batch gets
  bool full = false;
  // `txid`: the transaction the batch commits, 0 for a plain write.
  auto data_batch = [&](const std::vector<operation>& all, uint64_t txid) {
    engine_batch b;
    auto* ops = &all;
    std::vector<operation>* claims = nullptr;
    if (std::any_of(all.begin(), all.end(), [](auto& op) {
          return op.kind != op_kind::clear && reserved_key(op.key);
        })) {
      auto& data = owned.emplace_back();
      claims = &owned.emplace_back();
      for (auto& op : all)
        (op.kind != op_kind::clear && reserved_key(op.key) ? *claims : data).push_back(op);
      ops = &data;
    }
    // After the hooks' parts: a clear of the index space leaves them.
    auto add_claims = [&] {
      if (claims)
        b.parts.push_back({keyspace::index, claims});
    };
    user_ops.resize(batches.size() + 1);
    user_ops[batches.size()] = ops; // the batch this one will be
    b.parts.push_back({keyspace::data, ops});
    b.before_images = images;
    if (hooks_.empty()) {
      add_claims();
      return b;
    }
    engine_->read([&](const engine_snapshot& s) {
      auto planned = claims && std::any_of(claims->begin(), claims->end(), [](auto& op) {
                       return unique::is_planned_marker(op.key);
                     });
      overlay data{s, written, cleared, planned, seq, txid, full};
      for (auto& h : hooks_) {
        derived_writes extra;
        h->extend(*ops, data, extra);
        for (auto& [space, more] : extra) {
          if (space == keyspace::data)
            throw storage_error{errc::invalid_value,
                                "a write hook may not add writes to the data space"};
          b.parts.push_back({space, &owned.emplace_back(std::move(more))});
        }
      }
    });
    for (auto& op : *ops) {
      if (op.kind == op_kind::clear) {
        written.clear();
        cleared = true;
      } else {
        written[op.key] = op.kind == op_kind::set ? std::optional<bytes>{op.value}
                                                  : std::nullopt;
      }
    }
    add_claims();
    return b;
  };
  batches.reserve(group.size());
  std::unique_lock<std::shared_mutex> guard{mtx_};
  full = engine_->full();
  seq = engine_->next_seq();
  // A hook that fails stops pass 1: that request, the ones after it and the
  // accepted ones before it fail as a group that was never logged.
  std::optional<storage_error> failure;
  size_t reached = group.size();
  for (size_t i = 0; i < group.size() && !failure; ++i) try {
    auto& req = group[i];
    switch (req.kind) {
      case type::plain: {
        auto& ops = *req.ops;
        if (full && stores_values(ops)) {
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
        batches.push_back(data_batch(ops, 0));
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
        if (full && stores_values(part.writes)) {
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
        auto b = data_batch(part.writes, req.txid);
        if (req.txid != 0) {
          // The id goes with the writes, and the ids let go since the last
          // such batch go out of the key space (with the new floor).
          committing.push_back(req.txid);
          auto& ids = owned.emplace_back();
          ids.push_back(operation::set(txid_key(req.txid), {}));
          for (auto txid : dropped_)
            ids.push_back(operation::del(txid_key(txid)));
          b.parts.push_back({keyspace::outcomes, &ids});
          if (!dropped_.empty()) {
            auto floor = std::to_string(outcomes_floor_);
            auto& meta = owned.emplace_back();
            meta.push_back(operation::set("outcomes_floor", bytes(floor.begin(), floor.end())));
            b.parts.push_back({keyspace::meta, &meta});
            dropped_.clear();
          }
        }
        batches.push_back(std::move(b));
        cc_.wrote(part.writes, seq);
        accepted.emplace_back(i, seq++);
        durable = true;
        break;
      }
      case type::prepare: {
        auto& part = *req.part;
        if (prepared_.count(req.txid) > 0)
          continue; // prepared before: the vote stands
        if (full && stores_values(part.writes)) {
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
        auto encoded = wal::encode_part(part);
        auto& ops = owned.emplace_back();
        ops.push_back(operation::set(txid_key(req.txid), bytes(encoded.begin(), encoded.end())));
        engine_batch b;
        b.parts.push_back({keyspace::prepared, &ops});
        batches.push_back(std::move(b));
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
        // Outcomes need no sync of their own: the coordinator's decision log
        // holds commits durably until a barrier.
        engine_batch b;
        if (req.commit) {
          b = data_batch(p->second.part.writes, req.txid);
          cc_.wrote(p->second.part.writes, seq);
        }
        auto& ops = owned.emplace_back();
        ops.push_back(operation::del(txid_key(req.txid)));
        b.parts.push_back({keyspace::prepared, &ops});
        batches.push_back(std::move(b));
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
  } catch (const storage_error& e) {
    failure = e;
    reached = i;
  }
  guard.unlock();
  auto fail_barriers = [&](errc code, const std::string& msg) {
    for (size_t i = 0; i < group.size(); ++i)
      if (group[i].kind == type::barrier)
        out[i] = write_outcome{code, msg, 0, false};
  };
  auto undo_prepares = [&] {
    guard.lock();
    for (auto txid : prepared_now) {
      cc_.unlock(txid);
      prepared_.erase(txid);
    }
    guard.unlock();
  };
  auto abort_hooks = [&] {
    for (auto& h : hooks_)
      h->aborted();
  };
  if (failure) {
    abort_hooks();
    undo_prepares();
    for (auto& [i, _] : accepted)
      out[i] = write_outcome{failure->code(), failure->what(), 0, false};
    for (auto i = reached; i < group.size(); ++i)
      if (group[i].kind != type::status)
        out[i] = write_outcome{failure->code(), failure->what(), 0, false};
    answer_statuses();
    return out;
  }
  if (accepted.empty()) {
    if (barrier) {
      try {
        engine_->sync();
      } catch (const storage_error& e) {
        fail_barriers(e.code(), e.what());
      }
    }
    answer_statuses();
    return out;
  }
  auto fail_accepted = [&](errc code, const std::string& msg) {
    for (auto& [i, _] : accepted)
      out[i] = write_outcome{code, msg, 0, false};
  };
  auto res = engine_->apply(batches, durable || barrier);
  if (!res.logged) {
    // The prepares of this group never happened. (Versions recorded for the
    // failed writes only make later validations stricter.)
    abort_hooks();
    undo_prepares();
    fail_accepted(res.code, res.message);
    fail_barriers(res.code, res.message); // nothing earlier is known durable
    answer_statuses();
    return out;
  }
  if (res.code != errc::none) {
    // Logged but not applied: the engine refuses writes until a reopen
    // applies the group.
    fail_accepted(res.code, res.message);
    for (auto& [i, _] : accepted)
      if (group[i].kind == type::commit && group[i].txid != 0)
        remember(group[i].txid, true);
    answer_statuses();
    return out;
  }
  for (size_t k = 0; k < accepted.size(); ++k) {
    auto i = accepted[k].first;
    auto& req = group[i];
    auto& effect = res.effects[k];
    out[i].deleted = effect.deleted;
    const std::vector<operation>* data = k < user_ops.size() ? user_ops[k] : nullptr;
    switch (req.kind) {
      case type::plain:
        break;
      case type::commit:
        if (req.txid != 0)
          remember(req.txid, true);
        break;
      case type::resolve: {
        // Hooks see the writes before they leave with the transaction.
        auto p = prepared_.find(req.txid);
        if (req.commit)
          for (auto& h : hooks_)
            h->committed(committed_change{effect.seq, req.txid, data, &effect.before});
        data = nullptr;
        std::unique_lock<std::shared_mutex> g{mtx_};
        cc_.unlock(req.txid);
        prepared_.erase(p);
        break;
      }
      default:
        break;
    }
    if (data != nullptr)
      for (auto& h : hooks_)
        h->committed(committed_change{effect.seq, req.txid, data, &effect.before});
  }
  ++commits_;
  answer_statuses();
  return out;
}

} // namespace strata

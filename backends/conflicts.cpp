#include "backends/conflicts.hpp"

#include <algorithm>

namespace strata {

conflicts::conflicts(size_t window) : window_(std::max<size_t>(window, 1)) {
  // nop
}

void conflicts::reset(uint64_t seq) {
  floor_ = seq;
  versions_.clear();
  order_.clear();
}

uint64_t conflicts::last_write(std::string_view key) const {
  auto i = versions_.find(key);
  return i != versions_.end() ? i->second : floor_;
}

bool conflicts::range_written_after(const range_mark& r) const {
  if (floor_ > r.seq)
    return true;
  for (auto i = versions_.lower_bound(r.lo);
       i != versions_.end() && in_range(i->first, r.lo, r.hi); ++i)
    if (i->second > r.seq)
      return true;
  return false;
}

std::string conflicts::check(uint64_t, const txn_part& part) const {
  // Every lock held belongs to another transaction: a transaction prepares
  // on a shard once, and checks before it locks.
  for (auto& r : part.reads) {
    if (last_write(r.key) > r.seq)
      return "key '" + r.key + "' was written after this transaction read it";
    if (write_locked(r.key))
      return "key '" + r.key + "' is being written by a committing transaction";
  }
  for (auto& r : part.ranges) {
    if (range_written_after(r))
      return "a key in the scanned range ['" + r.lo + "', '" + r.hi
             + "') was written after this transaction scanned it";
    if (write_locked(r.lo, r.hi))
      return "a key in the scanned range ['" + r.lo + "', '" + r.hi
             + "') is being written by a committing transaction";
  }
  for (auto& w : part.writes) {
    if (w.kind == op_kind::clear) {
      if (locked())
        return "the shard cannot be cleared while transactions commit on it";
      continue;
    }
    if (clearing_ != 0)
      return "the shard is being cleared by a committing transaction";
    if (auto i = locks_.find(w.key); i != locks_.end())
      return "key '" + w.key + "' is locked by a committing transaction";
    for (auto& [lo, hi, _] : range_locks_)
      if (in_range(w.key, lo, hi))
        return "key '" + w.key + "' lies in a range that a committing "
               "transaction read";
  }
  return {};
}

void conflicts::lock(uint64_t txid, const txn_part& part) {
  auto& h = held_[txid];
  for (auto& r : part.reads) {
    ++locks_[r.key].readers;
    h.reads.push_back(r.key);
  }
  for (auto& r : part.ranges) {
    range_locks_.emplace_back(r.lo, r.hi, txid);
    h.ranges.emplace_back(r.lo, r.hi);
  }
  for (auto& w : part.writes) {
    if (w.kind == op_kind::clear) {
      clearing_ = txid;
      h.clear = true;
    } else {
      locks_[w.key].writer = txid;
      h.writes.push_back(w.key);
    }
  }
}

void conflicts::unlock(uint64_t txid) {
  auto i = held_.find(txid);
  if (i == held_.end())
    return;
  auto& h = i->second;
  auto release = [this](const std::string& key, bool write) {
    auto l = locks_.find(key);
    if (l == locks_.end())
      return;
    if (write)
      l->second.writer = 0;
    else if (l->second.readers > 0)
      --l->second.readers;
    if (l->second.writer == 0 && l->second.readers == 0)
      locks_.erase(l);
  };
  for (auto& k : h.reads)
    release(k, false);
  for (auto& k : h.writes)
    release(k, true);
  if (!h.ranges.empty())
    range_locks_.erase(std::remove_if(range_locks_.begin(), range_locks_.end(),
                                      [txid](auto& r) {
                                        return std::get<2>(r) == txid;
                                      }),
                       range_locks_.end());
  if (h.clear)
    clearing_ = 0;
  held_.erase(i);
}

void conflicts::wrote(const std::vector<operation>& ops, uint64_t seq) {
  for (auto& op : ops) {
    if (op.kind == op_kind::clear) {
      // Every key changed: older reads are all stale.
      reset(seq);
      continue;
    }
    versions_[op.key] = seq;
    order_.emplace_back(seq, op.key);
  }
  while (order_.size() > window_) {
    auto& [s, key] = order_.front();
    if (auto i = versions_.find(key); i != versions_.end() && i->second == s) {
      versions_.erase(i);
      floor_ = std::max(floor_, s);
    }
    order_.pop_front();
  }
}

bool conflicts::write_locked(std::string_view key) const {
  if (clearing_ != 0)
    return true;
  auto i = locks_.find(key);
  return i != locks_.end() && i->second.writer != 0;
}

bool conflicts::write_locked(std::string_view lo, std::string_view hi) const {
  if (clearing_ != 0)
    return true;
  for (auto i = locks_.lower_bound(lo);
       i != locks_.end() && in_range(i->first, lo, hi); ++i)
    if (i->second.writer != 0)
      return true;
  return false;
}

} // namespace strata

#include "backends/conflicts.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_map>

namespace strata {

conflicts::conflicts(size_t window) : ring_(std::max<size_t>(window, 1)) {
  // nop
}

void conflicts::reset(uint64_t seq) {
  floor_ = seq;
  head_ = 0;
  size_ = 0;
}

std::string conflicts::stale(const txn_part& part) const {
  if (part.reads.empty() && part.ranges.empty())
    return {};
  uint64_t oldest = UINT64_MAX;
  for (auto& r : part.reads)
    oldest = std::min(oldest, r.seq);
  for (auto& r : part.ranges)
    oldest = std::min(oldest, r.seq);
  if (floor_ > oldest) {
    // Writes after some read may have left the ring: only reads at or after
    // the floor can still be checked.
    for (auto& r : part.reads)
      if (r.seq < floor_)
        return "key '" + r.key + "' was read too long ago to validate";
    for (auto& r : part.ranges)
      if (r.seq < floor_)
        return "the range ['" + r.lo + "', '" + r.hi
               + "') was scanned too long ago to validate";
  }
  // The writes since the oldest read, in commit order (binary search: the
  // ring is ordered by sequence number).
  size_t lo = 0;
  size_t hi = size_;
  while (lo < hi) {
    auto mid = lo + (hi - lo) / 2;
    if (at(mid).first <= oldest)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == size_)
    return {};
  std::unordered_map<std::string_view, uint64_t> read_at;
  for (auto& r : part.reads)
    read_at.emplace(r.key, r.seq);
  for (auto i = lo; i < size_; ++i) {
    auto& [seq, key] = at(i);
    if (auto r = read_at.find(key); r != read_at.end() && seq > r->second)
      return "key '" + key + "' was written after this transaction read it";
    for (auto& r : part.ranges)
      if (seq > r.seq && in_range(key, r.lo, r.hi))
        return "key '" + key + "' in the scanned range ['" + r.lo + "', '" + r.hi
               + "') was written after this transaction scanned it";
  }
  return {};
}

std::string conflicts::check(uint64_t, const txn_part& part) const {
  // Every lock held belongs to another transaction: a transaction prepares
  // on a shard once, and checks before it locks.
  if (auto why = stale(part); !why.empty())
    return why;
  for (auto& r : part.reads)
    if (write_locked(r.key))
      return "key '" + r.key + "' is being written by a committing transaction";
  for (auto& r : part.ranges) {
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
    if (size_ == ring_.size()) {
      // The oldest write leaves the ring; the floor summarises it.
      floor_ = std::max(floor_, ring_[head_].first);
      head_ = (head_ + 1) % ring_.size();
      --size_;
    }
    auto& slot = ring_[(head_ + size_) % ring_.size()];
    slot.first = seq;
    slot.second.assign(op.key); // reuses the slot's buffer
    ++size_;
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

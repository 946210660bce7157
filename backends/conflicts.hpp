#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "strata/messages/txn.hpp"

namespace strata {

/// Concurrency control of one shard: optimistic validation plus short-lived
/// locks held only between a transaction's prepare and its outcome.
///
/// - Versions: every committed write is numbered with the shard's sequence
///   number. The most recent writes (sequence number, key) are kept in a
///   ring, in commit order; older ones are summarised by `floor`, the newest
///   sequence number that left the ring. A read at sequence number s is
///   still valid if no write after s touched its key (or a key in its
///   range), and if s is not older than `floor`. Recording a write costs a
///   string copy into a reused slot; validation looks only at the writes
///   since the transaction's oldest read.
/// - Locks: a prepared transaction read-locks the keys and ranges it read and
///   write-locks the keys it writes until it commits or aborts. Another
///   transaction that would break either is refused at once with
///   VERSION_CONFLICT: nobody waits for a lock, so no deadlock can form.
///
/// Not thread-safe: the owner (shard_core) guards it.
class conflicts {
public:
  /// Remembers the last `window` writes (memory ~60 bytes each).
  explicit conflicts(size_t window = size_t{1} << 16);

  /// Forgets every version: all keys count as written at `seq` (on open).
  void reset(uint64_t seq);

  /// Why transaction `txid` cannot validate and lock `part` now, or an empty
  /// string if it can.
  std::string check(uint64_t txid, const txn_part& part) const;

  /// Takes `part`'s locks for `txid` (after `check` passed).
  void lock(uint64_t txid, const txn_part& part);

  /// Releases every lock of `txid`.
  void unlock(uint64_t txid);

  /// Records that `ops` committed at `seq`.
  void wrote(const std::vector<operation>& ops, uint64_t seq);

  /// Whether a prepared transaction is about to write `key`.
  bool write_locked(std::string_view key) const;

  /// Whether a prepared transaction is about to write a key in [lo, hi)
  /// (hi empty: no upper bound).
  bool write_locked(std::string_view lo, std::string_view hi) const;

  /// Whether any lock is held.
  bool locked() const noexcept {
    return !held_.empty();
  }

  /// The sequence number that summarises writes older than the window.
  uint64_t floor() const noexcept {
    return floor_;
  }

private:
  struct key_lock {
    uint64_t writer = 0; // 0: none
    uint32_t readers = 0;
  };

  struct held_locks {
    std::vector<std::string> reads;
    std::vector<std::string> writes;
    std::vector<std::pair<std::string, std::string>> ranges;
    bool clear = false;
  };

  /// Why a read of `part` is stale, or an empty string.
  std::string stale(const txn_part& part) const;

  /// The i-th oldest write in the ring.
  const std::pair<uint64_t, std::string>& at(size_t i) const {
    return ring_[(head_ + i) % ring_.size()];
  }

  uint64_t floor_ = 0;
  std::vector<std::pair<uint64_t, std::string>> ring_;
  size_t head_ = 0; // oldest entry
  size_t size_ = 0;

  std::map<std::string, key_lock, std::less<>> locks_;
  /// Scanned ranges of prepared transactions: (lo, hi, txid).
  std::vector<std::tuple<std::string, std::string, uint64_t>> range_locks_;
  /// The prepared transaction that clears the shard (it locks every key).
  uint64_t clearing_ = 0;
  std::unordered_map<uint64_t, held_locks> held_;
};

/// True if `key` lies in [lo, hi) (hi empty: no upper bound).
inline bool in_range(std::string_view key, std::string_view lo,
                     std::string_view hi) {
  return key >= lo && (hi.empty() || key < hi);
}

/// The first key after every key that starts with `prefix`, i.e. the upper
/// bound of the prefix's range; empty if there is none (no upper bound).
inline std::string prefix_end(std::string_view prefix) {
  std::string end{prefix};
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff)
    end.pop_back();
  if (!end.empty())
    end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

} // namespace strata

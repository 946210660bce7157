#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/messages/kv.hpp"

namespace strata {

/// A shard's write-ahead log: one append-only file of framed records, each
/// one write request (its operations, all or nothing) with a sequence number.
/// A group of requests is appended with one write and made durable with one
/// fdatasync; that is what makes acknowledged writes durable. The shard's
/// LMDB environment catches up in large batches (see kv_store::flush).
///
/// File format (little endian), repeated until the end of the file:
///   u32 payload length | u32 CRC-32 of the payload | payload
/// payload:
///   u64 sequence number | u32 operation count | operations
/// operation:
///   u8 kind (0 set, 1 del, 2 clear) | u32 key length | key
///   | u32 value length | value                      (set only)
/// A record cut short by a crash, or failing its CRC, ends the log: it and
/// anything after it were never acknowledged.
///
/// Not thread-safe: used by the shard's writer only. Errors throw
/// `storage_error`.
class wal {
public:
  /// Opens (or creates) the log file at `path`; CONNECTION_FAILED if it
  /// cannot.
  wal(std::string path, bool sync);
  wal(const wal&) = delete;
  wal& operator=(const wal&) = delete;
  ~wal();

  /// Encodes one record.
  static std::string encode(uint64_t seq, const std::vector<operation>& ops);

  /// Appends `records` (from `encode`) with one write, then syncs them to
  /// disk unless the log was opened without sync. On failure nothing of the
  /// append counts: the file is cut back to its previous length.
  void append(const std::vector<std::string>& records);

  /// Reads every intact record in order and cuts off a torn tail. Calls
  /// `f(seq, ops)` per record.
  void replay(const std::function<void(uint64_t, std::vector<operation>&)>& f);

  /// Empties the log (after its records reached LMDB durably).
  void reset();

  /// True once a sync failed: the log's state on disk is unknown until the
  /// shard is reopened (and the log replayed).
  bool sync_failed() const noexcept {
    return sync_failed_;
  }

  /// Current size of the log in bytes.
  uint64_t size() const noexcept {
    return size_;
  }

private:
  std::string path_;
  bool sync_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool sync_failed_ = false;
};

} // namespace strata

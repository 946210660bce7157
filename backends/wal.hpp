#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/engine.hpp"
#include "strata/messages/kv.hpp"
#include "strata/messages/txn.hpp"

namespace strata {

/// A shard's write-ahead log: one append-only file of framed records, each
/// with a sequence number: a batch of operations on the shard's key spaces,
/// applied all or nothing. A group of batches is appended with one write and
/// made durable with one fdatasync; that is what makes acknowledged writes
/// durable. The shard's LMDB environment catches up in large batches (see
/// lmdb_engine).
///
/// File format (little endian), repeated until the end of the file:
///   u32 payload length | u32 CRC | payload
/// CRC: CRC-32 over the log's epoch (u64) and then the payload; in epoch 0
/// (logs written before epochs) over the payload alone.
/// payload:
///   u64 sequence number | u8 type | body
///   type 5, batch:    u8 count | count × (u8 key space | operations)
/// Logs of format 1 hold types 0 to 4, which a replay still reads and the
/// engine translates into batches:
///   type 0, write:    operations (on the data space)
///   type 1, prepare:  u64 transaction id | part
///   type 2, commit:   u64 transaction id (apply the prepared part's writes)
///   type 3, abort:    u64 transaction id
///   type 4, commit1:  u64 transaction id | operations (a one-phase commit)
/// operations:
///   u32 count | count × (u8 kind (0 set, 1 del, 2 clear) | u32 key length
///   | key | u32 value length | value (set only))
/// part (a prepared transaction's share of this shard; also stored in LMDB):
///   operations | u32 count | count × (u32 length | key read)
///   | u32 count | count × (u32 length | lo | u32 length | hi)
/// A record cut short by a crash, or failing its CRC, ends the log: it and
/// anything after it were never acknowledged.
///
/// The file grows ahead of the records in zero-filled chunks, so that the
/// sync of an append writes data only: a sync after the file grew must also
/// commit the new size through the file system's journal, which costs about
/// as much again, and more while other logs sync. Hence a zero length also
/// ends the log. After `reset` new records overwrite old ones from the start.
/// The old ones left behind must never pass for new ones, not even when bytes
/// inside an old value (which a client chose) happen to form a record where a
/// new record ends: so each reset starts a new random epoch, recorded with the
/// data the log was emptied into, and a record's CRC covers its epoch (epoch
/// 0: the CRC of the payload alone). A record of another epoch fails its CRC
/// and ends the log; so does one whose sequence number is not above its
/// predecessor's.
///
/// Not thread-safe: used by the shard's writer only. Errors throw
/// `storage_error`.
/// One record of the log.
struct wal_record {
  enum class type : uint8_t {
    write = 0,
    prepare = 1,
    commit = 2,
    abort = 3,
    /// A transaction's one-phase commit: its writes, under its id, so that
    /// the shard can still tell after a restart that it committed.
    commit_one = 4,
    /// Operations on several key spaces (the only type written today).
    batch = 5,
  };
  uint64_t seq = 0;
  type kind = type::batch;
  /// batch: the operations per key space.
  std::vector<std::pair<keyspace, std::vector<operation>>> parts;
  /// prepare, commit, abort, commit_one.
  uint64_t txid = 0;
  /// write, commit_one: the operations.
  std::vector<operation> ops;
  /// prepare: the writes and the keys and ranges read (without sequence
  /// numbers: they were validated before the record was written).
  txn_part part;
};

class wal {
public:
  /// Opens (or creates) the log file at `path`; CONNECTION_FAILED if it
  /// cannot.
  wal(std::string path, bool sync);
  wal(const wal&) = delete;
  wal& operator=(const wal&) = delete;
  ~wal();

  /// Encodes a batch record (its CRC is written by `append`).
  static std::string encode_batch(uint64_t seq, const engine_batch& batch);

  /// Encoders of format 1's records, for tests that write such logs.
  static std::string encode(uint64_t seq, const std::vector<operation>& ops);

  /// Encodes the record of transaction `txid`'s one-phase commit.
  static std::string encode_commit_one(uint64_t seq, uint64_t txid,
                                       const std::vector<operation>& ops);

  /// Encodes a prepare record.
  static std::string encode_prepare(uint64_t seq, uint64_t txid,
                                    const txn_part& part);

  /// Encodes a commit or abort record.
  static std::string encode_outcome(uint64_t seq, uint64_t txid, bool commit);

  /// A part as stored (see the format above), and back; false if `data` is
  /// malformed.
  static std::string encode_part(const txn_part& part);
  static bool decode_part(std::string_view data, txn_part& part);

  /// Appends `records` (from `encode`) with one write, then syncs them (and
  /// any earlier unsynced ones) to disk unless `durable` is false or the log
  /// was opened without sync. On failure nothing of the append counts: the
  /// file is cut back to its previous length.
  void append(std::vector<std::string> records, bool durable = true);

  /// Syncs records appended without `durable`, if any.
  void sync();

  /// Reads every intact record in order and cuts off what follows the last
  /// one (a torn tail, zeros, records from before a reset). Calls `f` per
  /// record. Call it once, right after opening, before any append.
  void replay(const std::function<void(wal_record&)>& f);

  /// Empties the log (after its records reached LMDB durably, together with
  /// the new `epoch`): the next records overwrite the old ones, whose epoch
  /// and lower sequence numbers end a later replay. Sequence numbers must
  /// therefore only grow. Epoch 0 is the format before epochs: only tests
  /// that read such logs pass it.
  void reset(uint64_t epoch);

  /// The epoch whose records this log holds (see the format above); set
  /// before `replay` to the one recorded with the data.
  void set_epoch(uint64_t epoch);

  uint64_t epoch() const noexcept {
    return epoch_;
  }

  /// True once a sync failed: the log's state on disk is unknown until the
  /// shard is reopened (and the log replayed).
  bool sync_failed() const noexcept {
    return sync_failed_;
  }

  /// Current size of the log in bytes (its records; the file is larger).
  uint64_t size() const noexcept {
    return size_;
  }

  /// The file grows by this many zero bytes at a time.
  static constexpr uint64_t chunk = uint64_t{1} << 20;

private:
  /// Grows the file with zeros to hold at least `needed` bytes.
  void reserve(uint64_t needed);

  std::string path_;
  bool sync_;
  int fd_ = -1;
  /// End of the records.
  uint64_t size_ = 0;
  /// Size of the file: records, then zeros or records from before a reset.
  uint64_t end_ = 0;
  bool sync_failed_ = false;
  bool unsynced_ = false;
  uint64_t epoch_ = 0;
  /// CRC-32 of the epoch: where a record's CRC starts (0 for epoch 0).
  uint32_t seed_ = 0;

  /// The CRC of a payload in this log's epoch.
  uint32_t checksum(std::string_view payload) const;
};

} // namespace strata

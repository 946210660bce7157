#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/conflicts.hpp"
#include "backends/engine.hpp"
#include "strata/errc.hpp"
#include "strata/messages/kv.hpp"

namespace strata {

/// Returns why `key` cannot be stored, or an empty string if it can. Only
/// the store itself writes reserved keys (`reserved_ok`).
std::string key_problem(std::string_view key, bool reserved_ok = false);

/// Keys that begin with a zero byte are the store's own: the claims of
/// unique indexes (backends/unique.hpp). Users cannot write them. A shard
/// keeps them in its index space, out of scans, counts and queries, while
/// transactions read, validate, lock and write them like any key.
inline bool reserved_key(std::string_view key) {
  return !key.empty() && key.front() == '\0';
}

/// Returns why a value of `size` bytes cannot be stored under a maximum of
/// `max_size`, or an empty string if it can.
std::string value_problem(size_t size, uint64_t max_size);

/// How long a shard keeps its change log (backends/change_log.hpp).
struct change_log_options {
  /// Keep a change log at all. Without one, watches answer INVALID_VALUE.
  bool enabled = true;
  /// Commits kept per shard (0: no limit by count).
  uint64_t retain_commits = 100000;
  /// Commits younger than this are kept, in milliseconds (0: no limit by
  /// age). Both limits apply: a commit goes once either says so.
  uint64_t retain_ms = 0;
  /// Record the value each change replaced. Costs one read per written key;
  /// without it changes carry no old value.
  bool old_values = true;
};

/// Where and how a shard keeps its data: its engine, and which shard of
/// which store it is. The identity is recorded on first open and checked on
/// every later one.
struct shard_core_options : engine_options {
  /// This shard's index and the store's shard count.
  uint32_t shard = 0;
  uint32_t shard_count = 1;
  /// The store this shard belongs to.
  std::string store_id = "strata";
  /// The change log, added by `open_change_log`.
  change_log_options changes;
};

/// What a committed batch of data writes changed.
struct committed_change {
  /// The shard's sequence number of the batch.
  uint64_t seq = 0;
  /// The transaction it commits, 0 for a plain write.
  uint64_t txid = 0;
  /// Its operations on the data space, in order.
  const std::vector<operation>* ops = nullptr;
  /// If a hook asked: per set or delete, the value it replaced.
  const std::vector<std::optional<bytes>>* before = nullptr;
};

/// The data space as a batch about to be logged will find it: the engine's
/// state with the earlier batches of the same group on top.
class pending_data {
public:
  virtual ~pending_data() = default;

  /// The value `key` will have before the batch; false if none.
  virtual bool get(std::string_view key, std::string_view& value) const = 0;

  /// Whether the batch's writer planned the claims of unique indexes (the
  /// batch carries a `unique::planned_marker`).
  virtual bool planned() const {
    return false;
  }

  /// The sequence number the batch will have.
  virtual uint64_t seq() const {
    return 0;
  }

  /// The transaction the batch commits, 0 for a plain write.
  virtual uint64_t txid() const {
    return 0;
  }

  /// The shard is full: only deletes get this far, and what builds on them
  /// should take as little room as it can.
  virtual bool full() const {
    return false;
  }

  /// The engine's state before the group: every key space, without the
  /// group's earlier batches.
  virtual const engine_snapshot* snapshot() const {
    return nullptr;
  }
};

/// Derived writes of one batch, by key space.
using derived_writes = std::vector<std::pair<keyspace, std::vector<operation>>>;

/// The shard core's hook for what builds on its writes: index maintenance,
/// the change log, events. Called on the writer's thread; a replay at open
/// calls neither function (what `extend` added is in the log already).
class write_hook {
public:
  virtual ~write_hook() = default;

  /// Adds operations on other key spaces (index entries, change records) to a
  /// batch of data writes before it is logged, so that they are applied in
  /// the same durable, all-or-nothing write. `data` reads the values the
  /// batch's keys have before it. A `storage_error` thrown here (or a write
  /// to the data space, INVALID_VALUE) fails the request, the ones after it
  /// in its group and the group's accepted ones, and nothing is written.
  virtual void extend(const std::vector<operation>& ops, const pending_data& data,
                      derived_writes& out) {
    static_cast<void>(ops);
    static_cast<void>(data);
    static_cast<void>(out);
  }

  /// Whether `committed` needs the values the writes replaced; the engine
  /// then reads them as it applies (a cost only while someone asks).
  virtual bool wants_before_images() const {
    return false;
  }

  /// Learns of every committed batch of data writes, in commit order, after
  /// it is applied and before its request is answered.
  virtual void committed(const committed_change& change) {
    static_cast<void>(change);
  }

  /// Learns that the group whose batches `extend` saw last was not applied.
  virtual void aborted() {
    // nop
  }
};

/// What a shard knows about a transaction's one-phase commit.
enum class commit_status : uint8_t {
  /// It was applied.
  committed,
  /// It was not, and now never will be: a commit of that id arriving later
  /// is refused.
  not_committed,
  /// Too long ago to tell: the shard no longer remembers ids that low.
  forgotten,
};

/// Outcome of one write request within a group commit.
struct write_outcome {
  /// `none` if the request's operations were applied.
  errc code = errc::none;
  /// Why not, for people.
  std::string message;
  /// How many delete operations found their key (clear counts every entry).
  uint64_t deleted = 0;
  /// A plain write that was not applied because a prepared transaction is
  /// about to write one of its keys: retry it after the next outcome.
  bool blocked = false;
  /// A status request: the answer.
  commit_status status = commit_status::not_committed;
};

/// One request of a group commit.
struct write_request {
  enum class type : uint8_t {
    /// `ops`, all or nothing. Blocked while a prepared transaction is about
    /// to write one of its keys.
    plain,
    /// One-phase commit of a transaction that touches only this shard:
    /// validate `part`, then apply its writes (VERSION_CONFLICT if invalid).
    /// With a `txid`, the shard remembers that it committed (`status`); a
    /// second commit of the same id changes nothing and succeeds.
    commit,
    /// Phase one of two: validate `part` of transaction `txid`, log it and
    /// lock it (VERSION_CONFLICT if invalid). Success is a yes vote.
    prepare,
    /// Phase two: apply (`commit`) or drop prepared transaction `txid`.
    /// Unknown ids succeed: the outcome was applied already. Outcomes are
    /// logged without a sync of their own (the coordinator's decision log
    /// holds commits durably until a barrier); a later sync covers them.
    resolve,
    /// Makes everything logged so far durable (after unsynced outcomes).
    barrier,
    /// Whether the one-phase commit of `txid` was applied
    /// (`write_outcome::status`). Answered in order with the group's
    /// commits, and an id not seen yet is fenced: its commit, should it
    /// still arrive, is refused. So the answer stays true.
    status,
  };
  type kind = type::plain;
  const std::vector<operation>* ops = nullptr;
  const txn_part* part = nullptr;
  uint64_t txid = 0;
  bool commit = false;

  static write_request plain_ops(const std::vector<operation>& x) {
    return {type::plain, &x, nullptr, 0, false};
  }
};

/// A read inside a transaction.
struct txn_read {
  /// The value, if the key exists.
  std::optional<bytes> value;
  /// The shard's sequence number the read saw (for validation).
  uint64_t seq = 0;
  /// A prepared transaction is about to write the key: nothing was read;
  /// ask again after its outcome.
  bool blocked = false;
};

/// A scan page read inside a transaction; see txn_read.
struct txn_scan {
  scan_page page;
  uint64_t seq = 0;
  bool blocked = false;
};

class index_set;
class change_log;

/// Write requests committed together: each one is a list of operations that
/// is applied all or nothing.
using write_group = std::vector<const std::vector<operation>*>;

/// One shard: its data and what makes it a transaction participant, over any
/// engine. The core owns what every engine shares: sequence numbers (handed
/// out by the engine, one per batch), conflict checking, prepared
/// transactions and their recovery, the outcomes of one-phase commits, and
/// the hooks that derive writes from them and learn of commits. The engine
/// only keeps key spaces.
///
/// ```
///  write(group) ─▶ validate, lock, number, ─▶ engine.apply (one log append,
///                  hooks extend each batch      one sync) ─▶ hooks ─▶ outcomes
///  reads ───────▶ engine snapshot (transactional reads: unless a prepared
///                 transaction is about to write the key)
/// ```
///
/// Each request becomes one engine batch: a write its data operations; a
/// one-phase commit its writes plus its id in `outcomes`; a prepare its part
/// in `prepared`; a commit outcome the prepared writes plus the removal from
/// `prepared`. Opening the core rebuilds prepared transactions (with their
/// locks) and remembered commits from those key spaces, whatever the engine.
///
/// Thread safety: the read functions may run concurrently from any threads
/// (if the engine declares concurrent readers; otherwise from the writer's);
/// `write` and `flush` must be called by one thread at a time (the shard's
/// writer). Errors throw `storage_error`.
class shard_core {
public:
  /// Opens or creates the shard on its engine, which replays what it logged.
  /// Throws CONSISTENCY_VIOLATION if the data belongs to another store, shard
  /// index or shard count.
  explicit shard_core(shard_core_options opts);
  shard_core(const shard_core&) = delete;
  shard_core& operator=(const shard_core&) = delete;
  /// Closes the engine (LMDB: flushes the memtable, so that the next open has
  /// nothing to replay).
  ~shard_core();

  /// What the engine below can do.
  const engine_capabilities& capabilities() const {
    return engine_->capabilities();
  }

  engine_kind engine() const {
    return engine_->kind();
  }

  /// The value of `key`, if any.
  std::optional<bytes> get(std::string_view key) const;

  /// Whether `key` exists.
  bool has(std::string_view key) const;

  /// Values of `keys` in order, all read from one snapshot.
  std::vector<std::optional<bytes>> get_many(const std::vector<std::string>& keys) const;

  /// Looks up `keys[i]` for each i in `which`, all from one snapshot, and
  /// calls `found(i, value)` for each key that exists; `value` is valid only
  /// during the call. Saves copying keys and results for batched reads.
  void read_each(const std::vector<std::string>& keys,
                 const std::vector<uint32_t>& which,
                 const std::function<void(uint32_t, std::string_view)>& found) const;

  /// One page of keys (and values) in ascending order, from one snapshot.
  scan_page scan(const scan_request& req) const;

  /// Number of entries.
  uint64_t size() const;

  /// Reads `key` for a transaction: the value and the sequence number it
  /// reflects, unless a prepared transaction is about to write the key. A
  /// reserved key is read from the index space.
  txn_read read(std::string_view key) const;

  /// Scans for a transaction, like `read` for a key range.
  txn_scan read_range(const scan_request& req) const;

  /// Transactions prepared on this shard and waiting for their outcome
  /// (after a restart: in doubt until the coordinator answers).
  std::vector<uint64_t> in_doubt() const;

  /// Figures for operators.
  shard_info info() const;

  /// One-phase commits are remembered by transaction id for at least this
  /// many of the highest ids (and across restarts), for `status`.
  static constexpr size_t remembered_commits = size_t{1} << 16;

  /// Makes every request of `group` durable with one WAL append and one sync
  /// (group commit), applies them in order, and returns one outcome per
  /// request. While the shard is full, requests that store values fail with
  /// STORAGE_FULL and the others proceed. If the WAL cannot be written, the
  /// group fails (TRANSACTION_ABORTED, or STORAGE_FULL for a full disk) and
  /// the log is cut back; after a failed sync the shard refuses writes until
  /// it is reopened. A group that is logged but cannot be applied (an LMDB
  /// read error) fails with CONSISTENCY_VIOLATION: it is durable, a reopen
  /// applies it, and until then the shard refuses writes.
  std::vector<write_outcome> write(const write_group& group);

  /// Like `write(group)` for requests of every kind: plain writes,
  /// transaction commits, prepares and outcomes share one append and sync.
  /// Each request sees the effects of those before it. Records that need no
  /// durability (a read-only prepare or its outcome) are not logged.
  std::vector<write_outcome> write(const std::vector<write_request>& group);

  /// Moves everything to the engine's long-term form (LMDB: writes the
  /// memtables to LMDB and empties both logs) on the calling thread (the
  /// writer's). Returns false if the engine is full. Throws
  /// CONSISTENCY_VIOLATION once the shard refuses writes (the logs are kept).
  bool flush();

  /// Waits until no background flush runs (tests, tools).
  void wait_for_flush();

  /// Adds a hook; call it from the writer's thread (or before writes
  /// begin).
  void add_hook(std::shared_ptr<write_hook> hook);

  /// Records the shard's secondary indexes (see `open_indexes`, which also
  /// adds them as a hook).
  void attach_indexes(std::shared_ptr<index_set> indexes);

  /// The shard's secondary indexes; null if none were attached.
  index_set* indexes() const {
    return indexes_.get();
  }

  /// Records the shard's change log (see `open_change_log`).
  void attach_changes(std::shared_ptr<change_log> log) {
    changes_ = std::move(log);
  }

  /// The shard's change log; null if it keeps none.
  change_log* changes() const {
    return changes_.get();
  }

  /// Applies writes to key spaces other than data (an index build's entries,
  /// index definitions) as one durable batch, under the core's write lock.
  /// Called on the writer's thread; a storage_error if it fails.
  void write_spaces(const derived_writes& writes);

  /// Calls `f` with a consistent snapshot of every key space, for readers of
  /// what hooks derive (index entries, the change log).
  void with_snapshot(function_ref<void(const engine_snapshot&)> f) const {
    engine_->read(f);
  }

  const shard_core_options& options() const noexcept {
    return opts_;
  }

private:
  /// A transaction prepared here, with what it will write. `logged`: the
  /// prepare is durable (it has writes).
  struct prepared_txn {
    txn_part part;
    bool logged = false;
  };

  void recover();
  void remember(uint64_t txid, bool committed);
  commit_status status_of(uint64_t txid);
  scan_page scan_with(const engine_snapshot& s, const scan_request& req) const;

  shard_core_options opts_;
  std::unique_ptr<strata::engine> engine_;

  /// Guards `cc_` and `prepared_`: the writer changes them exclusively,
  /// transactional reads check the locks under it shared (before they take
  /// their engine snapshot).
  mutable std::shared_mutex mtx_;
  /// Locks and recent versions for validating transactions.
  conflicts cc_;
  /// Prepared transactions waiting for their outcome.
  std::map<uint64_t, prepared_txn> prepared_;

  /// One-phase commits by transaction id (writer thread only): committed
  /// (true), or fenced by a status question that came first (false). The
  /// highest `remembered_commits` ids stay; `outcomes_floor_` is the highest
  /// id let go, at or below which an unknown id may be a forgotten commit.
  /// Transaction ids grow over time (the coordinator's counter), so what
  /// goes first is the oldest. The `outcomes` key space keeps the committed
  /// ones across restarts; `dropped_` lists those let go since the last
  /// batch that recorded a commit (which removes them, with the new floor).
  std::map<uint64_t, bool> outcomes_;
  uint64_t outcomes_floor_ = 0;
  std::vector<uint64_t> dropped_;

  std::vector<std::shared_ptr<write_hook>> hooks_;
  std::shared_ptr<index_set> indexes_;
  std::shared_ptr<change_log> changes_;
  std::atomic<uint64_t> commits_{0};
};

} // namespace strata

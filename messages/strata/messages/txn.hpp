#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "strata/messages/kv.hpp"

/// Data types of the transaction layer (spec level 3). Plain values without
/// CAF, shared by the storage backends and the wire; strata/messages/wire.hpp
/// makes them serializable.
namespace strata {

/// How much a transaction sees of concurrent ones (the spec's
/// IsolationLevel). README's isolation table states which anomalies each
/// level allows.
enum class isolation : uint8_t {
  read_uncommitted = 0,
  read_committed = 1,
  repeatable_read = 2,
  serializable = 3,
};

/// The spec's name, e.g. `SERIALIZABLE`.
const char* to_string(isolation x);

/// Parses a name as printed by `to_string`.
std::optional<isolation> parse_isolation(const std::string& name);

/// The spec's TransactionOptions.
struct txn_options {
  /// Isolation level.
  isolation level = isolation::serializable;
  /// The transaction aborts (TRANSACTION_ABORTED) if it has not committed
  /// this many milliseconds after it began; 1 to 3600000.
  uint32_t timeout_ms = 10000;
  /// Reject writes (INVALID_VALUE) and only check what was read at commit.
  bool read_only = false;
  /// How often `transaction(executor)` retries after VERSION_CONFLICT,
  /// DEADLOCK_DETECTED or TRANSACTION_ABORTED; the explicit API ignores it.
  uint32_t retries = 3;

  /// Why these options are unusable, or an empty string.
  std::string problem() const;
};

/// Where a transaction stands (the spec's `state`).
enum class txn_state : uint8_t {
  active = 0,
  committed = 1,
  aborted = 2,
  /// Its commit may or may not have been applied: the answer was lost and
  /// the shard or coordinator that decides could not be asked in time.
  unknown = 3,
};

/// "active", "committed", "aborted" (as in the spec) or "unknown".
const char* to_string(txn_state x);

/// A transaction's identity and state.
struct txn_info {
  /// Unique in the store, also across restarts: "tx-<incarnation>-<n>".
  std::string id;
  txn_state state = txn_state::active;
};

/// A key a transaction read, and the shard's sequence number at the read:
/// the read is still valid if no write to the key committed after it.
struct read_mark {
  std::string key;
  uint64_t seq = 0;
};

/// A key range [lo, hi) a transaction scanned (hi empty: no upper bound),
/// and the shard's sequence number at the scan: still valid if no key in the
/// range was written after it (this is what stops phantoms).
struct range_mark {
  std::string lo;
  std::string hi;
  uint64_t seq = 0;
};

/// Everything one transaction asks of one shard at commit: the writes to
/// apply and the reads to validate.
struct txn_part {
  std::vector<operation> writes;
  std::vector<read_mark> reads;
  std::vector<range_mark> ranges;

  bool empty() const noexcept {
    return writes.empty() && reads.empty() && ranges.empty();
  }
};

/// A transaction's part for one shard, as the coordinator receives it.
struct shard_part {
  uint32_t shard = 0;
  txn_part part;
};

/// Phase one of a two-phase commit for one transaction on one shard. The
/// coordinator sends each shard the prepares of a round in one message.
struct txn_prepare {
  uint64_t txid = 0;
  txn_part part;
};

/// Phase two for one transaction on one shard: commit or abort.
struct txn_outcome {
  uint64_t txid = 0;
  bool commit = false;
};

/// Transaction ids are 64 bits: the coordinator's incarnation (bumped on
/// every open) in the high 24 bits and a counter in the low 40.
constexpr int txn_counter_bits = 40;

/// "tx-<incarnation>-<counter>".
std::string txn_name(uint64_t txid);

} // namespace strata

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/messages/kv.hpp"

/// Data types of events and the change feed (spec level 4:
/// ObservableStorage). Plain values, made serializable in
/// strata/messages/wire.hpp.
namespace strata {

/// What one change did to its key.
enum class change_kind : uint8_t {
  set = 0,
  del = 1,
  /// Every key of the shard was deleted (`clear`); the key is empty.
  clear = 2,
};

/// "set", "delete" or "clear".
const char* to_string(change_kind x);

/// One key's change (the spec's `Change<T>`).
struct change {
  change_kind kind = change_kind::set;
  std::string key;
  /// The key existed before, with `old_value` (recorded only if the store
  /// keeps old values, `change_log_options::old_values`).
  bool had_old = false;
  bytes old_value;
  /// What a set stored.
  bytes new_value;
};

/// Everything one commit changed on one shard: a write, a batch, or a
/// transaction's part on that shard. Its position is (shard, seq).
struct change_batch {
  uint32_t shard = 0;
  /// The shard's sequence number of the commit.
  uint64_t seq = 0;
  /// The transaction it belongs to (the same on every shard), 0 for plain
  /// writes.
  uint64_t txid = 0;
  /// Commit time, milliseconds since the Unix epoch.
  uint64_t time = 0;
  std::vector<change> changes;
};

/// Which changes a reader of the log wants.
struct change_filter_spec {
  /// A glob on keys (`*` any run of bytes, `?` one byte, `\` quotes the
  /// next), or with `regex` an RE2 regular expression that must match the
  /// whole key. Empty: every key.
  std::string pattern;
  bool regex = false;
  /// A query pattern (JSON, docs/queries.md) whose where clause the old or
  /// the new document must match. Empty: no such condition.
  std::string where;
};

/// Asks a shard for the commits after a position.
struct change_request {
  /// Commits with a sequence number above this one.
  uint64_t after = 0;
  /// Most commits in the page; 0 picks `limits::default_change_page`.
  uint32_t limit = 0;
  change_filter_spec filter;
};

/// One page of a shard's change log.
struct change_page {
  /// Commits with at least one change that passed the filter, in order.
  std::vector<change_batch> batches;
  /// Everything up to this sequence number was read: continue after it.
  uint64_t last = 0;
  /// More commits follow right away.
  bool more = false;
  /// The oldest position the log can resume from (commits at or below it
  /// were trimmed).
  uint64_t floor = 0;
};

namespace limits {
/// Commits in a change page when the request leaves the limit at 0.
constexpr uint32_t default_change_page = 256;
/// The most a change page holds.
constexpr uint32_t max_change_page = 4096;
} // namespace limits

/// A position in a store's change feed: per shard, the sequence number of the
/// last commit seen. Printed as text, e.g. `t1:120,88,0,17`.
struct resume_token {
  std::vector<uint64_t> positions;

  /// Moves past `b`.
  void advance(const change_batch& b) {
    if (b.shard < positions.size() && b.seq > positions[b.shard])
      positions[b.shard] = b.seq;
  }

  std::string to_string() const;

  /// Parses the text form; nullopt if it is not one.
  static std::optional<resume_token> parse(std::string_view text);
};

/// Subscriptions of `on`: the spec's StorageEvents.
enum class event_kind : uint8_t {
  before_get = 0,
  after_get = 1,
  before_set = 2,
  after_set = 3,
  before_delete = 4,
  after_delete = 5,
  change = 6,
  error = 7,
};

/// "before:get", ..., "change", "error".
const char* to_string(event_kind x);

/// Parses such a name.
std::optional<event_kind> parse_event_kind(std::string_view name);

/// Asked before an operation is applied (`before:*`), or told after
/// (`after:*`).
struct storage_event {
  event_kind kind = event_kind::before_get;
  std::string key;
  /// set: the value; after:get: the value read, if `found`.
  bytes value;
  /// after:get: the key existed; after:delete: it existed before.
  bool found = false;
};

/// How a subscription of `on` behaves.
struct subscribe_options {
  /// How long the store waits for a `before:*` subscriber's answer.
  uint32_t timeout_ms = 1000;
  /// When a `before:*` subscriber does not answer in time, is gone or
  /// answers nonsense: apply the operation anyway (true), or fail it with
  /// TRANSACTION_ABORTED naming the subscriber (false).
  bool proceed_on_timeout = false;

  /// Why the options are unusable; empty if they are fine.
  std::string problem() const;
};

/// What a watch delivers and from where.
struct watch_options {
  change_filter_spec filter;
  /// A resume token: replay the retained log after it, then go on live.
  /// Empty: from now on; "oldest": from the oldest commit retained.
  std::string from;
  /// Deliveries the subscriber may have unanswered (credit). A subscriber
  /// that falls behind is not buffered for: the watcher stops reading and
  /// goes on from the log once the subscriber answers.
  uint32_t window = 16;
  /// Most commits per delivery.
  uint32_t max_batches = limits::default_change_page;

  std::string problem() const;
};

/// A watcher's state for operators and clients.
struct watch_info {
  change_filter_spec filter;
  /// The position delivered and answered by the subscriber.
  std::string position;
  /// Commits delivered.
  uint64_t delivered = 0;
  /// Deliveries waiting for the subscriber's answer.
  uint32_t in_flight = 0;
};

} // namespace strata

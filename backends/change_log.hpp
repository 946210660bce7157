#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "backends/shard_core.hpp"
#include "backends/query.hpp"
#include "strata/messages/events.hpp"

namespace re2 {
class RE2;
}

namespace strata {

/// Decides which changes a reader of the log wants: a glob or RE2 regex on
/// keys and a query's where clause on the old or new document. Compiled
/// once; QUERY_ERROR (storage_error) for a bad pattern.
class change_filter {
public:
  explicit change_filter(const change_filter_spec& spec);
  ~change_filter();

  bool matches(const change& c) const;

  /// Whether every change passes.
  bool all() const {
    return !regex_ && !where_;
  }

  /// The RE2 syntax of a glob: `*` any bytes, `?` one byte, `\x` the byte x,
  /// everything else itself.
  static std::string glob_to_regex(std::string_view glob);

private:
  std::unique_ptr<re2::RE2> regex_;
  std::optional<query_pattern> where_;
};

/// The durable change log of one shard, a write hook: every committed batch
/// of data writes (a write, a batch, a transaction's part, a clear) becomes
/// one record in the `changes` key space, under its sequence number, in the
/// same durable write as the data. Records carry the commit time, the
/// transaction id and, per key, the kind of change, the key, the old value
/// (if kept) and the new one.
///
/// Old records go as new ones come (`retain_commits`, `retain_ms`): each
/// batch removes a few of the oldest past the limits in its own write, so
/// trimming never makes a write wait for it. The highest sequence number
/// removed is the log's floor, kept in the `meta` space: a reader may resume
/// after any position at or above it. While the shard is full (only deletes
/// are accepted), records carry no old values and each write removes more
/// of the oldest ones, whatever the limits: the data comes first, and
/// deletes must make room.
class change_log : public write_hook {
public:
  change_log(shard_core& core, change_log_options opts);

  void extend(const std::vector<operation>& ops, const pending_data& data,
              derived_writes& out) override;

  void committed(const committed_change& change) override;

  void aborted() override;

  /// The sequence number of the newest record (0: none yet).
  uint64_t last() const {
    return last_.load();
  }

  /// Records at or below this were removed; resuming after a position below
  /// it would miss changes.
  uint64_t floor() const {
    return floor_.load();
  }

  const change_log_options& options() const {
    return opts_;
  }

  /// The commits after `req.after` that have a change passing `filter`, from
  /// `snap`: at most `req.limit` of them and about 4 MiB. `req.after` =
  /// UINT64_MAX asks only where the log ends now (`last`). Throws
  /// CONSISTENCY_VIOLATION if `req.after` is below the floor.
  change_page read(const engine_snapshot& snap, const change_request& req,
                   const change_filter& filter, uint32_t shard) const;

  /// The record of one commit, and back (CONSISTENCY_VIOLATION if corrupt).
  static std::string encode(const change_batch& b);
  static change_batch decode(std::string_view record);

private:
  void resync(const engine_snapshot& snap);

  shard_core& core_;
  change_log_options opts_;
  /// Records in the log and where it starts, as the writer left them (the
  /// writer's thread only). `stale_`: a group failed after `extend`, so they
  /// are read again from the engine.
  uint64_t records_ = 0;
  bool stale_ = true;
  std::atomic<uint64_t> last_{0};
  std::atomic<uint64_t> floor_{0};
};

/// Adds a change log to `core` (after its indexes, so records see the
/// writes those made) unless `opts.enabled` is false; returns it.
std::shared_ptr<change_log> open_change_log(shard_core& core, const change_log_options& opts);

} // namespace strata

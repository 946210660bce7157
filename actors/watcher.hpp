#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <vector>

#include <caf/fwd.hpp>

#include "strata/actors.hpp"

namespace strata {

/// What a watcher starts with.
struct watcher_config {
  std::vector<shard_actor> shards;
  /// Per shard, the position to deliver after.
  std::vector<uint64_t> positions;
  watch_options opts;
  event_actor subscriber;
  std::chrono::milliseconds timeout{30000};
};

/// The watcher's reading of one shard.
struct watched_shard {
  enum class step : uint8_t {
    /// Waits for room in the subscriber's window (or nothing to do).
    idle,
    /// A `changes` request is out.
    reading,
    /// An `await` request is out: the log had nothing after `read`.
    waiting,
  } now = step::idle;
  /// Read up to here.
  uint64_t read = 0;
  /// Delivered and answered up to here.
  uint64_t acked = 0;
  /// Deliveries of this shard not yet answered (their last position), and
  /// positions passed without a delivery while they were out.
  struct mark {
    uint64_t last = 0;
    bool answered = false;
  };
  std::deque<mark> out;
};

struct watcher_state {
  static inline const char* name = "strata.watcher";
  watcher_config cfg;
  std::vector<watched_shard> shards;
  /// Deliveries sent and not answered yet, over all shards.
  uint32_t in_flight = 0;
  uint64_t delivered = 0;
  bool ended = false;

  /// The position the subscriber answered, as a resume token.
  std::string token() const;
};

/// One watch. Per shard it reads the change log after its position (the
/// shard filters), delivers each page with changes to the subscriber as one
/// `change` request, and when the log has nothing more it waits at the shard
/// for the next commit (`await`). The subscriber's answers are its credit: at
/// most `window` deliveries are out, and while none may go it reads nothing,
/// so a slow subscriber costs neither memory nor writers anything; it simply
/// continues from the log later. Live and catch-up are one path, so nothing
/// is skipped or delivered twice at the seam.
///
/// A failure of a shard (its node gone, its position trimmed from the log)
/// ends the watch: the subscriber gets `failed` with the error and the
/// position it answered, from which a new watch resumes. The watcher ends
/// with its subscriber, its store, or `unwatch`.
watcher_actor::behavior_type watcher(watcher_actor::stateful_pointer<watcher_state> self,
                                     watcher_config cfg);

} // namespace strata

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <caf/fwd.hpp>

#include "actors/shard_writer.hpp"
#include "backends/shard_core.hpp"
#include "strata/actors.hpp"

namespace strata {

/// How to open one shard.
struct shard_options {
  /// Where the shard's environment lives and how it is opened.
  shard_core_options store;
  /// Largest value in bytes; larger ones are INVALID_VALUE.
  uint64_t max_value_size = 16ull << 20;
  /// Released only after the shard's environment is closed (the data
  /// directory's lock).
  std::shared_ptr<const void> keepalive;
  /// Timeout of the shard's own requests (to the coordinator).
  std::chrono::milliseconds timeout{30000};
};

struct shard_state {
  static inline const char* name = "strata.shard";
  std::shared_ptr<shard_core> store;
  shard_writer_actor writer;
  uint64_t max_value_size = 0;
  std::chrono::milliseconds timeout{0};
};

/// A shard owns one LMDB environment. It answers reads itself, from short
/// read transactions, and hands writes to its detached writer, which answers
/// the client directly after the group commit. Reads therefore never wait
/// for a sync.
///
/// ```
///  client ──get/has/scan/get_many/size/info──▶ shard ──▶ answer
///  client ──set/del/...──▶ shard ──delegate──▶ writer ──(group commit)──▶ answer
///  transaction ──read──▶ shard ──▶ answer (or, if locked, wait at the writer)
///  coordinator ──commit/prepare/resolve──▶ shard ──delegate──▶ writer
/// ```
shard_actor::behavior_type shard(shard_actor::stateful_pointer<shard_state> self,
                                 std::shared_ptr<shard_core> store,
                                 shard_writer_actor writer,
                                 uint64_t max_value_size,
                                 std::chrono::milliseconds timeout);

/// A shard in this process: its actor, and its store for direct reads.
struct local_shard {
  shard_actor actor;
  std::shared_ptr<shard_core> store;
  /// Its writer: the coordinator of the same process talks to it directly.
  shard_writer_actor writer;
};

/// Opens a store whose files stay locked by `keepalive` (the data
/// directory's lock) until the store is closed.
caf::expected<std::shared_ptr<shard_core>>
open_shard_core(shard_core_options opts, std::shared_ptr<const void> keepalive);

/// Opens the shard's environment and spawns the shard with its writer.
/// Fails with the strata error of the backend (e.g. CONSISTENCY_VIOLATION
/// for a directory of another store, CONNECTION_FAILED if it cannot be
/// opened).
caf::expected<local_shard> spawn_shard(caf::actor_system& sys,
                                       shard_options opts);

} // namespace strata

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "strata/engine_settings.hpp"

namespace strata {

/// When a write is acknowledged.
enum class sync_mode : uint8_t {
  /// After it is synced to disk (fsync). Survives power loss. The default.
  durable,
  /// After it is in the OS page cache (LMDB's MDB_NOSYNC). Survives a crash
  /// of the process but not of the machine: for caches and tests only.
  nosync,
};

/// Returns "durable" or "nosync".
const char* to_string(sync_mode x);

/// Parses "durable" or "nosync".
std::optional<sync_mode> parse_sync_mode(const std::string& x);

/// Whether `x` names a log level: trace, debug, info, warning, error,
/// critical or off.
bool is_log_level(const std::string& x);

/// Settings of a store (the spec's StorageConfig). Every field has a usable
/// default; `validate` names the first one that is out of range.
struct store_options {
  /// Names the store; recorded in each shard on first open and checked
  /// afterwards, so a directory is never opened as another store's.
  std::string id = "strata";

  /// Directory holding one LMDB environment per shard (`shard-000/`, ...) and
  /// a LOCK file. Created if missing. Only one store may use it at a time.
  std::string data_dir = "strata-data";

  /// Number of shards, 1 to 256. Fixed when the directory is created: keys are
  /// placed by a hash of the key modulo this count.
  uint32_t shards = 4;

  /// LMDB map size per shard in bytes: the most one shard can hold. 0 picks
  /// it from `hints.expected_size` (at least 1 GiB). Raising it later grows
  /// the shards without losing data; writes beyond it fail with STORAGE_FULL.
  uint64_t map_size = 0;

  /// The spec's PerformanceHints: expected size, access pattern, cache.
  performance_hints hints;

  /// When writes are acknowledged; see sync_mode.
  sync_mode sync = sync_mode::durable;

  /// Largest value in bytes, at most 1 GiB. Larger values are INVALID_VALUE.
  uint64_t max_value_size = 16ull << 20;

  /// The largest message a node accepts on its port, in bytes (0: the larger
  /// of 64 MiB and `max_value_size` + 1 MiB). A connection that announces a
  /// bigger one is closed before anything is reserved for it, and one that
  /// has not completed CAF's handshake may announce at most 64 KiB; see
  /// `strata::publish`. A store checks what it sends to its shard nodes
  /// against the same limit (QUOTA_EXCEEDED). Give every node the same.
  uint64_t max_frame_size = 0;

  /// How long the store waits for a shard's answer before the request fails.
  /// Every request between actors of a store has a finite timeout.
  std::chrono::milliseconds request_timeout{std::chrono::seconds{30}};

  /// Router actors behind the store's handle, 1 to 64. Reads take turns
  /// among them, so several cores answer reads; each sender's other requests
  /// keep to one router, in order. More routers than cores only add thread
  /// wake-ups (measured: 2 on a 2-core machine beat 1 and 4).
  uint32_t routers = 2;

  /// A shard writes a full memtable to LMDB on a thread of its own while
  /// writes go on into a fresh one (true), or its writer does it and writes
  /// wait (false: one memtable per shard in memory, but each flush, some
  /// 0.2-0.5 s for 16 MiB, shows in the write latency).
  bool background_flush = true;

  /// The storage engine under every local shard:
  /// - "lmdb" (the default): a write-ahead log, memtables and LMDB; durable.
  /// - "memory": ordered maps in memory; fast, not durable (a crash loses
  ///   the data), for caches and tests. `map_size` then bounds the bytes of
  ///   keys and values per shard.
  /// - "sqlite": one SQLite database per shard (`sqlite`); durable, one
  ///   SQLite transaction per group commit; `map_size` is its page limit.
  /// - "json": one JSON document per shard (`json`), rewritten by each group
  ///   commit; for small stores (at most 64 MiB per shard).
  /// - "graph": one named graph per shard on a SPARQL 1.1 server such as
  ///   Virtuoso (`graph`), documents' fields as properties; reads are served
  ///   from memory, each group commit is one SPARQL Update request.
  /// Shards of one directory keep the engine they were created with only if
  /// it keeps files: an lmdb directory opened as memory is not read.
  std::string engine = "lmdb";

  /// With engine "memory": a clean close saves each shard to
  /// `memory.snapshot` in its directory, and the next open loads it.
  bool memory_snapshot = false;

  /// With engine "sqlite": each shard's database and its tuning.
  sqlite_settings sqlite;

  /// With engine "json": each shard's file and how it is written.
  json_settings json;

  /// With engine "graph": the SPARQL server and the store's graphs.
  graph_settings graph;

  /// Each shard's change log, which watches and the change feed read
  /// (docs/events.md).
  struct change_log_settings {
    /// Keep one. Without it, watches and `changes` answer INVALID_VALUE.
    bool enabled = true;
    /// Commits kept per shard (0: no limit by count).
    uint64_t retain_commits = 100000;
    /// Commits younger than this many milliseconds are kept (0: no limit by
    /// age). A commit goes once either limit says so.
    uint64_t retain_ms = 0;
    /// Record the value each change replaced (one read per written key).
    bool old_values = true;
  } changes;

  /// Log level: trace, debug, info, warning, error, critical or off.
  std::string log_level = "info";

  // -- cluster ------------------------------------------------------------------

  /// The shard map: entry i names where shard i lives, either "" (this
  /// process, in `data_dir`) or the "host:port" of the `strata-node
  /// --host-shards` process serving it. Empty: every shard is local. The
  /// coordinator and its decision log always stay in this process.
  std::vector<std::string> shard_nodes;

  /// Reach shard nodes over TLS (CAF's OpenSSL module; the actor system must
  /// have been configured with `configure_tls`). The nodes must serve TLS
  /// too (`strata-node --tls`).
  bool tls = false;

  /// How often the store pings each shard node. A ping unanswered within
  /// `3 * heartbeat` marks the node degraded; a lost connection marks it
  /// offline at once and fails its requests in flight (CONNECTION_LOST).
  std::chrono::milliseconds heartbeat{1000};

  /// First wait before reconnecting to an unreachable node; it doubles after
  /// each failed attempt, up to `reconnect_max`.
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};

  /// Restart intensity of a local shard: a shard that fails more than
  /// `max_restarts` times within `restart_window` stays offline (its
  /// requests fail with CONNECTION_FAILED) instead of restarting again.
  uint32_t max_restarts = 3;
  std::chrono::milliseconds restart_window{std::chrono::seconds{10}};

  /// Returns an INVALID_VALUE error naming the first bad field, or none.
  caf::error validate() const;

  /// The map size that applies to each shard.
  uint64_t shard_map_size() const;

  /// The frame limit that applies (see `max_frame_size`).
  uint64_t frame_limit() const;

  /// Whether shard `i` lives in this process.
  bool is_local(uint32_t i) const {
    return i >= shard_nodes.size() || shard_nodes[i].empty();
  }
};

/// Splits "host:port" into its parts; nullopt unless the port is 1 to 65535
/// and the host is not empty.
std::optional<std::pair<std::string, uint16_t>>
parse_address(const std::string& address);

/// Parses a shard map written as comma-separated entries, one per shard:
/// `local` (or nothing) for this process, else "host:port"; e.g.
/// "local,127.0.0.1:7601,127.0.0.1:7602". INVALID_VALUE names a bad entry.
caf::expected<std::vector<std::string>> parse_shard_map(const std::string& text);

/// Parses a list of shard indexes such as "1,3"; INVALID_VALUE for anything
/// that is not a comma-separated list of numbers below `shards`.
caf::expected<std::vector<uint32_t>> parse_shard_list(const std::string& text,
                                                      uint32_t shards);

} // namespace strata

#pragma once

#include <array>
#include <atomic>
#include <map>
#include <shared_mutex>
#include <string>

#include "backends/engine.hpp"

namespace strata {

/// An engine in memory: one ordered map per key space, for caches and tests.
/// Not durable: a crash loses everything since the store opened. With
/// `snapshot`, a clean close saves everything to `dir`/memory.snapshot
/// (temporary file, fsync, rename), and the next open loads it; the first
/// write after that open removes the file, so that a later crash cannot bring
/// back data older than what was lost. `map_size` bounds the bytes of keys and
/// values held: beyond it the engine reports `full()`.
///
/// Sequence numbers start from the clock in nanoseconds (or after the
/// snapshot's), so no number handed out by an earlier run comes back.
class memory_engine final : public engine {
public:
  explicit memory_engine(engine_options opts);
  memory_engine(const memory_engine&) = delete;
  memory_engine& operator=(const memory_engine&) = delete;
  /// Saves the snapshot, if asked to.
  ~memory_engine() override;

  engine_kind kind() const override {
    return engine_kind::memory;
  }

  const engine_capabilities& capabilities() const override;
  void read(function_ref<void(const engine_snapshot&)> f) const override;
  uint64_t next_seq() const override {
    return next_seq_;
  }
  apply_result apply(const std::vector<engine_batch>& group, bool sync) override;
  void sync() override {
    // Nothing is durable.
  }
  bool full() const override {
    return bytes_.load() >= opts_.map_size;
  }
  const std::string& broken() const override {
    return broken_;
  }
  bool flush() override {
    return !full();
  }
  void wait_for_flush() override {
    // No background work.
  }
  engine_info info() const override;

  /// Where a clean close saves the data.
  std::string snapshot_path() const;

private:
  class view;

  using entry_map = std::map<std::string, bytes, std::less<>>;

  void load();
  void save() const;
  void apply_one(keyspace ks, const std::vector<operation>& ops, batch_effect& effect,
                 bool images);

  engine_options opts_;
  /// Readers hold it shared for one read, the writer exclusively per batch.
  mutable std::shared_mutex mtx_;
  std::array<entry_map, keyspace_count> spaces_;
  std::atomic<uint64_t> bytes_{0};
  uint64_t next_seq_ = 1;
  uint64_t applied_seq_ = 0;
  /// The snapshot file loaded on open is still there (removed by the first
  /// write).
  bool stale_file_ = false;
  std::string broken_;
};

} // namespace strata

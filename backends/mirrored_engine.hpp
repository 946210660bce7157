#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "backends/memory_engine.hpp"

namespace strata {

/// The base of the engines that keep a shard's home elsewhere (a file, a
/// server) and a whole copy of it in memory. Reads are served from the copy;
/// a group is written home first (`persist`) and reaches the copy only then,
/// so readers never see a group its home does not hold.
class mirrored_engine : public engine {
public:
  mirrored_engine(const mirrored_engine&) = delete;
  mirrored_engine& operator=(const mirrored_engine&) = delete;
  ~mirrored_engine() override;

  const engine_capabilities& capabilities() const override {
    return caps_;
  }

  void read(function_ref<void(const engine_snapshot&)> f) const override {
    mem_->read(f);
  }

  uint64_t next_seq() const override {
    return mem_->next_seq();
  }

  /// `persist`, then the copy. A copy that refuses what its home took breaks
  /// the engine until a reopen loads the home again.
  apply_result apply(const std::vector<engine_batch>& group, bool sync) final;

  bool full() const override {
    return mem_->full();
  }

  const std::string& broken() const override {
    return broken_.empty() ? mem_->broken() : broken_;
  }

  bool flush() override {
    return !full();
  }

  void wait_for_flush() override {
    // No background work.
  }

  engine_info info() const override;

protected:
  /// `name` is said in messages ("the json engine must be reopened");
  /// `max_bytes` bounds the copy whatever `opts.map_size` says.
  mirrored_engine(engine_options opts, std::string name, uint64_t max_bytes);

  /// Writes a non-empty group home. A result with an error is a group that
  /// did not happen, or one whose fate a reopen settles (`logged`).
  virtual apply_result persist(const std::vector<engine_batch>& group, bool sync) = 0;

  /// A fresh copy holding `sets` (each key space's entries, as sets); a copy
  /// that refuses them throws, with `where` in the message.
  std::unique_ptr<memory_engine>
  filled(std::array<std::vector<operation>, keyspace_count> sets, const std::string& where) const;

  /// The bytes of keys and values the copy may hold.
  uint64_t capacity() const;

  engine_options opts_;
  engine_capabilities caps_;
  std::unique_ptr<memory_engine> mem_;
  /// Set when the copy and its home may differ: every write fails until a
  /// reopen.
  std::string broken_;

private:
  std::string name_;
  uint64_t max_bytes_;
};

} // namespace strata

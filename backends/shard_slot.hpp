#pragma once

#include <atomic>
#include <memory>

#include "backends/shard_core.hpp"

namespace strata {

/// The open store of a shard in this process, for actors that read it
/// directly (the router, transactions). Its supervisor empties the slot while
/// the shard restarts and fills it with the reopened store; readers that find
/// it empty ask the shard's actor instead, which answers once it is back. A
/// store whose engine does not allow readers beside its writer stays out of
/// the slot: its reads always go through the shard's actor.
class shard_slot {
public:
  explicit shard_slot(std::shared_ptr<shard_core> store) {
    set(std::move(store));
  }

  /// The store, or null while the shard restarts or is offline. Readers keep
  /// the pointer only for one read, so that a restart can close the store.
  std::shared_ptr<shard_core> get() const {
    return std::atomic_load(&store_);
  }

  void set(std::shared_ptr<shard_core> store) {
    if (store && !store->capabilities().concurrent_readers)
      store = nullptr;
    std::atomic_store(&store_, std::move(store));
  }

private:
  std::shared_ptr<shard_core> store_;
};

} // namespace strata

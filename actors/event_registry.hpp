#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "strata/actors.hpp"

namespace strata {

/// The event subscriptions of a store, shared by its routers. Readers take
/// the current list with one atomic load; changes copy it.
class event_registry {
public:
  struct subscription {
    event_kind kind = event_kind::change;
    event_actor who;
    subscribe_options opts;
    /// `change` subscriptions: the watcher that delivers them.
    watcher_actor watcher;
  };

  using list = std::vector<subscription>;

  std::shared_ptr<const list> current() const {
    return std::atomic_load(&subs_);
  }

  /// Adds the subscription or replaces the one of the same kind and actor;
  /// returns the one it replaced, if any.
  std::optional<subscription> add(subscription x) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto next = copy();
    std::optional<subscription> old;
    for (auto& s : *next)
      if (s.kind == x.kind && s.who == x.who) {
        old = s;
        s = std::move(x);
        std::atomic_store(&subs_, std::shared_ptr<const list>(std::move(next)));
        return old;
      }
    next->push_back(std::move(x));
    std::atomic_store(&subs_, std::shared_ptr<const list>(std::move(next)));
    return old;
  }

  /// Removes the subscriptions of `who` (of `kind`, or all); returns them.
  list remove(const caf::actor_addr& who, std::optional<event_kind> kind = std::nullopt) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto next = copy();
    list gone;
    auto it = std::remove_if(next->begin(), next->end(), [&](const subscription& s) {
      if (s.who.address() != who || (kind && s.kind != *kind))
        return false;
      gone.push_back(s);
      return true;
    });
    next->erase(it, next->end());
    std::atomic_store(&subs_, next->empty() ? nullptr
                                           : std::shared_ptr<const list>(std::move(next)));
    return gone;
  }

private:
  std::shared_ptr<list> copy() const {
    auto cur = std::atomic_load(&subs_);
    return cur ? std::make_shared<list>(*cur) : std::make_shared<list>();
  }

  std::mutex mtx_;
  std::shared_ptr<const list> subs_;
};

} // namespace strata

#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/result.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/storage.hpp"

/// The storage actor's level-4 requests (on, off, watch, changes) and the
/// interception of its requests by `before:*` and `after:*` subscribers.
namespace strata::storage_events {

using storage_ptr = observable_storage_actor::stateful_pointer<storage_state>;

/// Whether the request being handled is observed: someone subscribed to one
/// of `kinds` or to `error`, and it is not the router's own re-send of an
/// observed request. One atomic load when nobody subscribed.
bool observed(storage_ptr self, std::initializer_list<event_kind> kinds);

/// Asks the `before:*` subscribers about `events` (each about the events of
/// its kind), then calls `go` with no error, or with the veto: the first
/// error answer, or TRANSACTION_ABORTED for a subscriber that did not answer
/// in time, is gone or answered nonsense (unless its policy proceeds). Calls
/// come in the order of the asks, so requests keep their order.
void ask(storage_ptr self, std::vector<storage_event> events,
         std::function<void(caf::error)> go);

/// Tells the `after:*` subscribers about `events`.
void tell_after(storage_ptr self, const std::vector<storage_event>& events);

/// Tells the `error` subscribers that `op` on `key` failed.
void tell_error(storage_ptr self, const caf::error& err, const char* op,
                const std::string& key);

/// Handles an observed request: fails it at once with `bad` (its input is
/// wrong), or asks the `before:*` subscribers and, unless one vetoes, sends
/// `msg` to this router again, which answers it as usual; then tells the
/// `after:*` subscribers `after(result)` and the `error` subscribers about a
/// failure.
template <class Result, class After, class... Ts>
caf::result<Result> intercept(storage_ptr self, const char* op, caf::error bad,
                              std::vector<storage_event> events, After after, Ts... msg) {
  auto key = events.empty() ? std::string{} : events.front().key;
  if (bad) {
    tell_error(self, bad, op, key);
    return bad;
  }
  auto rp = self->make_response_promise();
  // A batch reports failure in its result, not as an error.
  auto failed = [rp](caf::error err) mutable {
    if constexpr (std::is_same_v<Result, batch_result>)
      rp.deliver(batch_result{false, 0, {std::move(err)}});
    else
      rp.deliver(std::move(err));
  };
  ask(self, std::move(events), [=](caf::error veto) mutable {
    if (veto) {
      tell_error(self, veto, op, key);
      failed(std::move(veto));
      return;
    }
    auto fail = [=](caf::error& err) mutable {
      tell_error(self, err, op, key);
      failed(std::move(err));
    };
    auto me = caf::actor_cast<observable_storage_actor>(self);
    if constexpr (std::is_void_v<Result>) {
      self->request(me, caf::infinite, msg...).then(
        [=]() mutable {
          tell_after(self, after());
          rp.deliver(caf::unit);
        },
        fail);
    } else {
      self->request(me, caf::infinite, msg...).then(
        [=](Result& r) mutable {
          if constexpr (std::is_same_v<Result, batch_result>)
            if (!r.success && !r.errors.empty())
              tell_error(self, r.errors.front(), op, key);
          tell_after(self, after(r));
          rp.deliver(std::move(r));
        },
        fail);
    }
  });
  return rp;
}

/// The events of operations: `before` ones, and `after` ones of sets and
/// deletes whose outcome per key is known (`existed`).
std::vector<storage_event> events_of(const std::vector<operation>& ops, bool before);

caf::result<void> on(storage_ptr self, event_kind kind, const event_actor& who,
                     const subscribe_options& opts);

caf::result<void> off(storage_ptr self, event_kind kind, const event_actor& who);

/// Checks the token and filter with every shard, then spawns the watcher.
caf::result<watcher_actor> watch(storage_ptr self, const watch_options& opts,
                                 const event_actor& who);

/// One page of every shard's log after `from`, and the token after it.
caf::result<std::vector<change_batch>, std::string>
changes(storage_ptr self, const std::string& from, uint32_t limit,
        const change_filter_spec& filter);

/// A subscriber went away: forgets its subscriptions.
void forget(storage_ptr self, const caf::actor_addr& who);

} // namespace strata::storage_events

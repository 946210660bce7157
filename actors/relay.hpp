#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/duration.hpp>
#include <caf/error.hpp>
#include <caf/response_promise.hpp>
#include <caf/unit.hpp>

namespace strata {

/// Requests that an actor passes on to a target that can go away (a shard
/// that may fail, a node that may be unreachable). Each is answered exactly
/// once: by the target's reply, or with an error when the target is gone.
/// CAF 0.17 would leave a request whose responder died unanswered, so the
/// relaying actor keeps the promises itself.
///
/// Requests go out without a CAF timeout: CAF 0.17 never cancels one, and each
/// wakes its clock thread (measured: ~10% of a remote get's throughput).
/// A target in this process needs none (its failure shows through a link); for
/// a remote one, the relaying actor calls `expire` on a timer.
struct relay_table {
  using clock = std::chrono::steady_clock;

  /// Whether requests go out now, wait (the target is being connected or
  /// restarted), or fail at once.
  enum class mode { ready, waiting, unavailable };

  struct pending_request {
    caf::response_promise rp;
    clock::time_point deadline;
  };

  uint64_t next = 0;
  /// How long a request may stay unanswered before `expire` fails it; zero:
  /// no limit.
  std::chrono::milliseconds limit{0};
  /// The CAF timeout requests go out with, for a relaying actor without a
  /// timer of its own (each costs a clock entry; none by default).
  caf::duration request_timeout{caf::infinite};
  std::unordered_map<uint64_t, pending_request> pending;
  /// Requests that arrived while waiting: send them, or fail them.
  std::vector<std::pair<std::function<void()>, caf::response_promise>> waiting;

  /// The promise of request `id`, unless it was answered already.
  std::optional<caf::response_promise> take(uint64_t id) {
    auto i = pending.find(id);
    if (i == pending.end())
      return std::nullopt;
    auto rp = std::move(i->second.rp);
    pending.erase(i);
    return rp;
  }

  /// Books a request answered through `rp`; `take` its number to answer it.
  uint64_t add(caf::response_promise rp) {
    auto id = ++next;
    auto deadline = limit.count() > 0 ? clock::now() + limit : clock::time_point::max();
    pending.emplace(id, pending_request{std::move(rp), deadline});
    return id;
  }

  /// Answers every request in flight for `limit` or longer with
  /// `make_error()`.
  template <class MakeError>
  void expire(clock::time_point now, MakeError make_error) {
    std::vector<caf::response_promise> late;
    for (auto i = pending.begin(); i != pending.end();) {
      if (i->second.deadline <= now) {
        late.push_back(std::move(i->second.rp));
        i = pending.erase(i);
      } else {
        ++i;
      }
    }
    for (auto& rp : late)
      rp.deliver(make_error());
  }

  /// Answers every request in flight with `err`.
  void fail_pending(const caf::error& err) {
    auto all = std::move(pending);
    pending.clear();
    for (auto& entry : all)
      entry.second.rp.deliver(err);
  }

  /// Sends the requests that waited.
  void release() {
    auto all = std::move(waiting);
    waiting.clear();
    for (auto& w : all)
      w.first();
  }

  /// Answers the requests that waited with `err`.
  void fail_waiting(const caf::error& err) {
    auto all = std::move(waiting);
    waiting.clear();
    for (auto& w : all)
      w.second.deliver(err);
  }
};

/// Passes the request `xs...` on to `pick(self->state)` and answers it with
/// the reply (types `Rs...`), after `adjust(rs...)` has seen it. The state
/// provides `relay` (a relay_table), `mode()`,
/// `unavailable()` (the error while the target cannot be used) and
/// `lost(err)` (the error for a request the target failed to answer). A
/// function `relay_failed(self, err)`, found by argument-dependent lookup,
/// sees every failed request that was still pending (a failing target may answer with an
/// error before its exit arrives).
template <class... Rs, class Self, class Pick, class Adjust, class... Ts>
caf::response_promise relay_with(Self* self, Pick pick, Adjust adjust, Ts... xs) {
  auto rp = self->make_response_promise();
  auto send = [self, rp, pick, adjust, xs...]() mutable {
    auto& st = self->state;
    auto id = st.relay.add(rp);
    self->request(pick(st), st.relay.request_timeout, std::move(xs)...)
      .then(
        [self, id, adjust](Rs&... rs) {
          if (auto p = self->state.relay.take(id)) {
            adjust(rs...);
            if constexpr (sizeof...(Rs) == 0)
              p->deliver(caf::unit);
            else
              p->deliver(std::move(rs)...);
          }
        },
        [self, id](caf::error& err) {
          // A late answer of a request already failed tells nothing new.
          auto p = self->state.relay.take(id);
          if (!p)
            return;
          relay_failed(self, err);
          p->deliver(self->state.lost(err));
        });
  };
  switch (self->state.mode()) {
    case relay_table::mode::ready:
      send();
      break;
    case relay_table::mode::waiting:
      self->state.relay.waiting.emplace_back(std::move(send), rp);
      break;
    case relay_table::mode::unavailable:
      rp.deliver(self->state.unavailable());
      break;
  }
  return rp;
}

/// Relays to `self->state.target`, adjusting the reply.
template <class... Rs, class Self, class Adjust, class... Ts>
caf::response_promise relay_adjusted(Self* self, Adjust adjust, Ts... xs) {
  return relay_with<Rs...>(
    self, [](auto& st) { return st.target; }, adjust, std::move(xs)...);
}

/// Relays to `self->state.target`.
template <class... Rs, class Self, class... Ts>
caf::response_promise relay(Self* self, Ts... xs) {
  return relay_adjusted<Rs...>(self, [](Rs&...) {}, std::move(xs)...);
}

/// Relays to the handle `pick(self->state)`.
template <class... Rs, class Self, class Pick, class... Ts>
caf::response_promise relay_to(Self* self, Pick pick, Ts... xs) {
  return relay_with<Rs...>(self, pick, [](Rs&...) {}, std::move(xs)...);
}

} // namespace strata

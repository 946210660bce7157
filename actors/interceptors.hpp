#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "actors/event_registry.hpp"
#include "backends/log.hpp"
#include "strata/error.hpp"

namespace strata {

inline bool is_before_event(event_kind k) {
  return k == event_kind::before_get || k == event_kind::before_set
         || k == event_kind::before_delete;
}

/// Whether `subs` has a `before:*` subscriber for one of `events`.
inline bool asks_about(const event_registry::list& subs,
                       std::initializer_list<event_kind> kinds) {
  for (auto& s : subs)
    for (auto k : kinds)
      if (s.kind == k)
        return true;
  return false;
}

/// Asks each `before:*` subscriber of `subs` about the `events` of its kind,
/// each with its own timeout, and calls `done` once all answered: with no
/// error, or with the veto (the first error answer; or, for a subscriber
/// that did not answer in time, is gone or answered nonsense,
/// TRANSACTION_ABORTED naming it, unless its policy proceeds).
template <class Self>
void ask_interceptors(Self* self, const event_registry::list& subs,
                      const std::vector<storage_event>& events,
                      std::function<void(caf::error)> done) {
  struct question {
    event_actor who;
    subscribe_options opts;
    std::vector<storage_event> events;
  };
  std::vector<question> questions;
  for (auto& s : subs) {
    if (!is_before_event(s.kind))
      continue;
    question q{s.who, s.opts, {}};
    for (auto& e : events)
      if (e.kind == s.kind)
        q.events.push_back(e);
    if (!q.events.empty())
      questions.push_back(std::move(q));
  }
  if (questions.empty()) {
    done(caf::error{});
    return;
  }
  struct tally {
    size_t left = 0;
    caf::error veto;
    std::function<void(caf::error)> done;
  };
  auto t = std::make_shared<tally>();
  t->left = questions.size();
  t->done = std::move(done);
  auto answered = [t](caf::error veto) {
    if (veto && !t->veto)
      t->veto = std::move(veto);
    if (--t->left == 0)
      t->done(std::move(t->veto));
  };
  for (auto& q : questions) {
    auto who = q.who;
    auto opts = q.opts;
    auto kind = q.events.front().kind;
    auto name = "subscriber " + std::to_string(who.id()) + "@" + to_string(who.node());
    self
      ->request(q.who, std::chrono::milliseconds{q.opts.timeout_ms}, atom::before_v,
                std::move(q.events))
      .then([answered]() mutable { answered(caf::error{}); },
            [answered, opts, kind, name](caf::error& err) mutable {
              if (code_of(err) != errc::none) { // a veto
                answered(std::move(err));
                return;
              }
              // Late, gone or nonsense: the subscription's policy.
              if (opts.proceed_on_timeout) {
                log().warn("{} interceptor {} failed ({}); proceeding", to_string(kind), name,
                           render(err));
                answered(caf::error{});
                return;
              }
              answered(make_error(errc::transaction_aborted,
                                  std::string{to_string(kind)} + " interceptor " + name
                                    + " did not answer (" + render(err)
                                    + "); nothing was applied"));
            });
  }
}

} // namespace strata

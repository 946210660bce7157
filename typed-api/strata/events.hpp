#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "strata/actors.hpp"
#include "strata/client.hpp"

/// The typed client of level 4 (ObservableStorage): the spec's `on`, `off`
/// and `watch` with handlers. Each subscription is an actor of its own that
/// calls the handlers one at a time, so they need no locks; they should not
/// block for long (a slow handler slows only its own subscription: the
/// store does not buffer for it).
namespace strata {

/// A change with its values decoded as `T` (empty if there was none, or if
/// the stored bytes are not a `T`: `raw` has them).
template <class T>
struct typed_change {
  change_kind kind = change_kind::set;
  std::string key;
  std::optional<T> old_value;
  std::optional<T> new_value;
  /// Commit time (ms since the Unix epoch), position and transaction.
  uint64_t time = 0;
  uint32_t shard = 0;
  uint64_t seq = 0;
  uint64_t txid = 0;
  const change* raw = nullptr;
};

/// A `before:*` or `after:*` event with its value decoded as `T`.
template <class T>
struct typed_event {
  event_kind kind = event_kind::before_get;
  std::string key;
  std::optional<T> value;
  bool found = false;
  const storage_event* raw = nullptr;
};

template <class T>
using change_handler = std::function<void(const typed_change<T>&)>;

/// Answers a `before:*` event: an error vetoes the operation.
template <class T>
using before_handler = std::function<caf::error(const typed_event<T>&)>;

template <class T>
using after_handler = std::function<void(const typed_event<T>&)>;

using error_handler = std::function<void(const error_event&)>;

namespace detail {

/// What a subscription and its actor share.
struct subscription_state {
  std::mutex mtx;
  /// Watches: where the watch started, and per shard the last commit the
  /// handlers were given. Guarded by `mtx`.
  resume_token start;
  std::vector<uint64_t> seen;

  void advance(const change_batch& b) {
    std::lock_guard<std::mutex> guard{mtx};
    if (seen.size() <= b.shard)
      seen.resize(b.shard + 1, 0);
    seen[b.shard] = std::max(seen[b.shard], b.seq);
  }

  /// Learns positions known to be handled (a start, a watcher's report).
  void merge(const resume_token& t) {
    std::lock_guard<std::mutex> guard{mtx};
    if (start.positions.empty())
      start.positions.resize(t.positions.size(), 0);
    for (size_t i = 0; i < t.positions.size() && i < start.positions.size(); ++i)
      start.positions[i] = std::max(start.positions[i], t.positions[i]);
  }

  /// The resume token of what the handlers handled.
  std::string token() {
    std::lock_guard<std::mutex> guard{mtx};
    if (start.positions.empty())
      return {};
    auto t = start;
    for (size_t i = 0; i < seen.size() && i < t.positions.size(); ++i)
      t.positions[i] = std::max(t.positions[i], seen[i]);
    return t.to_string();
  }
};

template <class T>
struct handlers {
  change_handler<T> on_change;
  before_handler<T> on_before;
  after_handler<T> on_after;
  error_handler on_error;
  codec_ptr<T> codec = value_codec<T>::standard();
};

template <class T>
std::optional<T> decoded(bool present, const bytes& data, const value_codec<T>& codec) {
  if (!present)
    return std::nullopt;
  auto x = decode<T>(data, codec);
  return x ? std::optional<T>{std::move(*x)} : std::nullopt;
}

/// The actor that calls a subscription's handlers.
template <class T>
event_actor::behavior_type subscriber(event_actor::pointer self, handlers<T> hs,
                                      std::shared_ptr<subscription_state> shared,
                                      observable_storage_actor store, bool watch) {
  // It ends with its store: for a watch, with an error event (its watcher
  // cannot send one when the store's process or connection is gone).
  self->monitor(store);
  self->set_down_handler([self, hs, shared, watch](caf::down_msg& dm) {
    if (watch && hs.on_error)
      hs.on_error(error_event{make_error(errc::connection_lost,
                                         "the store went away (" + render(dm.reason) + ")"),
                              "watch", "", shared->token()});
    self->quit();
  });
  return {
    [self, hs](atom::before, std::vector<storage_event>& events) -> caf::result<void> {
      static_cast<void>(self);
      for (auto& e : events) {
        if (!hs.on_before)
          break;
        typed_event<T> te{e.kind, e.key, decoded<T>(!e.value.empty(), e.value, *hs.codec),
                          e.found, &e};
        if (auto err = hs.on_before(te))
          return err;
      }
      return caf::unit;
    },
    [hs](atom::after, std::vector<storage_event>& events) {
      for (auto& e : events)
        if (hs.on_after) {
          typed_event<T> te{e.kind, e.key,
                            decoded<T>(e.found || e.kind == event_kind::after_set, e.value,
                                       *hs.codec),
                            e.found, &e};
          hs.on_after(te);
        }
    },
    [hs, shared](atom::change, std::vector<change_batch>& batches) {
      for (auto& b : batches) {
        for (auto& c : b.changes)
          if (hs.on_change) {
            typed_change<T> tc;
            tc.kind = c.kind;
            tc.key = c.key;
            tc.old_value = decoded<T>(c.had_old, c.old_value, *hs.codec);
            tc.new_value = decoded<T>(c.kind == change_kind::set, c.new_value, *hs.codec);
            tc.time = b.time;
            tc.shard = b.shard;
            tc.seq = b.seq;
            tc.txid = b.txid;
            tc.raw = &c;
            hs.on_change(tc);
          }
        shared->advance(b);
      }
    },
    [hs, shared](atom::failed, error_event& e) {
      if (e.operation == "watch") {
        // Our own position: what the handlers handled, never less than
        // what the watcher knows was answered.
        if (auto theirs = resume_token::parse(e.position))
          shared->merge(*theirs);
        if (auto mine = shared->token(); !mine.empty())
          e.position = std::move(mine);
      }
      if (hs.on_error)
        hs.on_error(e);
    },
  };
}

} // namespace detail

/// One subscription (the spec's WatchSubscription): `unsubscribe` ends it.
/// Copies share it; it stays until unsubscribed or its store goes away,
/// also when the copies are gone.
class subscription {
public:
  subscription() = default;

  subscription(observable_storage_actor store, event_kind kind, event_actor who,
               watcher_actor w, std::shared_ptr<detail::subscription_state> shared)
    : store_(std::move(store)), kind_(kind), who_(std::move(who)), watcher_(std::move(w)),
      shared_(std::move(shared)) {
    // nop
  }

  /// Ends the subscription: the store forgets it and its actor stops.
  void unsubscribe() {
    if (watcher_)
      caf::anon_send(watcher_, atom::unwatch_v);
    else if (store_ && who_)
      caf::anon_send(store_, atom::off_v, kind_, who_);
    if (who_)
      caf::anon_send_exit(who_, caf::exit_reason::user_shutdown);
    who_ = nullptr;
    watcher_ = nullptr;
  }

  /// Ends the subscription like `unsubscribe`, waits until no handler runs
  /// any more, and returns the position (blocking code only: it waits).
  std::string stop() {
    auto who = who_;
    unsubscribe();
    if (who) {
      caf::scoped_actor self{who->home_system()};
      self->wait_for(who);
    }
    return position();
  }

  /// A watch's resume token: resuming from it delivers exactly the changes
  /// after those its handler was given. Changes being handled while it is
  /// read count once the handler returns: read it after `stop` to resume.
  std::string position() const {
    return shared_ ? shared_->token() : std::string{};
  }

  /// The actor that calls the handlers.
  const event_actor& subscriber() const {
    return who_;
  }

  /// A watch's watcher (null for other events).
  const watcher_actor& watcher() const {
    return watcher_;
  }

private:
  observable_storage_actor store_;
  event_kind kind_ = event_kind::change;
  event_actor who_;
  watcher_actor watcher_;
  std::shared_ptr<detail::subscription_state> shared_;
};

/// Events of a store for code that blocks (`main`, tests): each call waits
/// until the store took the subscription, then the handlers run on their
/// own actor. For event-based actors, `watch(self, ...)` and `on(self, ...)`
/// answer with a `pending` instead.
template <class T>
class observer {
public:
  observer(caf::actor_system& sys, observable_storage_actor store,
           std::chrono::milliseconds timeout = std::chrono::seconds{30})
    : sys_(sys), store_(std::move(store)), timeout_(timeout) {
    // nop
  }

  /// Reads values with `custom` where they were written by it (values of
  /// every other format read without it).
  void serialize_with(serializer<T> custom) {
    codec_ = std::make_shared<const value_codec<T>>(serialization{}, std::move(custom));
  }

  /// Watches the keys matching a glob (`user:*`), from now on.
  caf::expected<subscription> watch(const std::string& glob, change_handler<T> on_change,
                                    error_handler on_error = {}) {
    watch_options opts;
    opts.filter.pattern = glob;
    return watch(opts, std::move(on_change), std::move(on_error));
  }

  /// Watches what `opts` selects, from `opts.from` or now. `on_error` learns
  /// why a watch ended, with the position to resume from.
  caf::expected<subscription> watch(const watch_options& opts, change_handler<T> on_change,
                                    error_handler on_error = {}) {
    detail::handlers<T> hs;
    hs.on_change = std::move(on_change);
    hs.on_error = std::move(on_error);
    auto [who, shared] = spawn_subscriber(std::move(hs), opts.from, true);
    caf::scoped_actor self{sys_};
    caf::expected<subscription> result{caf::error{}};
    self->request(store_, timeout_, atom::watch_v, opts, who)
      .receive(
        [&](watcher_actor& w) {
          start_position(self, w, *shared);
          result = subscription{store_, event_kind::change, who, std::move(w), shared};
        },
        [&](caf::error& err) {
          caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
          result = std::move(err);
        });
    return result;
  }

  /// `before:get`, `before:set`, `before:delete`: `handler` answers each
  /// operation before it is applied; an error vetoes it.
  caf::expected<subscription> on(event_kind kind, before_handler<T> handler,
                                 const subscribe_options& opts = {}) {
    detail::handlers<T> hs;
    hs.on_before = std::move(handler);
    return subscribe(kind, std::move(hs), opts);
  }

  /// `after:get`, `after:set`, `after:delete`.
  caf::expected<subscription> on(event_kind kind, after_handler<T> handler) {
    detail::handlers<T> hs;
    hs.on_after = std::move(handler);
    return subscribe(kind, std::move(hs), {});
  }

  /// `error`: failed operations.
  caf::expected<subscription> on_error(error_handler handler) {
    detail::handlers<T> hs;
    hs.on_error = std::move(handler);
    return subscribe(event_kind::error, std::move(hs), {});
  }

  /// `change`: every commit, from now on (a watch of every key).
  caf::expected<subscription> on_change(change_handler<T> handler) {
    return watch(watch_options{}, std::move(handler));
  }

  /// Ends a subscription (the spec's `off`).
  void off(subscription& s) {
    s.unsubscribe();
  }

  /// The retained log after `from` (empty: nothing, and the token of now):
  /// at most `limit` commits per shard, and the token to continue from.
  caf::expected<std::pair<std::vector<change_batch>, std::string>>
  changes(const std::string& from, uint32_t limit = 0, const change_filter_spec& filter = {}) {
    caf::scoped_actor self{sys_};
    caf::expected<std::pair<std::vector<change_batch>, std::string>> result{caf::error{}};
    self->request(store_, timeout_, atom::changes_v, from, limit, filter)
      .receive(
        [&](std::vector<change_batch>& bs, std::string& next) {
          result = std::make_pair(std::move(bs), std::move(next));
        },
        [&](caf::error& err) { result = std::move(err); });
    return result;
  }

private:
  std::pair<event_actor, std::shared_ptr<detail::subscription_state>>
  spawn_subscriber(detail::handlers<T> hs, const std::string& from, bool watch) {
    hs.codec = codec_;
    auto shared = std::make_shared<detail::subscription_state>();
    if (auto t = resume_token::parse(from))
      shared->merge(*t);
    auto who = sys_.spawn(detail::subscriber<T>, std::move(hs), shared, store_, watch);
    return {who, shared};
  }

  /// A watch from now learns where it started from its watcher.
  void start_position(caf::scoped_actor& self, const watcher_actor& w,
                      detail::subscription_state& shared) {
    self->request(w, timeout_, atom::info_v)
      .receive(
        [&](watch_info& info) {
          if (auto t = resume_token::parse(info.position))
            shared.merge(*t);
        },
        [](caf::error&) {});
  }

  caf::expected<subscription> subscribe(event_kind kind, detail::handlers<T> hs,
                                        const subscribe_options& opts) {
    auto [who, shared] = spawn_subscriber(std::move(hs), {}, false);
    caf::scoped_actor self{sys_};
    caf::expected<subscription> result{caf::error{}};
    self->request(store_, timeout_, atom::on_v, kind, who, opts)
      .receive([&] { result = subscription{store_, kind, who, {}, shared}; },
               [&](caf::error& err) {
                 caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
                 result = std::move(err);
               });
    return result;
  }

  caf::actor_system& sys_;
  observable_storage_actor store_;
  std::chrono::milliseconds timeout_;
  codec_ptr<T> codec_ = value_codec<T>::standard();
};

} // namespace strata

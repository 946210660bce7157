#include "actors/watcher.hpp"

#include <algorithm>

#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/join.hpp"
#include "backends/log.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

using watcher_ptr = watcher_actor::stateful_pointer<watcher_state>;
using step = watched_shard::step;

/// How long a shard holds an `await` before answering anyway.
constexpr uint32_t max_wait_ms = 5000;

void pump(watcher_ptr self, uint32_t s);

/// Ends the watch, telling the subscriber why and where it stands.
void end(watcher_ptr self, caf::error err) {
  auto& st = self->state;
  if (st.ended)
    return;
  st.ended = true;
  if (err) {
    log().info("watch {} ended: {}", st.cfg.opts.filter.pattern, render(err));
    self->send(st.cfg.subscriber, atom::failed_v,
               error_event{std::move(err), "watch", st.cfg.opts.filter.pattern, st.token()});
  }
  self->quit();
}

/// Moves the shard's answered position past the marks answered in order.
void settle(watched_shard& w) {
  while (!w.out.empty() && w.out.front().answered) {
    w.acked = w.out.front().last;
    w.out.pop_front();
  }
}

void deliver(watcher_ptr self, uint32_t s, std::vector<change_batch> batches, uint64_t last) {
  auto& st = self->state;
  auto& w = st.shards[s];
  w.out.push_back({last, false});
  ++st.in_flight;
  st.delivered += batches.size();
  // The answer is the credit: no timeout, a slow subscriber only waits.
  self->request(st.cfg.subscriber, caf::infinite, atom::change_v, std::move(batches))
    .then(
      [self, s, last] {
        auto& state = self->state;
        --state.in_flight;
        auto& shard = state.shards[s];
        for (auto& m : shard.out)
          if (m.last == last && !m.answered) {
            m.answered = true;
            break;
          }
        settle(shard);
        for (uint32_t i = 0; i < state.shards.size(); ++i)
          pump(self, i);
      },
      [self](caf::error& err) {
        end(self, make_error(errc::connection_lost,
                             "the subscriber did not take a delivery: " + render(err)));
      });
}

/// Waits at the shard for a commit after what was read.
void await(watcher_ptr self, uint32_t s) {
  auto& st = self->state;
  auto& w = st.shards[s];
  w.now = step::waiting;
  auto wait = static_cast<uint32_t>(
    std::min<int64_t>(max_wait_ms, std::max<int64_t>(1, st.cfg.timeout.count() / 2)));
  self
    ->request(st.cfg.shards[s], st.cfg.timeout + std::chrono::milliseconds{wait},
              atom::await_v, w.read, wait)
    .then(
      [self, s](uint64_t last) {
        auto& shard = self->state.shards[s];
        shard.now = step::idle;
        if (last > shard.read)
          pump(self, s);
        else
          await(self, s);
      },
      [self, s](caf::error& err) {
        if (err == caf::sec::request_timeout) { // a slow node: ask again
          await(self, s);
          return;
        }
        end(self, err);
      });
}

/// Reads the shard's next page if the subscriber has room for it.
void pump(watcher_ptr self, uint32_t s) {
  auto& st = self->state;
  auto& w = st.shards[s];
  if (st.ended || w.now != step::idle || st.in_flight >= st.cfg.opts.window)
    return;
  w.now = step::reading;
  change_request req;
  req.after = w.read;
  req.limit = st.cfg.opts.max_batches;
  req.filter = st.cfg.opts.filter;
  self->request(st.cfg.shards[s], st.cfg.timeout, atom::changes_v, std::move(req))
    .then(
      [self, s](change_page& page) {
        auto& shard = self->state.shards[s];
        shard.now = step::idle;
        shard.read = std::max(shard.read, page.last);
        auto had_changes = !page.batches.empty();
        if (had_changes) {
          deliver(self, s, std::move(page.batches), shard.read);
        } else if (shard.out.empty()) {
          shard.acked = shard.read;
        } else {
          shard.out.push_back({shard.read, true});
        }
        // After a page with changes, read again: under load the next
        // commits are there already, and a wait would cost a round trip.
        // After an empty one, wait at the shard for the next commit.
        if (page.more || had_changes)
          pump(self, s);
        else
          await(self, s);
      },
      [self, s](caf::error& err) {
        if (err == caf::sec::request_timeout) {
          self->state.shards[s].now = step::idle;
          pump(self, s);
          return;
        }
        end(self, join::annotate(std::move(err), s));
      });
}

} // namespace

std::string watcher_state::token() const {
  resume_token t;
  for (auto& w : shards)
    t.positions.push_back(w.acked);
  return t.to_string();
}

watcher_actor::behavior_type watcher(watcher_actor::stateful_pointer<watcher_state> self,
                                     watcher_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.shards.resize(st.cfg.shards.size());
  for (size_t i = 0; i < st.shards.size(); ++i)
    st.shards[i].read = st.shards[i].acked = st.cfg.positions[i];
  self->monitor(st.cfg.subscriber);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.cfg.subscriber.address())
      end(self, caf::error{}); // nobody to tell
    else // the store
      end(self, make_error(errc::connection_lost, "the store stopped"));
  });
  for (uint32_t i = 0; i < st.shards.size(); ++i)
    pump(self, i);
  return {
    [self](atom::info) -> watch_info {
      auto& state = self->state;
      watch_info x;
      x.filter = state.cfg.opts.filter;
      x.position = state.token();
      x.delivered = state.delivered;
      x.in_flight = state.in_flight;
      return x;
    },
    [self](atom::unwatch) { end(self, caf::error{}); },
  };
}

} // namespace strata

#include "actors/remote_shard.hpp"

#include <set>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/connect.hpp"
#include "backends/log.hpp"
#include "actors/shard_relay.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

using proxy_ptr = remote_shard_actor::stateful_pointer<remote_shard_state>;
using link = remote_shard_state::link;

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void connect(proxy_ptr self);
void recover_then_serve(proxy_ptr self);

constexpr auto connect_timeout = std::chrono::milliseconds{5000};

/// Waits before the next attempt: `reconnect_min`, doubling per failure;
/// `reconnect_min` again after a refused connect (`refused`).
void back_off(proxy_ptr self, bool refused = false) {
  auto& st = self->state;
  st.backoff = st.backoff.count() == 0 || refused
                 ? st.cfg.reconnect_min
                 : std::min(st.backoff * 2, st.cfg.reconnect_max);
  st.retry_at = std::chrono::steady_clock::now() + st.backoff;
  self->delayed_send(self, st.backoff, atom::retry_v);
}

/// A connection attempt failed. A node that refuses the connection (its host
/// answers, nothing listens yet: it is restarting) is tried again after
/// `reconnect_min`, so that it is found soon after it listens again; other
/// failures (no answer at all) back off.
void failed(proxy_ptr self, const caf::error& err) {
  auto& st = self->state;
  auto why = render(err);
  bool first = st.seen.error != why;
  st.state = link::offline;
  st.seen.status = node_status::offline;
  st.seen.error = why;
  if (first)
    log().warn("shard {}: cannot reach node {}: {}", st.cfg.shard, st.address, why);
  st.relay.fail_waiting(st.unavailable());
  back_off(self, err == caf::sec::cannot_connect_to_node);
}

/// Requests go out from now on.
void ready(proxy_ptr self) {
  auto& st = self->state;
  st.state = link::connected;
  st.relay.release();
}

/// The node and the shard answered. A node that restarted may hold
/// transactions in doubt: they are resolved with the coordinator before any
/// request goes out, so that nobody reads a key that an acknowledged commit
/// is still to write.
void connected(proxy_ptr self, node_actor node, shard_actor target) {
  auto& st = self->state;
  st.node = std::move(node);
  st.target = std::move(target);
  self->monitor(st.node);
  self->monitor(st.target);
  st.backoff = std::chrono::milliseconds{0};
  st.last_answer = std::chrono::steady_clock::now();
  st.seen.id = to_string(st.node.node());
  st.seen.status = node_status::healthy;
  st.seen.last_seen_ms = unix_ms();
  st.seen.error.clear();
  log().info("shard {}: connected to node {}", st.cfg.shard, st.address);
  // Until the store names its coordinator, requests keep waiting.
  if (st.coordinator)
    recover_then_serve(self);
}

void recover_then_serve(proxy_ptr self) {
  auto& st = self->state;
  auto attempt = st.attempt;
  self->request(st.target, caf::duration{st.cfg.timeout}, atom::recover_v, st.coordinator)
    .then(
      [self, attempt](uint64_t n) {
        if (n > 0)
          log().info("shard {}: resolved {} transactions in doubt",
                     self->state.cfg.shard, n);
        if (attempt == self->state.attempt && self->state.target)
          ready(self);
      },
      [self, attempt](caf::error& err) {
        log().warn("shard {}: transactions stay in doubt: {}", self->state.cfg.shard,
                   render(err));
        if (attempt == self->state.attempt && self->state.target)
          ready(self);
      });
}

void connect(proxy_ptr self) {
  auto& st = self->state;
  st.state = link::connecting;
  auto attempt = ++st.attempt;
  // A connection attempt that stalls (a peer that accepts but never
  // answers) is given up after a few seconds and retried with backoff.
  auto t = caf::duration{std::min(st.cfg.timeout, connect_timeout)};
  auto failed_attempt = [self, attempt](const caf::error& err) {
    if (attempt == self->state.attempt)
      failed(self, err);
  };
  connect_async<node_actor>(
    self, st.cfg.host, st.cfg.port, st.cfg.tls, t,
    "a strata shard node",
    [self, attempt, t, failed_attempt](node_actor node) {
      if (attempt != self->state.attempt)
        return;
      self->request(node, t, atom::shard_v, self->state.cfg.shard)
        .then(
          [self, attempt, node](shard_actor& target) {
            if (attempt == self->state.attempt)
              connected(self, node, std::move(target));
          },
          [failed_attempt](caf::error& err) { failed_attempt(err); });
    },
    failed_attempt);
}

/// The connection went away: fail what is in flight, reconnect later.
void lost(proxy_ptr self, const caf::error& reason) {
  auto& st = self->state;
  auto why = "connection lost (" + render(reason) + ")";
  log().warn("shard {}: node {}: {}", st.cfg.shard, st.address, why);
  st.node = nullptr;
  st.target = nullptr;
  st.state = link::offline;
  st.seen.status = node_status::offline;
  st.seen.error = why;
  auto err = make_error(errc::connection_lost,
                        "shard " + std::to_string(st.cfg.shard) + " on node " + st.address
                          + ": " + why + "; the request may or may not have been applied");
  st.relay.fail_pending(err);
  st.relay.fail_waiting(err);
  st.backoff = std::chrono::milliseconds{0};
  back_off(self);
}

void heartbeat(proxy_ptr self) {
  auto& st = self->state;
  if (st.state != link::connected)
    return;
  auto now = std::chrono::steady_clock::now();
  if (now - st.last_answer > 3 * st.cfg.heartbeat && st.seen.status == node_status::healthy) {
    st.seen.status = node_status::degraded;
    st.seen.error = "no heartbeat answer for "
                    + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       now - st.last_answer)
                                       .count())
                    + " ms";
    log().warn("shard {}: node {}: {}", st.cfg.shard, st.address, st.seen.error);
  }
  if (st.ping_in_flight)
    return;
  st.ping_in_flight = true;
  auto node = st.node;
  self->request(node, caf::duration{3 * st.cfg.heartbeat}, atom::ping_v)
    .then(
      [self, node](node_info&) {
        auto& s = self->state;
        s.ping_in_flight = false;
        if (s.node != node)
          return;
        s.last_answer = std::chrono::steady_clock::now();
        s.seen.last_seen_ms = unix_ms();
        if (s.seen.status == node_status::degraded) {
          log().info("shard {}: node {} answers again", s.cfg.shard, s.address);
          s.seen.status = node_status::healthy;
          s.seen.error.clear();
        }
      },
      [self](caf::error&) { self->state.ping_in_flight = false; });
}

} // namespace

relay_table::mode remote_shard_state::mode() const {
  switch (state) {
    case link::connected: return relay_table::mode::ready;
    case link::connecting: return relay_table::mode::waiting;
    default: return relay_table::mode::unavailable;
  }
}

caf::error remote_shard_state::unavailable() const {
  return make_error(errc::connection_failed,
                    "shard " + std::to_string(cfg.shard) + ": node " + address
                      + " is unreachable (" + seen.error + "); reconnecting");
}

caf::error remote_shard_state::lost(const caf::error& err) const {
  if (code_of(err) != errc::none)
    return err;
  return make_error(errc::connection_lost,
                    "shard " + std::to_string(cfg.shard) + " on node " + address
                      + ": no answer (" + render(err)
                      + "); the request may or may not have been applied");
}

remote_shard_actor::behavior_type
remote_shard(remote_shard_actor::stateful_pointer<remote_shard_state> self,
             remote_shard_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.relay.limit = st.cfg.timeout;
  st.address = st.cfg.host + ":" + std::to_string(st.cfg.port);
  st.seen.address = st.address;
  st.seen.status = node_status::offline;
  st.seen.error = "not connected yet";
  st.seen.shards = {st.cfg.shard};
  self->set_exit_handler([self](caf::exit_msg& em) {
    // The store stops: nobody waits for an answer that would never come.
    auto gone = make_error(errc::connection_lost, "the store is shutting down");
    self->state.relay.fail_pending(gone);
    self->state.relay.fail_waiting(gone);
    self->quit(em.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if ((s.node && dm.source == s.node.address())
        || (s.target && dm.source == s.target.address()))
      lost(self, dm.reason);
  });
  connect(self);
  self->delayed_send(self, st.cfg.heartbeat, atom::tick_v);
  auto own = std::make_tuple(
    [self](atom::tick) {
      auto& s = self->state;
      s.relay.expire(std::chrono::steady_clock::now(), [&s] {
        return make_error(errc::connection_lost,
                          "shard " + std::to_string(s.cfg.shard) + " on node " + s.address
                            + ": no answer within "
                            + std::to_string(s.cfg.timeout.count())
                            + " ms; the request may or may not have been applied");
      });
      heartbeat(self);
      self->delayed_send(self, self->state.cfg.heartbeat, atom::tick_v);
    },
    [self](atom::retry) {
      // Timers may fire a little early; a retry is due within a millisecond.
      auto& s = self->state;
      auto now = std::chrono::steady_clock::now() + std::chrono::milliseconds{1};
      if (s.state == link::offline && now >= s.retry_at)
        connect(self);
    },
    [self](atom::nodes) -> caf::result<node_info> { return self->state.seen; },
    [self](atom::info) -> caf::result<shard_info> { return relay<shard_info>(self, atom::info_v); },
    [self](atom::recover, coordinator_actor& coord) -> caf::result<uint64_t> {
      auto& s = self->state;
      bool held = !s.coordinator && s.target && s.state == link::connecting;
      s.coordinator = coord;
      if (held) { // connected before the store named its coordinator
        recover_then_serve(self);
        return uint64_t{0};
      }
      return relay<uint64_t>(self, atom::recover_v, std::move(coord));
    });
  return std::apply(
    [](auto&&... hs) {
      return remote_shard_actor::behavior_type{std::move(hs)...};
    },
    std::tuple_cat(shard_read_relay_handlers(self),
                   shard_write_relay_handlers(
                     self, [](auto& state) { return state.target; }, st.cfg.max_value_size,
                     st.cfg.max_frame),
                   shard_txn_read_relay_handlers(self), shard_query_relay_handlers(self),
                   shard_change_relay_handlers(self),
                   shard_index_relay_handlers(self, [](auto& state) { return state.target; }),
                   std::move(own)));
}

remote_shard_actor spawn_remote_shard(caf::actor_system& sys, remote_shard_config cfg) {
  return sys.spawn(remote_shard, std::move(cfg));
}

} // namespace strata

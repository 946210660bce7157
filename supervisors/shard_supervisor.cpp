#include "supervisors/shard_supervisor.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "actors/shard_reads.hpp"
#include "actors/shard_relay.hpp"
#include "backends/data_dir.hpp"
#include "backends/log.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

using sup_ptr = supervised_shard_actor::stateful_pointer<shard_supervisor_state>;
using phase = shard_supervisor_state::phase;

/// How often a restart checks whether the failed instance's store is closed,
/// and how long it waits for that at most.
constexpr auto poll_interval = std::chrono::milliseconds{5};
constexpr auto close_timeout = std::chrono::seconds{10};

uint32_t index_of(const shard_supervisor_state& st) {
  return st.cfg.shard.store.shard;
}

void go_offline(sup_ptr self, std::string why) {
  auto& st = self->state;
  st.now = phase::offline;
  st.last_failure = std::move(why);
  st.cfg.slot->set(nullptr);
  log().error("shard {} is offline: {}", index_of(st), st.last_failure);
  st.relay.fail_waiting(st.unavailable());
}

/// Takes a freshly opened shard as the current instance (linked, so that it
/// stops with the supervisor), without serving it yet.
void adopt(sup_ptr self, const local_shard& s) {
  auto& st = self->state;
  st.target = s.actor;
  st.writer = s.writer;
  st.current = s.store;
  self->link_to(st.target);
}

/// Serves the current instance: direct reads and the held requests.
void serve(sup_ptr self, std::shared_ptr<shard_core> store) {
  auto& st = self->state;
  st.cfg.slot->set(std::move(store));
  st.now = phase::running;
  st.relay.release();
}

/// Reopens the shard once the failed instance has closed its store.
void reopen(sup_ptr self) {
  auto& st = self->state;
  if (st.now != phase::restarting)
    return;
  if (!st.closing.expired()) {
    if (std::chrono::steady_clock::now() > st.reopen_deadline) {
      go_offline(self, "the failed instance did not close its store within "
                       + std::to_string(close_timeout.count()) + " s");
      return;
    }
    self->delayed_send(self, poll_interval, atom::restart_v);
    return;
  }
  auto s = spawn_shard(self->system(), st.cfg.shard);
  if (!s) {
    go_offline(self, "cannot reopen: " + render(s.error()));
    return;
  }
  ++st.restarts;
  log().info("shard {}: restarted ({} restarts so far)", index_of(st), st.restarts);
  adopt(self, *s);
  if (!st.coordinator) {
    serve(self, s->store);
    return;
  }
  // Outcomes the coordinator could not deliver while the shard was down are
  // resolved before the held requests go out (and the slot opens for
  // direct reads), so nobody reads what an acknowledged commit is to write.
  auto target = st.target;
  s = caf::error{}; // only the instance holds its store while recovering
  self->request(target, caf::infinite, atom::recover_v, st.coordinator)
    .then(
      [self, target](uint64_t) {
        if (self->state.target == target)
          serve(self, self->state.current.lock());
      },
      [self, target](caf::error& err) {
        log().warn("shard {}: transactions stay in doubt: {}", index_of(self->state),
                   render(err));
        if (self->state.target == target)
          serve(self, self->state.current.lock());
      });
}

void on_failure(sup_ptr self, const caf::error& reason) {
  auto& st = self->state;
  if (!st.target)
    return;
  auto why = render(reason);
  st.failed.push_back(st.target.address());
  // An instance that answered with an error may still run: stop it, so that
  // it lets go of the store (its exit is then ignored).
  self->send_exit(st.target, caf::exit_reason::kill);
  log().error("shard {} failed: {}", index_of(st), why);
  st.last_failure = why;
  st.closing = st.current;
  st.cfg.slot->set(nullptr);
  st.target = nullptr;
  st.writer = nullptr;
  st.relay.fail_pending(st.lost(reason));
  auto now = std::chrono::steady_clock::now();
  st.failures.push_back(now);
  while (!st.failures.empty() && now - st.failures.front() > st.cfg.window)
    st.failures.pop_front();
  if (st.failures.size() > st.cfg.max_restarts) {
    go_offline(self, std::to_string(st.failures.size()) + " failures within "
                       + std::to_string(st.cfg.window.count())
                       + " ms (restart limit " + std::to_string(st.cfg.max_restarts)
                       + "); last: " + why);
    return;
  }
  st.now = phase::restarting;
  st.reopen_deadline = now + close_timeout;
  reopen(self);
}

} // namespace

void relay_failed(sup_ptr self, const caf::error& err) {
  if (code_of(err) == errc::none)
    on_failure(self, err);
}

relay_table::mode shard_supervisor_state::mode() const {
  switch (now) {
    case phase::running: return relay_table::mode::ready;
    case phase::restarting: return relay_table::mode::waiting;
    default: return relay_table::mode::unavailable;
  }
}

caf::error shard_supervisor_state::unavailable() const {
  return make_error(errc::connection_failed,
                    "shard " + std::to_string(cfg.shard.store.shard)
                      + " is offline: " + last_failure
                      + "; reopen the store once the cause is fixed");
}

caf::error shard_supervisor_state::lost(const caf::error& err) const {
  if (code_of(err) != errc::none)
    return err;
  return make_error(errc::connection_lost,
                    "shard " + std::to_string(cfg.shard.store.shard)
                      + " failed while handling the request (" + render(err)
                      + "); it restarts, and the request may or may not have "
                        "been applied");
}

supervised_shard_actor::behavior_type
shard_supervisor(supervised_shard_actor::stateful_pointer<shard_supervisor_state> self,
                 shard_supervisor_config cfg, local_shard first) {
  self->state.cfg = std::move(cfg);
  self->set_exit_handler([self](caf::exit_msg& em) {
    auto& st = self->state;
    if (st.target && em.source == st.target.address()) {
      on_failure(self, em.reason);
      return;
    }
    if (std::find(st.failed.begin(), st.failed.end(), em.source) != st.failed.end())
      return; // an instance whose failure was handled already
    // Stopped from outside: the linked shard stops with us, and nobody waits
    // for an answer that would never come.
    auto gone = make_error(errc::connection_lost,
                           "shard " + std::to_string(index_of(st)) + " is shutting down");
    st.relay.fail_pending(gone);
    st.relay.fail_waiting(gone);
    self->quit(em.reason);
  });
  adopt(self, first);
  serve(self, first.store);
  // Reads of a running shard are answered here, from its store, saving the
  // hop to the shard (remote clients of a shard node see one hop less).
  auto store = [self] { return self->state.cfg.slot->get(); };
  auto own = std::make_tuple(
    [self, store](atom::get, std::string& key) -> caf::result<maybe_bytes> {
      if (auto s = store())
        return shard_reads::get(*s, key);
      return relay<maybe_bytes>(self, atom::get_v, std::move(key));
    },
    [self, store](atom::has, std::string& key) -> caf::result<bool> {
      if (auto s = store())
        return shard_reads::has(*s, key);
      return relay<bool>(self, atom::has_v, std::move(key));
    },
    [self, store](atom::size) -> caf::result<uint64_t> {
      if (auto s = store())
        return shard_reads::size(*s);
      return relay<uint64_t>(self, atom::size_v);
    },
    [self, store](atom::scan, scan_request& req) -> caf::result<scan_page> {
      if (auto s = store())
        return shard_reads::scan(*s, req);
      return relay<scan_page>(self, atom::scan_v, std::move(req));
    },
    [self, store](atom::get_many, std::vector<std::string>& keys)
      -> caf::result<std::vector<maybe_bytes>> {
      if (auto s = store())
        return shard_reads::get_many(*s, keys);
      return relay<std::vector<maybe_bytes>>(self, atom::get_many_v, std::move(keys));
    },
    // Transactional reads as well, unless a committing transaction holds the
    // key: then they wait at the writer for its outcome.
    [self, store](atom::read, std::string& key) -> caf::result<maybe_bytes, uint64_t> {
      if (auto s = store()) {
        auto r = shard_reads::read(*s, key);
        if (!r)
          return std::move(r.error());
        if (!r->blocked)
          return {std::move(r->value), r->seq};
        return relay_to<maybe_bytes, uint64_t>(
          self, [](auto& st) { return st.writer; }, atom::read_v, std::move(key));
      }
      return relay<maybe_bytes, uint64_t>(self, atom::read_v, std::move(key));
    },
    [self, store](atom::read, scan_request& req) -> caf::result<scan_page, uint64_t> {
      if (auto s = store()) {
        auto r = shard_reads::read(*s, req);
        if (!r)
          return std::move(r.error());
        if (!r->blocked)
          return {std::move(r->value), r->seq};
        return relay_to<scan_page, uint64_t>(
          self, [](auto& st) { return st.writer; }, atom::read_v, std::move(req));
      }
      return relay<scan_page, uint64_t>(self, atom::read_v, std::move(req));
    },
    [self](atom::restart) { reopen(self); },
    [self](atom::info) -> caf::result<shard_info> {
      // The shard's figures plus the supervisor's restart count.
      return relay_adjusted<shard_info>(
        self, [self](shard_info& x) { x.restarts = self->state.restarts; },
        atom::info_v);
    },
    [self](atom::recover, coordinator_actor& coord) -> caf::result<uint64_t> {
      self->state.coordinator = coord;
      return relay<uint64_t>(self, atom::recover_v, std::move(coord));
    });
  return std::apply(
    [](auto&&... hs) {
      return supervised_shard_actor::behavior_type{std::move(hs)...};
    },
    std::tuple_cat(shard_write_relay_handlers(
                     self, [](auto& st) { return st.writer; },
                     self->state.cfg.shard.max_value_size),
                   shard_query_relay_handlers(self), shard_change_relay_handlers(self),
                   shard_index_relay_handlers(self, [](auto& st) { return st.writer; }),
                   std::move(own)));
}

caf::expected<supervised_shard_actor>
spawn_supervised_shard(caf::actor_system& sys, const store_options& opts, uint32_t i,
                       std::shared_ptr<const void> lock,
                       std::shared_ptr<shard_slot>& slot) {
  shard_options so;
  so.store.dir = shard_dir(opts.data_dir, i);
  so.store.shard = i;
  so.store.shard_count = opts.shards;
  so.store.store_id = opts.id;
  so.store.map_size = opts.shard_map_size();
  so.store.no_sync = opts.sync == sync_mode::nosync;
  so.store.background_flush = opts.background_flush;
  parse_engine(opts.engine, so.store.engine); // validated with the options
  so.store.snapshot = opts.memory_snapshot;
  so.store.sqlite = opts.sqlite;
  so.store.json = opts.json;
  so.store.graph = opts.graph;
  so.store.hints = opts.hints;
  so.store.changes.enabled = opts.changes.enabled;
  so.store.changes.retain_commits = opts.changes.retain_commits;
  so.store.changes.retain_ms = opts.changes.retain_ms;
  so.store.changes.old_values = opts.changes.old_values;
  so.max_value_size = opts.max_value_size;
  so.keepalive = std::move(lock);
  so.timeout = opts.request_timeout;
  auto first = spawn_shard(sys, so);
  if (!first)
    return std::move(first.error());
  slot = std::make_shared<shard_slot>(first->store);
  shard_supervisor_config sc;
  sc.shard = std::move(so);
  sc.max_restarts = opts.max_restarts;
  sc.window = opts.restart_window;
  sc.slot = slot;
  return sys.spawn(shard_supervisor, std::move(sc), std::move(*first));
}

} // namespace strata

#include "actors/storage.hpp"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>

#include <caf/actor_pool.hpp>
#include <caf/actor_system.hpp>
#include <caf/default_attachable.hpp>
#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "actors/coordinator.hpp"
#include "actors/index.hpp"
#include "actors/join.hpp"
#include "actors/merge.hpp"
#include "actors/remote_shard.hpp"
#include "actors/shard.hpp"
#include "actors/shard_reads.hpp"
#include "actors/storage_events.hpp"
#include "actors/storage_queries.hpp"
#include "actors/timeouts.hpp"
#include "actors/timer.hpp"
#include "actors/transaction.hpp"
#include "backends/shard_core.hpp"
#include "backends/shard_slot.hpp"
#include "strata/routing.hpp"

namespace strata {

namespace {

using storage_ptr = observable_storage_actor::stateful_pointer<storage_state>;

/// Splits `keys` by shard, remembering each key's position in the request.
struct key_split {
  std::vector<std::vector<std::string>> keys;
  std::vector<std::vector<size_t>> positions;

  key_split(const std::vector<std::string>& all, uint32_t shards)
    : keys(shards), positions(shards) {
    for (size_t i = 0; i < all.size(); ++i) {
      auto s = routing::shard_of(all[i], shards);
      keys[s].push_back(all[i]);
      positions[s].push_back(i);
    }
  }
};

/// The indexes of the shards that have something to do.
template <class Parts>
std::vector<uint32_t> non_empty(const std::vector<Parts>& parts) {
  std::vector<uint32_t> result;
  for (uint32_t i = 0; i < parts.size(); ++i)
    if (!parts[i].empty())
      result.push_back(i);
  return result;
}


/// Retries a write that met a transaction committing on the same keys
/// (VERSION_CONFLICT): plain writes do not fail for that, they call
/// `again(next backoff)` after `backoff_ms`, until the request timeout has
/// passed. Any other error, or one too late, goes to `fail`.
void retry_conflict(storage_ptr self, caf::error err, uint32_t backoff_ms,
                    std::chrono::steady_clock::time_point give_up,
                    std::function<void(uint32_t)> again,
                    std::function<void(caf::error&)> fail) {
  if (code_of(err) != errc::version_conflict
      || std::chrono::steady_clock::now() + std::chrono::milliseconds{backoff_ms} >= give_up) {
    fail(err);
    return;
  }
  self->request(self->state.timer, caf::infinite, atom::timeout_v, backoff_ms)
    .then([=] { again(std::min<uint32_t>(backoff_ms * 2, 64)); },
          [=](caf::error&) {
            auto copy = err;
            fail(copy);
          });
}

/// Commits `parts` atomically through the coordinator, retrying conflicts.
void commit_atomically(storage_ptr self, std::vector<shard_part> parts,
                       std::function<void(uint64_t)> ok,
                       std::function<void(caf::error&)> fail,
                       std::chrono::steady_clock::time_point give_up,
                       uint32_t backoff_ms = 1) {
  auto& st = self->state;
  auto txid = (st.incarnation << txn_counter_bits) | ++*st.next_txn;
  self->request(st.coordinator, timeout_to(self, st.coordinator, st.timeout),
                atom::commit_v, txid, parts)
    .then(ok, [=](caf::error& err) {
      retry_conflict(
        self, err, backoff_ms, give_up,
        [=](uint32_t next) { commit_atomically(self, parts, ok, fail, give_up, next); }, fail);
    });
}

/// Commits `ops` with the claims of unique indexes: asks the unique-index
/// actor for the claims, commits them with the data in one transaction, and
/// plans again if a read it relied on changed before the commit.
void commit_planned(storage_ptr self, std::vector<operation> ops,
                    std::vector<shard_part> data, std::function<void(uint64_t)> ok,
                    std::function<void(caf::error&)> fail,
                    std::chrono::steady_clock::time_point give_up,
                    uint32_t backoff_ms = 1) {
  self->request(self->state.unique, caf::infinite, atom::plan_v, ops)
    .then(
      [=](std::vector<shard_part>& claims) {
        auto parts = data;
        add_parts(parts, std::move(claims));
        auto& st = self->state;
        auto txid = (st.incarnation << txn_counter_bits) | ++*st.next_txn;
        self->request(st.coordinator, timeout_to(self, st.coordinator, st.timeout),
                      atom::commit_v, txid, std::move(parts))
          .then(ok, [=](caf::error& err) {
            retry_conflict(
              self, err, backoff_ms, give_up,
              [=](uint32_t next) { commit_planned(self, ops, data, ok, fail, give_up, next); },
              fail);
          });
      },
      [fail](caf::error& err) { fail(err); });
}

/// Who sent the message being handled (null once a promise was made for it).
caf::actor_addr sender_of(storage_ptr self) {
  return caf::actor_cast<caf::actor_addr>(self->current_sender());
}

/// Sends a write on now or, while its sender waits for a multi-key write,
/// after what the sender sent before. A multi-key write (`multi`) holds the
/// sender's later writes until `release`. `sender` and `rp` are taken before
/// the call: making a promise takes the sender over.
void in_order(storage_ptr self, const caf::actor_addr& sender, bool multi,
              caf::response_promise rp,
              std::function<void(caf::response_promise&)> send) {
  auto& gates = self->state.gates;
  if (!sender) { // anonymous: no order to keep
    send(rp);
    return;
  }
  if (auto i = gates.find(sender); i != gates.end()) {
    i->second.held.push_back({multi, std::move(rp), std::move(send)});
    return;
  }
  if (multi)
    gates[sender].busy = rp;
  send(rp);
}

/// A multi-key write of `sender` was answered: sends on what waited for it,
/// in order, up to and including the next multi-key write.
void release(storage_ptr self, const caf::actor_addr& sender) {
  auto& gates = self->state.gates;
  auto i = gates.find(sender);
  if (i == gates.end())
    return;
  auto& g = i->second;
  g.busy = caf::response_promise{};
  while (!g.busy.pending() && !g.held.empty()) {
    auto next = std::move(g.held.front());
    g.held.pop_front();
    if (next.multi)
      g.busy = next.rp;
    next.send(next.rp); // answers later: never back in here at once
  }
  if (!g.busy.pending())
    gates.erase(i);
}

/// Whether `msg` only reads, so that any router may answer it.
bool reads_only(caf::mailbox_element& what) {
  auto& msg = what.content();
  if (msg.size() == 0 || !msg.match_element<caf::atom_value>(0))
    return false;
  auto a = msg.get_as<caf::atom_value>(0);
  return a == atom::get_v.value || a == atom::get_many_v.value
         || a == atom::has_v.value || a == atom::scan_v.value
         || a == atom::size_v.value;
}

/// How the store's routers share its requests. Reads take turns, so that
/// several cores answer them. Everything else goes to the router picked by
/// its sender: one sender's writes stay in the order it sent them, as CAF
/// promises between two actors. `local_reads`: every shard is in this
/// process, so routers read the stores themselves.
caf::actor_pool::policy route_policy(bool local_reads) {
  struct impl {
    explicit impl(bool local) : spread(local) {
      // nop
    }
    impl(const impl& other) : spread(other.spread), next(0) {
      // nop
    }
    void operator()(caf::actor_system&, caf::actor_pool::uplock& guard,
                    const caf::actor_pool::actor_vec& routers,
                    caf::mailbox_element_ptr& ptr, caf::execution_unit* host) {
      if (routers.empty()) { // the store is closing
        guard.unlock();
        caf::detail::sync_request_bouncer bounce{caf::exit_reason::out_of_workers};
        bounce(*ptr);
        return;
      }
      auto reads = reads_only(*ptr);
      auto i = reads ? next++ : (ptr->sender ? ptr->sender->id() : 0);
      caf::actor picked = routers[i % routers.size()];
      guard.unlock();
      // A router that a read wakes goes to the scheduler's shared queue
      // rather than the sender's thread: CAF 0.17 would run it on the
      // sender's thread, where it waits for the sender, while idle workers
      // sleep and steal only every 10 ms (measured: get_many +20%). Not
      // when the router only passes reads on to shard nodes: waking another
      // thread then costs more than it brings (remote get -10%).
      picked->enqueue(std::move(ptr), reads && spread ? nullptr : host);
    }
    bool spread;
    std::atomic<size_t> next{0};
  };
  return impl{local_reads};
}

} // namespace

sender_gate::~sender_gate() {
  if (busy.pending())
    busy.deliver(make_error(errc::connection_lost,
                            "the store stopped while this write was in flight; it may "
                            "or may not have been applied"));
  for (auto& h : held)
    h.rp.deliver(make_error(errc::connection_failed,
                            "the store stopped before this write was sent on; it was "
                            "not applied"));
}

observable_storage_actor::behavior_type
storage(observable_storage_actor::stateful_pointer<storage_state> self,
        router_config cfg) {
  auto& shards = cfg.shards;
  auto& local = cfg.local;
  auto max_value_size = cfg.max_value_size;
  for (auto& s : shards)
    self->link_to(s);
  self->link_to(cfg.coordinator);
  self->state.timer = spawn_timer(self->system());
  self->link_to(self->state.timer);
  local.resize(shards.size());
  self->state.local = std::move(local);
  self->state.remote = std::move(cfg.remote);
  for (auto& r : self->state.remote)
    self->link_to(r);
  self->state.shards = std::move(shards);
  self->state.coordinator = std::move(cfg.coordinator);
  self->state.incarnation = cfg.incarnation;
  self->state.next_txn = cfg.next_txn;
  self->state.max_value_size = max_value_size;
  self->state.timeout = cfg.timeout;
  self->state.events = cfg.events;
  // Subscribers of `on` that go away are forgotten.
  self->set_down_handler(
    [self](caf::down_msg& dm) { storage_events::forget(self, dm.source); });
  {
    unique_config uc;
    uc.shards = self->state.shards;
    uc.coordinator = self->state.coordinator;
    uc.incarnation = cfg.incarnation;
    uc.next_txn = cfg.next_txn;
    uc.timeout = cfg.timeout;
    uc.registry = cfg.unique;
    self->state.registry = cfg.unique;
    self->state.unique = unique_of(self, uc);
  }
  auto n = static_cast<uint32_t>(self->state.shards.size());
  auto max = max_value_size;
  auto shard_for = [self, n](const std::string& key) {
    return self->state.shards[routing::shard_of(key, n)];
  };
  // The open store of `key`'s shard if it is in this process (and not
  // restarting); null otherwise.
  auto local_for = [self, n](const std::string& key) -> std::shared_ptr<shard_core> {
    auto& slot = self->state.local[routing::shard_of(key, n)];
    return slot ? slot->get() : nullptr;
  };
  // Every shard's open store, or nothing if one is remote or restarting.
  auto all_local = [self]() -> std::optional<std::vector<std::shared_ptr<shard_core>>> {
    std::vector<std::shared_ptr<shard_core>> result;
    result.reserve(self->state.local.size());
    for (auto& slot : self->state.local) {
      auto store = slot ? slot->get() : nullptr;
      if (!store)
        return std::nullopt;
      result.push_back(std::move(store));
    }
    return result;
  };
  // Sends `make(i)`'s request to every shard i in `which` and joins the answers.
  auto scatter = [self](const std::vector<uint32_t>& which,
                        caf::response_promise rp, std::function<void()> finish,
                        auto send) {
    auto j = std::make_shared<join>(which.size(), std::move(rp),
                                    std::move(finish));
    if (which.empty()) {
      j->pending = 1;
      j->arrived();
      return;
    }
    for (auto i : which)
      send(i, self->state.shards[i], j);
  };
  auto all_shards = [n] {
    std::vector<uint32_t> result(n);
    for (uint32_t i = 0; i < n; ++i)
      result[i] = i;
    return result;
  };
  auto on_error = [](std::shared_ptr<join> j, size_t i) {
    return [j, i](caf::error& err) {
      if (!j->first_error)
        j->first_error = join::annotate(std::move(err), i);
      j->arrived();
    };
  };
  // Applies per-shard operations atomically through the coordinator: one
  // shard's commit if only one is involved, else a two-phase commit. Answers
  // with `ok(rp, deleted)`, or `failed(rp, error)` (default: the error).
  // `ops` in request order: each shard gets its own, a clear goes to all.
  auto atomic = [=](std::vector<operation> ops,
                    std::function<void(caf::response_promise&, uint64_t)> ok,
                    std::function<void(caf::response_promise&, caf::error&)> failed =
                      [](caf::response_promise& rp, caf::error& err) {
                        rp.deliver(std::move(err));
                      }) {
    auto sender = sender_of(self); // before the promise takes it over
    auto rp = self->make_response_promise();
    auto planned = self->state.plans_claims();
    std::vector<std::vector<operation>> per_shard(n);
    for (auto& op : ops) {
      if (op.kind == op_kind::clear) {
        for (auto& part : per_shard)
          part.push_back(op);
      } else {
        per_shard[routing::shard_of(op.key, n)].push_back(planned ? op : std::move(op));
      }
    }
    if (!planned)
      ops.clear();
    std::vector<shard_part> parts;
    for (uint32_t i = 0; i < per_shard.size(); ++i)
      if (!per_shard[i].empty()) {
        shard_part p;
        p.shard = i;
        p.part.writes = std::move(per_shard[i]);
        parts.push_back(std::move(p));
      }
    if (parts.empty()) {
      ok(rp, 0);
      return rp;
    }
    in_order(self, sender, true, rp, [=](caf::response_promise& promise) mutable {
      // The time limit starts with the write, not while it waits.
      auto give_up = std::chrono::steady_clock::now() + self->state.timeout;
      auto on_ok = [self, promise, ok, sender](uint64_t deleted) mutable {
        ok(promise, deleted);
        release(self, sender);
      };
      auto on_fail = [self, promise, failed, sender](caf::error& err) mutable {
        failed(promise, err);
        release(self, sender);
      };
      if (planned)
        commit_planned(self, std::move(ops), std::move(parts), on_ok, on_fail, give_up);
      else
        commit_atomically(self, std::move(parts), on_ok, on_fail, give_up);
    });
    return rp;
  };
  // A single-key write goes straight to its shard, unless its sender waits
  // for a multi-key write: then it waits too (`hold`), in order.
  auto must_wait = [self] {
    auto& gates = self->state.gates;
    return !gates.empty() && gates.count(sender_of(self)) > 0;
  };
  auto hold = [self](std::function<void(caf::response_promise&)> send) {
    auto sender = sender_of(self); // before the promise takes it over
    auto rp = self->make_response_promise();
    in_order(self, sender, false, rp, std::move(send));
    return rp;
  };
  return {
    // -- one key: straight to its shard -------------------------------------------
    [=](atom::get, std::string& key) -> caf::result<maybe_bytes> {
      if (storage_events::observed(self, {event_kind::before_get, event_kind::after_get}))
        return storage_events::intercept<maybe_bytes>(
          self, "get", check_key(key), {storage_event{event_kind::before_get, key, {}, false}},
          [key](const maybe_bytes& v) {
            return std::vector<storage_event>{
              {event_kind::after_get, key, v ? *v : bytes{}, static_cast<bool>(v)}};
          },
          atom::get_v, key);
      if (auto store = local_for(key))
        return shard_reads::get(*store, key);
      if (auto err = check_key(key))
        return err;
      auto dest = shard_for(key);
      return self->delegate(dest, atom::get_v, std::move(key));
    },
    [=](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      if (storage_events::observed(self, {event_kind::before_set, event_kind::after_set}))
        return storage_events::intercept<void>(
          self, "set", check_key(key) ? check_key(key) : check_value(value, max),
          {storage_event{event_kind::before_set, key, value, false}},
          [key, value] {
            return std::vector<storage_event>{{event_kind::after_set, key, value, false}};
          },
          atom::set_v, key, value);
      if (auto err = check_key(key))
        return err;
      if (auto err = check_value(value, max))
        return err;
      if (self->state.plans_claims())
        return atomic({operation::set(std::move(key), std::move(value))},
                      [](caf::response_promise& rp, uint64_t) { rp.deliver(caf::unit); });
      auto dest = shard_for(key);
      if (must_wait())
        return hold([dest, key = std::move(key),
                     value = std::move(value)](caf::response_promise& rp) mutable {
          rp.delegate(dest, atom::set_v, std::move(key), std::move(value));
        });
      return self->delegate(dest, atom::set_v, std::move(key), std::move(value));
    },
    [=](atom::del, std::string& key) -> caf::result<bool> {
      if (storage_events::observed(self, {event_kind::before_delete, event_kind::after_delete}))
        return storage_events::intercept<bool>(
          self, "delete", check_key(key),
          {storage_event{event_kind::before_delete, key, {}, false}},
          [key](bool existed) {
            return std::vector<storage_event>{{event_kind::after_delete, key, {}, existed}};
          },
          atom::del_v, key);
      if (auto err = check_key(key))
        return err;
      if (self->state.plans_claims())
        return atomic({operation::del(std::move(key))},
                      [](caf::response_promise& rp, uint64_t deleted) {
                        rp.deliver(deleted > 0);
                      });
      auto dest = shard_for(key);
      if (must_wait())
        return hold([dest, key = std::move(key)](caf::response_promise& rp) mutable {
          rp.delegate(dest, atom::del_v, std::move(key));
        });
      return self->delegate(dest, atom::del_v, std::move(key));
    },
    [=](atom::has, std::string& key) -> caf::result<bool> {
      if (auto store = local_for(key))
        return shard_reads::has(*store, key);
      if (auto err = check_key(key))
        return err;
      auto dest = shard_for(key);
      return self->delegate(dest, atom::has_v, std::move(key));
    },
    // -- every shard -----------------------------------------------------------
    [=](atom::clear) -> caf::result<void> {
      if (storage_events::observed(self, {event_kind::before_delete, event_kind::after_delete}))
        return storage_events::intercept<void>(
          self, "clear", caf::error{},
          storage_events::events_of({operation::clear()}, true),
          [] { return storage_events::events_of({operation::clear()}, false); },
          atom::clear_v);
      return atomic({operation::clear()}, [](caf::response_promise& rp, uint64_t) {
        rp.deliver(caf::unit);
      });
    },
    [=](atom::size) -> caf::result<uint64_t> {
      if (auto stores = all_local()) {
        uint64_t total = 0;
        for (auto& store : *stores) {
          auto x = shard_reads::size(*store);
          if (!x)
            return std::move(x.error());
          total += *x;
        }
        return total;
      }
      auto rp = self->make_response_promise();
      auto total = std::make_shared<uint64_t>(0);
      scatter(all_shards(), rp, [rp, total]() mutable { rp.deliver(*total); },
              [=](uint32_t i, const shard_actor& s, std::shared_ptr<join> j) {
                self->request(s, timeout_to(self, s, self->state.timeout), atom::size_v)
                  .then(
                    [j, total](uint64_t x) {
                      *total += x;
                      j->arrived();
                    },
                    on_error(j, i));
              });
      return rp;
    },
    [=](atom::info) -> caf::result<std::vector<shard_info>> {
      auto rp = self->make_response_promise();
      auto infos = std::make_shared<std::vector<shard_info>>(n);
      scatter(all_shards(), rp, [rp, infos]() mutable { rp.deliver(std::move(*infos)); },
              [=](uint32_t i, const shard_actor& s, std::shared_ptr<join> j) {
                self->request(s, timeout_to(self, s, self->state.timeout), atom::info_v)
                  .then(
                    [j, infos, i](shard_info& x) {
                      (*infos)[i] = std::move(x);
                      j->arrived();
                    },
                    on_error(j, i));
              });
      return rp;
    },
    [=](atom::scan, scan_request& req) -> caf::result<scan_page> {
      if (auto stores = all_local()) {
        std::vector<scan_page> pages;
        for (auto& store : *stores) {
          auto page = shard_reads::scan(*store, req);
          if (!page)
            return std::move(page.error());
          pages.push_back(std::move(*page));
        }
        return merge_pages(pages, req.limit);
      }
      auto rp = self->make_response_promise();
      auto pages = std::make_shared<std::vector<scan_page>>(n);
      auto limit = req.limit;
      scatter(
        all_shards(), rp,
        [rp, pages, limit]() mutable { rp.deliver(merge_pages(*pages, limit)); },
        [=](uint32_t i, const shard_actor& s, std::shared_ptr<join> j) {
          self->request(s, timeout_to(self, s, self->state.timeout), atom::scan_v, req)
            .then(
              [j, pages, i](scan_page& p) {
                (*pages)[i] = std::move(p);
                j->arrived();
              },
              on_error(j, i));
        });
      return rp;
    },
    // -- several keys: split by shard --------------------------------------------
    [=](atom::get_many, const std::vector<std::string>& keys)
      -> caf::result<std::vector<maybe_bytes>> {
      if (storage_events::observed(self, {event_kind::before_get, event_kind::after_get})) {
        std::vector<storage_event> before;
        for (auto& k : keys)
          before.push_back({event_kind::before_get, k, {}, false});
        return storage_events::intercept<std::vector<maybe_bytes>>(
          self, "get_many", check_keys(keys), std::move(before),
          [keys](const std::vector<maybe_bytes>& vs) {
            std::vector<storage_event> after;
            for (size_t i = 0; i < keys.size() && i < vs.size(); ++i)
              after.push_back({event_kind::after_get, keys[i], vs[i] ? *vs[i] : bytes{},
                               static_cast<bool>(vs[i])});
            return after;
          },
          atom::get_many_v, keys);
      }
      if (auto err = check_keys(keys))
        return err;
      if (auto stores = all_local())
        return guarded([&] {
          // Group positions by shard, then read each shard's keys from one
          // snapshot straight into the answer.
          auto& by_shard = self->state.positions;
          by_shard.resize(n);
          for (auto& p : by_shard)
            p.clear();
          for (uint32_t i = 0; i < keys.size(); ++i)
            by_shard[routing::shard_of(keys[i], n)].push_back(i);
          std::vector<maybe_bytes> values(keys.size());
          for (uint32_t s = 0; s < n; ++s)
            if (!by_shard[s].empty())
              (*stores)[s]->read_each(
                keys, by_shard[s], [&](uint32_t i, std::string_view v) {
                  auto first = reinterpret_cast<const uint8_t*>(v.data());
                  values[i] = bytes(first, first + v.size());
                });
          return values;
        });
      auto split = std::make_shared<key_split>(keys, n);
      auto values = std::make_shared<std::vector<maybe_bytes>>(keys.size());
      auto which = non_empty(split->keys);
      auto rp = self->make_response_promise();
      scatter(
        which, rp, [rp, values]() mutable { rp.deliver(std::move(*values)); },
        [=](uint32_t i, const shard_actor& s, std::shared_ptr<join> j) {
          self
            ->request(s, timeout_to(self, s, self->state.timeout), atom::get_many_v,
                      std::move(split->keys[i]))
            .then(
              [j, split, values, i](std::vector<maybe_bytes>& vs) {
                auto& pos = split->positions[i];
                for (size_t k = 0; k < vs.size() && k < pos.size(); ++k)
                  (*values)[pos[k]] = std::move(vs[k]);
                j->arrived();
              },
              on_error(j, i));
        });
      return rp;
    },
    [=](atom::set_many, std::vector<entry>& entries) -> caf::result<void> {
      if (storage_events::observed(self, {event_kind::before_set, event_kind::after_set})) {
        std::vector<operation> ops;
        for (auto& e : entries)
          ops.push_back(operation::set(e.key, e.value));
        return storage_events::intercept<void>(
          self, "set_many", check_entries(entries, max), storage_events::events_of(ops, true),
          [ops] { return storage_events::events_of(ops, false); }, atom::set_many_v, entries);
      }
      if (auto err = check_entries(entries, max))
        return err;
      std::vector<operation> ops;
      ops.reserve(entries.size());
      for (auto& e : entries)
        ops.push_back(operation::set(std::move(e.key), std::move(e.value)));
      return atomic(std::move(ops), [](caf::response_promise& rp, uint64_t) {
        rp.deliver(caf::unit);
      });
    },
    [=](atom::del_many, const std::vector<std::string>& keys)
      -> caf::result<uint64_t> {
      if (storage_events::observed(self, {event_kind::before_delete, event_kind::after_delete})) {
        std::vector<operation> ops;
        for (auto& k : keys)
          ops.push_back(operation::del(k));
        return storage_events::intercept<uint64_t>(
          self, "del_many", check_keys(keys), storage_events::events_of(ops, true),
          [ops](uint64_t deleted) {
            auto after = storage_events::events_of(ops, false);
            for (auto& e : after) // known per key only if all or none existed
              e.found = deleted == after.size();
            return after;
          },
          atom::del_many_v, keys);
      }
      if (auto err = check_keys(keys))
        return err;
      std::vector<operation> ops;
      ops.reserve(keys.size());
      for (auto& k : keys)
        ops.push_back(operation::del(k));
      return atomic(std::move(ops), [](caf::response_promise& rp,
                                         uint64_t deleted) { rp.deliver(deleted); });
    },
    [=](atom::batch, std::vector<operation>& ops) -> caf::result<batch_result> {
      if (storage_events::observed(self, {event_kind::before_set, event_kind::after_set,
                                          event_kind::before_delete,
                                          event_kind::after_delete})) {
        auto errors = check_ops(ops, max);
        if (!errors.empty()) {
          storage_events::tell_error(self, errors.front(), "batch", {});
          return batch_result{false, 0, std::move(errors)};
        }
        return storage_events::intercept<batch_result>(
          self, "batch", caf::error{}, storage_events::events_of(ops, true),
          [ops](const batch_result& r) {
            return r.success ? storage_events::events_of(ops, false)
                             : std::vector<storage_event>{};
          },
          atom::batch_v, ops);
      }
      if (auto errors = check_ops(ops, max); !errors.empty())
        return batch_result{false, 0, std::move(errors)};
      auto count = ops.size();
      // A batch reports failure in its result, not as an error.
      return atomic(
        std::move(ops),
        [count](caf::response_promise& rp, uint64_t) {
          rp.deliver(batch_result{true, count, {}});
        },
        [](caf::response_promise& rp, caf::error& err) {
          rp.deliver(batch_result{false, 0, {std::move(err)}});
        });
    },
    // -- cluster --------------------------------------------------------------------
    [=](atom::nodes) -> caf::result<std::vector<node_info>> {
      using namespace std::chrono;
      auto& st = self->state;
      node_info here;
      here.id = to_string(self->node());
      here.address = "local";
      here.last_seen_ms
        = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
      for (uint32_t i = 0; i < st.local.size(); ++i) {
        if (!st.local[i])
          continue;
        here.shards.push_back(i);
        if (!st.local[i]->get()) {
          here.status = node_status::degraded;
          here.error += (here.error.empty() ? "shard " : ", shard ") + std::to_string(i)
                        + " restarting or offline";
        }
      }
      auto result = std::make_shared<std::vector<node_info>>(1, std::move(here));
      if (st.remote.empty())
        return std::move(*result);
      // One entry per node: its shards' proxies see the same connection.
      // A proxy that fails to answer leaves its node out.
      auto rp = self->make_response_promise();
      auto j = std::make_shared<join>(st.remote.size(), rp, [result, rp]() mutable {
        for (auto& entry : *result)
          std::sort(entry.shards.begin(), entry.shards.end());
        // This process first, then the nodes by their first shard.
        std::sort(result->begin() + 1, result->end(),
                  [](auto& a, auto& b) { return a.shards < b.shards; });
        rp.deliver(std::move(*result));
      });
      auto merge = [result](node_info& x) {
        auto& all = *result;
        auto i = std::find_if(all.begin(), all.end(),
                              [&](auto& y) { return y.address == x.address; });
        if (i == all.end()) {
          all.push_back(std::move(x));
          return;
        }
        i->shards.insert(i->shards.end(), x.shards.begin(), x.shards.end());
        if (static_cast<int>(x.status) > static_cast<int>(i->status)) {
          i->status = x.status;
          i->error = x.error;
        }
        i->last_seen_ms = std::max(i->last_seen_ms, x.last_seen_ms);
        if (i->id.empty())
          i->id = x.id;
      };
      for (auto& r : st.remote)
        self->request(r, caf::infinite, atom::nodes_v)
          .then(
            [j, merge](node_info& x) {
              merge(x);
              j->arrived();
            },
            [j](caf::error&) { j->arrived(); });
      return rp;
    },
    // -- transactions ----------------------------------------------------------------
    // -- queries (level 2): scattered to the shards --------------------------------
    [=](atom::query, const query_request& req) -> caf::result<query_page> {
      return storage_queries::query(self, req);
    },
    [=](atom::count, const std::string& pattern) -> caf::result<uint64_t> {
      return storage_queries::count(self, pattern);
    },
    [=](atom::find_one, const std::string& pattern) -> caf::result<std::vector<query_result>> {
      return storage_queries::find(self, pattern, true);
    },
    [=](atom::find_many, const std::string& pattern)
      -> caf::result<std::vector<query_result>> {
      return storage_queries::find(self, pattern, false);
    },
    [=](atom::aggregate, const std::string& pipeline) -> caf::result<bytes> {
      return storage_queries::aggregate(self, pipeline);
    },
    [=](atom::explain, const std::string& pattern) -> caf::result<query_plan> {
      return storage_queries::explain(self, pattern);
    },
    [=](atom::create_index, const index_spec& spec) -> caf::result<void> {
      return storage_queries::create_index(self, spec);
    },
    [=](atom::drop_index, const std::string& name) -> caf::result<void> {
      return storage_queries::drop_index(self, name);
    },
    [=](atom::indexes) -> caf::result<std::vector<index_info>> {
      return storage_queries::indexes(self);
    },
    [=](atom::index, std::string& name) -> caf::result<index_actor> {
      auto rp = self->make_response_promise();
      self->request(caf::actor_cast<observable_storage_actor>(self), caf::infinite, atom::indexes_v)
        .then(
          [self, rp, name](std::vector<index_info>& all) mutable {
            if (std::none_of(all.begin(), all.end(),
                             [&](const index_info& x) { return x.spec.name == name; })) {
              rp.deliver(make_error(errc::key_not_found, "no index named " + name));
              return;
            }
            auto& known = self->state.index_actors;
            auto i = known.find(name);
            if (i == known.end()) {
              auto idx = spawn_index(self->system(),
                                     caf::actor_cast<indexed_storage_actor>(self), name);
              // It ends with this router (see `begin` on monitors).
              self->attach(
                caf::default_attachable::make_monitor(self->address(), idx.address()));
              i = known.emplace(name, idx).first;
            }
            rp.deliver(i->second);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    // -- events (level 4) ------------------------------------------------------------
    [=](atom::on, event_kind kind, const event_actor& who,
        const subscribe_options& opts) -> caf::result<void> {
      return storage_events::on(self, kind, who, opts);
    },
    [=](atom::off, event_kind kind, const event_actor& who) -> caf::result<void> {
      return storage_events::off(self, kind, who);
    },
    [=](atom::watch, const watch_options& opts,
        const event_actor& who) -> caf::result<watcher_actor> {
      return storage_events::watch(self, opts, who);
    },
    [=](atom::changes, const std::string& from, uint32_t limit,
        const change_filter_spec& filter)
      -> caf::result<std::vector<change_batch>, std::string> {
      return storage_events::changes(self, from, limit, filter);
    },
    [=](atom::begin, const txn_options& opts) -> caf::result<transaction_actor> {
      if (auto problem = opts.problem(); !problem.empty())
        return make_error(errc::invalid_value, std::move(problem));
      auto& st = self->state;
      transaction_context ctx;
      ctx.shards = st.shards;
      ctx.local = st.local;
      ctx.coordinator = st.coordinator;
      ctx.max_value_size = st.max_value_size;
      ctx.timeout = st.timeout;
      ctx.store = self->address();
      ctx.unique = st.unique;
      ctx.registry = st.registry;
      ctx.events = st.events;
      auto& sender = self->current_sender();
      ctx.remote_client = sender && sender->node() != self->node();
      auto txid = (st.incarnation << txn_counter_bits) | ++*st.next_txn;
      auto tx = spawn_transaction(self->system(), txid, opts, std::move(ctx));
      // The transaction ends with this store. It cannot monitor the store
      // itself: it starts later, maybe after the store's last handle went,
      // and CAF 0.17 monitors through a raw pointer (a dying store crashed
      // the process). So the store attaches the monitor now, while it runs.
      self->attach(caf::default_attachable::make_monitor(self->address(), tx.address()));
      return caf::actor_cast<transaction_actor>(tx);
    },
  };
}

observable_storage_actor spawn_routers(caf::actor_system& sys, const router_config& cfg,
                                          uint32_t routers) {
  if (routers == 1)
    return sys.spawn(storage, cfg);
  auto factory = [&sys, &cfg]() -> caf::actor {
    return caf::actor_cast<caf::actor>(sys.spawn(storage, cfg));
  };
  caf::scoped_execution_unit context{&sys};
  auto pool = caf::actor_pool::make(&context, routers, factory,
                                    route_policy(cfg.remote.empty()));
  return caf::actor_cast<observable_storage_actor>(pool);
}

} // namespace strata

#include "actors/transaction.hpp"

#include "backends/shard_slot.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/default_attachable.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "actors/interceptors.hpp"
#include "actors/merge.hpp"
#include "actors/outcome.hpp"
#include "actors/shard_reads.hpp"
#include "actors/timeouts.hpp"
#include "backends/conflicts.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_core.hpp"
#include "strata/routing.hpp"

namespace strata {

namespace {

using txn_ptr = transaction_impl::stateful_pointer<transaction_state>;

/// Takes over the answer to the current request; `settle` gives it.
uint64_t owe(txn_ptr self) {
  return self->state.owed.add(self->make_response_promise());
}

template <class T>
void settle(txn_ptr self, uint64_t id, T&& answer) {
  if (auto rp = self->state.owed.take(id))
    rp->deliver(std::forward<T>(answer));
}

void finish(txn_ptr self, txn_state state, std::string why = {}) {
  auto& st = self->state;
  st.committing = false;
  st.state = state;
  st.ended = std::move(why);
  st.writes.clear();
  st.cache.clear();
  st.savepoints.clear();
  // Replies still in flight index these per shard: empty them, keep them.
  for (auto& r : st.reads)
    r.clear();
  for (auto& r : st.ranges)
    r.clear();
  auto waiting = std::move(st.awaiting_commit);
  st.awaiting_commit.clear();
  for (auto id : waiting)
    settle(self, id, txn_info{txn_name(st.txid), st.state});
}

/// Why the transaction cannot take requests, or none.
caf::error not_active(txn_ptr self) {
  auto& st = self->state;
  if (st.state == txn_state::active && !st.committing
      && std::chrono::steady_clock::now() >= st.deadline)
    finish(self, txn_state::aborted,
           "timed out after " + std::to_string(st.opts.timeout_ms) + " ms");
  auto name = txn_name(st.txid);
  if (st.committing)
    return make_error(errc::transaction_aborted,
                      "transaction " + name + " is committing");
  switch (st.state) {
    case txn_state::active:
      return caf::none;
    case txn_state::committed:
      return make_error(errc::transaction_aborted,
                        "transaction " + name + " is committed; begin a new one");
    case txn_state::unknown:
      return make_error(errc::transaction_aborted,
                        "transaction " + name + " ended; its commit may or may not "
                          "have been applied (" + st.ended + "); begin a new one");
    case txn_state::aborted:
      break;
  }
  return make_error(errc::transaction_aborted,
                    "transaction " + name + " is aborted (" + st.ended
                      + "); begin a new one");
}

caf::error read_only_error(txn_ptr self, const char* what) {
  return make_error(errc::invalid_value,
                    "transaction " + txn_name(self->state.txid)
                      + " is read-only: " + what + " is not allowed");
}

uint32_t shard_for(txn_ptr self, const std::string& key) {
  return routing::shard_of(key, static_cast<uint32_t>(self->state.ctx.shards.size()));
}

/// The timeout of a request to `dest` (none within the process).
template <class Handle>
caf::duration timeout_to(txn_ptr self, const Handle& dest) {
  return strata::timeout_to(self, dest, self->state.ctx.timeout);
}

bool caches(const txn_options& o) {
  return o.level >= isolation::repeatable_read;
}

/// Books a read of `key` on shard `s` at sequence number `seq`. With
/// caching, every read of a key sees the first value (a pipelined read of
/// the same key may have come back first).
void record_read(txn_ptr self, const std::string& key, uint32_t s,
                 maybe_bytes& value, uint64_t seq) {
  auto& st = self->state;
  if (!caches(st.opts) || st.state != txn_state::active)
    return;
  auto [i, fresh] = st.cache.emplace(key, value ? std::optional<bytes>{*value}
                                                : std::optional<bytes>{});
  if (!fresh)
    value = i->second ? maybe_bytes{*i->second} : maybe_bytes{};
  st.reads[s].emplace(key, seq);
}

/// Reads `key` straight from its shard's store if that is in this process
/// and the key is not locked by a committing transaction; nullopt otherwise.
std::optional<caf::expected<maybe_bytes>> read_local(txn_ptr self,
                                                     const std::string& key) {
  auto s = shard_for(self, key);
  auto& local = self->state.ctx.local;
  auto store = s < local.size() && local[s] ? local[s]->get() : nullptr;
  if (!store) // remote, or restarting: ask the shard
    return std::nullopt;
  auto r = shard_reads::read(*store, key);
  if (!r)
    return caf::expected<maybe_bytes>{std::move(r.error())};
  if (r->blocked)
    return std::nullopt;
  record_read(self, key, s, r->value, r->seq);
  return caf::expected<maybe_bytes>{std::move(r->value)};
}

/// Books the end of a read; a commit that waited for it starts now.
void read_done(txn_ptr self) {
  auto& st = self->state;
  if (--st.reads_in_flight == 0 && st.on_reads_done) {
    auto f = std::move(st.on_reads_done);
    st.on_reads_done = nullptr;
    f();
  }
}

/// Reads `key` through its shard actor (which waits for a lock to go),
/// records the read, and hands the value to `then` (or the error to `fail`).
template <class Then, class Fail>
void read_key(txn_ptr self, const std::string& key, Then then, Fail fail) {
  auto s = shard_for(self, key);
  auto& dest = self->state.ctx.shards[s];
  ++self->state.reads_in_flight;
  self->request(dest, timeout_to(self, dest), atom::read_v, key)
    .then(
      [self, key, s, then](maybe_bytes& value, uint64_t seq) mutable {
        record_read(self, key, s, value, seq);
        then(std::move(value));
        read_done(self);
      },
      [self, fail](caf::error& err) mutable {
        fail(std::move(err));
        read_done(self);
      });
}

/// The value of `key` as this transaction sees it without asking a shard,
/// if it can.
std::optional<std::optional<bytes>> known(txn_ptr self, const std::string& key) {
  auto& st = self->state;
  if (auto i = st.writes.find(key); i != st.writes.end())
    return i->second;
  if (caches(st.opts))
    if (auto i = st.cache.find(key); i != st.cache.end())
      return i->second;
  return std::nullopt;
}

maybe_bytes to_maybe(const std::optional<bytes>& x) {
  return x ? maybe_bytes{*x} : maybe_bytes{};
}

/// Answers `f(value of key)` as the transaction sees it: from its own writes
/// or cached reads, else from the shard (directly if it is in this process,
/// else by message). The value is `f`'s now, or later through a promise.
template <class R, class F>
caf::result<R> look_up(txn_ptr self, const std::string& key, F f) {
  if (auto v = known(self, key))
    return f(to_maybe(*v));
  if (auto v = read_local(self, key)) {
    if (!*v)
      return std::move(v->error());
    return f(std::move(**v));
  }
  auto id = owe(self);
  read_key(
    self, key, [self, id, f](maybe_bytes v) { settle(self, id, f(std::move(v))); },
    [self, id](caf::error err) { settle(self, id, std::move(err)); });
  return caf::delegated<R>{};
}

bool exists(const maybe_bytes& v) {
  return static_cast<bool>(v);
}


/// Each shard's part of the commit: its writes, and the reads the isolation
/// level validates.
std::vector<shard_part> commit_parts(txn_ptr self) {
  auto& st = self->state;
  auto n = st.ctx.shards.size();
  std::vector<txn_part> parts(n);
  for (auto& [key, value] : st.writes) {
    auto s = shard_for(self, key);
    parts[s].writes.push_back(value ? operation::set(key, *value)
                                    : operation::del(key));
  }
  for (size_t s = 0; s < n; ++s) {
    for (auto& [key, seq] : st.reads[s]) {
      // SERIALIZABLE validates every read; REPEATABLE_READ the reads of keys
      // it writes (no lost updates); weaker levels none.
      if (st.opts.level == isolation::serializable
          || (st.opts.level == isolation::repeatable_read && st.writes.count(key)))
        parts[s].reads.push_back(read_mark{key, seq});
    }
    if (st.opts.level == isolation::serializable)
      parts[s].ranges = st.ranges[s];
  }
  std::vector<shard_part> result;
  for (uint32_t s = 0; s < n; ++s)
    if (!parts[s].empty())
      result.push_back(shard_part{s, std::move(parts[s])});
  return result;
}

} // namespace

namespace {

/// Sends the commit: to the one shard involved, or to the coordinator. Should
/// the answer not come (a connection lost, a shard restarting), the one
/// that decides is asked whether it committed, up to one request timeout
/// later: the client hears TRANSACTION_ABORTED only when it certainly did
/// not, and CONNECTION_LOST when that could not be learned.
void send_commit(txn_ptr self, uint64_t id, std::vector<shard_part> parts);

void plan_commit(txn_ptr self, uint64_t id);

/// Asks the `before:set` and `before:delete` subscribers about the writes,
/// then commits them unless one vetoes.
void commit(txn_ptr self, uint64_t id) {
  auto& st = self->state;
  auto subs = st.ctx.events ? st.ctx.events->current() : nullptr;
  if (st.writes.empty() || !subs
      || !asks_about(*subs, {event_kind::before_set, event_kind::before_delete})) {
    plan_commit(self, id);
    return;
  }
  std::vector<storage_event> events;
  for (auto& [key, value] : st.writes)
    events.push_back(value ? storage_event{event_kind::before_set, key, *value, false}
                           : storage_event{event_kind::before_delete, key, {}, false});
  ask_interceptors(self, *subs, events, [self, id](caf::error veto) {
    if (!veto) {
      plan_commit(self, id);
      return;
    }
    finish(self, txn_state::aborted, "commit vetoed: " + render(veto));
    settle(self, id, std::move(veto));
  });
}

/// Commits with the claims of unique indexes, if the store has any.
void plan_commit(txn_ptr self, uint64_t id) {
  auto& st = self->state;
  auto& reg = st.ctx.registry;
  if (st.writes.empty() || !reg || reg->known == unique_registry::none) {
    send_commit(self, id, commit_parts(self));
    return;
  }
  // The claims of unique indexes commit with the writes.
  std::vector<operation> ops;
  for (auto& [key, value] : st.writes)
    ops.push_back(value ? operation::set(key, *value) : operation::del(key));
  self->request(st.ctx.unique, caf::infinite, atom::plan_v, std::move(ops))
    .then(
      [self, id](std::vector<shard_part>& claims) {
        auto parts = commit_parts(self);
        add_parts(parts, std::move(claims));
        send_commit(self, id, std::move(parts));
      },
      [self, id](caf::error& err) {
        finish(self, txn_state::aborted, "commit failed: " + render(err));
        settle(self, id, std::move(err));
      });
}

void send_commit(txn_ptr self, uint64_t id, std::vector<shard_part> parts) {
  auto& st = self->state;
  if (parts.empty()) {
    finish(self, txn_state::committed);
    settle(self, id, caf::unit);
    return;
  }
  auto ok = [self, id](uint64_t) {
    finish(self, txn_state::committed);
    settle(self, id, caf::unit);
  };
  auto deadline = std::chrono::steady_clock::now() + st.ctx.timeout;
  auto judged = [self, id](caf::error verdict) {
    if (!verdict) {
      finish(self, txn_state::committed);
      settle(self, id, caf::unit);
      return;
    }
    auto state = outcome_unknown(verdict) ? txn_state::unknown : txn_state::aborted;
    finish(self, state, "commit failed: " + render(verdict));
    settle(self, id, std::move(verdict));
  };
  auto fail = [self, judged, deadline](auto judge) {
    return [self, judged, deadline, judge](caf::error& err) {
      if (!outcome_unknown(err)) {
        judged(std::move(err));
        return;
      }
      learn_outcome(self, judge, self->state.txid, std::move(err), deadline, judged);
    };
  };
  if (parts.size() == 1) {
    auto& dest = st.ctx.shards[parts[0].shard];
    self
      ->request(dest, timeout_to(self, dest), atom::commit_v, st.txid,
                std::move(parts[0].part))
      .then(ok, fail(dest));
  } else {
    auto& dest = st.ctx.coordinator;
    self->request(dest, timeout_to(self, dest), atom::commit_v, st.txid, std::move(parts))
      .then(ok, fail(dest));
  }
}

} // namespace

transaction_state::~transaction_state() {
  // CAF 0.17 keeps a monitor on the observed actor until that one ends: a
  // store would collect one for every transaction it ever began.
  if (auto store = caf::actor_cast<caf::strong_actor_ptr>(ctx.store))
    store->get()->detach(
      caf::default_attachable::observe_token{self_addr, caf::default_attachable::monitor});
  owed.fail_pending(make_error(errc::connection_lost,
                               "transaction " + txn_name(txid)
                                 + " ended with its store while this request was in "
                                   "flight; a commit may or may not have been applied"));
}

transaction_impl::behavior_type
transaction(transaction_impl::stateful_pointer<transaction_state> self,
            uint64_t txid, txn_options opts, transaction_context ctx) {
  auto& init = self->state;
  init.txid = txid;
  init.opts = opts;
  init.deadline = std::chrono::steady_clock::now()
                  + std::chrono::milliseconds{opts.timeout_ms};
  init.reads.resize(ctx.shards.size());
  init.ranges.resize(ctx.shards.size());
  init.ctx = std::move(ctx);
  init.self_addr = self->address();
  // The store attached this actor's monitor when it spawned it (see
  // `storage`): by the time this runs, the store may be gone.
  self->set_down_handler([self](caf::down_msg& msg) {
    if (msg.source == self->state.ctx.store)
      self->quit(msg.reason);
  });
  if (init.ctx.remote_client)
    self->delayed_send(self, std::chrono::milliseconds{opts.timeout_ms}, atom::timeout_v);
  return {
    [=](atom::get, std::string& key) -> caf::result<maybe_bytes> {
      if (auto err = not_active(self))
        return err;
      if (auto err = check_key(key))
        return err;
      return look_up<maybe_bytes>(self, key, [](maybe_bytes v) { return v; });
    },
    [=](atom::has, std::string& key) -> caf::result<bool> {
      if (auto err = not_active(self))
        return err;
      if (auto err = check_key(key))
        return err;
      return look_up<bool>(self, key, exists);
    },
    [=](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      if (auto err = not_active(self))
        return err;
      if (self->state.opts.read_only)
        return read_only_error(self, "set");
      if (auto err = check_key(key))
        return err;
      if (auto err = check_value(value, self->state.ctx.max_value_size))
        return err;
      self->state.writes[std::move(key)] = std::move(value);
      return caf::unit;
    },
    [=](atom::del, std::string& key) -> caf::result<bool> {
      if (auto err = not_active(self))
        return err;
      if (self->state.opts.read_only)
        return read_only_error(self, "del");
      if (auto err = check_key(key))
        return err;
      auto existed = look_up<bool>(self, key, exists);
      // Buffered at once (after the lookup), so that later requests see the
      // delete in order.
      if (existed.flag != caf::rt_error)
        self->state.writes[key] = std::nullopt;
      return existed;
    },
    [=](atom::scan, scan_request& req) -> caf::result<scan_page> {
      if (auto err = not_active(self))
        return err;
      auto n = self->state.ctx.shards.size();
      auto id = owe(self);
      struct gather {
        std::vector<scan_page> pages;
        std::vector<uint64_t> seqs;
        size_t waiting;
        caf::error failed;
      };
      auto g = std::make_shared<gather>(
        gather{std::vector<scan_page>(n), std::vector<uint64_t>(n), n, {}});
      auto done = [self, g, id, req]() mutable {
        if (g->failed) {
          settle(self, id, g->failed);
          return;
        }
        auto& st = self->state;
        auto page = merge_pages(g->pages, req.limit);
        // The key range this page covers: from the scan's start up to its
        // last key if more follow, else to the end of the prefix.
        std::string lo = std::max(req.start, req.prefix);
        if (!req.after.empty() && req.after >= lo)
          lo = req.after + '\0';
        std::string hi = page.more && !page.entries.empty()
                           ? page.entries.back().key + '\0'
                           : prefix_end(req.prefix);
        if (st.opts.level == isolation::serializable && st.state == txn_state::active)
          for (size_t s = 0; s < g->seqs.size(); ++s)
            st.ranges[s].push_back(range_mark{lo, hi, g->seqs[s]});
        // The transaction's own writes in that range replace what the shards
        // hold.
        std::map<std::string, bytes> merged;
        for (auto& e : page.entries)
          merged.emplace(std::move(e.key), std::move(e.value));
        for (auto i = st.writes.lower_bound(lo);
             i != st.writes.end() && in_range(i->first, lo, hi); ++i) {
          if (i->first.compare(0, req.prefix.size(), req.prefix) != 0)
            continue;
          if (i->second)
            merged[i->first] = req.values ? *i->second : bytes{};
          else
            merged.erase(i->first);
        }
        scan_page result;
        result.more = page.more;
        auto limit = req.limit == 0 ? limits::default_page_entries
                                    : std::min(req.limit, limits::max_page_entries);
        for (auto& [k, v] : merged) {
          if (result.entries.size() == limit) {
            result.more = true;
            break;
          }
          result.entries.push_back(entry{k, std::move(v)});
        }
        settle(self, id, std::move(result));
      };
      auto finished = [self, done]() mutable {
        done();
        read_done(self);
      };
      ++self->state.reads_in_flight;
      for (size_t s = 0; s < n; ++s)
        self
          ->request(self->state.ctx.shards[s],
                    timeout_to(self, self->state.ctx.shards[s]), atom::read_v, req)
          .then(
            [g, s, finished](scan_page& p, uint64_t seq) mutable {
              g->pages[s] = std::move(p);
              g->seqs[s] = seq;
              if (--g->waiting == 0)
                finished();
            },
            [g, finished](caf::error& err) mutable {
              if (!g->failed)
                g->failed = std::move(err);
              if (--g->waiting == 0)
                finished();
            });
      return caf::delegated<scan_page>{};
    },
    [=](atom::query, query_request& req) -> caf::result<query_page> {
      if (auto err = not_active(self))
        return err;
      // The transaction's view, read with its own scans (so its writes are
      // seen and, under SERIALIZABLE, every range read is validated at
      // commit: a phantom cannot commit), fed page by page to a collector
      // that keeps the page's results.
      struct run {
        query_pattern q;
        query_cursor cursor;
        page_request page;
        std::unique_ptr<query_collector> collector;
        scan_request next;
      };
      auto r = std::make_shared<run>();
      try {
        r->q = parse_query(req.pattern);
        if (r->q.text() || r->q.near())
          throw query_error{"where: text and near are not available in a transaction (their "
                            "order needs the shards' indexes); search the store"};
        r->cursor = decode_cursor(req.continuation);
      } catch (const query_error& e) {
        return make_error(errc::query_error, e.what());
      }
      r->page = plan_page(r->q, r->cursor, req.limit);
      if (r->page.exhausted)
        return query_page{};
      auto in_key_order = r->q.order_by.empty();
      r->collector = std::make_unique<query_collector>(
        r->q, r->cursor.position, r->page.skip + r->page.take, in_key_order);
      if (in_key_order && r->cursor.position)
        r->next.after = r->cursor.position->key;
      r->next.limit = limits::max_page_entries;
      auto id = owe(self);
      auto me = caf::actor_cast<transaction_impl>(self);
      auto step = std::make_shared<std::function<void()>>();
      *step = [self, r, id, me, step] {
        self->request(me, caf::infinite, atom::scan_v, r->next)
          .then(
            [self, r, id, step](scan_page& p) {
              auto go = true;
              for (auto& e : p.entries)
                if (!(go = r->collector->feed(e.key, {reinterpret_cast<const char*>(
                                                         e.value.data()),
                                                       e.value.size()})))
                  break;
              if (go && p.more && !p.entries.empty()) {
                r->next.after = p.entries.back().key;
                (*step)();
                return;
              }
              auto found = r->collector->finish();
              settle(self, id,
                     make_page(r->q, r->cursor, r->page, found.hits, found.more));
              *step = nullptr; // ends the cycle step -> lambda -> step
            },
            [self, id, step](caf::error& err) {
              settle(self, id, std::move(err));
              *step = nullptr;
            });
      };
      (*step)();
      return caf::delegated<query_page>{};
    },
    [=](atom::commit) -> caf::result<void> {
      if (auto err = not_active(self))
        return err;
      auto& st = self->state;
      st.committing = true;
      auto id = owe(self);
      // Reads still in flight (pipelined before the commit) must be booked
      // first, or SERIALIZABLE would not validate them.
      if (st.reads_in_flight > 0)
        st.on_reads_done = [self, id] { commit(self, id); };
      else
        commit(self, id);
      return caf::delegated<void>{};
    },
    [=](atom::rollback) -> caf::result<void> {
      auto& st = self->state;
      if (st.state == txn_state::aborted)
        return caf::unit;
      if (auto err = not_active(self))
        return err;
      finish(self, txn_state::aborted, "rolled back");
      return caf::unit;
    },
    [=](atom::savepoint, std::string& name) -> caf::result<void> {
      if (auto err = not_active(self))
        return err;
      if (name.empty())
        return make_error(errc::invalid_value, "a savepoint needs a name");
      auto& sp = self->state.savepoints;
      sp.erase(std::remove_if(sp.begin(), sp.end(),
                              [&](auto& x) { return x.first == name; }),
               sp.end());
      sp.emplace_back(std::move(name), self->state.writes);
      return caf::unit;
    },
    [=](atom::rollback_to, const std::string& name) -> caf::result<void> {
      if (auto err = not_active(self))
        return err;
      auto& sp = self->state.savepoints;
      auto i = std::find_if(sp.begin(), sp.end(),
                            [&](auto& x) { return x.first == name; });
      if (i == sp.end())
        return make_error(errc::key_not_found,
                          "transaction " + txn_name(self->state.txid)
                            + " has no savepoint '" + name + "'");
      self->state.writes = i->second;
      sp.erase(i + 1, sp.end());
      return caf::unit;
    },
    [=](atom::info) -> txn_info {
      not_active(self); // applies the timeout
      return txn_info{txn_name(self->state.txid), self->state.state};
    },
    [=](atom::status) -> caf::result<txn_info> {
      auto& st = self->state;
      if (!st.committing) {
        not_active(self);
        return txn_info{txn_name(st.txid), st.state};
      }
      auto id = owe(self);
      st.awaiting_commit.push_back(id);
      return caf::delegated<txn_info>{};
    },
    // A remote client's transaction, at its deadline and a timeout later:
    // the first time it times out (unless it is committing), the second time
    // it ends. Requests still owed an answer keep it until they have one.
    [=](atom::timeout) {
      auto& st = self->state;
      auto again = std::chrono::milliseconds{st.opts.timeout_ms};
      if (st.committing || !st.owed.pending.empty()) {
        self->delayed_send(self, again, atom::timeout_v);
        return;
      }
      if (!st.lingering) {
        not_active(self); // applies the timeout
        st.lingering = true;
        self->delayed_send(self, again, atom::timeout_v);
        return;
      }
      self->quit();
    },
  };
}

transaction_impl spawn_transaction(caf::actor_system& sys, uint64_t txid, txn_options opts,
                                   transaction_context ctx) {
  return sys.spawn(transaction, txid, std::move(opts), std::move(ctx));
}

} // namespace strata

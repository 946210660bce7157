#include "actors/storage_events.hpp"

#include <algorithm>
#include <limits>

#include <caf/actor_system.hpp>
#include <caf/default_attachable.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/interceptors.hpp"
#include "actors/join.hpp"
#include "actors/timeouts.hpp"
#include "actors/watcher.hpp"
#include "backends/log.hpp"
#include "strata/error.hpp"

namespace strata::storage_events {

namespace {

/// Moves the decided requests at the front on, in order.
void drain(storage_ptr self) {
  auto& asked = self->state.asked;
  while (!asked.empty() && asked.front()->decided) {
    auto next = std::move(asked.front());
    asked.pop_front();
    next->go(std::move(next->veto));
  }
}

} // namespace

bool observed(storage_ptr self, std::initializer_list<event_kind> kinds) {
  auto subs = self->state.events->current();
  if (!subs)
    return false;
  if (self->current_sender() == self->ctrl())
    return false; // the re-send of an observed request
  return std::any_of(subs->begin(), subs->end(), [&](auto& s) {
    return s.kind == event_kind::error
           || std::find(kinds.begin(), kinds.end(), s.kind) != kinds.end();
  });
}

void ask(storage_ptr self, std::vector<storage_event> events,
         std::function<void(caf::error)> go) {
  auto entry = std::make_shared<storage_state::asking>();
  entry->go = std::move(go);
  self->state.asked.push_back(entry);
  auto subs = self->state.events->current();
  if (!subs) {
    entry->decided = true;
    drain(self);
    return;
  }
  ask_interceptors(self, *subs, events, [self, entry](caf::error veto) {
    entry->veto = std::move(veto);
    entry->decided = true;
    drain(self);
  });
}

void tell_after(storage_ptr self, const std::vector<storage_event>& events) {
  auto subs = self->state.events->current();
  if (!subs || events.empty())
    return;
  for (auto& s : *subs) {
    if (s.kind != event_kind::after_get && s.kind != event_kind::after_set
        && s.kind != event_kind::after_delete)
      continue;
    std::vector<storage_event> mine;
    for (auto& e : events)
      if (e.kind == s.kind)
        mine.push_back(e);
    if (!mine.empty())
      self->send(s.who, atom::after_v, std::move(mine));
  }
}

void tell_error(storage_ptr self, const caf::error& err, const char* op,
                const std::string& key) {
  auto subs = self->state.events->current();
  if (!subs)
    return;
  for (auto& s : *subs)
    if (s.kind == event_kind::error)
      self->send(s.who, atom::failed_v, error_event{err, op, key, {}});
}

std::vector<storage_event> events_of(const std::vector<operation>& ops, bool before) {
  std::vector<storage_event> result;
  result.reserve(ops.size());
  for (auto& op : ops) {
    storage_event e;
    switch (op.kind) {
      case op_kind::set:
        e.kind = before ? event_kind::before_set : event_kind::after_set;
        e.key = op.key;
        e.value = op.value;
        break;
      case op_kind::del:
        e.kind = before ? event_kind::before_delete : event_kind::after_delete;
        e.key = op.key;
        break;
      case op_kind::clear: // every key: an empty one
        e.kind = before ? event_kind::before_delete : event_kind::after_delete;
        break;
    }
    result.push_back(std::move(e));
  }
  return result;
}

// -- subscriptions -------------------------------------------------------------

namespace {

/// Spawns a watcher for `who` after `positions`, ending with this router.
watcher_actor start_watcher(storage_ptr self, std::vector<uint64_t> positions,
                            const watch_options& opts, const event_actor& who) {
  watcher_config wc;
  wc.shards = self->state.shards;
  wc.positions = std::move(positions);
  wc.opts = opts;
  wc.subscriber = who;
  wc.timeout = self->state.timeout;
  auto w = self->system().spawn(watcher, std::move(wc));
  // It ends with the store (see `begin` on monitors).
  self->attach(caf::default_attachable::make_monitor(self->address(), w.address()));
  return w;
}

/// Asks every shard for a page after `positions` (all of them UINT64_MAX:
/// where each log ends now) and calls `done` with the pages.
void read_all(storage_ptr self, std::vector<uint64_t> positions, uint32_t limit,
              const change_filter_spec& filter, caf::response_promise rp,
              std::function<void(std::vector<change_page>&)> done) {
  auto n = self->state.shards.size();
  auto pages = std::make_shared<std::vector<change_page>>(n);
  auto j = std::make_shared<join>(n, std::move(rp), [pages, done] { done(*pages); });
  for (uint32_t i = 0; i < n; ++i) {
    change_request req;
    req.after = positions[i];
    req.limit = limit;
    req.filter = filter;
    auto& s = self->state.shards[i];
    self->request(s, timeout_to(self, s, self->state.timeout), atom::changes_v, std::move(req))
      .then(
        [j, pages, i](change_page& p) {
          (*pages)[i] = std::move(p);
          j->arrived();
        },
        [j, i](caf::error& err) {
          if (!j->first_error)
            j->first_error = join::annotate(std::move(err), i);
          j->arrived();
        });
  }
}

constexpr uint64_t now = std::numeric_limits<uint64_t>::max();

/// The positions of a token; INVALID_VALUE for a bad one.
caf::expected<std::vector<uint64_t>> positions_of(storage_ptr self, const std::string& from) {
  auto n = self->state.shards.size();
  auto token = resume_token::parse(from);
  if (!token)
    return make_error(errc::invalid_value, "'" + from + "' is not a resume token (t1:N,N,...)");
  if (token->positions.size() != n)
    return make_error(errc::invalid_value,
                      "resume token '" + from + "' has " + std::to_string(token->positions.size())
                        + " positions; this store has " + std::to_string(n) + " shards");
  return std::move(token->positions);
}

/// Calls `then` with the positions `from` names: a token's, or for "" where
/// each shard's log ends now, for "oldest" where it begins.
void resolve(storage_ptr self, const std::string& from, caf::response_promise rp,
             std::function<void(std::vector<uint64_t>)> then) {
  if (!from.empty() && from != "oldest") {
    auto positions = positions_of(self, from);
    if (!positions) {
      rp.deliver(std::move(positions.error()));
      return;
    }
    then(std::move(*positions));
    return;
  }
  auto oldest = from == "oldest";
  read_all(self, std::vector<uint64_t>(self->state.shards.size(), now), 1, {}, rp,
           [oldest, then](std::vector<change_page>& pages) {
             std::vector<uint64_t> positions;
             for (auto& p : pages)
               positions.push_back(oldest ? p.floor : p.last);
             then(std::move(positions));
           });
}

} // namespace

caf::result<void> on(storage_ptr self, event_kind kind, const event_actor& who,
                     const subscribe_options& opts) {
  if (auto problem = opts.problem(); !problem.empty())
    return make_error(errc::invalid_value, std::move(problem));
  if (static_cast<uint8_t>(kind) > static_cast<uint8_t>(event_kind::error))
    return make_error(errc::invalid_value, "unknown event kind "
                                             + std::to_string(static_cast<int>(kind)));
  if (!who)
    return make_error(errc::invalid_value, "no subscriber");
  self->monitor(who);
  if (kind != event_kind::change) {
    self->state.events->add({kind, who, opts, {}});
    return caf::unit;
  }
  // `change`: a watch of every key from now on.
  watch_options wo;
  auto rp = self->make_response_promise();
  resolve(self, {}, rp,
           [self, rp, who, opts, wo](std::vector<uint64_t> positions) mutable {
             auto w = start_watcher(self, std::move(positions), wo, who);
             if (auto old = self->state.events->add({event_kind::change, who, opts, w}))
               caf::anon_send(old->watcher, atom::unwatch_v);
             rp.deliver(caf::unit);
           });
  return rp;
}

caf::result<void> off(storage_ptr self, event_kind kind, const event_actor& who) {
  for (auto& s : self->state.events->remove(who.address(), kind))
    if (s.watcher)
      caf::anon_send(s.watcher, atom::unwatch_v);
  return caf::unit;
}

void forget(storage_ptr self, const caf::actor_addr& who) {
  // Their watchers end by themselves: they monitor the subscriber too.
  self->state.events->remove(who);
}

caf::result<watcher_actor> watch(storage_ptr self, const watch_options& opts,
                                 const event_actor& who) {
  if (auto problem = opts.problem(); !problem.empty())
    return make_error(errc::invalid_value, std::move(problem));
  if (!who)
    return make_error(errc::invalid_value, "no subscriber");
  // One commit from each shard checks the filter, the token's age and that
  // every shard keeps a log before the watch starts.
  auto rp = self->make_response_promise<watcher_actor>();
  resolve(self, opts.from, rp, [self, rp, opts, who](std::vector<uint64_t> from) mutable {
    read_all(self, from, 1, opts.filter, rp,
             [self, rp, from, opts, who](std::vector<change_page>&) mutable {
               rp.deliver(start_watcher(self, from, opts, who));
             });
  });
  return rp;
}

caf::result<std::vector<change_batch>, std::string>
changes(storage_ptr self, const std::string& from, uint32_t limit,
        const change_filter_spec& filter) {
  auto rp = self->make_response_promise<std::vector<change_batch>, std::string>();
  resolve(self, from, rp, [self, rp, limit, filter](std::vector<uint64_t> positions) mutable {
    read_all(self, std::move(positions), limit, filter, rp,
             [rp](std::vector<change_page>& pages) mutable {
               resume_token next;
               for (auto& p : pages)
                 next.positions.push_back(p.last);
               // Across shards by commit time; per shard in log order (a
               // clock that steps back never reorders one shard).
               std::vector<change_batch> all;
               std::vector<size_t> head(pages.size(), 0);
               while (true) {
                 size_t pick = pages.size();
                 for (size_t i = 0; i < pages.size(); ++i)
                   if (head[i] < pages[i].batches.size()
                       && (pick == pages.size()
                           || pages[i].batches[head[i]].time
                                < pages[pick].batches[head[pick]].time))
                     pick = i;
                 if (pick == pages.size())
                   break;
                 all.push_back(std::move(pages[pick].batches[head[pick]++]));
               }
               rp.deliver(std::move(all), next.to_string());
             });
  });
  return rp;
}

} // namespace strata::storage_events

#include "actors/shard_writer.hpp"

#include <algorithm>
#include <iterator>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "backends/change_log.hpp"
#include "backends/fault.hpp"
#include "backends/indexes.hpp"
#include "backends/log.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

using writer_ptr = shard_writer_actor::stateful_pointer<shard_writer_state>;
using type = write_request::type;

void schedule_flush(writer_ptr self) {
  if (!self->state.flush_scheduled) {
    self->state.flush_scheduled = true;
    self->send(self, atom::flush_v);
  }
}

/// Documents or entries an index build or drop handles per step.
constexpr size_t index_build_step = 2000;

void schedule_build(writer_ptr self) {
  if (!self->state.build_scheduled) {
    self->state.build_scheduled = true;
    self->send(self, atom::build_v);
  }
}

/// Answers the watchers waiting for a commit that the log now has, and
/// those whose wait expired.
void wake_awaits(writer_ptr self) {
  auto& awaits = self->state.awaits;
  auto* log = self->state.store->changes();
  if (awaits.empty() || log == nullptr)
    return;
  auto last = log->last();
  auto now = std::chrono::steady_clock::now();
  auto done = [&](parked_await& a) {
    if (a.after >= last && a.until > now)
      return false;
    a.promise.deliver(last);
    return true;
  };
  awaits.erase(std::remove_if(awaits.begin(), awaits.end(), done), awaits.end());
}

void schedule_tick(writer_ptr self) {
  if (!self->state.tick_scheduled && !self->state.awaits.empty()) {
    self->state.tick_scheduled = true;
    self->delayed_send(self, std::chrono::milliseconds{250}, atom::tick_v);
  }
}

caf::response_promise enqueue(writer_ptr self, pending_write w) {
  w.promise = self->make_response_promise();
  auto rp = w.promise;
  self->state.pending.push_back(std::move(w));
  schedule_flush(self);
  return rp;
}

caf::response_promise enqueue(writer_ptr self, pending_write::reply shape,
                              std::vector<operation> ops) {
  pending_write w;
  w.shape = shape;
  w.ops = std::move(ops);
  return enqueue(self, std::move(w));
}

/// Queues one prepare or outcome per item of a batch, answered together.
template <class Item, class Fill>
caf::response_promise enqueue_batch(writer_ptr self, type kind,
                                    std::vector<Item>& items, Fill fill) {
  auto b = std::make_shared<batch_answer>();
  b->promise = self->make_response_promise();
  b->left = items.size();
  if (kind == type::prepare)
    b->votes.resize(items.size());
  else
    b->counts.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    pending_write w;
    w.shape = pending_write::reply::item;
    w.kind = kind;
    w.batch = b;
    w.index = i;
    fill(w, items[i]);
    self->state.pending.push_back(std::move(w));
  }
  schedule_flush(self);
  return b->promise;
}

void answer_item(pending_write& w, const write_outcome& out) {
  auto& b = *w.batch;
  if (w.kind == type::prepare) {
    if (out.code != errc::none)
      b.votes[w.index] = make_error(out.code, out.message);
  } else if (out.code != errc::none) {
    if (!b.failed)
      b.failed = make_error(out.code, out.message);
  } else {
    b.counts[w.index] = out.deleted;
  }
  if (--b.left > 0)
    return;
  if (b.failed)
    b.promise.deliver(std::move(b.failed));
  else if (w.kind == type::prepare)
    b.promise.deliver(std::move(b.votes));
  else
    b.promise.deliver(std::move(b.counts));
}

void answer(pending_write& w, const write_outcome& out) {
  using reply = pending_write::reply;
  if (w.lose_answer) {
    w.promise.deliver(make_error(errc::connection_lost,
                                 "the answer was lost (fault injected)"));
    return;
  }
  if (w.shape == reply::item) {
    answer_item(w, out);
    return;
  }
  if (w.shape == reply::batch) {
    batch_result result;
    result.success = out.code == errc::none;
    if (result.success)
      result.operations = w.ops.size();
    else
      result.errors.push_back(make_error(out.code, out.message));
    w.promise.deliver(std::move(result));
    return;
  }
  if (out.code != errc::none) {
    w.promise.deliver(make_error(out.code, out.message));
    return;
  }
  if (w.shape == reply::status) {
    if (out.status == commit_status::forgotten)
      w.promise.deliver(make_error(errc::key_not_found,
                                   "this shard no longer remembers whether transaction "
                                     + txn_name(w.txid) + " committed"));
    else
      w.promise.deliver(out.status == commit_status::committed);
    return;
  }
  switch (w.shape) {
    case reply::unit:
      w.promise.deliver(caf::unit);
      break;
    case reply::existed:
      w.promise.deliver(out.deleted > 0);
      break;
    case reply::count:
      w.promise.deliver(out.deleted);
      break;
    case reply::batch:
    case reply::item:
    case reply::status:
      break; // handled above
  }
}

/// Answers a parked read if its key is free now; false if it must wait on.
bool try_read(writer_ptr self, parked_read& r) {
  auto& store = *self->state.store;
  try {
    if (r.range) {
      auto x = store.read_range(*r.range);
      if (x.blocked)
        return false;
      r.promise.deliver(std::move(x.page), x.seq);
    } else {
      auto x = store.read(r.key);
      if (x.blocked)
        return false;
      r.promise.deliver(to_wire(std::move(x.value)), x.seq);
    }
  } catch (const storage_error& e) {
    r.promise.deliver(make_error(e.code(), e.what()));
  }
  return true;
}

caf::response_promise park(writer_ptr self, parked_read r) {
  r.promise = self->make_response_promise();
  auto rp = r.promise;
  if (!try_read(self, r))
    self->state.parked.push_back(std::move(r));
  return rp;
}

/// After outcomes released locks: answers the parked reads whose keys are
/// free now and returns the blocked writes, in arrival order, to be queued
/// again (those still locked come back blocked).
std::vector<pending_write> release_waiting(writer_ptr self) {
  auto& st = self->state;
  auto parked = std::move(st.parked);
  st.parked.clear();
  for (auto& r : parked)
    if (!try_read(self, r))
      st.parked.push_back(std::move(r));
  auto blocked = std::move(st.blocked);
  st.blocked.clear();
  return blocked;
}

/// Commits writes [first, last) as one group (blocking for its sync; this
/// actor has its own thread) and answers them; writes that must wait for a
/// lock to go are kept for later. Test builds can crash at `point`: after
/// the group is written, before any answer leaves.
template <class Iterator>
void commit(writer_ptr self, Iterator first, Iterator last,
            [[maybe_unused]] const char* point = nullptr) {
  auto& st = self->state;
  std::vector<write_request> requests;
  requests.reserve(static_cast<size_t>(last - first));
  for (auto i = first; i != last; ++i)
    requests.push_back(write_request{i->kind, &i->ops, &i->part, i->txid, i->commit});
  auto outcomes = st.store->write(requests);
  if (point != nullptr)
    STRATA_FAULT_POINT(point);
  for (size_t k = 0; first != last; ++first, ++k) {
    if (outcomes[k].blocked)
      st.blocked.push_back(std::move(*first));
    else
      answer(*first, outcomes[k]);
  }
}

} // namespace

shard_writer_actor::behavior_type
shard_writer(shard_writer_actor::stateful_pointer<shard_writer_state> self,
             std::shared_ptr<shard_core> store) {
  using reply = pending_write::reply;
  self->state.store = std::move(store);
  // Builds or drops that a restart interrupted go on.
  if (auto* ix = self->state.store->indexes(); ix && ix->pending())
    schedule_build(self);
  return {
    [=](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      // Test builds only: lets a test make the shard fail like a bug would.
      STRATA_THROW_POINT("shard.set");
      return enqueue(self, reply::unit,
                     {operation::set(std::move(key), std::move(value))});
    },
    [=](atom::del, std::string& key) -> caf::result<bool> {
      return enqueue(self, reply::existed, {operation::del(std::move(key))});
    },
    [=](atom::clear) -> caf::result<void> {
      return enqueue(self, reply::unit, {operation::clear()});
    },
    [=](atom::set_many, std::vector<entry>& entries) -> caf::result<void> {
      std::vector<operation> ops;
      ops.reserve(entries.size());
      for (auto& e : entries)
        ops.push_back(operation::set(std::move(e.key), std::move(e.value)));
      return enqueue(self, reply::unit, std::move(ops));
    },
    [=](atom::del_many, std::vector<std::string>& keys) -> caf::result<uint64_t> {
      std::vector<operation> ops;
      ops.reserve(keys.size());
      for (auto& k : keys)
        ops.push_back(operation::del(std::move(k)));
      return enqueue(self, reply::count, std::move(ops));
    },
    [=](atom::batch, std::vector<operation>& ops) -> caf::result<batch_result> {
      return enqueue(self, reply::batch, std::move(ops));
    },
    [=](atom::commit, uint64_t txid, txn_part& part) -> caf::result<uint64_t> {
      pending_write w;
      w.shape = reply::count;
      w.kind = type::commit;
      w.txid = txid;
      w.part = std::move(part);
      // Test builds: the commit is applied, but its answer is lost on the
      // way (as when a shard node's connection drops at that moment).
      w.lose_answer = STRATA_FAIL_POINT("shard.lose_commit_answer");
      return enqueue(self, std::move(w));
    },
    [=](atom::status, uint64_t txid) -> caf::result<bool> {
      pending_write w;
      w.shape = reply::status;
      w.kind = type::status;
      w.txid = txid;
      return enqueue(self, std::move(w));
    },
    [=](atom::prepare, std::vector<txn_prepare>& batch)
      -> caf::result<std::vector<caf::error>> {
      if (batch.empty())
        return std::vector<caf::error>{};
      return enqueue_batch(self, type::prepare, batch,
                           [](pending_write& w, txn_prepare& p) {
                             w.txid = p.txid;
                             w.part = std::move(p.part);
                           });
    },
    [=](atom::resolve, std::vector<txn_outcome>& batch)
      -> caf::result<std::vector<uint64_t>> {
      if (batch.empty())
        return std::vector<uint64_t>{};
      return enqueue_batch(self, type::resolve, batch,
                           [](pending_write& w, txn_outcome& o) {
                             w.txid = o.txid;
                             w.commit = o.commit;
                           });
    },
    [=](atom::sync) -> caf::result<void> {
      pending_write w;
      w.shape = reply::unit;
      w.kind = type::barrier;
      return enqueue(self, std::move(w));
    },
    [=](atom::read, std::string& key) -> caf::result<maybe_bytes, uint64_t> {
      return park(self, parked_read{std::move(key), std::nullopt, {}});
    },
    [=](atom::read, scan_request& req) -> caf::result<scan_page, uint64_t> {
      return park(self, parked_read{{}, std::move(req), {}});
    },
    [=](atom::create_index, index_spec& spec) -> caf::result<void> {
      auto* ix = self->state.store->indexes();
      if (!ix)
        return make_error(errc::query_error, "this shard keeps no indexes");
      auto done = guarded([&] { ix->create(spec); return true; });
      if (!done)
        return std::move(done.error());
      schedule_build(self);
      return caf::unit;
    },
    [=](atom::drop_index, std::string& name) -> caf::result<void> {
      auto* ix = self->state.store->indexes();
      if (!ix)
        return make_error(errc::key_not_found, "no index named " + name);
      auto done = guarded([&] { ix->drop(name); return true; });
      if (!done)
        return std::move(done.error());
      schedule_build(self);
      return caf::unit;
    },
    [=](atom::build) {
      // One step, then back to the mailbox: writes go on between steps.
      self->state.build_scheduled = false;
      auto* ix = self->state.store->indexes();
      auto more = guarded([&] { return ix && ix->step(index_build_step); });
      if (more && *more) {
        schedule_build(self);
      } else if (!more) {
        // The engine's trouble (a full map, I/O): the step is tried again
        // later, and writes go on meanwhile.
        log().warn("index step on {} failed, retrying in 1 s: {}",
                   self->state.store->info().path, to_string(more.error()));
        self->state.build_scheduled = true;
        self->delayed_send(self, std::chrono::seconds(1), atom::build_v);
      }
    },
    [=](atom::await, uint64_t after, uint32_t wait_ms) -> caf::result<uint64_t> {
      auto* log = self->state.store->changes();
      if (log == nullptr)
        return make_error(errc::invalid_value, "this shard keeps no change log");
      if (log->last() > after || wait_ms == 0)
        return log->last();
      auto rp = self->make_response_promise<uint64_t>();
      self->state.awaits.push_back(
        {after, std::chrono::steady_clock::now() + std::chrono::milliseconds{wait_ms}, rp});
      schedule_tick(self);
      return rp;
    },
    [=](atom::tick) {
      self->state.tick_scheduled = false;
      wake_awaits(self);
      schedule_tick(self);
    },
    [=](atom::flush) {
      auto& st = self->state;
      st.flush_scheduled = false;
      // The group runs in a buffer kept between groups (and `pending` takes
      // over its old one), so queuing allocates nothing in the steady state.
      auto& group = st.group;
      group.swap(st.pending);
      // Outcomes go first, in a write of their own: they need no sync (the
      // coordinator's log holds the decisions), so neither their answers
      // nor the locks they release wait for the sync of the rest.
      // An outcome whose prepare is in this same group stays behind it: the
      // coordinator gave up waiting for that vote and aborts, and an abort
      // that ran first would find nothing to drop, leaving the prepare's
      // locks with no outcome to come.
      std::vector<uint64_t> preparing;
      for (auto& w : group)
        if (w.kind == type::prepare)
          preparing.push_back(w.txid);
      std::sort(preparing.begin(), preparing.end());
      auto goes_first = [&](const pending_write& w) {
        return w.kind == type::resolve
               && !std::binary_search(preparing.begin(), preparing.end(), w.txid);
      };
      // The coordinator sends outcomes before prepares: usually in order.
      auto mid = std::is_partitioned(group.begin(), group.end(), goes_first)
                   ? std::partition_point(group.begin(), group.end(), goes_first)
                   : std::stable_partition(group.begin(), group.end(), goes_first);
      std::vector<pending_write> waiting;
      if (mid != group.begin()) {
        STRATA_FAULT_POINT("shard.before_outcome");
        commit(self, group.begin(), mid, "shard.after_outcome");
        // Waiting writes go before the newer ones of this group, in
        // arrival order.
        waiting = release_waiting(self);
      }
      auto first = mid;
      auto last = group.end();
      if (!waiting.empty()) {
        waiting.insert(waiting.end(), std::make_move_iterator(mid),
                       std::make_move_iterator(group.end()));
        first = waiting.begin();
        last = waiting.end();
      }
      if (first != last) {
        bool prepares = std::any_of(first, last,
                                    [](auto& w) { return w.kind == type::prepare; });
        bool outcomes = std::any_of(first, last,
                                    [](auto& w) { return w.kind == type::resolve; });
        bool commits = std::any_of(first, last,
                                   [](auto& w) { return w.kind == type::commit; });
        if (prepares)
          STRATA_FAULT_POINT("shard.before_prepare");
        // After preparing, before voting: the votes must not leave first.
        // After a one-phase commit, before its answer.
        commit(self, first, last,
               prepares  ? "shard.after_prepare"
               : commits ? "shard.after_commit"
                         : nullptr);
        if (outcomes) {
          // Outcomes that stayed behind their prepares released locks as
          // well: what waits for them runs in the next group.
          auto freed = release_waiting(self);
          if (!freed.empty()) {
            st.pending.insert(st.pending.begin(), std::make_move_iterator(freed.begin()),
                              std::make_move_iterator(freed.end()));
            schedule_flush(self);
          }
        }
      }
      group.clear();
      wake_awaits(self);
    },
  };
}

shard_writer_actor spawn_shard_writer(caf::actor_system& sys,
                                      std::shared_ptr<shard_core> store) {
  return sys.spawn<caf::detached>(shard_writer, std::move(store));
}

} // namespace strata

#include "actors/shard_writer.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "backends/fault.hpp"
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

void answer(pending_write& w, const write_outcome& out) {
  using reply = pending_write::reply;
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

} // namespace

shard_writer_actor::behavior_type
shard_writer(shard_writer_actor::stateful_pointer<shard_writer_state> self,
             std::shared_ptr<kv_store> store) {
  using reply = pending_write::reply;
  self->state.store = std::move(store);
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
    [=](atom::commit, txn_part& part) -> caf::result<uint64_t> {
      pending_write w;
      w.shape = reply::count;
      w.kind = type::commit;
      w.part = std::move(part);
      return enqueue(self, std::move(w));
    },
    [=](atom::prepare, uint64_t txid, txn_part& part) -> caf::result<void> {
      pending_write w;
      w.shape = reply::unit;
      w.kind = type::prepare;
      w.txid = txid;
      w.part = std::move(part);
      return enqueue(self, std::move(w));
    },
    [=](atom::resolve, uint64_t txid, bool commit) -> caf::result<uint64_t> {
      pending_write w;
      w.shape = reply::count;
      w.kind = type::resolve;
      w.txid = txid;
      w.commit = commit;
      return enqueue(self, std::move(w));
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
    [=](atom::flush) {
      auto& st = self->state;
      st.flush_scheduled = false;
      auto group = std::move(st.pending);
      st.pending.clear();
      std::vector<write_request> requests;
      requests.reserve(group.size());
      bool outcomes_applied = false;
      bool prepares = false;
      for (auto& w : group) {
        requests.push_back(write_request{w.kind, &w.ops, &w.part, w.txid, w.commit});
        outcomes_applied = outcomes_applied || w.kind == type::resolve;
        prepares = prepares || w.kind == type::prepare;
      }
      if (prepares)
        STRATA_FAULT_POINT("shard.before_prepare");
      if (outcomes_applied)
        STRATA_FAULT_POINT("shard.before_outcome");
      // Blocks for the commit and its sync; this actor has its own thread.
      auto outcomes = st.store->write(requests);
      if (prepares)
        STRATA_FAULT_POINT("shard.after_prepare");
      if (outcomes_applied)
        STRATA_FAULT_POINT("shard.after_outcome");
      for (size_t i = 0; i < group.size(); ++i) {
        if (outcomes[i].blocked)
          st.blocked.push_back(std::move(group[i]));
        else
          answer(group[i], outcomes[i]);
      }
      if (!outcomes_applied)
        return;
      // Outcomes release locks: waiting reads run now, waiting writes go
      // first into the next group.
      auto parked = std::move(st.parked);
      st.parked.clear();
      for (auto& r : parked)
        if (!try_read(self, r))
          st.parked.push_back(std::move(r));
      if (!st.blocked.empty()) {
        auto retry = std::move(st.blocked);
        st.blocked.clear();
        for (auto& w : st.pending)
          retry.push_back(std::move(w));
        st.pending = std::move(retry);
        schedule_flush(self);
      }
    },
  };
}

shard_writer_actor spawn_shard_writer(caf::actor_system& sys,
                                      std::shared_ptr<kv_store> store) {
  return sys.spawn<caf::detached>(shard_writer, std::move(store));
}

} // namespace strata

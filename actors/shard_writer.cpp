#include "actors/shard_writer.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "backends/kv_store.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

using writer_ptr = shard_writer_actor::stateful_pointer<shard_writer_state>;

caf::response_promise enqueue(writer_ptr self, pending_write::reply shape,
                              std::vector<operation> ops) {
  auto rp = self->make_response_promise();
  self->state.pending.push_back(pending_write{shape, std::move(ops), rp});
  if (!self->state.flush_scheduled) {
    self->state.flush_scheduled = true;
    self->send(self, atom::flush_v);
  }
  return rp;
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

} // namespace

shard_writer_actor::behavior_type
shard_writer(shard_writer_actor::stateful_pointer<shard_writer_state> self,
             std::shared_ptr<kv_store> store) {
  using reply = pending_write::reply;
  self->state.store = std::move(store);
  return {
    [=](atom::set, std::string& key, bytes& value) -> caf::result<void> {
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
    [=](atom::flush) {
      auto& st = self->state;
      st.flush_scheduled = false;
      auto group = std::move(st.pending);
      st.pending.clear();
      write_group ops;
      ops.reserve(group.size());
      for (auto& w : group)
        ops.push_back(&w.ops);
      // Blocks for the commit and its sync; this actor has its own thread.
      auto outcomes = st.store->write(ops);
      for (size_t i = 0; i < group.size(); ++i)
        answer(group[i], outcomes[i]);
    },
  };
}

shard_writer_actor spawn_shard_writer(caf::actor_system& sys,
                                      std::shared_ptr<kv_store> store) {
  return sys.spawn<caf::detached>(shard_writer, std::move(store));
}

} // namespace strata

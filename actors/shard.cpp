#include "actors/shard.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"

namespace strata {

shard_actor::behavior_type shard(shard_actor::stateful_pointer<shard_state> self,
                                 std::shared_ptr<kv_store> store,
                                 uint64_t max_value_size) {
  auto& st = self->state;
  st.store = store;
  st.max_value_size = max_value_size;
  st.writer = spawn_shard_writer(self->system(), store);
  self->link_to(st.writer);
  auto max = max_value_size;
  auto writer = [self] { return self->state.writer; };
  return {
    // -- reads: answered here -------------------------------------------------
    [=](atom::get, const std::string& key) -> caf::result<maybe_bytes> {
      if (auto err = check_key(key))
        return err;
      return guarded([&] { return to_wire(store->get(key)); });
    },
    [=](atom::has, const std::string& key) -> caf::result<bool> {
      if (auto err = check_key(key))
        return err;
      return guarded([&] { return store->has(key); });
    },
    [=](atom::size) -> caf::result<uint64_t> {
      return guarded([&] { return store->size(); });
    },
    [=](atom::scan, const scan_request& req) -> caf::result<scan_page> {
      return guarded([&] { return store->scan(req); });
    },
    [=](atom::get_many, const std::vector<std::string>& keys)
      -> caf::result<std::vector<maybe_bytes>> {
      if (auto err = check_keys(keys))
        return err;
      return guarded([&] {
        auto values = store->get_many(keys);
        std::vector<maybe_bytes> result;
        result.reserve(values.size());
        for (auto& v : values)
          result.push_back(to_wire(std::move(v)));
        return result;
      });
    },
    [=](atom::info) -> caf::result<shard_info> {
      return guarded([&] { return store->info(); });
    },
    // -- writes: checked here, committed by the writer ----------------------------
    [=](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      if (auto err = check_key(key))
        return err;
      if (auto err = check_value(value, max))
        return err;
      return self->delegate(writer(), atom::set_v, std::move(key),
                            std::move(value));
    },
    [=](atom::del, std::string& key) -> caf::result<bool> {
      if (auto err = check_key(key))
        return err;
      return self->delegate(writer(), atom::del_v, std::move(key));
    },
    [=](atom::clear) -> caf::result<void> {
      return self->delegate(writer(), atom::clear_v);
    },
    [=](atom::set_many, std::vector<entry>& entries) -> caf::result<void> {
      if (auto err = check_entries(entries, max))
        return err;
      return self->delegate(writer(), atom::set_many_v, std::move(entries));
    },
    [=](atom::del_many, std::vector<std::string>& keys) -> caf::result<uint64_t> {
      if (auto err = check_keys(keys))
        return err;
      return self->delegate(writer(), atom::del_many_v, std::move(keys));
    },
    [=](atom::batch, std::vector<operation>& ops) -> caf::result<batch_result> {
      if (auto errors = check_ops(ops, max); !errors.empty())
        return batch_result{false, 0, std::move(errors)};
      return self->delegate(writer(), atom::batch_v, std::move(ops));
    },
  };
}

namespace {

/// Keeps the data directory's lock alive as long as the environment is open:
/// members are destroyed in reverse order, so the store closes first.
struct shard_files {
  shard_files(std::shared_ptr<const void> lock, kv_store_options opts)
    : keepalive(std::move(lock)), store(std::move(opts)) {
    // nop
  }

  std::shared_ptr<const void> keepalive;
  kv_store store;
};

} // namespace

caf::expected<local_shard> spawn_shard(caf::actor_system& sys,
                                       shard_options opts) {
  auto files = guarded([&] {
    return std::make_shared<shard_files>(std::move(opts.keepalive),
                                         std::move(opts.store));
  });
  if (!files)
    return std::move(files.error());
  // Everybody shares the store; the control block owns the lock as well.
  auto store = std::shared_ptr<kv_store>(*files, &(*files)->store);
  auto actor = sys.spawn(shard, store, opts.max_value_size);
  return local_shard{std::move(actor), std::move(store)};
}

} // namespace strata

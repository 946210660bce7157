#include "actors/shard.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "actors/shard_reads.hpp"
#include "actors/timeouts.hpp"
#include "backends/change_log.hpp"
#include "backends/indexes.hpp"

namespace strata {

shard_actor::behavior_type shard(shard_actor::stateful_pointer<shard_state> self,
                                 std::shared_ptr<shard_core> store,
                                 shard_writer_actor writer_handle,
                                 uint64_t max_value_size,
                                 std::chrono::milliseconds timeout) {
  auto& st = self->state;
  st.timeout = timeout;
  st.store = store;
  st.max_value_size = max_value_size;
  st.writer = std::move(writer_handle);
  self->link_to(st.writer);
  auto max = max_value_size;
  auto writer = [self] { return self->state.writer; };
  return {
    // -- reads: answered here -------------------------------------------------
    [=](atom::get, const std::string& key) -> caf::result<maybe_bytes> {
      return shard_reads::get(*store, key);
    },
    [=](atom::has, const std::string& key) -> caf::result<bool> {
      return shard_reads::has(*store, key);
    },
    [=](atom::size) -> caf::result<uint64_t> {
      return shard_reads::size(*store);
    },
    [=](atom::scan, const scan_request& req) -> caf::result<scan_page> {
      return shard_reads::scan(*store, req);
    },
    [=](atom::get_many, const std::vector<std::string>& keys)
      -> caf::result<std::vector<maybe_bytes>> {
      return shard_reads::get_many(*store, keys);
    },
    [=](atom::info) -> caf::result<shard_info> {
      return guarded([&] { return store->info(); });
    },
    [=](atom::query, const shard_query& req) -> caf::result<shard_hits> {
      return shard_reads::query(*store, req);
    },
    [=](atom::count, const std::string& pattern) -> caf::result<uint64_t> {
      return shard_reads::count(*store, pattern);
    },
    [=](atom::partial, const std::string& pipeline) -> caf::result<bytes> {
      return shard_reads::partial(*store, pipeline);
    },
    [=](atom::indexes) -> caf::result<std::vector<index_info>> {
      return shard_reads::indexes(*store);
    },
    [=](atom::changes, const change_request& req) -> caf::result<change_page> {
      return shard_reads::changes(*store, req);
    },
    [=](atom::await, uint64_t after, uint32_t wait_ms) -> caf::result<uint64_t> {
      if (auto* log = store->changes(); log != nullptr && log->last() > after)
        return log->last();
      return self->delegate(writer(), atom::await_v, after, wait_ms);
    },
    [=](atom::create_index, index_spec& spec) -> caf::result<void> {
      return self->delegate(writer(), atom::create_index_v, std::move(spec));
    },
    [=](atom::drop_index, std::string& name) -> caf::result<void> {
      return self->delegate(writer(), atom::drop_index_v, std::move(name));
    },
    // -- transactions ------------------------------------------------------------
    [=](atom::read, std::string& key) -> caf::result<maybe_bytes, uint64_t> {
      auto r = shard_reads::read(*store, key);
      if (!r)
        return std::move(r.error());
      if (r->blocked) // wait at the writer for the outcome that frees the key
        return self->delegate(writer(), atom::read_v, std::move(key));
      return {std::move(r->value), r->seq};
    },
    [=](atom::read, scan_request& req) -> caf::result<scan_page, uint64_t> {
      auto r = shard_reads::read(*store, req);
      if (!r)
        return std::move(r.error());
      if (r->blocked)
        return self->delegate(writer(), atom::read_v, std::move(req));
      return {std::move(r->value), r->seq};
    },
    [=](atom::commit, uint64_t txid, txn_part& part) -> caf::result<uint64_t> {
      if (auto err = check_part(part, max))
        return err;
      return self->delegate(writer(), atom::commit_v, txid, std::move(part));
    },
    [=](atom::status, uint64_t txid) -> caf::result<bool> {
      return self->delegate(writer(), atom::status_v, txid);
    },
    [=](atom::prepare, std::vector<txn_prepare>& batch)
      -> caf::result<std::vector<caf::error>> {
      if (auto err = check_prepares(batch, max))
        return err;
      return self->delegate(writer(), atom::prepare_v, std::move(batch));
    },
    [=](atom::resolve, std::vector<txn_outcome>& batch)
      -> caf::result<std::vector<uint64_t>> {
      return self->delegate(writer(), atom::resolve_v, std::move(batch));
    },
    [=](atom::sync) -> caf::result<void> {
      return self->delegate(writer(), atom::sync_v);
    },
    [=](atom::recover, coordinator_actor& coord) -> caf::result<uint64_t> {
      // Presumed abort: ask the coordinator about each transaction in doubt
      // and apply its answer.
      auto txids = guarded([&] { return store->in_doubt(); });
      if (!txids)
        return std::move(txids.error());
      if (txids->empty())
        return uint64_t{0};
      // Ask about all of them, then apply the answers in one batch (also
      // when some questions failed: those stay in doubt for the next try).
      auto rp = self->make_response_promise();
      auto outcomes = std::make_shared<std::vector<txn_outcome>>();
      auto left = std::make_shared<size_t>(txids->size());
      auto failed = std::make_shared<caf::error>();
      auto done = [self, writer, rp, outcomes, left, failed]() mutable {
        if (--*left > 0)
          return;
        auto total = uint64_t{outcomes->size()};
        self->request(writer(), caf::infinite, atom::resolve_v, std::move(*outcomes))
          .then(
            [rp, total, failed](std::vector<uint64_t>&) mutable {
              if (*failed)
                rp.deliver(*failed);
              else
                rp.deliver(total);
            },
            [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      };
      for (auto txid : *txids)
        self->request(coord, timeout_to(self, coord, self->state.timeout),
                      atom::status_v, txid)
          .then(
            [=](bool committed) mutable {
              outcomes->push_back(txn_outcome{txid, committed});
              done();
            },
            [=](caf::error& err) mutable {
              if (!*failed)
                *failed = code_of(err) != errc::none
                            ? std::move(err)
                            : make_error(errc::connection_lost,
                                         "the coordinator did not answer about "
                                         "transactions in doubt: " + render(err));
              done();
            });
      return rp;
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
  shard_files(std::shared_ptr<const void> lock, shard_core_options opts)
    : keepalive(std::move(lock)), store(std::move(opts)) {
    // nop
  }

  std::shared_ptr<const void> keepalive;
  shard_core store;
};

} // namespace

caf::expected<std::shared_ptr<shard_core>>
open_shard_core(shard_core_options opts, std::shared_ptr<const void> keepalive) {
  auto files = guarded([&] {
    auto f = std::make_shared<shard_files>(std::move(keepalive), std::move(opts));
    open_indexes(f->store);
    open_change_log(f->store, f->store.options().changes);
    return f;
  });
  if (!files)
    return std::move(files.error());
  // Everybody shares the store; the control block owns the lock as well.
  return std::shared_ptr<shard_core>(*files, &(*files)->store);
}

caf::expected<local_shard> spawn_shard(caf::actor_system& sys,
                                       shard_options opts) {
  auto store = open_shard_core(std::move(opts.store), std::move(opts.keepalive));
  if (!store)
    return std::move(store.error());
  auto writer = spawn_shard_writer(sys, *store);
  auto actor = sys.spawn(shard, *store, writer, opts.max_value_size, opts.timeout);
  return local_shard{std::move(actor), std::move(*store), std::move(writer)};
}

} // namespace strata

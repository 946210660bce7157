#include "actors/remote_store.hpp"

#include <tuple>

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "backends/log.hpp"
#include "actors/remote_transaction.hpp"
#include "actors/shard_relay.hpp"
#include "strata/error.hpp"

namespace strata {

relay_table::mode remote_store_state::mode() const {
  return gone.empty() ? relay_table::mode::ready : relay_table::mode::unavailable;
}

caf::error remote_store_state::unavailable() const {
  return make_error(errc::connection_failed, "the connection to the store at " + address
                                               + " was lost (" + gone
                                               + "); the request was not sent");
}

caf::error remote_store_state::lost(const caf::error& err) const {
  // Strata's own errors, and a late answer (the node is slow, not gone),
  // pass as they are.
  if (code_of(err) != errc::none || err == caf::sec::request_timeout)
    return err;
  return make_error(errc::connection_lost,
                    "the connection to the store at " + address + " was lost ("
                      + render(err) + "); the request may or may not have been applied");
}

observable_storage_actor::behavior_type
remote_store(observable_storage_actor::stateful_pointer<remote_store_state> self,
             caf::actor target, std::chrono::milliseconds timeout) {
  auto& st = self->state;
  st.target = std::move(target);
  st.address = to_string(st.target.node());
  st.timeout = timeout;
  st.relay.request_timeout = caf::duration{timeout};
  self->monitor(st.target);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    if (!s.target || dm.source != s.target.address())
      return;
    s.gone = render(dm.reason);
    s.target = nullptr;
    log().warn("store at {}: connection lost ({})", s.address, s.gone);
    s.relay.fail_pending(make_error(errc::connection_lost,
                                    "the connection to the store at " + s.address
                                      + " was lost (" + s.gone
                                      + "); the request may or may not have been applied"));
  });
  // Reads pass on unchanged, as a remote shard's do; the store node checks
  // every request itself.
  auto own = std::make_tuple(
    [self](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      return relay<>(self, atom::set_v, std::move(key), std::move(value));
    },
    [self](atom::del, std::string& key) -> caf::result<bool> {
      return relay<bool>(self, atom::del_v, std::move(key));
    },
    [self](atom::clear) -> caf::result<void> { return relay<>(self, atom::clear_v); },
    [self](atom::set_many, std::vector<entry>& entries) -> caf::result<void> {
      return relay<>(self, atom::set_many_v, std::move(entries));
    },
    [self](atom::del_many, std::vector<std::string>& keys) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::del_many_v, std::move(keys));
    },
    [self](atom::batch, std::vector<operation>& ops) -> caf::result<batch_result> {
      return relay<batch_result>(self, atom::batch_v, std::move(ops));
    },
    [self](atom::begin, txn_options& opts) -> caf::result<transaction_actor> {
      // The transaction gets a proxy of its own, which ends with this one.
      return relay_adjusted<transaction_actor>(
        self,
        [self](transaction_actor& tx) {
          tx = self->spawn<caf::linked>(remote_transaction, std::move(tx),
                                        self->state.address, self->state.timeout);
        },
        atom::begin_v, std::move(opts));
    },
    [self](atom::nodes) -> caf::result<std::vector<node_info>> {
      return relay<std::vector<node_info>>(self, atom::nodes_v);
    },
    [self](atom::info) -> caf::result<std::vector<shard_info>> {
      return relay<std::vector<shard_info>>(self, atom::info_v);
    },
    [self](atom::on, event_kind kind, event_actor& who,
           subscribe_options& opts) -> caf::result<void> {
      return relay<>(self, atom::on_v, kind, std::move(who), std::move(opts));
    },
    [self](atom::off, event_kind kind, event_actor& who) -> caf::result<void> {
      return relay<>(self, atom::off_v, kind, std::move(who));
    },
    [self](atom::watch, watch_options& opts, event_actor& who) -> caf::result<watcher_actor> {
      return relay<watcher_actor>(self, atom::watch_v, std::move(opts), std::move(who));
    },
    [self](atom::changes, std::string& from, uint32_t limit, change_filter_spec& filter)
      -> caf::result<std::vector<change_batch>, std::string> {
      return relay<std::vector<change_batch>, std::string>(self, atom::changes_v,
                                                           std::move(from), limit,
                                                           std::move(filter));
    });
  return std::apply(
    [](auto&&... hs) {
      return observable_storage_actor::behavior_type{std::move(hs)...};
    },
    std::tuple_cat(shard_read_relay_handlers(self), indexed_relay_handlers(self),
                   std::move(own)));
}

observable_storage_actor spawn_remote_store(caf::actor_system& sys, caf::actor target,
                                               std::chrono::milliseconds timeout) {
  return sys.spawn(remote_store, std::move(target), timeout);
}

} // namespace strata

#include "actors/remote_transaction.hpp"

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "strata/error.hpp"

namespace strata {

relay_table::mode remote_transaction_state::mode() const {
  return gone.empty() ? relay_table::mode::ready : relay_table::mode::unavailable;
}

caf::error remote_transaction_state::unavailable() const {
  return make_error(errc::connection_failed,
                    "the connection to the transaction's node " + address + " was lost ("
                      + gone + "); the transaction ended there, begin a new one");
}

caf::error remote_transaction_state::lost(const caf::error& err) const {
  // Strata's own errors, and a late answer (the node is slow, not gone),
  // pass as they are.
  if (code_of(err) != errc::none || err == caf::sec::request_timeout)
    return err;
  return make_error(errc::connection_lost,
                    "the connection to node " + address + " was lost (" + render(err)
                      + "); the request may or may not have been applied");
}

transaction_actor::behavior_type
remote_transaction(transaction_actor::stateful_pointer<remote_transaction_state> self,
                   transaction_actor target, std::string address,
                   std::chrono::milliseconds timeout) {
  auto& st = self->state;
  st.target = std::move(target);
  st.address = std::move(address);
  st.relay.request_timeout = caf::duration{timeout};
  self->monitor(st.target);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    s.gone = render(dm.reason);
    s.relay.fail_pending(make_error(errc::connection_lost,
                                    "the connection to node " + s.address + " was lost ("
                                      + s.gone
                                      + "); the request may or may not have been applied"));
    s.target = nullptr;
    // A transaction that ended on its node takes its stand-in with it. After
    // a lost connection the stand-in stays, answering CONNECTION_FAILED, so
    // that a client between two requests gets a strata error rather than
    // CAF's request_receiver_down; it ends with the remote_store it is
    // linked to.
    if (dm.reason != caf::exit_reason::remote_link_unreachable)
      self->quit();
  });
  return {
    [self](atom::get, std::string& key) -> caf::result<maybe_bytes> {
      return relay<maybe_bytes>(self, atom::get_v, std::move(key));
    },
    [self](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      return relay<>(self, atom::set_v, std::move(key), std::move(value));
    },
    [self](atom::del, std::string& key) -> caf::result<bool> {
      return relay<bool>(self, atom::del_v, std::move(key));
    },
    [self](atom::has, std::string& key) -> caf::result<bool> {
      return relay<bool>(self, atom::has_v, std::move(key));
    },
    [self](atom::scan, scan_request& req) -> caf::result<scan_page> {
      return relay<scan_page>(self, atom::scan_v, std::move(req));
    },
    [self](atom::query, query_request& req) -> caf::result<query_page> {
      return relay<query_page>(self, atom::query_v, std::move(req));
    },
    [self](atom::commit) -> caf::result<void> { return relay<>(self, atom::commit_v); },
    [self](atom::rollback) -> caf::result<void> { return relay<>(self, atom::rollback_v); },
    [self](atom::savepoint, std::string& name) -> caf::result<void> {
      return relay<>(self, atom::savepoint_v, std::move(name));
    },
    [self](atom::rollback_to, std::string& name) -> caf::result<void> {
      return relay<>(self, atom::rollback_to_v, std::move(name));
    },
    [self](atom::info) -> caf::result<txn_info> {
      return relay<txn_info>(self, atom::info_v);
    },
    [self](atom::status) -> caf::result<txn_info> {
      return relay<txn_info>(self, atom::status_v);
    },
  };
}

} // namespace strata

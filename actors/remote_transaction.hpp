#pragma once

#include <chrono>
#include <string>

#include "actors/relay.hpp"
#include "strata/actors.hpp"

namespace strata {

struct remote_transaction_state {
  static inline const char* name = "strata.remote_transaction";
  transaction_actor target;
  /// The node's address, for error messages.
  std::string address;
  relay_table relay;
  /// Why the connection went; empty while it stands.
  std::string gone;

  relay_table::mode mode() const;
  caf::error unavailable() const;
  caf::error lost(const caf::error& err) const;
};

/// Stands in for a transaction on another node (what `begin` answered a
/// `remote_store`, which spawns it linked, so that it ends with that one):
/// relays every request with the time limit `timeout` and
/// monitors the transaction, so that when the connection goes, requests in
/// flight fail at once with CONNECTION_LOST, and later ones with
/// CONNECTION_FAILED until the `remote_store` ends. When the transaction ends
/// on its node (a timeout after its deadline) the stand-in ends too: later
/// requests fail with CAF's `request_receiver_down`. (CAF 0.17 keeps an actor
/// that sent requests over the network in its registry: it must end by
/// itself.)
transaction_actor::behavior_type
remote_transaction(transaction_actor::stateful_pointer<remote_transaction_state> self,
                   transaction_actor target, std::string address,
                   std::chrono::milliseconds timeout);

/// Nothing to do: a lost connection shows as a down message.
inline void
relay_failed(transaction_actor::stateful_pointer<remote_transaction_state>,
             const caf::error&) {
  // nop
}

} // namespace strata

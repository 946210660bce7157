#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "actors/relay.hpp"
#include "strata/actors.hpp"

namespace strata {

struct remote_store_state {
  static inline const char* name = "strata.remote_store";
  /// The store (a `storage_actor` or a `observable_storage_actor`: a plain
  /// store answers `begin` and `nodes` with an error); null once lost.
  caf::actor target;
  /// Its node, for error messages.
  std::string address;
  std::chrono::milliseconds timeout{0};
  relay_table relay;
  /// Why the connection went; empty while it stands.
  std::string gone;

  relay_table::mode mode() const;
  caf::error unavailable() const;
  caf::error lost(const caf::error& err) const;
};

/// Stands in for a store in another process, for a typed client there, so
/// that the client learns at once when the connection goes:
///
/// ```
///  client ──request──▶ remote_store ──request (timeout)──▶ store on its node
///                          │ monitors the store: down (node killed, or its
///                          ▼ heartbeats stopped)
///        every request in flight fails at once: CONNECTION_LOST;
///        later ones fail at once: CONNECTION_FAILED (not sent)
/// ```
///
/// CAF 0.17 answers a request to a remote actor whose node died only when
/// the request's own timeout expires; the proxy fails them when its monitor
/// fires. Requests go out in the order they came, each with `timeout`.
/// `begin` hands out a `remote_transaction` for the remote transaction,
/// linked to this proxy. The typed client that made it stops it: CAF 0.17
/// keeps an actor that sent requests over the network in its registry, so
/// it never ends by itself.
observable_storage_actor::behavior_type
remote_store(observable_storage_actor::stateful_pointer<remote_store_state> self,
             caf::actor target, std::chrono::milliseconds timeout);

/// Spawns the proxy of `target`, a handle to a store in another process.
observable_storage_actor spawn_remote_store(caf::actor_system& sys, caf::actor target,
                                               std::chrono::milliseconds timeout);

/// Nothing to do: a lost connection shows as a down message.
inline void
relay_failed(observable_storage_actor::stateful_pointer<remote_store_state>,
             const caf::error&) {
  // nop
}

} // namespace strata

#pragma once

#include <set>
#include <string>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/duration.hpp>
#include <caf/io/middleman.hpp>
#include <caf/node_id.hpp>
#include <caf/openssl/manager.hpp>

#include "strata/error.hpp"

namespace strata {

/// Connects `self` to the actor published at `host`:`port` without blocking:
/// through the middleman actor (CAF's OpenSSL one with `tls`), never the
/// blocking `remote_actor`, which would stall a scheduler thread. Checks
/// that the peer offers `Handle`'s typed interface (the middleman actor does
/// not), then calls `ok(Handle)`; or `fail(err)`: CAF's error, or
/// CONNECTION_FAILED naming what is there instead of `kind`.
template <class Handle, class Self, class Ok, class Fail>
void connect_async(Self* self, const std::string& host, uint16_t port, bool tls,
                   caf::duration timeout, const char* kind, Ok ok, Fail fail) {
  auto& sys = self->system();
  auto mm = tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
  self->request(mm, timeout, caf::connect_atom::value, host, port)
    .then(
      [self, ok, fail, kind](const caf::node_id&, caf::strong_actor_ptr& ptr,
                             const std::set<std::string>& ifs) mutable {
        if (!ptr)
          fail(make_error(errc::connection_failed, "no actor is published there"));
        else if (!self->system().template assignable<Handle>(ifs))
          fail(make_error(errc::connection_failed,
                          std::string{"not "} + kind
                            + ": its interface differs (another kind of strata node, "
                              "or another program?)"));
        else
          ok(caf::actor_cast<Handle>(std::move(ptr)));
      },
      [fail](caf::error& err) mutable { fail(err); });
}

} // namespace strata

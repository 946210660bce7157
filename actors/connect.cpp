#include "strata/store.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include "actors/remote_store.hpp"
#include "strata/error.hpp"

namespace strata {

caf::expected<observable_storage_actor>
connect_store(caf::actor_system& sys, const std::string& host, uint16_t port,
              const connect_options& opts) {
  if (opts.tls && !sys.has_openssl_manager())
    return make_error(errc::invalid_value,
                      "tls needs CAF's OpenSSL module: call strata::configure_tls(cfg) "
                      "before the actor system starts");
  auto mm = opts.tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  auto pause = std::chrono::milliseconds{20};
  caf::scoped_actor self{sys, true};
  for (;;) {
    // Through the middleman actor rather than remote_actor(), so that each
    // attempt is bounded by what is left of the limit.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    observable_storage_actor result;
    caf::error err;
    self->request(mm, std::max(left, std::chrono::milliseconds{1}),
                  caf::connect_atom::value, host, port)
      .receive(
        [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
            const std::set<std::string>& ifs) {
          if (!ptr)
            err = make_error(errc::connection_failed, "no actor is published there");
          else if (!sys.assignable<observable_storage_actor>(ifs))
            err = make_error(errc::connection_failed,
                             "not a strata store node (a shard node, or another "
                             "program?)");
          else
            result = caf::actor_cast<observable_storage_actor>(std::move(ptr));
        },
        [&](caf::error& e) { err = std::move(e); });
    if (result)
      return result;
    // A refused connect (a node starting) or a handshake that did not come
    // in time (a busy node) may succeed later; other failures (a wrong peer,
    // a TLS mismatch) would not.
    auto again = err == caf::sec::cannot_connect_to_node || err == caf::sec::request_timeout
                 || err == caf::sec::connection_timeout;
    auto now = std::chrono::steady_clock::now();
    if (!again || now + pause >= deadline)
      return make_error(errc::connection_failed,
                        "cannot reach a strata node at " + host + ":" + std::to_string(port)
                          + " within " + std::to_string(opts.timeout.count())
                          + " ms: " + render(err));
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{500});
  }
}

namespace detail {

namespace {

template <class Handle>
Handle watch(caf::actor_system& sys, Handle store, std::chrono::milliseconds timeout) {
  if (!store || store.node() == sys.node())
    return store;
  return caf::actor_cast<Handle>(
    spawn_remote_store(sys, caf::actor_cast<caf::actor>(std::move(store)), timeout));
}

} // namespace

observable_storage_actor watch_store(caf::actor_system& sys,
                                        observable_storage_actor store,
                                        std::chrono::milliseconds timeout) {
  return watch(sys, std::move(store), timeout);
}

storage_actor watch_store(caf::actor_system& sys, storage_actor store,
                          std::chrono::milliseconds timeout) {
  return watch(sys, std::move(store), timeout);
}

} // namespace detail

} // namespace strata

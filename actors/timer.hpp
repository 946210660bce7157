#pragma once

#include <chrono>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace strata {

/// An actor that answers a request `(atom::timeout, milliseconds)` after that
/// many milliseconds: a timer for typed actors, which cannot send
/// themselves messages outside their interface. Retries with backoff use it.
caf::actor spawn_timer(caf::actor_system& sys);

} // namespace strata

#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace strata {

/// Spawns an actor that answers a request `(atom::timeout, uint32_t ms)`
/// after that many milliseconds: a timer for typed actors and clients, which
/// cannot send themselves messages outside their interface. The actor goes
/// away with its last handle.
caf::actor spawn_timer(caf::actor_system& sys);

} // namespace strata

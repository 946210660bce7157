#pragma once

#include <caf/fwd.hpp>

namespace strata {

/// Announces every strata message type to CAF under a fixed name. The one
/// place that does; every process of a deployment must call it (through
/// `strata::configure`) so that the names, which are part of the wire
/// contract, agree.
void announce_messages(caf::actor_system_config& cfg);

} // namespace strata

#pragma once

#include <chrono>

#include <caf/duration.hpp>

namespace strata {

/// The timeout of a request from `self` to `dest`. Actors in the same
/// process get none: if they die, the request fails at once. CAF 0.17 keeps
/// every request's timer (and the requesting actor) alive until it expires,
/// which costs a clock entry per message; remote actors get `t`.
template <class Self, class Handle>
caf::duration timeout_to(Self* self, const Handle& dest, std::chrono::milliseconds t) {
  if (dest.node() == self->node())
    return caf::duration{caf::infinite};
  return caf::duration{t};
}

} // namespace strata

#pragma once

#include <cstdint>
#include <string>

#include "strata/errc.hpp"

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>

namespace strata {

/// The CAF error category of strata's codes.
constexpr caf::atom_value error_category = caf::atom("strata");

/// Makes a CAF error of strata's category without context.
caf::error make_error(errc x);

/// Makes a CAF error of strata's category with a message a person can act on.
caf::error make_error(errc x, std::string context);

/// Returns the strata code of `e`, or `none` when `e` is empty or of another
/// category.
errc code_of(const caf::error& e);

/// Whether a write or commit that failed with `e` may have been applied all
/// the same: true for CONNECTION_LOST (the answer, not necessarily the
/// request, was lost) and for CAF's own errors (a timeout, a dropped
/// connection). Every other strata code means nothing of it was applied.
/// Read to check before trying again, or make the write idempotent.
bool outcome_unknown(const caf::error& e);

/// Renders any error for people: `KEY_NOT_FOUND: context` for strata's own
/// errors, CAF's rendering (`system_error(...)`) for everything else.
std::string render(const caf::error& e);

/// The renderer handed to `actor_system_config::add_error_category`.
std::string render_error(uint8_t code, caf::atom_value, const caf::message& ctx);

} // namespace strata

CAF_ERROR_CODE_ENUM(strata::errc, "strata")

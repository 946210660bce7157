#pragma once

#include <memory>

#include "backends/engine.hpp"

namespace strata {

/// Opens or creates the engine `opts.engine` in `opts.dir`. A directory holds
/// the files of one engine: opening it with another is CONSISTENCY_VIOLATION.
std::unique_ptr<engine> open_engine(const engine_options& opts);

} // namespace strata

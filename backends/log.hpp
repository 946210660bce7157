#pragma once

#include <spdlog/spdlog.h>

namespace strata {

/// strata's logger ("strata", stderr, thread-safe). Logging from a handler is
/// blocking I/O: keep hot paths at debug level.
spdlog::logger& log();

} // namespace strata

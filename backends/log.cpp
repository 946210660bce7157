#include "backends/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace strata {

spdlog::logger& log() {
  static auto instance = [] {
    auto result = spdlog::get("strata");
    if (!result)
      result = spdlog::stderr_color_mt("strata");
    return result;
  }();
  return *instance;
}

} // namespace strata

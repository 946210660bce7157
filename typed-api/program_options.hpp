#pragma once

#include <string>
#include <vector>

#include <caf/expected.hpp>

/// Command-line helpers shared by strata's programs.
namespace strata {

/// A friendly flag (`--data DIR` or `--data=DIR`) and the CAF option it sets.
struct flag {
  const char* name;
  const char* option;
};

/// Rewrites argv (without argv[0]) into CAF's syntax, `--option=value`, so
/// that CAF parses flags and config file alike. Arguments that are not in
/// `flags` pass through unchanged. A flag without its value is INVALID_VALUE.
caf::expected<std::vector<std::string>>
translate_flags(int argc, char** argv, const std::vector<flag>& flags);

/// The config file named by `--config-file=` in `args`, or nullptr for CAF's
/// default (caf-application.ini, ignored when missing). The pointer refers
/// into `args`.
const char* config_file(const std::vector<std::string>& args);

} // namespace strata

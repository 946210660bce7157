#include "typed-api/program_options.hpp"

#include "strata/error.hpp"

namespace strata {

caf::expected<std::vector<std::string>>
translate_flags(int argc, char** argv, const std::vector<flag>& flags) {
  std::vector<std::string> result;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool matched = false;
    for (auto& f : flags) {
      std::string name = f.name;
      if (arg == name) {
        if (i + 1 >= argc)
          return make_error(errc::invalid_value, name + " needs a value");
        result.push_back(std::string{"--"} + f.option + "=" + argv[++i]);
        matched = true;
        break;
      }
      if (arg.rfind(name + "=", 0) == 0) {
        result.push_back(std::string{"--"} + f.option + "="
                         + arg.substr(name.size() + 1));
        matched = true;
        break;
      }
    }
    if (!matched)
      result.push_back(std::move(arg));
  }
  return result;
}

const char* config_file(const std::vector<std::string>& args) {
  const std::string prefix = "--config-file=";
  for (auto& arg : args)
    if (arg.rfind(prefix, 0) == 0)
      return arg.c_str() + prefix.size();
  return nullptr;
}

} // namespace strata

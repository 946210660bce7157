#include "strata/error.hpp"

#include <array>

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace strata {

namespace {

constexpr std::array<const char*, 15> names = {
  "NONE",
  "CONNECTION_FAILED",
  "CONNECTION_LOST",
  "KEY_NOT_FOUND",
  "DUPLICATE_KEY",
  "TRANSACTION_ABORTED",
  "DEADLOCK_DETECTED",
  "CONSISTENCY_VIOLATION",
  "VERSION_CONFLICT",
  "STORAGE_FULL",
  "QUOTA_EXCEEDED",
  "INVALID_KEY",
  "INVALID_VALUE",
  "SERIALIZATION_FAILED",
  "QUERY_ERROR",
};

} // namespace

const char* to_string(errc x) {
  auto i = static_cast<size_t>(x);
  return i < names.size() ? names[i] : "UNKNOWN_ERROR";
}

std::optional<errc> parse_errc(const std::string& name) {
  for (size_t i = 0; i < names.size(); ++i)
    if (name == names[i])
      return static_cast<errc>(i);
  return std::nullopt;
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), error_category};
}

caf::error make_error(errc x, std::string context) {
  return caf::error{static_cast<uint8_t>(x), error_category,
                    caf::make_message(std::move(context))};
}

errc code_of(const caf::error& e) {
  if (!e || e.category() != error_category)
    return errc::none;
  return static_cast<errc>(e.code());
}

bool outcome_unknown(const caf::error& e) {
  if (!e)
    return false;
  auto c = code_of(e);
  return c == errc::none || c == errc::connection_lost;
}

std::string render_error(uint8_t code, caf::atom_value, const caf::message& ctx) {
  std::string result = to_string(static_cast<errc>(code));
  if (ctx.match_elements<std::string>()) {
    result += ": ";
    result += ctx.get_as<std::string>(0);
  } else if (!ctx.empty()) {
    result += ": ";
    result += to_string(ctx);
  }
  return result;
}

std::string render(const caf::error& e) {
  if (!e)
    return "no error";
  if (e.category() == error_category)
    return render_error(e.code(), e.category(), e.context());
  return to_string(e);
}

} // namespace strata

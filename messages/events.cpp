#include "strata/messages/events.hpp"

#include <charconv>

namespace strata {

const char* to_string(change_kind x) {
  switch (x) {
    case change_kind::set: return "set";
    case change_kind::del: return "delete";
    case change_kind::clear: return "clear";
  }
  return "invalid";
}

std::string resume_token::to_string() const {
  std::string out = "t1:";
  for (size_t i = 0; i < positions.size(); ++i) {
    if (i > 0)
      out += ',';
    out += std::to_string(positions[i]);
  }
  return out;
}

std::optional<resume_token> resume_token::parse(std::string_view text) {
  constexpr std::string_view tag = "t1:";
  if (text.substr(0, tag.size()) != tag)
    return std::nullopt;
  text.remove_prefix(tag.size());
  resume_token result;
  while (true) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end == text.data())
      return std::nullopt;
    result.positions.push_back(n);
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    if (text.empty())
      return result;
    if (text.front() != ',')
      return std::nullopt;
    text.remove_prefix(1);
  }
}

namespace {

constexpr const char* event_names[] = {"before:get",    "after:get",    "before:set",
                                       "after:set",     "before:delete", "after:delete",
                                       "change",        "error"};

} // namespace

const char* to_string(event_kind x) {
  auto i = static_cast<size_t>(x);
  return i < std::size(event_names) ? event_names[i] : "invalid";
}

std::optional<event_kind> parse_event_kind(std::string_view name) {
  for (size_t i = 0; i < std::size(event_names); ++i)
    if (name == event_names[i])
      return static_cast<event_kind>(i);
  return std::nullopt;
}

std::string subscribe_options::problem() const {
  if (timeout_ms < 1 || timeout_ms > 600000)
    return "timeout must be 1 to 600000 ms, not " + std::to_string(timeout_ms);
  return {};
}

std::string watch_options::problem() const {
  if (window < 1 || window > 1024)
    return "window must be 1 to 1024 deliveries, not " + std::to_string(window);
  if (max_batches < 1 || max_batches > limits::max_change_page)
    return "max_batches must be 1 to " + std::to_string(limits::max_change_page) + ", not "
           + std::to_string(max_batches);
  if (!from.empty() && from != "oldest" && !resume_token::parse(from))
    return "'" + from + "' is not a resume token (t1:N,N,...)";
  return {};
}

} // namespace strata

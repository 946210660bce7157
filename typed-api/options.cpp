#include "strata/options.hpp"

#include <algorithm>

#include "strata/error.hpp"

namespace strata {

const char* to_string(sync_mode x) {
  return x == sync_mode::durable ? "durable" : "nosync";
}

std::optional<sync_mode> parse_sync_mode(const std::string& x) {
  if (x == "durable")
    return sync_mode::durable;
  if (x == "nosync")
    return sync_mode::nosync;
  return std::nullopt;
}

bool is_log_level(const std::string& x) {
  for (auto name : {"trace", "debug", "info", "warning", "error", "critical",
                    "off"})
    if (x == name)
      return true;
  return false;
}

caf::error store_options::validate() const {
  auto bad = [](std::string msg) {
    return make_error(errc::invalid_value, std::move(msg));
  };
  if (id.empty() || id.size() > 64)
    return bad("id must be 1 to 64 characters");
  if (data_dir.empty())
    return bad("data_dir must not be empty");
  if (shards < 1 || shards > 256)
    return bad("shards must be 1 to 256, got " + std::to_string(shards));
  if (routers < 1 || routers > 64)
    return bad("routers must be 1 to 64, got " + std::to_string(routers));
  if (map_size != 0 && map_size < (1ull << 20))
    return bad("map_size must be 0 (automatic) or at least 1 MiB, got "
               + std::to_string(map_size));
  if (map_size > (1ull << 44))
    return bad("map_size must be at most 16 TiB per shard");
  if (max_value_size < 1 || max_value_size > (1ull << 30))
    return bad("max_value_size must be 1 byte to 1 GiB, got "
               + std::to_string(max_value_size));
  if (max_frame_size != 0 && max_frame_size < max_value_size + (1ull << 20))
    return bad("max_frame_size must be 0 (automatic) or at least max_value_size + 1 MiB ("
               + std::to_string(max_value_size + (1ull << 20)) + " bytes), got "
               + std::to_string(max_frame_size));
  if (max_frame_size > (1ull << 32) - 1)
    return bad("max_frame_size must be below 4 GiB, got " + std::to_string(max_frame_size));
  if (request_timeout.count() <= 0)
    return bad("request_timeout must be positive");
  if (engine != "lmdb" && engine != "memory" && engine != "sqlite" && engine != "json"
      && engine != "graph")
    return bad("engine must be lmdb, memory, sqlite, json or graph, got '" + engine + "'");
  if (engine == "sqlite")
    if (auto problem = sqlite.problem(); !problem.empty())
      return bad(problem);
  if (engine == "json")
    if (auto problem = json.problem(); !problem.empty())
      return bad(problem);
  if (engine == "graph")
    if (auto problem = graph.problem(); !problem.empty())
      return bad(problem);
  if (auto problem = hints.problem(); !problem.empty())
    return bad(problem);
  if (memory_snapshot && engine != "memory")
    return bad("memory_snapshot needs engine memory");
  if (!is_log_level(log_level))
    return bad("log_level must be one of trace, debug, info, warning, error, "
               "critical, off; got '"
               + log_level + "'");
  if (shard_nodes.size() > shards)
    return bad("the shard map has " + std::to_string(shard_nodes.size())
               + " entries for " + std::to_string(shards) + " shards");
  for (size_t i = 0; i < shard_nodes.size(); ++i)
    if (!shard_nodes[i].empty() && !parse_address(shard_nodes[i]))
      return bad("shard " + std::to_string(i) + ": '" + shard_nodes[i]
                 + "' is not host:port");
  if (heartbeat.count() <= 0)
    return bad("heartbeat must be positive");
  if (reconnect_min.count() <= 0 || reconnect_max < reconnect_min)
    return bad("reconnect_min must be positive and at most reconnect_max");
  if (restart_window.count() <= 0)
    return bad("restart_window must be positive");
  return caf::none;
}

uint64_t store_options::frame_limit() const {
  if (max_frame_size != 0)
    return max_frame_size;
  return std::max<uint64_t>(64ull << 20, max_value_size + (1ull << 20));
}

uint64_t store_options::shard_map_size() const {
  if (map_size != 0)
    return map_size;
  auto per_shard = std::min<uint64_t>(hints.expected_size / shards, 1ull << 32);
  return std::max<uint64_t>(per_shard * 4096, 1ull << 30);
}

namespace {

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> result;
  size_t from = 0;
  for (;;) {
    auto to = text.find(sep, from);
    result.push_back(text.substr(from, to - from));
    if (to == std::string::npos)
      return result;
    from = to + 1;
  }
}

bool all_digits(const std::string& x) {
  return !x.empty() && x.size() <= 9
         && std::all_of(x.begin(), x.end(), [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace

std::optional<std::pair<std::string, uint16_t>>
parse_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  auto port = address.substr(colon + 1);
  if (!all_digits(port))
    return std::nullopt;
  auto n = std::stoul(port);
  if (n < 1 || n > 65535)
    return std::nullopt;
  return std::make_pair(address.substr(0, colon), static_cast<uint16_t>(n));
}

caf::expected<std::vector<std::string>> parse_shard_map(const std::string& text) {
  std::vector<std::string> result;
  if (text.empty())
    return result;
  for (auto& entry : split(text, ',')) {
    if (entry.empty() || entry == "local") {
      result.emplace_back();
    } else if (parse_address(entry)) {
      result.push_back(entry);
    } else {
      return make_error(errc::invalid_value,
                        "shard map entry " + std::to_string(result.size()) + ": '"
                          + entry + "' is neither 'local' nor host:port");
    }
  }
  return result;
}

caf::expected<std::vector<uint32_t>> parse_shard_list(const std::string& text,
                                                      uint32_t shards) {
  std::vector<uint32_t> result;
  for (auto& x : split(text, ',')) {
    if (!all_digits(x) || std::stoul(x) >= shards)
      return make_error(errc::invalid_value,
                        "'" + x + "' is not a shard index below "
                          + std::to_string(shards));
    auto i = static_cast<uint32_t>(std::stoul(x));
    if (std::find(result.begin(), result.end(), i) != result.end())
      return make_error(errc::invalid_value,
                        "shard " + x + " is listed twice");
    result.push_back(i);
  }
  return result;
}

} // namespace strata

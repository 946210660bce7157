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
  if (map_size != 0 && map_size < (1ull << 20))
    return bad("map_size must be 0 (automatic) or at least 1 MiB, got "
               + std::to_string(map_size));
  if (map_size > (1ull << 44))
    return bad("map_size must be at most 16 TiB per shard");
  if (max_value_size < 1 || max_value_size > (1ull << 30))
    return bad("max_value_size must be 1 byte to 1 GiB, got "
               + std::to_string(max_value_size));
  if (request_timeout.count() <= 0)
    return bad("request_timeout must be positive");
  if (!is_log_level(log_level))
    return bad("log_level must be one of trace, debug, info, warning, error, "
               "critical, off; got '"
               + log_level + "'");
  return caf::none;
}

uint64_t store_options::shard_map_size() const {
  if (map_size != 0)
    return map_size;
  auto per_shard = std::min<uint64_t>(expected_size / shards, 1ull << 32);
  return std::max<uint64_t>(per_shard * 4096, 1ull << 30);
}

} // namespace strata

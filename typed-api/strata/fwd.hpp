#pragma once

#include <cstdint>
#include <vector>

/// Forward declarations of strata's public types.
namespace strata {

enum class errc : uint8_t;
enum class sync_mode : uint8_t;
struct store_options;
struct entry;
struct operation;
struct scan_request;
struct scan_page;
struct shard_info;
struct batch_result;
class document;
using bytes = std::vector<uint8_t>;

} // namespace strata

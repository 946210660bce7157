#include "strata/routing.hpp"

namespace strata::routing {

uint64_t fnv1a(std::string_view key) noexcept {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint32_t jump(uint64_t hash, uint32_t buckets) noexcept {
  int64_t b = -1;
  int64_t j = 0;
  while (j < static_cast<int64_t>(buckets)) {
    b = j;
    hash = hash * 2862933555777941757ull + 1;
    j = static_cast<int64_t>(static_cast<double>(b + 1)
                             * (static_cast<double>(1ll << 31)
                                / static_cast<double>((hash >> 33) + 1)));
  }
  return static_cast<uint32_t>(b);
}

} // namespace strata::routing

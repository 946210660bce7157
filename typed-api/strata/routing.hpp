#pragma once

#include <cstdint>
#include <string_view>

/// Key placement. Part of the on-disk contract: a key written to shard i must
/// be looked up in shard i forever after, in every process and on every
/// platform, so this never uses std::hash and never changes.
namespace strata::routing {

/// 64-bit FNV-1a of the key's bytes (offset basis 14695981039346656037,
/// prime 1099511628211).
uint64_t fnv1a(std::string_view key) noexcept;

/// Jump consistent hash (Lamping and Veach, 2014): maps `hash` to a bucket in
/// [0, buckets). Growing from n to n+1 buckets moves only 1/(n+1) of the
/// keys, which leaves room for resharding later.
uint32_t jump(uint64_t hash, uint32_t buckets) noexcept;

/// The shard of `key` among `shards` shards: jump(fnv1a(key), shards).
inline uint32_t shard_of(std::string_view key, uint32_t shards) noexcept {
  return jump(fnv1a(key), shards);
}

} // namespace strata::routing

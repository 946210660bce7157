#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/messages/kv.hpp"

namespace strata {

class shard_core;

/// The coordinator's durable records, kept in a shard_core of its own:
/// `d/<16 hex digits of the transaction id>` → the shards (u32 each, little
/// endian) of a commit decision, and `incarnation` → a decimal counter.
namespace decision_log {

/// The key of the commit decision of `txid`.
std::string key(uint64_t txid);

/// The value of a commit decision.
bytes encode(const std::vector<uint32_t>& shards);

/// A logged commit decision.
struct decision {
  uint64_t txid = 0;
  std::vector<uint32_t> shards;
};

/// Every decision in `log`, in transaction order. Entries whose key is
/// garbled are left out and counted in `garbled`.
std::vector<decision> all(const shard_core& log, size_t* garbled = nullptr);

/// Reads the incarnation, stores the next one durably and returns it.
/// Transaction ids start with it, so that they stay unique across restarts.
/// CONSISTENCY_VIOLATION if the stored one is garbled.
uint64_t next_incarnation(shard_core& log);

} // namespace decision_log

} // namespace strata

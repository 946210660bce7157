#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/indexes.hpp"
#include "strata/messages/kv.hpp"

/// @file
/// Planning the claims of unique indexes (see `unique_constraint`): which
/// values a write takes and gives up. The caller reads the current values
/// of the keys a write touches and the claims involved, each with the
/// shard's sequence number, and commits the write with its claims as one
/// transaction that validates those reads; so two writers that race for one
/// value on different shards cannot both commit.
namespace strata::unique {

/// The reserved key every part of a planned write carries (a delete of a
/// key that never exists): it tells the shard that the write's claims were
/// planned, so the shard refuses writes that change a claimed value without.
/// Each write gets its own (`n`): a shared one would make every two planned
/// writes on a shard conflict.
std::string planned_marker(uint64_t n);

/// Whether `key` is a planned write's marker.
bool is_planned_marker(std::string_view key);

/// One claim a write takes or gives up.
struct claim_change {
  std::string claim;
  /// The document that takes or gives up the value.
  std::string owner;
  std::string index;
  /// The value, for people.
  std::string shown;
};

struct claim_plan {
  /// Values the write's documents hold after it and not before.
  std::vector<claim_change> take;
  /// Values they held before and no longer do.
  std::vector<claim_change> give_up;
  /// The write clears the store first: what it held before is gone.
  bool cleared = false;
};

/// Plans the claims of `ops`, applied in order, under `constraints`.
/// `before` holds the stored value of every key `ops` set or delete (none:
/// no such key). Throws storage_error: DUPLICATE_KEY if two of the write's
/// documents would hold one value, INVALID_VALUE if a claim is too long.
claim_plan plan(const std::vector<unique_constraint>& constraints,
                const std::vector<operation>& ops,
                const std::map<std::string, std::optional<std::string>>& before);

/// The keys whose values `plan` needs.
std::vector<std::string> keys_written(const std::vector<operation>& ops);

/// The message of a DUPLICATE_KEY answer.
std::string duplicate_message(const claim_change& c, const std::string& holder);

} // namespace strata::unique

#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backends/engine.hpp"
#include "backends/query.hpp"

/// @file
/// Aggregation pipelines (the specification's `aggregate(pipeline)`): stages
/// match, group, sort, skip, limit and project, run in two halves. Each shard
/// runs the leading `match` stages and, if a `group` follows, groups its own
/// documents into partial states (count, sum, the sum and count of an
/// average, min, max); the storage actor merges the shards' partials, ends
/// the group and runs the remaining stages. Plain C++.

namespace strata {

/// A result larger than the store hands out in one answer (QUOTA_EXCEEDED).
class result_too_large : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// One output field of a group stage: `name` = op(`path`).
struct group_field {
  enum class op_type : uint8_t { count, sum, avg, min, max };
  std::string name;
  op_type op = op_type::count;
  field_path path; // empty for count
};

struct aggregate_stage {
  enum class type : uint8_t { match, group, sort, skip, limit, project };
  type kind = type::match;
  where_clause where;              // match
  std::vector<field_path> by;      // group: the fields that form a group's key
  std::vector<group_field> fields; // group
  std::vector<order_key> order;    // sort
  uint64_t count = 0;              // skip, limit
  std::vector<field_path> select;  // project
};

struct aggregate_pipeline {
  std::vector<aggregate_stage> stages;
  /// The stages the shards run: the leading matches, and the group after them
  /// if there is one.
  size_t shard_stages = 0;

  /// Whether the shards end with a group (partial states) rather than
  /// handing over the matching documents.
  bool shards_group() const {
    return shard_stages > 0 && stages[shard_stages - 1].kind == aggregate_stage::type::group;
  }
};

/// Most documents or groups one aggregation handles in memory.
constexpr size_t max_aggregate_rows = 100000;

/// Parses the JSON text form (docs/queries.md), an array of stages:
/// `[{"match": WHERE}, {"group": {"by": ["customer"], "fields": {"n":
/// {"count": "*"}, "total": {"sum": "amount"}}}}, {"sort": [{"field": "total",
/// "direction": "desc"}]}, {"skip": 0}, {"limit": 10}, {"project": ["n"]}]`.
/// Throws query_error naming the place of the first problem.
aggregate_pipeline parse_pipeline(std::string_view json);

/// The shard's half over one snapshot: an array document, either of partial
/// groups (`[key values, states]`) or of the matching documents.
/// result_too_large past `max_aggregate_rows`.
document aggregate_partial(const engine_snapshot& snap, const aggregate_pipeline& p);

/// The store's half: merges the shards' partials and runs the remaining
/// stages; an array of result documents. result_too_large past
/// `max_aggregate_rows`.
document aggregate_finish(const aggregate_pipeline& p, std::vector<document> partials);

} // namespace strata

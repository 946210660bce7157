#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/messages/kv.hpp"

/// Data types of queries and indexes (spec level 2: QueryableStorage and
/// IndexedStorage). Plain values, made serializable in
/// strata/messages/wire.hpp. Patterns and pipelines travel in their JSON text
/// form (docs/queries.md), which every shard parses for itself.
namespace strata {

namespace limits {
/// Results in a query page when the request leaves the limit at 0.
constexpr uint32_t default_query_page = 100;
/// Most results `find_many` answers; beyond, page through `query`.
constexpr uint32_t max_find_results = 10000;
} // namespace limits

/// Asks for one page of a query's results.
struct query_request {
  /// The query pattern, JSON text.
  std::string pattern;
  /// From the previous page; empty for the first.
  bytes continuation;
  /// Most results in the page; 0 picks `limits::default_query_page`, values
  /// above `limits::max_page_entries` are reduced to it.
  uint32_t limit = 0;
};

/// One result (the spec's QueryResult).
struct query_result {
  std::string key;
  /// The stored value, or, if the pattern selects fields, a document of them.
  bytes value;
  /// Relevance for fulltext queries; 0 otherwise.
  double score = 0;
  /// The shard that holds the key.
  uint32_t shard = 0;
};

/// One page of a query's results, in the query's order.
struct query_page {
  std::vector<query_result> results;
  /// More results follow: ask again with `continuation`.
  bool more = false;
  bytes continuation;
};

/// A shard's part of a query: its first `want` results after `after`.
struct shard_query {
  std::string pattern;
  /// Encoded position (sort values and key); empty: from the start.
  bytes after;
  uint64_t want = 0;
};

struct shard_hit {
  std::string key;
  bytes value;
  /// The result's order_by values, encoded.
  bytes sort;
  double score = 0;
};

/// A shard's answer: results in the query's order and what it took.
struct shard_hits {
  std::vector<shard_hit> hits;
  bool more = false;
  /// "scan" or "index NAME …".
  std::string plan;
  uint64_t estimated = 0;
  uint64_t examined = 0;
  uint64_t micros = 0;
};

/// How one shard ran a query (explain).
struct shard_plan {
  uint32_t shard = 0;
  std::string plan;
  /// Rows the planner expected to look at (an index's entry estimate, or the
  /// shard's size for a scan).
  uint64_t estimated = 0;
  /// Stored values actually looked at.
  uint64_t examined = 0;
  /// Results the shard handed to the merge.
  uint64_t returned = 0;
  uint64_t micros = 0;
};

/// The plan of a query: per shard, then merged.
struct query_plan {
  std::vector<shard_plan> shards;
  /// Results of the page after the merge.
  uint64_t returned = 0;
  uint64_t micros = 0;
};

/// One field of an index (the spec's IndexField).
struct index_field {
  /// Dotted path of the field.
  std::string name;
  /// "btree" (ranges and order), "hash" (equality), "fulltext" or "spatial".
  std::string type = "btree";
  bool descending = false;
};

/// An index definition (the spec's Index without stats).
struct index_spec {
  std::string name;
  std::vector<index_field> fields;
  /// No two documents of the store have the same values in the fields.
  bool unique = false;
  /// Documents without the (first) field are left out, instead of being
  /// indexed under null.
  bool sparse = false;
};

/// An index with its figures (the spec's Index with IndexStats), summed over
/// the shards.
struct index_info {
  index_spec spec;
  /// "building" until every shard indexed its existing documents, then
  /// "ready": only ready indexes serve queries. "failed" if a shard met a
  /// document it cannot index (`error` says which): such an index is not
  /// kept up to date and serves nothing until it is dropped.
  std::string state;
  std::string error;
  /// Documents indexed by the build so far, of `total`.
  uint64_t built = 0;
  uint64_t total = 0;
  uint64_t entries = 0;
  /// Bytes of the entries' keys and values.
  uint64_t size = 0;
  /// Queries the index served, and queries that could not use it.
  uint64_t hits = 0;
  uint64_t misses = 0;
};

} // namespace strata

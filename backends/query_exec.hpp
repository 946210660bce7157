#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/engine.hpp"
#include "backends/query.hpp"
#include "strata/messages/query.hpp"

/// @file
/// Running query patterns over a shard's data (one engine snapshot) and
/// merging the shards' sorted results. Plain C++: the shards and the storage
/// actor call it; it knows nothing of actors.
///
/// A query's results are ordered by its `order_by` values, then by key: a
/// total order, so that a position (the sort values and key of the last
/// result handed out) says exactly where the next page starts, on every
/// shard alike.

namespace strata {

/// Where the next page of a query starts: strictly after the result with
/// these sort values and this key.
struct query_position {
  std::vector<document> sort;
  std::string key;
};

/// One result as a shard finds it.
struct query_hit {
  std::string key;
  /// The stored value, or the encoded projection if the query selects fields.
  bytes value;
  /// The values of the query's `order_by` fields (null where missing).
  std::vector<document> sort;
  /// Relevance (fulltext); 0 otherwise.
  double score = 0;
  /// The shard it came from (set by the merge's caller).
  uint32_t shard = 0;
};

/// What running a query on one shard did, for explain.
struct query_stats {
  /// "scan" or "index NAME".
  std::string plan = "scan";
  /// Rows the plan expected to look at: the index entries in its ranges (up
  /// to the planner's cap), or every stored value for a scan.
  uint64_t estimated = 0;
  /// Stored values looked at.
  uint64_t examined = 0;
  /// Of those, documents that matched.
  uint64_t matched = 0;
};

/// A shard's page: its first `want` results after the position.
struct shard_query_result {
  std::vector<query_hit> hits;
  /// More matches follow the last hit.
  bool more = false;
  query_stats stats;
};

/// Compares two results (or positions) in the query's order: <0, 0 or >0.
int order_results(const query_pattern& q, const std::vector<document>& xs,
                  std::string_view xk, const std::vector<document>& ys,
                  std::string_view yk);

/// The document in a stored value. False for values that are not documents
/// (raw and custom values, protobuf values of a type unknown here, bytes
/// written by another client): queries do not see them. Reads every
/// document format and compression.
bool stored_document(std::string_view value, document& out);

/// Keeps the first `want` results of a query after a position, in the
/// query's order, from the stored values fed to it; memory stays bounded by
/// `want`. Values that are not documents or do not match are skipped.
class query_collector {
public:
  /// `in_order`: values arrive in the query's order (key order for a query
  /// without order_by, an index's order), so feeding stops after `want`.
  query_collector(const query_pattern& q, const std::optional<query_position>& after,
                  size_t want, bool in_order);

  /// Looks at one stored value, with its relevance if the query has a text
  /// condition; false once more values cannot change the result.
  bool feed(std::string_view key, std::string_view value, double score = 0);

  /// The results in the query's order, and the figures.
  shard_query_result finish();

private:
  const query_pattern& q_;
  const std::optional<query_position>& after_;
  size_t want_;
  bool in_order_;
  document doc_;
  shard_query_result r_;
  /// Not in order: a heap whose top is the worst result kept.
  std::vector<query_hit> heap_;
};

/// The first `want` results of `q` after `after` (from the start without
/// one) in the query's order, over the data of one snapshot. Ignores the
/// pattern's offset and limit: the caller asks for what it needs. Without
/// `order_by` the data is read in key order and reading stops after `want`
/// results; with it every document is looked at, keeping the best `want`.
/// query_error for a query with a text condition (it needs a fulltext index).
shard_query_result run_query(const engine_snapshot& snap, const query_pattern& q,
                             const std::optional<query_position>& after, size_t want);

/// How many documents match `q`'s where clause (offset and limit ignored).
uint64_t count_matches(const engine_snapshot& snap, const query_pattern& q);

/// Merges shards' result lists, each in the query's order and each holding
/// that shard's first `want` results, into the first `want` results overall
/// (k-way). `more`: results beyond those exist (`cut`: some shard had more
/// than it sent, or the lists together hold more than `want`).
std::vector<query_hit> merge_results(const query_pattern& q,
                                     std::vector<std::vector<query_hit>>& lists,
                                     bool cut, size_t want, bool& more);

/// A query's continuation as the client holds it: how many results were
/// handed out and the position after the last. Opaque bytes to the client.
struct query_cursor {
  uint64_t delivered = 0;
  std::optional<query_position> position;
};

bytes encode_cursor(const query_cursor& c);

/// query_error if `data` is not a continuation this build wrote.
query_cursor decode_cursor(const bytes& data);

/// What one page of a query asks of the shards.
struct page_request {
  /// The limit is reached: the answer is an empty last page.
  bool exhausted = false;
  /// Results to skip first: the offset, on the first page only.
  uint64_t skip = 0;
  /// Results in this page.
  uint64_t take = 0;
};

/// The page after cursor `c` of at most `page` results (0: the default).
page_request plan_page(const query_pattern& q, const query_cursor& c, uint32_t page);

/// The page from the first `skip + take` results in order (`more`: others
/// follow them), with the continuation after its last result.
query_page make_page(const query_pattern& q, const query_cursor& c, const page_request& p,
                     std::vector<query_hit>& hits, bool more);

/// The sort values, encoded as one document (an array), for the wire.
bytes encode_sort(const std::vector<document>& sort);

/// query_error if `data` is not such an encoding.
std::vector<document> decode_sort(const bytes& data);

} // namespace strata

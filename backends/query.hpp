#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "strata/document.hpp"

namespace re2 {
class RE2;
} // namespace re2

/// @file
/// Query patterns over documents (the specification's QueryPattern): the
/// where clause, ordering, paging and projection, their JSON text form, and
/// their evaluation against one document. Plain C++: shards evaluate
/// patterns below the actors.

namespace strata {

/// A pattern that cannot be evaluated: an unknown operator, an operand of the
/// wrong kind, a regex that does not compile, an empty path. The message names
/// what is wrong and where (`where.conditions[1].operator: ...`). Answered
/// as QUERY_ERROR.
class query_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The one total order of documents, used alike by filters, sorting and index
/// keys: null < booleans < numbers < strings < bytes < arrays < objects.
/// Integers and reals compare by value (1 == 1.0; NaN below every other
/// number); strings and bytes bytewise; arrays element by element, then by
/// length; objects member by member (key, then value), then by size.
/// Returns <0, 0 or >0.
int compare(const document& x, const document& y);

/// A dotted field path, e.g. `author.name` or `tags.0`.
struct field_path {
  std::vector<std::string> steps;

  /// Parses `text`; query_error if it or one of its steps is empty.
  static field_path parse(std::string_view text, std::string_view where);

  std::string str() const;
};

/// Visits the values at `path` in `doc`. An array met on the way is entered
/// element by element (a numeric step may also pick one element), and an
/// array at the end is visited as a whole and then element by element: so
/// an array field matches if any element matches. `f` returns false to stop;
/// returns false if `f` stopped.
bool visit_path(const document& doc, const field_path& path, size_t step,
                const std::function<bool(const document&)>& f);

/// The first value at `path` (arrays whole), or null if there is none.
const document* first_at(const document& doc, const field_path& path);

/// `v` as a 2-D point: an array of two finite numbers `[x, y]`.
std::optional<std::pair<double, double>> point_of(const document& v);

/// The 2-D point at `path` (see point_of).
std::optional<std::pair<double, double>> point_at(const document& doc, const field_path& path);

/// `text`: the strings at the field hold every word of the operand (after
/// the fulltext index's case folding and stemming); queries with one need a
/// fulltext index on the field and are ordered by relevance.
/// `within_box`, `within_radius`: the field is a point `[x, y]` in the box
/// `[[x1, y1], [x2, y2]]` / within `{"center": [x, y], "radius": r}`.
/// `near`: the field is a point; queries with one need a spatial index and are
/// ordered by distance from the operand `[x, y]`, nearest first.
enum class compare_op : uint8_t {
  eq, ne, gt, gte, lt, lte, in, nin, regex, exists, text, within_box, within_radius, near
};

/// "eq", "ne", ...
const char* to_string(compare_op op);

/// A where clause: a condition on one field, a logical combination, or a
/// clause applied to the sub-documents at a field (`nested`).
struct where_clause {
  enum class type : uint8_t { condition, all, any, negate, nested };
  type kind = type::condition;
  field_path path;            // condition, nested
  compare_op op = compare_op::eq;
  document value;             // condition's operand
  std::shared_ptr<const re2::RE2> regex; // op regex, compiled once
  std::vector<std::string> terms;        // op text: the operand's terms, sorted, distinct
  /// Spatial operands: within_box x1 y1 x2 y2 (x1 <= x2, y1 <= y2);
  /// within_radius x y r; near x y.
  std::vector<double> geo;
  std::vector<where_clause> children;    // all, any, negate (one), nested (one)

  /// Whether `doc` satisfies this clause.
  bool matches(const document& doc) const;
};

/// One key of `order_by`.
struct order_key {
  field_path path;
  bool descending = false;
  /// The field `$score`: the result's relevance to the query's text
  /// condition (0 without one).
  bool score = false;
};

/// A query: which documents, in which order, which page, which fields.
struct query_pattern {
  std::optional<where_clause> where;
  std::vector<order_key> order_by;
  /// 0: no limit.
  uint64_t limit = 0;
  uint64_t offset = 0;
  /// Empty: whole documents.
  std::vector<field_path> select;
  /// The index to answer with (empty: the planner picks): a btree or hash
  /// index that is ready and has a condition or the order on its fields,
  /// else QUERY_ERROR. It changes what a query costs, never what it finds.
  std::string hint;

  /// Whether `doc` passes `where` (everything passes without one).
  bool matches(const document& doc) const {
    return !where || where->matches(doc);
  }

  /// Orders two documents by `order_by` (a missing field sorts as null);
  /// <0, 0 or >0.
  int order(const document& x, const document& y) const;

  /// `doc` with only the `select`ed fields (all of it without a selection).
  document project(const document& doc) const;

  /// The text condition (at the top, or in a top-level `and`), if any.
  const where_clause* text() const {
    return ranking(compare_op::text);
  }

  /// The near condition (at the top, or in a top-level `and`), if any.
  const where_clause* near() const {
    return ranking(compare_op::near);
  }

  /// The condition with operator `op` at the top or in a top-level `and`.
  const where_clause* ranking(compare_op op) const;
};

/// Builds a condition; query_error if the operand does not fit the operator
/// (in/nin need an array, exists a boolean, regex a string that compiles).
where_clause make_condition(field_path path, compare_op op, document value,
                            std::string_view where = "where");

/// Parses the JSON text form (docs/queries.md), field names as in the
/// specification:
/// `{"where": {"field": "year", "operator": "lt", "value": 1970},
///   "orderBy": [{"field": "year", "direction": "desc"}], "limit": 10,
///   "offset": 0, "select": ["title"]}`; a where clause is a condition
/// (`field`, `operator`, `value`), a logical clause (`operator` "and", "or"
/// or "not", `conditions`), or a nested one (`field`, `nested`).
/// Throws query_error naming the place of the first problem. A text or near
/// condition must stand at the top or in a top-level `and`, and a query has
/// at most one; without an `orderBy` such a query is ordered by `$score`:
/// relevance descending, distance ascending.
query_pattern parse_query(std::string_view json);

/// The JSON pattern `json` with its hint set to `index`: query_error if it
/// is not a pattern object or hints at another index.
std::string with_hint(std::string_view json, const std::string& index);

/// A JSON value as a document: integers that fit int64 as integers, other
/// numbers as reals. query_error if the text is not JSON.
document parse_json_document(std::string_view json);

} // namespace strata

#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "strata/document.hpp"

/// @file
/// A C++ builder for query patterns that writes their JSON text form
/// (docs/queries.md):
///
/// ```
/// using namespace strata;
/// auto q = pattern{where("author").eq("Herbert") && where("year").lt(1970)}
///            .order_by("year", order::desc)
///            .limit(10);
/// for (auto& r : books.query(q)) ...
/// ```
///
/// Plain C++; the store checks the pattern (QUERY_ERROR naming the place of
/// a problem).
namespace strata {

/// A where clause.
class where_clause_text {
public:
  explicit where_clause_text(std::string json) : json_(std::move(json)) {
    // nop
  }

  /// Both this and `other`.
  where_clause_text and_(const where_clause_text& other) const {
    return logical("and", {*this, other});
  }

  /// This or `other`.
  where_clause_text or_(const where_clause_text& other) const {
    return logical("or", {*this, other});
  }

  /// Not this.
  where_clause_text not_() const {
    return logical("not", {*this});
  }

  friend where_clause_text operator&&(const where_clause_text& x, const where_clause_text& y) {
    return x.and_(y);
  }

  friend where_clause_text operator||(const where_clause_text& x, const where_clause_text& y) {
    return x.or_(y);
  }

  friend where_clause_text operator!(const where_clause_text& x) {
    return x.not_();
  }

  const std::string& json() const {
    return json_;
  }

  static where_clause_text logical(const char* op, std::vector<where_clause_text> xs) {
    std::string out = R"({"operator":")";
    out += op;
    out += R"(","conditions":[)";
    for (size_t i = 0; i < xs.size(); ++i) {
      if (i > 0)
        out += ',';
      out += xs[i].json_;
    }
    out += "]}";
    return where_clause_text{std::move(out)};
  }

private:
  std::string json_;
};

/// A field to put a condition on; see `where`.
class field_condition {
public:
  explicit field_condition(std::string field) : field_(std::move(field)) {
    // nop
  }

  where_clause_text eq(const document& v) const {
    return make("eq", v);
  }
  where_clause_text ne(const document& v) const {
    return make("ne", v);
  }
  where_clause_text gt(const document& v) const {
    return make("gt", v);
  }
  where_clause_text gte(const document& v) const {
    return make("gte", v);
  }
  where_clause_text lt(const document& v) const {
    return make("lt", v);
  }
  where_clause_text lte(const document& v) const {
    return make("lte", v);
  }
  /// The field equals one of `vs`.
  where_clause_text in(std::vector<document> vs) const {
    return make("in", document::array(std::move(vs)));
  }
  /// The field equals none of `vs`.
  where_clause_text nin(std::vector<document> vs) const {
    return make("nin", document::array(std::move(vs)));
  }
  /// The field is a string that RE2 `re` matches (anywhere; anchor with ^ $).
  where_clause_text regex(const std::string& re) const {
    return make("regex", document{re});
  }
  /// The field's text holds every word of `words` (case-folded and stemmed
  /// as a fulltext index does: "Running" finds "runs"). Needs a fulltext
  /// index on the field; results come by relevance (`order_by("$score",
  /// order::desc)`) unless ordered otherwise, each with its `score`.
  where_clause_text text(const std::string& words) const {
    return make("text", document{words});
  }
  /// The field is a point `[x, y]` in the box with corners (x1, y1), (x2, y2).
  where_clause_text within_box(double x1, double y1, double x2, double y2) const {
    return make("within_box",
                document::array({point(x1, y1), point(x2, y2)}));
  }
  /// The field is a point at most `radius` from (x, y).
  where_clause_text within_radius(double x, double y, double radius) const {
    auto v = document::object();
    v.set("center", point(x, y));
    v.set("radius", document::real(radius));
    return make("within_radius", v);
  }
  /// The field is a point; results come nearest to (x, y) first, each with its
  /// distance as `score`. Needs a spatial index on the field.
  where_clause_text near(double x, double y) const {
    return make("near", point(x, y));
  }
  /// The field exists (or, with false, does not).
  where_clause_text exists(bool yes = true) const {
    return make("exists", document::boolean(yes));
  }
  /// `clause` holds for the sub-document at the field (for an array of
  /// sub-documents: for one of them).
  where_clause_text nested(const where_clause_text& clause) const {
    return where_clause_text{"{\"field\":" + to_json(document{field_})
                             + ",\"nested\":" + clause.json() + "}"};
  }

private:
  static document point(double x, double y) {
    return document::array({document::real(x), document::real(y)});
  }
  where_clause_text make(const char* op, const document& v) const {
    return where_clause_text{"{\"field\":" + to_json(document{field_}) + ",\"operator\":\""
                             + op + "\",\"value\":" + to_json(v) + "}"};
  }

  std::string field_;
};

/// Starts a condition on the field at a dotted path (`author`, `tags`,
/// `address.city`).
inline field_condition where(std::string field) {
  return field_condition{std::move(field)};
}

enum class order { asc, desc };

/// A query pattern: where, order, page, projection.
class pattern {
public:
  /// Every document.
  pattern() = default;

  /// The documents that satisfy `w`.
  pattern(const where_clause_text& w) : where_(w.json()) { // implicit: reads naturally
    // nop
  }

  /// Sorts by `field` (after the earlier order_by fields); ties by key.
  pattern& order_by(const std::string& field, order dir = order::asc) {
    order_.emplace_back(field, dir);
    return *this;
  }

  pattern& limit(uint64_t n) {
    limit_ = n;
    return *this;
  }

  pattern& offset(uint64_t n) {
    offset_ = n;
    return *this;
  }

  /// Results hold only these fields.
  pattern& select(std::vector<std::string> fields) {
    select_ = std::move(fields);
    return *this;
  }

  /// Answers with the index `name` rather than the planner's choice.
  pattern& hint(std::string name) {
    hint_ = std::move(name);
    return *this;
  }

  /// The JSON text form.
  std::string json() const {
    std::string out = "{";
    auto sep = [&] {
      if (out.size() > 1)
        out += ',';
    };
    if (!where_.empty()) {
      out += "\"where\":" + where_;
    }
    if (!order_.empty()) {
      sep();
      out += "\"orderBy\":[";
      for (size_t i = 0; i < order_.size(); ++i) {
        if (i > 0)
          out += ',';
        out += "{\"field\":" + to_json(document{order_[i].first}) + ",\"direction\":\""
               + (order_[i].second == order::desc ? "desc" : "asc") + "\"}";
      }
      out += ']';
    }
    if (limit_ > 0) {
      sep();
      out += "\"limit\":" + std::to_string(limit_);
    }
    if (offset_ > 0) {
      sep();
      out += "\"offset\":" + std::to_string(offset_);
    }
    if (!select_.empty()) {
      sep();
      out += "\"select\":[";
      for (size_t i = 0; i < select_.size(); ++i) {
        if (i > 0)
          out += ',';
        out += to_json(document{select_[i]});
      }
      out += ']';
    }
    if (!hint_.empty()) {
      sep();
      out += "\"hint\":" + to_json(document{hint_});
    }
    return out + "}";
  }

private:
  std::string where_;
  std::vector<std::pair<std::string, order>> order_;
  uint64_t limit_ = 0;
  uint64_t offset_ = 0;
  std::vector<std::string> select_;
  std::string hint_;
};

} // namespace strata

// Backend tests of query patterns: the total order, where clauses against a
// brute-force reference over random documents, ordering, projection and the
// JSON text form with its errors. No actors.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/query.hpp"
#include "tests/random_docs.hpp"

using namespace strata;
using strata::test::random_scalar;

namespace {

document obj(std::vector<std::pair<std::string, document>> members) {
  auto d = document::object();
  for (auto& [k, v] : members)
    d.set(k, v);
  return d;
}

document arr(std::vector<document> xs) {
  return document::array(std::move(xs));
}

} // namespace

TEST_CASE("documents have one total order across kinds, numbers by value") {
  auto nan = std::numeric_limits<double>::quiet_NaN();
  // Ascending; equal neighbours are marked by the same group number.
  std::vector<std::pair<int, document>> ordered = {
    {0, document{}},
    {1, document::boolean(false)},
    {2, document::boolean(true)},
    {3, document::real(nan)},
    {4, document::real(-1e300)},
    {5, document::integer(std::numeric_limits<int64_t>::min())},
    {6, document::integer(-1)},
    {7, document::real(-0.5)},
    {8, document::integer(0)},
    {8, document::real(0.0)},
    {9, document::integer(1)},
    {9, document::real(1.0)},
    {10, document::real(1.5)},
    {11, document::integer(9007199254740992)}, // 2^53
    {11, document::real(9007199254740992.0)},
    {12, document::integer(9007199254740993)}, // 2^53 + 1: above the real 2^53
    {13, document::integer(std::numeric_limits<int64_t>::max())},
    {14, document::real(1e300)},
    {15, document::string("")},
    {16, document::string("a")},
    {17, document::string("ab")},
    {18, document::string("b")},
    {19, document::bytes({0})},
    {20, arr({})},
    {21, arr({document::integer(1)})},
    {22, arr({document::integer(1), document::integer(0)})},
    {23, arr({document::integer(2)})},
    {24, document::object()},
    {25, obj({{"a", document::integer(1)}})},
    {26, obj({{"a", document::integer(2)}})},
    {27, obj({{"b", document::integer(0)}})},
  };
  for (auto& [gx, x] : ordered)
    for (auto& [gy, y] : ordered) {
      auto r = compare(x, y);
      INFO(gx << " vs " << gy);
      CHECK((r < 0) == (gx < gy));
      CHECK((r == 0) == (gx == gy));
      CHECK((r > 0) == (gx > gy));
    }
}

namespace {

/// The values a path reaches, written out plainly: objects by member, arrays
/// by element (or by index), an array at the end as itself and its elements.
void reach(const document& d, const std::vector<std::string>& steps, size_t i,
           std::vector<document>& out) {
  if (i == steps.size()) {
    out.push_back(d);
    if (d.is_array())
      for (auto& x : d.as_array())
        out.push_back(x);
    return;
  }
  if (d.is_object()) {
    if (auto m = d.get(steps[i]))
      reach(*m, steps, i + 1, out);
  } else if (d.is_array()) {
    auto& xs = d.as_array();
    if (!steps[i].empty() && std::all_of(steps[i].begin(), steps[i].end(), ::isdigit)) {
      auto k = std::stoul(steps[i]);
      if (k < xs.size())
        reach(xs[k], steps, i + 1, out);
    }
    for (auto& x : xs)
      if (x.is_object())
        reach(x, steps, i, out);
  }
}

bool same_class(const document& x, const document& y) {
  auto num = [](const document& d) { return d.is_int() || d.is_real(); };
  return num(x) ? num(y) : x.kind() == y.kind();
}

/// The reference meaning of one condition.
bool reference(const document& d, const std::vector<std::string>& steps, compare_op op,
               const document& v) {
  std::vector<document> vals;
  reach(d, steps, 0, vals);
  auto any = [&](auto pred) { return std::any_of(vals.begin(), vals.end(), pred); };
  auto eq = [&](const document& x) { return compare(x, v) == 0; };
  auto in = [&](const document& x) {
    return std::any_of(v.as_array().begin(), v.as_array().end(),
                       [&](const document& y) { return compare(x, y) == 0; });
  };
  switch (op) {
    case compare_op::eq:
      return any(eq);
    case compare_op::ne:
      return !any(eq);
    case compare_op::gt:
      return any([&](auto& x) { return same_class(x, v) && compare(x, v) > 0; });
    case compare_op::gte:
      return any([&](auto& x) { return same_class(x, v) && compare(x, v) >= 0; });
    case compare_op::lt:
      return any([&](auto& x) { return same_class(x, v) && compare(x, v) < 0; });
    case compare_op::lte:
      return any([&](auto& x) { return same_class(x, v) && compare(x, v) <= 0; });
    case compare_op::in:
      return any(in);
    case compare_op::nin:
      return !any(in);
    case compare_op::exists:
      return vals.empty() != v.as_bool();
    case compare_op::regex:
      // Patterns in this test are literal prefixes: "^" + text.
      return any([&](auto& x) {
        return x.is_string() && x.as_string().rfind(v.as_string().substr(1), 0) == 0;
      });
    case compare_op::text:
    case compare_op::within_box:
    case compare_op::within_radius:
    case compare_op::near:
      throw std::logic_error{"text and spatial conditions have their references in "
                             "fulltext_test and spatial_test"};
  }
  return false;
}

document random_doc(std::mt19937& rng) {
  auto d = document::object();
  if (rng() % 5)
    d.set("a", random_scalar(rng));
  if (rng() % 3 == 0) {
    document::array_type xs;
    for (auto n = rng() % 4; n > 0; --n)
      xs.push_back(random_scalar(rng));
    d.set("tags", arr(std::move(xs)));
  }
  if (rng() % 2) {
    auto b = obj({{"c", random_scalar(rng)}});
    if (rng() % 2)
      d.set("b", b);
    else
      d.set("b", arr({b, obj({{"c", random_scalar(rng)}})}));
  }
  return d;
}

} // namespace

TEST_CASE("every operator agrees with a brute-force reference over random documents") {
  std::mt19937 rng{5};
  std::vector<document> docs;
  for (int i = 0; i < 300; ++i)
    docs.push_back(random_doc(rng));
  std::vector<std::vector<std::string>> paths = {{"a"}, {"tags"}, {"b", "c"}, {"b", "0", "c"},
                                                 {"missing"}};
  compare_op ops[] = {compare_op::eq,  compare_op::ne, compare_op::gt,  compare_op::gte,
                      compare_op::lt,  compare_op::lte, compare_op::in, compare_op::nin,
                      compare_op::exists, compare_op::regex};
  int matched = 0;
  for (int round = 0; round < 400; ++round) {
    auto& steps = paths[rng() % paths.size()];
    auto op = ops[rng() % std::size(ops)];
    document v;
    if (op == compare_op::in || op == compare_op::nin)
      v = arr({random_scalar(rng), random_scalar(rng)});
    else if (op == compare_op::exists)
      v = document::boolean(rng() % 2 == 0);
    else if (op == compare_op::regex)
      v = document::string(rng() % 2 ? "^be" : "^a");
    else
      v = random_scalar(rng);
    field_path p;
    p.steps = steps;
    auto c = make_condition(p, op, v);
    // The same condition under not, and combined with and/or.
    where_clause negated;
    negated.kind = where_clause::type::negate;
    negated.children.push_back(c);
    for (auto& d : docs) {
      auto want = reference(d, steps, op, v);
      INFO(to_string(op) << " on " << p.str());
      REQUIRE(c.matches(d) == want);
      REQUIRE(negated.matches(d) == !want);
      matched += want ? 1 : 0;
    }
  }
  CHECK(matched > 10000);
  // and / or over two random conditions.
  for (int round = 0; round < 100; ++round) {
    auto v1 = random_scalar(rng);
    auto v2 = random_scalar(rng);
    auto c1 = make_condition(field_path::parse("a", "x"), compare_op::eq, v1);
    auto c2 = make_condition(field_path::parse("b.c", "x"), compare_op::ne, v2);
    where_clause all;
    all.kind = where_clause::type::all;
    all.children = {c1, c2};
    where_clause any = all;
    any.kind = where_clause::type::any;
    for (auto& d : docs) {
      auto r1 = reference(d, {"a"}, compare_op::eq, v1);
      auto r2 = reference(d, {"b", "c"}, compare_op::ne, v2);
      REQUIRE(all.matches(d) == (r1 && r2));
      REQUIRE(any.matches(d) == (r1 || r2));
    }
  }
}

TEST_CASE("a query pattern in JSON filters, orders, pages and projects") {
  auto q = parse_query(R"({
    "where": {"operator": "and", "conditions": [
      {"field": "author", "operator": "eq", "value": "Herbert"},
      {"operator": "not", "conditions": [{"field": "year", "operator": "gte", "value": 1970}]},
      {"field": "meta", "nested": {"field": "lang", "operator": "in", "value": ["en", "de"]}}
    ]},
    "orderBy": [{"field": "year", "direction": "desc"}, {"field": "title"}],
    "limit": 2, "offset": 1, "select": ["title", "meta.lang"]
  })");
  CHECK(q.limit == 2);
  CHECK(q.offset == 1);
  auto book = [](const char* title, const char* author, int64_t year, const char* lang) {
    return parse_json_document(std::string{"{\"title\":\""} + title + "\",\"author\":\"" + author
                               + "\",\"year\":" + std::to_string(year)
                               + ",\"meta\":{\"lang\":\"" + lang + "\",\"pages\":10}}");
  };
  std::vector<document> books = {
    book("Dune", "Herbert", 1965, "en"),         book("Whipping Star", "Herbert", 1970, "en"),
    book("Dune Messiah", "Herbert", 1969, "de"), book("The Dragon", "Herbert", 1956, "fr"),
    book("Under Pressure", "Herbert", 1956, "en"), book("Foundation", "Asimov", 1951, "en"),
  };
  std::vector<document> hits;
  std::copy_if(books.begin(), books.end(), std::back_inserter(hits),
               [&](const document& d) { return q.matches(d); });
  std::stable_sort(hits.begin(), hits.end(),
                   [&](const document& x, const document& y) { return q.order(x, y) < 0; });
  std::vector<std::string> titles;
  for (auto& h : hits)
    titles.push_back(h.get("title")->as_string());
  CHECK(titles == std::vector<std::string>{"Dune Messiah", "Dune", "Under Pressure"});
  auto p = q.project(hits[1]);
  CHECK(p == parse_json_document(R"({"title": "Dune", "meta": {"lang": "en"}})"));
}

TEST_CASE("bad patterns are QUERY_ERROR naming what is wrong and where") {
  auto error_of = [](const std::string& json) -> std::string {
    try {
      parse_query(json);
    } catch (const query_error& e) {
      return e.what();
    }
    return "(parsed)";
  };
  using Catch::Contains;
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "like", "value": 1}})"),
             Contains("where.operator: unknown operator 'like'"));
  CHECK_THAT(error_of(R"({"where": {"operator": "or", "conditions": [
                          {"field": "a", "operator": "eq", "value": 1},
                          {"field": "a", "operator": "in", "value": 1}]}})"),
             Contains("where.conditions[1]: operator in needs an array value, got integer"));
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "exists", "value": "yes"}})"),
             Contains("operator exists needs true or false"));
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "regex", "value": "(unclosed"}})"),
             Contains("operator regex cannot compile '(unclosed'"));
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "regex", "value": 3}})"),
             Contains("operator regex needs a string value"));
  CHECK_THAT(error_of(R"({"where": {"field": "", "operator": "eq", "value": 1}})"),
             Contains("where.field: the field path is empty"));
  CHECK_THAT(error_of(R"({"where": {"field": "a..b", "operator": "eq", "value": 1}})"),
             Contains("has an empty step"));
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "eq"}})"),
             Contains("operator eq needs a value"));
  CHECK_THAT(error_of(R"({"where": {"operator": "not", "conditions": []}})"),
             Contains("operator not takes exactly one condition"));
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "eq", "value": 1, "x": 2}})"),
             Contains("where: unknown member 'x'"));
  CHECK_THAT(error_of(R"({"orderBy": [{"field": "a", "direction": "up"}]})"),
             Contains("orderBy[0].direction: must be asc or desc"));
  CHECK_THAT(error_of(R"({"limit": -1})"), Contains("limit must be a non-negative integer"));
  CHECK_THAT(error_of(R"({"select": ["a", ""]})"), Contains("select[1]"));
  CHECK_THAT(error_of(R"({"wher": {}})"), Contains("unknown member 'wher'"));
  CHECK_THAT(error_of(R"({"where": )"), Contains("not JSON at offset"));
  CHECK_THAT(error_of(R"([1, 2])"), Contains("a query must be a JSON object"));
  // Nesting far beyond any stack: refused, not a crash.
  auto deep = std::string(200000, '[') + std::string(200000, ']');
  CHECK_THAT(error_of(R"({"where": {"field": "a", "operator": "in", "value": )" + deep + "}}"),
             Contains("nested too deeply"));
  std::string open;
  std::string close;
  for (int i = 0; i < 200000; ++i) {
    open += R"({"operator": "not", "conditions": [)";
    close += "]}";
  }
  auto leaf = std::string{R"({"field": "a", "operator": "exists", "value": true})"};
  CHECK_THAT(error_of(R"({"where": )" + open + leaf + close + "}"),
             Contains("nested too deeply"));
  CHECK(error_of(R"({"where": {"field": "a", "operator": "regex", "value": "^x+$"}})")
        == "(parsed)");
}

TEST_CASE("numbers in a query's JSON equal the stored doubles to the last bit") {
  std::mt19937_64 rng{3};
  for (int i = 0; i < 2000; ++i) {
    auto x = std::uniform_real_distribution<double>{-1e6, 1e6}(rng) / 3;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    auto q = parse_query(std::string{R"({"where":{"field":"v","operator":"eq","value":)"} + buf
                         + "}}");
    auto d = document::object();
    d.set("v", document::real(x));
    INFO(buf);
    REQUIRE(q.matches(d));
  }
}

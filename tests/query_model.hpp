#pragma once

// Checks a store's queries against a brute-force reference: random documents
// written through the store, random patterns (every operator, and/or/not,
// order_by, limit, offset, select) read page by page, plus count, find_one,
// find_many and a group-by aggregate. Shared by the in-process tests and the
// ones with shard nodes.

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/aggregate.hpp"
#include "backends/query_exec.hpp"
#include "strata/envelope.hpp"
#include "tests/fixture.hpp"
#include "tests/random_docs.hpp"

namespace strata::test {

inline document model_doc(std::mt19937& rng, int i) {
  auto d = document::object();
  d.set("i", document::integer(i));
  if (rng() % 6)
    d.set("a", random_scalar(rng));
  if (rng() % 3 == 0) {
    document::array_type xs;
    for (auto n = rng() % 4; n > 0; --n)
      xs.push_back(random_scalar(rng));
    d.set("tags", document::array(std::move(xs)));
  }
  if (rng() % 2) {
    auto b = document::object();
    b.set("c", random_scalar(rng));
    d.set("b", b);
  }
  d.set("group", document::string(std::string(1, static_cast<char>('p' + rng() % 4))));
  d.set("n", document::integer(static_cast<int64_t>(rng() % 100)));
  return d;
}

inline std::string model_condition(std::mt19937& rng) {
  static const char* fields[] = {"a", "tags", "b.c", "n", "missing"};
  static const char* ops[] = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "regex",
                              "exists"};
  std::string field = fields[rng() % 5];
  std::string op = ops[rng() % 10];
  document v;
  if (op == "in" || op == "nin")
    v = document::array({random_scalar(rng), random_scalar(rng)});
  else if (op == "exists")
    v = document::boolean(rng() % 2 == 0);
  else if (op == "regex")
    v = document::string(rng() % 2 ? "^be" : "a");
  else if (field == "n")
    v = document::integer(static_cast<int64_t>(rng() % 100));
  else
    v = random_scalar(rng);
  return "{\"field\":\"" + field + "\",\"operator\":\"" + op + "\",\"value\":" + to_json(v)
         + "}";
}

inline std::string model_where(std::mt19937& rng, int depth = 0) {
  auto r = rng() % 6;
  if (depth < 2 && r == 0)
    return "{\"operator\":\"and\",\"conditions\":[" + model_where(rng, depth + 1) + ","
           + model_where(rng, depth + 1) + "]}";
  if (depth < 2 && r == 1)
    return "{\"operator\":\"or\",\"conditions\":[" + model_where(rng, depth + 1) + ","
           + model_where(rng, depth + 1) + "]}";
  if (depth < 2 && r == 2)
    return "{\"operator\":\"not\",\"conditions\":[" + model_where(rng, depth + 1) + "]}";
  return model_condition(rng);
}

inline std::string model_pattern(std::mt19937& rng) {
  std::string out = "{";
  if (rng() % 5)
    out += "\"where\":" + model_where(rng);
  auto sep = [&] {
    if (out.size() > 1)
      out += ",";
  };
  switch (rng() % 4) {
    case 0:
      sep();
      out += R"("orderBy":[{"field":"a"},{"field":"n","direction":"desc"}])";
      break;
    case 1:
      sep();
      out += R"("orderBy":[{"field":"n"}])";
      break;
    case 2:
      sep();
      out += R"("orderBy":[{"field":"b.c","direction":"desc"}])";
      break;
    default:
      break;
  }
  if (rng() % 2) {
    sep();
    out += "\"limit\":" + std::to_string(rng() % 40);
  }
  if (rng() % 3 == 0) {
    sep();
    out += "\"offset\":" + std::to_string(rng() % 30);
  }
  if (rng() % 4 == 0) {
    sep();
    out += R"("select":["n","b.c"])";
  }
  return out + "}";
}

/// The reference: every document checked, sorted, cut, projected.
inline std::vector<std::pair<std::string, bytes>>
model_query(const std::map<std::string, document>& docs, const std::string& text) {
  auto q = parse_query(text);
  std::vector<query_hit> hits;
  for (auto& [k, d] : docs) {
    if (!q.matches(d))
      continue;
    query_hit h;
    h.key = k;
    for (auto& o : q.order_by) {
      auto* v = first_at(d, o.path);
      h.sort.push_back(v ? *v : document{});
    }
    h.value = q.select.empty() ? encode_doc(d) : encode_doc(q.project(d));
    hits.push_back(std::move(h));
  }
  std::sort(hits.begin(), hits.end(), [&](const query_hit& x, const query_hit& y) {
    return order_results(q, x.sort, x.key, y.sort, y.key) < 0;
  });
  std::vector<std::pair<std::string, bytes>> out;
  for (size_t i = q.offset; i < hits.size(); ++i) {
    if (q.limit > 0 && out.size() == q.limit)
      break;
    out.emplace_back(hits[i].key, hits[i].value);
  }
  return out;
}

/// Writes `n` random documents (and a raw value queries must not see) and
/// checks `rounds` random patterns.
template <class Handle>
void check_queries_against_model(fixture& f, const Handle& store, int n, int rounds,
                                 unsigned seed) {
  std::mt19937 rng{seed};
  std::map<std::string, document> docs;
  std::vector<entry> entries;
  for (int i = 0; i < n; ++i) {
    auto d = model_doc(rng, i);
    auto key = "doc" + std::to_string(i);
    entries.push_back({key, encode_doc(d)});
    docs[key] = d;
  }
  entries.push_back({"raw", encode_raw("not a document")});
  REQUIRE_FALSE(f.ask_void(store, atom::set_many_v, entries));
  for (int round = 0; round < rounds; ++round) {
    auto text = model_pattern(rng);
    INFO(text);
    auto want = model_query(docs, text);
    // Every page, with a random page size.
    query_request req;
    req.pattern = text;
    req.limit = 1 + rng() % 25;
    std::vector<std::pair<std::string, bytes>> got;
    for (int pages = 0;; ++pages) {
      REQUIRE(pages < 1000);
      auto page = f.ask<query_page>(store, atom::query_v, req);
      REQUIRE(page);
      REQUIRE(page->results.size() <= req.limit);
      for (auto& r : page->results)
        got.emplace_back(r.key, r.value);
      if (!page->more)
        break;
      REQUIRE_FALSE(page->results.empty());
      req.continuation = page->continuation;
    }
    REQUIRE(got.size() == want.size());
    REQUIRE(got == want);
    auto q = parse_query(text);
    auto counted = f.ask<uint64_t>(store, atom::count_v, text);
    REQUIRE(counted);
    uint64_t matching = 0;
    for (auto& [k, d] : docs)
      matching += q.matches(d) ? 1 : 0;
    REQUIRE(*counted == matching);
    auto one = f.ask<std::vector<query_result>>(store, atom::find_one_v, text);
    REQUIRE(one);
    REQUIRE(one->size() == (want.empty() ? 0u : 1u));
    if (!want.empty())
      REQUIRE(one->front().key == want.front().first);
    auto many = f.ask<std::vector<query_result>>(store, atom::find_many_v, text);
    REQUIRE(many);
    REQUIRE(many->size() == want.size());
  }
  // Group by with every accumulator, against the reference.
  auto pipeline = R"([{"match": {"field": "n", "operator": "lt", "value": 70}},
    {"group": {"by": ["group"], "fields": {"count": {"count": "*"}, "sum": {"sum": "n"},
      "avg": {"avg": "n"}, "min": {"min": "a"}, "max": {"max": "n"}}}},
    {"sort": [{"field": "sum", "direction": "desc"}]}])";
  auto result = f.ask<bytes>(store, atom::aggregate_v, std::string{pipeline});
  REQUIRE(result);
  auto rows = decode_document(*result);
  std::map<std::string, std::vector<document>> groups;
  for (auto& [k, d] : docs)
    if (d.get("n")->as_int() < 70)
      groups[d.get("group")->as_string()].push_back(d);
  REQUIRE(rows.as_array().size() == groups.size());
  int64_t previous = std::numeric_limits<int64_t>::max();
  for (auto& row : rows.as_array()) {
    auto& members = groups.at(row.get("group")->as_string());
    int64_t sum = 0;
    int64_t max = 0;
    const document* min = nullptr;
    for (auto& d : members) {
      sum += d.get("n")->as_int();
      max = std::max(max, d.get("n")->as_int());
      if (auto* a = d.get("a"); a && !a->is_null() && (!min || compare(*a, *min) < 0))
        min = a;
    }
    CHECK(row.get("count")->as_int() == static_cast<int64_t>(members.size()));
    CHECK(row.get("sum")->as_int() == sum);
    CHECK(row.get("avg")->as_real()
          == Approx(static_cast<double>(sum) / static_cast<double>(members.size())));
    CHECK(row.get("max")->as_int() == max);
    CHECK(compare(*row.get("min"), min ? *min : document{}) == 0);
    CHECK(sum <= previous);
    previous = sum;
  }
}

} // namespace strata::test

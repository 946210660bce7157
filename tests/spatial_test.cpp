// Spatial indexes: boxes, radii and the k nearest through the index against
// brute force over random points (with writes between build steps, deletes,
// documents without points, reopens), on both engines; paging through the
// nearest; bounds and bad operands. No actors: query_store_test covers the
// store.

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/indexes.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_core.hpp"
#include "strata/envelope.hpp"
#include "strata/pattern.hpp"
#include "tests/shard_helpers.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;

namespace {

bytes place(double x, double y) {
  auto d = document::object();
  d.set("at", document::array({document::real(x), document::real(y)}));
  return encode_doc(d);
}

index_spec spatial(const std::string& name) {
  index_spec s;
  s.name = name;
  s.fields = {{"at", "spatial", false}};
  return s;
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// Every result of `q`, page by page, and the plan of the first page.
std::vector<query_hit> all_pages(shard_core& core, const std::string& json, size_t page,
                                 std::string* plan = nullptr) {
  auto q = parse_query(json);
  std::vector<query_hit> out;
  std::optional<query_position> after;
  for (;;) {
    shard_query_result r;
    core.with_snapshot(
      [&](const engine_snapshot& snap) { r = core.indexes()->run(snap, q, after, page); });
    if (plan && out.empty())
      *plan = r.stats.plan;
    for (auto& h : r.hits)
      out.push_back(h);
    if (!r.more || r.hits.empty())
      return out;
    after = query_position{r.hits.back().sort, r.hits.back().key};
  }
}

} // namespace

TEST_CASE("boxes, radii and the nearest through a spatial index equal brute force") {
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    INFO("engine " << (kind == engine_kind::lmdb ? "lmdb" : "memory"));
    std::mt19937 rng{kind == engine_kind::lmdb ? 5u : 6u};
    test::temp_dir dir;
    auto o = test::core_options(dir.path(), kind);
    std::map<std::string, std::pair<double, double>> model;
    auto coord = [&] {
      // Integers now and then: equal distances, ties broken by key.
      return rng() % 3 == 0 ? static_cast<double>(static_cast<int>(rng() % 41) - 20)
                            : std::uniform_real_distribution<double>{-180, 180}(rng);
    };
    auto random_writes = [&](shard_core& core, int n) {
      for (int i = 0; i < n; ++i) {
        auto key = "p" + std::to_string(rng() % 400);
        auto r = rng() % 10;
        if (r == 0) {
          test::write_ok(core, {operation::del(key)});
          model.erase(key);
        } else if (r == 1) {
          auto d = document::object();
          d.set("at", rng() % 2 ? document{"nowhere"} : document::array({document::integer(1)}));
          test::write_ok(core, {operation::set(key, encode_doc(d))}); // not a point: not indexed
          model.erase(key);
        } else {
          auto x = coord();
          auto y = coord();
          test::write_ok(core, {operation::set(key, place(x, y))});
          model[key] = {x, y};
        }
      }
    };
    auto check = [&](shard_core& core) {
      for (int round = 0; round < 25; ++round) {
        // A box.
        auto x1 = coord(), x2 = coord(), y1 = coord(), y2 = coord();
        std::vector<std::string> expected;
        for (auto& [k, p] : model)
          if (p.first >= std::min(x1, x2) && p.first <= std::max(x1, x2)
              && p.second >= std::min(y1, y2) && p.second <= std::max(y1, y2))
            expected.push_back(k);
        std::string plan;
        auto got = all_pages(core,
                             R"({"where":{"field":"at","operator":"within_box","value":[[)" + num(x1)
                               + "," + num(y1) + "],[" + num(x2) + "," + num(y2) + "]]}}",
                             1 + rng() % 9, &plan);
        CHECK(plan == "index at_idx (box)");
        std::vector<std::string> keys;
        for (auto& h : got)
          keys.push_back(h.key);
        CHECK(keys == expected); // key order without orderBy
        // A radius.
        auto cx = coord(), cy = coord();
        auto radius = std::uniform_real_distribution<double>{0, 120}(rng);
        expected.clear();
        for (auto& [k, p] : model)
          if (std::hypot(p.first - cx, p.second - cy) <= radius)
            expected.push_back(k);
        got = all_pages(core,
                        R"({"where":{"field":"at","operator":"within_radius","value":{"center":[)"
                          + num(cx) + "," + num(cy) + "],\"radius\":" + num(radius) + "}}}",
                        50);
        keys.clear();
        for (auto& h : got)
          keys.push_back(h.key);
        CHECK(keys == expected);
        // The nearest, page by page.
        std::vector<std::pair<double, std::string>> near;
        for (auto& [k, p] : model)
          near.emplace_back(std::hypot(p.first - cx, p.second - cy), k);
        std::sort(near.begin(), near.end());
        auto k = 1 + rng() % 30;
        got = all_pages(core,
                        R"({"where":{"field":"at","operator":"near","value":[)" + num(cx) + ","
                          + num(cy) + "]},\"limit\":" + std::to_string(k) + "}",
                        1 + rng() % 7, &plan);
        CHECK(plan == "index at_idx (near)");
        // The shard answers pages beyond the limit (the store cuts them):
        // everything, nearest first.
        REQUIRE(got.size() == near.size());
        for (size_t i = 0; i < got.size(); ++i) {
          CHECK(got[i].key == near[i].second);
          CHECK(got[i].score == near[i].first);
        }
      }
      core.with_snapshot([&](const engine_snapshot& snap) {
        auto q = parse_query(R"({"where":{"field":"at","operator":"within_box","value":[[-180,-180],[180,180]]}})");
        CHECK(core.indexes()->count(snap, q) == model.size());
      });
    };
    {
      shard_core core{o};
      open_indexes(core);
      random_writes(core, 300);
      core.indexes()->create(spatial("at_idx"));
      while (core.indexes()->step(25))
        random_writes(core, 5);
      check(core);
      random_writes(core, 300);
      check(core);
    }
    shard_core core{o};
    open_indexes(core);
    check(core);
  }
}

TEST_CASE("spatial bounds and bad operands are refused clearly") {
  test::temp_dir dir;
  shard_core core{test::core_options(dir.path(), engine_kind::lmdb)};
  open_indexes(core);
  test::write_ok(core, {operation::set("far", place(10, 200))}); // outside, before any index
  auto& ix = *core.indexes();
  // near needs the index; a box filters without one.
  CHECK_THROWS_WITH(all_pages(core, R"({"where":{"field":"at","operator":"near","value":[0,0]}})", 5),
                    Catch::Contains("needs a ready spatial index"));
  CHECK(all_pages(core, R"({"where":{"field":"at","operator":"within_box","value":[[0,190],[20,210]]}})", 5)
          .size()
        == 1);
  ix.create(spatial("at_idx"));
  while (ix.step(10)) {
  }
  auto list = ix.list();
  CHECK(list.at(0).state == "failed");
  CHECK_THAT(list.at(0).error, Catch::Contains("outside [-180, 180]"));
  ix.drop("at_idx");
  while (ix.step(10)) {
  }
  test::write_ok(core, {operation::del("far")});
  ix.create(spatial("at_idx"));
  while (ix.step(10)) {
  }
  CHECK(ix.list().at(0).state == "ready");
  // A write of a point outside the bounds changes nothing.
  std::vector<operation> ops{operation::set("out", place(-181, 0))};
  write_group g{&ops};
  auto out = core.write(g).at(0);
  CHECK(out.code == errc::invalid_value);
  CHECK_THAT(out.message, Catch::Contains("at_idx"));
  CHECK_FALSE(core.has("out"));
  auto refused = [](const std::string& value, const std::string& op, const std::string& part) {
    try {
      parse_query(R"({"where":{"field":"at","operator":")" + op + "\",\"value\":" + value + "}}");
      FAIL("accepted " << op << " " << value);
    } catch (const query_error& e) {
      CHECK_THAT(e.what(), Catch::Contains(part));
    }
  };
  refused("[1]", "near", "a point as [x, y]");
  refused("[1, \"a\"]", "near", "two finite numbers");
  refused("[[0, 0]]", "within_box", "[[x1, y1], [x2, y2]]");
  refused(R"({"center": [0, 0]})", "within_radius", "\"radius\": r");
  refused(R"({"center": [0, 0], "radius": -1})", "within_radius", "radius of 0 or more");
  refused(R"({"radius": 3})", "within_radius", "a center");
  index_spec two = spatial("two");
  two.fields.push_back({"b", "spatial", false});
  CHECK_THROWS_WITH(ix.create(two), Catch::Contains("one field"));
}

TEST_CASE("the pattern builder writes spatial conditions the parser reads") {
  auto q = parse_query(pattern{where("at").near(1.5, -2)}.limit(3).json());
  REQUIRE(q.near());
  CHECK(q.near()->geo == std::vector<double>{1.5, -2});
  CHECK(q.order_by.at(0).score);
  CHECK_FALSE(q.order_by.at(0).descending);
  q = parse_query(pattern{where("at").within_box(3, 4, 1, 2)}.json());
  CHECK(q.where->geo == std::vector<double>{1, 2, 3, 4});
  q = parse_query(pattern{where("at").within_radius(0.25, 0, 7)}.json());
  CHECK(q.where->geo == std::vector<double>{0.25, 0, 7});
}

// Fulltext indexes: words, stemming and BM25 on a small corpus worked out by
// hand; random texts, queries and writes (with a build over existing data
// and reopens) checked against a reference that knows each word's stem and
// computes BM25 itself; both engines. No actors: query_store_test and
// client_test cover the store.

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backends/indexes.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_core.hpp"
#include "backends/text.hpp"
#include "strata/envelope.hpp"
#include "tests/shard_helpers.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;

namespace {

bytes text_doc(const std::string& body) {
  auto d = document::object();
  d.set("body", document{body});
  return encode_doc(d);
}

index_spec fulltext(const std::string& name, const std::string& field) {
  index_spec s;
  s.name = name;
  s.fields = {{field, "fulltext", false}};
  return s;
}

void build_all(index_set& ix) {
  while (ix.step(100)) {
  }
}

std::string search_json(const std::string& words, const std::string& extra = "") {
  return R"({"where":{"field":"body","operator":"text","value":")" + words + "\"}" + extra
         + "}";
}

/// Every result of `q`, page by page through continuations of `page`.
std::vector<query_hit> all_pages(shard_core& core, const query_pattern& q, size_t page) {
  std::vector<query_hit> out;
  std::optional<query_position> after;
  for (;;) {
    shard_query_result r;
    core.with_snapshot(
      [&](const engine_snapshot& snap) { r = core.indexes()->run(snap, q, after, page); });
    for (auto& h : r.hits)
      out.push_back(h);
    if (!r.more || r.hits.empty())
      return out;
    after = query_position{r.hits.back().sort, r.hits.back().key};
  }
}

double bm25(double tf, double len, double avg, double n, double df) {
  auto idf = std::log(1 + (n - df + 0.5) / (df + 0.5));
  return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / avg));
}

} // namespace

TEST_CASE("words are cut, case-folded and stemmed") {
  using v = std::vector<std::string>;
  CHECK(text::terms("Running runs RUN!") == v{"run", "run", "run"});
  CHECK(text::terms("Hello, world... (again)") == v{"hello", "world", "again"});
  CHECK(text::terms("foxes' den: 42 x2") == v{"fox", "den", "42", "x2"});
  CHECK(text::terms("  \t--  ").empty());
  CHECK(text::terms(std::string(65, 'a') + " ok") == v{"ok"}); // longer than a word
  CHECK(text::terms("Zürich") == v{"zürich"});                 // UTF-8 stays in the word
}

TEST_CASE("a known corpus ranks by BM25") {
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    test::temp_dir dir;
    shard_core core{test::core_options(dir.path(), kind)};
    open_indexes(core);
    test::write_ok(core, {operation::set("d1", text_doc("The quick brown fox jumps over the lazy dog")),
                 operation::set("d2", text_doc("quick quick quick fox")),
                 operation::set("d3", text_doc("a slow brown dog")),
                 operation::set("d4", text_doc("Foxes are quick and clever; the fox runs")),
                 operation::set("d5", encode_doc(document::object()))});
    core.indexes()->create(fulltext("body_text", "body"));
    build_all(*core.indexes());
    auto hits = all_pages(core, parse_query(search_json("Quick FOX")), 10);
    // 4 documents with text, 25 words: avgdl 6.25. "quick" and "fox" are in
    // d1 (9 words, 1 and 1), d2 (4 words, 3 and 1), d4 (8 words, 1 and 2).
    auto s = [](double tq, double tf, double len) {
      return bm25(tq, len, 6.25, 4, 3) + bm25(tf, len, 6.25, 4, 3);
    };
    REQUIRE(hits.size() == 3);
    CHECK(hits[0].key == "d2");
    CHECK(hits[1].key == "d4");
    CHECK(hits[2].key == "d1");
    CHECK(hits[0].score == Approx(s(3, 1, 4)).epsilon(1e-9));
    CHECK(hits[1].score == Approx(s(1, 2, 8)).epsilon(1e-9));
    CHECK(hits[2].score == Approx(s(1, 1, 9)).epsilon(1e-9));
    // Other conditions and orders apply; a word nobody wrote finds nothing.
    auto dogs = all_pages(core, parse_query(R"({"where":{"operator":"and","conditions":[)"
                                            R"({"field":"body","operator":"text","value":"dog"},)"
                                            R"({"field":"body","operator":"regex","value":"slow"}]}})"),
                          10);
    REQUIRE(dogs.size() == 1);
    CHECK(dogs[0].key == "d3");
    auto by_key = all_pages(
      core, parse_query(search_json("fox", R"(,"orderBy":[{"field":"$score","direction":"asc"}])")),
      10);
    REQUIRE(by_key.size() == 3);
    CHECK(by_key[0].key == "d1"); // the lowest score first
    CHECK(all_pages(core, parse_query(search_json("quick zebra")), 10).empty());
    core.with_snapshot([&](const engine_snapshot& snap) {
      CHECK(core.indexes()->count(snap, parse_query(search_json("brown dog"))) == 2);
    });
  }
}

TEST_CASE("text queries refuse what they cannot do, with QUERY_ERROR's message") {
  auto refused = [](const std::string& json, const std::string& part) {
    try {
      parse_query(json);
      FAIL("accepted " << json);
    } catch (const query_error& e) {
      CHECK_THAT(e.what(), Catch::Contains(part));
    }
  };
  refused(search_json("!!! ..."), "no words");
  refused(R"({"where":{"field":"body","operator":"text","value":3}})", "needs a string");
  refused(R"({"where":{"operator":"or","conditions":[)"
          R"({"field":"body","operator":"text","value":"a"},{"field":"n","operator":"eq","value":1}]}})",
          "where.conditions[0]: a text condition");
  refused(R"({"where":{"operator":"and","conditions":[)"
          R"({"field":"body","operator":"text","value":"a"},{"field":"t","operator":"text","value":"b"}]}})",
          "one text or near condition");
  test::temp_dir dir;
  shard_core core{test::core_options(dir.path(), engine_kind::lmdb)};
  open_indexes(core);
  test::write_ok(core, {operation::set("k", text_doc("words"))});
  auto q = parse_query(search_json("words"));
  auto run = [&] {
    core.with_snapshot([&](const engine_snapshot& snap) { core.indexes()->run(snap, q, {}, 10); });
  };
  CHECK_THROWS_WITH(run(), Catch::Contains("needs a ready fulltext index"));
  core.indexes()->create(fulltext("t", "body"));
  CHECK_THROWS_WITH(run(), Catch::Contains("index t is building"));
  build_all(*core.indexes());
  CHECK_NOTHROW(run());
  index_spec two = fulltext("two", "a");
  two.fields.push_back({"b", "fulltext", false});
  CHECK_THROWS_WITH(core.indexes()->create(two), Catch::Contains("one field"));
}

TEST_CASE("fulltext results and scores follow random writes, builds and reopens") {
  // Each vocabulary word with its stem, as the reference knows them.
  const std::vector<std::pair<std::string, std::string>> vocab{
    {"run", "run"},       {"running", "run"},   {"runs", "run"},     {"cat", "cat"},
    {"cats", "cat"},      {"Dog", "dog"},       {"dogs", "dog"},     {"house", "hous"},
    {"houses", "hous"},   {"green", "green"},   {"tree", "tree"},    {"trees", "tree"},
    {"jumped", "jump"},   {"jumping", "jump"},  {"blue", "blue"},    {"sky", "sky"},
    {"river", "river"},   {"rivers", "river"},  {"stone", "stone"},  {"light", "light"}};
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    INFO("engine " << (kind == engine_kind::lmdb ? "lmdb" : "memory"));
    std::mt19937 rng{kind == engine_kind::lmdb ? 11u : 12u};
    test::temp_dir dir;
    auto o = test::core_options(dir.path(), kind);
    // The reference: each document's stems.
    std::map<std::string, std::vector<std::string>> model;
    auto random_text = [&](std::vector<std::string>& stems) {
      std::string body;
      for (auto n = 1 + rng() % 12; n > 0; --n) {
        auto& [word, stem] = vocab[rng() % vocab.size()];
        body += (body.empty() ? "" : (rng() % 4 == 0 ? ", " : " ")) + word;
        stems.push_back(stem);
      }
      return body;
    };
    auto random_writes = [&](shard_core& core, int n) {
      for (int i = 0; i < n; ++i) {
        auto key = "k" + std::to_string(rng() % 150);
        auto r = rng() % 10;
        if (r == 0) {
          test::write_ok(core, {operation::del(key)});
          model.erase(key);
        } else if (r == 1) {
          test::write_ok(core, {operation::set(key, encode_doc(document::object()))}); // no text
          model.erase(key);
        } else {
          std::vector<std::string> stems;
          auto body = random_text(stems);
          test::write_ok(core, {operation::set(key, text_doc(body))});
          model[key] = stems;
        }
      }
    };
    auto check = [&](shard_core& core) {
      double words = 0;
      for (auto& [k, stems] : model)
        words += static_cast<double>(stems.size());
      auto n = static_cast<double>(model.size());
      for (int round = 0; round < 30; ++round) {
        std::set<std::string> terms;
        std::string words_text;
        for (auto k = 1 + rng() % 3; k > 0; --k) {
          auto& [word, stem] = vocab[rng() % vocab.size()];
          words_text += word + " ";
          terms.insert(stem);
        }
        // Reference: documents with every stem, scored by BM25.
        std::map<std::string, double> df;
        for (auto& t : terms)
          for (auto& [k, stems] : model)
            if (std::count(stems.begin(), stems.end(), t) > 0)
              ++df[t];
        std::vector<std::pair<double, std::string>> expected;
        for (auto& [k, stems] : model) {
          double score = 0;
          bool all = true;
          for (auto& t : terms) {
            auto tf = std::count(stems.begin(), stems.end(), t);
            all = all && tf > 0;
            score += bm25(static_cast<double>(tf), static_cast<double>(stems.size()), words / n, n,
                          df[t]);
          }
          if (all)
            expected.emplace_back(-score, k);
        }
        std::sort(expected.begin(), expected.end());
        auto q = parse_query(search_json(words_text));
        auto got = all_pages(core, q, 1 + rng() % 7);
        INFO("query: " << words_text);
        REQUIRE(got.size() == expected.size());
        for (size_t i = 0; i < got.size(); ++i) {
          CHECK(got[i].score == Approx(-expected[i].first).epsilon(1e-9));
          // Equal scores (up to rounding) may come in either order.
          if (i == 0 || std::abs(expected[i].first - expected[i - 1].first) > 1e-9)
            if (i + 1 == got.size() || std::abs(expected[i].first - expected[i + 1].first) > 1e-9)
              CHECK(got[i].key == expected[i].second);
        }
        core.with_snapshot([&](const engine_snapshot& snap) {
          CHECK(core.indexes()->count(snap, q) == expected.size());
        });
      }
    };
    {
      shard_core core{o};
      open_indexes(core);
      random_writes(core, 200);
      core.indexes()->create(fulltext("t", "body"));
      // Writes between build steps.
      while (core.indexes()->step(20))
        random_writes(core, 5);
      check(core);
      random_writes(core, 300);
      check(core);
    }
    shard_core core{o};
    open_indexes(core);
    INFO("reopened");
    check(core); // statistics rebuilt from the entries
    random_writes(core, 100);
    std::vector<operation> clear{operation::clear()};
    test::write_ok(core, clear);
    model.clear();
    random_writes(core, 100);
    check(core);
  }
}

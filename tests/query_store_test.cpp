// Queries and indexes through the storage actor: random patterns against a
// brute-force reference with 1 and 4 shards, with and without every index
// kind; index builds while writers run; explain; bad patterns and index
// definitions; the typed client's builder and lazy range. Real LMDB in temp
// dirs.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "strata/client.hpp"
#include "tests/fixture.hpp"
#include "tests/query_model.hpp"

using namespace strata;
using strata::test::fixture;

namespace {

index_spec make_index(std::string name, std::vector<index_field> fields, bool sparse = false) {
  index_spec s;
  s.name = std::move(name);
  s.fields = std::move(fields);
  s.sparse = sparse;
  return s;
}

void create_all_kinds(fixture& f, const observable_storage_actor& store) {
  for (auto& s : {make_index("by_a", {{"a", "btree", false}}),
                  make_index("n_desc", {{"n", "btree", true}}),
                  make_index("a_hash", {{"a", "hash", false}}),
                  make_index("a_n", {{"a", "btree", false}, {"n", "btree", true}}),
                  make_index("tags", {{"tags", "btree", false}}),
                  make_index("bc", {{"b.c", "btree", false}}, true)})
    REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, s));
}

} // namespace

TEST_CASE("queries agree with a brute-force reference, with and without indexes") {
  for (uint32_t shards : {1u, 4u}) {
    for (bool indexed : {false, true}) {
      DYNAMIC_SECTION(shards << " shard(s)" << (indexed ? ", every index kind" : "")) {
        fixture f;
        auto store = f.open(f.options(shards));
        if (indexed)
          create_all_kinds(f, store);
        test::check_queries_against_model(f, store, 500, 120, 7 + shards);
        if (indexed) {
          REQUIRE(f.indexes_ready(store));
          auto list = f.ask<std::vector<index_info>>(store, atom::indexes_v);
          REQUIRE(list);
          REQUIRE(list->size() == 6);
          uint64_t hits = 0;
          for (auto& x : *list) {
            hits += x.hits;
            CHECK(x.total == 501);
            CHECK(x.built == 501);
          }
          CHECK(hits > 0);
        }
      }
    }
  }
}

TEST_CASE("an index built while writers run matches the data, and explain shows it") {
  fixture f;
  auto store = f.open(f.options(4));
  std::vector<entry> entries;
  for (int i = 0; i < 20000; ++i) {
    auto d = document::object();
    d.set("n", document::integer(i % 1000));
    d.set("w", document::string("writer0"));
    entries.push_back({"k" + std::to_string(i), encode_doc(d)});
  }
  REQUIRE_FALSE(f.ask_void(store, atom::set_many_v, entries));
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer{[&] {
    caf::scoped_actor self{f.sys()};
    for (int i = 0; !stop; ++i) {
      auto d = document::object();
      d.set("n", document::integer(i % 1000));
      d.set("w", document::string("writer1"));
      caf::error err;
      self->request(store, caf::infinite, atom::set_v, "k" + std::to_string(i % 30000),
                    encode_doc(d))
        .receive([] {}, [&](caf::error& e) { err = e; });
      if (err)
        break;
      if (i % 7 == 0)
        self->request(store, caf::infinite, atom::del_v, "k" + std::to_string((i * 13) % 30000))
          .receive([](bool) {}, [&](caf::error& e) { err = e; });
      ++written;
    }
  }};
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("n", {{"n", "btree", false}})));
  // While it builds, queries are answered by scanning.
  auto plan = f.ask<query_plan>(store, atom::explain_v,
                                std::string{R"({"where":{"field":"n","operator":"eq","value":5}})"});
  REQUIRE(plan);
  REQUIRE(f.indexes_ready(store));
  // Writes went on during the build; a few more after it, then stop.
  auto seen = written.load();
  while (written < seen + 50)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  stop = true;
  writer.join();
  // Every value of n: the indexed answer equals the scanned one.
  for (int n = 0; n < 1000; n += 37) {
    auto text = R"({"where":{"operator":"and","conditions":[{"field":"n","operator":"eq","value":)"
                + std::to_string(n)
                + R"(},{"field":"w","operator":"regex","value":"writer"}]}})";
    auto indexed = f.ask<std::vector<query_result>>(store, atom::find_many_v, text);
    // The same predicate in a form no index serves.
    auto scan_text = R"({"where":{"operator":"not","conditions":[{"operator":"or","conditions":[{"field":"n","operator":"lt","value":)"
                     + std::to_string(n) + R"(},{"field":"n","operator":"gt","value":)"
                     + std::to_string(n) + R"(}]}]}})";
    auto scanned = f.ask<std::vector<query_result>>(store, atom::find_many_v, scan_text);
    REQUIRE(indexed);
    REQUIRE(scanned);
    std::vector<std::string> a, b;
    for (auto& r : *indexed)
      a.push_back(r.key);
    for (auto& r : *scanned)
      b.push_back(r.key);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    REQUIRE(a == b);
  }
  plan = f.ask<query_plan>(store, atom::explain_v,
                           std::string{R"({"where":{"field":"n","operator":"eq","value":5}})"});
  REQUIRE(plan);
  REQUIRE(plan->shards.size() == 4);
  uint64_t examined = 0;
  for (auto& s : plan->shards) {
    CHECK(s.plan == "index n (eq on 1 field)");
    examined += s.examined;
  }
  CHECK(examined < 100);
  CHECK(plan->returned == examined);
  // Dropped: the next query scans.
  REQUIRE_FALSE(f.ask_void(store, atom::drop_index_v, std::string{"n"}));
  plan = f.ask<query_plan>(store, atom::explain_v,
                           std::string{R"({"where":{"field":"n","operator":"eq","value":5}})"});
  REQUIRE(plan);
  for (auto& s : plan->shards)
    CHECK(s.plan == "scan");
  auto err = f.ask_void(store, atom::drop_index_v, std::string{"n"});
  CHECK(code_of(err) == errc::key_not_found);
}

TEST_CASE("indexes survive a restart of the store") {
  fixture f;
  auto o = f.options(2);
  auto store = f.open(o);
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("n", {{"n", "btree", false}})));
  std::vector<entry> entries;
  for (int i = 0; i < 100; ++i) {
    auto d = document::object();
    d.set("n", document::integer(i));
    entries.push_back({"k" + std::to_string(i), encode_doc(d)});
  }
  REQUIRE_FALSE(f.ask_void(store, atom::set_many_v, entries));
  REQUIRE(f.indexes_ready(store));
  f.close();
  store = f.open(o);
  auto list = f.ask<std::vector<index_info>>(store, atom::indexes_v);
  REQUIRE(list);
  REQUIRE(list->size() == 1);
  CHECK(list->front().entries == 100);
  auto text = std::string{R"({"where":{"field":"n","operator":"gte","value":90},"orderBy":[{"field":"n"}]})"};
  auto found = f.ask<std::vector<query_result>>(store, atom::find_many_v, text);
  REQUIRE(found);
  REQUIRE(found->size() == 10);
  CHECK(found->front().key == "k90");
}

TEST_CASE("bad patterns, pipelines and index definitions answer QUERY_ERROR") {
  fixture f;
  auto store = f.open(f.options(2));
  auto expect = [&](caf::error err, errc code, const std::string& part) {
    INFO(render(err));
    CHECK(code_of(err) == code);
    CHECK_THAT(render(err), Catch::Contains(part));
  };
  auto ask_count = [&](const std::string& text) {
    auto r = f.ask<uint64_t>(store, atom::count_v, text);
    return r ? caf::error{} : r.error();
  };
  expect(ask_count("{"), errc::query_error, "not JSON");
  expect(ask_count(R"({"where":{"field":"a","operator":"like","value":1}})"), errc::query_error,
         "unknown operator 'like'");
  expect(ask_count(R"({"where":{"field":"a","operator":"in","value":1}})"), errc::query_error,
         "where");
  expect(ask_count(R"({"where":{"field":"a","operator":"regex","value":"(("}})"),
         errc::query_error, "regex");
  expect(ask_count(R"({"where":{"field":"","operator":"eq","value":1}})"), errc::query_error,
         "where.field");
  query_request req;
  req.pattern = "{}";
  req.continuation = {1, 2, 3};
  auto page = f.ask<query_page>(store, atom::query_v, req);
  REQUIRE_FALSE(page);
  expect(page.error(), errc::query_error, "continuation");
  auto agg = f.ask<bytes>(store, atom::aggregate_v, std::string{R"([{"bogus": 1}])"});
  REQUIRE_FALSE(agg);
  expect(agg.error(), errc::query_error, "unknown stage 'bogus'");
  agg = f.ask<bytes>(store, atom::aggregate_v,
                     std::string{R"([{"group": {"by": ["a"], "fields": {"x": {"median": "a"}}}}])"});
  REQUIRE_FALSE(agg);
  expect(agg.error(), errc::query_error, "unknown accumulator 'median'");
  expect(f.ask_void(store, atom::create_index_v, make_index("bad name", {{"a", "btree", false}})),
         errc::query_error, "index name");
  expect(f.ask_void(store, atom::create_index_v, make_index("x", {{"a", "rtree", false}})),
         errc::query_error, "unknown index type 'rtree'");
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("x", {{"a", "btree", false}})));
  expect(f.ask_void(store, atom::create_index_v, make_index("x", {{"b", "btree", false}})),
         errc::duplicate_key, "another definition");
  // A document whose indexed value is too long is refused, nothing stored.
  auto d = document::object();
  d.set("a", document::string(std::string(600, 'y')));
  REQUIRE(f.indexes_ready(store));
  auto err = f.ask_void(store, atom::set_v, std::string{"long"}, encode_doc(d));
  expect(err, errc::invalid_value, "index x");
  auto has = f.ask<bool>(store, atom::has_v, std::string{"long"});
  REQUIRE(has);
  CHECK_FALSE(*has);
  // Stored before an index on its field exists, the same document fails that
  // index's build: the store reports the index failed, naming the document.
  d.set("b", document::string(std::string(600, 'z')));
  d.set("a", document::integer(1));
  REQUIRE_FALSE(f.ask_void(store, atom::set_v, std::string{"long_b"}, encode_doc(d)));
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("y", {{"b", "btree", false}})));
  std::optional<index_info> y;
  for (int i = 0; i < 500 && !(y && y->state == "failed"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
    auto list = f.ask<std::vector<index_info>>(store, atom::indexes_v);
    REQUIRE(list);
    REQUIRE(list->size() == 2);
    y = list->back();
  }
  REQUIRE(y->state == "failed");
  CHECK_THAT(y->error, Catch::Contains("long_b"));
  expect(f.ask_void(store, atom::create_index_v, make_index("y", {{"b", "btree", false}})),
         errc::duplicate_key, "drop it");
  REQUIRE_FALSE(f.ask_void(store, atom::drop_index_v, std::string{"y"}));
}

namespace {

struct book {
  std::string title;
  std::string author;
  int64_t year = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(title), CEREAL_NVP(author), CEREAL_NVP(year));
  }
};

} // namespace

TEST_CASE("the typed client queries with a builder and a lazy range") {
  fixture f;
  auto handle = f.open(f.options(3));
  blocking_store<book> books{f.sys(), handle};
  std::vector<book> all = {{"Dune", "Herbert", 1965},
                           {"Dune Messiah", "Herbert", 1969},
                           {"Children of Dune", "Herbert", 1976},
                           {"Solaris", "Lem", 1961},
                           {"The Invincible", "Lem", 1964},
                           {"Foundation", "Asimov", 1951}};
  for (size_t i = 0; i < all.size(); ++i)
    REQUIRE_FALSE(books.set("book" + std::to_string(i), all[i]));
  REQUIRE_FALSE(books.create_index({"by_author", {{"author", "hash", false}}, false, false}));
  auto herbert_before_1970 = pattern{where("author").eq("Herbert") && where("year").lt(1970)}
                               .order_by("year", order::desc);
  std::vector<std::string> titles;
  for (auto& r : books.query(herbert_before_1970))
    titles.push_back(r.value.title);
  CHECK(titles == std::vector<std::string>{"Dune Messiah", "Dune"});
  auto n = books.count(pattern{where("author").in({"Lem", "Asimov"})});
  REQUIRE(n);
  CHECK(*n == 3);
  auto first = books.find_one(pattern{where("title").regex("^The")});
  REQUIRE(first);
  REQUIRE(*first);
  CHECK((*first)->value.author == "Lem");
  auto none = books.find_one(pattern{where("year").gt(2000)});
  REQUIRE(none);
  CHECK_FALSE(*none);
  // Paging through everything one result at a time, oldest first.
  titles.clear();
  for (auto& r : books.query(pattern{}.order_by("year"), 1))
    titles.push_back(r.value.title);
  CHECK(titles.size() == 6);
  CHECK(titles.front() == "Foundation");
  CHECK(titles.back() == "Children of Dune");
  auto agg = books.aggregate(R"([{"group": {"by": ["author"], "fields": {"books": {"count": "*"}}}},
                                 {"sort": [{"field": "books", "direction": "desc"}]}, {"limit": 1}])");
  REQUIRE(agg);
  REQUIRE(agg->as_array().size() == 1);
  CHECK(agg->as_array()[0].get("author")->as_string() == "Herbert");
  CHECK(agg->as_array()[0].get("books")->as_int() == 3);
  auto plan = books.explain(pattern{where("author").eq("Lem")});
  REQUIRE(plan);
  auto bad = books.count(pattern{where("year").in({})}.limit(1));
  // An empty `in` list is allowed and matches nothing.
  REQUIRE(bad);
  CHECK(*bad == 0);
  CHECK_THROWS_AS([&] {
    for (auto& r : books.query_json("{\"where\": 5}"))
      static_cast<void>(r);
  }(), storage_error);
}

TEST_CASE("fulltext search through the store: relevance across shards, pages, count, explain") {
  fixture f;
  auto handle = f.open(f.options(4));
  blocking_store<book> books{f.sys(), handle};
  // 200 books; every title has "saga", one in five "ocean", one in seven
  // "storm" (as "storms" or "Stormy" now and then: stemmed alike).
  std::set<std::string> both;
  for (int i = 0; i < 200; ++i) {
    std::string title = "saga number " + std::to_string(i);
    bool ocean = i % 5 == 0;
    bool storm = i % 7 == 0;
    if (ocean)
      title += i % 2 ? " Ocean" : " oceans";
    if (storm)
      title += i % 3 ? " storm" : " storms and more storms";
    if (ocean && storm)
      both.insert("b" + std::to_string(i));
    REQUIRE_FALSE(books.set("b" + std::to_string(i), {title, "anon", 2000 + i % 20}));
  }
  auto search = pattern{where("title").text("ocean STORM")};
  // Without an index: QUERY_ERROR naming what it needs.
  CHECK_THROWS_WITH(
    [&] {
      for (auto& r : books.query(search))
        static_cast<void>(r);
    }(),
    Catch::Contains("needs a ready fulltext index"));
  REQUIRE_FALSE(books.create_index({"title_text", {{"title", "fulltext", false}}, false, false}));
  REQUIRE(f.indexes_ready(handle));
  std::vector<query_match<book>> found;
  for (auto& r : books.query(search, 1)) // one result per page: continuations
    found.push_back(r);
  std::set<std::string> keys;
  for (size_t i = 0; i < found.size(); ++i) {
    keys.insert(found[i].key);
    CHECK(found[i].score > 0);
    if (i > 0)
      CHECK(found[i - 1].score >= found[i].score);
  }
  CHECK(keys == both);
  std::vector<std::string> one_page;
  for (auto& r : books.query(search))
    one_page.push_back(r.key);
  REQUIRE(one_page.size() == found.size());
  for (size_t i = 0; i < found.size(); ++i)
    CHECK(one_page[i] == found[i].key);
  auto n = books.count(pattern{where("title").text("storm")});
  REQUIRE(n);
  CHECK(*n == 29);
  // With another condition and an order of the user's.
  std::vector<int64_t> years;
  for (auto& r : books.query(pattern{where("title").text("oceans") && where("year").gte(2015)}
                               .order_by("year")))
    years.push_back(r.value.year);
  CHECK(years.size() == 10); // "oceans" finds "Ocean" too: i % 20 == 15

  CHECK(std::is_sorted(years.begin(), years.end()));
  auto plan = books.explain(search);
  REQUIRE(plan);
  REQUIRE(plan->shards.size() == 4);
  for (auto& s : plan->shards)
    CHECK_THAT(s.plan, Catch::Contains("index title_text (text, 2 terms)"));
  // Not inside a transaction: relevance needs the shards' indexes.
  auto tx = books.begin();
  REQUIRE(tx);
  CHECK_THROWS_WITH(
    [&] {
      for (auto& r : tx->query(search))
        static_cast<void>(r);
    }(),
    Catch::Contains("not available in a transaction"));
}

TEST_CASE("the nearest points through the store: merged across shards, paged, in a box") {
  fixture f;
  auto store = f.open(f.options(4));
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("at", {{"at", "spatial", false}})));
  std::mt19937 rng{21};
  std::vector<std::pair<double, std::string>> by_distance; // from (10, 20)
  std::vector<entry> entries;
  for (int i = 0; i < 500; ++i) {
    auto x = static_cast<double>(static_cast<int>(rng() % 200) - 100);
    auto y = static_cast<double>(static_cast<int>(rng() % 200) - 100);
    auto d = document::object();
    d.set("at", document::array({document::real(x), document::real(y)}));
    d.set("i", document::integer(i));
    auto key = "s" + std::to_string(i);
    entries.push_back({key, encode_doc(d)});
    by_distance.emplace_back(std::hypot(x - 10, y - 20), key);
  }
  REQUIRE_FALSE(f.ask_void(store, atom::set_many_v, entries));
  REQUIRE(f.indexes_ready(store));
  std::sort(by_distance.begin(), by_distance.end());
  // 25 nearest, 4 per page through continuations.
  query_request req;
  req.pattern = R"({"where":{"field":"at","operator":"near","value":[10,20]},"limit":25})";
  req.limit = 4;
  std::vector<query_result> got;
  for (;;) {
    auto page = f.ask<query_page>(store, atom::query_v, req);
    REQUIRE(page);
    got.insert(got.end(), page->results.begin(), page->results.end());
    if (!page->more)
      break;
    req.continuation = page->continuation;
  }
  REQUIRE(got.size() == 25);
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].key == by_distance[i].second);
    CHECK(got[i].score == by_distance[i].first);
  }
  auto in_box = f.ask<uint64_t>(store, atom::count_v,
                                std::string{R"({"where":{"field":"at","operator":"within_box","value":[[0,0],[50,50]]}})"});
  REQUIRE(in_box);
  uint64_t expected = 0;
  for (auto& e : entries) {
    document d;
    REQUIRE(stored_document(std::string_view{reinterpret_cast<const char*>(e.value.data()), e.value.size()}, d));
    auto& p = d.get("at")->as_array();
    expected += p[0].as_real() >= 0 && p[0].as_real() <= 50 && p[1].as_real() >= 0 && p[1].as_real() <= 50;
  }
  CHECK(*in_box == expected);
  auto plan = f.ask<query_plan>(store, atom::explain_v, req.pattern);
  REQUIRE(plan);
  for (auto& s : plan->shards)
    CHECK(s.plan == "index at (near)");
  // Not inside a transaction: distance needs the shards' indexes.
  blocking_store<book> typed{f.sys(), store};
  auto tx = typed.begin();
  REQUIRE(tx);
  CHECK_THROWS_WITH(
    [&] {
      for (auto& r : tx->query(pattern{where("at").near(10, 20)}))
        static_cast<void>(r);
    }(),
    Catch::Contains("not available in a transaction"));
}

TEST_CASE("each index is an actor: its figures, its build's progress and queries through it") {
  fixture f;
  auto store = f.open(f.options(4));
  std::vector<entry> docs;
  for (int i = 0; i < 3000; ++i) {
    auto d = document::object();
    d.set("a", document::integer(i % 100));
    d.set("n", document::integer(i));
    docs.push_back({"k" + std::to_string(10000 + i), encode_doc(d)});
  }
  REQUIRE_FALSE(f.ask_void(store, atom::set_many_v, docs));
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("by_a", {{"a", "btree", false}})));
  REQUIRE_FALSE(f.ask_void(store, atom::create_index_v, make_index("n_hash", {{"n", "hash", false}})));
  auto by_a = f.ask<index_actor>(store, atom::index_v, std::string{"by_a"});
  REQUIRE(by_a);
  // Progress while it builds, then the figures of the complete index.
  index_info info;
  for (int i = 0; i < 2000; ++i) {
    auto x = f.ask<index_info>(*by_a, atom::info_v);
    REQUIRE(x);
    CHECK(x->built <= x->total);
    info = *x;
    if (info.state == "ready")
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  REQUIRE(info.state == "ready");
  CHECK(info.spec.name == "by_a");
  CHECK(info.built == 3000);
  CHECK(info.total == 3000);
  CHECK(info.entries == 3000);
  REQUIRE(f.indexes_ready(store));
  // Through the index: the store's results, and the index's hits count them.
  auto eq7 = std::string{R"({"where":{"field":"a","operator":"eq","value":7}})"};
  auto direct = f.ask<std::vector<query_result>>(store, atom::find_many_v, eq7);
  auto through = f.ask<std::vector<query_result>>(*by_a, atom::find_many_v, eq7);
  REQUIRE(direct);
  REQUIRE(through);
  REQUIRE(through->size() == 30);
  for (size_t i = 0; i < through->size(); ++i)
    CHECK(through->at(i).key == direct->at(i).key);
  auto n = f.ask<uint64_t>(*by_a, atom::count_v, eq7);
  REQUIRE(n);
  CHECK(*n == 30);
  query_request req;
  req.pattern = R"({"where":{"field":"a","operator":"gte","value":98},
                    "orderBy":[{"field":"a"}],"limit":25})";
  req.limit = 10; // a page of the 25
  auto page = f.ask<query_page>(*by_a, atom::query_v, req);
  REQUIRE(page);
  CHECK(page->results.size() == 10);
  CHECK(page->more);
  auto after = f.ask<index_info>(*by_a, atom::info_v);
  REQUIRE(after);
  CHECK(after->hits >= info.hits + 4 * 3); // each request on each of 4 shards
  // The same index answers the same handle; hints work on the store too.
  auto again = f.ask<index_actor>(store, atom::index_v, std::string{"by_a"});
  REQUIRE(again);
  auto n5 = f.ask<std::vector<query_result>>(
    store, atom::find_many_v,
    std::string{R"({"where":{"field":"n","operator":"eq","value":5},"hint":"n_hash"})"});
  REQUIRE(n5);
  REQUIRE(n5->size() == 1);
  CHECK(n5->at(0).key == "k10005");
  auto plan = f.ask<query_plan>(
    store, atom::explain_v,
    std::string{R"({"where":{"field":"n","operator":"eq","value":5},"hint":"n_hash"})"});
  REQUIRE(plan);
  for (auto& s : plan->shards)
    CHECK_THAT(s.plan, Catch::Contains("n_hash"));
  // What it cannot answer, and an index that is gone.
  auto wrong = f.ask<uint64_t>(
    *by_a, atom::count_v, std::string{R"({"where":{"field":"n","operator":"eq","value":5}})"});
  REQUIRE_FALSE(wrong);
  CHECK(code_of(wrong.error()) == errc::query_error);
  CHECK_THAT(render(wrong.error()), Catch::Contains("index by_a has neither a condition"));
  auto other = f.ask<uint64_t>(*by_a, atom::count_v,
                               std::string{R"({"where":{"field":"n","operator":"eq","value":5},
                                              "hint":"n_hash"})"});
  REQUIRE_FALSE(other);
  CHECK_THAT(render(other.error()), Catch::Contains("answers only through itself"));
  auto bad = f.ask<uint64_t>(*by_a, atom::count_v, std::string{"{"});
  REQUIRE_FALSE(bad);
  CHECK(code_of(bad.error()) == errc::query_error);
  auto none = f.ask<index_actor>(store, atom::index_v, std::string{"nope"});
  REQUIRE_FALSE(none);
  CHECK(code_of(none.error()) == errc::key_not_found);
  REQUIRE_FALSE(f.ask_void(store, atom::drop_index_v, std::string{"by_a"}));
  auto gone = f.ask<index_info>(*by_a, atom::info_v);
  REQUIRE_FALSE(gone);
  CHECK(code_of(gone.error()) == errc::key_not_found);
  auto unserved = f.ask<uint64_t>(*by_a, atom::count_v, eq7);
  REQUIRE_FALSE(unserved);
  CHECK_THAT(render(unserved.error()), Catch::Contains("no index named by_a"));
  // The typed builder names a hint.
  CHECK_THAT(pattern{}.hint("n_hash").json(), Catch::Contains(R"("hint":"n_hash")"));
}

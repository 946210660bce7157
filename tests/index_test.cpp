// Backend tests of secondary indexes: the order-preserving key encoding
// against compare(), queries through every index kind against the same
// queries by scanning, entries kept by writes and a build running between
// them (with clears and reopens) against a fresh build, and bad definitions.
// Both engines. No actors.

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backends/index_key.hpp"
#include "backends/indexes.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_core.hpp"
#include "backends/unique.hpp"
#include "strata/envelope.hpp"
#include "tests/random_docs.hpp"
#include "tests/shard_helpers.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;
using strata::test::random_scalar;

namespace {

document random_value(std::mt19937& rng, int depth = 0) {
  auto r = rng() % 10;
  if (depth < 2 && r == 0) {
    document::array_type xs;
    for (auto n = rng() % 3; n > 0; --n)
      xs.push_back(random_value(rng, depth + 1));
    return document::array(std::move(xs));
  }
  if (depth < 2 && r == 1) {
    auto d = document::object();
    for (auto n = rng() % 3; n > 0; --n)
      d.set(std::string(1, static_cast<char>('a' + rng() % 3)), random_value(rng, depth + 1));
    return d;
  }
  if (r == 2)
    return document::integer(static_cast<int64_t>(rng()) << 20); // beyond 2^53
  return random_scalar(rng);
}

document random_doc(std::mt19937& rng) {
  auto d = document::object();
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
  d.set("n", document::integer(static_cast<int64_t>(rng() % 1000)));
  return d;
}

index_spec spec(std::string name, std::vector<index_field> fields, bool sparse = false) {
  index_spec x;
  x.name = std::move(name);
  x.fields = std::move(fields);
  x.sparse = sparse;
  return x;
}

/// Every entry of index `name`, without the name.
std::set<std::string> entries(shard_core& s, const std::string& name) {
  std::set<std::string> out;
  auto prefix = name + std::string(1, '\0');
  s.with_snapshot([&](const engine_snapshot& snap) {
    snap.scan(keyspace::index, prefix, false, [&](std::string_view k, std::string_view) {
      if (k.substr(0, prefix.size()) != prefix)
        return false;
      out.insert(std::string{k.substr(prefix.size())});
      return true;
    });
  });
  return out;
}

void build_all(index_set& ix) {
  while (ix.step(100)) {
  }
}

std::vector<std::string> keys_of(const shard_query_result& r) {
  std::vector<std::string> out;
  for (auto& h : r.hits)
    out.push_back(h.key);
  return out;
}

} // namespace

TEST_CASE("index keys sort bytewise exactly as compare orders documents") {
  std::mt19937 rng{11};
  std::vector<document> docs;
  for (int i = 0; i < 400; ++i)
    docs.push_back(random_value(rng));
  docs.push_back(document::integer(9007199254740993)); // 2^53 + 1
  docs.push_back(document::real(9007199254740992.0));
  docs.push_back(document::real(-0.0));
  docs.push_back(document::integer(std::numeric_limits<int64_t>::max()));
  docs.push_back(document::integer(std::numeric_limits<int64_t>::min()));
  docs.push_back(document::string(std::string("a\0b", 3)));
  docs.push_back(document::string("a"));
  for (auto& x : docs)
    for (auto& y : docs) {
      std::string ex, ey, dx, dy;
      index_key::append(ex, x);
      index_key::append(ey, y);
      index_key::append_descending(dx, x);
      index_key::append_descending(dy, y);
      auto c = compare(x, y);
      INFO(to_json(x) << " vs " << to_json(y));
      REQUIRE((ex < ey) == (c < 0));
      REQUIRE((ex == ey) == (c == 0));
      REQUIRE((dx < dy) == (c > 0));
      // Self-delimiting: a longer key that starts with one encoding is not
      // confused with another value.
      REQUIRE((ex + "\x01" < ey + "\x01") == (c < 0));
    }
}

TEST_CASE("queries through every index kind find what scanning finds, in the same order") {
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    DYNAMIC_SECTION(engine_name(kind)) {
      test::temp_dir dir;
      shard_core core{test::core_options(dir.path(), kind)};
      open_indexes(core);
      auto& ix = *core.indexes();
      std::mt19937 rng{3};
      std::vector<operation> ops;
      for (int i = 0; i < 600; ++i)
        ops.push_back(operation::set("k" + std::to_string(i), encode_doc(random_doc(rng))));
      ops.push_back(operation::set("raw", encode_raw("not a document")));
      test::write_ok(core, ops);
      ix.create(spec("by_a", {{"a", "btree", false}}));
      ix.create(spec("a_hash", {{"a", "hash", false}}));
      ix.create(spec("a_bc", {{"a", "btree", false}, {"b.c", "btree", true}}));
      ix.create(spec("tags", {{"tags", "btree", false}}));
      ix.create(spec("bc_sparse", {{"b.c", "btree", false}}, true));
      ix.create(spec("n_desc", {{"n", "btree", true}}));
      build_all(ix);
      for (auto& info : ix.list())
        REQUIRE(info.state == "ready");
      const char* fields[] = {"a", "tags", "b.c", "n"};
      const char* ops_text[] = {"eq", "gt", "gte", "lt", "lte", "in"};
      int used = 0;
      for (int round = 0; round < 300; ++round) {
        auto field = fields[rng() % 4];
        auto op = std::string{ops_text[rng() % 6]};
        document v = op == "in" ? document::array({random_scalar(rng), random_scalar(rng)})
                                : (std::string{field} == "n"
                                     ? document::integer(static_cast<int64_t>(rng() % 1000))
                                     : random_scalar(rng));
        auto cond = "{\"field\":\"" + std::string{field} + "\",\"operator\":\"" + op
                    + "\",\"value\":" + to_json(v) + "}";
        std::string where = cond;
        if (rng() % 3 == 0)
          where = "{\"operator\":\"and\",\"conditions\":[" + cond
                  + ",{\"field\":\"b.c\",\"operator\":\"eq\",\"value\":"
                  + to_json(random_scalar(rng)) + "}]}";
        std::string order;
        switch (rng() % 4) {
          case 0:
            order = R"(,"orderBy":[{"field":"a"}])";
            break;
          case 1:
            order = R"(,"orderBy":[{"field":"n","direction":"desc"}])";
            break;
          case 2:
            order = R"(,"orderBy":[{"field":"b.c","direction":"desc"}])";
            break;
          default:
            break;
        }
        auto text = "{\"where\":" + where + order + "}";
        INFO(text);
        auto q = parse_query(text);
        size_t want = rng() % 2 ? 1000 : 1 + rng() % 20;
        core.with_snapshot([&](const engine_snapshot& snap) {
          auto scanned = run_query(snap, q, std::nullopt, want);
          auto indexed = ix.run(snap, q, std::nullopt, want);
          if (indexed.stats.plan != "scan")
            ++used;
          INFO(indexed.stats.plan);
          REQUIRE(keys_of(indexed) == keys_of(scanned));
          REQUIRE(indexed.more == scanned.more);
          REQUIRE(ix.count(snap, q) == count_matches(snap, q));
          // The next page from the last result's position.
          if (!scanned.hits.empty()) {
            query_position pos{scanned.hits.back().sort, scanned.hits.back().key};
            REQUIRE(keys_of(ix.run(snap, q, pos, want)) == keys_of(run_query(snap, q, pos, want)));
          }
        });
      }
      CHECK(used > 150);
      // An order alone is served by a btree index in that order.
      auto q = parse_query(R"({"orderBy":[{"field":"n","direction":"desc"}]})");
      core.with_snapshot([&](const engine_snapshot& snap) {
        auto r = ix.run(snap, q, std::nullopt, 10);
        CHECK(r.stats.plan == "index n_desc (order)");
        CHECK(r.stats.examined == 11); // the eleventh tells that more follow
        REQUIRE(keys_of(r) == keys_of(run_query(snap, q, std::nullopt, 10)));
      });
      auto hits = 0;
      for (auto& info : ix.list())
        hits += static_cast<int>(info.hits);
      CHECK(hits > 0);
    }
  }
}

TEST_CASE("index entries follow every write, also while the index is built, across reopens") {
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    DYNAMIC_SECTION(engine_name(kind)) {
      test::temp_dir dir;
      std::mt19937 rng{17};
      auto fields = std::vector<index_field>{{"a", "btree", false}, {"tags", "btree", true}};
      auto opts = test::core_options(dir.path(), kind);
      auto core = std::make_unique<shard_core>(opts);
      open_indexes(*core);
      std::vector<operation> first;
      for (int i = 0; i < 3000; ++i)
        first.push_back(operation::set("k" + std::to_string(rng() % 2000),
                                       encode_doc(random_doc(rng))));
      test::write_ok(*core, first);
      core->indexes()->create(spec("live", fields));
      core->indexes()->create(spec("hashed", {{"a", "hash", false}}, true));
      for (int round = 0; round < 60; ++round) {
        // A build step between random writes.
        core->indexes()->step(1 + rng() % 150);
        std::vector<operation> ops;
        for (auto n = 1 + rng() % 20; n > 0; --n) {
          auto key = "k" + std::to_string(rng() % 2000);
          switch (rng() % 10) {
            case 0:
              ops.push_back(operation::del(key));
              break;
            case 1:
              ops.push_back(operation::set(key, encode_raw("raw")));
              break;
            default:
              ops.push_back(operation::set(key, encode_doc(random_doc(rng))));
          }
        }
        if (round == 40)
          ops.push_back(operation::clear());
        test::write_ok(*core, ops);
        if (round % 20 == 10 && kind == engine_kind::lmdb) {
          // Reopen mid-build: the build resumes from its recorded cursor.
          core.reset();
          core = std::make_unique<shard_core>(opts);
          open_indexes(*core);
        }
      }
      build_all(*core->indexes());
      // A fresh build over the final data must give the same entries.
      core->indexes()->create(spec("fresh", fields));
      core->indexes()->create(spec("fresh_hashed", {{"a", "hash", false}}, true));
      build_all(*core->indexes());
      auto live = entries(*core, "live");
      CHECK(live.size() > 100);
      REQUIRE(live == entries(*core, "fresh"));
      REQUIRE(entries(*core, "hashed") == entries(*core, "fresh_hashed"));
      for (auto& info : core->indexes()->list())
        if (info.spec.name == "live")
          CHECK(info.entries == live.size());
      // Dropping removes every entry and the definition.
      core->indexes()->drop("live");
      build_all(*core->indexes());
      CHECK(entries(*core, "live").empty());
      CHECK(core->indexes()->list().size() == 3);
      core.reset();
      core = std::make_unique<shard_core>(opts);
      open_indexes(*core);
      CHECK(core->indexes()->list().size() == 3);
      CHECK(entries(*core, "fresh") == entries(*core, "fresh"));
    }
  }
}

TEST_CASE("bad index definitions and documents that cannot be indexed are refused clearly") {
  test::temp_dir dir;
  shard_core core{test::core_options(dir.path(), engine_kind::lmdb)};
  open_indexes(core);
  auto& ix = *core.indexes();
  auto refused = [&](index_spec s, errc code, const std::string& part) {
    try {
      ix.create(s);
      FAIL("accepted " << s.name);
    } catch (const storage_error& e) {
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(part));
    }
  };
  refused(spec("", {{"a", "btree", false}}), errc::query_error, "index name");
  refused(spec("a b", {{"a", "btree", false}}), errc::query_error, "index name");
  refused(spec("x", {}), errc::query_error, "1 to 8 fields");
  refused(spec("x", {{"", "btree", false}}), errc::query_error, "fields[0].name");
  refused(spec("x", {{"a", "rtree", false}}), errc::query_error, "unknown index type");
  refused(spec("x", {{"a", "hash", false}, {"b", "btree", false}}), errc::query_error,
          "same type");
  refused(spec("x", {{"a", "hash", true}}), errc::query_error, "no order");
  ix.create(spec("x", {{"a", "btree", false}}));
  ix.create(spec("x", {{"a", "btree", false}})); // the same again: nothing happens
  refused(spec("x", {{"b", "btree", false}}), errc::duplicate_key, "another definition");
  try {
    ix.drop("nope");
    FAIL("dropped a missing index");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::key_not_found);
  }
  build_all(ix);
  // A value too long for an entry fails the write and changes nothing.
  auto d = document::object();
  d.set("a", document::string(std::string(600, 'x')));
  std::vector<operation> ops{operation::set("ok", encode_doc(document::object())),
                             operation::set("long", encode_doc(d))};
  write_group g{&ops};
  auto out = core.write(g).at(0);
  CHECK(out.code == errc::invalid_value);
  CHECK_THAT(out.message, Catch::Contains("index x"));
  CHECK_FALSE(core.has("ok"));
  CHECK(entries(core, "x").empty());
}

TEST_CASE("a build that meets a document it cannot index fails, and the data stays writable") {
  test::temp_dir dir;
  auto o = test::core_options(dir.path(), engine_kind::lmdb);
  std::vector<operation> ops;
  for (int i = 0; i < 500; ++i) {
    auto d = document::object();
    d.set("a", document::integer(i));
    ops.push_back(operation::set("k" + std::to_string(1000 + i), encode_doc(d)));
  }
  auto long_doc = document::object();
  long_doc.set("a", document::string(std::string(600, 'x')));
  ops.push_back(operation::set("k1300x", encode_doc(long_doc))); // met halfway through
  {
    shard_core core{o};
    open_indexes(core);
    test::write_ok(core, ops);
    auto& ix = *core.indexes();
    ix.create(spec("a", {{"a", "btree", false}}));
    ix.create(spec("b", {{"b", "btree", false}}, true)); // unaffected
    build_all(ix);
    auto list = ix.list();
    REQUIRE(list.size() == 2);
    CHECK(list[0].spec.name == "a");
    CHECK(list[0].state == "failed");
    CHECK_THAT(list[0].error, Catch::Contains("k1300x"));
    CHECK_THAT(list[0].error, Catch::Contains("index a"));
    CHECK(list[1].state == "ready");
    CHECK(entries(core, "a").empty()); // what the build had done is gone
    CHECK(list[0].entries == 0);
    // Writes no longer keep it (the long value is accepted now), queries
    // scan, and creating it again says why it cannot be.
    test::write_ok(core, {operation::set("k2", encode_doc(long_doc))});
    CHECK(entries(core, "a").empty());
    auto q = parse_query(R"({"where":{"field":"a","operator":"lt","value":3}})");
    core.with_snapshot([&](const engine_snapshot& snap) {
      auto r = ix.run(snap, q, std::nullopt, 10);
      CHECK(keys_of(r) == std::vector<std::string>{"k1000", "k1001", "k1002"});
    });
    try {
      ix.create(spec("a", {{"a", "btree", false}}));
      FAIL("created over a failed index");
    } catch (const storage_error& e) {
      CHECK(e.code() == errc::duplicate_key);
      CHECK_THAT(e.what(), Catch::Contains("drop it"));
    }
  }
  // The failure is durable; dropping it and fixing the data lets it build.
  shard_core core{o};
  open_indexes(core);
  auto& ix = *core.indexes();
  CHECK(ix.list().at(0).state == "failed");
  CHECK_FALSE(ix.pending());
  ix.drop("a");
  build_all(ix);
  test::write_ok(core, {operation::del("k1300x"), operation::del("k2")});
  ix.create(spec("a", {{"a", "btree", false}}));
  build_all(ix);
  auto list = ix.list();
  CHECK(list.at(0).state == "ready");
  CHECK(list.at(0).error.empty());
  CHECK(entries(core, "a").size() == 500);
}

TEST_CASE("a shard keeps claims of unique indexes apart and refuses unplanned changes") {
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    DYNAMIC_SECTION(engine_name(kind)) {
      test::temp_dir dir;
      shard_core core{test::core_options(dir.path(), kind)};
      open_indexes(core);
      auto doc = [](int64_t a, int64_t b) {
        auto d = document::object();
        d.set("a", document::integer(a));
        d.set("b", document::integer(b));
        return encode_doc(d);
      };
      test::write_ok(core, {operation::set("k", doc(1, 1))});
      auto u = spec("u", {{"a", "btree", false}});
      u.unique = true;
      core.indexes()->create(u);
      build_all(*core.indexes());
      // Other fields change freely; the unique one only in a planned write.
      test::write_ok(core, {operation::set("k", doc(1, 2))});
      std::vector<operation> change{operation::set("k", doc(2, 2))};
      write_group g{&change};
      auto out = core.write(g);
      CHECK(out.at(0).code == errc::version_conflict);
      CHECK_THAT(out.at(0).message, Catch::Contains("unique index u: document 'k'"));
      CHECK(core.get("k") == std::optional<bytes>{doc(1, 2)});
      // With the marker and a claim: applied; the claim lives in the index
      // space, out of reads, scans and counts, and transactions read it.
      auto claim = claim_prefix("u") + "claimed";
      test::write_ok(core, {operation::set("k", doc(2, 2)),
                            operation::set(claim, {'k'}),
                            operation::del(unique::planned_marker(7))});
      CHECK(core.get("k") == std::optional<bytes>{doc(2, 2)});
      CHECK(core.size() == 1);
      CHECK_FALSE(core.get(claim));
      scan_request all;
      CHECK(core.scan(all).entries.size() == 1);
      auto r = core.read(claim);
      REQUIRE(r.value);
      CHECK(*r.value == bytes{'k'});
      // A clear takes the claims with it.
      test::write_ok(core, {operation::clear()});
      CHECK_FALSE(core.read(claim).value);
      CHECK(key_problem(claim) != "");
      CHECK(key_problem(claim, true) == "");
    }
  }
}

TEST_CASE("a hint makes a query use one index, or says why it cannot") {
  test::temp_dir dir;
  shard_core core{test::core_options(dir.path(), engine_kind::lmdb)};
  open_indexes(core);
  std::vector<operation> ops;
  for (int i = 0; i < 300; ++i) {
    auto d = document::object();
    d.set("a", document::integer(i % 10));
    d.set("n", document::integer(i));
    ops.push_back(operation::set("k" + std::to_string(1000 + i), encode_doc(d)));
  }
  test::write_ok(core, ops);
  auto& ix = *core.indexes();
  ix.create(spec("by_a", {{"a", "btree", false}}));
  ix.create(spec("by_n", {{"n", "btree", false}}));
  auto run = [&](const std::string& json) {
    shard_query_result r;
    core.with_snapshot([&](const engine_snapshot& snap) {
      r = ix.run(snap, parse_query(json), std::nullopt, 1000);
    });
    return r;
  };
  auto count = [&](const std::string& json) {
    uint64_t n = 0;
    core.with_snapshot([&](const engine_snapshot& snap) { n = ix.count(snap, parse_query(json)); });
    return n;
  };
  auto refused = [&](const std::string& json, const std::string& part) {
    try {
      run(json);
      FAIL("no query_error for " << json);
    } catch (const query_error& e) {
      CHECK_THAT(e.what(), Catch::Contains(part));
    }
  };
  auto both = R"({"where":{"operator":"and","conditions":[
    {"field":"a","operator":"eq","value":3},{"field":"n","operator":"lt","value":100}]},
    "hint":)";
  refused(std::string{both} + R"("by_a"})", "index by_a is building");
  build_all(ix);
  // Either index finds the same 10 documents; each hint picks its own.
  auto via_a = run(std::string{both} + R"("by_a"})");
  auto via_n = run(std::string{both} + R"("by_n"})");
  CHECK(via_a.hits.size() == 10);
  CHECK(keys_of(via_a) == keys_of(via_n));
  CHECK_THAT(via_a.stats.plan, Catch::Contains("by_a"));
  CHECK_THAT(via_n.stats.plan, Catch::Contains("by_n"));
  CHECK(count(std::string{both} + R"("by_n"})") == 10);
  refused(R"({"where":{"field":"a","operator":"eq","value":3},"hint":"by_n"})",
          "index by_n has neither a condition nor the order");
  refused(R"({"hint":"nope"})", "no index named nope");
  try {
    parse_query(R"({"hint":5})");
    FAIL("a hint that is not a name");
  } catch (const query_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("hint: expected the name of an index"));
  }
  // An order alone is enough (in the index's direction).
  auto ordered = run(R"({"orderBy":[{"field":"n","direction":"asc"}],"limit":3,"hint":"by_n"})");
  REQUIRE(ordered.hits.size() >= 3); // the shard leaves the limit to the store
  CHECK(ordered.hits[2].key == "k1002");
  CHECK_THAT(ordered.stats.plan, Catch::Contains("by_n"));
  refused(R"({"orderBy":[{"field":"n","direction":"desc"}],"hint":"by_n"})", "neither");
  CHECK(with_hint(R"({"limit":3})", "by_n") == R"({"limit":3,"hint":"by_n"})");
  CHECK(with_hint(R"({"hint":"by_n"})", "by_n") == R"({"hint":"by_n"})");
  CHECK_THROWS_AS(with_hint(R"({"hint":"by_a"})", "by_n"), query_error);
}

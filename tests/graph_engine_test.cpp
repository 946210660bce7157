// The graph engine beyond what every engine shares (engine_test): the graph
// as a SPARQL client sees it, keys of any bytes, its settings, and what
// happens when requests fail half-way, answers are lost or the server dies.
// Each test runs against a real Virtuoso server on 127.0.0.1.

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "backends/engines.hpp"
#include "backends/fault.hpp"
#include "backends/graph_engine.hpp"
#include "backends/sparql.hpp"
#include "strata/base64.hpp"
#include "strata/envelope.hpp"
#include "tests/temp_dir.hpp"
#include "tests/virtuoso.hpp"

using namespace strata;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

engine_options options(const std::string& dir, const graph_settings& server = test::test_graph()) {
  engine_options o;
  o.dir = dir;
  o.engine = engine_kind::graph;
  o.map_size = 64 << 20;
  o.graph = server;
  return o;
}

apply_result write(engine& e, std::vector<operation> ops, keyspace ks = keyspace::data) {
  engine_batch batch;
  batch.parts.push_back({ks, &ops});
  return e.apply({batch}, true);
}

std::optional<bytes> get(const engine& e, const std::string& key) {
  std::optional<bytes> result;
  e.read([&](const engine_snapshot& s) {
    std::string_view v;
    if (s.get(keyspace::data, key, v))
      result = bytes_of(v);
  });
  return result;
}

std::map<std::string, bytes> dump(const engine& e) {
  std::map<std::string, bytes> out;
  e.read([&](const engine_snapshot& s) {
    s.scan(keyspace::data, {}, false, [&](std::string_view k, std::string_view v) {
      out.emplace(std::string{k}, bytes_of(v));
      return true;
    });
  });
  return out;
}

bytes stored(const document& d) {
  auto out = detail::make_value_header(value_encoding::document);
  encode_document(d, out);
  return out;
}

/// Rows of a SELECT against the test server: per row, variable -> value.
std::vector<std::map<std::string, std::string>> select(const std::string& query,
                                                       const graph_settings& server
                                                       = test::test_graph()) {
  sparql_client client{server};
  auto text = client.query(query);
  rapidjson::Document d;
  d.Parse(text.c_str());
  REQUIRE(!d.HasParseError());
  std::vector<std::map<std::string, std::string>> rows;
  for (auto& row : d["results"]["bindings"].GetArray()) {
    std::map<std::string, std::string> r;
    for (auto& m : row.GetObject())
      r[m.name.GetString()] = m.value["value"].GetString();
    rows.push_back(std::move(r));
  }
  return rows;
}

size_t triples(const std::string& graph) {
  auto rows = select("SELECT (COUNT(*) AS ?n) WHERE { GRAPH <" + graph + "> { ?s ?p ?o } }");
  return std::stoul(rows.at(0).at("n"));
}

} // namespace

TEST_CASE("a graph query reaches documents' fields as properties of each key's resource") {
  test::temp_dir dir;
  graph_engine e{options(dir / "g")};
  auto order = [](int i) {
    return document::object({{"customer", "Zoë " + std::to_string(i)},
                             {"total", i * 10},
                             {"rate", 0.5 * i},
                             {"paid", i % 2 == 0},
                             {"tags", document::array({"a", "b" + std::to_string(i)})},
                             {"address", document::object({{"city", "Lyon"}})},
                             {"blob", document::bytes({0, 1, 255})},
                             {"note", nullptr}});
  };
  std::vector<operation> ops;
  for (int i = 1; i <= 5; ++i)
    ops.push_back(operation::set("order:" + std::to_string(i), stored(order(i))));
  ops.push_back(operation::set("raw", b("not a document")));
  REQUIRE(write(e, ops).code == errc::none);
  auto g = "GRAPH <" + e.graph() + ">";
  // Orders over 20, found by a graph query on their fields.
  auto rows = select("SELECT ?k ?c WHERE { " + g
                     + " { ?r <urn:strata:key> ?k ; <urn:strata:field:total> ?t ;"
                       " <urn:strata:field:customer> ?c FILTER(?t > 20) } } ORDER BY ?k");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].at("k") == "order:3");
  CHECK(rows[0].at("c") == "Zoë 3");
  CHECK(rows[2].at("k") == "order:5");
  // Each kind of field as RDF holds it.
  auto fields = select("SELECT ?p ?o WHERE { " + g + " { <" + e.graph()
                       + "/data/order:2> ?p ?o } }");
  std::multimap<std::string, std::string> by;
  for (auto& r : fields)
    by.emplace(r.at("p").substr(std::string{"urn:strata:"}.size()), r.at("o"));
  CHECK(by.count("field:tags") == 2); // one triple per element
  CHECK(by.find("field:paid")->second == "1"); // Virtuoso's form of true
  CHECK(std::stod(by.find("field:rate")->second) == 1.0);
  CHECK(by.find("field:address")->second == R"({"city":"Lyon"})");
  CHECK(by.find("field:blob")->second == "AAH/");
  CHECK(by.count("field:note") == 0); // null: only in the value
  CHECK(by.count("value") == 1);
  CHECK(by.find("key")->second == "order:2");
  // A value that is no document is only its value and key.
  CHECK(select("SELECT ?p WHERE { " + g + " { <" + e.graph() + "/data/raw> ?p ?o } }").size()
        == 2);

  SECTION("overwrites and deletes leave no triple behind") {
    auto before = triples(e.graph());
    REQUIRE(write(e, {operation::set("order:1", stored(order(7)))}).code == errc::none);
    CHECK(triples(e.graph()) == before);
    REQUIRE(write(e, {operation::del("order:1"), operation::del("raw")}).code == errc::none);
    auto rows_left = select("SELECT DISTINCT ?s WHERE { " + g + " { ?s ?p ?o } }");
    CHECK(rows_left.size() == 4);
    REQUIRE(write(e, {operation::clear()}).code == errc::none);
    CHECK(triples(e.graph()) == 0);
    CHECK(dump(e).empty());
  }
}

TEST_CASE("keys of any bytes and values of any size come back from the graph as written") {
  test::temp_dir dir;
  auto o = options(dir / "g");
  std::mt19937 rng{3};
  std::map<std::string, bytes> model;
  std::vector<std::string> keys{"",        "/",         "a/b",       "%41",  "with space",
                                "<>\"{}|", "Zoë ☃",     "\xff\xfe",  "tab\tnl\n",
                                std::string("nul\0x", 5), "~", "::@@", "k-._~"};
  for (int i = 0; i < 40; ++i) {
    std::string k;
    for (int n = 0; n < 1 + static_cast<int>(rng() % 12); ++n)
      k += static_cast<char>(rng() % 256);
    keys.push_back(k);
  }
  {
    graph_engine e{o};
    std::vector<operation> ops;
    for (auto& k : keys) {
      bytes v(rng() % 200, 0);
      for (auto& x : v)
        x = static_cast<uint8_t>(rng());
      model[k] = v;
      ops.push_back(operation::set(k, v));
    }
    // A large value, and the other key spaces.
    bytes big(3u << 20, 0);
    for (auto& x : big)
      x = static_cast<uint8_t>(rng());
    model["big"] = big;
    ops.push_back(operation::set("big", big));
    REQUIRE(write(e, ops).code == errc::none);
    REQUIRE(write(e, {operation::set(std::string("m\0", 2), b("meta"))}, keyspace::meta).code
            == errc::none);
  }
  graph_engine e{o};
  CHECK(dump(e) == model);
  std::string_view meta;
  e.read([&](const engine_snapshot& s) {
    CHECK(s.get(keyspace::meta, std::string("m\0", 2), meta));
    CHECK(meta == "meta");
  });
}

TEST_CASE("a graph larger than the server's result limit loads whole") {
  test::temp_dir dir;
  auto o = options(dir / "g");
  std::map<std::string, bytes> model;
  {
    graph_engine e{o};
    // The test server answers at most 10000 rows per query.
    for (int group = 0; group < 3; ++group) {
      std::vector<operation> ops;
      for (int i = 0; i < 4000; ++i) {
        auto k = "k" + std::to_string(group * 4000 + i);
        model[k] = b("v" + std::to_string(i));
        ops.push_back(operation::set(k, model[k]));
      }
      auto res = write(e, ops);
      INFO(res.message);
      REQUIRE(res.code == errc::none);
    }
  }
  graph_engine e{o};
  CHECK(dump(e) == model);
}

TEST_CASE("graph settings that cannot work are INVALID_VALUE") {
  test::temp_dir dir;
  auto check = [&](auto change, const std::string& words) {
    auto o = options(dir / "g");
    change(o.graph);
    try {
      graph_engine e{o};
      FAIL("accepted");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::invalid_value);
      CHECK_THAT(err.what(), Catch::Contains(words));
    }
  };
  check([](graph_settings& s) { s.url = "ftp://x"; }, "must start with http");
  check([](graph_settings& s) { s.database = "no-scheme"; }, "absolute IRI");
  check([](graph_settings& s) { s.database = "urn:a b"; }, "must be an IRI");
  check([](graph_settings& s) { s.cert_file = "c.pem"; }, "go together");
  check([](graph_settings& s) { s.timeout_ms = 0; }, "timeout_ms");
}

TEST_CASE("a server that cannot be reached, or refuses the login, is CONNECTION_FAILED") {
  test::temp_dir dir;
  auto down = test::test_graph();
  down.url = "http://127.0.0.1:" + std::to_string(test::free_port()) + "/sparql-auth";
  auto wrong = test::test_graph();
  wrong.password = "not the password";
  for (auto& [what, settings] : {std::pair{"down", down}, std::pair{"wrong password", wrong}}) {
    INFO(what);
    try {
      graph_engine e{options(dir / "g", settings)};
      FAIL("opened");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::connection_failed);
      CHECK_THAT(err.what(), Catch::Contains("cannot open graph"));
    }
    // Nothing marks the directory as a graph shard's yet.
    CHECK(!std::filesystem::exists(dir / "g/strata.graph"));
  }
}

TEST_CASE("a directory keeps its graph; another engine or database is refused") {
  test::temp_dir dir;
  auto o = options(dir / "g");
  o.graph.database = "urn:strata:test:keeps-" + std::to_string(::getpid());
  std::string graph;
  {
    graph_engine e{o};
    graph = e.graph();
    CHECK(graph == o.graph.database + "/g");
    REQUIRE(write(e, {operation::set("a", b("1"))}).code == errc::none);
  }
  // Without a database it opens the graph the directory names.
  auto plain = options(dir / "g");
  CHECK(get(graph_engine{plain}, "a") == b("1"));
  auto other = o;
  other.graph.database = "urn:strata:test:other";
  try {
    graph_engine e{other};
    FAIL("opened");
  } catch (const storage_error& err) {
    CHECK(err.code() == errc::consistency_violation);
    CHECK_THAT(err.what(), Catch::Contains("holds the shard of graph <" + graph + ">"));
  }
  auto as_json = o;
  as_json.engine = engine_kind::json;
  try {
    open_engine(as_json);
    FAIL("opened");
  } catch (const storage_error& err) {
    CHECK(err.code() == errc::consistency_violation);
    CHECK_THAT(err.what(), Catch::Contains("holds a shard of engine graph"));
  }
  // Cleaned up on the shared server.
  sparql_client{test::test_graph()}.update("CLEAR GRAPH <" + graph + ">");
}

#ifdef STRATA_FAULT_INJECTION
TEST_CASE("a group the server stopped half-way is finished from its record, at once or on "
          "reopen") {
  test::temp_dir dir;
  auto o = options(dir / "g");
  std::unique_ptr<graph_engine> e = std::make_unique<graph_engine>(o);
  REQUIRE(write(*e, {operation::set("a", b("1")), operation::set("b", b("1"))}).code
          == errc::none);
  SECTION("the server is back at once: the engine writes the rest and goes on") {
    fault::scoped_arm cut{"graph.cut", 1};
    auto res = write(*e, {operation::set("a", b("2")), operation::del("b")});
    CHECK(res.code == errc::none);
    CHECK(get(*e, "a") == b("2"));
    CHECK(!get(*e, "b"));
    CHECK(e->broken().empty());
  }
  SECTION("the server stays away: the engine refuses writes; a reopen finishes the group") {
    {
      fault::scoped_arm cut{"graph.cut", 1};
      fault::scoped_arm settle{"graph.settle", 1};
      auto res = write(*e, {operation::set("a", b("2")), operation::del("b")});
      CHECK(res.code == errc::connection_lost);
      CHECK(res.logged); // it will happen
    }
    CHECK(get(*e, "a") == b("1")); // not seen before it is whole
    CHECK(!e->broken().empty());
    CHECK(write(*e, {operation::set("c", b("1"))}).code == errc::transaction_aborted);
    // The record is on the server; the data is not written yet.
    auto value = select("SELECT ?v WHERE { GRAPH <" + e->graph() + "> { <" + e->graph()
                        + "/data/a> <urn:strata:value> ?v } }");
    CHECK(value.at(0).at("v") == "MQ=="); // "1"
    e = std::make_unique<graph_engine>(o);
    CHECK(get(*e, "a") == b("2"));
    CHECK(!get(*e, "b"));
    CHECK(!get(*e, "c"));
    CHECK(select("SELECT ?p WHERE { GRAPH <" + e->graph() + "> { <" + e->graph()
                 + "/journal> ?p ?o } }")
            .empty());
  }
}

TEST_CASE("a request whose answer was lost is settled by reading back what it touched") {
  test::temp_dir dir;
  graph_engine e{options(dir / "g")};
  REQUIRE(write(e, {operation::set("a", b("1"))}).code == errc::none);
  SECTION("the server had it all: the group happened") {
    fault::scoped_arm lost{"graph.lost", 1};
    CHECK(write(e, {operation::set("a", b("2")), operation::set("x", b("9"))}).code
          == errc::none);
    CHECK(get(e, "a") == b("2"));
    CHECK(get(e, "x") == b("9"));
  }
  SECTION("the server never had it: CONNECTION_LOST, nothing happened, the engine goes on") {
    {
      fault::scoped_arm unsent{"graph.unsent", 1};
      auto res = write(e, {operation::set("a", b("2"))});
      CHECK(res.code == errc::connection_lost);
      CHECK(!res.logged);
    }
    CHECK(get(e, "a") == b("1"));
    CHECK(e.broken().empty());
    CHECK(write(e, {operation::set("a", b("3"))}).code == errc::none);
    CHECK(get(graph_engine{options(dir / "g")}, "a") == b("3"));
  }
}
#endif

TEST_CASE("after a crash the open waits until requests the dead process left running are over") {
  test::temp_dir dir;
  auto o = options(dir / "g");
  std::string graph;
  {
    graph_engine e{o};
    graph = e.graph();
    REQUIRE(write(e, {operation::set("a", b("1"))}).code == errc::none);
    CHECK(std::filesystem::exists(dir / "g/strata.graph.unsettled"));
  }
  // A clean close leaves nothing to wait for.
  CHECK(!std::filesystem::exists(dir / "g/strata.graph.unsettled"));
  // As a crash leaves it, with the process's last request still at work on the
  // server: entries arrive one by one for a while (`writes` x 40 ms).
  std::ofstream{dir / "g/strata.graph.unsettled"}.close();
  auto ghost = [&](int writes) {
    return std::thread{[graph, writes] {
      sparql_client client{test::test_graph()};
      for (int i = 0; i < writes; ++i) {
        std::string value;
        append_base64(value, "late " + std::to_string(i));
        client.update("INSERT DATA { GRAPH <" + graph + "> { <" + graph + "/data/late"
                      + std::to_string(i) + "> <urn:strata:value> \"" + value + "\" } }");
        std::this_thread::sleep_for(std::chrono::milliseconds{40});
      }
    }};
  };
  SECTION("the open reads the graph once it stayed unchanged") {
    o.graph.timeout_ms = 10000;
    auto running = ghost(15);
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    std::map<std::string, bytes> opened;
    {
      graph_engine e{o};
      opened = dump(e);
    }
    running.join();
    CHECK(opened.size() == 16);
    CHECK(opened["late14"] == b("late 14"));
    CHECK(dump(graph_engine{o}) == opened);
  }
  SECTION("a graph that keeps changing past timeout_ms is CONSISTENCY_VIOLATION") {
    o.graph.timeout_ms = 1500;
    auto running = ghost(60);
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    try {
      graph_engine e{o};
      FAIL("opened");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::consistency_violation);
      CHECK_THAT(err.what(), Catch::Contains("did not stop changing"));
    }
    running.join();
    // Still marked: the next open waits again, and then reads it all.
    CHECK(std::filesystem::exists(dir / "g/strata.graph.unsettled"));
    CHECK(dump(graph_engine{o}).size() == 61);
  }
}

TEST_CASE("the server killed and restarted: writes fail clearly meanwhile, nothing committed is "
          "lost") {
  test::temp_dir dir;
  auto server_dir = dir / "virtuoso";
  auto server = std::make_unique<test::virtuoso>(test::virtuoso::start(server_dir, false));
  auto o = options(dir / "g", test::virtuoso_settings(server->url()));
  o.graph.timeout_ms = 5000;
  std::map<std::string, bytes> model;
  graph_engine e{o};
  for (int i = 0; i < 50; ++i) {
    auto k = "k" + std::to_string(i);
    model[k] = b("v" + std::to_string(i));
    REQUIRE(write(e, {operation::set(k, model[k])}).code == errc::none);
  }
  server->kill();
  // Nothing reached the server: the group did not happen, and the engine
  // is not broken.
  auto res = write(e, {operation::set("k0", b("lost"))});
  CHECK(res.code == errc::connection_failed);
  CHECK(!res.logged);
  CHECK(e.broken().empty());
  CHECK(get(e, "k0") == model["k0"]);
  server = std::make_unique<test::virtuoso>(test::virtuoso::start(server_dir, false));
  model["after"] = b("restart");
  REQUIRE(write(e, {operation::set("after", model["after"])}).code == errc::none);
  CHECK(dump(graph_engine{o}) == model);
  // Every acknowledged write survived the server's crash.
  server->kill();
  server = std::make_unique<test::virtuoso>(test::virtuoso::start(server_dir, false));
  CHECK(dump(graph_engine{o}) == model);
}

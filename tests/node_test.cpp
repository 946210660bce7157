// Multi-process tests: real strata-node processes on 127.0.0.1 (ephemeral
// ports), driven by strata-cli and by a C++ remote client.

#include <catch2/catch.hpp>

#include <fstream>

#include <atomic>
#include <csignal>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <cereal/types/string.hpp>
#include <caf/io/middleman.hpp>

#include "strata/routing.hpp"
#include "strata/client.hpp"
#include "strata/codec.hpp"
#include "tests/fixture.hpp"
#include "strata/events.hpp"
#include "tests/process.hpp"

using namespace strata;
using strata::test::fixture;
using strata::test::node_process;
using strata::test::run;

namespace {

struct point {
  int64_t x = 0;
  int64_t y = 0;
  std::string label;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(x), CEREAL_NVP(y), CEREAL_NVP(label));
  }
};

std::vector<std::string> node_args(const std::string& data,
                                   std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--data", data, "--host", "127.0.0.1",
                                "--port", "0", "--log-level", "warning"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

storage_actor connect(fixture& f, uint16_t port) {
  auto h = f.sys().middleman().remote_actor<storage_actor>("127.0.0.1", port);
  if (!h)
    throw std::runtime_error("connect failed: " + f.sys().render(h.error()));
  return *h;
}

} // namespace

TEST_CASE("strata-cli drives a node") {
  fixture f;
  node_process node{node_args(f.dir / "data", {"--shards", "3"}), f.dir / "node.log"};
  CHECK(node.first_line() == "listening on 127.0.0.1:" + std::to_string(node.port()));
  auto port = std::to_string(node.port());
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--port", port});
    return run("strata-cli", args, f.dir.path());
  };
  auto r = cli({"set", "fruit:apple", "red"});
  CHECK(r.code == 0);
  CHECK(r.out == "OK\n");
  REQUIRE(cli({"set", "fruit:banana", "yellow"}).code == 0);
  REQUIRE(cli({"set", "veg:kale", "green"}).code == 0);
  r = cli({"get", "fruit:apple"});
  CHECK(r.code == 0);
  CHECK(r.out == "red\n");
  r = cli({"--json", "get", "fruit:apple"});
  CHECK(r.out == "{\"key\":\"fruit:apple\",\"value\":\"red\"}\n");
  r = cli({"get", "fruit:cherry"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "not found\n");
  CHECK(cli({"has", "veg:kale"}).out == "true\n");
  CHECK(cli({"size"}).out == "3\n");
  CHECK(cli({"keys"}).out == "fruit:apple\nfruit:banana\nveg:kale\n");
  CHECK(cli({"keys", "--prefix", "fruit:", "--limit", "1"}).out == "fruit:apple\n");
  CHECK(cli({"scan", "--prefix", "fruit:"}).out
        == "fruit:apple\tred\nfruit:banana\tyellow\n");
  CHECK(cli({"--json", "keys"}).out
        == "[\"fruit:apple\",\"fruit:banana\",\"veg:kale\"]\n");
  CHECK(cli({"--json", "scan", "--prefix", "veg"}).out
        == "[{\"key\":\"veg:kale\",\"value\":\"green\"}]\n");
  CHECK(cli({"del", "veg:kale"}).out == "true\n");
  CHECK(cli({"del", "veg:kale"}).out == "false\n");
  // Bad input: a clear error and a non-zero exit; the node keeps serving.
  r = cli({"set", std::string(512, 'k'), "v"});
  CHECK(r.code == 1);
  CHECK(r.err == "error: INVALID_KEY: key is 512 bytes; keys are 1 to 511 bytes\n");
  r = cli({"get", ""});
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error: INVALID_KEY: ", 0) == 0);
  r = cli({"frobnicate"});
  CHECK(r.code == 2);
  r = cli({"--timeout", "0", "size"});
  CHECK(r.code == 2);
  CHECK(r.err.rfind("error: --timeout must be at least 1 ms\n", 0) == 0);
  // `--` ends the options: keys and values may start with a dash.
  CHECK(cli({"set", "--", "-k", "--v"}).out == "OK\n");
  CHECK(cli({"get", "--", "-k"}).out == "--v\n");
  CHECK(cli({"--json", "scan", "--prefix", "-"}).out
        == "[{\"key\":\"-k\",\"value\":\"--v\"}]\n");
  CHECK(cli({"del", "--", "-k"}).out == "true\n");
  CHECK(cli({"clear"}).code == 0);
  CHECK(cli({"size"}).out == "0\n");
  // Documents, queries and indexes.
  {
    std::ofstream jsonl{f.dir / "books.jsonl"};
    jsonl << R"({"key": "b1", "value": {"author": "Lem", "year": 1961}})" << "\n"
          << R"({"key": "b2", "value": {"author": "Herbert", "year": 1965}})" << "\n"
          << "\n"
          << R"({"key": "b3", "value": {"author": "Lem", "year": 1964}})" << "\n";
  }
  r = cli({"load", f.dir / "books.jsonl"});
  CHECK(r.code == 0);
  CHECK(r.out == "loaded 3\n");
  CHECK(cli({"set", "--doc", "b4", R"({"author": "Asimov", "year": 1951})"}).out == "OK\n");
  CHECK(cli({"get", "b4"}).out == "{\"author\":\"Asimov\",\"year\":1951}\n");
  r = cli({"index", "create", "by_year", "year:desc", "--wait"});
  CHECK(r.code == 0);
  CHECK(r.err.find("4/4") != std::string::npos);
  CHECK(cli({"index", "list"}).out.rfind("by_year\tyear:desc\tready 4/4\tentries 4", 0) == 0);
  auto lem = R"({"where": {"field": "author", "operator": "eq", "value": "Lem"},
                 "orderBy": [{"field": "year", "direction": "desc"}], "select": ["year"]})";
  CHECK(cli({"query", lem}).out == "b3\t{\"year\":1964}\nb1\t{\"year\":1961}\n");
  CHECK(cli({"--json", "query", lem}).out
        == "[{\"key\":\"b3\",\"value\":{\"year\":1964},\"score\":0},"
           "{\"key\":\"b1\",\"value\":{\"year\":1961},\"score\":0}]\n");
  CHECK(cli({"count", R"({"where": {"field": "year", "operator": "lt", "value": 1962}})"}).out
        == "2\n");
  CHECK(cli({"aggregate", R"([{"group": {"by": ["author"], "fields": {"n": {"count": "*"}}}},
                              {"sort": [{"field": "n", "direction": "desc"}]}, {"limit": 1}])"})
          .out
        == "{\"author\":\"Lem\",\"n\":2}\n");
  r = cli({"explain", R"({"orderBy": [{"field": "year", "direction": "desc"}], "limit": 1})"});
  CHECK(r.out.find("index by_year (order)") != std::string::npos);
  CHECK(cli({"set", "--doc", "b5", R"({"author": "Lem", "title": "Solaris and the ocean"})"}).out
        == "OK\n");
  r = cli({"index", "create", "titles", "title:text", "--wait"});
  CHECK(r.code == 0);
  CHECK(cli({"index", "list"}).out.find("titles\ttitle:text\tready 5/5") != std::string::npos);
  r = cli({"--json", "query", R"({"where": {"field": "title", "operator": "text", "value": "Oceans"},
                                  "select": ["author"]})"});
  CHECK(r.out.rfind(R"([{"key":"b5","value":{"author":"Lem"},"score":0.)", 0) == 0);
  r = cli({"query", R"({"where": {"field": "year", "operator": "between", "value": 1}})"});
  CHECK(r.code == 1);
  CHECK(r.err == "error: QUERY_ERROR: where.operator: unknown operator 'between'\n");
  r = cli({"set", "--doc", "bad", "{not json"});
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error: INVALID_VALUE: not a JSON value", 0) == 0);
  CHECK(cli({"index", "drop", "by_year"}).out == "OK\n");
  r = cli({"index", "drop", "by_year"});
  CHECK(r.code == 1);
  CHECK(r.err == "error: KEY_NOT_FOUND: no index named by_year\n");
  CHECK(node.stop(SIGTERM) == 0);
  // Nothing listens any more (it keeps trying for the connect timeout).
  r = cli({"--connect-timeout", "500", "size"});
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error: CONNECTION_FAILED: ", 0) == 0);
}

TEST_CASE("strata-cli watches and reads the change log of a node") {
  fixture f;
  node_process node{node_args(f.dir / "data", {"--shards", "2"}), f.dir / "node.log"};
  auto port = std::to_string(node.port());
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--port", port});
    return run("strata-cli", args, f.dir.path());
  };
  REQUIRE(cli({"set", "user:1", "ada"}).code == 0);
  REQUIRE(cli({"set", "order:1", "x"}).code == 0);
  REQUIRE(cli({"set", "user:1", "grace"}).code == 0);
  REQUIRE(cli({"del", "user:1"}).code == 0);
  // The retained log from its start, then the token after it.
  auto r = cli({"changes"});
  REQUIRE(r.code == 0);
  CHECK(r.out.find("set\tuser:1\tada\nset\torder:1\tx\n") != std::string::npos);
  auto last_line = r.out.substr(r.out.rfind("resume "));
  auto token = last_line.substr(7, last_line.size() - 8);
  CHECK(resume_token::parse(token));
  // A watch from the oldest change stops after --limit changes of its
  // pattern and prints where it stands.
  r = cli({"--json", "watch", "user:*", "--from", "oldest", "--limit", "3"});
  REQUIRE(r.code == 0);
  std::istringstream lines{r.out};
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);)
    got.push_back(line);
  REQUIRE(got.size() == 4);
  CHECK(got[0].find("\"type\":\"set\",\"key\":\"user:1\",\"value\":\"ada\"") != std::string::npos);
  CHECK(got[1].find("\"value\":\"grace\",\"old\":\"ada\"") != std::string::npos);
  CHECK(got[2].find("\"type\":\"delete\"") != std::string::npos);
  CHECK(got[3].rfind("{\"resume\":\"t1:", 0) == 0);
  // Nothing after the token: a watch from it sees only what comes next.
  REQUIRE(cli({"set", "user:2", "new"}).code == 0);
  r = cli({"watch", "*", "--from", token, "--limit", "1"});
  REQUIRE(r.code == 0);
  CHECK(r.out.rfind("set\tuser:2\tnew\nresume t1:", 0) == 0);
  // Bad input: clear errors.
  r = cli({"watch", "(", "--regex", "--limit", "1"});
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error: QUERY_ERROR: ", 0) == 0);
  r = cli({"changes", "--from", "t1:1"});
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error: INVALID_VALUE: ", 0) == 0);
}

TEST_CASE("a remote client's watch: live changes, and an error event with its position "
          "when the node dies") {
  using namespace std::chrono_literals;
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto h = connect_store(f.sys(), "127.0.0.1", node.port());
  REQUIRE(h);
  blocking_store<std::string> db{f.sys(), *h};
  observer<std::string> events{f.sys(), *h};
  std::mutex mtx;
  std::vector<std::string> seen;
  std::optional<error_event> ended;
  auto sub = events.watch(
    "user:*",
    [&](const typed_change<std::string>& c) {
      std::lock_guard<std::mutex> guard{mtx};
      seen.push_back(c.key + "=" + c.new_value.value_or("-") + " was "
                     + c.old_value.value_or("-"));
    },
    [&](const error_event& e) {
      std::lock_guard<std::mutex> guard{mtx};
      ended = e;
    });
  REQUIRE(sub);
  REQUIRE_FALSE(db.set("user:1", "a"));
  REQUIRE_FALSE(db.set("other", "b"));
  REQUIRE_FALSE(db.set("user:1", "c"));
  auto until = std::chrono::steady_clock::now() + 20s;
  auto count = [&] {
    std::lock_guard<std::mutex> guard{mtx};
    return seen.size();
  };
  while (count() < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  {
    std::lock_guard<std::mutex> guard{mtx};
    CHECK(seen == std::vector<std::string>{"user:1=a was -", "user:1=c was a"});
  }
  // Interceptors work across processes too.
  auto veto = events.on(event_kind::before_set,
                        before_handler<std::string>([](const typed_event<std::string>& e) {
                          return e.value == std::optional<std::string>{"no"}
                                   ? make_error(errc::invalid_value, "no")
                                   : caf::error{};
                        }));
  REQUIRE(veto);
  CHECK(code_of(db.set("user:2", "no")) == errc::invalid_value);
  CHECK(*db.get("user:2") == std::nullopt);
  veto->unsubscribe();
  auto before_kill = sub->position();
  node.stop(SIGKILL);
  while (std::chrono::steady_clock::now() < until) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (ended)
        break;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::lock_guard<std::mutex> guard{mtx};
  REQUIRE(ended);
  CHECK(code_of(ended->error) == errc::connection_lost);
  // The position is the subscriber's own: resuming from it loses nothing.
  CHECK(ended->position == before_kill);
  *h = nullptr;
}

TEST_CASE("a node on the memory engine: saved on a clean stop, gone after a crash") {
  fixture f;
  auto data = f.dir / "data";
  auto args = node_args(data, {"--shards", "2", "--engine", "memory", "--memory-snapshot"});
  auto cli = [&](uint16_t port, std::vector<std::string> a) {
    a.insert(a.begin(), {"--port", std::to_string(port)});
    return run("strata-cli", a, f.dir.path());
  };
  {
    node_process node{args, f.dir / "node.log"};
    for (int i = 0; i < 20; ++i)
      REQUIRE(cli(node.port(), {"set", "k" + std::to_string(i), "v"}).code == 0);
    CHECK(cli(node.port(), {"size"}).out == "20\n");
    // No LMDB files: the shards live in memory.
    CHECK(!std::filesystem::exists(data + "/shard-000/data.mdb"));
    CHECK(node.stop(SIGTERM) == 0);
  }
  CHECK(std::filesystem::exists(data + "/shard-000/memory.snapshot"));
  {
    node_process node{args, f.dir / "node.log"};
    CHECK(cli(node.port(), {"size"}).out == "20\n");
    CHECK(cli(node.port(), {"get", "k7"}).out == "v\n");
    REQUIRE(cli(node.port(), {"set", "after", "x"}).code == 0);
    // Killed: the shard that changed since its snapshot loses everything
    // (its snapshot went with the first write, so nothing older comes back);
    // the other one had not changed, and its snapshot is still its state.
    ::kill(node.pid(), SIGKILL);
  }
  {
    node_process node{args, f.dir / "node.log"};
    auto changed = strata::routing::shard_of("after", 2);
    size_t kept = 0;
    for (int i = 0; i < 20; ++i)
      kept += strata::routing::shard_of("k" + std::to_string(i), 2) != changed ? 1 : 0;
    REQUIRE(kept > 0);
    REQUIRE(kept < 20);
    CHECK(cli(node.port(), {"size"}).out == std::to_string(kept) + "\n");
    CHECK(cli(node.port(), {"get", "after"}).code == 1);
    CHECK(node.stop(SIGTERM) == 0);
  }
  // An engine's directory is not opened by the other one.
  auto lmdb_args = node_args(f.dir / "lmdb", {"--shards", "2"});
  {
    node_process node{lmdb_args, f.dir / "node.log"};
    REQUIRE(cli(node.port(), {"set", "kept", "1"}).code == 0);
    CHECK(node.stop(SIGTERM) == 0);
  }
  auto as_memory = node_args(f.dir / "lmdb", {"--shards", "2", "--engine", "memory"});
  CHECK_THROWS(node_process{as_memory, f.dir / "refused.log"});
  CHECK_THAT(strata::test::slurp(f.dir / "refused.log"), Catch::Contains("holds a shard of engine lmdb"));
  auto bad = node_args(f.dir / "other", {"--engine", "rocks"});
  CHECK_THROWS(node_process{bad, f.dir / "bad.log"});
  CHECK_THAT(strata::test::slurp(f.dir / "bad.log"), Catch::Contains("engine must be lmdb, memory, sqlite, json or graph"));
}

TEST_CASE("a C++ client reaches a node with typed requests") {
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto remote = connect(f, node.port());
  {
    blocking_store<point> points{f.sys(), remote, std::chrono::seconds(10)};
    for (int i = 0; i < 120; ++i)
      REQUIRE(!points.set("p:" + std::to_string(1000 + i),
                          point{i, -i, "point " + std::to_string(i)}));
    auto p = points.get("p:1007");
    REQUIRE(p);
    REQUIRE(*p);
    CHECK((*p)->y == -7);
    CHECK((*p)->label == "point 7");
    CHECK(*points.size() == 120);
    scan_options opts;
    opts.page_size = 16;
    int64_t expected = 0;
    for (auto& [k, v] : points.entries(opts)) {
      REQUIRE(k == "p:" + std::to_string(1000 + expected));
      REQUIRE(v.x == expected++);
    }
    CHECK(expected == 120);
    auto many = points.get_many({"p:1000", "p:1119", "nope"});
    REQUIRE(many);
    CHECK(many->size() == 2);
    // Errors cross the wire with their code and message.
    auto bad = points.get(std::string(512, 'k'));
    REQUIRE(!bad);
    CHECK(render(bad.error())
          == "INVALID_KEY: key is 512 bytes; keys are 1 to 511 bytes");
    auto r = points.batch({typed_operation<point>::set("q", point{}),
                           typed_operation<point>::del("")});
    REQUIRE(r);
    CHECK(!r->success);
    CHECK(r->errors.size() == 1);
    CHECK(!*points.has("q"));
    // A unique index, and its actor on the node answering this client.
    index_spec u;
    u.name = "by_label";
    u.fields = {{"label", "btree", false}};
    u.unique = true;
    auto indexed = caf::actor_cast<indexed_storage_actor>(remote);
    REQUIRE_FALSE(f.ask_void(indexed, atom::create_index_v, u));
    auto idx = f.ask<index_actor>(indexed, atom::index_v, std::string{"by_label"});
    REQUIRE(idx);
    std::string state;
    for (int i = 0; i < 1000 && state != "ready"; ++i) {
      auto info = f.ask<index_info>(*idx, atom::info_v);
      REQUIRE(info);
      state = info->state;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(state == "ready");
    auto found = f.ask<std::vector<query_result>>(
      *idx, atom::find_many_v,
      std::string{R"({"where":{"field":"label","operator":"eq","value":"point 7"}})"});
    REQUIRE(found);
    REQUIRE(found->size() == 1);
    CHECK(found->at(0).key == "p:1007");
    auto dup = points.set("p:2000", point{1, 1, "point 7"});
    REQUIRE(dup);
    CHECK(code_of(dup) == errc::duplicate_key);
    CHECK(!*points.has("p:2000"));
  }
  remote = nullptr;
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("a remote client runs transactions on a node") {
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto h = f.sys().middleman().remote_actor<observable_storage_actor>("127.0.0.1",
                                                                        node.port());
  REQUIRE(h);
  {
    blocking_store<int64_t> db{f.sys(), *h, std::chrono::seconds(10)};
    REQUIRE(!db.set_many({{"a", 10}, {"b", 0}}));
    // The transaction actor lives on the node; its handle crossed the wire.
    auto moved = db.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<int> {
      auto a = tx.get("a");
      auto b = tx.get("b");
      if (!a || !b)
        return a ? b.error() : a.error();
      if (auto err = tx.set("a", **a - 4))
        return err;
      if (auto err = tx.set("b", **b + 4))
        return err;
      return 4;
    });
    REQUIRE(moved);
    CHECK(**db.get("a") == 6);
    CHECK(**db.get("b") == 4);
    // A conflict crosses the wire with its code.
    auto t1 = db.begin();
    REQUIRE(t1);
    CHECK(**t1->get("a") == 6);
    REQUIRE(!t1->set("a", 100));
    REQUIRE(!db.set("a", 7));
    CHECK(code_of(t1->commit()) == errc::version_conflict);
    CHECK(**db.get("a") == 7);
  }
  *h = nullptr;
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("a remote client's transactions end on the node a timeout after their deadline") {
  // CAF 0.17 keeps an actor whose handle crossed the network in the node's
  // registry until the actor ends, and the node never learns that the
  // client dropped the handle: without an end of their own, the node would
  // keep every transaction a remote client began until it stops.
  using namespace std::chrono_literals;
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto h = f.sys().middleman().remote_actor<observable_storage_actor>("127.0.0.1",
                                                                        node.port());
  REQUIRE(h);
  txn_options o;
  o.timeout_ms = 1000;
  auto committed = f.ask<transaction_actor>(*h, atom::begin_v, o);
  auto abandoned = f.ask<transaction_actor>(*h, atom::begin_v, o);
  REQUIRE(committed);
  REQUIRE(abandoned);
  REQUIRE(!f.ask_void(*committed, atom::set_v, std::string{"k"}, bytes{1}));
  REQUIRE(!f.ask_void(*committed, atom::commit_v));
  REQUIRE(!f.ask_void(*abandoned, atom::set_v, std::string{"j"}, bytes{2}));
  auto state = [&](const transaction_actor& tx) { return f.ask<txn_info>(tx, atom::info_v); };
  CHECK(state(*committed)->state == txn_state::committed);
  CHECK(state(*abandoned)->state == txn_state::active);
  // Past the deadline: the abandoned one timed out; both still answer.
  std::this_thread::sleep_for(1100ms);
  auto late = state(*abandoned);
  REQUIRE(late);
  CHECK(late->state == txn_state::aborted);
  CHECK(state(*committed)->state == txn_state::committed);
  // A timeout later both have ended: requests to them fail.
  std::this_thread::sleep_for(1900ms);
  CHECK_FALSE(state(*committed));
  CHECK_FALSE(state(*abandoned));
  // The committed write is there, the abandoned one is not.
  CHECK(f.ask<maybe_bytes>(*h, atom::get_v, std::string{"k"})->value() == bytes{1});
  CHECK(!*f.ask<maybe_bytes>(*h, atom::get_v, std::string{"j"}));
  *h = nullptr;
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("acknowledged writes survive a restart and a kill -9") {
  auto engine = GENERATE(as<std::string>{}, "lmdb", "sqlite", "json", "graph");
  INFO("engine " << engine);
  fixture f;
  auto data = f.dir / "data";
  auto node_args = [&](const std::string& dir) {
    std::vector<std::string> extra{"--engine", engine, "--access", "random"};
    if (engine == "graph") {
      auto g = strata::test::test_graph();
      extra.insert(extra.end(), {"--graph-url", g.url, "--graph-user", g.username,
                                 "--graph-password", g.password});
    }
    return ::node_args(dir, extra);
  };
  {
    node_process node{node_args(data), f.dir / "node.log"};
    // The node says which engine its shards run on, and what it can do.
    auto info = run("strata-cli", {"--port", std::to_string(node.port()), "--json", "info"},
                    f.dir.path());
    REQUIRE(info.code == 0);
    CHECK_THAT(info.out, Catch::Contains("\"engine\":\"" + engine + "\"")
                           && Catch::Contains("\"durable\""));
    // And how the access hint tuned it.
    if (engine == "lmdb")
      CHECK_THAT(info.out, Catch::Contains("\"readahead=off\""));
    else if (engine == "sqlite")
      CHECK_THAT(info.out, Catch::Contains("\"mmap_size=")
                             && !Catch::Contains("\"mmap_size=0\""));
    else if (engine == "graph")
      CHECK_THAT(info.out, Catch::Contains("\"graph=urn:strata:")
                             && Catch::Contains("\"endpoint=" + strata::test::test_graph().url));
    else
      CHECK_THAT(info.out, Catch::Contains("\"tuning\":[]"));
    auto remote = connect(f, node.port());
    blocking_store<std::string> s{f.sys(), remote, std::chrono::seconds(10)};
    for (int i = 0; i < 200; ++i)
      REQUIRE(!s.set("clean:" + std::to_string(i), "v" + std::to_string(i)));
    CHECK(node.stop(SIGTERM) == 0);
  }
  {
    node_process node{node_args(data), f.dir / "node.log"};
    auto remote = connect(f, node.port());
    blocking_store<std::string> s{f.sys(), remote, std::chrono::seconds(10)};
    CHECK(*s.size() == 200);
    CHECK(**s.get("clean:199") == "v199");
    // Every write acknowledged before the kill is durable.
    for (int i = 0; i < 300; ++i)
      REQUIRE(!s.set("killed:" + std::to_string(i), "w" + std::to_string(i)));
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process node{node_args(data), f.dir / "node.log"};
  auto remote = connect(f, node.port());
  blocking_store<std::string> s{f.sys(), remote, std::chrono::seconds(10)};
  CHECK(*s.size() == 500);
  for (int i = 0; i < 300; ++i)
    REQUIRE(**s.get("killed:" + std::to_string(i)) == "w" + std::to_string(i));
  for (int i = 0; i < 200; ++i)
    REQUIRE(**s.get("clean:" + std::to_string(i)) == "v" + std::to_string(i));
}

TEST_CASE("a node with a full map keeps serving") {
  fixture f;
  node_process node{node_args(f.dir / "data", {"--shards", "1", "--map-size",
                                               "1048576"}),
                    f.dir / "node.log"};
  auto remote = connect(f, node.port());
  blocking_store<std::string> s{f.sys(), remote, std::chrono::seconds(10)};
  std::vector<std::string> stored;
  caf::error err;
  for (int i = 0; i < 5000 && !err; ++i) {
    auto k = "k" + std::to_string(i);
    err = s.set(k, std::string(900, 'x'));
    if (!err)
      stored.push_back(k);
  }
  REQUIRE(code_of(err) == errc::storage_full);
  CHECK(render(err).find("STORAGE_FULL: ") == 0);
  for (auto& k : stored)
    REQUIRE(*s.has(k));
  // Deleting frees space, and writes resume.
  for (size_t i = 0; i < stored.size() / 2; ++i)
    REQUIRE(*s.del(stored[i]));
  CHECK(*s.size() == stored.size() - stored.size() / 2);
  CHECK(!s.set("small", "fits"));
  auto r = run("strata-cli", {"--port", std::to_string(node.port()), "get", "small"},
               f.dir.path());
  CHECK(r.out == "\"fits\"\n"); // a typed string value prints as JSON
}

TEST_CASE("a second node on the same directory is refused") {
  fixture f;
  node_process first{node_args(f.dir / "data"), f.dir / "node.log"};
  auto r = run("strata-node", node_args(f.dir / "data"), f.dir.path());
  CHECK(r.code == 1);
  CHECK(r.err.find("error: CONNECTION_FAILED: data directory") != std::string::npos);
  CHECK(r.err.find("in use") != std::string::npos);
  r = run("strata-node", node_args(f.dir / "other", {"--sync", "sometimes"}),
          f.dir.path());
  CHECK(r.code == 1);
  CHECK(r.err == "error: INVALID_VALUE: sync must be durable or nosync, got "
                 "'sometimes'\n");
  r = run("strata-node", node_args(f.dir / "other", {"--shards", "0"}),
          f.dir.path());
  CHECK(r.code == 1);
  CHECK(r.err == "error: INVALID_VALUE: shards must be 1 to 256, got 0\n");
  r = run("strata-node", node_args(f.dir / "other", {"--routers", "0"}),
          f.dir.path());
  CHECK(r.code == 1);
  CHECK(r.err == "error: INVALID_VALUE: routers must be 1 to 64, got 0\n");
}

#ifdef STRATA_FAULT_INJECTION

TEST_CASE("a commit answered after the client's deadline is learned, not rerun") {
  // The store node stops itself right after logging a two-phase commit's
  // decision and runs again after the client's request timed out. The client
  // must learn that the commit happened: no TRANSACTION_ABORTED, and no
  // second run of the executor.
  using namespace std::chrono_literals;
  fixture f;
  ::setenv("STRATA_STOP_AT", "coordinator.after_decision:1", 1);
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  ::unsetenv("STRATA_STOP_AT");
  auto h = f.sys().middleman().remote_actor<observable_storage_actor>("127.0.0.1",
                                                                        node.port());
  REQUIRE(h);
  {
    blocking_store<int64_t> db{f.sys(), *h, 1s};
    // Two keys on different shards of the node's four: a two-phase commit.
    std::vector<std::string> keys{"a"};
    for (int i = 0; keys.size() < 2; ++i) {
      auto k = "b" + std::to_string(i);
      if (routing::shard_of(k, 4) != routing::shard_of(keys[0], 4))
        keys.push_back(k);
    }
    REQUIRE(!db.set(keys[0], 100)); // single keys: no decision to log
    REQUIRE(!db.set(keys[1], 200));
    // Once the node has stopped, it stays stopped past the client's 1 s.
    std::thread resume{[pid = node.pid()] {
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto stat = strata::test::slurp("/proc/" + std::to_string(pid) + "/stat");
        auto close = stat.rfind(')');
        if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'T')
          break;
        std::this_thread::sleep_for(10ms);
      }
      std::this_thread::sleep_for(1500ms);
      ::kill(pid, SIGCONT);
    }};
    int runs = 0;
    auto start = std::chrono::steady_clock::now();
    auto r = db.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<bool> {
      ++runs;
      for (auto& k : keys) {
        auto v = tx.get(k);
        if (!v)
          return v.error();
        if (auto err = tx.set(k, v->value_or(0) + 10))
          return err;
      }
      return true;
    });
    auto took = std::chrono::steady_clock::now() - start;
    resume.join();
    INFO((r ? "committed" : render(r.error())));
    REQUIRE(r);
    CHECK(runs == 1);
    CHECK(took >= 1s); // the commit's own answer came too late
    CHECK(**db.get(keys[0]) == 110);
    CHECK(**db.get(keys[1]) == 210);
  }
  *h = nullptr;
  CHECK(node.stop(SIGTERM) == 0);
}

#endif

TEST_CASE("remote clients learn at once that their store node died") {
  // Eight clients run transactions against a store node; a kill -9 of the
  // node must end every call in flight at once (CONNECTION_LOST), not after
  // the clients' request timeout (30 s here), and transaction() must not
  // wait again for a rollback over the dead connection.
  using namespace std::chrono_literals;
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto h = connect_store(f.sys(), "127.0.0.1", node.port());
  REQUIRE(h);
  constexpr int clients = 8;
  std::atomic<bool> killed{false};
  std::atomic<int64_t> killed_at{0};
  std::vector<std::optional<std::chrono::steady_clock::duration>> took(clients);
  std::vector<caf::error> last(clients);
  std::atomic<int> running{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      blocking_store<int64_t> db{f.sys(), *h, 30s};
      ++running;
      for (int i = 0;; ++i) {
        auto r = db.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<bool> {
          auto key = "c" + std::to_string(c) + "/" + std::to_string(i % 4);
          auto v = tx.get(key);
          if (!v)
            return v.error();
          if (auto err = tx.set(key, v->value_or(0) + 1))
            return err;
          return true;
        });
        if (!r) {
          auto now = std::chrono::steady_clock::now().time_since_epoch().count();
          if (killed) {
            took[c] = std::chrono::steady_clock::duration{now - killed_at.load()};
            last[c] = r.error();
            return;
          }
          last[c] = r.error(); // failed before the kill: checked below
          return;
        }
      }
    });
  while (running < clients)
    std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(300ms); // all of them busy
  killed_at = std::chrono::steady_clock::now().time_since_epoch().count();
  killed = true;
  node.stop(SIGKILL);
  for (auto& t : threads)
    t.join();
  for (int c = 0; c < clients; ++c) {
    INFO("client " << c << ": " << render(last[c]));
    REQUIRE(took[c]);
    CHECK(*took[c] < 2s);
    auto code = code_of(last[c]);
    CHECK((code == errc::connection_lost || code == errc::connection_failed));
  }
  *h = nullptr;
}

TEST_CASE("after its node died a transaction answers strata errors and not CAF's") {
  // Between two requests of a transaction the connection goes: the request
  // after that must fail with a strata error that says so, whatever moment
  // the client sends it.
  using namespace std::chrono_literals;
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto h = connect_store(f.sys(), "127.0.0.1", node.port());
  REQUIRE(h);
  {
    blocking_store<int64_t> db{f.sys(), *h, 10s};
    auto tx = db.begin();
    REQUIRE(tx);
    REQUIRE(!tx->set("a", 1));
    node.stop(SIGKILL);
    auto first = tx->get("a");
    REQUIRE(!first);
    auto code = code_of(first.error());
    CHECK((code == errc::connection_lost || code == errc::connection_failed));
    std::this_thread::sleep_for(100ms); // the stand-in has seen the loss
    for (int i = 0; i < 3; ++i) {
      auto again = tx->get("a");
      REQUIRE(!again);
      INFO(render(again.error()));
      CHECK(code_of(again.error()) == errc::connection_failed);
    }
    INFO(render(tx->commit()));
    CHECK(code_of(tx->commit()) == errc::connection_failed);
    CHECK(code_of(tx->rollback()) == errc::connection_failed);
    CHECK(code_of(db.set("b", 2)) == errc::connection_failed);
  }
  *h = nullptr;
}

TEST_CASE("strata-cli prints keys and values that are not UTF-8 losslessly as JSON") {
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto remote = connect(f, node.port());
  {
    blocking_store<std::string> db{f.sys(), remote, std::chrono::seconds(10)};
    // A key with bytes that are not UTF-8, and a raw value with them too.
    std::string key{"bin:\xff\x00\xc3", 7};
    bytes value = encode_raw(std::string{"\xfe\x41", 2});
    REQUIRE(!f.ask_void(remote, atom::set_v, key, value));
    auto r = run("strata-cli", {"--port", std::to_string(node.port()), "--json", "keys"},
                 f.dir.path());
    // base64 of 62 69 6e 3a ff 00 c3
    CHECK(r.out == "[{\"$bytes\":\"YmluOv8Aww==\"}]\n");
    r = run("strata-cli", {"--port", std::to_string(node.port()), "--json", "scan"},
            f.dir.path());
    // base64 of fe 41
    CHECK(r.out == "[{\"key\":{\"$bytes\":\"YmluOv8Aww==\"},\"value\":{\"$bytes\":\"/kE=\"}}]\n");
  }
  remote = nullptr;
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("strata-cli keeps trying to reach a busy node until --connect-timeout") {
  // A node that cannot answer CAF's handshake within one heartbeat (here:
  // stopped for 2 s) made every connect fail after ~0.5 s.
  using namespace std::chrono_literals;
  fixture f;
  node_process node{node_args(f.dir / "data"), f.dir / "node.log"};
  auto port = std::to_string(node.port());
  REQUIRE(run("strata-cli", {"--port", port, "set", "k", "v"}, f.dir.path()).code == 0);
  ::kill(node.pid(), SIGSTOP);
  strata::test::run_result r;
  auto start = std::chrono::steady_clock::now();
  std::thread cli{[&] {
    r = run("strata-cli", {"--port", port, "--connect-timeout", "20000", "get", "k"},
            f.dir.path());
  }};
  std::this_thread::sleep_for(2s);
  ::kill(node.pid(), SIGCONT);
  cli.join();
  auto took = std::chrono::steady_clock::now() - start;
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out == "v\n");
  CHECK(took >= 2s);
  // A short limit still fails, with a clear error.
  ::kill(node.pid(), SIGSTOP);
  start = std::chrono::steady_clock::now();
  r = run("strata-cli", {"--port", port, "--connect-timeout", "800", "get", "k"},
          f.dir.path());
  took = std::chrono::steady_clock::now() - start;
  ::kill(node.pid(), SIGCONT);
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error: CONNECTION_FAILED: cannot reach a strata node at 127.0.0.1:"
                    + port + " within 800 ms",
                    0)
        == 0);
  CHECK(took < 5s);
  CHECK(node.stop(SIGTERM) == 0);
}

TEST_CASE("max_value_size counts the user's bytes, not strata's value header") {
  fixture f;
  node_process node{node_args(f.dir / "data", {"--max-value-size", "1000"}),
                    f.dir / "node.log"};
  auto port = std::to_string(node.port());
  auto set = [&](size_t n) {
    return run("strata-cli", {"--port", port, "set", "k", std::string(n, 'x')},
               f.dir.path());
  };
  CHECK(set(1000).code == 0);
  auto r = set(1001);
  CHECK(r.code == 1);
  CHECK(r.err == "error: INVALID_VALUE: value is 1001 bytes, above max_value_size (1000 "
                 "bytes)\n");
  // Bytes without strata's header (a client of its own) count whole.
  auto remote = connect(f, node.port());
  CHECK(!f.ask_void(remote, atom::set_v, std::string{"raw"}, bytes(1000, 1)));
  CHECK(code_of(f.ask_void(remote, atom::set_v, std::string{"raw"}, bytes(1001, 1)))
        == errc::invalid_value);
  remote = nullptr;
  CHECK(node.stop(SIGTERM) == 0);
}

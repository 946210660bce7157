// The spec's error codes on every engine: each code that can arise from an
// engine's store is made to arise, with the same code on every engine, and the
// store keeps working afterwards. Prints the matrix of codes by engine.
//
// Codes that do not depend on the engine are exercised once per engine all the
// same (CONNECTION_FAILED from an unusable directory, CONNECTION_LOST from a
// node of that engine killed with SIGKILL). DEADLOCK_DETECTED cannot arise
// from strata: nothing in it waits for a lock (docs/transactions.md); only
// the graph engine's server can keep aborting a request as deadlocked after
// strata's retries. The matrix says so instead of pretending.

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <cereal/types/string.hpp>

#include "strata/client.hpp"
#include "tests/fixture.hpp"
#include "tests/process.hpp"

using namespace strata;
using strata::test::fixture;
using strata::test::node_process;

namespace {

struct item {
  std::string name;
  int64_t n = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(n));
  }
};

/// Engine -> code -> "y" (raised as the spec says) or why not.
std::map<std::string, std::map<std::string, std::string>>& matrix() {
  static std::map<std::string, std::map<std::string, std::string>> instance;
  return instance;
}

void print_matrix() {
  auto pad = [](const std::string& x, size_t width) {
    return x + std::string(width > x.size() ? width - x.size() : 0, ' ');
  };
  std::cout << pad("code", 22);
  for (auto& [e, row] : matrix())
    std::cout << " | " << pad(e, 6);
  std::cout << '\n';
  for (int c = 1; c <= static_cast<int>(errc::query_error); ++c) {
    std::string name = to_string(static_cast<errc>(c));
    std::cout << pad(name, 22);
    for (auto& [e, row] : matrix())
      std::cout << " | " << pad(row[name].empty() ? "?" : row[name], 6);
    std::cout << '\n';
  }
}

} // namespace

TEST_CASE("every error code arises the same way on every engine") {
  auto engine = GENERATE(as<std::string>{}, "lmdb", "sqlite", "json", "memory", "graph");
  auto& row = matrix()[engine];
  auto expect = [&](errc want, errc got, const std::string& what) {
    INFO(engine << ": " << what);
    CHECK(got == want);
    row[to_string(want)] = got == want ? "y" : "NO";
  };
  fixture f;
  auto o = f.options(2);
  o.engine = engine;
  if (engine == "graph")
    o.graph = test::test_graph();
  // With its snapshot, a memory store leaves a shard behind to check against.
  o.memory_snapshot = engine == "memory";
  {
    // Clients end before the store closes (a scoped actor counts as running).
    auto store = f.open(o);
    blocking_store<item> items{f.sys(), store};
    REQUIRE_FALSE(items.set("a", {"alpha", 1}));

    // Bad input.
    expect(errc::invalid_key, code_of(items.set("", {"empty", 0})), "an empty key");
    expect(errc::invalid_key, code_of(items.set(std::string(600, 'k'), {"long", 0})),
           "a 600-byte key");
    expect(errc::invalid_value,
           code_of(f.ask_void(store, atom::set_v, std::string{"big"},
                              bytes(o.max_value_size + 1, 'v'))),
           "a value above max_value_size");
    REQUIRE_FALSE(f.ask_void(store, atom::set_v, std::string{"raw"}, encode_raw("not an item")));
    expect(errc::serialization_failed, code_of(items.get("raw").error()),
           "a raw value read as an item");
    expect(errc::query_error, code_of(items.count(pattern{where("n").regex("(")}).error()),
           "a regex that does not compile");

    // Keys and indexes.
    expect(errc::key_not_found, code_of(items.drop_index("none")), "dropping a missing index");
    index_spec unique;
    unique.name = "by_name";
    unique.fields = {{"name", "btree", false}};
    unique.unique = true;
    REQUIRE_FALSE(items.create_index(unique));
    REQUIRE(f.indexes_ready(store));
    expect(errc::duplicate_key, code_of(items.set("b", {"alpha", 2})),
           "a second document with a unique field's value");

    // Transactions.
    auto t1 = items.begin();
    auto t2 = items.begin();
    REQUIRE(t1);
    REQUIRE(t2);
    REQUIRE(t1->get("a"));
    REQUIRE(t2->get("a"));
    REQUIRE_FALSE(t1->set("a", {"alpha", 10}));
    REQUIRE_FALSE(t2->set("a", {"alpha", 20}));
    REQUIRE_FALSE(t1->commit());
    expect(errc::version_conflict, code_of(t2->commit()), "a write skew under SERIALIZABLE");
    auto t3 = items.begin();
    REQUIRE(t3);
    REQUIRE_FALSE(t3->rollback());
    expect(errc::transaction_aborted, code_of(t3->set("c", {"gamma", 3})),
           "a write to a rolled-back transaction");
    // Only a graph engine's server can deadlock (and strata retries it
    // first); nothing in strata itself waits for a lock.
    row[to_string(errc::deadlock_detected)] = engine == "graph" ? "server" : "never";

    // Limits.
    std::map<std::string, item> many;
    for (int i = 0; i <= static_cast<int>(limits::max_find_results); ++i)
      many["m" + std::to_string(i)] = {"m" + std::to_string(i), 7};
    REQUIRE_FALSE(items.set_many(many));
    expect(errc::quota_exceeded, code_of(items.find_many(pattern{where("n").eq(7)}).error()),
           "find_many with more than max_find_results matches");
    CHECK((*items.get("a"))->n == 10);
  }
  f.close();
  {
    auto small = o;
    small.data_dir = f.dir / "small";
    small.map_size = 1 << 20;
    auto s = f.open(small);
    caf::error full;
    int stored = 0;
    for (; stored < 200; ++stored)
      if ((full = f.ask_void(s, atom::set_v, "fill" + std::to_string(stored),
                             bytes(100000, 'f'))))
        break;
    expect(errc::storage_full, code_of(full), "a 1 MiB shard filled up");
    // What was stored stays, and deletes make room.
    CHECK(*f.ask<uint64_t>(s, atom::size_v) == static_cast<uint64_t>(stored));
    CHECK(*f.ask<bool>(s, atom::del_v, std::string{"fill0"}));
    f.close();
  }

  // The data directory.
  auto wrong = o;
  wrong.shards = 3;
  auto reopened = spawn_store(f.sys(), wrong);
  REQUIRE_FALSE(reopened);
  expect(errc::consistency_violation, code_of(reopened.error()),
         "a directory of 2 shards opened as 3");
  std::ofstream{f.dir / "file"} << "not a directory";
  auto blocked = o;
  blocked.data_dir = f.dir / "file/data";
  auto unusable = spawn_store(f.sys(), blocked);
  REQUIRE_FALSE(unusable);
  expect(errc::connection_failed, code_of(unusable.error()), "a data directory under a file");
  if (engine == "graph") {
    auto away = o;
    away.data_dir = f.dir / "away";
    away.graph.url = "http://127.0.0.1:" + std::to_string(test::free_port()) + "/sparql-auth";
    auto no_server = spawn_store(f.sys(), away);
    REQUIRE_FALSE(no_server);
    expect(errc::connection_failed, code_of(no_server.error()), "no SPARQL server at the url");
  }

  // A node of this engine killed while a client uses it.
  std::vector<std::string> args{"--data", f.dir / "node", "--port", "0", "--shards", "2",
                                "--engine", engine, "--log-level", "warning"};
  if (engine == "graph")
    args.insert(args.end(), {"--graph-url", o.graph.url, "--graph-user", o.graph.username,
                             "--graph-password", o.graph.password});
  node_process node{args, f.dir / "node.log"};
  auto remote = connect_store(f.sys(), "127.0.0.1", node.port());
  REQUIRE(remote);
  blocking_store<item> client{f.sys(), *remote, std::chrono::seconds{5}};
  REQUIRE_FALSE(client.set("x", {"x", 1}));
  // Stopped, so that the next request is surely in flight when the node dies.
  ::kill(node.pid(), SIGSTOP);
  std::thread killer{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
    ::kill(node.pid(), SIGKILL);
  }};
  auto lost = client.set("x", {"x", 2});
  killer.join();
  INFO(render(lost));
  expect(errc::connection_lost, code_of(lost), "a node killed during a request");
  if (engine == "graph")
    print_matrix();
}

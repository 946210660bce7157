// The storage and shard actors: routing, scatter/gather, group commit, bad
// input, persistence, a full map. Real LMDB environments in temp dirs.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <random>

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "actors/shard.hpp"
#include "actors/coordinator.hpp"
#include "actors/storage.hpp"
#include "backends/decision_log.hpp"
#include "backends/fault.hpp"
#include "backends/shard_core.hpp"
#include "tests/fixture.hpp"
#include "tests/routed.hpp"
#include "supervisors/shard_supervisor.hpp"

using namespace strata;
using strata::test::coordinate;
using strata::test::fixture;
using strata::test::spawn_shards;
using strata::test::to_bytes;

namespace {

/// Shard options for spawn_shards: every commit synced.
void durable(shard_core_options& o) {
  o.no_sync = false;
}

std::vector<entry> scan_all(fixture& f, const storage_actor& s, scan_request req) {
  std::vector<entry> result;
  for (;;) {
    auto page = f.ask<scan_page>(s, atom::scan_v, req);
    REQUIRE(page);
    result.insert(result.end(), page->entries.begin(), page->entries.end());
    if (!page->more)
      return result;
    REQUIRE(!page->entries.empty());
    req.after = page->entries.back().key;
  }
}

/// What a lossy link to a shard does with one outcome batch.
enum class loss { none, request, answer };

/// Decides, per outcome batch and per barrier, what a lossy link loses.
struct lossy_link {
  std::function<loss()> resolve;
  /// True: the barrier fails.
  std::function<bool()> sync;
};

/// A participant in front of a real shard whose link loses what `link` says,
/// as a connection to a shard node can: an outcome batch before it arrives or
/// its answer after the shard applied it, and barriers.
participant_actor spawn_lossy(fixture& f, shard_actor real, lossy_link link) {
  return f.sys().spawn(
    [](participant_actor::pointer self, shard_actor target,
       lossy_link loses) -> participant_actor::behavior_type {
      return {
        [=](atom::commit, uint64_t txid, txn_part& p) -> caf::result<uint64_t> {
          return self->delegate(target, atom::commit_v, txid, std::move(p));
        },
        [=](atom::status, uint64_t txid) -> caf::result<bool> {
          return self->delegate(target, atom::status_v, txid);
        },
        [=](atom::prepare, std::vector<txn_prepare>& b)
          -> caf::result<std::vector<caf::error>> {
          return self->delegate(target, atom::prepare_v, std::move(b));
        },
        [=](atom::resolve, std::vector<txn_outcome>& b)
          -> caf::result<std::vector<uint64_t>> {
          switch (loses.resolve()) {
            case loss::request:
              return make_error(errc::connection_lost, "link dropped (test)");
            case loss::answer: {
              auto rp = self->make_response_promise();
              self->request(target, caf::infinite, atom::resolve_v, std::move(b))
                .then(
                  [rp](std::vector<uint64_t>&) mutable {
                    rp.deliver(make_error(errc::connection_lost, "answer lost (test)"));
                  },
                  [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
              return caf::delegated<std::vector<uint64_t>>{};
            }
            case loss::none:
              break;
          }
          return self->delegate(target, atom::resolve_v, std::move(b));
        },
        [=](atom::sync) -> caf::result<void> {
          if (loses.sync())
            return make_error(errc::connection_lost, "link dropped (test)");
          return self->delegate(target, atom::sync_v);
        },
      };
    },
    std::move(real), std::move(link));
}

} // namespace

TEST_CASE("single-key operations") {
  fixture f;
  auto s = f.open(f.options());
  auto missing = f.ask<maybe_bytes>(s, atom::get_v, std::string{"nope"});
  REQUIRE(missing);
  CHECK(!*missing); // a missing key is an empty result, not an error
  REQUIRE(!f.ask_void(s, atom::set_v, std::string{"a"}, to_bytes("1")));
  CHECK(*f.ask<maybe_bytes>(s, atom::get_v, std::string{"a"}) == to_bytes("1"));
  CHECK(*f.ask<bool>(s, atom::has_v, std::string{"a"}));
  CHECK(*f.ask<uint64_t>(s, atom::size_v) == 1);
  REQUIRE(!f.ask_void(s, atom::set_v, std::string{"a"}, to_bytes("2")));
  CHECK(*f.ask<maybe_bytes>(s, atom::get_v, std::string{"a"}) == to_bytes("2"));
  CHECK(*f.ask<bool>(s, atom::del_v, std::string{"a"}));
  CHECK(!*f.ask<bool>(s, atom::del_v, std::string{"a"}));
  CHECK(!*f.ask<bool>(s, atom::has_v, std::string{"a"}));
  // Empty values are values.
  REQUIRE(!f.ask_void(s, atom::set_v, std::string{"e"}, bytes{}));
  auto e = f.ask<maybe_bytes>(s, atom::get_v, std::string{"e"});
  REQUIRE(*e);
  CHECK((*e)->empty());
  REQUIRE(!f.ask_void(s, atom::clear_v));
  CHECK(*f.ask<uint64_t>(s, atom::size_v) == 0);
}

TEST_CASE("info names each shard's engine and what it can do") {
  fixture f;
  auto s = f.open(f.options(3));
  REQUIRE(!f.ask_void(s, atom::set_v, std::string{"a"}, to_bytes("1")));
  auto infos = f.ask<std::vector<shard_info>>(s, atom::info_v);
  REQUIRE(infos);
  REQUIRE(infos->size() == 3);
  uint64_t entries = 0;
  for (uint32_t i = 0; i < 3; ++i) {
    auto& x = (*infos)[i];
    CHECK(x.shard == i);
    CHECK(x.engine == test::test_engine());
    auto has = [&](const char* c) {
      return std::find(x.capabilities.begin(), x.capabilities.end(), c)
             != x.capabilities.end();
    };
    CHECK(has("ordered_scans"));
    CHECK(has("transactions"));
    CHECK(has("durable") == (x.engine != "memory"));
    CHECK(has("files") == (x.engine != "memory" && x.engine != "graph"));
    entries += x.entries;
  }
  CHECK(entries == 1);
}

// [heavy]: thousands of commits; not over the graph engine, whose every
// commit is an HTTP round trip (engine_test runs its model there).
TEST_CASE("random operations across shards agree with a reference model", "[heavy]") {
  fixture f;
  auto routed = GENERATE(false, true);
  INFO((routed ? "through shard actors" : "with direct local reads"));
  auto s = routed ? open_routed(f, 5) : f.open(f.options(5));
  std::map<std::string, bytes> model;
  std::mt19937 rng{7};
  auto key = [&] { return "key:" + std::to_string(rng() % 500); };
  auto value = [&] { return to_bytes(std::string(rng() % 64, 'a' + rng() % 26)); };
  for (int round = 0; round < 1500; ++round) {
    auto dice = rng() % 100;
    if (dice < 30) {
      auto k = key();
      auto v = value();
      REQUIRE(!f.ask_void(s, atom::set_v, k, v));
      model[k] = v;
    } else if (dice < 45) {
      auto k = key();
      REQUIRE(*f.ask<bool>(s, atom::del_v, k) == (model.erase(k) == 1));
    } else if (dice < 55) {
      std::vector<entry> es;
      for (int i = 0; i < 10; ++i) {
        es.push_back({key(), value()});
        model[es.back().key] = es.back().value;
      }
      REQUIRE(!f.ask_void(s, atom::set_many_v, es));
    } else if (dice < 62) {
      std::vector<std::string> ks;
      uint64_t expected = 0;
      for (int i = 0; i < 8; ++i) {
        ks.push_back(key());
        expected += model.erase(ks.back());
      }
      REQUIRE(*f.ask<uint64_t>(s, atom::del_many_v, ks) == expected);
    } else if (dice < 72) {
      std::vector<operation> ops;
      for (int i = 0; i < 6; ++i) {
        auto k = key();
        if (rng() % 3 == 0) {
          ops.push_back(operation::del(k));
          model.erase(k);
        } else {
          auto v = value();
          ops.push_back(operation::set(k, v));
          model[k] = v;
        }
      }
      auto r = f.ask<batch_result>(s, atom::batch_v, ops);
      REQUIRE(r);
      REQUIRE(r->success);
      REQUIRE(r->operations == ops.size());
      REQUIRE(r->errors.empty());
    } else if (dice < 73) {
      // A batch with a clear in the middle: what comes before it is wiped.
      std::vector<operation> ops{operation::set("before", to_bytes("x")),
                                 operation::clear(),
                                 operation::set("after", to_bytes("y"))};
      auto r = f.ask<batch_result>(s, atom::batch_v, ops);
      REQUIRE(r->success);
      model.clear();
      model["after"] = to_bytes("y");
    } else if (dice < 90) {
      std::vector<std::string> ks;
      for (int i = 0; i < 12; ++i)
        ks.push_back(key());
      auto vs = f.ask<std::vector<maybe_bytes>>(s, atom::get_many_v, ks);
      REQUIRE(vs);
      REQUIRE(vs->size() == ks.size());
      for (size_t i = 0; i < ks.size(); ++i) {
        auto m = model.find(ks[i]);
        REQUIRE(static_cast<bool>((*vs)[i]) == (m != model.end()));
        if (m != model.end())
          REQUIRE(*(*vs)[i] == m->second);
      }
    } else {
      auto k = key();
      auto v = f.ask<maybe_bytes>(s, atom::get_v, k);
      auto m = model.find(k);
      REQUIRE(static_cast<bool>(*v) == (m != model.end()));
      if (m != model.end())
        REQUIRE(**v == m->second);
      REQUIRE(*f.ask<uint64_t>(s, atom::size_v) == model.size());
    }
  }
  // Ordered scans merge the shards, in pages of every size.
  for (uint32_t limit : {1u, 3u, 50u, 0u}) {
    scan_request req;
    req.limit = limit;
    auto all = scan_all(f, s, req);
    REQUIRE(all.size() == model.size());
    auto m = model.begin();
    for (auto& e : all) {
      REQUIRE(e.key == m->first);
      REQUIRE(e.value == m->second);
      ++m;
    }
    req.prefix = "key:1";
    req.values = false;
    auto some = scan_all(f, s, req);
    std::vector<std::string> expected;
    for (auto& kv : model)
      if (kv.first.rfind("key:1", 0) == 0)
        expected.push_back(kv.first);
    REQUIRE(some.size() == expected.size());
    for (size_t i = 0; i < some.size(); ++i) {
      REQUIRE(some[i].key == expected[i]);
      REQUIRE(some[i].value.empty());
    }
    req.prefix.clear();
    req.start = "key:3";
    auto tail = scan_all(f, s, req);
    REQUIRE(tail.size()
            == static_cast<size_t>(
              std::distance(model.lower_bound("key:3"), model.end())));
  }
}

TEST_CASE("bad keys and values get strata errors and change nothing") {
  fixture f;
  auto o = f.options(3);
  o.max_value_size = 100;
  auto s = f.open(o);
  REQUIRE(!f.ask_void(s, atom::set_v, std::string{"keep"}, to_bytes("safe")));
  const std::string empty;
  const std::string long_key(512, 'k');
  for (auto& bad : {empty, long_key}) {
    INFO("key of " << bad.size() << " bytes");
    auto g = f.ask<maybe_bytes>(s, atom::get_v, bad);
    REQUIRE(!g);
    CHECK(code_of(g.error()) == errc::invalid_key);
    CHECK(code_of(f.ask_void(s, atom::set_v, bad, to_bytes("x")))
          == errc::invalid_key);
    CHECK(code_of(f.ask<bool>(s, atom::del_v, bad).error()) == errc::invalid_key);
    CHECK(code_of(f.ask<bool>(s, atom::has_v, bad).error()) == errc::invalid_key);
    CHECK(code_of(f.ask<std::vector<maybe_bytes>>(
                     s, atom::get_many_v, std::vector<std::string>{"ok", bad})
                    .error())
          == errc::invalid_key);
    CHECK(code_of(f.ask<uint64_t>(s, atom::del_many_v,
                                  std::vector<std::string>{"keep", bad})
                    .error())
          == errc::invalid_key);
    CHECK(code_of(f.ask_void(s, atom::set_many_v,
                             std::vector<entry>{{"fine", to_bytes("1")},
                                                {bad, to_bytes("2")}}))
          == errc::invalid_key);
  }
  // The longest legal key works.
  CHECK(!f.ask_void(s, atom::set_v, std::string(511, 'k'), to_bytes("max")));
  // Values above max_value_size.
  auto err = f.ask_void(s, atom::set_v, std::string{"big"}, bytes(101, 'v'));
  CHECK(code_of(err) == errc::invalid_value);
  CHECK(render(err)
        == "INVALID_VALUE: value is 101 bytes, above max_value_size (100 bytes)");
  CHECK(!f.ask_void(s, atom::set_v, std::string{"edge"}, bytes(100, 'v')));
  // A batch with bad operations is rejected whole, naming each bad one.
  std::vector<operation> ops{operation::set("fresh", to_bytes("1")),
                             operation::del(""),
                             operation::set("big", bytes(200, 'v'))};
  operation weird;
  weird.kind = static_cast<op_kind>(9);
  weird.key = "w";
  ops.push_back(weird);
  auto r = f.ask<batch_result>(s, atom::batch_v, ops);
  REQUIRE(r);
  CHECK(!r->success);
  CHECK(r->operations == 0);
  REQUIRE(r->errors.size() == 3);
  CHECK(render(r->errors[0])
        == "INVALID_KEY: operation 1: key is empty; keys are 1 to 511 bytes");
  CHECK(code_of(r->errors[1]) == errc::invalid_value);
  CHECK(render(r->errors[2]) == "INVALID_VALUE: operation 3: unknown kind 9");
  CHECK(!*f.ask<bool>(s, atom::has_v, std::string{"fresh"}));
  // Nothing was lost, and the store still serves.
  CHECK(*f.ask<maybe_bytes>(s, atom::get_v, std::string{"keep"})
        == to_bytes("safe"));
  CHECK(*f.ask<uint64_t>(s, atom::size_v) == 3);
}

TEST_CASE("every actor that serves a shard's reads answers them alike") {
  // The router reading a local shard directly, the router asking the shard
  // by message, the shard itself and a shard supervisor answer reads through
  // one set of functions: the same data gives the same answers and the same
  // errors on every path, transactional reads included.
  fixture f;
  auto direct = f.open(f.options(1));
  std::vector<local_shard> local;
  auto routed = open_routed(f, 1, &local);
  auto so = f.options(1);
  so.data_dir = f.dir / "supervised";
  std::shared_ptr<shard_slot> slot;
  auto supervised = spawn_supervised_shard(f.sys(), so, 0, nullptr, slot);
  REQUIRE(supervised);
  // The same random writes to the three stores.
  std::mt19937 gen{11};
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i)
    keys.push_back("k" + std::to_string(gen() % 500));
  for (const storage_actor& h : {storage_actor{direct}, storage_actor{routed},
                                 storage_actor{*supervised}}) {
    std::mt19937 ops{5};
    for (auto& k : keys) {
      if (ops() % 4 == 0)
        REQUIRE(f.ask<bool>(h, atom::del_v, k));
      else
        REQUIRE(!f.ask_void(h, atom::set_v, k, to_bytes("v" + std::to_string(ops() % 97))));
    }
  }
  // What each path answers, as text.
  auto text = [](const auto& r) -> std::string {
    if (!r)
      return std::string{"error "} + to_string(code_of(r.error()));
    return caf::deep_to_string(*r);
  };
  std::vector<std::string> probes{"k1", "k7", "k42", "k499", "never", "", std::string(512, 'k')};
  for (int i = 0; i < 20; ++i)
    probes.push_back(keys[gen() % keys.size()]);
  auto answers = [&](const storage_actor& h) {
    std::vector<std::string> out;
    for (auto& k : probes) {
      out.push_back(text(f.ask<maybe_bytes>(h, atom::get_v, k)));
      out.push_back(text(f.ask<bool>(h, atom::has_v, k)));
    }
    out.push_back(text(f.ask<std::vector<maybe_bytes>>(
      h, atom::get_many_v, std::vector<std::string>(probes.begin(), probes.begin() + 5))));
    out.push_back(text(f.ask<std::vector<maybe_bytes>>(h, atom::get_many_v, probes)));
    scan_request req;
    req.prefix = "k1";
    req.limit = 1000;
    out.push_back(text(f.ask<scan_page>(h, atom::scan_v, req)));
    out.push_back(text(f.ask<uint64_t>(h, atom::size_v)));
    return out;
  };
  auto expected = answers(direct);
  CHECK(expected == answers(routed));
  CHECK(expected == answers(local[0].actor));
  CHECK(expected == answers(*supervised));
  // Transactional reads: the shard and its supervisor answer them directly,
  // the two routers' transactions through their shard's store or by message.
  auto versioned = [&](const shard_actor& h) {
    std::vector<std::string> out;
    for (auto& k : probes) {
      caf::expected<maybe_bytes> r{caf::error{}};
      f.self->request(h, std::chrono::seconds(30), atom::read_v, k)
        .receive([&](maybe_bytes& v, uint64_t) { r = std::move(v); },
                 [&](caf::error& e) { r = std::move(e); });
      out.push_back(text(r));
    }
    return out;
  };
  auto in_txn = [&](const observable_storage_actor& h) {
    std::vector<std::string> out;
    auto tx = f.ask<transaction_actor>(h, atom::begin_v, txn_options{});
    REQUIRE(tx);
    for (auto& k : probes)
      out.push_back(text(f.ask<maybe_bytes>(*tx, atom::get_v, k)));
    CHECK(!f.ask_void(*tx, atom::rollback_v));
    return out;
  };
  auto txn_expected = in_txn(direct);
  CHECK(txn_expected == in_txn(routed));
  CHECK(txn_expected == versioned(local[0].actor));
  CHECK(txn_expected == versioned(*supervised));
  // And they answer what was written: a value, "none", or INVALID_KEY.
  CHECK(txn_expected[5] == "error INVALID_KEY");
  CHECK(txn_expected[4] == "none");
  caf::anon_send_exit(direct, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(*supervised, caf::exit_reason::user_shutdown);
}

TEST_CASE("errors render with the specification's names") {
  fixture f;
  CHECK(render(make_error(errc::key_not_found, "no key 'x'"))
        == "KEY_NOT_FOUND: no key 'x'");
  CHECK(f.sys().render(make_error(errc::storage_full, "map full"))
        == "STORAGE_FULL: map full");
  CHECK(std::string{to_string(errc::serialization_failed)}
        == "SERIALIZATION_FAILED");
  CHECK(std::string{to_string(errc::query_error)} == "QUERY_ERROR");
  for (uint8_t i = 1; i <= 14; ++i) {
    auto code = static_cast<errc>(i);
    CHECK(parse_errc(to_string(code)) == code);
  }
  CHECK(!parse_errc("NOT_A_CODE"));
}

TEST_CASE("options are validated field by field") {
  store_options o;
  CHECK(!o.validate());
  auto bad = [](auto change) {
    store_options x;
    change(x);
    auto err = x.validate();
    return code_of(err) == errc::invalid_value;
  };
  CHECK(bad([](auto& x) { x.shards = 0; }));
  CHECK(bad([](auto& x) { x.shards = 257; }));
  CHECK(bad([](auto& x) { x.routers = 0; }));
  CHECK(bad([](auto& x) { x.routers = 65; }));
  CHECK(bad([](auto& x) { x.id = ""; }));
  CHECK(bad([](auto& x) { x.data_dir = ""; }));
  CHECK(bad([](auto& x) { x.map_size = 1000; }));
  CHECK(bad([](auto& x) { x.max_value_size = 0; }));
  CHECK(bad([](auto& x) { x.log_level = "INFO"; }));
  CHECK(bad([](auto& x) { x.engine = "rocksdb"; }));
  CHECK(bad([](auto& x) {
    x.engine = "sqlite";
    x.sqlite.table = "t; drop table strata";
  }));
  CHECK(bad([](auto& x) {
    x.engine = "sqlite";
    x.sqlite.database = "../elsewhere.db";
  }));
  CHECK(bad([](auto& x) {
    x.engine = "json";
    x.json.encoding = "latin1";
  }));
  CHECK(bad([](auto& x) {
    x.engine = "json";
    x.json.file = "";
  }));
  {
    store_options x;
    x.engine = "sqlite";
    x.sqlite.database = ":memory:";
    CHECK(!x.validate());
  }
  CHECK(bad([](auto& x) { x.hints.access = "sometimes"; }));
  for (auto access : {"", "random", "sequential", "write-heavy", "read-heavy"}) {
    store_options x;
    x.hints.access = access;
    CHECK(!x.validate());
  }
  CHECK(bad([](auto& x) { x.memory_snapshot = true; }));
  CHECK(bad([](auto& x) { x.request_timeout = std::chrono::milliseconds{0}; }));
  o.hints.expected_size = 10'000'000;
  o.shards = 4;
  CHECK(o.shard_map_size() == 2'500'000ull * 4096);
  o.hints.expected_size = 0;
  CHECK(o.shard_map_size() == 1ull << 30);
  fixture f;
  auto opts = f.options();
  opts.shards = 0;
  auto s = spawn_store(f.sys(), opts);
  REQUIRE(!s);
  CHECK(render(s.error()) == "INVALID_VALUE: shards must be 1 to 256, got 0");
}

TEST_CASE("data survives a restart, and the layout is checked on reopen", "[durable]") {
  fixture f;
  auto o = f.options(4);
  o.sync = sync_mode::durable;
  {
    auto s = f.open(o);
    std::vector<entry> es;
    for (int i = 0; i < 500; ++i)
      es.push_back({"k" + std::to_string(i), to_bytes(std::to_string(i * i))});
    REQUIRE(!f.ask_void(s, atom::set_many_v, es));
    // A second store on the same directory is refused while this one runs.
    auto twice = spawn_store(f.sys(), o);
    REQUIRE(!twice);
    CHECK(code_of(twice.error()) == errc::connection_failed);
  }
  f.close();
  {
    auto s = f.open(o);
    CHECK(*f.ask<uint64_t>(s, atom::size_v) == 500);
    for (int i = 0; i < 500; i += 37)
      CHECK(*f.ask<maybe_bytes>(s, atom::get_v, "k" + std::to_string(i))
            == to_bytes(std::to_string(i * i)));
  }
  f.close();
  o.shards = 8;
  auto wrong = spawn_store(f.sys(), o);
  REQUIRE(!wrong);
  CHECK(code_of(wrong.error()) == errc::consistency_violation);
  o.shards = 4;
  o.id = "another";
  wrong = spawn_store(f.sys(), o);
  REQUIRE(!wrong);
  CHECK(code_of(wrong.error()) == errc::consistency_violation);
}

// [big]: a thousand durable writes into a 1 MiB store (for json, a thousand
// rewrites of a growing file: json_engine_test has its own).
TEST_CASE("a full map gives STORAGE_FULL, data stays and deletes work",
          "[durable][big]") {
  fixture f;
  auto o = f.options(1);
  o.map_size = 1 << 20;
  o.sync = sync_mode::durable;
  auto s = f.open(o);
  std::vector<std::string> stored;
  caf::error err;
  for (int i = 0; i < 10000 && !err; ++i) {
    auto k = "k" + std::to_string(i);
    err = f.ask_void(s, atom::set_v, k, bytes(900, 'v'));
    if (!err)
      stored.push_back(k);
  }
  REQUIRE(code_of(err) == errc::storage_full);
  REQUIRE(stored.size() > 50);
  for (auto& k : stored)
    REQUIRE(*f.ask<bool>(s, atom::has_v, k));
  // LMDB returns a page to its free list when the page empties or merges
  // (below a quarter full): deleting seven keys in eight frees pages
  // whichever way the keys are spread over them.
  size_t kept = 0;
  for (size_t i = 0; i < stored.size(); ++i)
    if (i % 8 == 0)
      ++kept;
    else
      REQUIRE(*f.ask<bool>(s, atom::del_v, stored[i]));
  auto again = f.ask_void(s, atom::set_v, std::string{"fits again"}, bytes(900, 'v'));
  INFO(render(again));
  REQUIRE(!again);
  CHECK(*f.ask<uint64_t>(s, atom::size_v) == kept + 1);
  for (size_t i = 0; i < stored.size(); i += 8)
    REQUIRE(*f.ask<bool>(s, atom::has_v, stored[i]));
  // The map can be grown by configuration without losing data. (The
  // change log keeps each value a second time, old and new: room for both.)
  f.close();
  o.map_size = 8 << 20;
  s = f.open(o);
  CHECK(*f.ask<uint64_t>(s, atom::size_v) == kept + 1);
  for (int i = 0; i < 1500; ++i)
    REQUIRE(!f.ask_void(s, atom::set_v, "more" + std::to_string(i),
                        bytes(900, 'v')));
}

TEST_CASE("a shard prepares and resolves transactions in batches: one vote each") {
  fixture f;
  auto sh = spawn_shards(f, 1)[0].actor;
  REQUIRE(!f.ask_void(sh, atom::set_v, std::string{"x"}, to_bytes("0")));
  REQUIRE(!f.ask_void(sh, atom::set_v, std::string{"gone"}, to_bytes("g")));
  auto part = [](std::vector<operation> writes) {
    txn_part p;
    p.writes = std::move(writes);
    return p;
  };
  auto in_doubt = [&] { return f.ask<shard_info>(sh, atom::info_v)->in_doubt; };
  // Two transactions in one batch write the same key: the first one locks
  // it, the second votes no.
  std::vector<txn_prepare> batch{
    {1, part({operation::set("x", to_bytes("1")), operation::del("gone")})},
    {2, part({operation::set("x", to_bytes("2"))})}};
  auto votes = f.ask<std::vector<caf::error>>(sh, atom::prepare_v, batch);
  REQUIRE(votes);
  REQUIRE(votes->size() == 2);
  CHECK(!(*votes)[0]);
  CHECK(code_of((*votes)[1]) == errc::version_conflict);
  CHECK(in_doubt() == 1);
  // A batch with bad input is refused whole, and nothing of it is prepared.
  std::vector<txn_prepare> bad{{3, part({operation::set("y", to_bytes("3"))})},
                               {4, part({operation::set("", to_bytes("4"))})}};
  auto refused = f.ask<std::vector<caf::error>>(sh, atom::prepare_v, bad);
  REQUIRE(!refused);
  CHECK(code_of(refused.error()) == errc::invalid_key);
  CHECK(in_doubt() == 1);
  // Outcomes in one batch: one count of deletes per transaction (the
  // aborted one was never prepared here, which is fine).
  std::vector<txn_outcome> outcomes{{1, true}, {2, false}};
  auto counts = f.ask<std::vector<uint64_t>>(sh, atom::resolve_v, outcomes);
  REQUIRE(counts);
  CHECK(*counts == std::vector<uint64_t>{1, 0});
  CHECK(in_doubt() == 0);
  CHECK(*f.ask<maybe_bytes>(sh, atom::get_v, std::string{"x"}) == to_bytes("1"));
  CHECK(!*f.ask<bool>(sh, atom::has_v, std::string{"gone"}));
  CHECK(!*f.ask<bool>(sh, atom::has_v, std::string{"y"}));
  // Empty batches are answered at once.
  CHECK(f.ask<std::vector<caf::error>>(sh, atom::prepare_v, std::vector<txn_prepare>{})
          ->empty());
  CHECK(f.ask<std::vector<uint64_t>>(sh, atom::resolve_v, std::vector<txn_outcome>{})
          ->empty());
  caf::anon_send_exit(sh, caf::exit_reason::user_shutdown);
}

// A coordinator that gave up waiting for a vote (a remote shard's relay timed
// out) sends the abort right behind the prepare; at a busy writer both land in
// one group. The abort must not run first: it would find nothing to drop, and
// the prepare would then lock its keys with no outcome to come.
TEST_CASE("an abort in the same group as its prepare still releases the prepare") {
  fixture f;
  auto s = spawn_shards(f, 1, "shard", durable)[0];
  auto w = s.writer;
  // A large write keeps the writer busy while the two messages queue up.
  std::vector<entry> bulk;
  for (int i = 0; i < 4000; ++i)
    bulk.push_back(entry{"bulk" + std::to_string(i), bytes(1024, 'x')});
  caf::anon_send(w, atom::set_many_v, std::move(bulk));
  txn_part p;
  p.writes.push_back(operation::set("k", to_bytes("v")));
  caf::anon_send(w, atom::prepare_v, std::vector<txn_prepare>{{42, p}});
  // A plain write of k between them waits for the abort, then goes through.
  auto between = f.self->request(w, std::chrono::seconds{10}, atom::set_v,
                                 std::string{"k"}, to_bytes("between"));
  caf::anon_send(w, atom::resolve_v, std::vector<txn_outcome>{{42, false}});
  REQUIRE(!f.ask_void(w, atom::sync_v)); // all of the above is done
  caf::error waited;
  between.receive([] {}, [&](caf::error& err) { waited = std::move(err); });
  CHECK(!waited);
  CHECK(s.store->get("k") == std::optional<bytes>{to_bytes("between")});
  CHECK(s.store->in_doubt().empty());
  CHECK(!s.store->read("k").blocked);
  // k is free: a plain write goes through, and nothing of 42 was applied.
  REQUIRE(!f.ask_void(s.actor, atom::set_v, std::string{"k"}, to_bytes("w")));
  CHECK(*f.ask<maybe_bytes>(s.actor, atom::get_v, std::string{"k"}) == to_bytes("w"));
  caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
}

TEST_CASE("routers keep each sender's writes in order and number transactions once") {
  fixture f;
  auto o = f.options(2);
  o.routers = 4;
  auto s = f.open(o);
  // Each client pipelines many writes to its own key without waiting: the
  // last one sent must be the one that stays, whichever router took them.
  static constexpr int clients = 8;
  static constexpr int writes = 300;
  auto done = caf::actor{f.self};
  for (int c = 0; c < clients; ++c)
    f.sys().spawn([s, c, done](caf::event_based_actor* self) {
      auto key = "c" + std::to_string(c);
      auto left = std::make_shared<int>(writes);
      auto failed = std::make_shared<bool>(false);
      auto answered = [self, left, failed, done] {
        if (--*left == 0)
          self->send(done, atom::flush_v, !*failed);
      };
      for (int i = 0; i < writes; ++i) {
        auto value = to_bytes(std::to_string(i));
        auto on_error = [answered, failed](caf::error&) {
          *failed = true;
          answered();
        };
        if (i % 7 == 3)
          self->request(s, std::chrono::seconds(30), atom::del_v, key)
            .then([answered](bool) { answered(); }, on_error);
        else
          self->request(s, std::chrono::seconds(30), atom::set_v, key, value)
            .then(answered, on_error);
      }
    });
  for (int c = 0; c < clients; ++c)
    f.self->receive([](atom::flush, bool ok) { CHECK(ok); });
  for (int c = 0; c < clients; ++c) {
    auto v = f.ask<maybe_bytes>(s, atom::get_v, "c" + std::to_string(c));
    REQUIRE(v);
    REQUIRE(*v);
    CHECK(std::string(v->value().begin(), v->value().end())
          == std::to_string(writes - 1));
  }
  // Transactions begun through different routers get distinct ids.
  std::set<std::string> ids;
  for (int c = 0; c < 4; ++c) {
    caf::scoped_actor client{f.sys()};
    for (int i = 0; i < 25; ++i)
      client->request(s, std::chrono::seconds(30), atom::begin_v, txn_options{})
        .receive(
          [&](transaction_actor& tx) {
            client->request(tx, std::chrono::seconds(30), atom::info_v)
              .receive([&](txn_info& info) { ids.insert(info.id); },
                       [](caf::error& e) { FAIL(render(e)); });
          },
          [](caf::error& e) { FAIL(render(e)); });
  }
  CHECK(ids.size() == 100);
}

// Multi-key writes go through the coordinator, single-key writes straight to
// their shard: a sender that pipelines both without waiting must still find
// them applied in the order it sent them (checked against a model).
TEST_CASE("a sender's single-key and multi-key writes apply in the order sent") {
  fixture f;
  auto o = f.options(3);
  o.routers = 2;
  auto s = f.open(o);
  static constexpr int clients = 6;
  static constexpr int writes = 120;
  using model = std::map<std::string, std::string>;
  auto done = caf::actor{f.self};
  // Each client's model, read here after its last answer.
  auto models = std::make_shared<std::vector<model>>(clients);
  for (int c = 0; c < clients; ++c)
    f.sys().spawn([s, c, done, models](caf::event_based_actor* self) {
      std::mt19937 gen{static_cast<unsigned>(c) * 7919u + 1u};
      auto prefix = "c" + std::to_string(c) + "/";
      std::vector<std::string> keys{prefix + "a", prefix + "b", prefix + "c"};
      auto expected = &(*models)[static_cast<size_t>(c)];
      auto left = std::make_shared<int>(writes);
      auto failed = std::make_shared<std::string>();
      auto answered = [self, left, failed, expected, done] {
        if (--*left == 0)
          self->send(done, atom::flush_v, *failed);
      };
      auto on_error = [answered, failed](caf::error& e) {
        *failed = render(e);
        answered();
      };
      for (int i = 0; i < writes; ++i) {
        auto v = std::to_string(i);
        auto& k = keys[gen() % keys.size()];
        auto& k2 = keys[gen() % keys.size()];
        switch (gen() % 5) {
          case 0:
            (*expected)[k] = v;
            self->request(s, std::chrono::seconds(30), atom::set_v, k, to_bytes(v))
              .then(answered, on_error);
            break;
          case 1:
            expected->erase(k);
            self->request(s, std::chrono::seconds(30), atom::del_v, k)
              .then([answered](bool) { answered(); }, on_error);
            break;
          case 2: {
            std::vector<entry> es{entry{k, to_bytes(v)}};
            if (k2 != k)
              es.push_back(entry{k2, to_bytes(v + "'")});
            (*expected)[k] = v;
            if (k2 != k)
              (*expected)[k2] = v + "'";
            self->request(s, std::chrono::seconds(30), atom::set_many_v, es)
              .then(answered, on_error);
            break;
          }
          case 3:
            expected->erase(k);
            expected->erase(k2);
            self->request(s, std::chrono::seconds(30), atom::del_many_v,
                          std::vector<std::string>{k, k2})
              .then([answered](uint64_t) { answered(); }, on_error);
            break;
          default: {
            // A batch applies in order: the later operation on a key wins.
            std::vector<operation> ops{operation::del(k2), operation::set(k, to_bytes(v))};
            expected->erase(k2);
            (*expected)[k] = v;
            self->request(s, std::chrono::seconds(30), atom::batch_v, ops)
              .then([answered, failed](batch_result& r) {
                      if (!r.success)
                        *failed = "batch failed";
                      answered();
                    },
                    on_error);
            break;
          }
        }
      }
    });
  for (int c = 0; c < clients; ++c)
    f.self->receive([&](atom::flush, std::string& failed) { CHECK(failed == ""); });
  // Every client's keys hold exactly what its own sequence left behind.
  model all;
  for (auto& m : *models)
    all.insert(m.begin(), m.end());
  auto page = f.ask<scan_page>(s, atom::scan_v, scan_request{});
  REQUIRE(page);
  model stored;
  for (auto& e : page->entries)
    stored[e.key] = std::string(e.value.begin(), e.value.end());
  for (auto& [k, v] : all)
    if (stored.count(k) == 0 || stored[k] != v)
      UNSCOPED_INFO(k << ": expected " << v << ", stored "
                      << (stored.count(k) ? stored[k] : std::string{"(none)"}));
  for (auto& [k, v] : stored)
    if (all.count(k) == 0)
      UNSCOPED_INFO(k << ": expected (none), stored " << v);
  CHECK(stored == all);
}

// CAF 0.17 drops the promises of an actor that stops. A router that stops
// while a sender's multi-key write is in flight, with the sender's next write
// waiting behind it, answers both: the first may have been applied, the
// second was never sent on.
TEST_CASE("a router that stops answers the writes it holds") {
  fixture f;
  std::vector<local_shard> shards;
  auto router = open_routed(f, 1, &shards);
  // A prepared transaction locks k: the multi-key write of k retries until
  // the lock goes, so it is still in flight when the router stops.
  txn_part p;
  p.writes.push_back(operation::set("k", to_bytes("locked")));
  auto votes = f.ask<std::vector<caf::error>>(shards[0].actor, atom::prepare_v,
                                              std::vector<txn_prepare>{{42, p}});
  REQUIRE(votes);
  REQUIRE(!(*votes)[0]);
  auto many = f.self->request(router, std::chrono::seconds{5}, atom::set_many_v,
                              std::vector<entry>{{"k", to_bytes("many")}});
  auto one = f.self->request(router, std::chrono::seconds{5}, atom::set_v,
                             std::string{"k2"}, to_bytes("one"));
  // The router takes a sender's messages in order: once this read is
  // answered, the set_many is in flight and the set waits behind it.
  REQUIRE(f.ask<maybe_bytes>(router, atom::get_v, std::string{"k2"}));
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  caf::error in_flight;
  many.receive([] {}, [&](caf::error& err) { in_flight = std::move(err); });
  caf::error held;
  one.receive([] {}, [&](caf::error& err) { held = std::move(err); });
  CHECK(code_of(in_flight) == errc::connection_lost);
  CHECK(render(in_flight).find("may or may not have been applied") != std::string::npos);
  CHECK(code_of(held) == errc::connection_failed);
  CHECK(render(held).find("not applied") != std::string::npos);
  // Neither reached the data.
  CHECK(!shards[0].store->has("k"));
  CHECK(!shards[0].store->has("k2"));
}

TEST_CASE("a store closes once its last handle is dropped", "[durable]") {
  fixture f;
  auto before = f.sys().registry().running();
  auto o = f.options(2);
  o.routers = GENERATE(1u, 2u);
  INFO(o.routers << " routers");
  {
    auto h = spawn_store(f.sys(), o);
    REQUIRE(h);
    REQUIRE(!f.ask_void(*h, atom::set_v, std::string{"k"}, to_bytes("v")));
    // A transaction begun through a router does not keep the store alive.
    auto tx = f.ask<transaction_actor>(*h, atom::begin_v, txn_options{});
    REQUIRE(tx);
  }
  // Routers, shards, writers and coordinator all stop, and free the directory.
  f.sys().registry().await_running_count_equal(before);
  auto again = f.open(o);
  auto v = f.ask<maybe_bytes>(again, atom::get_v, std::string{"k"});
  REQUIRE(v);
  REQUIRE(*v);
  CHECK(v->value() == to_bytes("v"));
}

// A transaction actor starts after the store spawned it, by which time the
// store's last handle may be gone. Here the handle goes while begins are
// still queued at the store: whenever a transaction starts, it must end with
// the store. (While each transaction monitored the store itself, from its
// own start, this test crashed on every run: it reached the dying store.)
TEST_CASE("transactions begun as their store's last handle goes end with it") {
  fixture f;
  auto before = f.sys().registry().running();
  auto o = f.options(1);
  for (int round = 0; round < 64; ++round) {
    INFO("round " << round);
    auto h = spawn_store(f.sys(), o);
    REQUIRE(h);
    auto begin = [&] {
      return f.self->request(*h, std::chrono::seconds{30}, atom::begin_v, txn_options{});
    };
    std::vector<decltype(begin())> begins;
    for (int i = 0; i < 8; ++i)
      begins.push_back(begin());
    h = caf::error{}; // the last handle
    size_t began = 0;
    for (auto& b : begins)
      b.receive([&](transaction_actor&) { ++began; }, [](caf::error&) {});
    // Every transaction, answered or not, stops with the store.
    f.sys().registry().await_running_count_equal(before);
    UNSCOPED_INFO(began << " transactions began");
  }
  // The directory is free and intact.
  auto again = f.open(o);
  CHECK(f.ask<uint64_t>(again, atom::size_v) == uint64_t{0});
}

TEST_CASE("a shard commits concurrent writes in groups") {
  fixture f;
  // Durable: every commit waits for the disk.
  auto sh = spawn_shards(f, 1, "shard", durable)[0].actor;
  constexpr int clients = 32;
  constexpr int writes = 40;
  auto done = caf::actor{f.self};
  for (int c = 0; c < clients; ++c) {
    f.sys().spawn([sh, c, done](caf::event_based_actor* self) {
      // Pending requests hold the loop alive; it holds itself only weakly.
      auto next = std::make_shared<std::function<void(int)>>();
      std::weak_ptr<std::function<void(int)>> weak = next;
      *next = [self, sh, c, weak, done](int i) {
        if (i == writes) {
          self->send(done, atom::flush_v);
          return;
        }
        self
          ->request(sh, std::chrono::seconds(30), atom::set_v,
                    "c" + std::to_string(c) + ":" + std::to_string(i),
                    to_bytes(std::to_string(i)))
          .then([next = weak.lock(), i] { (*next)(i + 1); },
                [self, done](caf::error&) { self->send(done, atom::flush_v); });
      };
      (*next)(0);
    });
  }
  for (int c = 0; c < clients; ++c)
    f.self->receive([](atom::flush) {});
  CHECK(*f.ask<uint64_t>(sh, atom::size_v) == clients * writes);
  auto info = f.ask<shard_info>(sh, atom::info_v);
  REQUIRE(info);
  CHECK(info->entries == clients * writes);
  // With 32 writers waiting on syncs, commits carry many writes each.
  CHECK(info->commits < clients * writes / 4);
  caf::anon_send_exit(sh, caf::exit_reason::user_shutdown);
}

// [heavy]: thousands of commits; not over the graph engine, whose every
// commit is an HTTP round trip (engine_test runs its model there).
TEST_CASE("scans of large values page by bytes and still merge in order", "[heavy]") {
  fixture f;
  auto s = f.open(f.options(3));
  std::vector<entry> es;
  for (int i = 0; i < 40; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "big%02d", i);
    es.push_back({name, bytes(700 * 1024, static_cast<uint8_t>(i))});
  }
  for (auto& e : es)
    REQUIRE(!f.ask_void(s, atom::set_v, e.key, e.value));
  scan_request req;
  req.limit = 1000;
  auto first = f.ask<scan_page>(s, atom::scan_v, req);
  REQUIRE(first);
  CHECK(first->more); // a page stops at about 4 MiB per shard
  CHECK(first->entries.size() < 40);
  auto all = scan_all(f, s, req);
  REQUIRE(all.size() == es.size());
  for (size_t i = 0; i < es.size(); ++i) {
    REQUIRE(all[i].key == es[i].key);
    REQUIRE(all[i].value == es[i].value);
  }
}

// A participant whose link drops the first outcome batches it is sent (as a
// connection to a shard node would), in front of a real shard; later also
// the first barrier (sync) it is asked for.
TEST_CASE("outcomes a shard did not confirm are sent again until it does") {
  fixture f;
  auto shards = spawn_shards(f, 2);
  auto drops = std::make_shared<std::atomic<int>>(3);
  auto sync_drops = std::make_shared<std::atomic<int>>(0);
  lossy_link link;
  link.resolve = [drops] {
    if (drops->load() == 0)
      return loss::none;
    --*drops;
    return loss::request;
  };
  link.sync = [sync_drops] {
    if (sync_drops->load() == 0)
      return false;
    --*sync_drops;
    return true;
  };
  auto flaky = spawn_lossy(f, shards[1].actor, std::move(link));
  std::shared_ptr<shard_core> log;
  auto coord = coordinate(f, {participant_actor{shards[0].actor}, flaky}, "coordinator",
                          &log);
  auto part = [](const char* key, const char* value) {
    txn_part p;
    p.writes.push_back(operation::set(key, to_bytes(value)));
    return p;
  };
  // The client learns of the commit although shard 1 did not confirm it.
  std::vector<shard_part> parts{{0, part("a", "1")}, {1, part("b", "1")}};
  REQUIRE(f.ask<uint64_t>(coord, atom::commit_v, uint64_t{7}, parts));
  CHECK(shards[0].store->get("a") == std::optional<bytes>{to_bytes("1")});
  // Shard 1 gets the outcome on a retry (the third drop has backoff), and
  // its lock on b goes.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (shards[1].store->in_doubt().size() > 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  CHECK(drops->load() == 0);
  CHECK(shards[1].store->in_doubt().empty());
  CHECK(!shards[1].store->read("b").blocked);
  CHECK(shards[1].store->get("b") == std::optional<bytes>{to_bytes("1")});
  // An aborted one as well: its prepare's locks are released.
  *drops = 1;
  std::vector<shard_part> clash{{0, part("a", "2")}, {1, part("c", "2")}};
  // Shard 0 votes no: "a" is locked by a prepare of another transaction.
  std::vector<txn_prepare> hold{{99, part("a", "x")}};
  REQUIRE((*f.ask<std::vector<caf::error>>(shards[0].actor, atom::prepare_v, hold))[0]
          == caf::error{});
  CHECK(code_of(f.ask<uint64_t>(coord, atom::commit_v, uint64_t{8}, clash).error())
        == errc::version_conflict);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (!shards[1].store->in_doubt().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  CHECK(shards[1].store->in_doubt().empty());
  CHECK(!shards[1].store->read("c").blocked);
  CHECK(!shards[1].store->get("c"));
  CHECK(drops->load() == 0);
  REQUIRE(f.ask<std::vector<uint64_t>>(shards[0].actor, atom::resolve_v,
                                       std::vector<txn_outcome>{{99, false}}));
  // Decisions leave the log in batches, each after a barrier: also the one
  // whose outcome needed retries (7), and a batch whose barrier failed (the
  // first, 100 to 163), with a later barrier.
  CHECK(*f.ask<bool>(coord, atom::status_v, uint64_t{7}));
  *sync_drops = 1;
  for (uint64_t t = 100; t < 100 + 2 * decision_batch; ++t) {
    auto n = std::to_string(t);
    std::vector<shard_part> ps{{0, part(("x" + n).c_str(), "1")},
                               {1, part(("y" + n).c_str(), "1")}};
    REQUIRE(f.ask<uint64_t>(coord, atom::commit_v, t, ps));
  }
  CHECK(*f.ask<bool>(coord, atom::status_v, uint64_t{100}));
  auto logged = [&] {
    for (uint64_t t : {uint64_t{7}, uint64_t{100}, uint64_t{100} + decision_batch - 1})
      if (log->get(decision_log::key(t)))
        return true;
    return false;
  };
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (logged() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  CHECK(sync_drops->load() == 0);
  CHECK(!logged());
  // Out of the log, the coordinator still knows that they committed (a
  // transaction whose commit answer was lost asks it).
  CHECK(*f.ask<bool>(coord, atom::status_v, uint64_t{7}));
  CHECK(*f.ask<bool>(coord, atom::status_v, uint64_t{100}));
  CHECK(!*f.ask<bool>(coord, atom::status_v, uint64_t{8}));
  caf::anon_send_exit(coord, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(flaky, caf::exit_reason::user_shutdown);
  for (auto& s : shards)
    caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
}

// Both shards' links lose outcome batches, their answers and barriers at
// random. Safety: a decision leaves the log only once both shards applied its
// commit (a shard that restarts with the transaction prepared would otherwise
// hear "abort"). Liveness: once the links heal, every commit is applied and
// all decisions but the last partial batch leave the log.
TEST_CASE("a decision leaves the log only once every shard applied it over lossy links") {
  fixture f;
  auto shards = spawn_shards(f, 2);
  auto lossy = std::make_shared<std::atomic<bool>>(true);
  auto link = [lossy](uint32_t seed) {
    auto gen = std::make_shared<std::mt19937>(seed);
    lossy_link l;
    l.resolve = [lossy, gen] {
      auto x = (*gen)() % 10;
      if (!*lossy || x > 1)
        return loss::none;
      return x == 0 ? loss::request : loss::answer;
    };
    l.sync = [lossy, gen] { return *lossy && (*gen)() % 4 == 0; };
    return l;
  };
  std::shared_ptr<shard_core> log;
  auto coord = coordinate(f, {spawn_lossy(f, shards[0].actor, link(1)),
                              spawn_lossy(f, shards[1].actor, link(2))},
                          "coordinator", &log);
  auto applied = [&](uint64_t t) {
    auto n = std::to_string(t);
    return shards[0].store->get("a" + n).has_value()
           && shards[1].store->get("b" + n).has_value();
  };
  auto logged = [&](uint64_t t) { return log->get(decision_log::key(t)).has_value(); };
  auto part = [](std::string key) {
    txn_part p;
    p.writes.push_back(operation::set(std::move(key), to_bytes("1")));
    return p;
  };
  constexpr uint64_t n = 6 * decision_batch;
  // Safety: a decision that left the log was applied by both shards.
  auto forgotten = [&](uint64_t upto) {
    size_t out = 0;
    for (uint64_t u = 1; u <= upto; ++u)
      if (!logged(u)) {
        ++out;
        REQUIRE(applied(u));
      }
    return out;
  };
  for (uint64_t t = 1; t <= n; ++t) {
    auto name = std::to_string(t);
    std::vector<shard_part> ps{{0, part("a" + name)}, {1, part("b" + name)}};
    REQUIRE(f.ask<uint64_t>(coord, atom::commit_v, t, ps));
    if (t % 16 == 0)
      forgotten(t);
  }
  // Still over lossy links, decisions leave as the shards confirm them (on a
  // loaded machine, perhaps only after the commits above).
  auto lossy_deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (forgotten(n) == 0 && std::chrono::steady_clock::now() < lossy_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  CHECK(forgotten(n) > 0);
  *lossy = false;
  auto settled = [&] {
    if (!shards[0].store->in_doubt().empty() || !shards[1].store->in_doubt().empty())
      return false;
    size_t still = 0;
    for (uint64_t t = 1; t <= n; ++t) {
      if (!applied(t))
        return false;
      still += logged(t) ? 1 : 0;
    }
    return still < decision_batch;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (!settled() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  CHECK(settled());
  caf::anon_send_exit(coord, caf::exit_reason::user_shutdown);
  for (auto& s : shards)
    caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
}

// [heavy]: 40 MB of values; not over the graph engine (see above).
TEST_CASE("a round of prepares goes in messages below the nodes' frame limit", "[heavy]") {
  // 200 two-shard commits of 100 KiB values reach the coordinator at once,
  // so its rounds carry many prepares. With a 2 MiB limit each message may
  // carry about 1 MiB.
  fixture f;
  auto shards = spawn_shards(f, 2);
  auto sizes = std::make_shared<std::vector<uint64_t>>();
  auto record = [](participant_actor::pointer self, shard_actor target,
                   std::shared_ptr<std::vector<uint64_t>> seen)
    -> participant_actor::behavior_type {
    return {
      [=](atom::commit, uint64_t txid, txn_part& p) -> caf::result<uint64_t> {
        return self->delegate(target, atom::commit_v, txid, std::move(p));
      },
      [=](atom::status, uint64_t txid) -> caf::result<bool> {
        return self->delegate(target, atom::status_v, txid);
      },
      [=](atom::prepare, std::vector<txn_prepare>& b) -> caf::result<std::vector<caf::error>> {
        seen->push_back(wire_size(b));
        return self->delegate(target, atom::prepare_v, std::move(b));
      },
      [=](atom::resolve, std::vector<txn_outcome>& b) -> caf::result<std::vector<uint64_t>> {
        return self->delegate(target, atom::resolve_v, std::move(b));
      },
      [=](atom::sync) -> caf::result<void> { return self->delegate(target, atom::sync_v); },
    };
  };
  // Only shard 1's link records (one actor, so no races on `sizes`).
  auto watched = f.sys().spawn(record, shards[1].actor, sizes);
  auto coord = coordinate(f, {participant_actor{shards[0].actor}, watched}, "coordinator",
                          nullptr, uint64_t{2} << 20);
  bytes value(100 << 10, 7);
  constexpr uint64_t n = 200;
  for (uint64_t t = 1; t <= n; ++t) {
    txn_part a, b;
    a.writes.push_back(operation::set("a" + std::to_string(t), value));
    b.writes.push_back(operation::set("b" + std::to_string(t), value));
    f.self->send(coord, atom::commit_v, t, std::vector<shard_part>{{0, a}, {1, b}});
  }
  for (uint64_t i = 0; i < n; ++i)
    f.self->receive([](uint64_t) {}, [](caf::error& err) { FAIL(render(err)); });
  CHECK(shards[1].store->get("b200").has_value());
  REQUIRE(!sizes->empty());
  CHECK(*std::max_element(sizes->begin(), sizes->end()) <= (uint64_t{1} << 20));
  caf::anon_send_exit(coord, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(watched, caf::exit_reason::user_shutdown);
  for (auto& s : shards)
    caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
}

#ifdef STRATA_FAULT_INJECTION
// The decision log's store appends a decision durably but cannot apply it (an
// LMDB read error): the decision stands. Before, the coordinator aborted the
// transaction, and a reopen replayed and re-drove the commit it had aborted.
// Only engines that log a group before they apply it can be between the two;
// sqlite and json commit a group whole or not at all.
TEST_CASE("a commit decision that is logged but not applied still commits", "[lmdb]") {
  fixture f;
  auto shards = spawn_shards(f, 2);
  auto coord = coordinate(f, {participant_actor{shards[0].actor},
                              participant_actor{shards[1].actor}});
  auto part = [](const char* key) {
    txn_part p;
    p.writes.push_back(operation::set(key, to_bytes("1")));
    return p;
  };
  // The shards apply nothing before the decision: the first apply after
  // arming is the decision log's.
  fault::arm_throw("store.apply", 1);
  std::vector<shard_part> parts{{0, part("a")}, {1, part("b")}};
  auto r = f.ask<uint64_t>(coord, atom::commit_v, uint64_t{5}, parts);
  fault::arm_throw("store.apply", 0);
  REQUIRE(r);
  CHECK(shards[0].store->get("a") == std::optional<bytes>{to_bytes("1")});
  CHECK(shards[1].store->get("b") == std::optional<bytes>{to_bytes("1")});
  // A shard asking about it later hears "commit".
  CHECK(*f.ask<bool>(coord, atom::status_v, uint64_t{5}));
  caf::anon_send_exit(coord, caf::exit_reason::user_shutdown);
  for (auto& s : shards)
    caf::anon_send_exit(s.actor, caf::exit_reason::user_shutdown);
}
#endif

#ifdef STRATA_FAULT_INJECTION
TEST_CASE("a write logged but not applied is CONSISTENCY_VIOLATION and a reopen applies it") {
  fixture f;
  shard_core_options o;
  o.dir = f.dir / "s";
  {
    shard_core s{o};
    std::vector<operation> keep{operation::set("keep", to_bytes("1"))};
    REQUIRE(s.write(write_group{&keep}).at(0).code == errc::none);
    std::vector<operation> w{operation::set("k", to_bytes("v"))};
    fault::arm_throw("store.apply", 1);
    auto out = s.write(write_group{&w}).at(0);
    fault::arm_throw("store.apply", 0);
    CHECK(out.code == errc::consistency_violation);
    CHECK_THAT(out.message, Catch::Contains("reopen"));
    // Refuses writes, keeps serving reads, and its close keeps the log.
    std::vector<operation> later{operation::set("later", to_bytes("x"))};
    CHECK(s.write(write_group{&later}).at(0).code != errc::none);
    CHECK(s.get("keep") == std::optional<bytes>{to_bytes("1")});
    CHECK_THROWS_AS(s.flush(), storage_error);
  }
  shard_core s{o};
  CHECK(s.get("k") == std::optional<bytes>{to_bytes("v")});
  CHECK(s.get("keep") == std::optional<bytes>{to_bytes("1")});
  CHECK(!s.get("later"));
  std::vector<operation> again{operation::set("again", to_bytes("y"))};
  CHECK(s.write(write_group{&again}).at(0).code == errc::none);
}
#endif

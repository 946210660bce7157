// Backend tests of the storage-engine interface: every engine against one
// model, and the shard core's engine-independent parts (write hooks, recovery
// from key spaces, a format-1 log), without actors.

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/engines.hpp"
#include "backends/lmdb.hpp"
#include "backends/memory_engine.hpp"
#include "backends/shard_core.hpp"
#include "backends/wal.hpp"
#include "tests/temp_dir.hpp"
#include "tests/virtuoso.hpp"

using namespace strata;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

std::string str(std::string_view x) {
  return std::string{x};
}

using space_model = std::map<std::string, bytes>;
using model = std::array<space_model, keyspace_count>;

engine_options options(const std::string& dir, engine_kind kind) {
  engine_options o;
  o.dir = dir;
  o.engine = kind;
  o.map_size = 64 << 20;
  o.no_sync = true;
  // Small memtables: reads cross memtable, flushing memtable and LMDB.
  o.flush_entries = 40;
  o.snapshot = true;
  if (kind == engine_kind::graph)
    o.graph = test::test_graph();
  return o;
}

/// Everything `e` holds in `ks`, through a scan.
space_model dump(const engine& e, keyspace ks);

void require_equal(const engine& e, const model& m) {
  for (size_t s = 0; s < keyspace_count; ++s) {
    auto ks = static_cast<keyspace>(s);
    INFO("key space " << keyspace_name(ks));
    REQUIRE(dump(e, ks) == m[s]);
    e.read([&](const engine_snapshot& snap) { REQUIRE(snap.count(ks) == m[s].size()); });
  }
}

/// A shard core on `kind` in `dir`, with small memtables.
shard_core_options core_options(const std::string& dir, engine_kind kind,
                                size_t flush_entries) {
  shard_core_options o;
  o.dir = dir;
  o.engine = kind;
  o.no_sync = true;
  o.flush_entries = flush_entries;
  if (kind == engine_kind::graph)
    o.graph = test::test_graph();
  return o;
}

/// Everything a snapshot holds in `ks`.
space_model dump(const engine_snapshot& s, keyspace ks) {
  space_model result;
  s.scan(ks, {}, false, [&](std::string_view k, std::string_view v) {
    result.emplace(str(k), b(str(v)));
    return true;
  });
  return result;
}

space_model dump(const engine& e, keyspace ks) {
  space_model result;
  e.read([&](const engine_snapshot& s) { result = dump(s, ks); });
  return result;
}

write_outcome write_one(shard_core& s, std::vector<operation> ops) {
  write_group g{&ops};
  return s.write(g).at(0);
}

} // namespace

TEST_CASE("every engine agrees with a model of its key spaces, before-images included") {
  auto kind = GENERATE(engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                       engine_kind::json, engine_kind::graph);
  INFO("engine " << engine_name(kind));
  test::temp_dir dir;
  auto o = options(dir / "e", kind);
  std::mt19937 rng{7};
  model m;
  uint64_t last_seq = 0;
  auto e = open_engine(o);
  CHECK(e->kind() == kind);
  CHECK(e->capabilities().durable == (kind != engine_kind::memory));
  CHECK(e->capabilities().ordered_scans);
  for (int round = 0; round < 600; ++round) {
    // A group of 1-4 batches, each over 1-3 key spaces.
    std::vector<std::vector<std::vector<operation>>> ops;
    std::vector<engine_batch> group(1 + rng() % 4);
    ops.resize(group.size());
    std::vector<std::vector<std::optional<bytes>>> expected_before(group.size());
    std::vector<uint64_t> expected_deleted(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      group[i].before_images = rng() % 2 == 0;
      auto spaces = 1 + rng() % 3;
      ops[i].resize(spaces);
      for (size_t p = 0; p < spaces; ++p) {
        auto ks = static_cast<keyspace>(rng() % keyspace_count);
        auto& sm = m[static_cast<size_t>(ks)];
        for (int n = 0; n < 1 + static_cast<int>(rng() % 5); ++n) {
          auto key = "k" + std::to_string(rng() % 60);
          auto dice = rng() % 100;
          auto old = sm.count(key) ? std::optional<bytes>{sm[key]} : std::nullopt;
          if (dice < 2) {
            ops[i][p].push_back(operation::clear());
            if (ks == keyspace::data)
              expected_deleted[i] += sm.size();
            sm.clear();
            continue;
          }
          if (ks == keyspace::data && group[i].before_images)
            expected_before[i].push_back(old);
          if (dice < 60) {
            auto v = b(key + ":" + std::to_string(round) + std::string(rng() % 30, 'x'));
            ops[i][p].push_back(operation::set(key, v));
            sm[key] = v;
          } else {
            ops[i][p].push_back(operation::del(key));
            if (ks == keyspace::data && old)
              ++expected_deleted[i];
            sm.erase(key);
          }
        }
        group[i].parts.push_back({ks, &ops[i][p]});
      }
    }
    auto first = e->next_seq();
    REQUIRE(first > last_seq);
    auto res = e->apply(group, rng() % 2 == 0);
    REQUIRE(res.code == errc::none);
    REQUIRE(res.logged);
    REQUIRE(res.effects.size() == group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      CHECK(res.effects[i].seq == first + i);
      CHECK(res.effects[i].deleted == expected_deleted[i]);
      CHECK(res.effects[i].before == expected_before[i]);
    }
    last_seq = res.effects.back().seq;
    e->read([&](const engine_snapshot& s) { REQUIRE(s.seq() == last_seq); });
    if (round % 50 == 0) {
      require_equal(*e, m);
      // Point reads, and scans that start inside and skip their start.
      e->read([&](const engine_snapshot& s) {
        for (int k = 0; k < 20; ++k) {
          auto key = "k" + std::to_string(rng() % 60);
          std::string_view v;
          auto& sm = m[0];
          REQUIRE(s.get(keyspace::data, key, v) == (sm.count(key) == 1));
          if (sm.count(key))
            REQUIRE(b(str(v)) == sm[key]);
          std::vector<std::string> seen;
          s.scan(keyspace::data, key, true, [&](std::string_view k2, std::string_view) {
            seen.push_back(str(k2));
            return seen.size() < 5;
          });
          std::vector<std::string> want;
          for (auto i = sm.upper_bound(key); i != sm.end() && want.size() < 5; ++i)
            want.push_back(i->first);
          REQUIRE(seen == want);
        }
      });
    }
    if (round % 150 == 149) {
      // A clean close and reopen keeps everything, for lmdb on disk and for
      // memory through its snapshot; numbers go on growing.
      e.reset();
      e = open_engine(o);
      require_equal(*e, m);
      REQUIRE(e->next_seq() > last_seq);
    }
  }
  require_equal(*e, m);
}

TEST_CASE("the capability matrix: what each engine declares, as docs/concepts.md lists it") {
  test::temp_dir dir;
  // engine -> ordered_scans, concurrent_readers, durable, transactions,
  // before_images, files
  std::vector<std::pair<engine_kind, std::vector<std::string>>> expected{
    {engine_kind::lmdb, {"ordered_scans", "concurrent_readers", "durable", "transactions",
                         "before_images", "files"}},
    {engine_kind::sqlite, {"ordered_scans", "concurrent_readers", "durable", "transactions",
                           "before_images", "files"}},
    {engine_kind::json, {"ordered_scans", "concurrent_readers", "durable", "transactions",
                         "before_images", "files"}},
    {engine_kind::memory, {"ordered_scans", "concurrent_readers", "transactions",
                           "before_images"}},
    {engine_kind::graph, {"ordered_scans", "concurrent_readers", "durable", "transactions",
                          "before_images"}},
  };
  const std::vector<std::string> all{"ordered_scans", "concurrent_readers", "durable",
                                     "transactions",  "before_images",      "files"};
  std::string table = "engine ";
  for (auto& c : all)
    table += " | " + c;
  table += "\n";
  for (auto& [kind, caps] : expected) {
    auto e = open_engine(options(dir / engine_name(kind), kind));
    auto names = capability_names(e->capabilities());
    CHECK(names == caps);
    table += std::string{engine_name(kind)} + std::string(7 - std::strlen(engine_name(kind)), ' ');
    for (auto& c : all) {
      auto has = std::find(names.begin(), names.end(), c) != names.end();
      table += " | " + std::string(c.size() - 1, ' ') + (has ? "y" : "-");
    }
    table += "\n";
  }
  std::cout << table;
}

TEST_CASE("performance hints tune the engines that can use them, as info reports") {
  test::temp_dir dir;
  auto tuning = [&](engine_kind kind, const std::string& name, performance_hints h) {
    auto o = options(dir / name, kind);
    o.map_size = 64u << 20;
    o.hints = std::move(h);
    auto e = open_engine(o);
    return e->info().tuning;
  };
  auto has = [](const std::vector<std::string>& xs, const std::string& x) {
    return std::find(xs.begin(), xs.end(), x) != xs.end();
  };
  SECTION("lmdb: read-ahead off for random access, a larger memtable for writes") {
    auto plain = tuning(engine_kind::lmdb, "plain", {});
    CHECK(has(plain, "readahead=on"));
    CHECK(has(plain, "memtable_entries=40")); // options() keeps memtables small
    auto random = tuning(engine_kind::lmdb, "random", {0, "random", 0});
    CHECK(has(random, "readahead=off"));
    auto writes = tuning(engine_kind::lmdb, "writes", {0, "write-heavy", 0});
    CHECK(has(writes, "readahead=on"));
    CHECK(has(writes, "memtable_entries=160"));
  }
  SECTION("sqlite: cache size, mmap for reads, fewer checkpoints for writes") {
    auto plain = tuning(engine_kind::sqlite, "plain", {});
    CHECK(has(plain, "cache_size=-2000")); // SQLite's default, 2 MiB
    CHECK(has(plain, "mmap_size=0"));
    CHECK(has(plain, "wal_autocheckpoint=1000"));
    auto cached = tuning(engine_kind::sqlite, "cached", {0, "read-heavy", 8u << 20});
    CHECK(has(cached, "cache_size=-8192"));
    CHECK(has(cached, "mmap_size=" + std::to_string(64u << 20)));
    auto writes = tuning(engine_kind::sqlite, "writes", {0, "write-heavy", 0});
    CHECK(has(writes, "wal_autocheckpoint=10000"));
    CHECK(has(writes, "mmap_size=0"));
    // Explicit settings win over hints.
    auto o = options(dir / "explicit", engine_kind::sqlite);
    o.sqlite.cache_kib = 1024;
    o.hints.cache_bytes = 64u << 20;
    CHECK(has(open_engine(o)->info().tuning, "cache_size=-1024"));
  }
  SECTION("memory and json take no hints") {
    CHECK(tuning(engine_kind::memory, "mem", {1000, "random", 1u << 20}).empty());
    CHECK(tuning(engine_kind::json, "json", {1000, "random", 1u << 20}).empty());
  }
  SECTION("graph takes none either, and reports its graph and endpoint") {
    auto graph = tuning(engine_kind::graph, "graph", {1000, "random", 1u << 20});
    REQUIRE(graph.size() == 2);
    CHECK(graph[0].rfind("graph=urn:strata:", 0) == 0);
    CHECK(graph[1] == "endpoint=" + test::test_graph().url);
  }
}

TEST_CASE("a durable engine killed mid-write keeps every acknowledged write") {
  auto kind = GENERATE(engine_kind::lmdb, engine_kind::sqlite, engine_kind::json,
                       engine_kind::graph);
  INFO("engine " << engine_name(kind));
  test::temp_dir dir;
  auto o = core_options(dir / "s", kind, 64);
  o.no_sync = false;
  auto key = [](int i) { return "k" + std::to_string(i); };
  auto value = [](int i) { return b("value of " + std::to_string(i)); };
  std::mt19937 rng{11};
  int next = 0;
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    auto pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // The child writes one key at a time and reports each acknowledged
      // one, until it is killed.
      ::close(fds[0]);
      try {
        shard_core s{o};
        for (int i = next;; ++i) {
          if (write_one(s, {operation::set(key(i), value(i))}).code != errc::none)
            ::_exit(3);
          if (::write(fds[1], &i, sizeof i) != sizeof i)
            ::_exit(4);
        }
      } catch (...) {
        ::_exit(2);
      }
    }
    ::close(fds[1]);
    auto kill_after = 5 + static_cast<int>(rng() % 40);
    int acked = next - 1;
    int got = 0;
    int i = 0;
    while (::read(fds[0], &i, sizeof i) == sizeof i) {
      acked = i;
      if (++got == kill_after)
        ::kill(pid, SIGKILL);
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(acked >= next + kill_after - 1);
    // Every acknowledged write is there; of the one in flight, all or nothing.
    shard_core s{o};
    for (int k = 0; k <= acked; ++k) {
      INFO("round " << round << ", key " << k << " of " << acked);
      REQUIRE(s.get(key(k)) == value(k));
    }
    auto in_flight = s.get(key(acked + 1));
    CHECK((!in_flight || *in_flight == value(acked + 1)));
    CHECK(!s.get(key(acked + 2)));
    next = in_flight ? acked + 2 : acked + 1;
  }
}

TEST_CASE("the memory engine: not durable, its snapshot used once, a corrupt one refused") {
  test::temp_dir dir;
  auto o = options(dir / "m", engine_kind::memory);
  o.snapshot = false;
  std::vector<operation> ops{operation::set("a", b("1"))};
  engine_batch batch;
  batch.parts.push_back({keyspace::data, &ops});
  uint64_t seq = 0;
  {
    memory_engine e{o};
    seq = e.apply({batch}, true).effects.at(0).seq;
  }
  {
    // Without a snapshot nothing outlives the engine, and no number returns.
    memory_engine e{o};
    CHECK(dump(e, keyspace::data).empty());
    CHECK(e.next_seq() > seq);
    CHECK(!std::filesystem::exists(e.snapshot_path()));
  }
  o.snapshot = true;
  std::string path;
  {
    memory_engine e{o};
    path = e.snapshot_path();
    REQUIRE(e.apply({batch}, true).code == errc::none);
  }
  REQUIRE(std::filesystem::exists(path));
  {
    memory_engine e{o};
    CHECK(dump(e, keyspace::data).size() == 1);
    // The file stays while nothing changed...
    CHECK(std::filesystem::exists(path));
    std::vector<operation> more{operation::set("b", b("2"))};
    engine_batch other;
    other.parts.push_back({keyspace::data, &more});
    REQUIRE(e.apply({other}, true).code == errc::none);
    // ...and goes with the first change: a crash now loses everything
    // instead of bringing back the older state.
    CHECK(!std::filesystem::exists(path));
  }
  // Saved again on close; a flipped byte is found.
  REQUIRE(std::filesystem::exists(path));
  {
    std::fstream f{path, std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(30);
    f.put('\x7f');
  }
  try {
    memory_engine e{o};
    FAIL("a corrupt snapshot was loaded");
  } catch (const storage_error& err) {
    CHECK(err.code() == errc::consistency_violation);
    CHECK_THAT(err.what(), Catch::Contains("memory.snapshot is corrupt"));
  }
}

TEST_CASE("an engine refuses a directory that holds the other engine's shard") {
  test::temp_dir dir;
  auto lm = options(dir / "l", engine_kind::lmdb);
  open_engine(lm).reset();
  auto as_memory = lm;
  as_memory.engine = engine_kind::memory;
  try {
    open_engine(as_memory);
    FAIL("an lmdb shard was opened as memory");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::consistency_violation);
    CHECK_THAT(e.what(), Catch::Contains("holds a shard of engine lmdb"));
  }
  auto mem = options(dir / "m", engine_kind::memory);
  open_engine(mem).reset(); // saves an empty snapshot
  auto as_lmdb = mem;
  as_lmdb.engine = engine_kind::lmdb;
  CHECK_THROWS_AS(open_engine(as_lmdb), storage_error);
  CHECK(!std::filesystem::exists(dir / "m/data.mdb"));
}

TEST_CASE("a full engine refuses values with STORAGE_FULL, keeps what it took, and takes deletes") {
  // lmdb's own full map is storage_test's (a map of pages, with a WAL).
  auto kind = GENERATE(engine_kind::memory, engine_kind::sqlite, engine_kind::json,
                       engine_kind::graph);
  INFO("engine " << engine_name(kind));
  test::temp_dir dir;
  shard_core_options o;
  o.dir = dir / "s";
  o.engine = kind;
  o.no_sync = true;
  o.map_size = 1 << 20;
  if (kind == engine_kind::graph)
    o.graph = test::test_graph();
  int stored = 0;
  {
    shard_core s{o};
    write_outcome out;
    for (;; ++stored) {
      out = write_one(s, {operation::set("k" + std::to_string(stored), bytes(4096, 'v'))});
      if (out.code != errc::none)
        break;
    }
    CHECK(out.code == errc::storage_full);
    CHECK_THAT(out.message, Catch::Contains("full"));
    CHECK(stored >= 150);
    CHECK(s.size() == static_cast<uint64_t>(stored));
    CHECK(s.info().engine == engine_name(kind));
    CHECK(!s.get("k" + std::to_string(stored)));
    // Deletes go through and make room.
    for (int i = 0; i < stored / 2; ++i)
      REQUIRE(write_one(s, {operation::del("k" + std::to_string(i))}).code == errc::none);
    CHECK(write_one(s, {operation::set("again", bytes(4096, 'v'))}).code == errc::none);
    CHECK(s.get("again") == bytes(4096, 'v'));
  }
  if (kind == engine_kind::memory)
    return;
  // What the durable engines acknowledged is there after a reopen.
  shard_core s{o};
  CHECK(s.get("again") == bytes(4096, 'v'));
  for (int i = stored / 2; i < stored; ++i)
    REQUIRE(s.get("k" + std::to_string(i)) == bytes(4096, 'v'));
  CHECK(!s.get("k0"));
}

namespace {

/// Records every commit, with the values it replaced.
struct recorder : write_hook {
  bool images = true;
  struct change {
    uint64_t seq;
    uint64_t txid;
    std::vector<operation> ops;
    std::vector<std::optional<bytes>> before;
  };
  std::vector<change> seen;

  bool wants_before_images() const override {
    return images;
  }

  void committed(const committed_change& c) override {
    seen.push_back({c.seq, c.txid, *c.ops, *c.before});
  }
};

} // namespace

TEST_CASE("hooks see every commit in order with the values it replaced") {
  auto kind = GENERATE(engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                       engine_kind::json, engine_kind::graph);
  INFO("engine " << engine_name(kind));
  test::temp_dir dir;
  shard_core s{core_options(dir / "s", kind, 30)};
  auto rec = std::make_shared<recorder>();
  s.add_hook(rec);
  std::mt19937 rng{3};
  space_model m;
  // What each commit should report: its operations and the old values.
  std::vector<std::pair<std::vector<operation>, std::vector<std::optional<bytes>>>> want;
  auto expect = [&](const std::vector<operation>& ops) {
    std::vector<std::optional<bytes>> before;
    for (auto& op : ops) {
      if (op.kind == op_kind::clear) {
        m.clear();
        continue;
      }
      before.push_back(m.count(op.key) ? std::optional<bytes>{m[op.key]} : std::nullopt);
      if (op.kind == op_kind::set)
        m[op.key] = op.value;
      else
        m.erase(op.key);
    }
    want.emplace_back(ops, std::move(before));
  };
  uint64_t txid = 100;
  for (int round = 0; round < 400; ++round) {
    std::vector<operation> ops;
    for (int n = 0; n < 1 + static_cast<int>(rng() % 4); ++n) {
      auto key = "k" + std::to_string(rng() % 40);
      if (rng() % 50 == 0)
        ops.push_back(operation::clear());
      else if (rng() % 3 == 0)
        ops.push_back(operation::del(key));
      else
        ops.push_back(operation::set(key, b(std::to_string(round))));
    }
    txn_part part;
    part.writes = ops;
    switch (rng() % 3) {
      case 0:
        REQUIRE(write_one(s, ops).code == errc::none);
        expect(ops);
        break;
      case 1: {
        write_request r{write_request::type::commit, nullptr, &part, ++txid, false};
        REQUIRE(s.write(std::vector<write_request>{r}).at(0).code == errc::none);
        expect(ops);
        break;
      }
      default: {
        // Prepared, then committed or aborted: only a commit is a change.
        auto id = ++txid;
        write_request p{write_request::type::prepare, nullptr, &part, id, false};
        REQUIRE(s.write(std::vector<write_request>{p}).at(0).code == errc::none);
        bool commit = rng() % 3 != 0;
        write_request r{write_request::type::resolve, nullptr, nullptr, id, commit};
        REQUIRE(s.write(std::vector<write_request>{r}).at(0).code == errc::none);
        if (commit)
          expect(ops);
        break;
      }
    }
  }
  REQUIRE(rec->seen.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("commit " << i);
    REQUIRE(rec->seen[i].ops.size() == want[i].first.size());
    REQUIRE(rec->seen[i].before == want[i].second);
    if (i > 0)
      REQUIRE(rec->seen[i].seq > rec->seen[i - 1].seq);
  }
  // Without a wish for them, no old values are read.
  rec->images = false;
  REQUIRE(write_one(s, {operation::set("k1", b("x"))}).code == errc::none);
  CHECK(rec->seen.back().before.empty());
}

namespace {

/// A reverse index kept by a hook in the index space: "<value>\0<key>" for
/// every key, derived from the values each batch replaces.
struct reverse_index : write_hook {
  void extend(const std::vector<operation>& ops, const pending_data& data,
              derived_writes& out) override {
    std::vector<operation> idx;
    std::map<std::string, std::optional<std::string>> local; // this batch's
    bool cleared = false;
    for (auto& op : ops) {
      if (op.kind == op_kind::clear) {
        idx.clear();
        idx.push_back(operation::clear());
        local.clear();
        cleared = true;
        continue;
      }
      std::optional<std::string> old;
      if (auto i = local.find(op.key); i != local.end()) {
        old = i->second;
      } else if (!cleared) {
        std::string_view v;
        if (data.get(op.key, v))
          old = str(v);
      }
      if (old)
        idx.push_back(operation::del(*old + '\0' + op.key));
      if (op.kind == op_kind::set) {
        std::string value(op.value.begin(), op.value.end());
        idx.push_back(operation::set(value + '\0' + op.key, {}));
        local[op.key] = value;
      } else {
        local[op.key] = std::nullopt;
      }
    }
    if (!idx.empty())
      out.emplace_back(keyspace::index, std::move(idx));
  }
};

space_model index_of(const std::map<std::string, std::string>& data) {
  space_model result;
  for (auto& [k, v] : data)
    result.emplace(v + '\0' + k, bytes{});
  return result;
}

space_model index_in(const shard_core& s) {
  space_model result;
  s.with_snapshot([&](const engine_snapshot& snap) { result = dump(snap, keyspace::index); });
  return result;
}

} // namespace

TEST_CASE("a hook's derived writes are applied with the data, durably and all or nothing") {
  auto kind = GENERATE(engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                       engine_kind::json, engine_kind::graph);
  INFO("engine " << engine_name(kind));
  test::temp_dir dir;
  auto o = core_options(dir / "s", kind, 25);
  o.snapshot = true;
  std::mt19937 rng{11};
  std::map<std::string, std::string> m;
  uint64_t txid = 1;
  for (int life = 0; life < 3; ++life) {
    shard_core s{o};
    s.add_hook(std::make_shared<reverse_index>());
    REQUIRE(index_in(s) == index_of(m));
    for (int round = 0; round < 150; ++round) {
      // A group of plain writes and one-phase commits over few keys, so that
      // later requests of a group rewrite what earlier ones wrote.
      std::vector<std::vector<operation>> ops(1 + rng() % 4);
      std::vector<txn_part> parts(ops.size());
      std::vector<write_request> group;
      for (size_t i = 0; i < ops.size(); ++i) {
        for (int n = 0; n < 1 + static_cast<int>(rng() % 3); ++n) {
          auto key = "k" + std::to_string(rng() % 12);
          auto dice = rng() % 40;
          if (dice == 0) {
            ops[i].push_back(operation::clear());
            m.clear();
          } else if (dice < 12) {
            ops[i].push_back(operation::del(key));
            m.erase(key);
          } else {
            auto v = "v" + std::to_string(rng() % 5);
            ops[i].push_back(operation::set(key, b(v)));
            m[key] = v;
          }
        }
        if (rng() % 2) {
          group.push_back(write_request::plain_ops(ops[i]));
        } else {
          parts[i].writes = ops[i];
          group.push_back({write_request::type::commit, nullptr, &parts[i], ++txid, false});
        }
      }
      for (auto& out : s.write(group))
        REQUIRE(out.code == errc::none);
      // A prepared transaction: its index entries come with its commit.
      if (round % 10 == 0) {
        txn_part p;
        auto key = "k" + std::to_string(rng() % 12);
        p.writes.push_back(operation::set(key, b("prepared")));
        auto id = ++txid;
        write_request prep{write_request::type::prepare, nullptr, &p, id, false};
        REQUIRE(s.write(std::vector<write_request>{prep}).at(0).code == errc::none);
        REQUIRE(index_in(s) == index_of(m));
        bool commit = rng() % 2;
        write_request res{write_request::type::resolve, nullptr, nullptr, id, commit};
        REQUIRE(s.write(std::vector<write_request>{res}).at(0).code == errc::none);
        if (commit)
          m[key] = "prepared";
      }
      REQUIRE(index_in(s) == index_of(m));
    }
  }
}

namespace {

/// A hook that breaks its contract when a value is "bad": it writes to the
/// data space.
struct misbehaving : write_hook {
  void extend(const std::vector<operation>& ops, const pending_data&,
              derived_writes& out) override {
    for (auto& op : ops)
      if (op.kind == op_kind::set && op.value == b("bad"))
        out.emplace_back(keyspace::data, std::vector<operation>{operation::del("victim")});
  }
};

} // namespace

TEST_CASE("a hook that fails fails its group with a clear error and writes nothing") {
  auto kind = GENERATE(engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                       engine_kind::json, engine_kind::graph);
  INFO("engine " << engine_name(kind));
  test::temp_dir dir;
  shard_core s{core_options(dir / "s", kind, 1000)};
  s.add_hook(std::make_shared<misbehaving>());
  REQUIRE(write_one(s, {operation::set("victim", b("1"))}).code == errc::none);
  // One group: a prepare, a write, the bad write, and one after it.
  txn_part p;
  p.writes.push_back(operation::set("prepared", b("p")));
  std::vector<operation> before{operation::set("before", b("x"))};
  std::vector<operation> bad{operation::set("k", b("bad"))};
  std::vector<operation> after{operation::set("after", b("y"))};
  std::vector<write_request> group{
    {write_request::type::prepare, nullptr, &p, 77, false},
    write_request::plain_ops(before),
    write_request::plain_ops(bad),
    write_request::plain_ops(after),
  };
  auto seq = s.read("victim").seq;
  auto out = s.write(group);
  for (auto& o : out) {
    CHECK(o.code == errc::invalid_value);
    CHECK_THAT(o.message, Catch::Contains("may not add writes to the data space"));
  }
  // Nothing was written, nothing stays locked or prepared.
  CHECK(s.get("victim") == std::optional<bytes>{b("1")});
  CHECK(!s.get("before"));
  CHECK(!s.get("k"));
  CHECK(!s.get("after"));
  CHECK(s.in_doubt().empty());
  CHECK(!s.read("prepared").blocked);
  CHECK(s.read("victim").seq == seq);
  // The shard goes on.
  REQUIRE(write_one(s, {operation::set("after", b("y"))}).code == errc::none);
  CHECK(s.get("after") == std::optional<bytes>{b("y")});
}

TEST_CASE("a shard of format 1 (log records of types 0-4) opens with everything in place") {
  test::temp_dir dir;
  shard_core_options o;
  o.dir = dir / "s";
  o.no_sync = true;
  {
    shard_core s{o}; // identity and an empty store, flushed on close
  }
  // Turn it into a format-1 shard whose log holds one record of each type,
  // as the earlier version wrote them.
  uint64_t applied = 0;
  uint64_t epoch = 0;
  {
    lmdb::env env{o.dir, lmdb::env_options{}};
    auto t = lmdb::txn::write(env);
    // Format 1 kept the engine's keys among the shard's metadata.
    auto meta = t.open_db("meta", false);
    auto own = t.open_db("engine", false);
    std::string_view v;
    REQUIRE(t.get(own, "seq_floor", v));
    applied = std::stoull(str(v));
    REQUIRE(t.get(own, "wal_epoch", v));
    epoch = std::stoull(str(v));
    for (auto key : {"seq_floor", "wal_epoch", "wal_epoch.1"}) {
      REQUIRE(t.get(own, key, v));
      t.put(meta, key, str(v));
    }
    t.clear(own);
    t.put(meta, "format", "1");
    t.put(meta, "applied", std::to_string(applied));
    t.commit();
  }
  auto part_of = [](std::vector<operation> w) {
    txn_part p;
    p.writes = std::move(w);
    p.reads.push_back({"read-by-it", 0});
    return p;
  };
  auto seq = applied;
  {
    wal w{o.dir + "/wal.log", false};
    w.set_epoch(epoch);
    w.replay([](wal_record&) { FAIL("the log should be empty"); });
    w.append({
      wal::encode(++seq, {operation::set("a", b("1")), operation::set("gone", b("x"))}),
      wal::encode(++seq, {operation::del("gone")}),
      wal::encode_prepare(++seq, 7, part_of({operation::set("p", b("7"))})),
      wal::encode_commit_one(++seq, 9, {operation::set("c", b("9"))}),
      wal::encode_prepare(++seq, 8, part_of({operation::set("q", b("8"))})),
      wal::encode_outcome(++seq, 7, true),
      wal::encode_outcome(++seq, 8, false),
      wal::encode_prepare(++seq, 10, part_of({operation::set("r", b("10"))})),
    });
  }
  {
    shard_core s{o};
    CHECK(s.get("a") == std::optional<bytes>{b("1")});
    CHECK(!s.get("gone"));
    CHECK(s.get("p") == std::optional<bytes>{b("7")}); // prepared, then committed
    CHECK(s.get("c") == std::optional<bytes>{b("9")}); // one-phase commit
    CHECK(!s.get("q"));                                 // prepared, then aborted
    CHECK(!s.get("r"));                                 // still prepared
    CHECK(s.in_doubt() == std::vector<uint64_t>{10});
    CHECK(s.read("r").blocked); // its lock is back
    write_request status{write_request::type::status, nullptr, nullptr, 9, false};
    CHECK(s.write(std::vector<write_request>{status}).at(0).status == commit_status::committed);
    write_request resolve{write_request::type::resolve, nullptr, nullptr, 10, true};
    REQUIRE(s.write(std::vector<write_request>{resolve}).at(0).code == errc::none);
    CHECK(s.get("r") == std::optional<bytes>{b("10")});
  }
  // The directory is format 2 now: a binary that knows only format 1 refuses
  // it rather than reading batches as a torn log.
  lmdb::env env{o.dir, lmdb::env_options{}};
  auto t = lmdb::txn::read(env);
  std::string_view v;
  REQUIRE(t.get(t.open_db("engine", false), "format", v));
  CHECK(v == "2");
  CHECK(!t.get(t.open_db("meta", false), "format", v));
}

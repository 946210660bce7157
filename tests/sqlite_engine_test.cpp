// The sqlite engine beyond what every engine shares (engine_test): its
// settings, its file as other SQLite tools see it, readers beside the
// writer, and a database in memory.

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sqlite3.h>

#include "backends/engines.hpp"
#include "backends/sqlite_engine.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

engine_options options(const std::string& dir) {
  engine_options o;
  o.dir = dir;
  o.engine = engine_kind::sqlite;
  o.map_size = 64 << 20;
  o.no_sync = true;
  return o;
}

apply_result write(engine& e, std::vector<operation> ops, keyspace ks = keyspace::data) {
  engine_batch batch;
  batch.parts.push_back({ks, &ops});
  batch.before_images = true;
  return e.apply({batch}, true);
}

std::optional<std::string> get(const engine& e, const std::string& key) {
  std::optional<std::string> result;
  e.read([&](const engine_snapshot& s) {
    std::string_view v;
    if (s.get(keyspace::data, key, v))
      result = std::string{v};
  });
  return result;
}

} // namespace

TEST_CASE("sqlite settings that cannot work are INVALID_VALUE, before anything is made") {
  test::temp_dir dir;
  auto refused = [](const engine_options& o, const char* what) {
    try {
      sqlite_engine e{o};
      FAIL("opened");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::invalid_value);
      CHECK_THAT(err.what(), Catch::Contains(what));
    }
  };
  for (const std::string& table :
       std::vector<std::string>{"", "1st", "a;drop table x", "a-b", std::string(65, 't')}) {
    INFO("table '" << table << "'");
    auto o = options(dir / "t");
    o.sqlite.table = table;
    refused(o, "sqlite table name");
  }
  for (auto db : {"", "a/b.db", "..", "."}) {
    INFO("database '" << db << "'");
    auto o = options(dir / "d");
    o.sqlite.database = db;
    refused(o, "sqlite database");
  }
  CHECK(!std::filesystem::exists(dir / "t/strata.sqlite"));
}

TEST_CASE("a sqlite shard is a plain SQLite file: one table per key space, in byte order") {
  test::temp_dir dir;
  auto o = options(dir / "s");
  o.sqlite.table = "kv";
  o.no_sync = false;
  {
    sqlite_engine e{o};
    CHECK(e.capabilities().durable);
    CHECK(e.capabilities().concurrent_readers);
    REQUIRE(write(e, {operation::set("b", b("2")), operation::set("a", b("1")),
                      operation::set(std::string("\0z", 2), b("")), operation::set("c", b("3")),
                      operation::del("c")})
              .code
            == errc::none);
    REQUIRE(write(e, {operation::set("m", b("meta"))}, keyspace::meta).code == errc::none);
  }
  // Another SQLite client reads what the engine wrote.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((dir / "s/strata.sqlite").c_str(), &db, SQLITE_OPEN_READONLY,
                          nullptr)
          == SQLITE_OK);
  std::vector<std::pair<std::string, std::string>> rows;
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT k, v FROM kv ORDER BY k", -1, &s, nullptr) == SQLITE_OK);
  while (sqlite3_step(s) == SQLITE_ROW)
    rows.emplace_back(
      std::string(static_cast<const char*>(sqlite3_column_blob(s, 0)),
                  static_cast<size_t>(sqlite3_column_bytes(s, 0))),
      std::string(static_cast<const char*>(sqlite3_column_blob(s, 1)),
                  static_cast<size_t>(sqlite3_column_bytes(s, 1))));
  sqlite3_finalize(s);
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM kv_meta", -1, &s, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(sqlite3_column_int(s, 0) == 1);
  sqlite3_finalize(s);
  sqlite3_close(db);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].first == std::string("\0z", 2)); // an empty value stays empty, not NULL
  CHECK(rows[0].second.empty());
  CHECK(rows[1] == std::make_pair(std::string{"a"}, std::string{"1"}));
  CHECK(rows[2] == std::make_pair(std::string{"b"}, std::string{"2"}));
  // Reopened, it holds the same and numbers go on.
  sqlite_engine e{o};
  CHECK(get(e, "a") == "1");
  CHECK(!get(e, "c"));
  CHECK(e.next_seq() == 3);
}

TEST_CASE("sqlite readers see whole groups while the writer commits") {
  test::temp_dir dir;
  sqlite_engine e{options(dir / "s")};
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::atomic<int> torn{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r)
    readers.emplace_back([&] {
      uint64_t last = 0;
      while (!done) {
        e.read([&](const engine_snapshot& s) {
          // Both keys are written by every batch: a reader sees both or
          // neither of a batch's values, and numbers never go back.
          std::string_view x, y;
          auto hx = s.get(keyspace::data, "x", x);
          auto hy = s.get(keyspace::data, "y", y);
          if (hx != hy || x != y || s.seq() < last)
            ++torn;
          last = s.seq();
          uint64_t n = 0;
          s.scan(keyspace::data, {}, false, [&](std::string_view, std::string_view) {
            ++n;
            return true;
          });
          if (n != s.count(keyspace::data))
            ++torn;
        });
        ++reads;
      }
    });
  for (int i = 0; i < 400; ++i) {
    auto v = b(std::to_string(i));
    std::vector<operation> ops{operation::set("x", v), operation::set("y", v),
                               operation::set("n" + std::to_string(i), v)};
    engine_batch batch;
    batch.parts.push_back({keyspace::data, &ops});
    REQUIRE(e.apply({batch, batch}, i % 2 == 0).code == errc::none);
  }
  done = true;
  for (auto& t : readers)
    t.join();
  CHECK(torn == 0);
  CHECK(reads > 0);
  CHECK(get(e, "x") == "399");
}

TEST_CASE("a sqlite database in memory: not durable, numbers still grow") {
  test::temp_dir dir;
  auto o = options(dir / "m");
  o.sqlite.database = ":memory:";
  uint64_t seq = 0;
  {
    sqlite_engine e{o};
    CHECK(!e.capabilities().durable);
    CHECK(!e.capabilities().files);
    auto res = write(e, {operation::set("a", b("1"))});
    REQUIRE(res.code == errc::none);
    seq = res.effects.at(0).seq;
    CHECK(get(e, "a") == "1");
    // Readers share the one connection, in turn with the writer.
    std::thread t{[&] { CHECK(get(e, "a") == "1"); }};
    t.join();
  }
  sqlite_engine e{o};
  CHECK(!get(e, "a"));
  CHECK(e.next_seq() > seq);
  CHECK(!std::filesystem::exists(dir / "m/strata.sqlite"));
}

TEST_CASE("a sqlite shard is not opened as another engine's, nor the other way") {
  test::temp_dir dir;
  auto o = options(dir / "s");
  { auto e = open_engine(o); }
  for (auto other : {engine_kind::lmdb, engine_kind::memory}) {
    auto as = o;
    as.engine = other;
    try {
      open_engine(as);
      FAIL("opened");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::consistency_violation);
      CHECK_THAT(err.what(), Catch::Contains("holds a shard of engine sqlite"));
    }
  }
  auto lm = options(dir / "l");
  lm.engine = engine_kind::lmdb;
  { auto e = open_engine(lm); }
  auto as_sqlite = lm;
  as_sqlite.engine = engine_kind::sqlite;
  CHECK_THROWS_AS(open_engine(as_sqlite), storage_error);
  CHECK(!std::filesystem::exists(dir / "l/strata.sqlite"));
}

TEST_CASE("a sqlite shard without WAL syncs every durable commit and keeps it") {
  test::temp_dir dir;
  auto o = options(dir / "s");
  o.sqlite.wal = false;
  o.no_sync = false;
  {
    sqlite_engine e{o};
    engine_batch batch;
    std::vector<operation> ops{operation::set("a", b("1"))};
    batch.parts.push_back({keyspace::data, &ops});
    // A group applied without `sync` is durable all the same here.
    REQUIRE(e.apply({batch}, false).code == errc::none);
  }
  CHECK(!std::filesystem::exists(dir / "s/strata.sqlite-wal"));
  sqlite_engine e{o};
  CHECK(get(e, "a") == "1");
}

// Backend tests of transactions: version validation, prepare locks, and
// prepared transactions surviving restarts and crashes. No actors.

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <random>
#include <string>

#include <fstream>

#include <zlib.h>

#include "backends/conflicts.hpp"
#include "backends/decision_log.hpp"
#include "backends/shard_core.hpp"
#include "backends/lmdb.hpp"
#include "backends/wal.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

shard_core_options opts_in(const std::string& dir) {
  shard_core_options o;
  o.dir = dir;
  o.map_size = 64 << 20;
  o.no_sync = true;
  return o;
}

txn_part reads(std::vector<read_mark> r) {
  txn_part p;
  p.reads = std::move(r);
  return p;
}

txn_part writes(std::vector<operation> w) {
  txn_part p;
  p.writes = std::move(w);
  return p;
}

write_outcome run(shard_core& s, write_request req) {
  return s.write(std::vector<write_request>{req}).at(0);
}

write_outcome prepare(shard_core& s, uint64_t txid, const txn_part& part) {
  return run(s, {write_request::type::prepare, nullptr, &part, txid, false});
}

write_outcome resolve(shard_core& s, uint64_t txid, bool commit) {
  return run(s, {write_request::type::resolve, nullptr, nullptr, txid, commit});
}

write_outcome commit_one(shard_core& s, const txn_part& part) {
  return run(s, {write_request::type::commit, nullptr, &part, 0, false});
}

write_outcome commit_as(shard_core& s, uint64_t txid, const txn_part& part) {
  return run(s, {write_request::type::commit, nullptr, &part, txid, false});
}

commit_status status(shard_core& s, uint64_t txid) {
  return run(s, {write_request::type::status, nullptr, nullptr, txid, false}).status;
}

write_outcome plain(shard_core& s, std::vector<operation> ops) {
  return run(s, write_request::plain_ops(ops));
}

std::string value_of(const shard_core& s, const std::string& key) {
  auto v = s.get(key);
  return v ? std::string(v->begin(), v->end()) : "<none>";
}

} // namespace

TEST_CASE("prefix_end bounds a prefix's keys") {
  CHECK(prefix_end("") == "");
  CHECK(prefix_end("ab") == "ac");
  CHECK(prefix_end(std::string{"a\xff\xff", 3}) == "b");
  CHECK(prefix_end(std::string{"\xff", 1}) == "");
  CHECK(in_range("ab1", "ab", prefix_end("ab")));
  CHECK(!in_range("ac", "ab", prefix_end("ab")));
  CHECK(in_range("zzz", "a", ""));
}

TEST_CASE("conflicts: reads validate against later writes") {
  conflicts cc;
  cc.reset(10);
  CHECK(cc.check(1, reads({{"k", 10}})).empty());
  CHECK(!cc.check(1, reads({{"k", 9}})).empty()); // older than the floor
  cc.wrote({operation::set("k", b("v"))}, 11);
  CHECK(!cc.check(1, reads({{"k", 10}})).empty());
  CHECK(cc.check(1, reads({{"k", 11}})).empty());
  CHECK(cc.check(1, reads({{"other", 10}})).empty());
  // A clear writes every key.
  cc.wrote({operation::clear()}, 12);
  CHECK(!cc.check(1, reads({{"other", 11}})).empty());
}

TEST_CASE("conflicts: a range read sees inserts into its range (phantoms)") {
  conflicts cc;
  cc.reset(5);
  txn_part p;
  p.ranges.push_back(range_mark{"a/", prefix_end("a/"), 5});
  CHECK(cc.check(1, p).empty());
  cc.wrote({operation::set("b/1", b("x"))}, 6); // outside
  CHECK(cc.check(1, p).empty());
  cc.wrote({operation::set("a/new", b("x"))}, 7); // inside
  CHECK(!cc.check(1, p).empty());
}

TEST_CASE("conflicts: prepare locks refuse conflicting transactions at once") {
  conflicts cc;
  cc.reset(1);
  auto t1 = writes({operation::set("x", b("1"))});
  t1.reads.push_back({"y", 1});
  t1.ranges.push_back({"r/", prefix_end("r/"), 1});
  REQUIRE(cc.check(1, t1).empty());
  cc.lock(1, t1);
  CHECK(cc.write_locked("x"));
  CHECK(!cc.write_locked("y"));
  CHECK(cc.write_locked("w", "z"));
  CHECK(!cc.write_locked("y", "y0"));
  // write-write, read-write and write-read all conflict; read-read does not.
  CHECK(!cc.check(2, writes({operation::set("x", b("2"))})).empty());
  CHECK(!cc.check(2, reads({{"x", 1}})).empty());
  CHECK(!cc.check(2, writes({operation::del("y")})).empty());
  CHECK(!cc.check(2, writes({operation::set("r/1", b("2"))})).empty());
  CHECK(!cc.check(2, writes({operation::clear()})).empty());
  CHECK(cc.check(2, reads({{"y", 1}})).empty());
  CHECK(cc.check(2, writes({operation::set("z", b("2"))})).empty());
  cc.unlock(1);
  CHECK(!cc.locked());
  CHECK(!cc.write_locked("x"));
  CHECK(cc.check(2, writes({operation::set("x", b("2")), operation::clear()})).empty());
}

TEST_CASE("conflicts: the version window forgets old writes conservatively") {
  conflicts cc{4};
  cc.reset(0);
  for (uint64_t i = 1; i <= 10; ++i)
    cc.wrote({operation::set("k" + std::to_string(i), b("v"))}, i);
  // k1..k6 left the window: reads older than their writes conflict anyway.
  CHECK(cc.floor() == 6);
  CHECK(!cc.check(1, reads({{"k1", 5}})).empty());
  CHECK(cc.check(1, reads({{"k1", 6}})).empty());
  CHECK(!cc.check(1, reads({{"k9", 8}})).empty());
  CHECK(cc.check(1, reads({{"k9", 9}})).empty());
}

TEST_CASE("shard_core: one-phase commits validate what the transaction read") {
  test::temp_dir dir;
  shard_core s{opts_in(dir / "s")};
  REQUIRE(plain(s, {operation::set("a", b("1"))}).code == errc::none);
  auto r = s.read("a");
  REQUIRE(!r.blocked);
  auto part = writes({operation::set("a", b("2"))});
  part.reads.push_back({"a", r.seq});
  // Someone else writes "a" after the read: the commit must fail.
  REQUIRE(plain(s, {operation::set("a", b("other"))}).code == errc::none);
  auto out = commit_one(s, part);
  CHECK(out.code == errc::version_conflict);
  CHECK(value_of(s, "a") == "other");
  // Read again, commit again: now it holds.
  part.reads[0].seq = s.read("a").seq;
  CHECK(commit_one(s, part).code == errc::none);
  CHECK(value_of(s, "a") == "2");
}

TEST_CASE("shard_core: prepared writes lock their keys until the outcome") {
  test::temp_dir dir;
  shard_core s{opts_in(dir / "s")};
  REQUIRE(plain(s, {operation::set("x", b("old"))}).code == errc::none);
  auto part = writes({operation::set("x", b("new")), operation::del("gone")});
  REQUIRE(prepare(s, 7, part).code == errc::none);
  CHECK(s.in_doubt() == std::vector<uint64_t>{7});
  // Not visible yet; transactional reads wait; plain writes wait.
  CHECK(value_of(s, "x") == "old");
  CHECK(s.read("x").blocked);
  CHECK(!s.read("y").blocked);
  CHECK(s.read_range(scan_request{}).blocked);
  scan_request other;
  other.prefix = "y";
  CHECK(!s.read_range(other).blocked);
  CHECK(plain(s, {operation::set("x", b("plain"))}).blocked);
  CHECK(plain(s, {operation::clear()}).blocked);
  CHECK(!plain(s, {operation::set("y", b("plain"))}).blocked);
  // A second prepare of the same id keeps its vote; a conflicting one fails.
  CHECK(prepare(s, 7, part).code == errc::none);
  CHECK(prepare(s, 8, part).code == errc::version_conflict);
  REQUIRE(resolve(s, 7, true).code == errc::none);
  CHECK(value_of(s, "x") == "new");
  CHECK(!s.read("x").blocked);
  CHECK(s.in_doubt().empty());
  // Resolving again is harmless.
  CHECK(resolve(s, 7, false).code == errc::none);
  CHECK(value_of(s, "x") == "new");
  // Aborts drop the writes.
  REQUIRE(prepare(s, 9, writes({operation::set("x", b("never"))})).code == errc::none);
  REQUIRE(resolve(s, 9, false).code == errc::none);
  CHECK(value_of(s, "x") == "new");
  CHECK(!plain(s, {operation::set("x", b("plain"))}).blocked);
}

TEST_CASE("shard_core: two outcomes of one transaction in one group apply once") {
  // Recovery asks the coordinator while the coordinator re-drives its
  // decision: both outcomes may land in the same group commit.
  test::temp_dir dir;
  shard_core s{opts_in(dir / "s")};
  REQUIRE(prepare(s, 5, writes({operation::del("x"), operation::set("y", b("1"))})).code
          == errc::none);
  write_request r{write_request::type::resolve, nullptr, nullptr, 5, true};
  auto out = s.write(std::vector<write_request>{r, r});
  CHECK(out[0].code == errc::none);
  CHECK(out[1].code == errc::none);
  CHECK(value_of(s, "y") == "1");
  CHECK(s.in_doubt().empty());
}

TEST_CASE("shard_core: read-only prepares lock without logging") {
  test::temp_dir dir;
  shard_core s{opts_in(dir / "s")};
  auto r = s.read("k");
  REQUIRE(prepare(s, 3, reads({{"k", r.seq}})).code == errc::none);
  CHECK(s.in_doubt().empty()); // nothing to recover after a crash
  CHECK(prepare(s, 4, writes({operation::set("k", b("v"))})).code
        == errc::version_conflict);
  REQUIRE(resolve(s, 3, false).code == errc::none);
  CHECK(prepare(s, 4, writes({operation::set("k", b("v"))})).code == errc::none);
}

TEST_CASE("shard_core: prepared transactions survive restarts and crashes") {
  test::temp_dir dir;
  auto o = opts_in(dir / "s");
  o.flush_entries = 4; // flushes (and empties the WAL) often
  {
    shard_core s{o};
    REQUIRE(prepare(s, 1, writes({operation::set("a", b("1"))})).code == errc::none);
    REQUIRE(prepare(s, 2, writes({operation::set("b", b("2"))})).code == errc::none);
    for (int i = 0; i < 10; ++i)
      REQUIRE(plain(s, {operation::set("k" + std::to_string(i), b("v"))}).code
              == errc::none);
    // Flushed by now: the prepares live on in LMDB, not the WAL.
    REQUIRE(prepare(s, 3, writes({operation::set("c", b("3"))})).code == errc::none);
    REQUIRE(resolve(s, 2, true).code == errc::none);
    // A crash leaves the files as they are now.
    s.wait_for_flush(); // a copy is a crash only between flushes
    std::filesystem::copy(dir / "s", dir / "crash");
  } // a clean close
  for (std::string path : {dir / "s", dir / "crash"}) {
    INFO(path);
    auto oo = o;
    oo.dir = path;
    shard_core s{oo};
    CHECK(s.in_doubt() == std::vector<uint64_t>{1, 3});
    CHECK(value_of(s, "b") == "2");
    CHECK(s.read("a").blocked);
    CHECK(value_of(s, "a") == "<none>");
    REQUIRE(resolve(s, 1, true).code == errc::none);
    REQUIRE(resolve(s, 3, false).code == errc::none);
    CHECK(value_of(s, "a") == "1");
    CHECK(value_of(s, "c") == "<none>");
    CHECK(s.in_doubt().empty());
  }
  // Outcomes are durable too.
  shard_core s{o};
  CHECK(s.in_doubt().empty());
  CHECK(value_of(s, "a") == "1");
}

TEST_CASE("shard_core: randomized transactions against a serial model") {
  // Transactions read a few keys, then commit writes derived from them (one
  // phase, or prepared and resolved later, interleaved with others). Every
  // commit that succeeds must have read current values: replaying the
  // successful ones serially on a model gives the same state.
  // The same over every engine: transactions live in the shard core.
  auto engine = GENERATE(engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                         engine_kind::json);
  INFO("engine " << engine_name(engine));
  test::temp_dir dir;
  auto o = opts_in(dir / "s");
  o.engine = engine;
  shard_core s{o};
  std::mt19937_64 rng{42};
  std::map<std::string, std::string> model;
  auto key = [&] { return "k" + std::to_string(rng() % 8); };
  struct open_txn {
    txn_part part;
    std::map<std::string, std::string> reads;
    std::map<std::string, std::string> writes;
    bool prepared = false;
  };
  std::map<uint64_t, open_txn> open;
  uint64_t next_id = 1;
  int committed = 0;
  int conflicted = 0;
  for (int step = 0; step < 3000; ++step) {
    auto dice = rng() % 10;
    if (dice < 4 || open.empty()) {
      // Begin: read two keys.
      open_txn t;
      bool blocked = false;
      for (int i = 0; i < 2; ++i) {
        auto k = key();
        auto r = s.read(k);
        if (r.blocked) {
          blocked = true;
          break;
        }
        t.reads[k] = r.value ? std::string(r.value->begin(), r.value->end()) : "";
        t.part.reads.push_back({k, r.seq});
      }
      if (blocked)
        continue;
      auto w = key();
      auto v = t.reads.begin()->second + "+" + std::to_string(step);
      t.writes[w] = v;
      t.part.writes.push_back(operation::set(w, b(v)));
      open.emplace(next_id++, std::move(t));
      continue;
    }
    auto it = std::next(open.begin(), static_cast<long>(rng() % open.size()));
    auto id = it->first;
    auto& t = it->second;
    auto valid_now = [&] {
      for (auto& [k, v] : t.reads)
        if ((model.count(k) ? model[k] : "") != v)
          return false;
      return true;
    };
    if (!t.prepared && dice < 7) {
      auto out = commit_one(s, t.part);
      if (out.code == errc::none) {
        REQUIRE(valid_now());
        for (auto& [k, v] : t.writes)
          model[k] = v;
        ++committed;
      } else {
        REQUIRE(out.code == errc::version_conflict);
        ++conflicted;
      }
      open.erase(it);
    } else if (!t.prepared) {
      auto out = prepare(s, id, t.part);
      if (out.code == errc::none) {
        REQUIRE(valid_now());
        t.prepared = true;
      } else {
        REQUIRE(out.code == errc::version_conflict);
        ++conflicted;
        open.erase(it);
      }
    } else {
      bool commit = rng() % 4 != 0;
      REQUIRE(resolve(s, id, commit).code == errc::none);
      if (commit) {
        for (auto& [k, v] : t.writes)
          model[k] = v;
        ++committed;
      }
      open.erase(it);
    }
    for (auto& [k, v] : model)
      if (!s.read(k).blocked)
        REQUIRE(value_of(s, k) == v);
  }
  CHECK(committed > 200);
  CHECK(conflicted > 50);
}

TEST_CASE("shard_core: an intact but unreadable log record refuses to open, log kept") {
  test::temp_dir dir;
  auto o = opts_in(dir / "s");
  { shard_core s{o}; }
  // A well-framed record (correct CRC in the log's epoch) of an unknown type:
  // not a torn tail.
  uint64_t epoch = 0;
  {
    lmdb::env_options eo;
    eo.map_size = o.map_size;
    lmdb::env env{o.dir, eo};
    auto t = lmdb::txn::write(env);
    auto own = t.open_db("engine", false);
    std::string_view found;
    REQUIRE(t.get(own, "wal_epoch", found));
    epoch = std::stoull(std::string{found});
  }
  {
    wal w{o.dir + "/wal.log", true};
    w.set_epoch(epoch);
    w.replay([](wal_record&) {});
    auto record = wal::encode(7, {operation::set("k", b("v"))});
    record[8 + 8] = 9; // the type byte after length, CRC and sequence number
    w.append({record}); // (append writes the CRC)
  }
  auto size = std::filesystem::file_size(o.dir + "/wal.log");
  try {
    shard_core s{o};
    FAIL("opened a store whose log it cannot read");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::consistency_violation);
    CHECK(std::string{e.what()}.find("intact but unreadable") != std::string::npos);
  }
  CHECK(std::filesystem::file_size(o.dir + "/wal.log") == size);
}

TEST_CASE("shard_core: a garbled stored sequence number is CONSISTENCY_VIOLATION") {
  test::temp_dir dir;
  auto o = opts_in(dir / "s");
  {
    shard_core s{o};
    REQUIRE(plain(s, {operation::set("k", b("v"))}).code == errc::none);
  }
  {
    lmdb::env_options eo;
    eo.map_size = o.map_size;
    lmdb::env env{o.dir, eo};
    auto t = lmdb::txn::write(env);
    auto own = t.open_db("engine", false);
    t.put(own, "applied", "12x");
    t.commit();
  }
  try {
    shard_core s{o};
    FAIL("opened a store with a garbled sequence number");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::consistency_violation);
    CHECK(std::string{e.what()}.find("is corrupt") != std::string::npos);
  }
}

TEST_CASE("decision log: decisions round-trip, garbled entries are counted, incarnations grow") {
  test::temp_dir dir;
  shard_core log{opts_in(dir / "c")};
  CHECK(decision_log::next_incarnation(log) == 1);
  CHECK(decision_log::next_incarnation(log) == 2);
  REQUIRE(plain(log, {operation::set(decision_log::key(0x2a), decision_log::encode({0, 3})),
                      operation::set("d/not-hex", b("x")),
                      operation::set(decision_log::key(7), decision_log::encode({1}))})
            .code == errc::none);
  size_t garbled = 0;
  auto all = decision_log::all(log, &garbled);
  REQUIRE(all.size() == 2);
  CHECK(all[0].txid == 7);
  CHECK(all[0].shards == std::vector<uint32_t>{1});
  CHECK(all[1].txid == 0x2a);
  CHECK(all[1].shards == std::vector<uint32_t>{0, 3});
  CHECK(garbled == 1);
  REQUIRE(plain(log, {operation::set("incarnation", b("many"))}).code == errc::none);
  try {
    decision_log::next_incarnation(log);
    FAIL("accepted a garbled incarnation");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::consistency_violation);
  }
}

TEST_CASE("a shard remembers its one-phase commits by transaction id, across restarts") {
  strata::test::temp_dir dir;
  auto o = opts_in(dir / "s");
  auto w = writes({operation::set("k", b("1"))});
  {
    shard_core s{o};
    REQUIRE(commit_as(s, 41, w).code == errc::none);
    CHECK(status(s, 41) == commit_status::committed);
    // A second commit of the same id changes nothing and succeeds.
    REQUIRE(plain(s, {operation::set("k", b("2"))}).code == errc::none);
    CHECK(commit_as(s, 41, w).code == errc::none);
    CHECK(value_of(s, "k") == "2");
    // An id asked about before its commit came is fenced: the commit, should
    // it still arrive, is refused, so "not committed" stays true.
    CHECK(status(s, 42) == commit_status::not_committed);
    auto late = commit_as(s, 42, writes({operation::set("late", b("x"))}));
    CHECK(late.code == errc::transaction_aborted);
    CHECK(value_of(s, "late") == "<none>");
    CHECK(status(s, 42) == commit_status::not_committed);
    // In one group, a status after a commit of the same id waits for it.
    auto x = writes({operation::set("x", b("1"))});
    auto out = s.write(std::vector<write_request>{
      {write_request::type::commit, nullptr, &x, 43, false},
      {write_request::type::status, nullptr, nullptr, 43, false},
      {write_request::type::status, nullptr, nullptr, 44, false},
      {write_request::type::commit, nullptr, &x, 44, false}});
    CHECK(out[0].code == errc::none);
    CHECK(out[1].status == commit_status::committed);
    CHECK(out[2].status == commit_status::not_committed);
    CHECK(out[3].code == errc::transaction_aborted);
    // A commit that failed validation did not commit.
    auto stale = w;
    stale.reads.push_back({"k", 1});
    CHECK(commit_as(s, 45, stale).code == errc::version_conflict);
    CHECK(status(s, 45) == commit_status::not_committed);
  } // closes with a flush into LMDB
  {
    shard_core s{o};
    CHECK(status(s, 41) == commit_status::committed);
    CHECK(status(s, 43) == commit_status::committed);
    REQUIRE(commit_as(s, 46, w).code == errc::none);
  }
  // From the log only: a copy of the shard's files taken before the close
  // flushes (as a crash leaves them).
  {
    shard_core s{o};
    REQUIRE(commit_as(s, 47, w).code == errc::none);
    s.wait_for_flush(); // a copy is a crash only between flushes
    std::filesystem::copy(o.dir, dir / "crashed");
  }
  shard_core crashed{opts_in(dir / "crashed")};
  CHECK(status(crashed, 46) == commit_status::committed);
  CHECK(status(crashed, 47) == commit_status::committed);
  CHECK(status(crashed, 48) == commit_status::not_committed);
}

TEST_CASE("a shard that forgot old one-phase commits says so instead of guessing") {
  strata::test::temp_dir dir;
  shard_core s{opts_in(dir / "s")};
  // Read-only commits are remembered too; fill the memory past its size in
  // one group.
  txn_part validated;
  std::vector<write_request> group;
  auto n = shard_core::remembered_commits + 10;
  for (uint64_t t = 1; t <= n; ++t)
    group.push_back({write_request::type::commit, nullptr, &validated, t, false});
  auto outs = s.write(group);
  CHECK(std::all_of(outs.begin(), outs.end(),
                    [](auto& out) { return out.code == errc::none; }));
  CHECK(status(s, 1) == commit_status::forgotten);
  CHECK(status(s, 10) == commit_status::forgotten);
  CHECK(status(s, 11) == commit_status::committed);
  CHECK(status(s, n) == commit_status::committed);
  CHECK(status(s, n + 1) == commit_status::not_committed);
}

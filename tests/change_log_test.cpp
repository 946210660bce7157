// The change log of a shard core, without actors: what it records, in which
// order, across reopens, and how it is trimmed.

#include <limits>
#include <map>
#include <random>
#include <thread>

#include <catch2/catch.hpp>

#include "backends/change_log.hpp"
#include "backends/indexes.hpp"
#include "tests/shard_helpers.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;
using namespace strata::test;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

std::string s(const bytes& x) {
  return std::string(x.begin(), x.end());
}

struct opened {
  std::unique_ptr<shard_core> core;
  std::shared_ptr<change_log> log;
};

opened open(const std::string& dir, engine_kind kind, change_log_options o = {}) {
  opened x;
  auto opts = core_options(dir, kind);
  opts.changes = o;
  x.core = std::make_unique<shard_core>(opts);
  open_indexes(*x.core);
  x.log = open_change_log(*x.core, o);
  return x;
}

/// Every commit after `after` that passes `f`, page by page.
std::vector<change_batch> read_all(opened& x, uint64_t after = 0,
                                   const change_filter_spec& f = {}, uint32_t limit = 7) {
  std::vector<change_batch> result;
  change_filter filter{f};
  while (true) {
    change_request req;
    req.after = after;
    req.limit = limit;
    change_page page;
    x.core->with_snapshot(
      [&](const engine_snapshot& snap) { page = x.log->read(snap, req, filter, 3); });
    for (auto& bt : page.batches)
      result.push_back(std::move(bt));
    REQUIRE(page.last >= after);
    after = page.last;
    if (!page.more)
      return result;
  }
}

} // namespace

TEST_CASE("each commit is one record with old and new values, in order",
          "[change_log]") {
  for (auto kind : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite,
                    engine_kind::json}) {
    temp_dir dir;
    auto x = open(dir.path(), kind);
    write_ok(*x.core, {operation::set("a", b("1"))});
    write_ok(*x.core, {operation::set("a", b("2")), operation::set("b", b("x")),
                       operation::set("a", b("3"))});
    write_ok(*x.core, {operation::del("a"), operation::del("missing")});
    write_ok(*x.core, {operation::del("missing")}); // changes nothing: no record
    write_ok(*x.core, {operation::set("c", b("y")), operation::clear()});
    auto all = read_all(*&x);
    REQUIRE(all.size() == 4);
    for (auto& bt : all) {
      CHECK(bt.shard == 3);
      CHECK(bt.time > 0);
    }
    CHECK(all[0].seq < all[1].seq);
    CHECK(all[1].seq < all[2].seq);
    CHECK(all[2].seq < all[3].seq);
    REQUIRE(all[0].changes.size() == 1);
    CHECK(all[0].changes[0].kind == change_kind::set);
    CHECK_FALSE(all[0].changes[0].had_old);
    CHECK(s(all[0].changes[0].new_value) == "1");
    // Within one batch, a key's old value is the write before it.
    REQUIRE(all[1].changes.size() == 3);
    CHECK(s(all[1].changes[0].old_value) == "1");
    CHECK(s(all[1].changes[2].old_value) == "2");
    CHECK(s(all[1].changes[2].new_value) == "3");
    REQUIRE(all[2].changes.size() == 1);
    CHECK(all[2].changes[0].kind == change_kind::del);
    CHECK(s(all[2].changes[0].old_value) == "3");
    REQUIRE(all[3].changes.size() == 2);
    CHECK(all[3].changes[1].kind == change_kind::clear);
    // Paging from any position gives the rest.
    auto rest = read_all(x, all[1].seq);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0].seq == all[2].seq);
    // The log survives a reopen, and new commits number after it.
    auto last = all.back().seq;
    x = opened{};
    auto y = open(dir.path(), kind);
    write_ok(*y.core, {operation::set("d", b("z"))});
    auto again = read_all(y);
    REQUIRE(again.size() == 5);
    CHECK(again[4].seq > last);
  }
}

TEST_CASE("filters: glob, regex and a query on old or new documents", "[change_log]") {
  CHECK(change_filter::glob_to_regex("user:*") == "user\\:(?s:.*)");
  temp_dir dir;
  auto x = open(dir.path(), engine_kind::lmdb);
  write_ok(*x.core, {operation::set("user:1", b("a")), operation::set("order:1", b("b")),
                     operation::set("user:2:email", b("c"))});
  write_ok(*x.core, {operation::set("order:2", b("d"))});
  change_filter_spec glob;
  glob.pattern = "user:*";
  auto users = read_all(x, 0, glob);
  REQUIRE(users.size() == 1); // the second commit has no user key
  REQUIRE(users[0].changes.size() == 2);
  CHECK(users[0].changes[1].key == "user:2:email");
  change_filter_spec mail;
  mail.pattern = "*:email";
  CHECK(read_all(x, 0, mail).at(0).changes.size() == 1);
  change_filter_spec re;
  re.pattern = "order:[0-9]+";
  re.regex = true;
  CHECK(read_all(x, 0, re).size() == 2);
  change_filter_spec bad;
  bad.pattern = "(";
  bad.regex = true;
  CHECK_THROWS_AS(change_filter{bad}, storage_error);
  change_filter_spec bad_query;
  bad_query.where = "{\"where\": 3}";
  CHECK_THROWS(change_filter{bad_query});
}

TEST_CASE("retention by count trims in small steps and refuses positions below it",
          "[change_log]") {
  temp_dir dir;
  change_log_options o;
  o.retain_commits = 20;
  auto x = open(dir.path(), engine_kind::lmdb, o);
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 60; ++i)
    write_ok(*x.core, {operation::set("k" + std::to_string(i), b("v"))});
  CHECK_THROWS_AS(read_all(x), storage_error); // the start is gone
  auto all = read_all(x, x.log->floor());
  // Each write removes a few of the oldest: the log stays at its limit.
  CHECK(all.size() == 20);
  CHECK(x.log->floor() > 0);
  CHECK(all.front().seq == x.log->floor() + 1);
  CHECK_NOTHROW(read_all(x, x.log->floor()));
  try {
    read_all(x, x.log->floor() - 1);
    FAIL("a position below the floor was read");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::consistency_violation);
    CHECK(std::string{e.what()}.find("resume token older than retention") != std::string::npos);
  }
  // The floor survives a reopen.
  auto floor = x.log->floor();
  x = opened{};
  auto y = open(dir.path(), engine_kind::lmdb, o);
  CHECK(y.log->floor() == floor);
  // "Now" is where the log ends.
  change_request now;
  now.after = std::numeric_limits<uint64_t>::max();
  change_page page;
  y.core->with_snapshot([&](const engine_snapshot& snap) {
    page = y.log->read(snap, now, change_filter{{}}, 0);
  });
  CHECK(page.batches.empty());
  CHECK(page.last >= all.back().seq);
}

TEST_CASE("retention by age", "[change_log]") {
  temp_dir dir;
  change_log_options o;
  o.retain_commits = 0;
  o.retain_ms = 50;
  auto x = open(dir.path(), engine_kind::memory, o);
  for (int i = 0; i < 5; ++i)
    write_ok(*x.core, {operation::set("old" + std::to_string(i), b("v"))});
  std::this_thread::sleep_for(std::chrono::milliseconds{120});
  write_ok(*x.core, {operation::set("new", b("v"))});
  auto all = read_all(x, x.log->floor());
  REQUIRE(all.size() == 1);
  CHECK(all[0].changes[0].key == "new");
}

TEST_CASE("random writes: the log replays to the data", "[change_log]") {
  temp_dir dir;
  auto x = open(dir.path(), engine_kind::lmdb);
  std::mt19937 rng{42};
  std::map<std::string, std::string> model;
  for (int i = 0; i < 400; ++i) {
    std::vector<operation> ops;
    auto n = 1 + rng() % 4;
    for (size_t k = 0; k < n; ++k) {
      auto key = "k" + std::to_string(rng() % 30);
      auto r = rng() % 10;
      if (r < 6)
        ops.push_back(operation::set(key, b(std::to_string(i))));
      else if (r < 9)
        ops.push_back(operation::del(key));
      else if (rng() % 10 == 0)
        ops.push_back(operation::clear());
    }
    if (ops.empty())
      continue;
    write_ok(*x.core, ops);
  }
  // Replaying every change, checking each old value against the replay.
  std::map<std::string, std::string> replay;
  for (auto& bt : read_all(x, 0, {}, 50))
    for (auto& c : bt.changes) {
      if (c.kind == change_kind::clear) {
        replay.clear();
        continue;
      }
      auto i = replay.find(c.key);
      REQUIRE(c.had_old == (i != replay.end()));
      if (c.had_old)
        CHECK(s(c.old_value) == i->second);
      if (c.kind == change_kind::set)
        replay[c.key] = s(c.new_value);
      else
        replay.erase(c.key);
    }
  scan_request all;
  all.limit = 10000;
  std::map<std::string, std::string> data;
  for (auto& e : x.core->scan(all).entries)
    data[e.key] = s(e.value);
  CHECK(replay == data);
}

TEST_CASE("records: a corrupt one is a consistency violation", "[change_log]") {
  change_batch bt;
  bt.time = 7;
  bt.txid = 9;
  bt.changes.push_back({change_kind::set, "k", true, b("old"), b("new")});
  bt.changes.push_back({change_kind::del, "j", false, {}, {}});
  auto rec = change_log::encode(bt);
  auto back = change_log::decode(rec);
  CHECK(back.time == 7);
  CHECK(back.txid == 9);
  REQUIRE(back.changes.size() == 2);
  CHECK(s(back.changes[0].old_value) == "old");
  CHECK(back.changes[1].kind == change_kind::del);
  for (size_t cut = 0; cut < rec.size(); ++cut)
    CHECK_THROWS_AS(change_log::decode(rec.substr(0, cut)), storage_error);
  auto bad = rec;
  bad[0] = 9; // unknown version
  CHECK_THROWS_AS(change_log::decode(bad), storage_error);
}

TEST_CASE("an unreadable oldest record is trimmed away and writes go on", "[change_log]") {
  temp_dir dir;
  change_log_options o;
  o.retain_commits = 100;
  auto x = open(dir.path(), engine_kind::lmdb, o);
  for (int i = 0; i < 4; ++i)
    write_ok(*x.core, {operation::set("k" + std::to_string(i), b("v" + std::to_string(i)))});
  auto before = read_all(x);
  REQUIRE(before.size() == 4);
  auto bad_seq = before.front().seq;
  std::vector<operation> damage;
  damage.push_back(operation::set(txid_key(bad_seq), b("\x09garbage")));
  x.core->write_spaces({{keyspace::changes, damage}});
  try {
    read_all(x);
    FAIL("a corrupt record was read");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::consistency_violation);
  }
  // The next write removes it, within the limits or not, and succeeds.
  write_ok(*x.core, {operation::set("k4", b("v4"))});
  CHECK(x.log->floor() == bad_seq);
  auto after = read_all(x, x.log->floor());
  REQUIRE(after.size() == 4);
  for (size_t i = 0; i + 1 < after.size(); ++i)
    CHECK(after[i].seq == before[i + 1].seq);
  CHECK(after.back().changes.at(0).key == "k4");
  // Resuming into the gap is refused, not silently skipped.
  CHECK_THROWS_AS(read_all(x, bad_seq - 1), storage_error);
  for (int i = 0; i < 5; ++i)
    CHECK(x.core->get("k" + std::to_string(i)) == b("v" + std::to_string(i)));
}

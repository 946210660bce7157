// Transactions through the actors: the typed client, isolation levels cell
// by cell, atomic batches across shards, savepoints, timeouts, retries, and
// concurrent bank transfers.

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <caf/default_attachable.hpp>
#include <caf/event_based_actor.hpp>

#include "backends/decision_log.hpp"
#include "backends/fault.hpp"
#include "backends/shard_core.hpp"
#include "strata/routing.hpp"
#include "strata/client.hpp"
#include "tests/bank.hpp"
#include "tests/fixture.hpp"
#include "tests/routed.hpp"

using namespace strata;
using namespace strata::test;

namespace {

constexpr uint32_t shards = 4;

/// `n` keys named `prefix` + something, each on a different shard.
std::vector<std::string> spread(const std::string& prefix, size_t n) {
  std::vector<std::string> result;
  std::set<uint32_t> used;
  for (int i = 0; result.size() < n; ++i) {
    auto k = prefix + std::to_string(i);
    if (used.insert(routing::shard_of(k, shards)).second)
      result.push_back(k);
  }
  return result;
}

txn_options at(isolation level) {
  txn_options o;
  o.level = level;
  return o;
}

int64_t get(blocking_txn<int64_t>& tx, const std::string& key) {
  auto v = tx.get(key);
  REQUIRE(v);
  return v->value_or(-1);
}

int64_t get(blocking_store<int64_t>& db, const std::string& key) {
  auto v = db.get(key);
  REQUIRE(v);
  return v->value_or(-1);
}

size_t count(blocking_txn<int64_t>& tx, const std::string& prefix) {
  auto xs = tx.entries(scan_options{prefix, {}, 0});
  REQUIRE(xs);
  return xs->size();
}

/// Which anomalies each level allows: the table in README.md.
bool allowed(const std::string& anomaly, isolation level) {
  static const std::map<std::string, std::set<isolation>> table{
    {"G0", {}},
    {"G1a", {}},
    {"G1b", {}},
    {"G1c", {}},
    {"OTV", {}},
    {"PMP",
     {isolation::read_uncommitted, isolation::read_committed,
      isolation::repeatable_read}},
    {"P4", {isolation::read_uncommitted, isolation::read_committed}},
    {"G-single",
     {isolation::read_uncommitted, isolation::read_committed,
      isolation::repeatable_read}},
    {"G2-item",
     {isolation::read_uncommitted, isolation::read_committed,
      isolation::repeatable_read}},
    {"G2",
     {isolation::read_uncommitted, isolation::read_committed,
      isolation::repeatable_read}},
  };
  return table.at(anomaly).count(level) > 0;
}

} // namespace

TEST_CASE("a transaction reads its own writes and commits them at once") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto keys = spread("k", 3);
  REQUIRE(!db.set(keys[0], 1));
  auto tx = db.begin();
  REQUIRE(tx);
  auto info = tx->info();
  REQUIRE(info);
  CHECK(info->state == txn_state::active);
  CHECK(info->id.rfind("tx-", 0) == 0);
  CHECK(get(*tx, keys[0]) == 1);
  REQUIRE(!tx->set(keys[0], 2));
  REQUIRE(!tx->set(keys[1], 3));
  auto existed = tx->del(keys[2]);
  REQUIRE(existed);
  CHECK(!*existed);
  CHECK(get(*tx, keys[0]) == 2);
  CHECK(*tx->has(keys[1]));
  // Nothing is visible outside before commit.
  CHECK(get(db, keys[0]) == 1);
  CHECK(get(db, keys[1]) == -1);
  auto all = tx->entries(scan_options{"k", {}, 0});
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].second + (*all)[1].second == 5);
  REQUIRE(!tx->commit());
  CHECK(get(db, keys[0]) == 2);
  CHECK(get(db, keys[1]) == 3);
  CHECK(tx->info()->state == txn_state::committed);
  // A finished transaction refuses everything, naming its state.
  auto late = tx->set(keys[0], 9);
  CHECK(code_of(late) == errc::transaction_aborted);
  CHECK(render(late).find("is committed") != std::string::npos);
  CHECK(get(db, keys[0]) == 2);
  // Ids are unique.
  auto tx2 = db.begin();
  REQUIRE(tx2);
  CHECK(tx2->info()->id != info->id);
  REQUIRE(!tx2->rollback());
}

TEST_CASE("rollback discards every write") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto tx = db.begin();
  REQUIRE(tx);
  for (auto& k : spread("r", 4))
    REQUIRE(!tx->set(k, 7));
  REQUIRE(!tx->rollback());
  CHECK(*db.size() == 0);
  CHECK(tx->info()->state == txn_state::aborted);
  CHECK(!tx->rollback()); // again: harmless
  CHECK(code_of(tx->commit()) == errc::transaction_aborted);
}

TEST_CASE("savepoints: rollback_to drops later writes and later savepoints") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto tx = db.begin();
  REQUIRE(tx);
  REQUIRE(!tx->set("a", 1));
  REQUIRE(!tx->savepoint("s1"));
  REQUIRE(!tx->set("b", 2));
  REQUIRE(!tx->set("a", 10));
  REQUIRE(!tx->savepoint("s2"));
  REQUIRE(!tx->set("c", 3));
  REQUIRE(!tx->rollback_to("s2"));
  CHECK(get(*tx, "c") == -1);
  CHECK(get(*tx, "a") == 10);
  REQUIRE(!tx->rollback_to("s1"));
  CHECK(get(*tx, "a") == 1);
  CHECK(get(*tx, "b") == -1);
  // s2 came after s1: gone. s1 stays and can be used again.
  CHECK(code_of(tx->rollback_to("s2")) == errc::key_not_found);
  REQUIRE(!tx->set("d", 4));
  REQUIRE(!tx->rollback_to("s1"));
  CHECK(code_of(tx->savepoint("")) == errc::invalid_value);
  REQUIRE(!tx->set("e", 5));
  REQUIRE(!tx->commit());
  CHECK(get(db, "a") == 1);
  CHECK(get(db, "b") == -1);
  CHECK(get(db, "d") == -1);
  CHECK(get(db, "e") == 5);
}

TEST_CASE("a transaction past its timeout is aborted and stores nothing") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  txn_options o;
  o.timeout_ms = 50;
  auto tx = db.begin(o);
  REQUIRE(tx);
  REQUIRE(!tx->set("k", 1));
  std::this_thread::sleep_for(std::chrono::milliseconds{120});
  auto err = tx->commit();
  CHECK(code_of(err) == errc::transaction_aborted);
  CHECK(render(err).find("timed out after 50 ms") != std::string::npos);
  CHECK(tx->info()->state == txn_state::aborted);
  CHECK(get(db, "k") == -1);
  // It held nothing: others write the key at once.
  REQUIRE(!db.set("k", 2));
}

TEST_CASE("bad input to transactions gets strata errors") {
  fixture f;
  auto o = f.options(shards);
  o.max_value_size = 64;
  f.open(o);
  blocking_store<std::string> db{f.sys(), f.store};
  txn_options bad;
  bad.timeout_ms = 0;
  CHECK(code_of(db.begin(bad).error()) == errc::invalid_value);
  bad = {};
  bad.level = static_cast<isolation>(7);
  CHECK(code_of(db.begin(bad).error()) == errc::invalid_value);
  auto tx = db.begin();
  REQUIRE(tx);
  CHECK(code_of(tx->get("").error()) == errc::invalid_key);
  CHECK(code_of(tx->set(std::string(512, 'k'), "v")) == errc::invalid_key);
  CHECK(code_of(tx->set("k", std::string(100, 'v'))) == errc::invalid_value);
  CHECK(code_of(tx->del("").error()) == errc::invalid_key);
  REQUIRE(!tx->set("k", "fine"));
  REQUIRE(!tx->commit());
  // Read-only transactions refuse writes but stay usable.
  txn_options ro;
  ro.read_only = true;
  auto r = db.begin(ro);
  REQUIRE(r);
  auto err = r->set("k", "x");
  CHECK(code_of(err) == errc::invalid_value);
  CHECK(render(err).find("read-only") != std::string::npos);
  CHECK(code_of(r->del("k").error()) == errc::invalid_value);
  CHECK(**r->get("k") == "fine");
  REQUIRE(!r->commit());
  // A plain storage handle has no transactions.
  blocking_store<std::string> plain{f.sys(), storage_actor{f.store}};
  CHECK(code_of(plain.begin().error()) == errc::invalid_value);
}

// [heavy]: thousands of commits; not over the graph engine, whose every
// commit is an HTTP round trip (engine_test runs its model there).
TEST_CASE("batch, set_many, del_many and clear are atomic across shards", "[heavy]") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto keys = spread("b", 4);
  std::vector<typed_operation<int64_t>> ops;
  for (auto& k : keys)
    ops.push_back(typed_operation<int64_t>::set(k, 1));
  ops.push_back(typed_operation<int64_t>::del(""));
  auto r = db.batch(ops);
  REQUIRE(r);
  CHECK(!r->success);
  CHECK(*db.size() == 0); // a bad operation stops the whole batch
  ops.pop_back();
  r = db.batch(ops);
  REQUIRE(r);
  CHECK(r->success);
  CHECK(r->operations == 4);
  CHECK(*db.size() == 4);
  auto deleted = db.del_many({keys[0], keys[1], "missing"});
  REQUIRE(deleted);
  CHECK(*deleted == 2);
  // Round 0: every key holds 0.
  REQUIRE(!db.set_many({{keys[0], 0}, {keys[1], 0}, {keys[2], 0}, {keys[3], 0}}));
  // A writer replaces all keys with one batch per round; readers in
  // SERIALIZABLE transactions must always see one round, never a mix.
  std::atomic<bool> stop{false};
  std::thread writer{[&] {
    blocking_store<int64_t> w{f.sys(), f.store};
    for (int64_t round = 1; round <= 150; ++round) {
      std::map<std::string, int64_t> xs;
      for (auto& k : keys)
        xs[k] = round;
      REQUIRE(!w.set_many(xs));
    }
    stop = true;
  }};
  int mixed = 0;
  int views = 0;
  // Readers go on until the writer is done and one of them has committed.
  while (!stop || views == 0) {
    // Optimistic: a transaction may glimpse a mix, but never commits one.
    auto distinct = db.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<size_t> {
      std::set<int64_t> seen;
      for (auto& k : keys) {
        auto v = tx.get(k);
        if (!v)
          return v.error();
        seen.insert(v->value_or(0));
      }
      return seen.size();
    });
    if (distinct) {
      ++views;
      if (*distinct > 1)
        ++mixed;
    }
  }
  writer.join();
  CHECK(views > 0);
  CHECK(mixed == 0);
  REQUIRE(!db.clear());
  CHECK(*db.size() == 0);
}

TEST_CASE("transaction() retries conflicts with backoff, up to `retries`") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  blocking_store<int64_t> other{f.sys(), f.store};
  REQUIRE(!db.set("n", 0));
  auto increment = [&](int interfere, int& attempts) {
    return [&, interfere](blocking_txn<int64_t>& tx) -> caf::expected<int64_t> {
      ++attempts;
      auto v = tx.get("n");
      if (!v)
        return v.error();
      // Another client changes "n" after we read it, on the first
      // `interfere` attempts: our commit must fail with VERSION_CONFLICT.
      if (attempts <= interfere)
        REQUIRE(!other.set("n", **v + 100));
      if (auto err = tx.set("n", **v + 1))
        return err;
      return **v + 1;
    };
  };
  int attempts = 0;
  auto r = db.transaction(increment(2, attempts));
  REQUIRE(r);
  CHECK(attempts == 3);
  CHECK(*r == 201);
  CHECK(get(db, "n") == 201);
  attempts = 0;
  txn_options no_retry;
  no_retry.retries = 0;
  r = db.transaction(increment(1, attempts), no_retry);
  CHECK(code_of(r.error()) == errc::version_conflict);
  CHECK(attempts == 1);
  CHECK(get(db, "n") == 301);
  // Errors of the executor's own are not retried, and nothing is stored.
  attempts = 0;
  auto mine = db.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<int> {
    ++attempts;
    REQUIRE(!tx.set("n", -5));
    return make_error(errc::invalid_value, "business rule");
  });
  CHECK(code_of(mine.error()) == errc::invalid_value);
  CHECK(attempts == 1);
  CHECK(get(db, "n") == 301);
}

TEST_CASE("event-based actors run transactions with .then") {
  fixture f;
  f.open(f.options(shards));
  store<int64_t> db{f.store};
  auto keys = spread("e", 2);
  auto self_handle = caf::actor{f.self};
  f.sys().spawn([=](caf::event_based_actor* self) {
    db.set(self, keys[0], 40).then(
      [=](caf::unit_t) {
        db.transaction<int64_t>(
            self,
            [=](txn<int64_t> tx, std::function<void(caf::expected<int64_t>)> done) {
              tx.get(self, keys[0]).then(
                [=](std::optional<int64_t> v) {
                  tx.set(self, keys[1], *v + 2)
                    .then([=](caf::unit_t) { done(*v + 2); },
                          [=](caf::error e) { done(e); });
                },
                [=](caf::error e) { done(e); });
            })
          .then([=](int64_t x) { self->send(self_handle, x); },
                [=](caf::error e) { self->send(self_handle, render(e)); });
      },
      [=](caf::error e) { self->send(self_handle, render(e)); });
  });
  int64_t result = 0;
  f.self->receive([&](int64_t x) { result = x; },
                  [&](std::string& e) { FAIL(e); });
  CHECK(result == 42);
  blocking_store<int64_t> check{f.sys(), f.store};
  CHECK(get(check, keys[1]) == 42);
}

// -- the isolation table, cell by cell (Hermitage's scenarios) ------------------

TEST_CASE("isolation: G0 dirty write is prevented at every level") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  auto k = spread("g0-" + std::to_string(static_cast<int>(level)), 2);
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  REQUIRE(!t1.set(k[0], 11));
  REQUIRE(!t2.set(k[0], 12));
  REQUIRE(!t1.set(k[1], 21));
  REQUIRE(!t2.set(k[1], 22));
  REQUIRE(!t1.commit());
  t2.commit();
  auto x = get(db, k[0]);
  auto y = get(db, k[1]);
  bool anomaly = !((x == 11 && y == 21) || (x == 12 && y == 22));
  CHECK(anomaly == allowed("G0", level));
}

TEST_CASE("isolation: G1a aborted reads are prevented at every level") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  REQUIRE(!db.set("x", 10));
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  REQUIRE(!t1.set("x", 101));
  bool anomaly = get(t2, "x") == 101;
  REQUIRE(!t1.rollback());
  anomaly = anomaly || get(t2, "x") == 101;
  REQUIRE(!t2.commit());
  CHECK(anomaly == allowed("G1a", level));
}

TEST_CASE("isolation: G1b intermediate reads are prevented at every level") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  REQUIRE(!db.set("x", 10));
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  REQUIRE(!t1.set("x", 101));
  bool anomaly = get(t2, "x") == 101;
  REQUIRE(!t1.set("x", 11));
  REQUIRE(!t1.commit());
  anomaly = anomaly || get(t2, "x") == 101;
  t2.commit();
  CHECK(anomaly == allowed("G1b", level));
}

TEST_CASE("isolation: G1c circular information flow is prevented at every level") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  auto k = spread("g1c", 2);
  REQUIRE(!db.set(k[0], 10));
  REQUIRE(!db.set(k[1], 20));
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  REQUIRE(!t1.set(k[0], 11));
  REQUIRE(!t2.set(k[1], 22));
  auto t1_saw = get(t1, k[1]);
  auto t2_saw = get(t2, k[0]);
  auto c1 = t1.commit();
  auto c2 = t2.commit();
  // Each would have read the other's write: a cycle of information flow.
  bool anomaly = (!c1 && t1_saw == 22) || (!c2 && t2_saw == 11);
  CHECK(anomaly == allowed("G1c", level));
}

// [heavy]: thousands of commits; not over the graph engine, whose every
// commit is an HTTP round trip (engine_test runs its model there).
TEST_CASE("isolation: OTV, an observed transaction never vanishes, at every level", "[heavy]") {
  // Writers commit (x, y) = (i, i) across two shards; readers read x, then
  // y. Seeing a newer x than y would mean that a transaction observed as
  // committed vanished again. Shards apply a commit one after the other;
  // reads of keys whose outcome is pending wait for it.
  fixture f;
  f.open(f.options(shards));
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  auto k = spread("otv", 2);
  blocking_store<int64_t> db{f.sys(), f.store};
  REQUIRE(!db.set_many({{k[0], 0}, {k[1], 0}}));
  std::atomic<bool> stop{false};
  std::thread writer{[&] {
    blocking_store<int64_t> w{f.sys(), f.store};
    for (int64_t i = 1; i <= 200; ++i) {
      auto r = w.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<int> {
        if (auto err = tx.set(k[0], i))
          return err;
        if (auto err = tx.set(k[1], i))
          return err;
        return 0;
      });
      REQUIRE(r);
    }
    stop = true;
  }};
  bool anomaly = false;
  int reads = 0;
  while (!stop || reads < 10) {
    auto tx = db.begin(at(level));
    REQUIRE(tx);
    auto x = get(*tx, k[0]);
    auto y = get(*tx, k[1]);
    anomaly = anomaly || y < x;
    tx->rollback();
    ++reads;
  }
  writer.join();
  CHECK(anomaly == allowed("OTV", level));
}

TEST_CASE("isolation: PMP, predicate many preceders (phantom), prevented by SERIALIZABLE") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  REQUIRE(!db.set_many({{"p/1", 10}, {"p/2", 20}}));
  auto t1 = *db.begin(at(level));
  auto first = count(t1, "p/");
  auto t2 = *db.begin(at(level));
  REQUIRE(!t2.set("p/3", 30));
  REQUIRE(!t2.commit());
  auto second = count(t1, "p/");
  bool committed = !t1.commit();
  bool anomaly = committed && first != second;
  CHECK(anomaly == allowed("PMP", level));
}

namespace {

struct item {
  std::string kind;
  int64_t n = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(kind), CEREAL_NVP(n));
  }
};

size_t count_query(blocking_txn<item>& tx, const pattern& p) {
  size_t n = 0;
  for (auto& r : tx.query(p)) {
    static_cast<void>(r);
    ++n;
  }
  return n;
}

} // namespace

TEST_CASE("isolation: PMP through a query's predicate, prevented by SERIALIZABLE") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<item> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  REQUIRE(!db.set("p/1", {"a", 10}));
  REQUIRE(!db.set("p/2", {"b", 20}));
  auto kind_a = pattern{where("kind").eq("a")};
  auto t1 = *db.begin(at(level));
  auto first = count_query(t1, kind_a);
  CHECK(first == 1);
  // Another transaction adds a document that matches the predicate, under a
  // key nobody read.
  auto t2 = *db.begin(at(level));
  REQUIRE(!t2.set("q/9", {"a", 30}));
  REQUIRE(!t2.commit());
  auto second = count_query(t1, kind_a);
  REQUIRE(!t1.set("p/summary", {"sum", static_cast<int64_t>(second)}));
  auto err = t1.commit();
  bool committed = !err;
  if (!committed)
    CHECK(code_of(err) == errc::version_conflict);
  bool anomaly = committed && first != second;
  CHECK(anomaly == allowed("PMP", level));
  CHECK(committed == (level != isolation::serializable));
}

TEST_CASE("a transaction's query sees its own writes, in order, paged") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<item> db{f.sys(), f.store};
  for (int i = 0; i < 30; ++i)
    REQUIRE(!db.set("k" + std::to_string(100 + i), {i % 2 ? "odd" : "even", i}));
  REQUIRE(!db.create_index({"by_n", {{"n"}}}));
  auto tx = *db.begin();
  REQUIRE(!tx.set("k999", {"odd", 1000}));   // new, matches
  REQUIRE(!tx.set("k101", {"even", 1}));     // was odd: no longer matches
  REQUIRE(*tx.del("k103"));                  // gone
  std::vector<int64_t> ns;
  for (auto& r : tx.query(pattern{where("kind").eq("odd")}.order_by("n", order::desc).limit(5), 2))
    ns.push_back(r.value.n);
  CHECK(ns == std::vector<int64_t>{1000, 29, 27, 25, 23});
  // The store does not see them before commit.
  auto outside = db.count(pattern{where("n").eq(1000)});
  REQUIRE(outside);
  CHECK(*outside == 0);
  REQUIRE(!tx.commit());
  auto inside = db.count(pattern{where("kind").eq("odd")});
  REQUIRE(inside);
  CHECK(*inside == 14);
  // A bad pattern in a transaction answers QUERY_ERROR and the transaction
  // stays usable.
  auto t2 = *db.begin();
  CHECK_THROWS_AS([&] {
    for (auto& r : t2.query(pattern{where("").eq(1)}))
      static_cast<void>(r);
  }(), storage_error);
  CHECK(*t2.get("k999"));
  REQUIRE(!t2.commit());
}

TEST_CASE("isolation: P4 lost update, prevented from REPEATABLE_READ up") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  REQUIRE(!db.set("x", 10));
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  auto a = get(t1, "x");
  auto b = get(t2, "x");
  REQUIRE(!t1.set("x", a + 1));
  REQUIRE(!t2.set("x", b + 1));
  bool c1 = !t1.commit();
  bool c2 = !t2.commit();
  bool anomaly = c1 && c2; // one increment is lost
  CHECK(anomaly == allowed("P4", level));
  CHECK(get(db, "x") == 11);
}

TEST_CASE("isolation: G-single read skew, prevented by SERIALIZABLE") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  auto k = spread("gs", 2);
  REQUIRE(!db.set_many({{k[0], 10}, {k[1], 20}}));
  auto t1 = *db.begin(at(level));
  auto x = get(t1, k[0]);
  auto t2 = *db.begin(at(level));
  get(t2, k[0]);
  get(t2, k[1]);
  REQUIRE(!t2.set(k[0], 12));
  REQUIRE(!t2.set(k[1], 18));
  REQUIRE(!t2.commit());
  auto y = get(t1, k[1]);
  bool committed = !t1.commit();
  bool anomaly = committed && x + y != 30; // saw half of t2
  CHECK(anomaly == allowed("G-single", level));
}

TEST_CASE("isolation: G2-item write skew, prevented by SERIALIZABLE") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  auto k = spread("g2i", 2);
  REQUIRE(!db.set_many({{k[0], 10}, {k[1], 20}}));
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  get(t1, k[0]);
  get(t1, k[1]);
  get(t2, k[0]);
  get(t2, k[1]);
  REQUIRE(!t1.set(k[0], 11));
  REQUIRE(!t2.set(k[1], 21));
  bool c1 = !t1.commit();
  bool c2 = !t2.commit();
  CHECK((c1 && c2) == allowed("G2-item", level));
}

TEST_CASE("isolation: G2 anti-dependency cycles over predicates, prevented by SERIALIZABLE") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto level = GENERATE(isolation::read_uncommitted, isolation::read_committed,
                        isolation::repeatable_read, isolation::serializable);
  INFO(to_string(level));
  REQUIRE(!db.set_many({{"q/1", 10}, {"q/2", 20}}));
  auto t1 = *db.begin(at(level));
  auto t2 = *db.begin(at(level));
  // Each inserts a row that the other's predicate read would have seen.
  count(t1, "q/");
  count(t2, "q/");
  REQUIRE(!t1.set("q/a", 1));
  REQUIRE(!t2.set("q/b", 2));
  bool c1 = !t1.commit();
  bool c2 = !t2.commit();
  CHECK((c1 && c2) == allowed("G2", level));
}

TEST_CASE("write skew: two doctors on call, SERIALIZABLE keeps one on call") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto doctors = spread("oncall/", 2); // on different shards
  REQUIRE(!db.set_many({{doctors[0], 1}, {doctors[1], 1}}));
  // Each doctor goes off call if somebody else stays on call.
  auto off = [&](blocking_txn<int64_t>& tx, int me) -> caf::expected<bool> {
    int64_t on = 0;
    for (auto& d : doctors) {
      auto v = tx.get(d);
      if (!v)
        return v.error();
      on += v->value_or(0);
    }
    if (on < 2)
      return false;
    if (auto err = tx.set(doctors[me], 0))
      return err;
    return true;
  };
  auto t1 = *db.begin();
  auto t2 = *db.begin();
  REQUIRE(*off(t1, 0));
  REQUIRE(*off(t2, 1)); // both saw two on call
  REQUIRE(!t1.commit());
  CHECK(code_of(t2.commit()) == errc::version_conflict);
  // The retried second doctor sees that only one is left.
  auto again = db.transaction([&](blocking_txn<int64_t>& tx) { return off(tx, 1); });
  REQUIRE(again);
  CHECK(!*again);
  CHECK(get(db, doctors[0]) + get(db, doctors[1]) == 1);
}

// [heavy]: thousands of commits; not over the graph engine, whose every
// commit is an HTTP round trip (engine_test runs its model there).
TEST_CASE("bank: 8 concurrent clients, 4 shards, 10000 transfers", "[heavy]") {
  fixture f;
  f.open(f.options(shards));
  {
    blocking_store<int64_t> db{f.sys(), f.store};
    REQUIRE(!bank::open_accounts(db));
  }
  constexpr int clients = 8;
  constexpr int per_client = 1250;
  std::atomic<int> committed{0};
  std::atomic<int> insufficient{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  std::mutex mtx;
  std::set<std::string> acked;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      blocking_store<int64_t> db{f.sys(), f.store};
      std::mt19937 rng(c);
      txn_options o;
      o.retries = 50;
      for (int n = 0; n < per_client; ++n) {
        int from = static_cast<int>(rng() % bank::accounts);
        int to = static_cast<int>((from + 1 + rng() % (bank::accounts - 1)) % bank::accounts);
        auto amount = static_cast<int64_t>(1 + rng() % 300);
        auto key = "t/" + std::to_string(c) + "/" + std::to_string(n);
        caf::error why;
        switch (bank::transfer(db, key, from, to, amount, &why, o)) {
          case bank::outcome::committed: {
            ++committed;
            std::lock_guard<std::mutex> guard{mtx};
            acked.insert(key);
            break;
          }
          case bank::outcome::insufficient:
            ++insufficient;
            break;
          case bank::outcome::failed:
            ++failed;
            UNSCOPED_INFO(render(why));
            break;
        }
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(failed == 0);
  CHECK(committed + insufficient == clients * per_client);
  CHECK(committed > clients * per_client / 2);
  blocking_store<int64_t> db{f.sys(), f.store};
  auto s = bank::read_all(db);
  CHECK(bank::check(s) == "");
  // Every acknowledged transfer is there, and nothing else.
  CHECK(s.markers.size() == acked.size());
  for (auto& k : acked)
    CHECK(s.markers.count(k) == 1);
}

/// Options that open the coordinator's log of the (closed) store in `f`.
shard_core_options decision_log_options(const fixture& f) {
  shard_core_options lo;
  lo.dir = f.dir / "data/coordinator";
  lo.store_id = "strata/coordinator";
  lo.map_size = uint64_t{256} << 20;
  lo.changes.enabled = false;
  parse_engine(test_engine(), lo.engine); // the store's engine keeps its log too
  if (lo.engine == engine_kind::graph)
    lo.graph = test::test_graph();
  return lo;
}

TEST_CASE("decisions leave the coordinator's log after a barrier, and leftovers are re-driven harmlessly", "[durable]") {
  fixture f;
  auto o = f.options(shards);
  o.sync = sync_mode::durable;
  f.open(o);
  auto k = spread("gc", 2);
  {
    blocking_store<int64_t> db{f.sys(), f.store};
    for (int64_t i = 0; i < 300; ++i)
      REQUIRE(!db.set_many({{k[0], i}, {k[1], i}}));
  }
  f.close();
  auto count_decisions = [&] {
    shard_core log{decision_log_options(f)};
    return decision_log::all(log).size();
  };
  // 300 commits, decisions dropped in batches of 64 once synced everywhere.
  auto left = count_decisions();
  CHECK(left < 2 * 64);
  // The leftovers are re-driven on the next start; the shards have applied
  // them already, so nothing changes.
  f.open(o);
  blocking_store<int64_t> db{f.sys(), f.store};
  CHECK(get(db, k[0]) == 299);
  CHECK(get(db, k[1]) == 299);
}

TEST_CASE("a logged decision naming a shard the store does not have is ignored as garbled", "[durable]") {
  fixture f;
  auto o = f.options(shards);
  o.sync = sync_mode::durable;
  f.open(o);
  auto k = spread("bad", 2);
  {
    blocking_store<int64_t> db{f.sys(), f.store};
    REQUIRE(!db.set_many({{k[0], 1}, {k[1], 1}}));
  }
  f.close();
  {
    shard_core log{decision_log_options(f)};
    auto ops = std::vector<operation>{
      operation::set(decision_log::key(0xfeed), decision_log::encode({0, shards + 5}))};
    REQUIRE(log.write({write_request::plain_ops(ops)}).at(0).code == errc::none);
  }
  // The coordinator starts (it would index past its shards if it re-drove
  // the entry), and the store keeps its data and commits across shards.
  f.open(o);
  blocking_store<int64_t> db{f.sys(), f.store};
  CHECK(get(db, k[0]) == 1);
  REQUIRE(!db.set_many({{k[0], 2}, {k[1], 2}}));
  CHECK(get(db, k[0]) == 2);
  CHECK(get(db, k[1]) == 2);
}

TEST_CASE("a transaction that ends leaves no monitor behind on its store") {
  // CAF 0.17 keeps a monitor on the observed actor until that one ends: a
  // store would otherwise collect one per transaction it ever began.
  fixture f;
  auto o = f.options(shards);
  o.routers = 1; // the handle is the router the transaction watches
  f.open(o);
  blocking_store<int64_t> db{f.sys(), f.store};
  caf::actor_addr gone;
  {
    auto tx = db.begin();
    REQUIRE(tx);
    REQUIRE(!tx->set("k", 1));
    REQUIRE(!tx->commit());
    gone = tx->handle().address();
    f.self->monitor(tx->handle());
  }
  // The last handle is gone: the transaction ends.
  bool down = false;
  f.self->receive([&](caf::down_msg& msg) { down = msg.source == gone; },
                  caf::after(std::chrono::seconds(10)) >> [] {});
  REQUIRE(down);
  auto store = caf::actor_cast<caf::strong_actor_ptr>(f.store);
  REQUIRE(store);
  caf::default_attachable::observe_token left{gone, caf::default_attachable::monitor};
  CHECK(store->get()->detach(left) == 0);
}

TEST_CASE("a store's shutdown ends its open transactions") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto tx = db.begin();
  REQUIRE(tx);
  REQUIRE(!tx->set("k", 1));
  // The handle is still held (a remote client's would be, too), yet the
  // transaction goes with its store and releases the store's files.
  f.self->monitor(tx->handle());
  caf::anon_send_exit(f.store, caf::exit_reason::user_shutdown);
  bool down = false;
  f.self->receive([&](caf::down_msg& msg) { down = msg.source == tx->handle(); },
                  caf::after(std::chrono::seconds(10)) >> [] {});
  CHECK(down);
  CHECK(tx->commit());
  f.store = nullptr;
}

TEST_CASE("a commit waits for reads in flight, and a reply after rollback is harmless") {
  // Through shard actors only, so that reads are messages still in flight
  // when the next request arrives.
  fixture f;
  open_routed(f, shards);
  blocking_store<int64_t> db{f.sys(), f.store};
  REQUIRE(!db.set("x", 5));
  auto tx = db.begin();
  REQUIRE(tx);
  auto h = tx->handle();
  // Pipelined: the commit must validate the read, so it answers after it.
  std::vector<std::string> order;
  auto collect = [&](size_t n) {
    for (size_t i = 0; i < n; ++i)
      f.self->receive([&](maybe_bytes& v) { order.push_back(v ? "get" : "get: none"); },
                      [&] { order.push_back("done"); },
                      [&](caf::error& e) { order.push_back(render(e)); },
                      caf::after(std::chrono::seconds(10)) >>
                        [&] { order.push_back("timeout"); });
  };
  f.self->send(h, atom::get_v, std::string{"x"});
  f.self->send(h, atom::commit_v);
  collect(2);
  CHECK(order == std::vector<std::string>{"get", "done"});
  CHECK(tx->info()->state == txn_state::committed);
  // A read still in flight when the transaction rolls back finds it gone.
  auto t2 = db.begin();
  REQUIRE(t2);
  order.clear();
  f.self->send(t2->handle(), atom::get_v, std::string{"x"});
  REQUIRE(!t2->rollback());
  collect(1); // the read's answer, after the rollback
  CHECK(order == std::vector<std::string>{"get"});
  auto info = t2->info(); // the actor is alive and consistent
  REQUIRE(info);
  CHECK(info->state == txn_state::aborted);
}

// -- commits whose answer is lost ---------------------------------------------------

#ifdef STRATA_FAULT_INJECTION

namespace {

/// Adds 10 to each of `keys` in one transaction(executor); counts the runs.
caf::expected<bool> add_ten(blocking_store<int64_t>& db, const std::vector<std::string>& keys,
                            int& runs, std::function<void()> meanwhile = nullptr) {
  return db.transaction([&](blocking_txn<int64_t>& tx) -> caf::expected<bool> {
    ++runs;
    for (auto& k : keys) {
      auto v = tx.get(k);
      if (!v)
        return v.error();
      if (auto err = tx.set(k, v->value_or(0) + 10))
        return err;
    }
    if (meanwhile)
      meanwhile();
    return true;
  });
}

} // namespace

TEST_CASE("a one-shard commit whose answer is lost is learned from the shard, never rerun") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  REQUIRE(!db.set("acct", 100));
  int runs = 0;
  {
    // The shard applies the commit; its answer turns into CONNECTION_LOST
    // on the way (as when a shard node's connection drops then).
    fault::scoped_arm lose{"shard.lose_commit_answer", 1};
    auto r = add_ten(db, {"acct"}, runs);
    INFO((r ? "committed" : render(r.error())));
    REQUIRE(r);
  }
  CHECK(runs == 1);
  CHECK(get(db, "acct") == 110);
  // The explicit API learns it the same way.
  {
    fault::scoped_arm lose{"shard.lose_commit_answer", 1};
    auto tx = db.begin();
    REQUIRE(tx);
    REQUIRE(!tx->set("acct", 7));
    CHECK(!tx->commit());
    CHECK(tx->info()->state == txn_state::committed);
  }
  CHECK(get(db, "acct") == 7);
}

TEST_CASE("a lost answer to a commit that failed is learned as TRANSACTION_ABORTED and retried") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  blocking_store<int64_t> other{f.sys(), f.store};
  REQUIRE(!db.set("acct", 100));
  int runs = 0;
  fault::scoped_arm lose{"shard.lose_commit_answer", 1};
  // On the first run another client writes the key after it was read: that
  // commit fails (VERSION_CONFLICT), and its answer is lost.
  auto r = add_ten(db, {"acct"}, runs, [&] {
    if (runs == 1)
      REQUIRE(!other.set("acct", 500));
  });
  REQUIRE(r);
  CHECK(runs == 2);
  CHECK(get(db, "acct") == 510);
}

TEST_CASE("a two-phase commit whose answer is lost is learned from the coordinator") {
  fixture f;
  f.open(f.options(shards));
  blocking_store<int64_t> db{f.sys(), f.store};
  auto keys = spread("acct", 2);
  REQUIRE(!db.set(keys[0], 100));
  REQUIRE(!db.set(keys[1], 200));
  int runs = 0;
  {
    // The coordinator logged the decision and both shards applied it; the
    // answer is lost on the way to the transaction.
    fault::scoped_arm lose{"coordinator.lose_answer", 1};
    auto r = add_ten(db, keys, runs);
    INFO((r ? "committed" : render(r.error())));
    REQUIRE(r);
  }
  CHECK(runs == 1);
  CHECK(get(db, keys[0]) == 110);
  CHECK(get(db, keys[1]) == 210);
}

#else

TEST_CASE("commits whose answer is lost (needs fault points)") {
  WARN("skipped: this build has no fault points (configure with "
       "-DSTRATA_FAULT_INJECTION=ON)");
}

#endif

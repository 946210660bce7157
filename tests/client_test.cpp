// The typed client: blocking and event-based use, lazy scans, and values that
// do not decode.

#include <catch2/catch.hpp>

#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/event_based_actor.hpp>

#include "strata/client.hpp"
#include "tests/fixture.hpp"

using namespace strata;
using strata::test::fixture;
using strata::test::to_bytes;

namespace {

struct account {
  std::string owner;
  int64_t balance = 0;
  std::vector<std::string> tags;
  std::optional<std::string> note;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(owner), CEREAL_NVP(balance), CEREAL_NVP(tags), CEREAL_NVP(note));
  }

  friend bool operator==(const account& x, const account& y) {
    return x.owner == y.owner && x.balance == y.balance && x.tags == y.tags
           && x.note == y.note;
  }
};

account make_account(int i) {
  account a;
  a.owner = "owner " + std::to_string(i);
  a.balance = i * 100 - 50;
  a.tags = {"t" + std::to_string(i % 3)};
  if (i % 2)
    a.note = "odd";
  return a;
}

std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "acct:%04d", i);
  return buf;
}

} // namespace

TEST_CASE("blocking client: typed values in and out") {
  fixture f;
  auto s = f.open(f.options(3));
  blocking_store<account> accounts{f.sys(), s};
  auto missing = accounts.get("acct:none");
  REQUIRE(missing);
  CHECK(!*missing);
  REQUIRE(!accounts.set(key_of(1), make_account(1)));
  auto got = accounts.get(key_of(1));
  REQUIRE(got);
  REQUIRE(*got);
  CHECK(**got == make_account(1));
  CHECK(*accounts.has(key_of(1)));
  CHECK(*accounts.size() == 1);
  std::map<std::string, account> many;
  for (int i = 2; i < 50; ++i)
    many[key_of(i)] = make_account(i);
  REQUIRE(!accounts.set_many(many));
  auto some = accounts.get_many({key_of(2), "acct:none", key_of(40)});
  REQUIRE(some);
  CHECK(some->size() == 2);
  CHECK(some->at(key_of(40)) == make_account(40));
  auto r = accounts.batch({typed_operation<account>::set(key_of(60), make_account(60)),
                           typed_operation<account>::del(key_of(2))});
  REQUIRE(r);
  CHECK(r->success);
  CHECK(r->operations == 2);
  CHECK(*accounts.del_many({key_of(3), key_of(4), "acct:none"}) == 2);
  CHECK(*accounts.del(key_of(5)));
  CHECK(*accounts.size() == 49 + 1 - 1 - 2 - 1);
  REQUIRE(!accounts.clear());
  CHECK(*accounts.size() == 0);
}

TEST_CASE("blocking client: lazy scans page through every shard in order") {
  fixture f;
  auto s = f.open(f.options(4));
  blocking_store<account> accounts{f.sys(), s};
  std::map<std::string, account> all;
  for (int i = 0; i < 230; ++i)
    all[key_of(i)] = make_account(i);
  all["other:1"] = make_account(999);
  REQUIRE(!accounts.set_many(all));
  scan_options small;
  small.page_size = 7;
  std::vector<std::string> keys;
  for (auto& k : accounts.keys(small))
    keys.push_back(k);
  REQUIRE(keys.size() == all.size());
  auto i = all.begin();
  for (auto& k : keys)
    REQUIRE(k == (i++)->first);
  size_t n = 0;
  for (auto& [k, v] : accounts.entries(small)) {
    REQUIRE(all.at(k) == v);
    ++n;
  }
  CHECK(n == all.size());
  scan_options prefixed;
  prefixed.prefix = "acct:01";
  prefixed.page_size = 3;
  std::vector<account> values;
  for (auto& v : accounts.values(prefixed))
    values.push_back(v);
  REQUIRE(values.size() == 100);
  CHECK(values.front() == make_account(100));
  CHECK(values.back() == make_account(199));
  scan_options from;
  from.start = "acct:0225";
  keys.clear();
  for (auto& k : accounts.keys(from))
    keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"acct:0225", "acct:0226", "acct:0227",
                                         "acct:0228", "acct:0229", "other:1"});
  // An empty store yields nothing.
  REQUIRE(!accounts.clear());
  for (auto& k : accounts.keys())
    FAIL("unexpected key " << k);
}

TEST_CASE("values that are not a T give SERIALIZATION_FAILED") {
  fixture f;
  auto s = f.open(f.options(2));
  blocking_store<account> accounts{f.sys(), s};
  REQUIRE(!accounts.set("good", make_account(7)));
  auto good = encode_value(make_account(7));
  // Garbage, a truncated encoding, raw bytes, and a document of another shape.
  std::map<std::string, bytes> bad{
    {"garbage", to_bytes("\x01\x02 definitely not a document")},
    {"truncated", bytes(good.begin(), good.begin() + good.size() / 2)},
    {"empty", bytes{}},
    {"raw", encode_raw("plain text")},
    {"other", encode_value(std::string{"just a string"})},
  };
  for (auto& [k, v] : bad)
    REQUIRE(!f.ask_void(s, atom::set_v, k, v));
  for (auto& [k, v] : bad) {
    INFO("key " << k);
    auto x = accounts.get(k);
    REQUIRE(!x);
    CHECK(code_of(x.error()) == errc::serialization_failed);
    CHECK(render(x.error()).rfind("SERIALIZATION_FAILED: ", 0) == 0);
  }
  auto m = accounts.get_many({"good", "truncated"});
  REQUIRE(!m);
  CHECK(code_of(m.error()) == errc::serialization_failed);
  CHECK(render(m.error()).find("truncated") != std::string::npos);
  // Iteration stops with a storage_error that carries the code.
  try {
    for (auto& kv : accounts.entries())
      (void) kv;
    FAIL("iterated over undecodable values");
  } catch (const storage_error& e) {
    CHECK(e.code() == errc::serialization_failed);
  }
  // Keys alone still iterate: they need no decoding.
  size_t n = 0;
  for (auto& k : accounts.keys()) {
    (void) k;
    ++n;
  }
  CHECK(n == bad.size() + 1);
  // The good value is untouched.
  CHECK(**accounts.get("good") == make_account(7));
}

TEST_CASE("blocking client: bad keys are errors, not crashes") {
  fixture f;
  auto s = f.open(f.options(2));
  blocking_store<account> accounts{f.sys(), s};
  CHECK(code_of(accounts.set("", make_account(1))) == errc::invalid_key);
  CHECK(code_of(accounts.get(std::string(600, 'x')).error()) == errc::invalid_key);
  auto r = accounts.batch({typed_operation<account>{op_kind::set, "k", std::nullopt}});
  REQUIRE(!r);
  CHECK(code_of(r.error()) == errc::invalid_value);
}

TEST_CASE("event-based client: continuations inside an actor") {
  fixture f;
  auto s = f.open(f.options(3));
  store<account> accounts{s};
  auto report = caf::actor{f.self};
  // The actor writes, reads back, reads a missing key, and reports.
  f.sys().spawn([=](caf::event_based_actor* self) {
    accounts.set(self, "a", make_account(3))
      .then(
        [=](caf::unit_t) {
          accounts.get(self, "a").then(
            [=](std::optional<account> x) {
              accounts.get(self, "missing").then(
                [=](std::optional<account> y) {
                  self->send(report, x && *x == make_account(3), !y);
                },
                [=](caf::error e) { self->send(report, e); });
            },
            [=](caf::error e) { self->send(report, e); });
        },
        [=](caf::error e) { self->send(report, e); });
  });
  bool found = false;
  bool missing_is_empty = false;
  f.self->receive(
    [&](bool a, bool b) {
      found = a;
      missing_is_empty = b;
    },
    [&](caf::error& e) { FAIL(render(e)); });
  CHECK(found);
  CHECK(missing_is_empty);
  // Errors reach the error handler.
  f.sys().spawn([=](caf::event_based_actor* self) {
    accounts.set(self, "", make_account(1))
      .then([=](caf::unit_t) { self->send(report, false, false); },
            [=](caf::error e) { self->send(report, e); });
  });
  f.self->receive([&](bool, bool) { FAIL("empty key accepted"); },
                  [&](caf::error& e) { CHECK(code_of(e) == errc::invalid_key); });
  // Pages arrive typed.
  REQUIRE(!f.ask_void(s, atom::set_v, std::string{"b"},
                      encode_value(make_account(4))));
  f.sys().spawn([=](caf::event_based_actor* self) {
    scan_options opts;
    opts.page_size = 1;
    accounts.page(self, opts)
      .then(
        [=](std::pair<std::vector<std::pair<std::string, account>>, bool> p) {
          self->send(report, p.first.size() == 1 && p.first[0].first == "a",
                     p.second);
        },
        [=](caf::error e) { self->send(report, e); });
  });
  f.self->receive(
    [&](bool first_is_a, bool more) {
      CHECK(first_is_a);
      CHECK(more);
    },
    [&](caf::error& e) { FAIL(render(e)); });
}

TEST_CASE("event-based client: queries inside an actor") {
  fixture f;
  auto s = f.open(f.options(3));
  store<account> accounts{s};
  blocking_store<account> setup{f.sys(), s};
  for (int i = 0; i < 20; ++i)
    REQUIRE(!setup.set(key_of(i), make_account(i)));
  auto report = caf::actor{f.self};
  auto rich = pattern{where("balance").gte(1000)}.order_by("balance", order::desc);
  // count, then two pages of the query, then find_many, then a group-by.
  f.sys().spawn([=](caf::event_based_actor* self) {
    accounts.count(self, rich).then(
      [=](uint64_t n) {
        accounts.query(self, rich, {}, 5).then(
          [=](std::pair<std::vector<query_match<account>>, bytes> first) {
            accounts.query(self, rich, first.second, 5).then(
              [=](std::pair<std::vector<query_match<account>>, bytes> second) {
                accounts.find_many(self, rich).then(
                  [=](std::vector<query_match<account>> all) {
                    accounts
                      .aggregate(self, R"([{"group": {"by": ["tags"], "fields":
                                           {"n": {"count": "*"}}}}])")
                      .then(
                        [=](document groups) {
                          self->send(report, n, first.first.front().value.balance,
                                     static_cast<uint64_t>(first.first.size()
                                                           + second.first.size()),
                                     second.second.empty(),
                                     static_cast<uint64_t>(all.size()),
                                     static_cast<uint64_t>(groups.as_array().size()));
                        },
                        [=](caf::error e) { self->send(report, e); });
                  },
                  [=](caf::error e) { self->send(report, e); });
              },
              [=](caf::error e) { self->send(report, e); });
          },
          [=](caf::error e) { self->send(report, e); });
      },
      [=](caf::error e) { self->send(report, e); });
  });
  f.self->receive(
    [&](uint64_t n, int64_t top, uint64_t paged, bool last, uint64_t all, uint64_t groups) {
      CHECK(n == 9); // balances 1050 .. 1850
      CHECK(top == 1850);
      CHECK(paged == 9);
      CHECK(last);
      CHECK(all == 9);
      CHECK(groups == 3); // tags t0, t1, t2 (the arrays as a whole)
    },
    [&](caf::error& e) { FAIL(render(e)); });
  // A bad pattern reaches the error handler.
  f.sys().spawn([=](caf::event_based_actor* self) {
    accounts.count(self, pattern{where("balance").in({})}.limit(1))
      .then([=](uint64_t n) { self->send(report, n); },
            [=](caf::error e) { self->send(report, e); });
    accounts.count(self, pattern{where("").eq(1)})
      .then([=](uint64_t n) { self->send(report, n); },
            [=](caf::error e) { self->send(report, e); });
  });
  // The two answers may come in either order.
  int counted = 0;
  int refused = 0;
  for (int i = 0; i < 2; ++i)
    f.self->receive(
      [&](uint64_t n) {
        CHECK(n == 0);
        ++counted;
      },
      [&](caf::error& e) {
        CHECK(code_of(e) == errc::query_error);
        ++refused;
      });
  CHECK(counted == 1);
  CHECK(refused == 1);
}

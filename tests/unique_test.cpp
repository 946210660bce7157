// Unique indexes, unique across every shard: duplicates refused with
// DUPLICATE_KEY and nothing written, through every kind of write and
// transactions; writers racing for one value on different shards; builds
// over stored data (with and without duplicates) and reopens; random writes
// against a reference model. Real LMDB in temp dirs.

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <thread>

#include "backends/query_exec.hpp"
#include "strata/envelope.hpp"
#include "tests/fixture.hpp"

using namespace strata;
using strata::test::fixture;

namespace {

index_spec unique_index(std::string name, std::vector<std::string> fields) {
  index_spec s;
  s.name = std::move(name);
  for (auto& f : fields)
    s.fields.push_back({f, "btree", false});
  s.unique = true;
  return s;
}

bytes user(const std::string& email, int64_t n = 0) {
  auto d = document::object();
  if (!email.empty())
    d.set("email", document::string(email));
  d.set("n", document::integer(n));
  return encode_doc(d);
}

void expect(const caf::error& err, errc code, const std::string& part) {
  REQUIRE(err);
  CHECK(code_of(err) == code);
  CHECK_THAT(render(err), Catch::Contains(part));
}

std::string state_of(fixture& f, const std::string& name) {
  auto list = f.ask<std::vector<index_info>>(f.store, atom::indexes_v);
  REQUIRE(list);
  for (auto& x : *list)
    if (x.spec.name == name)
      return x.state + (x.error.empty() ? "" : ": " + x.error);
  return "none";
}

/// Waits until `name` is no longer building; its state.
std::string settled(fixture& f, const std::string& name) {
  for (int i = 0; i < 3000; ++i) {
    auto s = state_of(f, name);
    if (s != "building")
      return s;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return "building";
}

std::optional<bytes> get(fixture& f, const std::string& key) {
  auto v = f.ask<maybe_bytes>(f.store, atom::get_v, key);
  REQUIRE(v);
  return *v ? std::optional<bytes>{**v} : std::nullopt;
}

} // namespace

TEST_CASE("a unique index refuses a second document with a value, on any shard") {
  fixture f;
  f.open(f.options(4));
  REQUIRE_FALSE(f.ask_void(f.store, atom::create_index_v, unique_index("email", {"email"})));
  CHECK(settled(f, "email") == "ready");
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"u1"}, user("a@x")));
  expect(f.ask_void(f.store, atom::set_v, std::string{"u2"}, user("a@x")), errc::duplicate_key,
         "unique index email: document 'u2' has the value \"a@x\", which document 'u1' holds");
  CHECK_FALSE(get(f, "u2"));
  // The holder may write itself again, with the value or without.
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"u1"}, user("a@x", 2)));
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"u1"}, user("b@x")));
  // Given up, the value is free.
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"u2"}, user("a@x")));
  expect(f.ask_void(f.store, atom::set_v, std::string{"u3"}, user("b@x")), errc::duplicate_key,
         "'u1' holds");
  auto del = f.ask<bool>(f.store, atom::del_v, std::string{"u1"});
  REQUIRE(del);
  CHECK(*del);
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"u3"}, user("b@x")));
  // Missing and null values never collide.
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"n1"}, user("")));
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"n2"}, user("")));
  // Values that are not documents claim nothing.
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"raw"}, test::to_bytes("a@x")));
  SECTION("batches and set_many: all or nothing, duplicates within one refused") {
    std::vector<entry> both{{"m1", user("c@x")}, {"m2", user("c@x")}};
    expect(f.ask_void(f.store, atom::set_many_v, both), errc::duplicate_key, "c@x");
    CHECK_FALSE(get(f, "m1"));
    std::vector<entry> one_taken{{"m1", user("d@x")}, {"m2", user("a@x")}};
    expect(f.ask_void(f.store, atom::set_many_v, one_taken), errc::duplicate_key, "'u2' holds");
    CHECK_FALSE(get(f, "m1"));
    // A value passes from one document to another in one write.
    std::vector<operation> swap{operation::set("u2", user("e@x")),
                                operation::set("m1", user("a@x"))};
    auto r = f.ask<batch_result>(f.store, atom::batch_v, swap);
    REQUIRE(r);
    CHECK(r->success);
    expect(f.ask_void(f.store, atom::set_v, std::string{"z"}, user("a@x")), errc::duplicate_key,
           "'m1' holds");
    // After a clear in a batch, values before it are free.
    std::vector<operation> fresh{operation::clear(), operation::set("c1", user("a@x")),
                                 operation::set("c2", user("e@x"))};
    r = f.ask<batch_result>(f.store, atom::batch_v, fresh);
    REQUIRE(r);
    CHECK(r->success);
    auto n = f.ask<uint64_t>(f.store, atom::size_v);
    REQUIRE(n);
    CHECK(*n == 2);
    expect(f.ask_void(f.store, atom::set_v, std::string{"c3"}, user("e@x")), errc::duplicate_key,
           "'c2' holds");
    REQUIRE_FALSE(f.ask_void(f.store, atom::clear_v));
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"c3"}, user("e@x")));
  }
  SECTION("transactions claim at commit") {
    auto tx = f.ask<transaction_actor>(f.store, atom::begin_v, txn_options{});
    REQUIRE(tx);
    f.self->send(*tx, atom::set_v, std::string{"t1"}, user("a@x"));
    expect(f.ask_void(*tx, atom::commit_v), errc::duplicate_key, "'u2' holds");
    CHECK_FALSE(get(f, "t1"));
    tx = f.ask<transaction_actor>(f.store, atom::begin_v, txn_options{});
    REQUIRE(tx);
    f.self->send(*tx, atom::set_v, std::string{"t1"}, user("t@x"));
    f.self->send(*tx, atom::set_v, std::string{"u2"}, user("u@x"));
    REQUIRE_FALSE(f.ask_void(*tx, atom::commit_v));
    expect(f.ask_void(f.store, atom::set_v, std::string{"z"}, user("t@x")), errc::duplicate_key,
           "'t1' holds");
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"z"}, user("a@x")));
  }
  SECTION("compound and array values") {
    REQUIRE_FALSE(f.ask_void(f.store, atom::create_index_v, unique_index("pair", {"n", "k"})));
    REQUIRE(settled(f, "pair") == "ready");
    auto doc = [](int64_t n, int64_t k) {
      auto d = document::object();
      d.set("n", document::integer(n));
      d.set("k", document::integer(k));
      return encode_doc(d);
    };
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"p1"}, doc(1, 1)));
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"p2"}, doc(1, 2)));
    expect(f.ask_void(f.store, atom::set_v, std::string{"p3"}, doc(1, 2)), errc::duplicate_key,
           "unique index pair: document 'p3' has the value 1, 2");
    auto tags = [](std::vector<std::string> xs) {
      auto d = document::object();
      document::array_type a;
      for (auto& x : xs)
        a.push_back(document::string(x));
      d.set("email", document::array(std::move(a)));
      return encode_doc(d);
    };
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"arr1"}, tags({"q", "r"})));
    expect(f.ask_void(f.store, atom::set_v, std::string{"arr2"}, tags({"s", "r"})),
           errc::duplicate_key, "\"r\"");
  }
  SECTION("reserved keys and unusable definitions are refused") {
    expect(f.ask_void(f.store, atom::set_v, std::string("\0u", 2), user("x")), errc::invalid_key,
           "reserved");
    index_spec text;
    text.name = "t";
    text.fields = {{"email", "fulltext", false}};
    text.unique = true;
    expect(f.ask_void(f.store, atom::create_index_v, text), errc::query_error,
           "cannot be unique");
  }
}

TEST_CASE("writers racing for one value on different shards: exactly one wins") {
  fixture f;
  f.open(f.options(4));
  REQUIRE_FALSE(f.ask_void(f.store, atom::create_index_v, unique_index("email", {"email"})));
  REQUIRE(settled(f, "email") == "ready");
  for (int round = 0; round < 5; ++round) {
    auto value = "race" + std::to_string(round) + "@x";
    std::vector<std::thread> writers;
    std::atomic<int> won{0};
    std::atomic<int> lost{0};
    std::atomic<int> other{0};
    for (int w = 0; w < 8; ++w)
      writers.emplace_back([&, w] {
        caf::scoped_actor self{f.sys()};
        caf::error result;
        self->request(f.store, std::chrono::seconds(30), atom::set_v,
                      "r" + std::to_string(round) + "-" + std::to_string(w), user(value))
          .receive([] {}, [&](caf::error& e) { result = std::move(e); });
        if (!result)
          ++won;
        else if (code_of(result) == errc::duplicate_key)
          ++lost;
        else
          ++other;
      });
    for (auto& t : writers)
      t.join();
    CHECK(won == 1);
    CHECK(lost == 7);
    CHECK(other == 0);
    int stored = 0;
    for (int w = 0; w < 8; ++w)
      stored += get(f, "r" + std::to_string(round) + "-" + std::to_string(w)) ? 1 : 0;
    CHECK(stored == 1);
  }
}

TEST_CASE("a unique index built over stored data: ready, or failed on a duplicate") {
  fixture f;
  auto opts = f.options(4);
  f.open(opts);
  for (int i = 0; i < 700; ++i)
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, "k" + std::to_string(i),
                             user("v" + std::to_string(i) + "@x")));
  REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"dup-a"}, user("same@x")));
  REQUIRE_FALSE(f.ask_void(f.store, atom::create_index_v, unique_index("email", {"email"})));
  // Writes go on while it builds, and are checked already.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    caf::scoped_actor self{f.sys()};
    for (int i = 0; !stop; ++i)
      self->request(f.store, std::chrono::seconds(30), atom::set_v,
                    "k" + std::to_string(i % 700), user("w" + std::to_string(i % 700) + "@x"))
        .receive([] {}, [](caf::error&) {});
  });
  // (A duplicate written now, before the build claimed dup-a's value, would
  // fail the build; see below.)
  auto s = settled(f, "email");
  stop = true;
  writer.join();
  CHECK(s == "ready");
  expect(f.ask_void(f.store, atom::set_v, std::string{"dup-b"}, user("same@x")),
         errc::duplicate_key, "'dup-a' holds");
  f.close();
  f.open(opts); // the outcome of the build is kept
  CHECK(settled(f, "email") == "ready");
  expect(f.ask_void(f.store, atom::set_v, std::string{"dup-b"}, user("same@x")),
         errc::duplicate_key, "'dup-a' holds");
  SECTION("dropped, a duplicate is possible; created again, the index fails on it") {
    REQUIRE_FALSE(f.ask_void(f.store, atom::drop_index_v, std::string{"email"}));
    REQUIRE_FALSE(f.ask_void(f.store, atom::set_v, std::string{"dup-b"}, user("same@x")));
    // The old index's entries and claims go in steps; then it may be made again.
    caf::error err;
    for (int i = 0; i < 500; ++i) {
      err = f.ask_void(f.store, atom::create_index_v, unique_index("email", {"email"}));
      if (!err)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    REQUIRE_FALSE(err);
    auto failed = settled(f, "email");
    CHECK_THAT(failed, Catch::StartsWith("failed: unique index email: document 'dup-"));
    CHECK_THAT(failed, Catch::Contains("\"same@x\""));
    // It still refuses new duplicates, until dropped.
    expect(f.ask_void(f.store, atom::set_v, std::string{"k1"}, user("same@x")),
           errc::duplicate_key, "same@x");
    f.close();
    f.open(opts);
    CHECK_THAT(settled(f, "email"), Catch::StartsWith("failed: "));
  }
}

TEST_CASE("random writes keep a unique index exact against a reference model") {
  fixture f;
  f.open(f.options(4));
  REQUIRE_FALSE(f.ask_void(f.store, atom::create_index_v, unique_index("email", {"email"})));
  REQUIRE(settled(f, "email") == "ready");
  std::mt19937 rng{42};
  std::map<std::string, std::string> model; // key -> email ("" none)
  auto holder = [&](const std::string& email, const std::string& except) -> std::string {
    if (email.empty())
      return {};
    for (auto& [k, v] : model)
      if (v == email && k != except)
        return k;
    return {};
  };
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  for (int step = 0; step < 400; ++step) {
    auto key = "k" + std::to_string(pick(30));
    auto email = pick(5) == 0 ? std::string{} : "e" + std::to_string(pick(25));
    switch (pick(4)) {
      case 0:
      case 1: {
        auto err = f.ask_void(f.store, atom::set_v, key, user(email));
        auto h = holder(email, key);
        if (h.empty()) {
          REQUIRE_FALSE(err);
          model[key] = email;
        } else {
          expect(err, errc::duplicate_key, "'" + h + "' holds");
        }
        break;
      }
      case 2: {
        auto r = f.ask<bool>(f.store, atom::del_v, key);
        REQUIRE(r);
        CHECK(*r == (model.erase(key) > 0));
        break;
      }
      default: { // two keys at once
        auto key2 = "k" + std::to_string(pick(30));
        auto email2 = "e" + std::to_string(pick(25));
        if (key2 == key)
          break;
        std::vector<entry> es{{key, user(email)}, {key2, user(email2)}};
        auto err = f.ask_void(f.store, atom::set_many_v, es);
        auto next = model;
        next[key] = email;
        next[key2] = email2;
        std::set<std::string> seen;
        bool ok = true;
        for (auto& [k, v] : next)
          if (!v.empty() && !seen.insert(v).second)
            ok = false;
        if (ok) {
          REQUIRE_FALSE(err);
          model = next;
        } else {
          REQUIRE(err);
          CHECK(code_of(err) == errc::duplicate_key);
        }
      }
    }
  }
  // The store holds exactly the model.
  scan_request all;
  all.limit = 1000;
  auto page = f.ask<scan_page>(f.store, atom::scan_v, all);
  REQUIRE(page);
  std::map<std::string, std::string> stored;
  for (auto& e : page->entries) {
    document d;
    REQUIRE(stored_document(std::string_view{reinterpret_cast<const char*>(e.value.data()),
                                             e.value.size()},
                            d));
    auto* em = d.get("email");
    stored[e.key] = em ? em->as_string() : std::string{};
  }
  CHECK(stored == model);
  // Every value held is refused to a newcomer; every other one is free.
  for (int i = 0; i < 25; ++i) {
    auto email = "e" + std::to_string(i);
    auto h = holder(email, "");
    auto err = f.ask_void(f.store, atom::set_v, std::string{"newcomer"}, user(email));
    if (h.empty()) {
      REQUIRE_FALSE(err);
      REQUIRE(f.ask<bool>(f.store, atom::del_v, std::string{"newcomer"}));
    } else {
      expect(err, errc::duplicate_key, "'" + h + "' holds");
    }
  }
}

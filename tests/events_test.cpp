// Events, watchers and the change feed of an embedded store: ordering and
// atomicity under concurrent writers, exactly-once across resumes, vetoes,
// slow and dead interceptors, slow subscribers, filters and retention.

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "strata/codec.hpp"
#include "strata/events.hpp"
#include "tests/fixture.hpp"

using namespace strata;
using namespace std::chrono_literals;
using strata::test::fixture;
using strata::test::to_bytes;

namespace {

/// What a recording subscriber got.
struct recording {
  std::mutex mtx;
  std::vector<change_batch> batches;
  std::vector<error_event> errors;
  std::vector<storage_event> after;
  /// Deliveries held unanswered while `hold` is set.
  std::atomic<bool> hold{false};
  std::vector<caf::response_promise> held;
  size_t deliveries = 0;

  size_t changes() {
    std::lock_guard<std::mutex> guard{mtx};
    size_t n = 0;
    for (auto& b : batches)
      n += b.changes.size();
    return n;
  }

  size_t error_count() {
    std::lock_guard<std::mutex> guard{mtx};
    return errors.size();
  }
};

using recorder_actor = event_actor::extend<caf::reacts_to<atom::flush>>;

/// Records what it gets; answers deliveries at once, or, while `hold` is
/// set, only when sent `flush`.
recorder_actor::behavior_type recorder(recorder_actor::pointer self,
                                       std::shared_ptr<recording> r) {
  return {
    [](atom::before, std::vector<storage_event>&) {},
    [r](atom::after, std::vector<storage_event>& es) {
      std::lock_guard<std::mutex> guard{r->mtx};
      r->after.insert(r->after.end(), es.begin(), es.end());
    },
    [self, r](atom::change, std::vector<change_batch>& bs) -> caf::result<void> {
      std::lock_guard<std::mutex> guard{r->mtx};
      ++r->deliveries;
      r->batches.insert(r->batches.end(), bs.begin(), bs.end());
      if (!r->hold)
        return caf::unit;
      auto rp = self->make_response_promise();
      r->held.push_back(rp);
      return rp;
    },
    [r](atom::failed, error_event& e) {
      std::lock_guard<std::mutex> guard{r->mtx};
      r->errors.push_back(std::move(e));
    },
    [r](atom::flush) {
      std::vector<caf::response_promise> answer;
      {
        std::lock_guard<std::mutex> guard{r->mtx};
        answer.swap(r->held);
      }
      for (auto& rp : answer)
        rp.deliver(caf::unit);
    },
  };
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 20s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

/// The token of now.
std::string now_token(fixture& f) {
  auto r = f.self->request(f.store, 30s, atom::changes_v, std::string{}, uint32_t{0},
                           change_filter_spec{});
  std::string token;
  r.receive([&](std::vector<change_batch>&, std::string& t) { token = t; },
            [&](caf::error& err) { FAIL(render(err)); });
  return token;
}

caf::expected<watcher_actor> watch(fixture& f, const watch_options& o,
                                   const recorder_actor& who) {
  return f.ask<watcher_actor>(f.store, atom::watch_v, o, caf::actor_cast<event_actor>(who));
}

/// Every commit after `from`, through the store's `changes`.
std::vector<change_batch> history(fixture& f, std::string from) {
  std::vector<change_batch> all;
  while (true) {
    std::vector<change_batch> page;
    std::string next;
    f.self->request(f.store, 30s, atom::changes_v, from, uint32_t{100}, change_filter_spec{})
      .receive(
        [&](std::vector<change_batch>& bs, std::string& t) {
          page = std::move(bs);
          next = t;
        },
        [&](caf::error& err) { FAIL(render(err)); });
    if (page.empty() && next == from)
      return all;
    all.insert(all.end(), page.begin(), page.end());
    from = next;
  }
}

std::string text(const bytes& x) {
  return std::string(x.begin(), x.end());
}

} // namespace

TEST_CASE("a watch delivers every commit once, in order per shard, each one whole") {
  fixture f;
  f.open(f.options(4));
  auto rec = std::make_shared<recording>();
  auto who = f.sys().spawn(recorder, rec);
  auto w = watch(f, watch_options{}, who);
  REQUIRE(w);
  // Writers at once: single sets, set_many across shards (one commit per
  // shard, one transaction id), and transactions.
  constexpr int writers = 6;
  constexpr int rounds = 40;
  std::atomic<size_t> written{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t)
    threads.emplace_back([&, t] {
      caf::scoped_actor self{f.sys()};
      for (int i = 0; i < rounds; ++i) {
        auto base = "w" + std::to_string(t) + ":" + std::to_string(i);
        caf::error err;
        if (i % 3 == 0) {
          self->request(f.store, 30s, atom::set_v, base, to_bytes("v"))
            .receive([] {}, [&](caf::error& e) { err = e; });
          written += 1;
        } else if (i % 3 == 1) {
          std::vector<entry> es;
          for (int k = 0; k < 5; ++k)
            es.push_back({base + "/" + std::to_string(k), to_bytes("m")});
          self->request(f.store, 30s, atom::set_many_v, es)
            .receive([] {}, [&](caf::error& e) { err = e; });
          written += 5;
        } else {
          transaction_actor tx;
          self->request(f.store, 30s, atom::begin_v, txn_options{})
            .receive([&](transaction_actor& x) { tx = x; }, [&](caf::error& e) { err = e; });
          REQUIRE(tx);
          for (int k = 0; k < 3; ++k)
            self->request(tx, 30s, atom::set_v, base + "/t" + std::to_string(k), to_bytes("t"))
              .receive([] {}, [&](caf::error& e) { err = e; });
          self->request(tx, 30s, atom::commit_v).receive([] {}, [&](caf::error& e) { err = e; });
          written += 3;
        }
        REQUIRE_FALSE(err);
      }
    });
  for (auto& t : threads)
    t.join();
  REQUIRE(eventually([&] { return rec->changes() >= written; }));
  std::this_thread::sleep_for(100ms); // nothing more may come
  CHECK(rec->changes() == written);
  std::lock_guard<std::mutex> guard{rec->mtx};
  std::map<uint32_t, uint64_t> last;
  std::set<std::string> keys;
  std::map<uint64_t, std::set<std::string>> by_txn;
  for (auto& b : rec->batches) {
    CHECK(b.seq > last[b.shard]); // in order, none twice
    last[b.shard] = b.seq;
    for (auto& c : b.changes) {
      CHECK(keys.insert(c.key).second);
      if (b.txid != 0)
        by_txn[b.txid].insert(c.key);
    }
  }
  // A multi-key write or transaction arrives whole: all of its keys, with
  // one transaction id, and each shard's part as one commit.
  for (auto& [txid, ks] : by_txn) {
    auto prefix = ks.begin()->substr(0, ks.begin()->find('/'));
    for (auto& k : ks)
      CHECK(k.substr(0, k.find('/')) == prefix);
    CHECK((ks.size() == 5 || ks.size() == 3));
  }
  caf::anon_send(*w, atom::unwatch_v);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
}

TEST_CASE("resuming from a position delivers exactly what came after it") {
  fixture f;
  f.open(f.options(3));
  auto start = now_token(f);
  // Random stop points while a writer runs: each resume continues from the
  // position the last subscriber handled.
  std::atomic<bool> done{false};
  std::thread writer([&] {
    caf::scoped_actor self{f.sys()};
    for (int i = 0; i < 600; ++i) {
      auto key = "k" + std::to_string(i % 50);
      if (i % 7 == 0)
        self->request(f.store, 30s, atom::del_v, key).receive([](bool) {}, [](caf::error&) {});
      else
        self->request(f.store, 30s, atom::set_v, key, to_bytes(std::to_string(i)))
          .receive([] {}, [](caf::error&) {});
    }
    done = true;
  });
  std::mutex mtx;
  std::vector<change_batch> got;
  observer<std::string> events{f.sys(), f.store};
  // Changes regrouped into their commits, in the order they were handled.
  auto record = [&](const typed_change<std::string>& c) {
    std::lock_guard<std::mutex> guard{mtx};
    if (got.empty() || got.back().shard != c.shard || got.back().seq != c.seq) {
      change_batch b;
      b.shard = c.shard;
      b.seq = c.seq;
      got.push_back(b);
    }
    got.back().changes.push_back(*c.raw);
  };
  std::mt19937 rng{7};
  auto position = start;
  int resumes = 0;
  while (true) {
    watch_options o;
    o.from = position;
    o.max_batches = 1 + rng() % 8;
    auto sub = events.watch(o, record);
    REQUIRE(sub);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
    auto finished = done.load();
    if (finished)
      std::this_thread::sleep_for(300ms); // let it catch up
    position = sub->stop();
    ++resumes;
    if (finished)
      break;
  }
  writer.join();
  // Catch up whatever the last one had not handled.
  {
    watch_options o;
    o.from = position;
    auto sub = events.watch(o, record);
    REQUIRE(sub);
    auto expected = history(f, start);
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> guard{mtx};
      return got.size() >= expected.size();
    }));
    std::this_thread::sleep_for(100ms);
    sub->unsubscribe();
    std::lock_guard<std::mutex> guard{mtx};
    INFO(resumes << " resumes");
    CHECK(resumes > 1);
    // Per shard, the delivered commits are exactly the committed history.
    std::map<uint32_t, std::vector<std::pair<uint64_t, size_t>>> want, have;
    for (auto& b : expected)
      want[b.shard].emplace_back(b.seq, b.changes.size());
    for (auto& b : got)
      have[b.shard].emplace_back(b.seq, b.changes.size());
    for (auto& [shard, list] : want) {
      INFO("shard " << shard);
      auto& mine = have[shard];
      CHECK(mine.size() == list.size());
      for (size_t i = 0; i < list.size() && i < mine.size(); ++i)
        if (mine[i] != list[i]) {
          FAIL_CHECK("commit " << i << ": got seq " << mine[i].first << " with "
                               << mine[i].second << " changes, want seq " << list[i].first
                               << " with " << list[i].second);
          break;
        }
    }
  }
}

TEST_CASE("a before:set veto fails the write and writes nothing; after and error events") {
  fixture f;
  f.open(f.options(4));
  observer<std::string> events{f.sys(), f.store};
  auto veto = events.on(event_kind::before_set,
                        before_handler<std::string>([](const typed_event<std::string>& e) {
                          if (e.key.rfind("bad", 0) == 0)
                            return make_error(errc::invalid_value,
                                              "keys may not start with bad: " + e.key);
                          return caf::error{};
                        }));
  REQUIRE(veto);
  std::mutex mtx;
  std::vector<std::string> after_set, errors;
  auto after = events.on(event_kind::after_set,
                         after_handler<std::string>([&](const typed_event<std::string>& e) {
                           std::lock_guard<std::mutex> guard{mtx};
                           after_set.push_back(e.key + "=" + e.value.value_or("?"));
                         }));
  REQUIRE(after);
  auto errs = events.on_error([&](const error_event& e) {
    std::lock_guard<std::mutex> guard{mtx};
    errors.push_back(e.operation + " " + e.key + ": " + render(e.error));
  });
  REQUIRE(errs);
  blocking_store<std::string> db{f.sys(), f.store};
  CHECK_FALSE(db.set("good", "1"));
  auto err = db.set("bad1", "x");
  CHECK(code_of(err) == errc::invalid_value);
  CHECK(render(err).find("keys may not start with bad") != std::string::npos);
  CHECK(*db.get("bad1") == std::nullopt);
  // A multi-key write with one refused key writes none of them.
  err = db.set_many({{"ok1", "a"}, {"bad2", "b"}, {"ok2", "c"}});
  CHECK(code_of(err) == errc::invalid_value);
  CHECK(*db.get("ok1") == std::nullopt);
  auto br = db.batch({typed_operation<std::string>::set("ok3", "a"),
                      typed_operation<std::string>::set("bad3", "b")});
  REQUIRE(br);
  CHECK_FALSE(br->success);
  CHECK(*db.get("ok3") == std::nullopt);
  // Bad input is an error event too, and never reaches the interceptors.
  CHECK(code_of(db.set("", "x")) == errc::invalid_key);
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> guard{mtx};
    return after_set.size() >= 1 && errors.size() >= 4;
  }));
  std::this_thread::sleep_for(50ms);
  {
    std::lock_guard<std::mutex> guard{mtx};
    CHECK(after_set == std::vector<std::string>{"good=1"});
    REQUIRE(errors.size() == 4);
    CHECK(errors[0].rfind("set bad1: ", 0) == 0);
    CHECK(errors[3].find("INVALID_KEY") != std::string::npos);
  }
  // Unsubscribed: the rule no longer applies.
  veto->unsubscribe();
  CHECK(eventually([&] { return !db.set("bad4", "y"); }));
  CHECK(*db.get("bad4") == "y");
}

TEST_CASE("a slow or dead interceptor never hangs the store: its policy applies") {
  fixture f;
  f.open(f.options(2));
  blocking_store<std::string> db{f.sys(), f.store};
  // Never answers.
  auto silent = f.sys().spawn([](event_actor::pointer self) -> event_actor::behavior_type {
    return {
      [self](atom::before, std::vector<storage_event>&) -> caf::result<void> {
        return self->make_response_promise(); // never delivered
      },
      [](atom::after, std::vector<storage_event>&) {},
      [](atom::change, std::vector<change_batch>&) {},
      [](atom::failed, error_event&) {},
    };
  });
  subscribe_options strict;
  strict.timeout_ms = 100;
  REQUIRE_FALSE(f.ask_void(f.store, atom::on_v, event_kind::before_set, silent, strict));
  auto t0 = std::chrono::steady_clock::now();
  auto err = db.set("k", "v");
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(code_of(err) == errc::transaction_aborted);
  CHECK(render(err).find("before:set interceptor subscriber") != std::string::npos);
  CHECK(took < 5s);
  CHECK(*db.get("k") == std::nullopt);
  // Reads and deletes are not its business.
  CHECK(db.del("k"));
  // Proceeding on timeout instead.
  subscribe_options lenient;
  lenient.timeout_ms = 100;
  lenient.proceed_on_timeout = true;
  REQUIRE_FALSE(f.ask_void(f.store, atom::on_v, event_kind::before_set, silent, lenient));
  CHECK_FALSE(db.set("k", "v"));
  CHECK(*db.get("k") == "v");
  // Dead: the store forgets it (and until then its policy applies).
  REQUIRE_FALSE(f.ask_void(f.store, atom::on_v, event_kind::before_set, silent, strict));
  caf::anon_send_exit(silent, caf::exit_reason::kill);
  CHECK(eventually([&] { return !db.set("k2", "v"); }, 10s));
  CHECK(*db.get("k2") == "v");
}

TEST_CASE("a slow subscriber holds no more than its window and never slows writers") {
  fixture f;
  f.open(f.options(2));
  auto rec = std::make_shared<recording>();
  rec->hold = true;
  auto who = f.sys().spawn(recorder, rec);
  watch_options o;
  o.window = 3;
  o.max_batches = 10;
  auto w = watch(f, o, who);
  REQUIRE(w);
  // 2 000 commits while the subscriber answers nothing.
  blocking_store<std::string> db{f.sys(), f.store};
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i)
    REQUIRE_FALSE(db.set("k" + std::to_string(i), "v"));
  CHECK(std::chrono::steady_clock::now() - t0 < 60s);
  std::this_thread::sleep_for(200ms);
  auto info = f.ask<watch_info>(*w, atom::info_v);
  REQUIRE(info);
  CHECK(info->in_flight <= 3);
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    CHECK(rec->deliveries <= 3); // the rest stays in the log
    CHECK(rec->batches.size() <= 30);
  }
  // Answering lets it catch up from the log: every commit, once.
  rec->hold = false;
  caf::anon_send(who, atom::flush_v);
  REQUIRE(eventually([&] { return rec->changes() >= 2000; }));
  std::this_thread::sleep_for(50ms);
  CHECK(rec->changes() == 2000);
  caf::anon_send(*w, atom::unwatch_v);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
}

TEST_CASE("watch filters: glob, regex and a query") {
  fixture f;
  f.open(f.options(4));
  auto set = [&](const std::string& key, const document& d) {
    return f.ask_void(f.store, atom::set_v, key, encode_doc(d));
  };
  auto run = [&](watch_options o) {
    auto rec = std::make_shared<recording>();
    auto who = f.sys().spawn(recorder, rec);
    auto w = watch(f, o, who);
    REQUIRE(w);
    std::set<std::string> keys;
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> guard{rec->mtx};
      keys.clear();
      for (auto& b : rec->batches)
        for (auto& c : b.changes)
          keys.insert(c.key);
      return keys.size() >= 2;
    }));
    caf::anon_send(*w, atom::unwatch_v);
    caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
    return keys;
  };
  auto start = now_token(f);
  auto doc = [](int64_t age) { return document::object({{"age", document::integer(age)}}); };
  REQUIRE_FALSE(set("user:1", doc(30)));
  REQUIRE_FALSE(set("user:1:email", doc(5)));
  REQUIRE_FALSE(set("order:9", doc(70)));
  REQUIRE_FALSE(set("user:2", doc(80)));
  watch_options glob;
  glob.from = start;
  glob.filter.pattern = "user:*";
  CHECK(run(glob) == std::set<std::string>{"user:1", "user:1:email", "user:2"});
  watch_options suffix;
  suffix.from = start;
  suffix.filter.pattern = "*:email";
  REQUIRE_FALSE(set("admin:email", doc(1)));
  CHECK(run(suffix) == std::set<std::string>{"user:1:email", "admin:email"});
  watch_options re;
  re.from = start;
  re.filter.pattern = "[a-z]+:[0-9]";
  re.filter.regex = true;
  CHECK(run(re) == std::set<std::string>{"user:1", "order:9", "user:2"});
  watch_options old;
  old.from = start;
  old.filter.where = R"({"where": {"field": "age", "operator": "gte", "value": 60}})";
  CHECK(run(old) == std::set<std::string>{"order:9", "user:2"});
  // Bad filters and tokens are refused before a watcher starts.
  auto rec = std::make_shared<recording>();
  auto who = f.sys().spawn(recorder, rec);
  watch_options bad;
  bad.filter.pattern = "(";
  bad.filter.regex = true;
  CHECK(code_of(watch(f, bad, who).error()) == errc::query_error);
  watch_options bad_token;
  bad_token.from = "t1:1,2"; // two positions, four shards
  CHECK(code_of(watch(f, bad_token, who).error()) == errc::invalid_value);
  bad_token.from = "yesterday";
  CHECK(code_of(watch(f, bad_token, who).error()) == errc::invalid_value);
  watch_options bad_window;
  bad_window.window = 0;
  CHECK(code_of(watch(f, bad_window, who).error()) == errc::invalid_value);
  CHECK(code_of(f.ask_void(f.store, atom::on_v, event_kind::before_set,
                           caf::actor_cast<event_actor>(who), subscribe_options{0, false}))
        == errc::invalid_value);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
}

TEST_CASE("a token older than the retention is refused, not silently skipped") {
  fixture f;
  auto o = f.options(2);
  o.changes.retain_commits = 10;
  f.open(o);
  auto start = now_token(f);
  blocking_store<std::string> db{f.sys(), f.store};
  for (int i = 0; i < 100; ++i)
    REQUIRE_FALSE(db.set("k" + std::to_string(i), "v"));
  auto rec = std::make_shared<recording>();
  auto who = f.sys().spawn(recorder, rec);
  watch_options w;
  w.from = start;
  auto res = watch(f, w, who);
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::consistency_violation);
  CHECK(render(res.error()).find("resume token older than retention") != std::string::npos);
  // The retained part still reads from a recent position.
  auto recent = now_token(f);
  REQUIRE_FALSE(db.set("late", "v"));
  auto rest = history(f, recent);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].changes.at(0).key == "late");
  CHECK(text(rest[0].changes[0].new_value).find('v') != std::string::npos);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
}

TEST_CASE("a store without a change log refuses watches") {
  fixture f;
  auto o = f.options(2);
  o.changes.enabled = false;
  f.open(o);
  auto rec = std::make_shared<recording>();
  auto who = f.sys().spawn(recorder, rec);
  auto res = watch(f, watch_options{}, who);
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::invalid_value);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
}

TEST_CASE("watchers under load end when told, and the store closes") {
  fixture f;
  f.open(f.options(4));
  std::vector<watcher_actor> ws;
  std::vector<recorder_actor> whos;
  for (int i = 0; i < 10; ++i) {
    whos.push_back(f.sys().spawn(recorder, std::make_shared<recording>()));
    auto w = watch(f, watch_options{}, whos.back());
    REQUIRE(w);
    ws.push_back(*w);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      caf::scoped_actor self{f.sys()};
      for (int i = 0; i < 300; ++i)
        self->request(f.store, 30s, atom::set_v, "k" + std::to_string(t) + ":" + std::to_string(i),
                      to_bytes("v"))
          .receive([] {}, [](caf::error&) {});
    });
  for (auto& t : threads)
    t.join();
  for (auto& w : ws)
    caf::anon_send(w, atom::unwatch_v);
  for (auto& who : whos)
    caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
  f.close(); // hangs if an actor stays
  SUCCEED();
}

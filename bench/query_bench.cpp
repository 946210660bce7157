// strata-query-bench: queries and indexes in strata side by side with SQLite 3
// (WAL, the equivalent indexes, in the same process) on the same documents,
// with a full scan as the floor. Prints each figure and the ratio.
//
//   strata-query-bench [--docs N] [--shards K] [--seconds S] [--dir PATH]
//
// The documents: {id, customer (0..9999), amount (1..1000), status (one of 4),
// day (0..364), note}. strata stores them as documents under "o<id>"; SQLite
// as a row of columns plus the document as JSON text. Indexes: strata btree on
// id, day, customer and a hash index on status; SQLite the same columns.

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "strata/all.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct options {
  uint64_t docs = 1000000;
  uint32_t shards = 4;
  double seconds = 3;
  std::string dir;
};

const char* statuses[] = {"new", "paid", "shipped", "returned"};

struct order_doc {
  int64_t id;
  int64_t customer;
  int64_t amount;
  const char* status;
  int64_t day;
};

order_doc make_order(uint64_t i, std::mt19937_64& rng) {
  return {static_cast<int64_t>(i), static_cast<int64_t>(rng() % 10000),
          static_cast<int64_t>(1 + rng() % 1000), statuses[rng() % 4],
          static_cast<int64_t>(rng() % 365)};
}

strata::document to_document(const order_doc& o) {
  auto d = strata::document::object();
  d.set("id", strata::document::integer(o.id));
  d.set("customer", strata::document::integer(o.customer));
  d.set("amount", strata::document::integer(o.amount));
  d.set("status", strata::document::string(o.status));
  d.set("day", strata::document::integer(o.day));
  d.set("note", strata::document::string("order of customer " + std::to_string(o.customer)));
  return d;
}

/// Prose for fulltext: 20 to 40 words drawn from 5 000 made-up words with
/// Zipf frequencies (as natural language has), one text per document.
class prose {
public:
  prose() {
    double sum = 0;
    for (int r = 1; r <= 5000; ++r) {
      sum += 1.0 / r;
      cdf_.push_back(sum);
    }
    for (auto& c : cdf_)
      c /= sum;
  }
  static std::string word(uint64_t rank) {
    static const char* syl[] = {"ka", "lo", "mi", "ru", "te", "sa", "no", "pi", "da", "ve", "xo", "bu"};
    std::string w;
    for (auto r = rank + 12; r > 0; r /= 12)
      w += syl[r % 12];
    return w;
  }
  std::string text(std::mt19937_64& rng) const {
    std::string out;
    for (auto n = 20 + rng() % 21; n > 0; --n) {
      auto u = std::uniform_real_distribution<double>{0, 1}(rng);
      auto rank = std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
      out += (out.empty() ? "" : " ") + word(static_cast<uint64_t>(rank));
    }
    return out;
  }

private:
  std::vector<double> cdf_;
};

double since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

void fail(const std::string& what) {
  throw std::runtime_error(what);
}

// -- strata ---------------------------------------------------------------------

/// `clients` actors, each with one request in flight, for `seconds`: how
/// many answers per second. `make(i)` builds the next request's pattern.
template <class R, class Atom, class Make>
double pump(caf::actor_system& sys, const strata::observable_storage_actor& store,
            Atom atom, uint32_t clients, double seconds, Make make) {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> errors{0};
  auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(seconds));
  caf::scoped_actor waiter{sys};
  auto me = waiter->address();
  for (uint32_t c = 0; c < clients; ++c) {
    sys.spawn([&, c, me](caf::event_based_actor* self) {
      auto n = std::make_shared<uint64_t>(c * 7919);
      auto next = std::make_shared<std::function<void()>>();
      *next = [=, &done, &errors] {
        if (clock_type::now() >= deadline) {
          caf::anon_send(caf::actor_cast<caf::actor>(me), c);
          return;
        }
        self->request(store, caf::infinite, atom, make((*n)++))
          .then(
            [=, &done](R&) {
              ++done;
              (*next)();
            },
            [=, &errors](caf::error&) {
              ++errors;
              (*next)();
            });
      };
      (*next)();
    });
  }
  auto start = clock_type::now();
  for (uint32_t c = 0; c < clients; ++c)
    waiter->receive([](uint32_t) {});
  if (errors > 0)
    fail("strata answered " + std::to_string(errors.load()) + " errors");
  return static_cast<double>(done) / since(start);
}

template <class R, class... Ts>
R ask(caf::actor_system& sys, const strata::observable_storage_actor& store, Ts&&... xs) {
  caf::scoped_actor self{sys};
  R result{};
  caf::error err;
  self->request(store, caf::infinite, std::forward<Ts>(xs)...)
    .receive([&](R& r) { result = std::move(r); }, [&](caf::error& e) { err = e; });
  if (err)
    fail(strata::render(err));
  return result;
}

template <class... Ts>
void ask_void(caf::actor_system& sys, const strata::observable_storage_actor& store,
              Ts&&... xs) {
  caf::scoped_actor self{sys};
  caf::error err;
  self->request(store, caf::infinite, std::forward<Ts>(xs)...)
    .receive([] {}, [&](caf::error& e) { err = e; });
  if (err)
    fail(strata::render(err));
}

void load_strata(caf::actor_system& sys, const strata::observable_storage_actor& store,
                 uint64_t docs, uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::vector<strata::entry> batch;
  for (uint64_t i = 0; i < docs; ++i) {
    batch.push_back({"o" + std::to_string(i), strata::encode_doc(to_document(make_order(i, rng)))});
    if (batch.size() == 2000 || i + 1 == docs) {
      ask_void(sys, store, strata::atom::set_many_v, std::move(batch));
      batch.clear();
    }
  }
}

void wait_ready(caf::actor_system& sys, const strata::observable_storage_actor& store) {
  for (;;) {
    auto list = ask<std::vector<strata::index_info>>(sys, store, strata::atom::indexes_v);
    if (std::all_of(list.begin(), list.end(),
                    [](const strata::index_info& x) { return x.state == "ready"; }))
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
}

strata::index_spec index_on(const char* name, const char* field, const char* type = "btree") {
  strata::index_spec s;
  s.name = name;
  s.fields = {{field, type, false}};
  return s;
}

// -- SQLite ---------------------------------------------------------------------

struct sqlite_db {
  sqlite3* db = nullptr;
  explicit sqlite_db(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK)
      fail("sqlite3_open");
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA mmap_size=4294967296");
    exec("PRAGMA cache_size=-524288");
  }
  ~sqlite_db() {
    sqlite3_close(db);
  }
  void exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "?";
      sqlite3_free(msg);
      fail(std::string{"sqlite: "} + sql + ": " + m);
    }
  }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK)
      fail(std::string{"sqlite prepare: "} + sqlite3_errmsg(db));
    return st;
  }
};

void load_sqlite(sqlite_db& s, uint64_t docs, uint64_t seed) {
  s.exec("CREATE TABLE orders(key TEXT PRIMARY KEY, id INTEGER, customer INTEGER, amount "
         "INTEGER, status TEXT, day INTEGER, doc TEXT)");
  std::mt19937_64 rng{seed};
  auto* ins = s.prepare("INSERT INTO orders VALUES(?,?,?,?,?,?,?)");
  s.exec("BEGIN");
  for (uint64_t i = 0; i < docs; ++i) {
    auto o = make_order(i, rng);
    auto key = "o" + std::to_string(i);
    auto json = strata::to_json(to_document(o));
    sqlite3_bind_text(ins, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 2, o.id);
    sqlite3_bind_int64(ins, 3, o.customer);
    sqlite3_bind_int64(ins, 4, o.amount);
    sqlite3_bind_text(ins, 5, o.status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 6, o.day);
    sqlite3_bind_text(ins, 7, json.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE)
      fail("sqlite insert");
    sqlite3_reset(ins);
  }
  s.exec("COMMIT");
  sqlite3_finalize(ins);
}

/// Runs `per_thread(db, thread, n)` on `threads` threads (one connection each)
/// for `seconds`; answers per second.
template <class F>
double sqlite_pump(const std::string& path, uint32_t threads, double seconds, F body) {
  std::atomic<uint64_t> done{0};
  std::vector<std::thread> ts;
  auto start = clock_type::now();
  for (uint32_t t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      sqlite_db db{path};
      uint64_t n = t * 7919;
      while (since(start) < seconds) {
        body(db, n++);
        ++done;
      }
    });
  for (auto& t : ts)
    t.join();
  return static_cast<double>(done) / since(start);
}

struct row {
  std::string what;
  double strata;
  double peer;
  std::string unit;
  std::string peer_name;
};

void print_row(const row& r) {
  std::printf("%-46s strata %12.1f %-9s %-10s %12.1f   ratio %7.2fx\n", r.what.c_str(), r.strata,
              r.unit.c_str(), r.peer_name.c_str(), r.peer, r.strata / r.peer);
  std::fflush(stdout);
}

double p50(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return std::string{argv[++i]};
    };
    if (a == "--docs")
      opts.docs = std::stoull(value());
    else if (a == "--shards")
      opts.shards = static_cast<uint32_t>(std::stoul(value()));
    else if (a == "--seconds")
      opts.seconds = std::stod(value());
    else if (a == "--dir")
      opts.dir = value();
    else {
      std::cerr << "usage: strata-query-bench [--docs N] [--shards K] [--seconds S] [--dir PATH]\n";
      return a == "--help" ? 0 : 2;
    }
  }
  auto base = opts.dir.empty() ? fs::temp_directory_path() / ("strata-query-bench-"
                                                              + std::to_string(::getpid()))
                               : fs::path{opts.dir};
  fs::remove_all(base);
  fs::create_directories(base);
  caf::actor_system_config cfg;
  strata::configure(cfg);
  int rc = 0;
  {
    caf::actor_system sys{cfg};
    try {
      strata::store_options so;
      so.data_dir = (base / "strata").string();
      so.shards = opts.shards;
      so.sync = strata::sync_mode::nosync;
      so.map_size = uint64_t{16} << 30;
      so.log_level = "warning";
      auto store = strata::spawn_store(sys, so);
      if (!store)
        fail(strata::render(store.error()));
      std::printf("%llu documents, %u shards; SQLite %s (WAL) as the peer\n",
                  static_cast<unsigned long long>(opts.docs), opts.shards, sqlite3_libversion());
      auto t = clock_type::now();
      load_strata(sys, *store, opts.docs, 42);
      std::printf("load: strata %.1f s", since(t));
      t = clock_type::now();
      auto sql_path = (base / "orders.sqlite").string();
      {
        sqlite_db s{sql_path};
        load_sqlite(s, opts.docs, 42);
        std::printf(", SQLite %.1f s\n", since(t));
        t = clock_type::now();
        s.exec("CREATE INDEX by_id ON orders(id)");
        s.exec("CREATE INDEX by_day ON orders(day)");
        s.exec("CREATE INDEX by_customer ON orders(customer)");
        s.exec("CREATE INDEX by_status ON orders(status)");
        s.exec("ANALYZE");
        std::printf("indexes (4): SQLite %.1f s", since(t));
      }
      t = clock_type::now();
      for (auto& ix : {index_on("by_id", "id"), index_on("by_day", "day"),
                       index_on("by_customer", "customer"),
                       index_on("by_status", "status", "hash")})
        ask_void(sys, *store, strata::atom::create_index_v, ix);
      wait_ready(sys, *store);
      std::printf(", strata %.1f s (built in the background)\n\n", since(t));
      auto n = opts.docs;
      std::vector<row> rows;

      // 1. Equality lookup returning one document, 64 in flight.
      auto eq_id = [n](uint64_t i) {
        return R"({"where":{"field":"id","operator":"eq","value":)"
               + std::to_string((i * 2654435761u) % n) + "}}";
      };
      auto strata_eq = pump<std::vector<strata::query_result>>(sys, *store, strata::atom::find_one_v, 64, opts.seconds, eq_id);
      auto sql_eq = sqlite_pump(sql_path, 2, opts.seconds, [n](sqlite_db& db, uint64_t i) {
        thread_local sqlite3_stmt* st = nullptr;
        thread_local sqlite3* owner = nullptr;
        if (owner != db.db) {
          st = db.prepare("SELECT key, doc FROM orders WHERE id = ?");
          owner = db.db;
        }
        sqlite3_bind_int64(st, 1, static_cast<int64_t>((i * 2654435761u) % n));
        if (sqlite3_step(st) != SQLITE_ROW)
          fail("sqlite: no row");
        sqlite3_reset(st);
      });
      rows.push_back({"indexed eq lookup, 1 doc (64 in flight)", strata_eq, sql_eq, "q/s",
                      "SQLite"});
      print_row(rows.back());
      // The floor: the same lookup on a field without an index.
      t = clock_type::now();
      int scans = 0;
      while (since(t) < opts.seconds || scans < 2) {
        ask<std::vector<strata::query_result>>(sys, *store, strata::atom::find_one_v,
                                               R"({"where":{"field":"amount","operator":"eq","value":-1}})");
        ++scans;
      }
      auto full_scan = scans / since(t);
      rows.push_back({"indexed eq lookup vs a full scan (strata)", strata_eq, full_scan, "q/s",
                      "scan"});
      print_row(rows.back());

      // 2. Range on an indexed field, ordered, limit 10: p50 latency.
      std::vector<double> strata_lat;
      std::vector<double> sql_lat;
      {
        caf::scoped_actor self{sys};
        for (int i = 0; i < 2000; ++i) {
          auto d = (i * 37) % 360;
          auto text = R"({"where":{"operator":"and","conditions":[{"field":"day","operator":"gte","value":)"
                      + std::to_string(d) + R"(},{"field":"day","operator":"lt","value":)"
                      + std::to_string(d + 5) + R"(}]},"orderBy":[{"field":"day"}],"limit":10})";
          strata::query_request req;
          req.pattern = text;
          req.limit = 10;
          auto s = clock_type::now();
          self->request(*store, caf::infinite, strata::atom::query_v, req)
            .receive([](strata::query_page& p) {
                       if (p.results.size() != 10)
                         fail("range query: " + std::to_string(p.results.size()) + " results");
                     },
                     [](caf::error& e) { fail(strata::render(e)); });
          strata_lat.push_back(since(s) * 1e6);
        }
        sqlite_db db{sql_path};
        auto* st = db.prepare(
          "SELECT key, doc FROM orders WHERE day >= ? AND day < ? ORDER BY day LIMIT 10");
        for (int i = 0; i < 2000; ++i) {
          auto d = (i * 37) % 360;
          auto s = clock_type::now();
          sqlite3_bind_int64(st, 1, d);
          sqlite3_bind_int64(st, 2, d + 5);
          int got = 0;
          while (sqlite3_step(st) == SQLITE_ROW)
            ++got;
          sqlite3_reset(st);
          if (got != 10)
            fail("sqlite range: " + std::to_string(got));
          sql_lat.push_back(since(s) * 1e6);
        }
        sqlite3_finalize(st);
      }
      // Latencies: the ratio is SQLite's p50 over strata's (above 1: strata faster).
      auto sp = p50(strata_lat);
      auto qp = p50(sql_lat);
      std::printf("%-46s strata %12.1f us p50  SQLite     %12.1f us p50  ratio %7.2fx\n",
                  "range + order_by + limit 10 (1 client)", sp, qp, qp / sp);

      // 3. Group by over every document.
      auto pipeline = std::string{
        R"([{"group":{"by":["status"],"fields":{"n":{"count":"*"},"total":{"sum":"amount"}}}}])"};
      t = clock_type::now();
      int aggs = 0;
      while (since(t) < opts.seconds || aggs < 2) {
        ask<strata::bytes>(sys, *store, strata::atom::aggregate_v, pipeline);
        ++aggs;
      }
      auto strata_agg = aggs / since(t);
      double sql_agg = 0;
      {
        sqlite_db db{sql_path};
        auto* st = db.prepare("SELECT status, COUNT(*), SUM(amount) FROM orders GROUP BY status");
        t = clock_type::now();
        int runs = 0;
        while (since(t) < opts.seconds || runs < 2) {
          while (sqlite3_step(st) == SQLITE_ROW) {
          }
          sqlite3_reset(st);
          ++runs;
        }
        sql_agg = runs / since(t);
        sqlite3_finalize(st);
      }
      rows.push_back({"group-by aggregate over all documents", strata_agg, sql_agg, "runs/s",
                      "SQLite"});
      print_row(rows.back());

      // 4. Fulltext: top 10 by relevance for two words of middling frequency,
      // against FTS5 (porter stemming, bm25 rank) over the same texts.
      {
        auto texts = std::max<uint64_t>(n / 5, 1000);
        prose words;
        strata::store_options fo = so;
        fo.data_dir = (base / "fulltext").string();
        auto ft = strata::spawn_store(sys, fo);
        if (!ft)
          fail(strata::render(ft.error()));
        ask_void(sys, *ft, strata::atom::create_index_v, index_on("words", "text", "fulltext"));
        auto fts_path = (base / "fts.sqlite").string();
        sqlite_db fts{fts_path};
        fts.exec("CREATE VIRTUAL TABLE docs USING fts5(key UNINDEXED, text, tokenize='porter')");
        auto* ins = fts.prepare("INSERT INTO docs VALUES(?,?)");
        fts.exec("BEGIN");
        std::mt19937_64 rng{99};
        std::vector<strata::entry> batch;
        double strata_load = 0;
        for (uint64_t i = 0; i < texts; ++i) {
          auto key = "t" + std::to_string(i);
          auto body = words.text(rng);
          auto d = strata::document::object();
          d.set("text", strata::document::string(body));
          batch.push_back({key, strata::encode_doc(d)});
          sqlite3_bind_text(ins, 1, key.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(ins, 2, body.c_str(), -1, SQLITE_TRANSIENT);
          if (sqlite3_step(ins) != SQLITE_DONE)
            fail("fts insert");
          sqlite3_reset(ins);
          if (batch.size() == 2000 || i + 1 == texts) {
            auto s = clock_type::now();
            ask_void(sys, *ft, strata::atom::set_many_v, std::move(batch));
            strata_load += since(s);
            batch.clear();
          }
        }
        fts.exec("COMMIT");
        sqlite3_finalize(ins);
        std::printf("fulltext: %llu texts of 20-40 words, indexed as written: strata %.1f s\n",
                    static_cast<unsigned long long>(texts), strata_load);
        wait_ready(sys, *ft);
        // Word ranks 40..400: each in about 1-10% of the texts.
        auto query_words = [](uint64_t i) {
          return prose::word(40 + (i * 7919) % 360) + " " + prose::word(40 + (i * 104729 + 13) % 360);
        };
        // Both find the same documents (the made-up words stem alike).
        for (uint64_t i = 0; i < 20; ++i) {
          auto c = ask<uint64_t>(sys, *ft, strata::atom::count_v,
                                 R"({"where":{"field":"text","operator":"text","value":")"
                                   + query_words(i) + "\"}}");
          auto* st = fts.prepare("SELECT count(*) FROM docs WHERE docs MATCH ?");
          auto q = query_words(i);
          sqlite3_bind_text(st, 1, q.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_step(st);
          auto sc = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
          sqlite3_finalize(st);
          if (c != sc)
            fail("fulltext: strata finds " + std::to_string(c) + " texts, FTS5 "
                 + std::to_string(sc) + " for '" + q + "'");
          if (i == 0)
            std::printf("fulltext: '%s' is in %llu texts\n", q.c_str(),
                        static_cast<unsigned long long>(c));
        }
        auto strata_ft = pump<strata::query_page>(sys, *ft, strata::atom::query_v, 8, opts.seconds,
                                                  [&](uint64_t i) {
                                                    strata::query_request req;
                                                    req.pattern = R"({"where":{"field":"text","operator":"text","value":")"
                                                                  + query_words(i) + "\"}}";
                                                    req.limit = 10;
                                                    return req;
                                                  });
        auto sql_ft = sqlite_pump(fts_path, 2, opts.seconds, [&](sqlite_db& db, uint64_t i) {
          thread_local sqlite3_stmt* st = nullptr;
          thread_local sqlite3* owner = nullptr;
          if (owner != db.db) {
            st = db.prepare("SELECT key, text FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT 10");
            owner = db.db;
          }
          auto q = query_words(i);
          sqlite3_bind_text(st, 1, q.c_str(), -1, SQLITE_TRANSIENT);
          while (sqlite3_step(st) == SQLITE_ROW) {
          }
          sqlite3_reset(st);
        });
        rows.push_back({"fulltext top 10, 2 words (8 in flight)", strata_ft, sql_ft, "q/s",
                        "FTS5"});
        print_row(rows.back());
        caf::anon_send_exit(*ft, caf::exit_reason::user_shutdown);
      }

      // 5. Spatial: the 10 nearest points, against an R*Tree searched the same
      // way (a box grown until the circle inside it holds 10), with the
      // documents fetched by id.
      {
        auto count = std::max<uint64_t>(n / 5, 1000);
        strata::store_options po = so;
        po.data_dir = (base / "spatial").string();
        auto places = strata::spawn_store(sys, po);
        if (!places)
          fail(strata::render(places.error()));
        ask_void(sys, *places, strata::atom::create_index_v, index_on("at", "at", "spatial"));
        auto rt_path = (base / "rtree.sqlite").string();
        sqlite_db rt{rt_path};
        rt.exec("CREATE VIRTUAL TABLE pts USING rtree(id, minX, maxX, minY, maxY)");
        rt.exec("CREATE TABLE places(id INTEGER PRIMARY KEY, doc TEXT)");
        auto* ins_pt = rt.prepare("INSERT INTO pts VALUES(?,?,?,?,?)");
        auto* ins_doc = rt.prepare("INSERT INTO places VALUES(?,?)");
        rt.exec("BEGIN");
        std::mt19937_64 rng{5};
        std::uniform_real_distribution<double> coord{-180, 180};
        std::vector<strata::entry> batch;
        for (uint64_t i = 0; i < count; ++i) {
          auto x = coord(rng);
          auto y = coord(rng);
          auto d = strata::document::object();
          d.set("at", strata::document::array({strata::document::real(x), strata::document::real(y)}));
          d.set("name", strata::document::string("place " + std::to_string(i)));
          batch.push_back({"p" + std::to_string(i), strata::encode_doc(d)});
          auto json = strata::to_json(d);
          sqlite3_bind_int64(ins_pt, 1, static_cast<int64_t>(i));
          sqlite3_bind_double(ins_pt, 2, x);
          sqlite3_bind_double(ins_pt, 3, x);
          sqlite3_bind_double(ins_pt, 4, y);
          sqlite3_bind_double(ins_pt, 5, y);
          sqlite3_bind_int64(ins_doc, 1, static_cast<int64_t>(i));
          sqlite3_bind_text(ins_doc, 2, json.c_str(), -1, SQLITE_TRANSIENT);
          if (sqlite3_step(ins_pt) != SQLITE_DONE || sqlite3_step(ins_doc) != SQLITE_DONE)
            fail("rtree insert");
          sqlite3_reset(ins_pt);
          sqlite3_reset(ins_doc);
          if (batch.size() == 2000 || i + 1 == count) {
            ask_void(sys, *places, strata::atom::set_many_v, std::move(batch));
            batch.clear();
          }
        }
        rt.exec("COMMIT");
        sqlite3_finalize(ins_pt);
        sqlite3_finalize(ins_doc);
        wait_ready(sys, *places);
        auto center = [](uint64_t i) {
          return std::pair<double, double>{-170 + static_cast<double>((i * 7919) % 340),
                                           -170 + static_cast<double>((i * 104729) % 340)};
        };
        auto strata_knn = pump<strata::query_page>(sys, *places, strata::atom::query_v, 8, opts.seconds,
                                                   [&](uint64_t i) {
                                                     auto [x, y] = center(i);
                                                     strata::query_request req;
                                                     req.pattern = R"({"where":{"field":"at","operator":"near","value":[)"
                                                                   + std::to_string(x) + "," + std::to_string(y)
                                                                   + "]},\"limit\":10}";
                                                     req.limit = 10;
                                                     return req;
                                                   });
        auto density = static_cast<double>(count) / (360.0 * 360.0);
        auto sql_knn = sqlite_pump(rt_path, 2, opts.seconds, [&](sqlite_db& db, uint64_t i) {
          thread_local sqlite3_stmt* box = nullptr;
          thread_local sqlite3_stmt* doc = nullptr;
          thread_local sqlite3* owner = nullptr;
          if (owner != db.db) {
            box = db.prepare("SELECT id, minX, minY FROM pts WHERE minX >= ? AND maxX <= ? AND "
                             "minY >= ? AND maxY <= ?");
            doc = db.prepare("SELECT doc FROM places WHERE id = ?");
            owner = db.db;
          }
          auto [x, y] = center(i);
          auto w = std::sqrt(10.0 / density) ;
          std::vector<std::pair<double, int64_t>> near;
          for (;;) {
            near.clear();
            sqlite3_bind_double(box, 1, x - w);
            sqlite3_bind_double(box, 2, x + w);
            sqlite3_bind_double(box, 3, y - w);
            sqlite3_bind_double(box, 4, y + w);
            while (sqlite3_step(box) == SQLITE_ROW) {
              auto d = std::hypot(sqlite3_column_double(box, 1) - x, sqlite3_column_double(box, 2) - y);
              if (d <= w)
                near.emplace_back(d, sqlite3_column_int64(box, 0));
            }
            sqlite3_reset(box);
            if (near.size() >= 10 || w > 600)
              break;
            w *= 2;
          }
          std::partial_sort(near.begin(), near.begin() + std::min<size_t>(10, near.size()),
                            near.end());
          for (size_t k = 0; k < 10 && k < near.size(); ++k) {
            sqlite3_bind_int64(doc, 1, near[k].second);
            if (sqlite3_step(doc) != SQLITE_ROW)
              fail("rtree: no document");
            sqlite3_reset(doc);
          }
        });
        rows.push_back({"spatial 10 nearest (8 in flight)", strata_knn, sql_knn, "q/s",
                        "R*Tree"});
        print_row(rows.back());
        caf::anon_send_exit(*places, caf::exit_reason::user_shutdown);
      }

      // 6. Write throughput with 3 indexes, and with a unique index, against
      // none (fresh stores).
      auto writes = std::min<uint64_t>(n, 200000);
      double rate[3];
      for (int with = 0; with < 3; ++with) {
        strata::store_options wo = so;
        wo.data_dir = (base / ("w-" + std::to_string(with))).string();
        auto w = strata::spawn_store(sys, wo);
        if (!w)
          fail(strata::render(w.error()));
        if (with == 1)
          for (auto& ix : {index_on("by_day", "day"), index_on("by_customer", "customer"),
                           index_on("by_status", "status", "hash")})
            ask_void(sys, *w, strata::atom::create_index_v, ix);
        if (with == 2) {
          auto ix = index_on("id_once", "id");
          ix.unique = true;
          ask_void(sys, *w, strata::atom::create_index_v, ix);
        }
        t = clock_type::now();
        load_strata(sys, *w, writes, 7);
        rate[with] = static_cast<double>(writes) / since(t);
        caf::anon_send_exit(*w, caf::exit_reason::user_shutdown);
      }
      rows.push_back({"writes with 3 indexes vs none (set_many)", rate[1], rate[0], "docs/s",
                      "no index"});
      print_row(rows.back());
      rows.push_back({"writes with a unique index vs none (set_many)", rate[2], rate[0],
                      "docs/s", "no index"});
      print_row(rows.back());
      caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
    } catch (const std::exception& e) {
      std::cerr << "strata-query-bench: " << e.what() << "\n";
      rc = 1;
    }
  }
  fs::remove_all(base);
  return rc;
}

// strata-engines-bench: the same workload on every engine, in one run, with
// SQLite's raw C API beside strata-over-SQLite as that row's baseline, so
// that the ratio shows what strata adds on top of SQLite:
// - get: random point gets of 10 000 keys (16-byte keys, 100-byte values),
//   64 requests in flight; raw: one SELECT per get, one thread per core,
//   each with its own connection;
// - no-sync set and durable set: random overwrites from 64 writers, one set
//   in flight each; raw: one INSERT OR REPLACE per autocommit, one
//   connection (SQLite has one writer), synchronous NORMAL or FULL (WAL);
// - 2-key transaction: read two random keys and write both back,
//   SERIALIZABLE and durable, 16 clients; raw: BEGIN IMMEDIATE, two SELECTs,
//   two UPDATEs, COMMIT with synchronous=FULL, one connection.
// The graph engine runs against a Virtuoso server the benchmark starts on
// 127.0.0.1 with a fresh database, beside that server's own SPARQL protocol
// as its row's peer: a SELECT per get (one client per core), one update
// request per set (DELETE WHERE + INSERT DATA of the entry, one client), and
// for a transaction two SELECTs and one update of both keys.
// Rates are operations (or committed transactions) per second; aborted
// transactions are counted apart.
//
// Not a test; run by hand: build-release/bench/strata-engines-bench
// [--seconds S] [--keys N] [--engines lmdb,sqlite,json,memory,graph] [--dir DIR]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <sqlite3.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>

#include "backends/sparql.hpp"
#include "strata/all.hpp"
#include "strata/base64.hpp"
#include "tests/virtuoso.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct options {
  double seconds = 2;
  size_t keys = 10000;
  std::vector<std::string> engines{"lmdb", "sqlite", "json", "memory", "graph"};
  std::string dir;
};

/// The SPARQL endpoint of the benchmark's Virtuoso server.
std::string graph_url;

struct config : caf::actor_system_config {
  config() {
    strata::configure(*this);
  }
};

std::string key_of(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "k%015zu", i);
  return buf;
}

strata::bytes value_of(uint64_t n) {
  strata::bytes v(100, 'v');
  for (int i = 0; i < 8; ++i)
    v[static_cast<size_t>(i)] = static_cast<uint8_t>((n >> (8 * i)) & 0xff);
  return v;
}

clock_type::time_point deadline_after(double seconds) {
  return clock_type::now()
         + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
}

/// Runs `clients` event-based actors that each call `step(self, rng, next)`
/// until the time is up; `next(ok)` counts one operation and starts the
/// next. Returns completed operations per second and the failures.
using step_fn = std::function<void(caf::event_based_actor*, std::mt19937_64&,
                                   std::function<void(bool)>)>;

std::pair<double, uint64_t> run_clients(caf::actor_system& sys, size_t clients, double seconds,
                                        step_fn step) {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<size_t> running{clients};
  auto deadline = deadline_after(seconds);
  auto start = clock_type::now();
  for (size_t c = 0; c < clients; ++c)
    sys.spawn([&, c](caf::event_based_actor* self) {
      auto rng = std::make_shared<std::mt19937_64>(c * 7919 + 1);
      // The loop refers to itself weakly; the request in flight holds it.
      auto loop = std::make_shared<std::function<void()>>();
      std::weak_ptr<std::function<void()>> weak = loop;
      *loop = [=, &done, &failed, &running] {
        if (clock_type::now() >= deadline) {
          --running;
          return;
        }
        auto me = weak.lock();
        step(self, *rng, [me, &done, &failed](bool ok) {
          ++(ok ? done : failed);
          (*me)();
        });
      };
      (*loop)();
    });
  while (running > 0)
    std::this_thread::sleep_for(5ms);
  return {double(done) / std::chrono::duration<double>(clock_type::now() - start).count(),
          failed.load()};
}

struct figures {
  double get = 0, set = 0, durable = 0, txn = 0;
  uint64_t txn_aborted = 0;
};

strata::observable_storage_actor open(caf::actor_system& sys, const std::string& dir,
                                      const std::string& engine, strata::sync_mode mode) {
  strata::store_options so;
  so.data_dir = dir;
  so.engine = engine;
  so.sync = mode;
  so.map_size = uint64_t{256} << 20;
  so.log_level = "warning";
  if (engine == "graph")
    so.graph = strata::test::virtuoso_settings(graph_url);
  auto h = strata::spawn_store(sys, so);
  if (!h)
    throw std::runtime_error(engine + ": " + strata::render(h.error()));
  return *h;
}

void close(caf::actor_system& sys, strata::observable_storage_actor& store,
           const std::string& dir) {
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  store = nullptr;
  strata::await_closed(dir, std::chrono::seconds{60});
  static_cast<void>(sys);
}

figures run_strata(caf::actor_system& sys, const std::string& dir, const std::string& engine,
                   const options& opts) {
  figures f;
  auto n = opts.keys;
  {
    // Load, then the reads and no-sync writes.
    auto store = open(sys, dir, engine, strata::sync_mode::nosync);
    {
      caf::scoped_actor self{sys};
      for (size_t i = 0; i < n; i += 1000) {
        std::vector<strata::entry> batch;
        for (size_t k = i; k < std::min(n, i + 1000); ++k)
          batch.push_back({key_of(k), value_of(k)});
        caf::error err;
        self->request(store, 60s, strata::atom::set_many_v, std::move(batch))
          .receive([] {}, [&](caf::error& e) { err = std::move(e); });
        if (err)
          throw std::runtime_error(engine + " load: " + strata::render(err));
      }
    }
    f.get = run_clients(sys, 64, opts.seconds,
                        [&, n](caf::event_based_actor* self, std::mt19937_64& rng,
                               std::function<void(bool)> next) {
                          self->request(store, caf::infinite, strata::atom::get_v, key_of(rng() % n))
                            .then([next](strata::maybe_bytes& v) { next(static_cast<bool>(v)); },
                                  [next](caf::error&) { next(false); });
                        })
              .first;
    f.set = run_clients(sys, 64, opts.seconds,
                        [&, n](caf::event_based_actor* self, std::mt19937_64& rng,
                               std::function<void(bool)> next) {
                          auto i = rng() % n;
                          self->request(store, caf::infinite, strata::atom::set_v, key_of(i),
                                        value_of(rng()))
                            .then([next] { next(true); }, [next](caf::error&) { next(false); });
                        })
              .first;
    close(sys, store, dir);
  }
  auto store = open(sys, dir, engine, strata::sync_mode::durable);
  f.durable = run_clients(sys, 64, opts.seconds,
                          [&, n](caf::event_based_actor* self, std::mt19937_64& rng,
                                 std::function<void(bool)> next) {
                            self->request(store, caf::infinite, strata::atom::set_v,
                                          key_of(rng() % n), value_of(rng()))
                              .then([next] { next(true); }, [next](caf::error&) { next(false); });
                          })
                .first;
  auto txn = run_clients(
    sys, 16, opts.seconds,
    [&, n](caf::event_based_actor* self, std::mt19937_64& rng, std::function<void(bool)> next) {
      auto a = key_of(rng() % n);
      auto b = key_of(rng() % n);
      auto v = value_of(rng());
      auto fail = [next](caf::error&) { next(false); };
      self->request(store, caf::infinite, strata::atom::begin_v, strata::txn_options{})
        .then(
          [=](strata::transaction_actor& tx) {
            self->request(tx, caf::infinite, strata::atom::get_v, a)
              .then(
                [=](strata::maybe_bytes&) {
                  self->request(tx, caf::infinite, strata::atom::get_v, b)
                    .then(
                      [=](strata::maybe_bytes&) {
                        self->request(tx, caf::infinite, strata::atom::set_v, a, v)
                          .then(
                            [=] {
                              self->request(tx, caf::infinite, strata::atom::set_v, b, v)
                                .then(
                                  [=] {
                                    self->request(tx, caf::infinite, strata::atom::commit_v)
                                      .then([next] { next(true); }, fail);
                                  },
                                  fail);
                            },
                            fail);
                      },
                      fail);
                },
                fail);
          },
          fail);
    });
  f.txn = txn.first;
  f.txn_aborted = txn.second;
  close(sys, store, dir);
  return f;
}

/// The SPARQL protocol itself on the same workload: the peer of the graph
/// rows. One resource per key with its value, as the graph engine writes it.
class raw_sparql {
public:
  raw_sparql() : graph_("urn:strata:bench:raw-" + std::to_string(::getpid())) {
  }

  void load(size_t n) {
    strata::sparql_client c{settings()};
    for (size_t i = 0; i < n; i += 1000) {
      std::string triples;
      for (size_t k = i; k < std::min(n, i + 1000); ++k)
        triples += triple(k, k);
      c.update("INSERT DATA { GRAPH <" + graph_ + "> { " + triples + " } }");
    }
  }

  double gets(size_t n, double seconds, unsigned threads) {
    std::atomic<uint64_t> done{0};
    auto deadline = deadline_after(seconds);
    auto start = clock_type::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        strata::sparql_client c{settings()};
        std::mt19937_64 rng{t + 1};
        while (clock_type::now() < deadline) {
          c.query("SELECT ?v WHERE { GRAPH <" + graph_ + "> { " + subject(rng() % n)
                  + " <urn:strata:value> ?v } }");
          ++done;
        }
      });
    for (auto& th : pool)
      th.join();
    return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
  }

  double sets(size_t n, double seconds) {
    strata::sparql_client c{settings()};
    std::mt19937_64 rng{5};
    uint64_t done = 0;
    auto deadline = deadline_after(seconds);
    auto start = clock_type::now();
    while (clock_type::now() < deadline) {
      auto k = rng() % n;
      c.update("DELETE WHERE { GRAPH <" + graph_ + "> { " + subject(k) + " ?p ?o } } ;\n"
               + "INSERT DATA { GRAPH <" + graph_ + "> { " + triple(k, rng()) + " } }");
      ++done;
    }
    return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
  }

  double transactions(size_t n, double seconds) {
    strata::sparql_client c{settings()};
    std::mt19937_64 rng{9};
    uint64_t done = 0;
    auto deadline = deadline_after(seconds);
    auto start = clock_type::now();
    while (clock_type::now() < deadline) {
      auto a = rng() % n;
      auto b = rng() % n;
      for (auto k : {a, b})
        c.query("SELECT ?v WHERE { GRAPH <" + graph_ + "> { " + subject(k)
                + " <urn:strata:value> ?v } }");
      auto v = rng();
      c.update("DELETE { GRAPH <" + graph_ + "> { ?s ?p ?o } } WHERE { GRAPH <" + graph_
               + "> { VALUES ?s { " + subject(a) + " " + subject(b) + " } ?s ?p ?o } } ;\n"
               + "INSERT DATA { GRAPH <" + graph_ + "> { " + triple(a, v) + triple(b, v)
               + " } }");
      ++done;
    }
    return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
  }

private:
  static strata::graph_settings settings() {
    return strata::test::virtuoso_settings(graph_url);
  }

  std::string subject(size_t k) const {
    return "<" + graph_ + "/data/" + key_of(k) + ">";
  }

  std::string triple(size_t k, uint64_t v) const {
    auto value = value_of(v);
    std::string out = subject(k) + " <urn:strata:value> \"";
    strata::append_base64(out, {reinterpret_cast<const char*>(value.data()), value.size()});
    return out + "\" .\n";
  }

  std::string graph_;
};

/// SQLite's C API on the same workload: the raw baseline of the sqlite rows.
class raw_sqlite {
public:
  explicit raw_sqlite(const std::string& path) : path_(path) {
    db_ = connect();
    exec(db_, "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
  }

  ~raw_sqlite() {
    sqlite3_close(db_);
  }

  void load(size_t n) {
    exec(db_, "BEGIN");
    auto put = prepare(db_, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)");
    for (size_t i = 0; i < n; ++i) {
      auto k = key_of(i);
      auto v = value_of(i);
      step_put(put, k, v);
    }
    sqlite3_finalize(put);
    exec(db_, "COMMIT");
  }

  double gets(size_t n, double seconds, unsigned threads) {
    std::atomic<uint64_t> done{0};
    auto deadline = deadline_after(seconds);
    auto start = clock_type::now();
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        auto db = connect();
        auto get = prepare(db, "SELECT v FROM kv WHERE k = ?1");
        std::mt19937_64 rng{t + 1};
        uint64_t mine = 0;
        while (clock_type::now() < deadline) {
          for (int i = 0; i < 64; ++i) {
            auto k = key_of(rng() % n);
            sqlite3_bind_blob(get, 1, k.data(), static_cast<int>(k.size()), SQLITE_STATIC);
            if (sqlite3_step(get) != SQLITE_ROW)
              throw std::runtime_error("raw get failed");
            strata::bytes copy(static_cast<const uint8_t*>(sqlite3_column_blob(get, 0)),
                               static_cast<const uint8_t*>(sqlite3_column_blob(get, 0))
                                 + sqlite3_column_bytes(get, 0));
            sqlite3_reset(get);
            ++mine;
          }
        }
        done += mine;
        sqlite3_finalize(get);
        sqlite3_close(db);
      });
    for (auto& t : ts)
      t.join();
    return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
  }

  double sets(size_t n, double seconds, bool durable) {
    exec(db_, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    auto put = prepare(db_, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)");
    std::mt19937_64 rng{3};
    uint64_t done = 0;
    auto deadline = deadline_after(seconds);
    auto start = clock_type::now();
    while (clock_type::now() < deadline) {
      auto k = key_of(rng() % n);
      auto v = value_of(rng());
      step_put(put, k, v);
      ++done;
    }
    sqlite3_finalize(put);
    return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
  }

  double transactions(size_t n, double seconds) {
    exec(db_, "PRAGMA synchronous=FULL");
    auto get = prepare(db_, "SELECT v FROM kv WHERE k = ?1");
    auto put = prepare(db_, "UPDATE kv SET v = ?2 WHERE k = ?1");
    std::mt19937_64 rng{5};
    uint64_t done = 0;
    auto deadline = deadline_after(seconds);
    auto start = clock_type::now();
    while (clock_type::now() < deadline) {
      exec(db_, "BEGIN IMMEDIATE");
      auto a = key_of(rng() % n);
      auto b = key_of(rng() % n);
      auto v = value_of(rng());
      for (auto* k : {&a, &b}) {
        sqlite3_bind_blob(get, 1, k->data(), static_cast<int>(k->size()), SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW)
          throw std::runtime_error("raw transaction read failed");
        sqlite3_reset(get);
      }
      for (auto* k : {&a, &b})
        step_put(put, *k, v);
      exec(db_, "COMMIT");
      ++done;
    }
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
  }

private:
  sqlite3* connect() const {
    sqlite3* db = nullptr;
    if (sqlite3_open(path_.c_str(), &db) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path_);
    // As the sqlite engine runs it: WAL, its default cache.
    exec(db, "PRAGMA journal_mode=WAL");
    sqlite3_busy_timeout(db, 10000);
    return db;
  }

  static void exec(sqlite3* db, const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string{"sqlite: "} + sql + ": " + sqlite3_errmsg(db));
  }

  static sqlite3_stmt* prepare(sqlite3* db, const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string{"sqlite: "} + sql + ": " + sqlite3_errmsg(db));
    return s;
  }

  void step_put(sqlite3_stmt* put, const std::string& k, const strata::bytes& v) {
    sqlite3_bind_blob(put, 1, k.data(), static_cast<int>(k.size()), SQLITE_STATIC);
    sqlite3_bind_blob(put, 2, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    if (sqlite3_step(put) != SQLITE_DONE)
      throw std::runtime_error(std::string{"sqlite put: "} + sqlite3_errmsg(db_));
    sqlite3_reset(put);
  }

  std::string path_;
  sqlite3* db_ = nullptr;
};

void row(const std::string& what, double value, const char* unit, double base,
         const std::string& vs) {
  if (base > 0)
    std::printf("%-40s %12.0f %-8s ratio %6.2fx %s\n", what.c_str(), value, unit, value / base,
                vs.c_str());
  else
    std::printf("%-40s %12.0f %-8s\n", what.c_str(), value, unit);
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string{argv[++i]} : std::string{}; };
    if (a == "--seconds") {
      opts.seconds = std::stod(next());
    } else if (a == "--keys") {
      opts.keys = std::stoul(next());
    } else if (a == "--dir") {
      opts.dir = next();
    } else if (a == "--engines") {
      opts.engines.clear();
      std::stringstream list{next()};
      for (std::string e; std::getline(list, e, ',');)
        opts.engines.push_back(e);
    } else {
      std::cerr << "usage: strata-engines-bench [--seconds S] [--keys N] "
                   "[--engines lmdb,sqlite,json,memory,graph] [--dir DIR]\n";
      return a == "--help" ? 0 : 2;
    }
  }
  char tmpl[] = "/tmp/strata-engines-bench-XXXXXX";
  auto base = opts.dir.empty() ? std::string{::mkdtemp(tmpl)} : opts.dir;
  config cfg;
  caf::actor_system sys{cfg};
  try {
    figures raw;
    {
      raw_sqlite r{base + "/raw.sqlite"};
      r.load(opts.keys);
      raw.get = r.gets(opts.keys, opts.seconds, std::max(2u, std::thread::hardware_concurrency()));
      raw.set = r.sets(opts.keys, opts.seconds, false);
      raw.durable = r.sets(opts.keys, opts.seconds, true);
      raw.txn = r.transactions(opts.keys, opts.seconds);
    }
    // The graph engine's server, and its own protocol as the graph rows' peer.
    std::unique_ptr<strata::test::virtuoso> server;
    figures sparql;
    auto graph = std::find(opts.engines.begin(), opts.engines.end(), "graph")
                 != opts.engines.end();
    if (graph) {
      server = std::make_unique<strata::test::virtuoso>(
        strata::test::virtuoso::start(base + "/virtuoso", false));
      graph_url = server->url();
      raw_sparql r;
      r.load(opts.keys);
      sparql.get = r.gets(opts.keys, opts.seconds, std::max(2u, std::thread::hardware_concurrency()));
      sparql.set = r.sets(opts.keys, opts.seconds);
      sparql.durable = sparql.set; // the server commits each request alike
      sparql.txn = r.transactions(opts.keys, opts.seconds);
    }
    std::map<std::string, figures> by_engine;
    for (auto& e : opts.engines)
      by_engine[e] = run_strata(sys, base + "/" + e, e, opts);
    auto show = [&](const char* op, double figures::*field, const char* unit) {
      row(std::string{"raw SQLite C API: "} + op, raw.*field, unit, 0, "");
      if (graph)
        row(std::string{"raw SPARQL protocol: "} + op, sparql.*field, unit, 0, "");
      for (auto& e : opts.engines) {
        auto& f = by_engine[e];
        if (e == "sqlite")
          row("strata " + e + ": " + op, f.*field, unit, raw.*field, "vs raw SQLite");
        else if (e == "graph")
          row("strata " + e + ": " + op, f.*field, unit, sparql.*field, "vs raw SPARQL");
        else if (e != "lmdb" && by_engine.count("lmdb"))
          row("strata " + e + ": " + op, f.*field, unit, by_engine["lmdb"].*field,
              "vs strata lmdb");
        else
          row("strata " + e + ": " + op, f.*field, unit, 0, "");
      }
    };
    std::printf("%zu keys, 16-byte keys, 100-byte values, %.1f s per figure\n", opts.keys,
                opts.seconds);
    show("get", &figures::get, "gets/s");
    show("no-sync set", &figures::set, "sets/s");
    show("durable set", &figures::durable, "sets/s");
    show("2-key transaction", &figures::txn, "txn/s");
    for (auto& e : opts.engines)
      std::printf("strata %s: %llu transactions aborted (conflicts)\n", e.c_str(),
                  static_cast<unsigned long long>(by_engine[e].txn_aborted));
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  if (opts.dir.empty())
    std::system(("rm -rf " + base).c_str());
  return 0;
}

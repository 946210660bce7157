// strata-bench: what the actor layer costs. Runs a strata store in-process and
// raw LMDB side by side in the same run, on the same data shape (16-byte keys,
// 100-byte values), and prints strata/raw ratios next to the project's targets.
//
//   build/bench/strata-bench                  # 1M keys, about 25 s
//   build/bench/strata-bench --keys 100000    # quick run
//   build/bench/strata-bench --help           # all flags; other flags go to CAF,
//                                             # e.g. --scheduler.max-threads=2
//
// Measurements (raw LMDB always uses one thread):
// - point get: raw mdb_get with a read txn reset/renewed per get, the value
//   copied out; strata clients keep 64 atom::get requests in flight.
// - get_many: 100 random keys per raw read txn; strata atom::get_many requests
//   of 100 keys, 8 in flight. Rates are keys/s.
// - durable set: raw one put per commit with default flags (two syncs per
//   commit); strata sync_mode::durable with 64 writers, one set in flight each.
// - no-sync set: the same with MDB_NOSYNC and sync_mode::nosync.
// Writes update random existing keys: raw LMDB writes to its loaded
// environment (reopened without MDB_NOSYNC for durable sets), strata to its
// loaded store (reopened in durable mode).
// Each strata run also prints the CPU time the process spent per request
// (all threads, the clients' included; a remote shard node's is not).
//
// The program exits non-zero only on errors (a failed request, a missing or
// wrong value, an LMDB failure), never because a target was missed.

#include <algorithm>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <unordered_map>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <caf/actor_registry.hpp>
#include <caf/io/middleman.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/type_id.hpp>

#include <sqlite3.h>

#include "backends/shard_core.hpp"
#include "backends/lmdb.hpp"
#include "strata/routing.hpp"
#include "strata/actors.hpp"
#include "strata/error.hpp"
#include "strata/options.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"
#include "strata/messages/txn.hpp"

namespace {

using bench_clock = std::chrono::steady_clock;
using strata::bytes;
using strata::maybe_bytes;
using strata::storage_actor;
namespace atom = strata::atom;
namespace lmdb = strata::lmdb;

// -- settings -------------------------------------------------------------------

constexpr size_t key_size = 16;
constexpr size_t value_size = 100;
constexpr size_t load_chunk = 10000;

/// Command line settings; anything not listed here goes to CAF.
struct bench_options {
  /// Keys in the dataset.
  uint64_t keys = 1000000;
  /// Shards of the strata store.
  uint32_t shards = 4;
  /// Duration of each strata run and of each raw read run.
  double seconds = 3.0;
  /// Read measurements alternate raw and strata this many times.
  size_t rounds = 3;
  /// Duration of each raw write run.
  double raw_write_seconds = 2.0;
  /// Point gets in flight, shared by `get_clients` client actors.
  size_t get_in_flight = 64;
  size_t get_clients = 2;
  /// Keys per get_many request, and such requests in flight.
  size_t many_keys = 100;
  size_t many_in_flight = 8;
  /// Writer actors, one set in flight each.
  size_t writers = 64;
  /// Timeout of the clients' requests; 0: none. CAF 0.17 never cancels the
  /// timer of an answered request, so every finite timeout costs a timer that
  /// lives until it expires (a third of the read rate in profiles). A client
  /// of a store in its own process needs none: if the store dies, pending
  /// requests fail at once with request_receiver_down. The store's own
  /// requests between its actors keep finite timeouts.
  std::chrono::milliseconds timeout{0};
  /// Parent of the temporary directories; empty: $TMPDIR or /tmp.
  std::string dir;
  /// What to measure: "kv" (reads and writes), "txn" (transactions), "all".
  std::string suite = "all";
  /// Concurrent clients of the many-client transaction runs.
  size_t txn_clients = 32;
  /// Keys the transactions pick from (few conflicts at 10k).
  uint64_t txn_keys = 10000;
  /// Only transactions over this many shards (1 or 2); 0: both.
  uint32_t txn_shards = 0;
  /// At most this many keys are loaded onto the remote suite's servers.
  uint64_t remote_keys = 100000;
  /// Set in the remote suite's child processes: "bare" or "node".
  std::string serve;
  /// The shard node publishes behind strata's frame guard (strata::publish,
  /// as strata-node does) rather than CAF's plain publish.
  bool port_guard = true;
  /// The sustained suite: records, value size, clients, seconds per run.
  uint64_t sustained_keys = 200000;
  size_t sustained_value = 1000;
  size_t sustained_clients = 32;
  double sustained_seconds = 20;
  /// The single-client comparison: records, seconds per side and round.
  uint64_t single_keys = 100000;
  double single_seconds = 3;
};

void print_usage() {
  std::cout
    << "usage: strata-bench [flags] [CAF options such as "
       "--scheduler.max-threads=2]\n"
       "  --keys N            keys in the dataset (default 1000000)\n"
       "  --shards N          shards of the strata store (default 4)\n"
       "  --seconds S         time of each row, split over the rounds of reads\n"
       "                      and durable sets; every transaction round and\n"
       "                      no-sync set run takes this long (default 3)\n"
       "  --raw-write-seconds S  duration of each raw write run (default 2)\n"
       "  --rounds N          raw and strata alternate N times for reads, durable\n"
       "                      sets and transactions (default 3)\n"
       "  --get-in-flight N   point gets in flight (default 64)\n"
       "  --get-clients N     client actors sharing them (default 2)\n"
       "  --many-keys N       keys per get_many (default 100)\n"
       "  --many-in-flight N  get_many requests in flight (default 8)\n"
       "  --writers N         writer actors, one set in flight each "
       "(default 64)\n"
       "  --timeout S         timeout of client requests (default: none)\n"
       "  --suite S           kv, txn, remote, sustained, single or all (default all)\n"
       "  --txn-clients N     clients of the many-client transaction runs "
       "(default 32)\n"
       "  --txn-keys N        keys the transactions pick from (default 10000)\n"
       "  --txn-shards N      only transactions over N shards, 1 or 2 (default: both)\n"
       "  --sustained-seconds S  length of each sustained run (default 20)\n"
       "  --sustained-keys N  records of the sustained runs (default 200000)\n"
       "  --single-keys N     records of the single-client runs (default 100000)\n"
       "  --single-seconds S  each single-client run, one of two rounds (default 3)\n"
       "  --port-guard on|off the remote suite's shard node checks frames before\n"
       "                      CAF reads them, as strata-node does (default on)\n"
       "  --dir D             where the temporary directories go (default "
       "$TMPDIR or /tmp)\n";
}

/// A failure that ends the run.
struct bench_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// -- data -----------------------------------------------------------------------

/// A small, fast generator (splitmix64); each client gets its own seed.
class rng {
public:
  explicit rng(uint64_t seed = 0) : state_(seed) {
    // nop
  }

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  uint64_t below(uint64_t n) {
    return next() % n;
  }

private:
  uint64_t state_;
};

/// Writes key `i` ("k" and 15 zero-padded digits) to `out[0..16)`.
void format_key(uint64_t i, char* out) {
  out[0] = 'k';
  for (size_t j = key_size - 1; j >= 1; --j) {
    out[j] = static_cast<char>('0' + i % 10);
    i /= 10;
  }
}

std::string make_key(uint64_t i) {
  std::string result(key_size, 'k');
  format_key(i, result.data());
  return result;
}

/// The value of key `i`: its index in the first 8 bytes, then filler. Writes
/// store the same values, so every read can check what it got.
bytes value_of(uint64_t i) {
  bytes result(value_size, 'v');
  std::memcpy(result.data(), &i, sizeof(i));
  return result;
}

/// Why the value read for key `i` is wrong, or nullptr if it is right.
const char* value_problem(const uint8_t* data, size_t size, uint64_t i) {
  if (size != value_size)
    return "value has the wrong size";
  if (std::memcmp(data, &i, sizeof(i)) != 0)
    return "value belongs to another key";
  return nullptr;
}

// -- results --------------------------------------------------------------------

/// What one side of one measurement achieved.
struct result {
  double rate = 0;       // items per second
  uint64_t items = 0;    // keys read or written
  uint64_t requests = 0; // requests (or raw operations) that succeeded
  double seconds = 0;
  uint64_t p50_ns = 0;
  uint64_t p99_ns = 0;
  uint64_t errors = 0;
  std::string first_error;
  /// CPU time of the whole process (every thread, clients included) per
  /// request; 0 where not measured (raw runs).
  double cpu_us = 0;
};

/// CPU time the process used so far (user + system, all threads).
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

uint64_t percentile(std::vector<uint64_t>& xs, double p) {
  if (xs.empty())
    return 0;
  auto n = static_cast<size_t>(p * static_cast<double>(xs.size() - 1));
  std::nth_element(xs.begin(), xs.begin() + static_cast<ptrdiff_t>(n), xs.end());
  return xs[n];
}

result summarize(uint64_t items, uint64_t requests, bench_clock::duration elapsed,
                 std::vector<uint64_t>& latencies) {
  result r;
  r.items = items;
  r.requests = requests;
  r.seconds = std::chrono::duration<double>(elapsed).count();
  r.rate = r.seconds > 0 ? static_cast<double>(items) / r.seconds : 0;
  r.p50_ns = percentile(latencies, 0.50);
  r.p99_ns = percentile(latencies, 0.99);
  return r;
}

uint64_t ns_between(bench_clock::time_point from, bench_clock::time_point to) {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count());
}

bench_clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<bench_clock::duration>(
    std::chrono::duration<double>(seconds));
}

std::string format_rate(double x) {
  char buf[32];
  if (x >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.2f M/s", x / 1e6);
  else if (x >= 1e4)
    std::snprintf(buf, sizeof(buf), "%.0f k/s", x / 1e3);
  else if (x >= 1e3)
    std::snprintf(buf, sizeof(buf), "%.1f k/s", x / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f /s", x);
  return buf;
}

std::string format_latency(uint64_t ns) {
  char buf[32];
  if (ns >= 10000000)
    std::snprintf(buf, sizeof(buf), "%.0f ms", static_cast<double>(ns) / 1e6);
  else if (ns >= 1000000)
    std::snprintf(buf, sizeof(buf), "%.1f ms", static_cast<double>(ns) / 1e6);
  else if (ns >= 10000)
    std::snprintf(buf, sizeof(buf), "%.0f us", static_cast<double>(ns) / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.1f us", static_cast<double>(ns) / 1e3);
  return buf;
}

void print_result(const char* what, const char* side, const result& r) {
  auto lat = [](uint64_t ns) {
    return ns == 0 ? std::string{"-"} : format_latency(ns);
  };
  std::printf("  %-30s %-6s %12s  p50 %9s  p99 %9s  (%llu requests in %.2f s",
              what, side, format_rate(r.rate).c_str(), lat(r.p50_ns).c_str(),
              lat(r.p99_ns).c_str(),
              static_cast<unsigned long long>(r.requests), r.seconds);
  if (r.cpu_us > 0)
    std::printf(", %.0f us of this process's CPU each", r.cpu_us);
  if (r.errors > 0)
    std::printf(", %llu ERRORS, first: %s",
                static_cast<unsigned long long>(r.errors),
                r.first_error.c_str());
  std::printf(")\n");
  std::fflush(stdout);
}

// -- temporary directories --------------------------------------------------------

/// Every temporary directory still present, for `abandon`.
std::vector<std::string>& live_dirs() {
  static std::vector<std::string> result;
  return result;
}

/// A fresh directory (mkdtemp) removed with its content at scope exit.
class temp_dir {
public:
  explicit temp_dir(const std::string& parent) {
    namespace fs = std::filesystem;
    fs::path base = parent;
    if (base.empty()) {
      auto env = std::getenv("TMPDIR");
      base = env != nullptr && *env != '\0' ? env : "/tmp";
    }
    std::error_code ec;
    fs::create_directories(base, ec);
    auto tmpl = (base / "strata-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw bench_error("cannot create a temporary directory under "
                        + base.string() + ": " + std::strerror(errno));
    path_ = tmpl;
    live_dirs().push_back(path_);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    auto& dirs = live_dirs();
    dirs.erase(std::remove(dirs.begin(), dirs.end(), path_), dirs.end());
  }

  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
};

/// Ends the process when actors cannot be waited for (the actor system's
/// destructor would block on them forever).
[[noreturn]] void abandon(const std::string& why) {
  std::fprintf(stderr, "strata-bench: %s; giving up\n", why.c_str());
  for (auto& dir : live_dirs()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::fflush(nullptr);
  std::_Exit(1);
}

// -- raw LMDB ------------------------------------------------------------------------

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS)
    lmdb::raise(rc, what);
}

/// Opens the main database of `env`.
MDB_dbi open_main_db(const lmdb::env& env) {
  auto t = lmdb::txn::write(env);
  MDB_dbi dbi = 0;
  check(mdb_dbi_open(t.get(), nullptr, 0, &dbi), "cannot open the main database");
  t.commit();
  return dbi;
}

/// Loads keys 0..n-1 in order, 10k puts per transaction.
result raw_load(const lmdb::env& env, MDB_dbi dbi, uint64_t n) {
  auto start = bench_clock::now();
  char key[key_size];
  uint64_t i = 0;
  while (i < n) {
    auto t = lmdb::txn::write(env);
    for (auto end = std::min(n, i + load_chunk); i < end; ++i) {
      format_key(i, key);
      auto value = value_of(i);
      MDB_val k{key_size, key};
      MDB_val v{value.size(), value.data()};
      check(mdb_put(t.get(), dbi, &k, &v, 0), "raw load: put failed");
    }
    t.commit();
  }
  std::vector<uint64_t> none;
  return summarize(n, n / load_chunk, bench_clock::now() - start, none);
}

/// Gets of random keys for `seconds`, each in a read txn renewed for it and
/// reset after, the value copied out as a user must.
result raw_point_get(const lmdb::env& env, MDB_dbi dbi, uint64_t keys,
                     double seconds) {
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &txn),
        "raw get: cannot begin read txn");
  mdb_txn_reset(txn);
  rng gen{1};
  char key[key_size];
  std::vector<uint64_t> latencies;
  latencies.reserve(static_cast<size_t>(seconds * 2e6));
  uint64_t errors = 0;
  const char* first_error = nullptr;
  auto start = bench_clock::now();
  auto deadline = start + to_duration(seconds);
  auto last = start;
  for (;;) {
    auto t0 = bench_clock::now();
    if (t0 >= deadline)
      break;
    auto i = gen.below(keys);
    format_key(i, key);
    check(mdb_txn_renew(txn), "raw get: cannot renew read txn");
    MDB_val k{key_size, key};
    MDB_val v;
    auto rc = mdb_get(txn, dbi, &k, &v);
    const char* problem = "key not found";
    if (rc == MDB_SUCCESS) {
      auto first = static_cast<const uint8_t*>(v.mv_data);
      bytes value(first, first + v.mv_size);
      problem = value_problem(value.data(), value.size(), i);
    } else if (rc != MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      check(rc, "raw get failed");
    }
    mdb_txn_reset(txn);
    last = bench_clock::now();
    if (problem == nullptr)
      latencies.push_back(ns_between(t0, last));
    else if (errors++ == 0)
      first_error = problem;
  }
  mdb_txn_abort(txn);
  auto n = latencies.size();
  auto r = summarize(n, n, last - start, latencies);
  r.errors = errors;
  r.first_error = first_error != nullptr ? first_error : "";
  return r;
}

/// Reads `batch` random keys per read txn for `seconds`, values copied out.
result raw_get_many(const lmdb::env& env, MDB_dbi dbi, uint64_t keys,
                    size_t batch, double seconds) {
  MDB_txn* txn = nullptr;
  check(mdb_txn_begin(env.get(), nullptr, MDB_RDONLY, &txn),
        "raw get_many: cannot begin read txn");
  mdb_txn_reset(txn);
  rng gen{2};
  char key[key_size];
  std::vector<uint64_t> latencies;
  uint64_t items = 0;
  uint64_t errors = 0;
  const char* first_error = nullptr;
  auto start = bench_clock::now();
  auto deadline = start + to_duration(seconds);
  auto last = start;
  for (;;) {
    auto t0 = bench_clock::now();
    if (t0 >= deadline)
      break;
    std::vector<std::optional<bytes>> values;
    values.reserve(batch);
    const char* problem = nullptr;
    check(mdb_txn_renew(txn), "raw get_many: cannot renew read txn");
    for (size_t j = 0; j < batch; ++j) {
      auto i = gen.below(keys);
      format_key(i, key);
      MDB_val k{key_size, key};
      MDB_val v;
      auto rc = mdb_get(txn, dbi, &k, &v);
      if (rc == MDB_SUCCESS) {
        auto first = static_cast<const uint8_t*>(v.mv_data);
        values.emplace_back(bytes(first, first + v.mv_size));
        if (auto p = value_problem(values.back()->data(), v.mv_size, i))
          problem = p;
      } else if (rc == MDB_NOTFOUND) {
        values.emplace_back(std::nullopt);
        problem = "key not found";
      } else {
        mdb_txn_abort(txn);
        check(rc, "raw get_many failed");
      }
    }
    mdb_txn_reset(txn);
    last = bench_clock::now();
    if (problem == nullptr) {
      latencies.push_back(ns_between(t0, last));
      items += values.size();
    } else if (errors++ == 0) {
      first_error = problem;
    }
  }
  mdb_txn_abort(txn);
  auto requests = latencies.size();
  auto r = summarize(items, requests, last - start, latencies);
  r.errors = errors;
  r.first_error = first_error != nullptr ? first_error : "";
  return r;
}

/// One put of a random key per write transaction, for `seconds`.
result raw_put_per_commit(const lmdb::env& env, MDB_dbi dbi, uint64_t keys,
                          double seconds) {
  rng gen{3};
  char key[key_size];
  std::vector<uint64_t> latencies;
  auto start = bench_clock::now();
  auto deadline = start + to_duration(seconds);
  auto last = start;
  for (;;) {
    auto t0 = bench_clock::now();
    if (t0 >= deadline)
      break;
    auto i = gen.below(keys);
    format_key(i, key);
    auto value = value_of(i);
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env.get(), nullptr, 0, &txn),
          "raw put: cannot begin write txn");
    MDB_val k{key_size, key};
    MDB_val v{value.size(), value.data()};
    if (auto rc = mdb_put(txn, dbi, &k, &v, 0); rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      check(rc, "raw put failed");
    }
    check(mdb_txn_commit(txn), "raw commit failed");
    last = bench_clock::now();
    latencies.push_back(ns_between(t0, last));
  }
  auto n = latencies.size();
  return summarize(n, n, last - start, latencies);
}

// -- strata clients ------------------------------------------------------------------

/// What one client actor saw.
struct client_report {
  uint64_t requests = 0;
  uint64_t items = 0;
  uint64_t errors = 0;
  std::string first_error;
  std::vector<uint64_t> latencies; // ns, successful requests only
  bench_clock::time_point finished;
};

/// Gathers the clients' reports; the main thread waits on it.
class collector {
public:
  explicit collector(size_t clients) : pending_(clients) {
    // nop
  }

  void add(client_report&& r) {
    std::lock_guard<std::mutex> guard{mtx_};
    total_.requests += r.requests;
    total_.items += r.items;
    total_.errors += r.errors;
    if (total_.first_error.empty())
      total_.first_error = std::move(r.first_error);
    total_.latencies.insert(total_.latencies.end(), r.latencies.begin(),
                            r.latencies.end());
    total_.finished = std::max(total_.finished, r.finished);
    if (--pending_ == 0)
      cv_.notify_all();
  }

  /// Blocks until every client reported or `max` passed; false on timeout.
  bool wait_for(bench_clock::duration max) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, max, [this] { return pending_ == 0; });
  }

  client_report take() {
    std::lock_guard<std::mutex> guard{mtx_};
    return std::move(total_);
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t pending_;
  client_report total_;
};

template <class Work>
struct client_state {
  static inline const char* name = "strata-bench.client";
  Work work;
  std::shared_ptr<collector> out;
  bench_clock::time_point deadline;
  size_t outstanding = 0;
  bool stopped = false;
  rng gen;
  client_report report;
};

template <class Work>
using client_actor = caf::stateful_actor<client_state<Work>>;

/// Sends the next request unless the run is over.
template <class Work>
void send_next(client_actor<Work>* self) {
  auto& st = self->state;
  if (st.stopped)
    return;
  if (bench_clock::now() >= st.deadline || !st.work.send(self, st.gen)) {
    st.stopped = true;
    return;
  }
  ++st.outstanding;
}

/// Reports and quits once the run is over and every answer is in.
template <class Work>
void finish_if_idle(client_actor<Work>* self) {
  auto& st = self->state;
  if (!st.stopped || st.outstanding > 0)
    return;
  st.report.finished = bench_clock::now();
  st.out->add(std::move(st.report));
  self->quit();
}

/// Books an answer (`problem` is empty for a good one) and keeps the number of
/// requests in flight.
template <class Work>
void answered(client_actor<Work>* self, bench_clock::time_point sent,
              uint64_t items, std::string problem) {
  auto now = bench_clock::now();
  auto& st = self->state;
  --st.outstanding;
  if (problem.empty()) {
    ++st.report.requests;
    st.report.items += items;
    st.report.latencies.push_back(ns_between(sent, now));
  } else if (st.report.errors++ == 0) {
    st.report.first_error = std::move(problem);
  }
  send_next(self);
  finish_if_idle(self);
}

/// A client actor: keeps `in_flight` requests of `Work` going until
/// `deadline` (or until the work runs out), then reports to `out`.
template <class Work>
caf::behavior client(client_actor<Work>* self, Work work,
                     std::shared_ptr<collector> out, size_t in_flight,
                     bench_clock::time_point deadline, uint64_t seed) {
  auto& st = self->state;
  st.work = std::move(work);
  st.out = std::move(out);
  st.deadline = deadline;
  st.gen = rng{seed};
  for (size_t n = 0; n < in_flight; ++n)
    send_next(self);
  finish_if_idle(self);
  return {
    // Nothing is ever sent to a client; it only receives answers.
    [](caf::tick_atom) {},
  };
}

/// Point gets of random existing keys.
template <class Handle>
struct get_work_on {
  Handle store;
  uint64_t keys = 0;
  caf::duration timeout;

  template <class Self>
  bool send(Self* self, rng& gen) {
    auto i = gen.below(keys);
    auto sent = bench_clock::now();
    self->request(store, timeout, atom::get_v, make_key(i))
      .then(
        [self, sent, i](maybe_bytes& v) {
          const char* problem = v ? value_problem(v->data(), v->size(), i)
                                  : "key not found";
          answered(self, sent, 1, problem ? "get: " + std::string{problem} : "");
        },
        [self, sent](caf::error& e) {
          answered(self, sent, 0, "get: " + strata::render(e));
        });
    return true;
  }
};

/// get_many of random existing keys.
struct get_many_work {
  storage_actor store;
  uint64_t keys = 0;
  size_t batch = 0;
  caf::duration timeout;

  template <class Self>
  bool send(Self* self, rng& gen) {
    std::vector<std::string> names;
    auto ids = std::make_shared<std::vector<uint64_t>>();
    names.reserve(batch);
    ids->reserve(batch);
    for (size_t j = 0; j < batch; ++j) {
      ids->push_back(gen.below(keys));
      names.push_back(make_key(ids->back()));
    }
    auto sent = bench_clock::now();
    self->request(store, timeout, atom::get_many_v, std::move(names))
      .then(
        [self, sent, ids](std::vector<maybe_bytes>& vs) {
          std::string problem;
          if (vs.size() != ids->size())
            problem = "get_many: wrong number of values";
          for (size_t j = 0; problem.empty() && j < vs.size(); ++j) {
            auto& v = vs[j];
            auto p = v ? value_problem(v->data(), v->size(), (*ids)[j])
                       : "key not found";
            if (p != nullptr)
              problem = "get_many: " + std::string{p};
          }
          answered(self, sent, vs.size(), std::move(problem));
        },
        [self, sent](caf::error& e) {
          answered(self, sent, 0, "get_many: " + strata::render(e));
        });
    return true;
  }
};

/// Sets of random keys to their usual values.
template <class Handle>
struct set_work_on {
  Handle store;
  uint64_t keys = 0;
  caf::duration timeout;

  template <class Self>
  bool send(Self* self, rng& gen) {
    auto i = gen.below(keys);
    auto sent = bench_clock::now();
    self->request(store, timeout, atom::set_v, make_key(i), value_of(i))
      .then([self, sent] { answered(self, sent, 1, {}); },
            [self, sent](caf::error& e) {
              answered(self, sent, 0, "set: " + strata::render(e));
            });
    return true;
  }
};

using get_work = get_work_on<storage_actor>;
using set_work = set_work_on<storage_actor>;

/// Loads keys 0..keys-1 in order with set_many chunks; runs out at the end.
struct load_work {
  storage_actor store;
  uint64_t keys = 0;
  uint64_t next = 0;
  caf::duration timeout;

  template <class Self>
  bool send(Self* self, rng&) {
    if (next >= keys)
      return false;
    std::vector<strata::entry> chunk;
    auto end = std::min(keys, next + load_chunk);
    chunk.reserve(end - next);
    for (; next < end; ++next)
      chunk.push_back(strata::entry{make_key(next), value_of(next)});
    auto n = chunk.size();
    auto sent = bench_clock::now();
    self->request(store, timeout, atom::set_many_v, std::move(chunk))
      .then([self, sent, n] { answered(self, sent, n, {}); },
            [self, sent](caf::error& e) {
              answered(self, sent, 0, "set_many: " + strata::render(e));
            });
    return true;
  }
};

/// Runs `clients` client actors with `in_flight` requests each for `seconds`
/// and waits for all of them.
template <class Work>
result run_clients(caf::actor_system& sys, const bench_options& opts,
                   size_t clients, size_t in_flight, const Work& work,
                   double seconds) {
  auto out = std::make_shared<collector>(clients);
  auto cpu = process_cpu_seconds();
  auto start = bench_clock::now();
  auto deadline = start + to_duration(seconds);
  for (size_t c = 0; c < clients; ++c)
    sys.spawn(client<Work>, work, out, in_flight, deadline, 1000 + c);
  // A watchdog bounds the run even when requests have no timeout.
  if (!out->wait_for(to_duration(seconds) + 2 * opts.timeout
                     + std::chrono::seconds{60}))
    abandon("client actors did not finish");
  auto r = out->take();
  auto res = summarize(r.items, r.requests, r.finished - start, r.latencies);
  res.errors = r.errors;
  res.first_error = std::move(r.first_error);
  if (r.requests > 0)
    res.cpu_us = (process_cpu_seconds() - cpu) * 1e6 / double(r.requests);
  return res;
}

// -- strata store ------------------------------------------------------------------

caf::duration client_timeout(const bench_options& opts) {
  if (opts.timeout.count() > 0)
    return caf::duration{opts.timeout};
  return caf::duration{caf::infinite};
}

strata::observable_storage_actor
open_store(caf::actor_system& sys, const bench_options& opts,
           const std::string& dir, strata::sync_mode mode, uint32_t shards = 0) {
  strata::store_options so;
  so.id = "strata-bench";
  so.data_dir = dir;
  so.shards = shards > 0 ? shards : opts.shards;
  so.hints.expected_size = opts.keys;
  so.sync = mode;
  if (opts.timeout.count() > 0)
    so.request_timeout = opts.timeout;
  so.log_level = "warning";
  auto h = strata::spawn_store(sys, so);
  if (!h)
    throw bench_error("cannot open the store in " + dir + ": "
                      + strata::render(h.error()));
  return *h;
}

/// Stops the store and waits until its shards have closed their files.
template <class Handle>
void close_store(caf::actor_system& sys, Handle& store, size_t baseline) {
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  store = nullptr;
  // Blocks until only the actors that ran before the store are left.
  sys.registry().await_running_count_equal(baseline);
}

/// Stops the store held in `h` when a run ends early (an exception): the
/// actor system's destructor would otherwise wait for it forever.
template <class Handle>
struct store_stopper {
  Handle& h;
  ~store_stopper() {
    if (h)
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
};

uint64_t store_size(caf::actor_system& sys, const storage_actor& store,
                    std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys, true};
  uint64_t n = 0;
  caf::error err;
  // Blocks for the answer (or the timeout).
  self->request(store, timeout, atom::size_v)
    .receive([&](uint64_t x) { n = x; }, [&](caf::error& e) { err = e; });
  if (err)
    throw bench_error("size: " + strata::render(err));
  return n;
}

// -- the run -----------------------------------------------------------------------

/// One line of the final table.
struct row {
  std::string name;
  result strata;
  result raw;
  double target = 0; // minimum strata/raw ratio; 0: none
  /// Compares p50 latencies (strata/baseline, target is a maximum) instead of
  /// rates.
  bool latency = false;
};

double ratio(const row& r) {
  if (r.latency)
    return r.raw.p50_ns > 0 ? static_cast<double>(r.strata.p50_ns) / r.raw.p50_ns : 0;
  return r.raw.rate > 0 ? r.strata.rate / r.raw.rate : 0;
}

void print_table(const std::vector<row>& rows) {
  std::printf("\n%-34s %-14s %-14s %-7s %-10s %-19s %s\n", "operation",
              "strata", "baseline", "ratio", "target", "strata p50/p99",
              "baseline p50/p99");
  for (auto& r : rows) {
    char target[32] = "-";
    if (r.target > 0)
      std::snprintf(target, sizeof(target), "%s %gx", r.latency ? "<=" : ">=",
                    r.target);
    char ratio_text[32];
    std::snprintf(ratio_text, sizeof(ratio_text), "%.2fx", ratio(r));
    auto lat = [](const result& x) {
      if (x.p50_ns == 0)
        return std::string{"-"};
      return format_latency(x.p50_ns) + " / " + format_latency(x.p99_ns);
    };
    const char* verdict = "";
    if (r.target > 0)
      verdict = (r.latency ? ratio(r) <= r.target : ratio(r) >= r.target) ? "  met"
                                                                           : "  MISSED";
    std::printf("%-34s %-14s %-14s %-7s %-10s %-19s %s%s\n", r.name.c_str(),
                format_rate(r.strata.rate).c_str(),
                format_rate(r.raw.rate).c_str(), ratio_text, target,
                lat(r.strata).c_str(), lat(r.raw).c_str(), verdict);
  }
}

/// Reads and writes of single keys and batches, strata beside raw LMDB.
void run_kv(caf::actor_system& sys, const bench_options& opts,
            std::vector<row>& rows) {
  using strata::sync_mode;
  auto baseline = sys.registry().running();
  auto add_row = [&](std::string name, result s, result r, double target) {
    rows.push_back(row{std::move(name), std::move(s), std::move(r), target});
  };
  // -- datasets ------------------------------------------------------------------
  temp_dir raw_dir{opts.dir};
  temp_dir strata_dir{opts.dir};
  std::printf("data: raw LMDB in %s, strata in %s\n", raw_dir.path().c_str(),
              strata_dir.path().c_str());
  lmdb::env_options eo;
  eo.map_size = std::max<uint64_t>(1ull << 30, opts.keys * 1024);
  eo.no_sync = true;
  std::optional<lmdb::env> raw_env;
  raw_env.emplace(raw_dir.path(), eo);
  auto dbi = open_main_db(*raw_env);
  std::printf("loading...\n");
  auto raw_loaded = raw_load(*raw_env, dbi, opts.keys);
  raw_env->sync();
  print_result("load, 10k per txn / set_many", "raw", raw_loaded);
  auto data_dir = strata_dir.path() + "/store";
  storage_actor store;
  // On an exception, stop the store so that the actor system can shut down.
  store_stopper<storage_actor> stop_store{store};
  store = open_store(sys, opts, data_dir, sync_mode::nosync);
  load_work loader{store, opts.keys, 0, client_timeout(opts)};
  auto strata_loaded = run_clients(sys, opts, 1, 4, loader, 1e6);
  print_result("load, 10k per txn / set_many", "strata", strata_loaded);
  if (strata_loaded.errors > 0)
    throw bench_error("loading the store failed: " + strata_loaded.first_error);
  if (auto n = store_size(sys, store, std::chrono::seconds{60}); n != opts.keys)
    throw bench_error("the store holds " + std::to_string(n) + " keys after "
                      "loading " + std::to_string(opts.keys));
  add_row("load, 10k entries per txn", strata_loaded, raw_loaded, 0);
  // -- point get -------------------------------------------------------------------
  char name[64];
  std::snprintf(name, sizeof(name), "point get, %zu in flight",
                opts.get_in_flight);
  // Reads alternate between raw LMDB and strata for a few rounds; the row
  // shows the round with the median ratio, which keeps drift of the machine
  // (page cache, other load) out of the comparison.
  auto alternate = [&](auto raw_run, auto strata_run) {
    std::vector<std::pair<result, result>> rounds;
    for (size_t r = 0; r < opts.rounds; ++r) {
      auto raw = raw_run();
      print_result(name, "raw", raw);
      auto strata = strata_run();
      print_result(name, "strata", strata);
      rounds.emplace_back(std::move(strata), std::move(raw));
    }
    std::sort(rounds.begin(), rounds.end(), [](auto& x, auto& y) {
      return x.first.rate / x.second.rate < y.first.rate / y.second.rate;
    });
    return rounds[rounds.size() / 2];
  };
  auto round_seconds = opts.seconds / static_cast<double>(opts.rounds);
  auto clients = std::max<size_t>(1, std::min(opts.get_clients,
                                               opts.get_in_flight));
  auto get = alternate(
    [&] { return raw_point_get(*raw_env, dbi, opts.keys, round_seconds); },
    [&] {
      return run_clients(sys, opts, clients, opts.get_in_flight / clients,
                         get_work{store, opts.keys, client_timeout(opts)},
                         round_seconds);
    });
  add_row(name, get.first, get.second, 0.5);
  // -- get_many --------------------------------------------------------------------
  std::snprintf(name, sizeof(name), "get_many %zu keys, %zu in flight",
                opts.many_keys, opts.many_in_flight);
  auto many = alternate(
    [&] {
      return raw_get_many(*raw_env, dbi, opts.keys, opts.many_keys,
                          round_seconds);
    },
    [&] {
      return run_clients(sys, opts, 1, opts.many_in_flight,
                         get_many_work{store, opts.keys, opts.many_keys,
                                       client_timeout(opts)},
                         round_seconds);
    });
  add_row(std::string{name} + " *", many.first, many.second, 0.8);
  // -- no-sync set ---------------------------------------------------------------
  std::snprintf(name, sizeof(name), "no-sync set, %zu in flight", opts.writers);
  auto raw_nosync = raw_put_per_commit(*raw_env, dbi, opts.keys,
                                       opts.raw_write_seconds);
  print_result(name, "raw", raw_nosync);
  set_work writes{store, opts.keys, client_timeout(opts)};
  auto strata_nosync = run_clients(sys, opts, opts.writers, 1, writes,
                                   opts.seconds);
  print_result(name, "strata", strata_nosync);
  add_row(name, strata_nosync, raw_nosync, 0);
  // -- durable set -----------------------------------------------------------------
  // Reopen both without NOSYNC. What the no-sync phases left in the page
  // cache is flushed first, so that the first durable commits do not pay
  // for it.
  raw_env->sync();
  raw_env.reset();
  close_store(sys, store, baseline);
  ::sync();
  eo.no_sync = false;
  raw_env.emplace(raw_dir.path(), eo);
  dbi = open_main_db(*raw_env);
  std::snprintf(name, sizeof(name), "durable set, %zu writers", opts.writers);
  store = open_store(sys, opts, data_dir, sync_mode::durable);
  writes.store = store;
  // The disk's sync rate drifts within seconds, so these alternate as well.
  auto durable = alternate(
    [&] {
      return raw_put_per_commit(*raw_env, dbi, opts.keys,
                                std::min(opts.raw_write_seconds, round_seconds));
    },
    [&] {
      return run_clients(sys, opts, opts.writers, 1, writes, round_seconds);
    });
  add_row(name, durable.first, durable.second, 10);
  close_store(sys, store, baseline);
  raw_env.reset();
}

/// Read-modify-write transactions (SERIALIZABLE): read one key from each
/// pool, write both, commit. Gets go out together, then both sets and the
/// commit (the transaction actor takes them in order). A VERSION_CONFLICT
/// counts as a request that committed nothing.
struct txn_work {
  strata::observable_storage_actor store;
  std::shared_ptr<std::vector<uint64_t>> first;
  std::shared_ptr<std::vector<uint64_t>> second;
  caf::duration timeout;

  template <class Self>
  bool send(Self* self, rng& gen) {
    auto a = (*first)[gen.below(first->size())];
    auto b = (*second)[gen.below(second->size())];
    while (b == a && second->size() > 1)
      b = (*second)[gen.below(second->size())];
    auto sent = bench_clock::now();
    auto t = timeout;
    auto done = std::make_shared<bool>(false);
    auto fail = [self, sent, done](caf::error& e) {
      if (*done)
        return;
      *done = true;
      if (strata::code_of(e) == strata::errc::version_conflict)
        answered(self, sent, 0, {});
      else
        answered(self, sent, 0, "transaction: " + strata::render(e));
    };
    self->request(store, t, atom::begin_v, strata::txn_options{})
      .then(
        [=](strata::transaction_actor& tx) {
          auto reads = std::make_shared<int>(2);
          auto read = [=](uint64_t i) {
            self->request(tx, t, atom::get_v, make_key(i))
              .then(
                [=](maybe_bytes& v) mutable {
                  const char* problem = v ? value_problem(v->data(), v->size(), i)
                                          : "key not found";
                  if (problem) {
                    caf::error err = strata::make_error(strata::errc::consistency_violation,
                                                        problem);
                    fail(err);
                    return;
                  }
                  if (--*reads > 0)
                    return;
                  // Write both back and commit, pipelined.
                  for (auto k : {a, b})
                    self->request(tx, t, atom::set_v, make_key(k), value_of(k))
                      .then([] {}, fail);
                  self->request(tx, t, atom::commit_v)
                    .then(
                      [=] {
                        if (!*done) {
                          *done = true;
                          answered(self, sent, 1, {});
                        }
                      },
                      fail);
                },
                fail);
          };
          read(a);
          read(b);
        },
        fail);
    return true;
  }
};

/// Durable read-modify-write transactions on one shard and across two, with
/// one and many clients, beside raw LMDB's one-put-per-durable-commit rate.
/// The disk's sync latency drifts by 2x within minutes here, so every strata
/// run has a raw run right before it, for `rounds` rounds; each row shows the
/// round with the median ratio.
void run_txn(caf::actor_system& sys, const bench_options& opts,
             std::vector<row>& rows) {
  using strata::sync_mode;
  auto baseline = sys.registry().running();
  auto keys = opts.txn_keys;
  temp_dir raw_dir{opts.dir};
  temp_dir strata_dir{opts.dir};
  std::printf("transactions: read-modify-write of 2 keys out of %llu, "
              "SERIALIZABLE, durable; raw LMDB in %s, strata in %s\n",
              static_cast<unsigned long long>(keys), raw_dir.path().c_str(),
              strata_dir.path().c_str());
  // The baseline: one put per durable commit.
  lmdb::env_options eo;
  eo.map_size = 1ull << 30;
  eo.no_sync = true;
  std::optional<lmdb::env> env;
  env.emplace(raw_dir.path(), eo);
  auto dbi = open_main_db(*env);
  raw_load(*env, dbi, keys);
  env->sync();
  env.reset();
  ::sync();
  eo.no_sync = false;
  env.emplace(raw_dir.path(), eo);
  dbi = open_main_db(*env);
  auto raw_seconds = std::min(opts.raw_write_seconds, opts.seconds);
  for (uint32_t shards : {1u, 2u}) {
    if (opts.txn_shards != 0 && shards != opts.txn_shards)
      continue;
    auto dir = strata_dir.path() + "/store" + std::to_string(shards);
    strata::observable_storage_actor store;
    store_stopper<strata::observable_storage_actor> stop_store{store};
    store = open_store(sys, opts, dir, sync_mode::durable, shards);
    auto loaded = run_clients(sys, opts, 1, 1,
                              load_work{store, keys, 0, client_timeout(opts)}, 1e6);
    if (loaded.errors > 0)
      throw bench_error("loading the store failed: " + loaded.first_error);
    // Pools: any key on one shard; a key of shard 0 and one of shard 1 on two.
    auto first = std::make_shared<std::vector<uint64_t>>();
    auto second = std::make_shared<std::vector<uint64_t>>();
    for (uint64_t i = 0; i < keys; ++i) {
      auto s = strata::routing::shard_of(make_key(i), shards);
      (s == 0 ? first : second)->push_back(i);
    }
    if (shards == 1)
      second = first;
    for (size_t clients : {size_t{1}, opts.txn_clients}) {
      char name[64];
      std::snprintf(name, sizeof(name), "txn RMW, %u shard%s, %zu client%s",
                    shards, shards > 1 ? "s" : "", clients, clients > 1 ? "s" : "");
      std::vector<std::pair<result, result>> rounds;
      for (size_t r = 0; r < opts.rounds; ++r) {
        auto raw = raw_put_per_commit(*env, dbi, keys, raw_seconds);
        print_result("durable put per commit", "raw", raw);
        auto strata = run_clients(sys, opts, clients, 1,
                                  txn_work{store, first, second, client_timeout(opts)},
                                  opts.seconds);
        print_result(name, "strata", strata);
        rounds.emplace_back(std::move(strata), std::move(raw));
      }
      std::sort(rounds.begin(), rounds.end(), [](auto& x, auto& y) {
        return x.first.rate / x.second.rate < y.first.rate / y.second.rate;
      });
      auto& median = rounds[rounds.size() / 2];
      double target = shards == 2 && clients == opts.txn_clients ? 3 : 0;
      rows.push_back(row{name, median.first, median.second, target});
    }
    close_store(sys, store, baseline);
  }
}

/// Runs every measurement; returns the number of failed requests seen.

// -- remote ------------------------------------------------------------------------

/// The baseline of the remote suite: the cheapest typed actor that answers
/// get and set, over an in-memory map, in another process.
using bare_actor = caf::typed_actor<
  caf::replies_to<atom::get, std::string>::with<maybe_bytes>,
  caf::reacts_to<atom::set, std::string, bytes>>;

struct bare_state {
  static inline const char* name = "strata-bench.bare";
  std::unordered_map<std::string, bytes> data;
};

bare_actor::behavior_type bare(bare_actor::stateful_pointer<bare_state> self,
                               uint64_t keys) {
  for (uint64_t i = 0; i < keys; ++i)
    self->state.data.emplace(make_key(i), value_of(i));
  return {
    [self](atom::get, const std::string& key) -> caf::result<maybe_bytes> {
      auto& data = self->state.data;
      if (auto i = data.find(key); i != data.end())
        return maybe_bytes{i->second};
      return maybe_bytes{};
    },
    [self](atom::set, std::string& key, bytes& value) {
      self->state.data[std::move(key)] = std::move(value);
    },
  };
}

/// A server process of the remote suite: this program started again with
/// `--serve bare|node`. It prints its port and lives until its stdin closes.
class child_process {
public:
  child_process(const std::string& what, const bench_options& opts,
                const std::string& dir) {
    int in[2];
    int out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0)
      throw bench_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0)
      throw bench_error("fork failed");
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      auto keys = std::to_string(opts.keys);
      std::vector<std::string> args{"/proc/self/exe", "--serve", what, "--keys", keys,
                                    "--dir", dir, "--port-guard",
                                    opts.port_guard ? "on" : "off"};
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n')
      line += c;
    ::close(out[0]);
    const std::string prefix = "listening on 127.0.0.1:";
    if (line.rfind(prefix, 0) != 0)
      throw bench_error("the " + what + " server did not start: '" + line + "'");
    port_ = static_cast<uint16_t>(std::stoi(line.substr(prefix.size())));
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    ::close(stdin_);
    ::waitpid(pid_, nullptr, 0);
  }

  uint16_t port() const {
    return port_;
  }

private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  uint16_t port_ = 0;
};

/// The child's side: serve the bare actor or a shard node until stdin closes.
int serve(caf::actor_system& sys, const bench_options& opts) {
  caf::actor served;
  uint16_t port = 0;
  if (opts.serve == "bare") {
    auto h = sys.spawn(bare, opts.keys);
    auto p = sys.middleman().publish(h, 0, "127.0.0.1", true);
    if (!p)
      return 1;
    served = caf::actor_cast<caf::actor>(h);
    port = *p;
  } else {
    strata::store_options so;
    so.id = "strata-bench";
    so.data_dir = opts.dir + "/node";
    so.shards = 1;
    so.hints.expected_size = opts.keys;
    so.sync = strata::sync_mode::nosync;
    so.log_level = "warning";
    auto h = strata::spawn_shard_host(sys, so, {0}, "127.0.0.1");
    if (!h) {
      std::cerr << "strata-bench: " << strata::render(h.error()) << "\n";
      return 1;
    }
    auto p = opts.port_guard ? strata::publish(sys, *h, 0, "127.0.0.1", so.frame_limit())
                             : sys.middleman().publish(*h, 0, "127.0.0.1", true);
    if (!p)
      return 1;
    served = caf::actor_cast<caf::actor>(*h);
    port = *p;
  }
  std::printf("listening on 127.0.0.1:%u\n", unsigned{port});
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
    // The parent never writes; EOF ends the child.
  }
  caf::anon_send_exit(served, caf::exit_reason::user_shutdown);
  return 0;
}

/// Gets and sets through a store whose shard lives on a shard node (another
/// process, over loopback), beside the same requests to a bare typed actor in
/// another process.
void run_remote(caf::actor_system& sys, const bench_options& opts,
                std::vector<row>& rows) {
  auto baseline = sys.registry().running();
  auto keys = std::min<uint64_t>(opts.keys, opts.remote_keys);
  temp_dir dir{opts.dir};
  auto child_opts = opts;
  child_opts.keys = keys;
  child_process bare_server{"bare", child_opts, dir.path()};
  child_process node_server{"node", child_opts, dir.path()};
  std::printf("remote: %llu keys on a shard node (127.0.0.1:%u, port guard %s) and on "
              "a bare typed actor (127.0.0.1:%u), both in child processes\n",
              static_cast<unsigned long long>(keys), unsigned{node_server.port()},
              opts.port_guard ? "on" : "off", unsigned{bare_server.port()});
  auto bare_handle = sys.middleman().remote_actor<bare_actor>("127.0.0.1",
                                                              bare_server.port());
  if (!bare_handle)
    throw bench_error("cannot reach the bare server: " + sys.render(bare_handle.error()));
  strata::store_options so;
  so.id = "strata-bench";
  so.data_dir = dir.path() + "/store";
  so.shards = 1;
  so.shard_nodes = {"127.0.0.1:" + std::to_string(node_server.port())};
  so.sync = strata::sync_mode::nosync;
  so.log_level = "warning";
  auto h = strata::spawn_store(sys, so);
  if (!h)
    throw bench_error("cannot open the store: " + strata::render(h.error()));
  strata::observable_storage_actor store = *h;
  store_stopper<strata::observable_storage_actor> stop_store{store};
  auto loaded = run_clients(sys, opts, 1, 4, load_work{store, keys, 0, client_timeout(opts)},
                            1e6);
  if (loaded.errors > 0)
    throw bench_error("loading the shard node failed: " + loaded.first_error);
  print_result("load over the network", "strata", loaded);
  auto round_seconds = opts.seconds / static_cast<double>(opts.rounds);
  auto timeout = client_timeout(opts);
  auto compare = [&](const char* name, size_t in_flight, auto bare_work, auto strata_work,
                     bool latency, double target) {
    std::vector<std::pair<result, result>> rounds;
    for (size_t r = 0; r < opts.rounds; ++r) {
      auto b = run_clients(sys, opts, 1, in_flight, bare_work, round_seconds);
      print_result(name, "bare", b);
      auto x = run_clients(sys, opts, 1, in_flight, strata_work, round_seconds);
      print_result(name, "strata", x);
      rounds.emplace_back(std::move(x), std::move(b));
    }
    row tmp;
    tmp.latency = latency;
    std::sort(rounds.begin(), rounds.end(), [&](auto& a, auto& b) {
      row ra = tmp, rb = tmp;
      ra.strata = a.first;
      ra.raw = a.second;
      rb.strata = b.first;
      rb.raw = b.second;
      return ratio(ra) < ratio(rb);
    });
    auto& median = rounds[rounds.size() / 2];
    row out;
    out.name = name;
    out.strata = median.first;
    out.raw = median.second;
    out.target = target;
    out.latency = latency;
    rows.push_back(std::move(out));
  };
  using bare_get = get_work_on<bare_actor>;
  using bare_set = set_work_on<bare_actor>;
  storage_actor st = store;
  compare("remote get, 1 in flight (p50)", 1, bare_get{*bare_handle, keys, timeout},
          get_work{st, keys, timeout}, true, 1.3);
  compare("remote get, 64 in flight", 64, bare_get{*bare_handle, keys, timeout},
          get_work{st, keys, timeout}, false, 0.8);
  compare("remote set, 1 in flight (p50)", 1, bare_set{*bare_handle, keys, timeout},
          set_work{st, keys, timeout}, true, 0);
  compare("remote set, 64 in flight", 64, bare_set{*bare_handle, keys, timeout},
          set_work{st, keys, timeout}, false, 0);
  close_store(sys, store, baseline + 0);
  *bare_handle = nullptr;
}

// -- sustained mixed load ------------------------------------------------------------

/// YCSB's scrambled zipfian keys (theta 0.99): few keys are hot, and the hot
/// ones are spread over the key space (and so over the shards).
class zipfian {
public:
  explicit zipfian(uint64_t n) : n_(n) {
    for (uint64_t i = 1; i <= n; ++i)
      zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
    auto zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
  }

  uint64_t next(rng& gen) const {
    auto u = static_cast<double>(gen.next() >> 11) * 0x1.0p-53;
    auto uz = u * zetan_;
    uint64_t rank = 0;
    if (uz >= 1.0)
      rank = uz < 1.0 + std::pow(0.5, theta)
               ? 1
               : static_cast<uint64_t>(static_cast<double>(n_)
                                       * std::pow(eta_ * u - eta_ + 1.0, alpha_));
    // Scrambled: FNV-1a of the rank picks the key.
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < 8; ++i) {
      h ^= (rank >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
    return h % n_;
  }

private:
  static constexpr double theta = 0.99;
  uint64_t n_;
  double zetan_ = 0;
  double alpha_ = 0;
  double eta_ = 0;
};

/// A value of `size` bytes for key `i` (its index first, as value_of).
bytes sized_value(uint64_t i, size_t size) {
  bytes result(size, 'v');
  std::memcpy(result.data(), &i, sizeof(i));
  return result;
}

/// Latencies of writes (or reads), shared by the clients of a run.
struct write_latencies {
  std::mutex mtx;
  std::vector<uint64_t> ns;
};

/// Half reads, half updates of zipfian keys; write latencies go to `writes`.
struct mixed_work {
  storage_actor store;
  std::shared_ptr<const zipfian> keys;
  size_t value_size = 0;
  std::shared_ptr<write_latencies> writes;
  caf::duration timeout;
  /// Where read latencies go, if anywhere.
  std::shared_ptr<write_latencies> reads = nullptr;

  template <class Self>
  bool send(Self* self, rng& gen) {
    auto i = keys->next(gen);
    auto sent = bench_clock::now();
    if (gen.below(2) == 0) {
      self->request(store, timeout, atom::get_v, make_key(i))
        .then(
          [self, sent, i, size = value_size, sink = reads](maybe_bytes& v) {
            if (sink) {
              auto took = ns_between(sent, bench_clock::now());
              std::lock_guard<std::mutex> guard{sink->mtx};
              sink->ns.push_back(took);
            }
            const char* problem = !v                   ? "key not found"
                                  : v->size() != size ? "value has the wrong size"
                                  : std::memcmp(v->data(), &i, sizeof(i)) != 0
                                    ? "value belongs to another key"
                                    : nullptr;
            answered(self, sent, 1, problem ? "get: " + std::string{problem} : "");
          },
          [self, sent](caf::error& e) {
            answered(self, sent, 0, "get: " + strata::render(e));
          });
      return true;
    }
    auto sink = writes;
    self->request(store, timeout, atom::set_v, make_key(i), sized_value(i, value_size))
      .then(
        [self, sent, sink] {
          auto took = ns_between(sent, bench_clock::now());
          {
            std::lock_guard<std::mutex> guard{sink->mtx};
            sink->ns.push_back(took);
          }
          answered(self, sent, 1, {});
        },
        [self, sent](caf::error& e) { answered(self, sent, 0, "set: " + strata::render(e)); });
    return true;
  }
};

/// Opens a store of `opts.shards` shards in `dir` and loads records 0..n-1
/// of `size` bytes (set_many chunks), as a run's starting state.
strata::observable_storage_actor open_loaded(caf::actor_system& sys,
                                                const bench_options& opts,
                                                const std::string& dir, uint64_t n,
                                                size_t size, bool background_flush) {
  strata::store_options so;
  so.id = "strata-bench";
  so.data_dir = dir + "/store";
  so.shards = opts.shards;
  so.hints.expected_size = n;
  so.background_flush = background_flush;
  so.log_level = "warning";
  auto h = strata::spawn_store(sys, so);
  if (!h)
    throw bench_error("cannot open the store: " + strata::render(h.error()));
  strata::observable_storage_actor store = *h;
  caf::scoped_actor self{sys};
  for (uint64_t loaded = 0; loaded < n;) {
    std::vector<strata::entry> chunk;
    for (auto end = std::min(n, loaded + load_chunk); loaded < end; ++loaded)
      chunk.push_back(strata::entry{make_key(loaded), sized_value(loaded, size)});
    caf::error err;
    self->request(store, client_timeout(opts), atom::set_many_v, std::move(chunk))
      .receive([] {}, [&](caf::error& e) { err = e; });
    if (err) {
      caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
      throw bench_error("loading: " + strata::render(err));
    }
  }
  return store;
}

/// A YCSB-like mixed load held for a while (records of 1 000 bytes, zipfian
/// keys, 50% reads and 50% updates, 32 clients with one request each,
/// durable), with the memtable flushed in the background and, for
/// comparison in the same run, by the writer itself. Reports each run's
/// throughput and the tail of its write latency.
void run_sustained(caf::actor_system& sys, const bench_options& opts) {
  auto baseline = sys.registry().running();
  auto keys = std::make_shared<const zipfian>(opts.sustained_keys);
  std::printf("sustained: %llu records of %zu bytes, zipfian keys, 50%% reads / 50%% "
              "updates, %zu clients, %u shards, durable, %.0f s per run\n",
              static_cast<unsigned long long>(opts.sustained_keys), opts.sustained_value,
              opts.sustained_clients, opts.shards, opts.sustained_seconds);
  struct outcome {
    std::string name;
    result all;
    uint64_t p50 = 0, p99 = 0, p999 = 0, max = 0;
  };
  std::vector<outcome> outcomes;
  for (bool background : {false, true, false, true}) {
    temp_dir dir{opts.dir};
    auto store = open_loaded(sys, opts, dir.path(), opts.sustained_keys,
                             opts.sustained_value, background);
    {
      store_stopper<strata::observable_storage_actor> stop_store{store};
      auto timeout = client_timeout(opts);
      auto writes = std::make_shared<write_latencies>();
      auto r = run_clients(sys, opts, opts.sustained_clients, 1,
                           mixed_work{store, keys, opts.sustained_value, writes, timeout},
                           opts.sustained_seconds);
      auto name = std::string{"sustained mix, flush "}
                  + (background ? "in background" : "by the writer");
      print_result(name.c_str(), "strata", r);
      if (r.errors > 0)
        throw bench_error("sustained run: " + r.first_error);
      outcome o;
      o.name = name;
      o.all = r;
      auto& ns = writes->ns;
      o.p50 = percentile(ns, 0.5);
      o.p99 = percentile(ns, 0.99);
      o.p999 = percentile(ns, 0.999);
      o.max = ns.empty() ? 0 : *std::max_element(ns.begin(), ns.end());
      outcomes.push_back(std::move(o));
    }
    close_store(sys, store, baseline);
  }
  std::printf("\n%-38s %-12s %-11s %-11s %-11s %-11s\n", "sustained mix (writes)",
              "ops/s", "write p50", "write p99", "p99.9", "max");
  for (auto& o : outcomes)
    std::printf("%-38s %-12s %-11s %-11s %-11s %-11s%s\n", o.name.c_str(),
                format_rate(o.all.rate).c_str(), format_latency(o.p50).c_str(),
                format_latency(o.p99).c_str(), format_latency(o.p999).c_str(),
                format_latency(o.max).c_str(),
                o.name.find("background") != std::string::npos
                  ? (o.max < 20000000 ? "  max < 20 ms: met" : "  max < 20 ms: MISSED")
                  : "");
  std::fflush(stdout);
}

// -- one durable client: strata against SQLite, and where the time goes ----------

/// One single-threaded run of the 50/50 mix: its rate and the median of
/// each kind of operation.
struct mix_figures {
  double rate = 0;
  uint64_t read_p50 = 0;
  uint64_t write_p50 = 0;
};

/// Runs `read(i)` or `write(i)` on zipfian keys, half and half, for `seconds`
/// on the calling thread.
template <class Read, class Write>
mix_figures mix_loop(const zipfian& keys, double seconds, uint64_t seed, Read read,
                     Write write) {
  rng gen{seed};
  std::vector<uint64_t> reads;
  std::vector<uint64_t> writes;
  auto start = bench_clock::now();
  auto end = start + to_duration(seconds);
  uint64_t ops = 0;
  for (auto now = start; now < end; ++ops) {
    auto i = keys.next(gen);
    if (gen.below(2) == 0) {
      read(i);
      auto t = bench_clock::now();
      reads.push_back(ns_between(now, t));
      now = t;
    } else {
      write(i);
      auto t = bench_clock::now();
      writes.push_back(ns_between(now, t));
      now = t;
    }
  }
  mix_figures f;
  f.rate = static_cast<double>(ops) / std::chrono::duration<double>(bench_clock::now() - start).count();
  f.read_p50 = percentile(reads, 0.5);
  f.write_p50 = percentile(writes, 0.5);
  return f;
}

/// SQLite in WAL mode with synchronous=FULL (a sync per commit), the table
/// a clustered index on the key, one autocommit statement per operation,
/// its file mapped and a cache of 512 MiB.
class sqlite_side {
public:
  explicit sqlite_side(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK)
      fail("open");
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    // Reads from memory, as LMDB's map gives strata: the pages mapped, and a
    // page cache that holds the table.
    exec("PRAGMA mmap_size=4294967296");
    exec("PRAGMA cache_size=-524288");
    exec("CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
    get_ = prepare("SELECT v FROM kv WHERE k = ?");
    put_ = prepare("INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)");
  }

  sqlite_side(const sqlite_side&) = delete;
  sqlite_side& operator=(const sqlite_side&) = delete;

  ~sqlite_side() {
    sqlite3_finalize(get_);
    sqlite3_finalize(put_);
    sqlite3_close(db_);
  }

  void load(uint64_t n, size_t size) {
    exec("BEGIN");
    for (uint64_t i = 0; i < n; ++i)
      put(i, size);
    exec("COMMIT");
  }

  void get(uint64_t i, size_t size) {
    auto key = make_key(i);
    sqlite3_bind_blob(get_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    if (sqlite3_step(get_) != SQLITE_ROW)
      fail("get: key not found");
    auto n = static_cast<size_t>(sqlite3_column_bytes(get_, 0));
    auto data = static_cast<const uint8_t*>(sqlite3_column_blob(get_, 0));
    if (n != size || std::memcmp(data, &i, sizeof(i)) != 0)
      fail("get: wrong value");
    sqlite3_reset(get_);
  }

  void put(uint64_t i, size_t size) {
    auto key = make_key(i);
    auto value = sized_value(i, size);
    sqlite3_bind_blob(put_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_blob(put_, 2, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    if (sqlite3_step(put_) != SQLITE_DONE)
      fail("put");
    sqlite3_reset(put_);
  }

private:
  [[noreturn]] void fail(const char* what) {
    throw bench_error(std::string{"sqlite: "} + what + ": " + sqlite3_errmsg(db_));
  }

  void exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      fail(sql);
  }

  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK)
      fail(sql);
    return st;
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
};

/// The floor of a durable write here: `size` bytes written into a
/// preallocated, zero-filled file and fdatasync'ed, as strata's log does.
uint64_t sync_floor_p50(const std::string& dir, size_t size, double seconds) {
  auto path = dir + "/floor";
  auto fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    throw bench_error("cannot create " + path);
  constexpr size_t span = 64u << 20;
  std::vector<char> zeros(1u << 20, 0);
  for (size_t off = 0; off < span; off += zeros.size())
    if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0)
      throw bench_error("cannot fill " + path);
  if (::fsync(fd) != 0)
    throw bench_error("cannot sync " + path);
  std::vector<char> record(size, 'r');
  std::vector<uint64_t> ns;
  size_t off = 0;
  auto end = bench_clock::now() + to_duration(seconds);
  while (bench_clock::now() < end && off + size <= span) {
    auto t0 = bench_clock::now();
    if (::pwrite(fd, record.data(), size, static_cast<off_t>(off)) < 0
        || ::fdatasync(fd) != 0)
      throw bench_error("cannot write " + path);
    ns.push_back(ns_between(t0, bench_clock::now()));
    off += size;
  }
  ::close(fd);
  return percentile(ns, 0.5);
}

/// One client, one operation at a time, durable: a zipfian 50/50 mix of
/// reads and updates of 1 000-byte records through the store (actors), the
/// same store's shard engine called directly (no actors), and SQLite (WAL,
/// synchronous=FULL), alternating in two rounds, with the sync floor.
void run_single(caf::actor_system& sys, const bench_options& opts) {
  auto baseline = sys.registry().running();
  auto n = opts.single_keys;
  auto size = opts.sustained_value;
  zipfian keys{n};
  std::printf("\none durable client: %llu records of %zu bytes, zipfian keys, 50%% reads "
              "/ 50%% updates, one operation at a time, %u shards, %.1f s per run\n",
              static_cast<unsigned long long>(n), size, opts.shards, opts.single_seconds);
  temp_dir dir{opts.dir};
  auto store = open_loaded(sys, opts, dir.path(), n, size, true);
  auto timeout = client_timeout(opts);
  // One shard engine on its own, loaded.
  strata::shard_core_options ko;
  ko.dir = dir.path() + "/engine";
  ko.map_size = std::max<uint64_t>(1ull << 30, n * (size + 256) * 2);
  strata::shard_core engine{ko};
  for (uint64_t loaded = 0; loaded < n;) {
    std::vector<strata::operation> ops;
    for (auto end = std::min(n, loaded + load_chunk); loaded < end; ++loaded)
      ops.push_back(strata::operation::set(make_key(loaded), sized_value(loaded, size)));
    engine.write({strata::write_request::plain_ops(ops)});
  }
  sqlite_side sqlite{dir.path() + "/sqlite.db"};
  sqlite.load(n, size);

  auto via_store = [&](uint64_t) {
    // The event-based client of the other suites, one request in flight.
    auto writes = std::make_shared<write_latencies>();
    auto reads = std::make_shared<write_latencies>();
    auto r = run_clients(sys, opts, 1, 1,
                         mixed_work{store, std::make_shared<zipfian>(n), size, writes,
                                    timeout, reads},
                         opts.single_seconds);
    if (r.errors > 0)
      throw bench_error("single client: " + r.first_error);
    mix_figures f;
    f.rate = r.rate;
    f.read_p50 = percentile(reads->ns, 0.5);
    f.write_p50 = percentile(writes->ns, 0.5);
    return f;
  };
  // A thread of the program asking through a scoped actor, as the typed
  // blocking client does (request, then receive).
  std::optional<caf::scoped_actor> blocking;
  blocking.emplace(sys);
  auto via_blocking = [&](uint64_t seed) {
    auto& self = *blocking;
    return mix_loop(
      keys, opts.single_seconds, seed,
      [&](uint64_t i) {
        self->request(store, timeout, atom::get_v, make_key(i))
          .receive(
            [&](maybe_bytes& v) {
              if (!v || v->size() != size || std::memcmp(v->data(), &i, sizeof(i)) != 0)
                throw bench_error("blocking client: wrong value");
            },
            [&](caf::error& e) {
              throw bench_error("blocking client: " + strata::render(e));
            });
      },
      [&](uint64_t i) {
        self->request(store, timeout, atom::set_v, make_key(i), sized_value(i, size))
          .receive([] {},
                   [&](caf::error& e) {
                     throw bench_error("blocking client: " + strata::render(e));
                   });
      });
  };
  auto direct = [&](uint64_t seed) {
    return mix_loop(
      keys, opts.single_seconds, seed,
      [&](uint64_t i) {
        auto v = engine.get(make_key(i));
        if (!v || v->size() != size || std::memcmp(v->data(), &i, sizeof(i)) != 0)
          throw bench_error("engine: wrong value");
      },
      [&](uint64_t i) {
        std::vector<strata::operation> ops{
          strata::operation::set(make_key(i), sized_value(i, size))};
        auto out = engine.write({strata::write_request::plain_ops(ops)});
        if (out.at(0).code != strata::errc::none)
          throw bench_error("engine: " + out[0].message);
      });
  };
  auto peer = [&](uint64_t seed) {
    return mix_loop(
      keys, opts.single_seconds, seed, [&](uint64_t i) { sqlite.get(i, size); },
      [&](uint64_t i) { sqlite.put(i, size); });
  };
  mix_figures best_store, best_blocking, best_direct, best_peer;
  auto keep = [](mix_figures& best, const mix_figures& f) {
    if (f.rate > best.rate)
      best = f;
  };
  for (uint64_t round = 0; round < 2; ++round) {
    keep(best_store, via_store(round));
    keep(best_blocking, via_blocking(round));
    keep(best_direct, direct(round));
    keep(best_peer, peer(round));
  }
  auto floor = sync_floor_p50(dir.path(), size + 40, 1.0);
  std::printf("\n%-44s %-12s %-11s %-11s %-10s\n", "one durable client, 50/50 (best of 2)",
              "ops/s", "read p50", "write p50", "vs SQLite");
  auto line = [&](const char* name, const mix_figures& f) {
    std::printf("%-44s %-12s %-11s %-11s %.2fx\n", name, format_rate(f.rate).c_str(),
                f.read_p50 ? format_latency(f.read_p50).c_str() : "-",
                format_latency(f.write_p50).c_str(), f.rate / best_peer.rate);
  };
  line("strata store, event-based client actor", best_store);
  line("strata store, blocking scoped_actor", best_blocking);
  line("strata shard engine, called directly", best_direct);
  line("SQLite 3, WAL, synchronous=FULL", best_peer);
  std::printf("%-44s %-12s %-11s %-11s\n", "sync floor: 1 KiB write + fdatasync", "-", "-",
              format_latency(floor).c_str());
  std::printf("%s\n", best_store.rate >= best_peer.rate ? "strata >= 1x SQLite FULL: met"
                                                         : "strata >= 1x SQLite FULL: MISSED");
  std::fflush(stdout);
  blocking.reset();
  close_store(sys, store, baseline);
}

uint64_t run(caf::actor_system& sys, const bench_options& opts) {
  std::vector<row> rows;
  std::printf("strata-bench: %llu keys (%zu-byte keys, %zu-byte values), %u "
              "shards, %zu CAF workers, %.1f s per run\n",
              static_cast<unsigned long long>(opts.keys), key_size, value_size,
              opts.shards, sys.scheduler().num_workers(), opts.seconds);
  if (opts.suite == "kv" || opts.suite == "all")
    run_kv(sys, opts, rows);
  if (opts.suite == "txn" || opts.suite == "all")
    run_txn(sys, opts, rows);
  if (opts.suite == "remote" || opts.suite == "all")
    run_remote(sys, opts, rows);
  if (opts.suite == "sustained" || opts.suite == "all")
    run_sustained(sys, opts);
  if (opts.suite == "single" || opts.suite == "all")
    run_single(sys, opts);
  // -- report ------------------------------------------------------------------------
  print_table(rows);
  std::printf("* get_many rates are keys/s; latencies are per request of %zu "
              "keys.\n  baseline: raw LMDB (one thread; durable: default flags, one put "
              "per commit; no-sync: MDB_NOSYNC), or for remote rows a bare typed\n"
              "  actor over an in-memory map in another process (remote sets are\n"
              "  no-sync on both sides). strata latencies include queueing behind\n"
              "  the other requests in flight.\n",
              opts.many_keys);
  uint64_t errors = 0;
  for (auto& r : rows) {
    for (auto* x : {&r.strata, &r.raw}) {
      if (x->errors == 0)
        continue;
      errors += x->errors;
      std::printf("ERROR in %s (%s): %llu failed requests, first: %s\n",
                  r.name.c_str(), x == &r.strata ? "strata" : "raw",
                  static_cast<unsigned long long>(x->errors),
                  x->first_error.c_str());
    }
  }
  return errors;
}

// -- command line --------------------------------------------------------------------

/// Parses our flags into `opts` and leaves the rest in `rest` for CAF.
/// Returns false after printing a message if the command line is bad.
bool parse_args(int argc, char** argv, bench_options& opts,
                std::vector<std::string>& rest, bool& help) {
  auto number = [](const std::string& flag, const char* text, double min,
                   double& out) {
    char* end = nullptr;
    out = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(out >= min)) {
      std::cerr << "strata-bench: " << flag << " needs a number >= " << min
                << ", got '" << text << "'\n";
      return false;
    }
    return true;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return true;
    }
    std::string flag = arg;
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    static const char* ours[] = {"--keys",       "--shards",
                                 "--seconds",    "--raw-write-seconds",
                                 "--get-in-flight", "--get-clients",
                                 "--many-keys",  "--many-in-flight",
                                 "--writers",    "--timeout",
                                 "--rounds",     "--dir",
                                 "--suite",      "--txn-clients",
                                 "--txn-keys",   "--txn-shards",
                                 "--serve",      "--port-guard",
                                 "--sustained-seconds", "--sustained-keys",
                                 "--single-keys", "--single-seconds"};
    if (std::find_if(std::begin(ours), std::end(ours),
                     [&](const char* x) { return flag == x; })
        == std::end(ours)) {
      rest.push_back(arg);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::cerr << "strata-bench: " << flag << " needs a value\n";
        return false;
      }
      value = argv[++i];
    }
    if (flag == "--dir") {
      opts.dir = value;
      continue;
    }
    if (flag == "--serve") {
      opts.serve = value;
      continue;
    }
    if (flag == "--port-guard") {
      if (value != "on" && value != "off") {
        std::cerr << "strata-bench: --port-guard is on or off, not '" << value << "'\n";
        return false;
      }
      opts.port_guard = value == "on";
      continue;
    }
    if (flag == "--suite") {
      if (value != "kv" && value != "txn" && value != "remote" && value != "sustained"
          && value != "single" && value != "all") {
        std::cerr << "strata-bench: --suite is kv, txn, remote, sustained, single or all, "
                     "not '"
                  << value << "'\n";
        return false;
      }
      opts.suite = value;
      continue;
    }
    double x = 0;
    if (!number(flag, value.c_str(), flag == "--seconds"
                                         || flag == "--raw-write-seconds"
                                         || flag == "--single-seconds"
                                       ? 0.1
                                       : 1,
                x))
      return false;
    if (flag == "--keys")
      opts.keys = static_cast<uint64_t>(x);
    else if (flag == "--shards")
      opts.shards = static_cast<uint32_t>(x);
    else if (flag == "--seconds")
      opts.seconds = x;
    else if (flag == "--rounds")
      opts.rounds = static_cast<size_t>(x);
    else if (flag == "--raw-write-seconds")
      opts.raw_write_seconds = x;
    else if (flag == "--get-in-flight")
      opts.get_in_flight = static_cast<size_t>(x);
    else if (flag == "--get-clients")
      opts.get_clients = static_cast<size_t>(x);
    else if (flag == "--many-keys")
      opts.many_keys = static_cast<size_t>(x);
    else if (flag == "--many-in-flight")
      opts.many_in_flight = static_cast<size_t>(x);
    else if (flag == "--writers")
      opts.writers = static_cast<size_t>(x);
    else if (flag == "--txn-clients")
      opts.txn_clients = static_cast<size_t>(x);
    else if (flag == "--txn-keys")
      opts.txn_keys = static_cast<uint64_t>(x);
    else if (flag == "--txn-shards") {
      if (x != 1 && x != 2) {
        std::cerr << "strata-bench: --txn-shards is 1 or 2\n";
        return false;
      }
      opts.txn_shards = static_cast<uint32_t>(x);
    }
    else if (flag == "--timeout")
      opts.timeout = std::chrono::milliseconds{static_cast<int64_t>(x * 1000)};
    else if (flag == "--sustained-seconds")
      opts.sustained_seconds = x;
    else if (flag == "--sustained-keys")
      opts.sustained_keys = static_cast<uint64_t>(x);
    else if (flag == "--single-keys")
      opts.single_keys = static_cast<uint64_t>(x);
    else if (flag == "--single-seconds")
      opts.single_seconds = x;
  }
  if (opts.keys >= 1000000000000000ull) {
    std::cerr << "strata-bench: --keys must stay below 10^15\n";
    return false;
  }
  return true;
}

struct bench_config : caf::actor_system_config {
  bench_config() {
    strata::configure(*this);
  }
};

} // namespace

int main(int argc, char** argv) {
  auto start = bench_clock::now();
  bench_options opts;
  std::vector<std::string> caf_args;
  bool help = false;
  if (!parse_args(argc, argv, opts, caf_args, help))
    return 2;
  if (help) {
    print_usage();
    return 0;
  }
  bench_config cfg;
  if (auto err = cfg.parse(caf_args)) {
    std::cerr << "strata-bench: " << strata::render(err) << " (see --help)\n";
    return 2;
  }
  if (!cfg.remainder.empty()) {
    std::cerr << "strata-bench: unknown argument '" << cfg.remainder.front()
              << "' (see --help)\n";
    return 2;
  }
  caf::actor_system sys{cfg};
  if (!opts.serve.empty())
    return serve(sys, opts);
  try {
    auto errors = run(sys, opts);
    std::printf("total runtime %.1f s\n",
                std::chrono::duration<double>(bench_clock::now() - start).count());
    return errors == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    // The store (if any) is left to the actor system's shutdown.
    std::cerr << "strata-bench: " << e.what() << "\n";
    return 1;
  }
}

// strata-events-bench: what the change feed costs and delivers, each figure
// beside its baseline in the same run:
// - durable sets from 64 writers with the change log off, then on with 0, 1
//   and 10 watchers (every key, answering at once): ratios against the log
//   off and against 0 watchers;
// - the latency from a set's request to its change reaching a watcher, p50
//   and p99, in one process and over loopback (a store node in a child
//   process), on a no-sync store so that the disk does not dominate;
// - catch-up: a watch replaying a retained log of many commits, changes/s,
//   against a scan of the same store's data (entries/s).
//
// Not a test; run by hand: build/bench/strata-events-bench [--seconds S]
// [--rounds R] [--changes N] [--dir DIR]

#include <unistd.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "strata/all.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct options {
  double seconds = 3;
  int rounds = 2;
  size_t writers = 64;
  size_t changes = 200000;
  std::string dir;
};

struct config : caf::actor_system_config {
  config() {
    strata::configure(*this);
  }
};

uint64_t now_ns() {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count());
}

/// A watcher's subscriber: counts changes and, for values that carry a send
/// time (8 bytes), records the latency.
struct tally {
  std::atomic<uint64_t> changes{0};
  std::mutex mtx;
  std::vector<double> latencies_us;
};

strata::event_actor::behavior_type counter(strata::event_actor::pointer,
                                           std::shared_ptr<tally> t) {
  return {
    [](strata::atom::before, std::vector<strata::storage_event>&) {},
    [](strata::atom::after, std::vector<strata::storage_event>&) {},
    [t](strata::atom::change, std::vector<strata::change_batch>& bs) {
      auto now = now_ns();
      uint64_t n = 0;
      for (auto& b : bs)
        for (auto& c : b.changes) {
          ++n;
          // Raw values: strata's header, then the payload's last 8 bytes.
          if (c.new_value.size() >= 8 && c.key.rfind("lat:", 0) == 0) {
            uint64_t sent = 0;
            std::memcpy(&sent, c.new_value.data() + c.new_value.size() - 8, 8);
            std::lock_guard<std::mutex> guard{t->mtx};
            t->latencies_us.push_back(double(now - sent) / 1000.0);
          }
        }
      t->changes += n;
    },
    [](strata::atom::failed, strata::error_event& e) {
      std::cerr << "watch ended: " << strata::render(e.error) << "\n";
    },
  };
}

strata::watcher_actor start_watch(caf::actor_system& sys,
                                  const strata::observable_storage_actor& store,
                                  const strata::event_actor& who, const std::string& from = {}) {
  caf::scoped_actor self{sys};
  strata::watch_options o;
  o.from = from;
  strata::watcher_actor w;
  self->request(store, 30s, strata::atom::watch_v, o, who)
    .receive([&](strata::watcher_actor& x) { w = x; },
             [](caf::error& err) {
               throw std::runtime_error("watch failed: " + strata::render(err));
             });
  return w;
}

/// 64 writers, one set in flight each, until the time is up: sets/s.
double run_writers(caf::actor_system& sys, const strata::observable_storage_actor& store,
                   const options& opts, int round) {
  std::atomic<uint64_t> done{0};
  std::atomic<size_t> running{opts.writers};
  auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(opts.seconds));
  auto start = clock_type::now();
  for (size_t w = 0; w < opts.writers; ++w)
    sys.spawn([&, w](caf::event_based_actor* self) {
      // The step refers to itself weakly; the request in flight holds it.
      auto step = std::make_shared<std::function<void(uint64_t)>>();
      std::weak_ptr<std::function<void(uint64_t)>> weak = step;
      *step = [=, &done, &running](uint64_t n) {
        if (clock_type::now() >= deadline) {
          --running;
          return;
        }
        auto me = weak.lock();
        auto key = "w" + std::to_string(round) + ":" + std::to_string(w) + ":"
                   + std::to_string(n);
        self->request(store, caf::infinite, strata::atom::set_v, key, strata::bytes(100, 'v'))
          .then(
            [me, n, &done] {
              ++done;
              (*me)(n + 1);
            },
            [&running](caf::error& err) {
              std::cerr << "set failed: " << strata::render(err) << "\n";
              --running;
            });
      };
      (*step)(0);
    });
  while (running > 0)
    std::this_thread::sleep_for(5ms);
  return double(done) / std::chrono::duration<double>(clock_type::now() - start).count();
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  return xs[std::min(xs.size() - 1, static_cast<size_t>(p * double(xs.size())))];
}

/// Sets one key at a time, each value carrying its send time, and waits for
/// each change to arrive: the latencies.
std::vector<double> measure_latency(caf::actor_system& sys,
                                    const strata::observable_storage_actor& store,
                                    size_t count) {
  auto t = std::make_shared<tally>();
  auto who = sys.spawn(counter, t);
  auto w = start_watch(sys, store, who);
  strata::blocking_store<std::string> db{sys, store};
  for (size_t i = 0; i < count; ++i) {
    std::string payload(8, '\0');
    auto sent = now_ns();
    std::memcpy(payload.data(), &sent, 8);
    if (auto err = db.set("lat:" + std::to_string(i % 64), payload))
      throw std::runtime_error("set failed: " + strata::render(err));
    auto until = clock_type::now() + 10s;
    while (t->changes <= i && clock_type::now() < until)
      std::this_thread::yield();
  }
  caf::anon_send(w, strata::atom::unwatch_v);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
  std::lock_guard<std::mutex> guard{t->mtx};
  return t->latencies_us;
}

strata::observable_storage_actor open(caf::actor_system& sys, const std::string& dir,
                                      strata::sync_mode mode, bool log) {
  strata::store_options so;
  so.id = "events-bench";
  so.data_dir = dir;
  so.sync = mode;
  so.log_level = "warning";
  so.changes.enabled = log;
  so.changes.retain_commits = 1000000;
  auto h = strata::spawn_store(sys, so);
  if (!h)
    throw std::runtime_error("cannot open " + dir + ": " + strata::render(h.error()));
  return *h;
}

void close(caf::actor_system& sys, strata::observable_storage_actor& store, size_t baseline) {
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  store = nullptr;
  sys.registry().await_running_count_equal(baseline);
}

void row(const char* what, double value, const char* unit, double base, const char* vs) {
  if (base > 0)
    std::printf("%-44s %12.1f %-10s ratio %6.2fx %s\n", what, value, unit, value / base, vs);
  else
    std::printf("%-44s %12.1f %-10s\n", what, value, unit);
  std::fflush(stdout);
}

/// The child process of the loopback phase: a no-sync store published on
/// 127.0.0.1, until its stdin closes.
int serve(const std::string& dir) {
  config cfg;
  caf::actor_system sys{cfg};
  auto store = open(sys, dir, strata::sync_mode::nosync, true);
  auto port = strata::publish(sys, store, 0, "127.0.0.1", strata::store_options{}.frame_limit());
  if (!port) {
    std::cerr << strata::render(port.error()) << "\n";
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(*port));
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string{argv[++i]} : std::string{}; };
    if (a == "--serve")
      return serve(next());
    if (a == "--seconds")
      opts.seconds = std::stod(next());
    else if (a == "--rounds")
      opts.rounds = std::stoi(next());
    else if (a == "--changes")
      opts.changes = std::stoul(next());
    else if (a == "--dir")
      opts.dir = next();
    else {
      std::cerr << "usage: strata-events-bench [--seconds S] [--rounds R] [--changes N] "
                   "[--dir DIR]\n";
      return a == "--help" ? 0 : 2;
    }
  }
  char tmpl[] = "/tmp/strata-events-bench-XXXXXX";
  auto base = opts.dir.empty() ? std::string{::mkdtemp(tmpl)} : opts.dir;
  config cfg;
  caf::actor_system sys{cfg};
  auto baseline = sys.registry().running();
  try {
    // -- durable sets with 0, 1 and 10 watchers ----------------------------------
    double off = 0, zero = 0, one = 0, ten = 0;
    for (int r = 0; r < opts.rounds; ++r) {
      auto plain = open(sys, base + "/nolog", strata::sync_mode::durable, false);
      off = std::max(off, run_writers(sys, plain, opts, r));
      close(sys, plain, baseline);
      auto store = open(sys, base + "/log", strata::sync_mode::durable, true);
      zero = std::max(zero, run_writers(sys, store, opts, r * 10));
      std::vector<strata::watcher_actor> ws;
      std::vector<strata::event_actor> whos;
      for (int n : {1, 9}) {
        for (int k = 0; k < n; ++k) {
          whos.push_back(sys.spawn(counter, std::make_shared<tally>()));
          ws.push_back(start_watch(sys, store, whos.back()));
        }
        auto rate = run_writers(sys, store, opts, r * 10 + n);
        (n == 1 ? one : ten) = std::max(n == 1 ? one : ten, rate);
      }
      for (auto& w : ws)
        caf::anon_send(w, strata::atom::unwatch_v);
      for (auto& who : whos)
        caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
      close(sys, store, baseline);
    }
    row("durable set, 64 writers, change log off", off, "sets/s", 0, "");
    row("durable set, 64 writers, log on, 0 watchers", zero, "sets/s", off, "vs log off");
    row("durable set, 64 writers, 1 watcher", one, "sets/s", zero, "vs 0 watchers");
    row("durable set, 64 writers, 10 watchers", ten, "sets/s", zero,
        "vs 0 watchers (target >= 0.8x)");

    // -- latency, in process and over loopback -----------------------------------
    {
      auto store = open(sys, base + "/lat", strata::sync_mode::nosync, true);
      auto lat = measure_latency(sys, store, 3000);
      close(sys, store, baseline);
      std::printf("%-44s p50 %8.1f us   p99 %8.1f us\n", "change latency, in process",
                  percentile(lat, 0.5), percentile(lat, 0.99));
      std::fflush(stdout);
    }
    {
      int in[2], out[2];
      if (::pipe(in) != 0 || ::pipe(out) != 0)
        throw std::runtime_error("pipe failed");
      auto pid = ::fork();
      if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::close(in[1]);
        ::close(out[0]);
        auto dir = base + "/remote";
        ::execl("/proc/self/exe", "strata-events-bench", "--serve", dir.c_str(), nullptr);
        ::_exit(127);
      }
      ::close(in[0]);
      ::close(out[1]);
      std::string line;
      char c;
      while (::read(out[0], &c, 1) == 1 && c != '\n')
        line += c;
      if (line.rfind("listening on 127.0.0.1:", 0) != 0)
        throw std::runtime_error("the store node did not start: '" + line + "'");
      auto port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
      auto store = strata::connect_store(sys, "127.0.0.1", port);
      if (!store)
        throw std::runtime_error("connect failed: " + strata::render(store.error()));
      auto lat = measure_latency(sys, *store, 2000);
      std::printf("%-44s p50 %8.1f us   p99 %8.1f us\n", "change latency, over loopback",
                  percentile(lat, 0.5), percentile(lat, 0.99));
      std::fflush(stdout);
      *store = nullptr;
      ::close(in[1]);
      ::waitpid(pid, nullptr, 0);
      ::close(out[0]);
    }

    // -- catch-up replay -------------------------------------------------------------
    {
      auto store = open(sys, base + "/replay", strata::sync_mode::nosync, true);
      double replay = 0, scan = 0;
      { // The clients end before the store closes: each holds an actor.
        strata::observer<std::string> events{sys, store};
        auto start = events.changes("");
        if (!start)
          throw std::runtime_error(strata::render(start.error()));
        strata::blocking_store<std::string> db{sys, store};
        // Commits of 25 changes per shard: set_many of 100 keys over 4 shards.
        for (size_t i = 0; i < opts.changes; i += 100) {
          std::map<std::string, std::string> batch;
          for (size_t k = i; k < i + 100; ++k)
            batch["r:" + std::to_string(k)] = std::string(100, 'v');
          if (auto err = db.set_many(batch))
            throw std::runtime_error(strata::render(err));
        }
        auto t = std::make_shared<tally>();
        auto who = sys.spawn(counter, t);
        auto t0 = clock_type::now();
        auto w = start_watch(sys, store, who, start->second);
        while (t->changes < opts.changes)
          std::this_thread::sleep_for(1ms);
        replay = double(opts.changes)
                 / std::chrono::duration<double>(clock_type::now() - t0).count();
        caf::anon_send(w, strata::atom::unwatch_v);
        caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
        auto t1 = clock_type::now();
        size_t scanned = 0;
        for (auto& e : db.entries()) {
          static_cast<void>(e);
          ++scanned;
        }
        scan = double(scanned) / std::chrono::duration<double>(clock_type::now() - t1).count();
      }
      close(sys, store, baseline);
      row("scan of the same data (baseline)", scan, "entries/s", 0, "");
      row("catch-up replay from the log", replay, "changes/s", scan, "vs scan");
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  if (opts.dir.empty())
    std::system(("rm -rf " + base).c_str());
  return 0;
}

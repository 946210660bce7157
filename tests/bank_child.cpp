// The store process of the crash tests: opens a durable store on DIR and
// runs CLIENTS threads of bank transfers (tests/bank.hpp), TRANSFERS each.
// Prints "ok <marker key>" for every transfer once its commit is
// acknowledged, then "done". The crash test kills it with SIGKILL, from
// outside or through a fault point (STRATA_CRASH_AT), and checks what a
// restart recovers against the acknowledged transfers.
//
//   bank_child DIR CLIENTS TRANSFERS

#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "strata/client.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"
#include "tests/child.hpp"
#include "tests/bank.hpp"

using namespace strata;

using test::child_config;
using test::say;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bank_child DIR CLIENTS TRANSFERS\n");
    return 2;
  }
  std::string dir = argv[1];
  int clients = std::stoi(argv[2]);
  int transfers = std::stoi(argv[3]);
  child_config cfg;
  caf::actor_system sys{cfg};
  auto store = spawn_store(sys, test::child_store(dir));
  if (!store) {
    std::fprintf(stderr, "error: %s\n", render(store.error()).c_str());
    return 1;
  }
  {
    blocking_store<int64_t> db{sys, *store};
    if (auto err = test::bank::open_accounts(db)) {
      std::fprintf(stderr, "error: %s\n", render(err).c_str());
      return 1;
    }
  }
  // Marker keys must be new in every run of the same directory.
  auto run = std::to_string(::getpid());
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      blocking_store<int64_t> db{sys, *store};
      std::mt19937 rng(static_cast<unsigned>(::getpid() * 31 + c));
      txn_options opts;
      opts.retries = 50;
      for (int n = 0; n < transfers; ++n) {
        int from = static_cast<int>(rng() % test::bank::accounts);
        int to = static_cast<int>((from + 1 + rng() % (test::bank::accounts - 1))
                                  % test::bank::accounts);
        auto amount = static_cast<int64_t>(1 + rng() % 200);
        auto key = "t/" + run + "/" + std::to_string(c) + "/" + std::to_string(n);
        caf::error why;
        auto r = test::bank::transfer(db, key, from, to, amount, &why, opts);
        if (r == test::bank::outcome::committed)
          say("ok " + key);
        else if (r == test::bank::outcome::failed)
          say("failed " + key + " " + render(why));
      }
    });
  for (auto& t : threads)
    t.join();
  caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
  await_closed(dir, std::chrono::seconds(20));
  say("done");
  return 0;
}

// A store process for the crash test of the change feed: it watches every key
// from a resume token and prints each
// change it handles, while writer threads store new keys and print each one
// acknowledged. The test kills it at a random moment and resumes from what
// it printed.
//
//   events_child DIR ROUND TOKEN
//   prints: got KEY SHARD SEQ | ack KEY

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>

#include "strata/client.hpp"
#include "strata/events.hpp"
#include "strata/store.hpp"
#include "tests/child.hpp"

using namespace strata;
using strata::test::say;

int main(int argc, char** argv) {
  if (argc < 4)
    return 2;
  strata::test::child_config cfg;
  caf::actor_system sys{cfg};
  auto store = spawn_store(sys, strata::test::child_store(argv[1]));
  if (!store) {
    say("error " + render(store.error()));
    return 1;
  }
  std::string round = argv[2];
  observer<std::string> events{sys, *store};
  watch_options o;
  o.from = argv[3];
  auto sub = events.watch(o, [](const typed_change<std::string>& c) {
    say("got " + c.key + " " + std::to_string(c.shard) + " " + std::to_string(c.seq));
  });
  if (!sub) {
    say("error " + render(sub.error()));
    return 1;
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      blocking_store<std::string> db{sys, *store};
      for (int i = 0;; ++i) {
        auto key = "r" + round + ":" + std::to_string(t) + ":" + std::to_string(i);
        if (!db.set(key, "v"))
          say("ack " + key);
      }
    });
  for (auto& w : writers)
    w.join();
}

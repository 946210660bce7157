// The store process of the unique-index crash test: opens a durable store on
// DIR with a unique index on "email" (created on the first run) and runs
// CLIENTS threads of random sets and deletes over their own keys with
// emails shared by all, so that they race for values across shards. Before
// each write it prints "try KEY", after an acknowledged one "ok set KEY
// EMAIL", "ok del KEY" or "dup KEY" (refused as a duplicate). The crash test
// kills it with SIGKILL and checks the restarted store against that.
//
//   unique_child DIR CLIENTS WRITES

#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "strata/envelope.hpp"
#include "strata/error.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"
#include "tests/child.hpp"

using namespace strata;

using test::child_config;
using test::say;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: unique_child DIR CLIENTS WRITES\n");
    return 2;
  }
  std::string dir = argv[1];
  int clients = std::stoi(argv[2]);
  int writes = std::stoi(argv[3]);
  child_config cfg;
  caf::actor_system sys{cfg};
  auto store = spawn_store(sys, test::child_store(dir));
  if (!store) {
    std::fprintf(stderr, "error: %s\n", render(store.error()).c_str());
    return 1;
  }
  {
    caf::scoped_actor self{sys};
    index_spec spec;
    spec.name = "email";
    spec.fields = {{"email", "btree", false}};
    spec.unique = true;
    caf::error err;
    self->request(*store, std::chrono::seconds(30), atom::create_index_v, spec)
      .receive([] {}, [&](caf::error& e) { err = std::move(e); });
    if (err) {
      std::fprintf(stderr, "error: %s\n", render(err).c_str());
      return 1;
    }
  }
  say("ready");
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      caf::scoped_actor self{sys};
      std::mt19937 rng(static_cast<unsigned>(::getpid() * 31 + c));
      for (int n = 0; n < writes; ++n) {
        auto key = "c" + std::to_string(c) + "-" + std::to_string(rng() % 20);
        say("try " + key);
        caf::error err;
        if (rng() % 4 == 0) {
          self->request(*store, std::chrono::seconds(30), atom::del_v, key)
            .receive([](bool) {}, [&](caf::error& e) { err = std::move(e); });
          if (!err)
            say("ok del " + key);
        } else {
          auto email = "e" + std::to_string(rng() % 40);
          auto d = document::object();
          d.set("email", document::string(email));
          self->request(*store, std::chrono::seconds(30), atom::set_v, key, encode_doc(d))
            .receive([] {}, [&](caf::error& e) { err = std::move(e); });
          if (!err)
            say("ok set " + key + " " + email);
          else if (code_of(err) == errc::duplicate_key)
            say("dup " + key);
        }
        if (err && code_of(err) != errc::duplicate_key)
          say("failed " + key + " " + render(err));
      }
    });
  for (auto& t : threads)
    t.join();
  caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
  await_closed(dir, std::chrono::seconds(20));
  say("done");
  return 0;
}

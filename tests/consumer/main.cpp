// Opens a store through the installed headers and library, writes, reads back.
#include <iostream>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <cereal/types/string.hpp>

#include <strata/all.hpp>
#include <strata/routing.hpp> // installed: where a key lives

int main(int argc, char** argv) {
  if (argc != 2)
    return 2;
  caf::actor_system_config cfg;
  strata::configure(cfg);
  caf::actor_system sys{cfg};
  strata::store_options opts;
  opts.data_dir = argv[1];
  opts.sync = strata::sync_mode::nosync;
  auto store = strata::spawn_store(sys, opts);
  if (!store) {
    std::cerr << strata::render(store.error()) << "\n";
    return 1;
  }
  int rc = 1;
  {
    strata::blocking_store<std::string> s{sys, *store};
    if (!s.set("k", "installed") && *s.get("k") == std::optional<std::string>{"installed"}
        && strata::routing::shard_of("k", opts.shards) < opts.shards) {
      std::cout << "consumer ok\n";
      rc = 0;
    }
  }
  caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
  return rc;
}

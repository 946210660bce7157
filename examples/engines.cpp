// One program, every storage engine.
//
// Shows: choosing an engine with store_options (lmdb, sqlite, json, memory,
// graph) and its settings, the same typed code on each, and `info`: which
// engine each shard runs on and what that engine can do.
//
// Run:  ./build/examples/engines [DIR [SPARQL-URL USER PASSWORD]]
// (DIR defaults to ./engines-data). Each engine gets DIR/<engine>; then look
// at DIR/json/shard-000/strata.json, or open DIR/sqlite/shard-000/strata.sqlite
// with the sqlite3 tool. With a SPARQL endpoint (Virtuoso:
// http://127.0.0.1:8890/sparql-auth dba dba), the graph engine runs too; its
// `info` names each shard's graph, which a SPARQL query can then read.

#include <iostream>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "strata/all.hpp"

struct city {
  std::string name;
  int population = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(population));
  }
};

int main(int argc, char** argv) {
  caf::actor_system_config cfg;
  strata::configure(cfg);
  caf::actor_system sys{cfg};
  std::string dir = argc > 1 ? argv[1] : "engines-data";
  std::vector<std::string> engines{"lmdb", "sqlite", "json", "memory"};
  if (argc > 4)
    engines.push_back("graph");
  for (auto& engine : engines) {
    strata::store_options opts;
    opts.data_dir = dir + "/" + engine;
    opts.shards = 2;
    opts.engine = engine;
    opts.log_level = "warning";
    opts.json.pretty = true;      // engine json: one entry per line
    opts.sqlite.table = "cities"; // engine sqlite: the data's table
    if (engine == "graph") {      // engine graph: the SPARQL server
      opts.graph.url = argv[2];
      opts.graph.username = argv[3];
      opts.graph.password = argv[4];
    }
    auto store = strata::spawn_store(sys, opts);
    if (!store) {
      std::cerr << engine << ": " << strata::render(store.error()) << "\n";
      return 1;
    }
    {
      // The same typed code on every engine.
      strata::blocking_store<city> cities{sys, *store};
      if (auto err = cities.set("city:lyon", {"Lyon", 522250})) {
        std::cerr << engine << ": " << strata::render(err) << "\n";
        return 1;
      }
      auto lyon = cities.get("city:lyon");
      std::cout << engine << ": city:lyon = " << (*lyon)->name << ", " << *cities.size()
                << " entries\n";
      // Each shard's engine and its capabilities.
      caf::scoped_actor self{sys};
      self->request(*store, std::chrono::seconds{10}, strata::atom::info_v)
        .receive(
          [&](const std::vector<strata::shard_info>& shards) {
            for (auto& s : shards) {
              std::cout << "  shard " << s.shard << " (" << s.engine << ", " << s.path << "):";
              for (auto& c : s.capabilities)
                std::cout << ' ' << c;
              for (auto& t : s.tuning)
                if (t.rfind("graph=", 0) == 0)
                  std::cout << " (" << t << ')';
              std::cout << '\n';
            }
          },
          [&](const caf::error& err) { std::cerr << strata::render(err) << "\n"; });
    }
    caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
    strata::await_closed(opts.data_dir, std::chrono::seconds{15});
  }
}

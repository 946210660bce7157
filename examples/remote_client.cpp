// An actor client of a remote strata node.
//
// Shows: connecting to a node published by strata-node (connect_store), then
// an event-based actor that pipelines typed requests (several in flight at
// once) and a typed ordered scan, all with finite timeouts and error handlers.
//
// Run:  ./build/strata-node --data /tmp/strata-demo --port 7600 &
//       ./build/examples/remote_client 127.0.0.1 7600

#include <iostream>
#include <memory>
#include <string>

#include <cereal/types/string.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "strata/all.hpp"

struct reading {
  std::string sensor;
  double celsius = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(sensor), CEREAL_NVP(celsius));
  }
};

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: remote_client HOST PORT\n";
    return 2;
  }
  caf::actor_system_config cfg;
  strata::configure(cfg); // both sides must announce the same message types
  caf::actor_system sys{cfg};
  // connect_store blocks the calling thread (it retries while the node is
  // starting or busy): fine in main(), never in an actor.
  auto node = strata::connect_store(sys, argv[1], static_cast<uint16_t>(std::stoi(argv[2])));
  if (!node) {
    std::cerr << "error: " << strata::render(node.error()) << "\n";
    return 1;
  }
  // Made with the actor system, the client reaches the node through a local
  // stand-in: should the node go away, every request in flight fails at once
  // with CONNECTION_LOST instead of waiting for its timeout.
  strata::store<reading> readings{sys, *node, std::chrono::seconds(5)};
  caf::scoped_actor main_actor{sys};
  auto report = caf::actor{main_actor};
  sys.spawn([=](caf::event_based_actor* self) {
    // Ten writes in flight at once; each answer arrives once it is durable.
    auto left = std::make_shared<int>(10);
    for (int i = 0; i < 10; ++i) {
      readings.set(self, "reading:" + std::to_string(i), {"s1", 20.0 + i})
        .then(
          [=](caf::unit_t) {
            if (--*left > 0)
              return;
            strata::scan_options opts;
            opts.prefix = "reading:";
            readings.page(self, opts).then(
              [=](auto page) {
                std::string text;
                for (auto& [key, r] : page.first)
                  text += key + " = " + std::to_string(r.celsius) + "\n";
                self->send(report, text);
              },
              [=](caf::error e) { self->send(report, strata::render(e)); });
          },
          [=](caf::error e) { self->send(report, strata::render(e)); });
    }
  });
  main_actor->receive([](const std::string& text) { std::cout << text; });
  return 0;
}

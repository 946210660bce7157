// Serialization settings: one store, values written as binary documents,
// MessagePack with zstd and JSON with gzip, and by a serializer of the
// application's own; every client reads them all, and a query reads fields
// of every document format.
//
// Shows: serialize_with on a typed client, the header byte that names each
// value's format, serializer<T> (the spec's Serializer<T>).
//
// Run:  ./build/examples/serialization [DIR]     (default: ./serialization-data)

#include <iostream>
#include <string>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "strata/all.hpp"

struct review {
  std::string product;
  int stars = 0;
  std::string text;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(product), CEREAL_NVP(stars), CEREAL_NVP(text));
  }
};

int main(int argc, char** argv) {
  caf::actor_system_config cfg;
  strata::configure(cfg);
  caf::actor_system sys{cfg};
  strata::store_options opts;
  opts.data_dir = argc > 1 ? argv[1] : "serialization-data";
  opts.log_level = "warning";
  auto store = strata::spawn_store(sys, opts);
  if (!store) {
    std::cerr << strata::render(store.error()) << "\n";
    return 1;
  }
  {
    std::string text = "Sturdy, quiet and easy to clean. Boils fast. Sturdy, quiet and easy to "
                       "clean. Boils fast. Sturdy, quiet and easy to clean. Boils fast.";
    // The default: binary documents, uncompressed.
    strata::blocking_store<review> plain{sys, *store};
    plain.set("review:1", {"kettle", 5, text});
    // MessagePack, compressed with zstd.
    strata::blocking_store<review> packed{sys, *store};
    packed.serialize_with({strata::value_encoding::msgpack, strata::value_compression::zstd});
    packed.set("review:2", {"kettle", 4, text});
    // JSON text, compressed with gzip.
    strata::blocking_store<review> readable{sys, *store};
    readable.serialize_with({strata::value_encoding::json, strata::value_compression::gzip});
    readable.set("review:3", {"toaster", 2, text});
    // The application's own format: opaque to queries.
    strata::serializer<review> line;
    line.serialize = [](const review& r) {
      return r.product + "|" + std::to_string(r.stars) + "|" + r.text;
    };
    line.deserialize = [](std::string_view s) {
      auto a = s.find('|');
      auto b = s.find('|', a + 1);
      return review{std::string{s.substr(0, a)}, std::stoi(std::string{s.substr(a + 1, b - a - 1)}),
                    std::string{s.substr(b + 1)}};
    };
    strata::blocking_store<review> own{sys, *store};
    own.serialize_with({}, line);
    own.set("review:4", {"kettle", 1, "leaks"});

    // Each value's header names how it was written.
    caf::scoped_actor self{sys};
    for (auto key : {"review:1", "review:2", "review:3", "review:4"}) {
      self->request(*store, std::chrono::seconds{10}, strata::atom::get_v, std::string{key})
        .receive(
          [&](const strata::maybe_bytes& b) {
            strata::opened_value v{b->data(), b->size()};
            std::cout << key << ": " << strata::to_string(v.header().encoding) << " + "
                      << strata::to_string(v.header().compression) << ", " << b->size()
                      << " bytes stored\n";
          },
          [&](const caf::error& err) { std::cerr << strata::render(err) << "\n"; });
    }
    // The plain client reads every document format; the custom value needs
    // its serializer.
    for (auto key : {"review:2", "review:3"})
      std::cout << key << " read by the plain client: " << (*plain.get(key))->stars
                << " stars\n";
    std::cout << "review:4 by the plain client: " << strata::render(plain.get("review:4").error())
              << "\nreview:4 by its own client: " << (*own.get("review:4"))->text << "\n";
    // A query reads fields of documents in every format.
    auto kettles = plain.count(strata::pattern{strata::where("product").eq("kettle")});
    std::cout << "documents about kettles: " << *kettles << "\n";
  }
  caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
  strata::await_closed(opts.data_dir, std::chrono::seconds{15});
}

// Embedding strata in a CAF application.
//
// Shows: configuring an actor system for strata, spawning a store on a local
// data directory, typed requests from an event-based actor (strata::store<T>),
// and ordered iteration from main() (strata::blocking_store<T>).
//
// Run:  ./build/examples/embedded [DATA_DIR]     (default: ./embedded-data)
// Runs again on the same directory find the data of the previous run.

#include <iostream>
#include <string>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "strata/all.hpp"

// Any type cereal can serialize can be stored; it is kept as a
// self-describing document, so queries can later read its fields.
struct book {
  std::string title;
  std::string author;
  int year = 0;
  std::vector<std::string> tags;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(title), CEREAL_NVP(author), CEREAL_NVP(year), CEREAL_NVP(tags));
  }
};

int main(int argc, char** argv) {
  caf::actor_system_config cfg;
  strata::configure(cfg); // message types, error category, scheduler defaults
  caf::actor_system sys{cfg};

  strata::store_options opts;
  opts.data_dir = argc > 1 ? argv[1] : "embedded-data";
  opts.shards = 2;
  auto handle = strata::spawn_store(sys, opts);
  if (!handle) {
    std::cerr << "error: " << strata::render(handle.error()) << "\n";
    return 1;
  }

  // An event-based actor stores two books, reads one back and reports to
  // main(). Every request has a value handler and an error handler.
  strata::store<book> books{*handle};
  caf::scoped_actor waiter{sys};
  auto report = caf::actor{waiter};
  auto fail = [report](caf::event_based_actor* self) {
    return [=](caf::error e) { self->send(report, strata::render(e)); };
  };
  sys.spawn([=](caf::event_based_actor* self) {
    books.set(self, "book:1", {"Dune", "Frank Herbert", 1965, {"sf"}})
      .then(
        [=](caf::unit_t) {
          books.set(self, "book:2", {"Emma", "Jane Austen", 1815, {"novel"}})
            .then(
              [=](caf::unit_t) {
                books.get(self, "book:1")
                  .then(
                    [=](std::optional<book> b) {
                      self->send(report, "actor read: " + (b ? b->title : "nothing"));
                    },
                    fail(self));
              },
              fail(self));
        },
        fail(self));
  });
  waiter->receive([](const std::string& line) { std::cout << line << "\n"; });

  // From main(), the blocking client: point reads and lazy ordered iteration
  // (pages are fetched on demand).
  {
    strata::blocking_store<book> blocking{sys, *handle};
    std::cout << "books stored: " << *blocking.size() << "\n";
    strata::scan_options scan;
    scan.prefix = "book:";
    for (auto& [key, b] : blocking.entries(scan))
      std::cout << key << ": " << b.title << " by " << b.author << " (" << b.year
                << ")\n";
    // Queries over the documents' fields, helped by an index on year.
    blocking.create_index({"by_year", {{"year"}}});
    using strata::where;
    for (auto& r : blocking.query(strata::pattern{where("year").lt(1900)
                                                  || where("tags").eq("sf")}
                                    .order_by("year")))
      std::cout << "query: " << r.value.title << " (" << r.value.year << ")\n";
  }

  // Shut the store down; the actor system's destructor waits until every
  // shard has closed its LMDB environment.
  caf::anon_send_exit(*handle, caf::exit_reason::user_shutdown);
  return 0;
}

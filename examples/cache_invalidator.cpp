// A cache invalidator: an actor that caches values in memory and drops an
// entry as soon as its key changes in the store, from the change feed.
//
// Shows: an event-based actor that is itself the subscriber of a watch (it
// implements strata::event_actor), a glob pattern, the credit rule (the
// actor answers each delivery when it has handled it), and resuming from a
// position after a restart with nothing missed.
//
// Run:  ./build/examples/cache_invalidator [DATA_DIR]   (default: ./cache-data)

#include <iostream>
#include <string>
#include <thread>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "strata/all.hpp"

using namespace std::chrono_literals;

/// The cache's own interface: the store's events plus a lookup.
using cache_actor = strata::event_actor::extend<
  caf::replies_to<strata::atom::get, std::string>::with<strata::maybe_bytes>>;

struct cache_state {
  static inline const char* name = "cache";
  std::unordered_map<std::string, strata::bytes> entries;
  strata::storage_actor store;
  size_t invalidated = 0;
};

cache_actor::behavior_type cache(cache_actor::stateful_pointer<cache_state> self,
                                 strata::storage_actor store) {
  self->state.store = std::move(store);
  return {
    // Reads through: a miss asks the store and remembers the answer.
    [self](strata::atom::get, const std::string& key) -> caf::result<strata::maybe_bytes> {
      auto& entries = self->state.entries;
      if (auto i = entries.find(key); i != entries.end())
        return strata::maybe_bytes{i->second};
      auto rp = self->make_response_promise<strata::maybe_bytes>();
      self->request(self->state.store, 5s, strata::atom::get_v, key)
        .then(
          [self, rp, key](strata::maybe_bytes& v) mutable {
            if (v)
              self->state.entries[key] = *v;
            rp.deliver(std::move(v));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    // Each commit, whole and in order per shard: drop what it changed. The
    // answer (returning) is the credit for the next delivery.
    [self](strata::atom::change, std::vector<strata::change_batch>& batches) {
      for (auto& b : batches)
        for (auto& c : b.changes) {
          if (c.kind == strata::change_kind::clear)
            self->state.entries.clear();
          else
            self->state.invalidated += self->state.entries.erase(c.key);
        }
    },
    [self](strata::atom::failed, strata::error_event& e) {
      // The watch ended (e.g. the store went away): nothing cached can be
      // trusted any more.
      std::cerr << "watch ended: " << strata::render(e.error) << ", resume from "
                << e.position << "\n";
      self->state.entries.clear();
    },
    [](strata::atom::before, std::vector<strata::storage_event>&) {},
    [](strata::atom::after, std::vector<strata::storage_event>&) {},
  };
}

int main(int argc, char** argv) {
  caf::actor_system_config cfg;
  strata::configure(cfg);
  caf::actor_system sys{cfg};
  strata::store_options opts;
  opts.data_dir = argc > 1 ? argv[1] : "cache-data";
  opts.shards = 2;
  auto store = strata::spawn_store(sys, opts);
  if (!store) {
    std::cerr << "error: " << strata::render(store.error()) << "\n";
    return 1;
  }
  caf::scoped_actor self{sys};
  auto c = sys.spawn(cache, strata::storage_actor{*store});
  // Watch the user keys; the watcher delivers to the cache actor.
  strata::watch_options wo;
  wo.filter.pattern = "user:*";
  strata::watcher_actor watcher;
  self->request(*store, 5s, strata::atom::watch_v, wo, caf::actor_cast<strata::event_actor>(c))
    .receive([&](strata::watcher_actor& w) { watcher = w; },
             [](caf::error& err) { std::cerr << strata::render(err) << "\n"; });
  if (!watcher)
    return 1;
  strata::blocking_store<std::string> db{sys, *store};
  auto show = [&](const std::string& key) {
    self->request(c, 5s, strata::atom::get_v, key)
      .receive(
        [&](strata::maybe_bytes& v) {
          auto text = v ? strata::decode<std::string>(*v) : caf::expected<std::string>{std::string{"-"}};
          std::cout << key << " = " << (text ? *text : "?") << "\n";
        },
        [](caf::error& err) { std::cerr << strata::render(err) << "\n"; });
  };
  if (auto err = db.set("user:1", "ada"))
    std::cerr << strata::render(err) << "\n";
  show("user:1"); // a miss: read from the store and cached
  if (auto err = db.set("user:1", "grace"))
    std::cerr << strata::render(err) << "\n";
  // The change reaches the cache right after the commit; ask until it did.
  for (int i = 0; i < 100; ++i) {
    strata::watch_info info;
    self->request(watcher, 5s, strata::atom::info_v)
      .receive([&](strata::watch_info& x) { info = x; }, [](caf::error&) {});
    if (info.delivered >= 2 && info.in_flight == 0)
      break;
    std::this_thread::sleep_for(10ms);
  }
  show("user:1"); // invalidated: read again, the new value
  // Where the watch stands: a later watch from this token resumes exactly
  // after what the cache has handled.
  self->request(watcher, 5s, strata::atom::info_v)
    .receive([](strata::watch_info& x) { std::cout << "resume token " << x.position << "\n"; },
             [](caf::error&) {});
  self->send_exit(c, caf::exit_reason::user_shutdown);
  self->send_exit(*store, caf::exit_reason::user_shutdown);
  return 0;
}

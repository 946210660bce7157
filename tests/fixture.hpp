#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "strata/actors.hpp"
#include "strata/error.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"
#include "tests/temp_dir.hpp"
#include "tests/virtuoso.hpp"

namespace strata::test {

/// The engine the tests' stores run on: STRATA_TEST_ENGINE ("lmdb" when
/// unset). ctest runs the storage and transaction tests under each engine.
inline std::string test_engine() {
  auto x = std::getenv("STRATA_TEST_ENGINE");
  return x != nullptr && *x != '\0' ? x : "lmdb";
}

/// An actor system configured for strata, a scoped actor to make requests
/// with, and a fresh temporary directory. Every actor it spawned through
/// `open` is shut down (and its LMDB environment closed) on destruction.
class fixture {
public:
  fixture() : sys_(cfg_), self(sys_, true) {
    baseline_ = sys_.registry().running();
  }

  ~fixture() {
    close();
  }

  caf::actor_system& sys() {
    return sys_;
  }

  /// Default options for a test store in this fixture's directory.
  store_options options(uint32_t shards = 4) const {
    store_options o;
    o.data_dir = dir / "data";
    o.shards = shards;
    o.map_size = 64 << 20;
    o.sync = sync_mode::nosync;
    o.log_level = "warning";
    o.engine = test_engine();
    if (o.engine == "graph")
      o.graph = test_graph();
    return o;
  }

  /// Opens a store and remembers it; fails the test if that fails.
  observable_storage_actor open(const store_options& o) {
    auto h = spawn_store(sys_, o);
    if (!h)
      throw std::runtime_error("cannot open store: " + render(h.error()));
    store = *h;
    return store;
  }

  /// Shuts the current store down and waits until every actor spawned since
  /// the fixture was made is gone, so that the store's files are closed.
  /// (Scoped actors count as running, so await_all_actors_done would hang.)
  void close() {
    if (store) {
      caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
      store = nullptr;
    }
    sys_.registry().await_running_count_equal(baseline_);
  }

  /// Sends a request and waits for its answer.
  template <class R, class Handle, class... Ts>
  caf::expected<R> ask(const Handle& h, Ts&&... xs) {
    caf::expected<R> result{caf::error{}};
    self->request(h, std::chrono::seconds(30), std::forward<Ts>(xs)...)
      .receive([&](R& r) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  /// Sends a request whose answer carries no value.
  template <class Handle, class... Ts>
  caf::error ask_void(const Handle& h, Ts&&... xs) {
    caf::error result;
    self->request(h, std::chrono::seconds(30), std::forward<Ts>(xs)...)
      .receive([] {}, [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  /// Waits until every index of `target` is ready; false if that takes more
  /// than 20 s or the store does not answer.
  bool indexes_ready(const observable_storage_actor& target) {
    for (int i = 0; i < 2000; ++i) {
      auto list = ask<std::vector<index_info>>(target, atom::indexes_v);
      if (!list)
        return false;
      if (std::all_of(list->begin(), list->end(),
                      [](const index_info& x) { return x.state == "ready"; }))
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    return false;
  }

  temp_dir dir;

private:
  struct config : caf::actor_system_config {
    config() {
      configure(*this);
      set("scheduler.max-threads", 4);
    }
  };

  config cfg_;
  size_t baseline_ = 0;
  caf::actor_system sys_;

public:
  caf::scoped_actor self;
  observable_storage_actor store;
};

/// Bytes from a string.
inline bytes to_bytes(const std::string& s) {
  return bytes(s.begin(), s.end());
}

} // namespace strata::test

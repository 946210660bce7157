#include "actors/index.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "backends/query.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

struct index_state {
  static inline const char* name = "strata.index";
  indexed_storage_actor store;
  std::string index;
};

using index_ptr = index_actor::stateful_pointer<index_state>;

/// `pattern` with its hint set to the index.
caf::expected<std::string> hinted(index_ptr self, const std::string& pattern) {
  try {
    return with_hint(pattern, self->state.index);
  } catch (const query_error& e) {
    return make_error(errc::query_error, e.what());
  }
}

index_actor::behavior_type index_behavior(index_ptr self, indexed_storage_actor store,
                                          std::string name) {
  self->state.store = std::move(store);
  self->state.index = std::move(name);
  // The store attached the monitor (CAF 0.17 monitors through a raw
  // pointer, so a store gone before this runs would crash a monitor here).
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  return {
    [=](atom::info) -> caf::result<index_info> {
      auto rp = self->make_response_promise();
      self->request(self->state.store, caf::infinite, atom::indexes_v)
        .then(
          [self, rp](std::vector<index_info>& all) mutable {
            for (auto& x : all)
              if (x.spec.name == self->state.index) {
                rp.deliver(std::move(x));
                return;
              }
            rp.deliver(make_error(errc::key_not_found,
                                  "index " + self->state.index + " was dropped"));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [=](atom::query, query_request& req) -> caf::result<query_page> {
      auto p = hinted(self, req.pattern);
      if (!p)
        return std::move(p.error());
      req.pattern = std::move(*p);
      return self->delegate(self->state.store, atom::query_v, std::move(req));
    },
    [=](atom::count, std::string& pattern) -> caf::result<uint64_t> {
      auto p = hinted(self, pattern);
      if (!p)
        return std::move(p.error());
      return self->delegate(self->state.store, atom::count_v, std::move(*p));
    },
    [=](atom::find_many, std::string& pattern) -> caf::result<std::vector<query_result>> {
      auto p = hinted(self, pattern);
      if (!p)
        return std::move(p.error());
      return self->delegate(self->state.store, atom::find_many_v, std::move(*p));
    },
  };
}

} // namespace

index_actor spawn_index(caf::actor_system& sys, indexed_storage_actor store, std::string name) {
  return sys.spawn(index_behavior, std::move(store), std::move(name));
}

} // namespace strata

#include "actors/timer.hpp"

#include <cstdint>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "strata/messages/atoms.hpp"

namespace strata {

namespace {

struct timer_state {
  static inline const char* name = "strata.timer";
  uint64_t next = 0;
  std::unordered_map<uint64_t, caf::response_promise> waiting;
};

caf::behavior timer(caf::stateful_actor<timer_state>* self) {
  return {
    [=](atom::timeout, uint32_t ms) {
      auto id = ++self->state.next;
      auto rp = self->make_response_promise();
      self->state.waiting.emplace(id, rp);
      self->delayed_send(self, std::chrono::milliseconds{ms}, atom::flush_v, id);
      return rp;
    },
    [=](atom::flush, uint64_t id) {
      auto i = self->state.waiting.find(id);
      if (i == self->state.waiting.end())
        return;
      i->second.deliver(caf::unit);
      self->state.waiting.erase(i);
    },
  };
}

} // namespace

caf::actor spawn_timer(caf::actor_system& sys) {
  return sys.spawn(timer);
}

} // namespace strata

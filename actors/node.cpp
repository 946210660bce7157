#include "actors/node.hpp"

#include <chrono>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "strata/error.hpp"

namespace strata {

node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               std::map<uint32_t, shard_actor> shards,
                               std::string address) {
  auto& st = self->state;
  st.shards = std::move(shards);
  st.self_info.id = to_string(self->node());
  st.self_info.address = std::move(address);
  for (auto& [i, s] : st.shards) {
    self->link_to(s);
    st.self_info.shards.push_back(i);
  }
  return {
    [self](atom::shard, uint32_t i) -> caf::result<shard_actor> {
      auto& hosted_shards = self->state.shards;
      if (auto j = hosted_shards.find(i); j != hosted_shards.end())
        return j->second;
      std::string hosted;
      for (auto& entry : hosted_shards)
        hosted += (hosted.empty() ? "" : ",") + std::to_string(entry.first);
      return make_error(errc::invalid_value,
                        "node " + self->state.self_info.address
                          + " does not host shard " + std::to_string(i)
                          + " (it hosts " + hosted + "); check the shard map");
    },
    [self](atom::ping) -> caf::result<node_info> {
      using namespace std::chrono;
      auto info = self->state.self_info;
      info.last_seen_ms
        = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
      return info;
    },
  };
}

node_actor spawn_node(caf::actor_system& sys, std::map<uint32_t, shard_actor> shards,
                      std::string address) {
  return sys.spawn(node, std::move(shards), std::move(address));
}

} // namespace strata

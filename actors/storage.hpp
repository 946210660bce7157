#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <vector>

#include <memory>

#include <caf/actor.hpp>
#include <caf/response_promise.hpp>

#include "actors/event_registry.hpp"
#include "actors/remote_shard.hpp"
#include "actors/unique_indexes.hpp"
#include "strata/actors.hpp"

namespace strata {

class shard_core;
class shard_slot;

/// What the router is made of.
struct router_config {
  std::vector<shard_actor> shards;
  /// The stores of shards in this process (null or missing for remote ones).
  std::vector<std::shared_ptr<shard_slot>> local;
  /// The proxies of remote shards, for the node registry.
  std::vector<remote_shard_actor> remote;
  coordinator_actor coordinator;
  /// The coordinator's incarnation: the high bits of transaction ids.
  uint64_t incarnation = 0;
  /// The low bits, counted by all routers of the store together.
  std::shared_ptr<std::atomic<uint64_t>> next_txn
    = std::make_shared<std::atomic<uint64_t>>(0);
  uint64_t max_value_size = 0;
  std::chrono::milliseconds timeout{0};
  /// The store's unique indexes, shared by its routers.
  std::shared_ptr<unique_registry> unique = std::make_shared<unique_registry>();
  /// The store's event subscriptions, shared by its routers.
  std::shared_ptr<event_registry> events = std::make_shared<event_registry>();
};

/// One sender's multi-key write in flight and the writes it sent after it.
/// Multi-key writes go through the coordinator (and may retry); without the
/// gate, the sender's later writes could overtake them. A router that stops
/// answers them all (the destructor): CAF 0.17 would leave them unanswered.
struct sender_gate {
  struct held_write {
    bool multi = false;
    caf::response_promise rp;
    /// Sends the write on; its answer goes to `rp`.
    std::function<void(caf::response_promise&)> send;
  };
  /// The multi-key write in flight (none: not pending).
  caf::response_promise busy;
  /// Later writes, in the order they came.
  std::deque<held_write> held;

  sender_gate() = default;
  sender_gate(const sender_gate&) = delete;
  sender_gate& operator=(const sender_gate&) = delete;
  ~sender_gate();
};

struct storage_state {
  static inline const char* name = "strata.storage";
  std::vector<shard_actor> shards;
  coordinator_actor coordinator;
  /// Paces retries of atomic writes that met a committing transaction.
  caf::actor timer;
  uint64_t incarnation = 0;
  std::shared_ptr<std::atomic<uint64_t>> next_txn;
  /// The stores of shards in this process (null for remote ones): reads go
  /// straight to them, saving a message hop.
  std::vector<std::shared_ptr<shard_slot>> local;
  std::vector<remote_shard_actor> remote;
  /// Scratch space of get_many: request positions grouped by shard.
  std::vector<std::vector<uint32_t>> positions;
  uint64_t max_value_size = 0;
  std::chrono::milliseconds timeout{0};
  /// Senders with a multi-key write in flight (one sender's writes all come
  /// to the same router).
  std::unordered_map<caf::actor_addr, sender_gate> gates;
  /// The store's unique indexes: while it has some (or may have, before
  /// they are known), every write commits through the coordinator with the
  /// claims `unique` plans for it.
  std::shared_ptr<unique_registry> registry;
  unique_actor unique;
  /// The actors of indexes handed out (`index, name`), by name.
  std::unordered_map<std::string, index_actor> index_actors;
  /// Event subscriptions (`on`), shared by the store's routers.
  std::shared_ptr<event_registry> events;
  /// Observed requests whose `before:*` subscribers are being asked, in
  /// arrival order: each goes on once it and those before it are decided.
  struct asking {
    bool decided = false;
    caf::error veto;
    std::function<void(caf::error)> go;
  };
  std::deque<std::shared_ptr<asking>> asked;

  bool plans_claims() const {
    return registry->known != unique_registry::none;
  }
};

/// The storage actor routes each key to its shard by `routing::shard_of` and
/// scatters/gathers what spans shards:
///
/// ```
///                 ┌──reads of local shards: LMDB read transaction here ──▶ client
///  client ──▶ storage
///                 ├──set/del (one key), reads of remote shards
///                 │      ──delegate──▶ shard(key) ──▶ client
///                 └──clear/set_many/del_many/batch (and remote size/scan/get_many)
///                        ──request──▶ every shard involved ──▶ combine ──▶ client
/// ```
///
/// Reading a local shard's LMDB environment directly is safe: LMDB readers
/// never block the shard's writer nor each other, and the router holds the
/// store by shared ownership for the length of a read. While a shard
/// restarts its slot is empty and reads go to its supervisor, which holds
/// them until the shard is back.
///
/// The store's handle is a CAF actor pool of `store_options::routers` such
/// actors sharing one configuration (and one transaction counter). The pool
/// hands a message on while it is being sent, with no mailbox of its own:
/// reads take turns, so several cores answer them; every other request goes
/// to the router its sender maps to, so one sender's writes keep their order.
///
/// Scans merge the shards' pages in key order. set_many, del_many, batch and
/// clear are atomic: within one shard in one commit, across shards through
/// the coordinator's two-phase commit. While one of them is in flight, its
/// sender's later writes wait here (`sender_gate`), so that none overtakes
/// it. `begin` spawns a transaction actor.
observable_storage_actor::behavior_type
storage(observable_storage_actor::stateful_pointer<storage_state> self,
        router_config cfg);

/// Spawns the store's handle: `routers` storage actors sharing `cfg` (one
/// transaction counter), behind a CAF actor pool when there are several.
observable_storage_actor spawn_routers(caf::actor_system& sys, const router_config& cfg,
                                          uint32_t routers);

} // namespace strata

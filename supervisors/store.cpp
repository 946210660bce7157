// Assembling a store, and a shard node's part of one: what spawn_store and
// spawn_shard_host open, spawn and connect before anyone sends a request.
//
//   spawn_store:      lock data_dir ─▶ local shards under supervisors,
//                     remote shard proxies ─▶ coordinator (decision log)
//                     ─▶ in-doubt transactions resolved ─▶ routers (a pool)
//   spawn_shard_host: lock data_dir ─▶ hosted shards under supervisors ─▶ node

#include "strata/store.hpp"

#include <map>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/checks.hpp"
#include "actors/coordinator.hpp"
#include "actors/node.hpp"
#include "actors/remote_shard.hpp"
#include "actors/shard.hpp"
#include "actors/storage.hpp"
#include "backends/data_dir.hpp"
#include "backends/decision_log.hpp"
#include "backends/shard_core.hpp"
#include "backends/log.hpp"
#include "backends/shard_slot.hpp"
#include "strata/error.hpp"
#include "strata/system.hpp"
#include "supervisors/shard_supervisor.hpp"

namespace strata {

bool await_closed(const std::string& data_dir, std::chrono::milliseconds timeout) {
  return await_unlocked(data_dir, timeout);
}


caf::expected<observable_storage_actor>
spawn_store(caf::actor_system& sys, const store_options& opts) {
  if (auto err = opts.validate())
    return err;
  if (auto err = set_log_level(opts.log_level))
    return err;
  if (opts.tls && !sys.has_openssl_manager())
    return make_error(errc::invalid_value,
                      "tls needs CAF's OpenSSL module: call strata::configure_tls(cfg) "
                      "before the actor system starts");
  auto lock = guarded([&] { return std::make_shared<dir_lock>(opts.data_dir); });
  if (!lock)
    return std::move(lock.error());
  router_config rc;
  std::vector<participant_actor> participants;
  auto stop_shards = [&rc] {
    for (auto& started : rc.shards)
      caf::anon_send_exit(started, caf::exit_reason::user_shutdown);
  };
  for (uint32_t i = 0; i < opts.shards; ++i) {
    if (opts.is_local(i)) {
      std::shared_ptr<shard_slot> slot;
      auto s = spawn_supervised_shard(sys, opts, i, *lock, slot);
      if (!s) {
        stop_shards();
        return std::move(s.error());
      }
      rc.shards.emplace_back(*s);
      rc.local.push_back(std::move(slot));
    } else {
      auto addr = parse_address(opts.shard_nodes[i]);
      remote_shard_config pc;
      pc.shard = i;
      pc.host = addr->first;
      pc.port = addr->second;
      pc.timeout = opts.request_timeout;
      pc.heartbeat = opts.heartbeat;
      pc.reconnect_min = opts.reconnect_min;
      pc.reconnect_max = opts.reconnect_max;
      pc.tls = opts.tls;
      pc.max_value_size = opts.max_value_size;
      pc.max_frame = opts.frame_limit();
      auto proxy = spawn_remote_shard(sys, std::move(pc));
      rc.shards.emplace_back(proxy);
      rc.local.emplace_back();
      rc.remote.push_back(std::move(proxy));
    }
    participants.emplace_back(rc.shards.back());
  }
  // The coordinator's decision log: a small store of its own.
  shard_core_options lo;
  lo.dir = coordinator_dir(opts.data_dir);
  lo.store_id = opts.id + "/coordinator";
  lo.map_size = uint64_t{256} << 20;
  lo.changes.enabled = false; // its writes are not the users' data
  lo.no_sync = opts.sync == sync_mode::nosync;
  // Its decisions are as durable as the shards they are about.
  parse_engine(opts.engine, lo.engine);
  lo.snapshot = opts.memory_snapshot;
  lo.sqlite = opts.sqlite;
  lo.json = opts.json;
  lo.graph = opts.graph;
  auto log_store = open_shard_core(lo, *lock);
  auto incarnation = log_store ? guarded([&] { return decision_log::next_incarnation(**log_store); })
                               : caf::expected<uint64_t>{log_store.error()};
  if (!incarnation) {
    stop_shards();
    return std::move(incarnation.error());
  }
  rc.coordinator = spawn_coordinator(sys, *log_store, std::move(participants),
                                     opts.max_value_size, opts.request_timeout,
                                     opts.frame_limit());
  rc.incarnation = *incarnation;
  rc.max_value_size = opts.max_value_size;
  rc.timeout = opts.request_timeout;
  // Transactions a crash left prepared are resolved before anyone reads.
  // Remote shards do this whenever they (re)connect, before they take
  // requests: they only learn the coordinator here, so opening a store never
  // waits for its shard nodes.
  for (auto& proxy : rc.remote)
    caf::anon_send(proxy, atom::recover_v, rc.coordinator);
  {
    caf::scoped_actor self{sys, true};
    for (size_t i = 0; i < rc.shards.size(); ++i)
      if (opts.is_local(static_cast<uint32_t>(i)))
        self->request(rc.shards[i], opts.request_timeout, atom::recover_v, rc.coordinator)
        .receive(
          [&](uint64_t n) {
            if (n > 0)
              log().info("shard {}: resolved {} transactions in doubt", i, n);
          },
          [&](caf::error& err) {
            log().warn("shard {}: transactions stay in doubt: {}", i, render(err));
          });
  }
  log().info("store '{}' open: {} shards ({} remote) in {}, engine {}, {} MiB map per "
             "shard, {} writes",
             opts.id, opts.shards, rc.remote.size(), opts.data_dir, opts.engine,
             opts.shard_map_size() >> 20, to_string(opts.sync));
  return spawn_routers(sys, rc, opts.routers);
}

caf::expected<node_actor> spawn_shard_host(caf::actor_system& sys,
                                           const store_options& opts,
                                           const std::vector<uint32_t>& hosted,
                                           const std::string& address) {
  if (auto err = opts.validate())
    return err;
  if (auto err = set_log_level(opts.log_level))
    return err;
  if (hosted.empty())
    return make_error(errc::invalid_value, "a shard node must host at least one shard");
  for (auto i : hosted)
    if (i >= opts.shards)
      return make_error(errc::invalid_value,
                        "shard " + std::to_string(i) + " is out of range for "
                          + std::to_string(opts.shards) + " shards");
  auto lock = guarded([&] { return std::make_shared<dir_lock>(opts.data_dir); });
  if (!lock)
    return std::move(lock.error());
  std::map<uint32_t, shard_actor> shards;
  for (auto i : hosted) {
    std::shared_ptr<shard_slot> slot;
    auto s = spawn_supervised_shard(sys, opts, i, *lock, slot);
    if (!s) {
      for (auto& started : shards)
        caf::anon_send_exit(started.second, caf::exit_reason::user_shutdown);
      return std::move(s.error());
    }
    shards.emplace(i, *s);
  }
  log().info("shard node '{}': hosting {} of {} shards in {}, {} writes", opts.id,
             hosted.size(), opts.shards, opts.data_dir, to_string(opts.sync));
  return spawn_node(sys, std::move(shards), address);
}

} // namespace strata

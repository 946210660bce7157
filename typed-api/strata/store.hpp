#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "strata/actors.hpp"
#include "strata/options.hpp"

namespace strata {

/// Opens (or creates) the store described by `opts` inside `sys` and returns
/// its storage actor: the router in front of `opts.shards` shard actors, each
/// owning one LMDB environment under `opts.data_dir`, and of the transaction
/// coordinator, whose decision log lives in `opts.data_dir`/coordinator.
/// Transactions that a crash left prepared are resolved before it returns.
///
/// With a shard map (`opts.shard_nodes`), shards marked with a node's
/// "host:port" live on that shard node (`spawn_shard_host`, or `strata-node
/// --host-shards`), which the store connects to in the background (each
/// resolves its transactions in doubt when it connects, before it serves); the
/// coordinator, its log and the local shards stay here. Application code does
/// not change: requests for a remote shard go over the network, fail with
/// CONNECTION_FAILED while its node cannot be reached and CONNECTION_LOST if
/// it goes away during a request, and work again once it is back.
///
/// Fails with INVALID_VALUE for bad options, CONNECTION_FAILED if the data
/// directory cannot be opened or is in use, CONSISTENCY_VIOLATION if it was
/// created with another id or shard count.
///
/// The store lives until its storage actor terminates: send it an exit
/// (`caf::anon_send_exit(h, caf::exit_reason::user_shutdown)`) or drop every
/// handle; `sys.await_all_actors_done()` then returns once every shard has
/// closed its environment. `sys` must have been configured with
/// `strata::configure`.
caf::expected<observable_storage_actor>
spawn_store(caf::actor_system& sys, const store_options& opts);

/// Opens the shards `hosted` of the store described by `opts` (id, shard
/// count, map size, sync mode, value limit, restart limits) in
/// `opts.data_dir` and returns the node actor that hands them out to stores:
/// publish it with the middleman to make this process a shard node. Each
/// shard runs under a supervisor. Fails like `spawn_store`, and with
/// INVALID_VALUE for an empty list or a shard index out of range.
caf::expected<node_actor> spawn_shard_host(caf::actor_system& sys,
                                           const store_options& opts,
                                           const std::vector<uint32_t>& hosted,
                                           const std::string& address);

/// Publishes a store (or a shard node's node actor) on `host`:`port` for
/// other processes, like CAF's `middleman().publish`, but every connection's
/// frames are checked before CAF's BASP reads them: until its handshake a
/// connection may send only the handshake, of at most 64 KiB, and after it
/// no frame above `max_frame_size` (see `store_options::max_frame_size`).
/// A connection that breaks either rule is closed at once, with a warning in
/// the log, having cost the node nothing. (CAF 0.17 reserves whatever a
/// frame header announces, up to 4 GiB, before it checks anything.) Port 0
/// picks a free port; the port is returned. Plain TCP: TLS nodes publish
/// with CAF's OpenSSL module, whose handshake authenticates peers first.
caf::expected<uint16_t> publish(caf::actor_system& sys,
                                const observable_storage_actor& store, uint16_t port,
                                const std::string& host, uint64_t max_frame_size);
caf::expected<uint16_t> publish(caf::actor_system& sys, const node_actor& node,
                                uint16_t port, const std::string& host,
                                uint64_t max_frame_size);

/// How `connect_store` reaches a store on a node.
struct connect_options {
  /// How long it keeps trying: a node that is starting, or busy (it must
  /// answer CAF's handshake within one heartbeat), may need several
  /// attempts.
  std::chrono::milliseconds timeout{30000};
  /// Connect over TLS (needs `configure_tls`).
  bool tls = false;
};

/// Connects to the store that a node publishes at `host`:`port`, trying
/// again while the node refuses or does not answer, until `opts.timeout`
/// (then CONNECTION_FAILED). Blocks the calling thread: call it from `main`,
/// never inside an actor. The typed clients (`blocking_store<T>`, and
/// `store<T>` made with the actor system) reach the store through a local
/// stand-in that fails every request in flight at once (CONNECTION_LOST)
/// when the connection goes; raw requests to the handle wait for their own
/// timeout, as CAF's do.
caf::expected<observable_storage_actor>
connect_store(caf::actor_system& sys, const std::string& host, uint16_t port,
              const connect_options& opts = {});

namespace detail {

/// A stand-in for `store` if it is in another process (see `connect_store`),
/// else `store` itself. Its owner stops it with an exit: it does not end by
/// itself (CAF 0.17 keeps actors that sent requests over the network in its
/// registry). The typed clients own theirs.
observable_storage_actor watch_store(caf::actor_system& sys,
                                        observable_storage_actor store,
                                        std::chrono::milliseconds timeout);
storage_actor watch_store(caf::actor_system& sys, storage_actor store,
                          std::chrono::milliseconds timeout);

} // namespace detail

/// Blocks until the store on `data_dir` has closed every LMDB environment
/// and released the directory, e.g. after sending its storage actor an exit.
/// Returns false if `timeout` passed first. Call it before the actor system
/// goes away, and before opening the directory again in the same process.
bool await_closed(const std::string& data_dir, std::chrono::milliseconds timeout);

} // namespace strata

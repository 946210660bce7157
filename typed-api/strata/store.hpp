#pragma once

#include <chrono>
#include <string>

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
/// Fails with INVALID_VALUE for bad options, CONNECTION_FAILED if the data
/// directory cannot be opened or is in use, CONSISTENCY_VIOLATION if it was
/// created with another id or shard count.
///
/// The store lives until its storage actor terminates: send it an exit
/// (`caf::anon_send_exit(h, caf::exit_reason::user_shutdown)`) or drop every
/// handle; `sys.await_all_actors_done()` then returns once every shard has
/// closed its environment. `sys` must have been configured with
/// `strata::configure`.
caf::expected<transactional_storage_actor>
spawn_store(caf::actor_system& sys, const store_options& opts);

/// Blocks until the store on `data_dir` has closed every LMDB environment
/// and released the directory, e.g. after sending its storage actor an exit.
/// Returns false if `timeout` passed first. Call it before the actor system
/// goes away, and before opening the directory again in the same process.
bool await_closed(const std::string& data_dir, std::chrono::milliseconds timeout);

} // namespace strata

// strata-node: one process that opens a store and serves it to remote CAF
// clients through the middleman, or (with --host-shards) serves some shards of
// a cluster's store to the stores that use them.
//
//   strata-node --data DIR --host 127.0.0.1 --port N --shards K [--config FILE]
//               [--shard-map MAP]      # e.g. local,127.0.0.1:7601,127.0.0.1:7602
//   strata-node --data DIR --port N --shards K --host-shards 1,3
//   ... --tls --tls-cert node.pem --tls-key node.key --tls-ca ca.pem
//
// A store node with a shard map keeps the coordinator and the "local"
// shards and connects to the shard nodes named in the map. A shard node opens
// only the shards it hosts, in its own data directory.
//
// Port 0 picks a free port. Once the node accepts requests it prints exactly
// one line to stdout, `listening on HOST:PORT`. SIGINT or SIGTERM shut it down
// cleanly: requests in flight are answered or failed, every acknowledged write
// is already on disk, and the shards close their LMDB environments.
//
// Options can also come from a CAF config file (--config FILE), e.g.
//   [strata]
//   data-dir="/var/lib/strata"
//   shards=8
//   sync="durable"
//   [node]
//   host="127.0.0.1"
//   port=7600
// and any CAF option passes through in CAF's syntax (--scheduler.max-threads=2).

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "strata/error.hpp"
#include "strata/serialization.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"
#include "typed-api/program_options.hpp"

namespace {

struct node_config : caf::actor_system_config {
  strata::store_options store;
  std::string sync = "durable";
  std::string shard_map;
  std::string host_shards;
  std::string host = "127.0.0.1";
  uint16_t port = 7600;
  size_t heartbeat_ms = 1000;
  size_t restart_window_ms = 10000;
  std::string protobuf_descriptors;

  node_config() {
    strata::configure(*this);
    opt_group{custom_options_, "strata"}
      .add(store.data_dir, "data-dir", "directory of the store's shards")
      .add(store.id, "id", "store id, recorded in the data directory")
      .add(store.shards, "shards", "number of shards (fixed at creation)")
      .add(store.routers, "routers", "router actors sharing the store's requests")
      .add(store.map_size, "map-size", "LMDB map size per shard in bytes (0: auto)")
      .add(store.hints.expected_size, "expected-size", "hint: expected number of entries")
      .add(store.hints.access, "access",
           "hint: random, sequential, write-heavy or read-heavy access")
      .add(store.hints.cache_bytes, "cache-bytes", "hint: memory per shard for caching data")
      .add(sync, "sync", "durable (default) or nosync")
      .add(store.engine, "engine", "storage engine: lmdb (default), memory, sqlite, json or graph")
      .add(store.memory_snapshot, "memory-snapshot",
           "engine memory: save shards on a clean close, load them on open")
      .add(store.sqlite.database, "sqlite-database",
           "engine sqlite: database file in each shard's directory, or :memory:")
      .add(store.sqlite.table, "sqlite-table", "engine sqlite: the data's table")
      .add(store.sqlite.wal, "sqlite-wal", "engine sqlite: write-ahead logging (default true)")
      .add(store.sqlite.foreign_keys, "sqlite-foreign-keys",
           "engine sqlite: enforce foreign keys (default false)")
      .add(store.sqlite.cache_kib, "sqlite-cache-kib",
           "engine sqlite: page cache per connection in KiB (0: SQLite's default)")
      .add(store.sqlite.mmap_bytes, "sqlite-mmap-bytes",
           "engine sqlite: bytes of the database read through mmap (0: none)")
      .add(store.json.file, "json-file", "engine json: the file in each shard's directory")
      .add(store.json.encoding, "json-encoding", "engine json: utf8 (default) or ascii")
      .add(store.json.pretty, "json-pretty", "engine json: indent the file (default false)")
      .add(store.json.atomic, "json-atomic",
           "engine json: write a temporary file and rename it (default true)")
      .add(store.graph.url, "graph-url",
           "engine graph: the SPARQL endpoint (Virtuoso: http://HOST:8890/sparql-auth)")
      .add(store.graph.database, "graph-database",
           "engine graph: IRI under which the shards' graphs live (default: random per shard)")
      .add(store.graph.username, "graph-user", "engine graph: user name for the endpoint")
      .add(store.graph.password, "graph-password", "engine graph: password for the endpoint")
      .add(store.graph.ca_file, "graph-ca", "engine graph: CA certificates for https (PEM)")
      .add(store.graph.cert_file, "graph-cert", "engine graph: client certificate (PEM)")
      .add(store.graph.key_file, "graph-key", "engine graph: client key (PEM)")
      .add(store.graph.tls_verify, "graph-tls-verify",
           "engine graph: check the server's certificate (default true)")
      .add(store.graph.timeout_ms, "graph-timeout-ms", "engine graph: request timeout in ms")
      .add(protobuf_descriptors, "protobuf-descriptors",
           "descriptor sets (protoc --include_imports --descriptor_set_out), comma-separated: "
           "queries and indexes read protobuf values of their types")
      .add(store.max_value_size, "max-value-size", "largest value in bytes")
      .add(store.max_frame_size, "max-frame-size",
           "largest message accepted on the port in bytes (0: auto)")
      .add(store.log_level, "log-level", "trace, debug, info, warning, error")
      .add(shard_map, "shard-map", "where each shard lives: local or host:port, comma-separated")
      .add(host_shards, "host-shards", "serve only these shards (e.g. 1,3) as a shard node")
      .add(heartbeat_ms, "heartbeat-ms", "ping interval to shard nodes in ms")
      .add(store.changes.enabled, "changes", "keep a change log per shard (default true)")
      .add(store.changes.retain_commits, "changes-retain",
           "commits the change log keeps per shard (0: no limit by count)")
      .add(store.changes.retain_ms, "changes-retain-ms",
           "age in ms up to which the change log keeps commits (0: no limit by age)")
      .add(store.changes.old_values, "changes-old-values",
           "record the value each change replaced (default true)")
      .add(store.max_restarts, "max-restarts", "restarts of a failed shard within the window")
      .add(restart_window_ms, "restart-window-ms", "the restart window in ms");
    opt_group{custom_options_, "node"}
      .add(host, "host", "address to bind (default 127.0.0.1)")
      .add(port, "port", "TCP port (0: pick a free one)");
  }
};

const std::vector<strata::flag> node_flags = {
  {"--data", "strata.data-dir"},       {"--id", "strata.id"},
  {"--shards", "strata.shards"},       {"--map-size", "strata.map-size"},
  {"--routers", "strata.routers"},
  {"--expected-size", "strata.expected-size"},
  {"--access", "strata.access"},       {"--cache-bytes", "strata.cache-bytes"},
  {"--sync", "strata.sync"},           {"--engine", "strata.engine"},
  {"--sqlite-database", "strata.sqlite-database"},
  {"--sqlite-table", "strata.sqlite-table"},
  {"--sqlite-wal", "strata.sqlite-wal"},
  {"--sqlite-foreign-keys", "strata.sqlite-foreign-keys"},
  {"--sqlite-cache-kib", "strata.sqlite-cache-kib"},
  {"--sqlite-mmap-bytes", "strata.sqlite-mmap-bytes"},
  {"--json-file", "strata.json-file"},
  {"--json-encoding", "strata.json-encoding"},
  {"--json-pretty", "strata.json-pretty"},
  {"--json-atomic", "strata.json-atomic"},
  {"--graph-url", "strata.graph-url"},
  {"--graph-database", "strata.graph-database"},
  {"--graph-user", "strata.graph-user"},
  {"--graph-password", "strata.graph-password"},
  {"--graph-ca", "strata.graph-ca"},
  {"--graph-cert", "strata.graph-cert"},
  {"--graph-key", "strata.graph-key"},
  {"--graph-tls-verify", "strata.graph-tls-verify"},
  {"--graph-timeout-ms", "strata.graph-timeout-ms"},
  {"--protobuf-descriptors", "strata.protobuf-descriptors"},
  {"--max-value-size", "strata.max-value-size"},
  {"--max-frame-size", "strata.max-frame-size"},
  {"--log-level", "strata.log-level"}, {"--host", "node.host"},
  {"--port", "node.port"},             {"--config", "config-file"},
  {"--shard-map", "strata.shard-map"}, {"--host-shards", "strata.host-shards"},
  {"--heartbeat-ms", "strata.heartbeat-ms"},
  {"--max-restarts", "strata.max-restarts"},
  {"--restart-window-ms", "strata.restart-window-ms"},
  {"--changes", "strata.changes"},     {"--changes-retain", "strata.changes-retain"},
  {"--changes-retain-ms", "strata.changes-retain-ms"},
  {"--changes-old-values", "strata.changes-old-values"},
  {"--tls-cert", "openssl.certificate"}, {"--tls-key", "openssl.key"},
  {"--tls-ca", "openssl.cafile"},
};

int fail(const caf::error& err) {
  std::cerr << "error: " << strata::render(err) << std::endl;
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  // Signals are blocked before CAF starts its threads, so they all inherit
  // the mask and only sigwait below sees SIGINT/SIGTERM.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  node_config cfg;
  auto args = strata::translate_flags(argc, argv, node_flags);
  if (!args)
    return fail(args.error());
  // --memory-snapshot: a switch (memory-snapshot=true in a config file).
  auto snapshot_flag = std::find(args->begin(), args->end(), "--memory-snapshot");
  if (snapshot_flag != args->end()) {
    args->erase(snapshot_flag);
    args->push_back("--strata.memory-snapshot");
  }
  // --tls: serve over TLS, and reach shard nodes over TLS.
  auto tls_flag = std::find(args->begin(), args->end(), "--tls");
  bool tls = tls_flag != args->end();
  if (tls) {
    args->erase(tls_flag);
    strata::configure_tls(cfg);
  }
  if (auto err = cfg.parse(*args, strata::config_file(*args)))
    return fail(strata::make_error(strata::errc::invalid_value,
                                   "bad option: " + to_string(err)));
  if (cfg.cli_helptext_printed)
    return 0;
  auto mode = strata::parse_sync_mode(cfg.sync);
  if (!mode)
    return fail(strata::make_error(strata::errc::invalid_value,
                                   "sync must be durable or nosync, got '"
                                     + cfg.sync + "'"));
  cfg.store.sync = *mode;
  for (size_t at = 0; at < cfg.protobuf_descriptors.size();) {
    auto end = std::min(cfg.protobuf_descriptors.find(',', at), cfg.protobuf_descriptors.size());
    try {
      strata::load_protobuf_descriptors(cfg.protobuf_descriptors.substr(at, end - at));
    } catch (const strata::codec_error& e) {
      return fail(strata::make_error(strata::errc::invalid_value, e.what()));
    }
    at = end + 1;
  }
  auto shard_map = strata::parse_shard_map(cfg.shard_map);
  if (!shard_map)
    return fail(shard_map.error());
  cfg.store.shard_nodes = std::move(*shard_map);
  cfg.store.heartbeat = std::chrono::milliseconds{cfg.heartbeat_ms};
  cfg.store.restart_window = std::chrono::milliseconds{cfg.restart_window_ms};
  cfg.store.tls = tls;
  std::vector<uint32_t> hosted;
  if (!cfg.host_shards.empty()) {
    auto list = strata::parse_shard_list(cfg.host_shards, cfg.store.shards);
    if (!list)
      return fail(list.error());
    if (!cfg.store.shard_nodes.empty())
      return fail(strata::make_error(strata::errc::invalid_value,
                                     "a shard node (--host-shards) takes no shard map"));
    hosted = std::move(*list);
  }
  caf::actor_system sys{cfg};
  // The published actor: the store, or a shard node's node actor.
  caf::actor served;
  if (hosted.empty()) {
    auto store = strata::spawn_store(sys, cfg.store);
    if (!store)
      return fail(store.error());
    served = caf::actor_cast<caf::actor>(*store);
  } else {
    auto node = strata::spawn_shard_host(sys, cfg.store, hosted,
                                         cfg.host + ":" + std::to_string(cfg.port));
    if (!node)
      return fail(node.error());
    served = caf::actor_cast<caf::actor>(*node);
  }
  // Plain TCP ports check every connection's frames before CAF reads them
  // (strata::publish); over TLS, the TLS handshake authenticates peers first.
  auto publish = [&](auto handle) {
    return tls ? caf::openssl::publish(handle, cfg.port, cfg.host.c_str(), true)
               : strata::publish(sys, handle, cfg.port, cfg.host, cfg.store.frame_limit());
  };
  auto port = hosted.empty()
                ? publish(caf::actor_cast<strata::observable_storage_actor>(served))
                : publish(caf::actor_cast<strata::node_actor>(served));
  if (!port) {
    caf::anon_send_exit(served, caf::exit_reason::user_shutdown);
    if (strata::code_of(port.error()) != strata::errc::none)
      return fail(port.error());
    return fail(strata::make_error(strata::errc::connection_failed,
                                   "cannot listen on " + cfg.host + ":"
                                     + std::to_string(cfg.port) + ": "
                                     + sys.render(port.error())));
  }
  std::printf("listening on %s:%u\n", cfg.host.c_str(), unsigned{*port});
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::get("strata")->info("signal {}: shutting down", sig);
  // Shutdown is bounded: should an actor never finish, the process still
  // ends (acknowledged writes are already durable in the write-ahead log),
  // with exit code 3 and an error in the log.
  std::thread{[] {
    std::this_thread::sleep_for(std::chrono::seconds{20});
    spdlog::get("strata")->error("shutdown did not finish within 20 s; exiting");
    spdlog::shutdown();
    std::_Exit(3);
  }}.detach();
  // (CAF 0.17's openssl::unpublish does not compile; a TLS port closes with
  // the process.)
  if (!tls)
    sys.middleman().unpublish(served, *port);
  caf::anon_send_exit(served, caf::exit_reason::user_shutdown);
  served = nullptr;
  // Every shard flushes its memtable and closes its environment; then the
  // data directory's lock is free.
  strata::await_closed(cfg.store.data_dir, std::chrono::seconds{15});
  sys.await_all_actors_done();
  spdlog::get("strata")->info("store closed");
  return 0;
}

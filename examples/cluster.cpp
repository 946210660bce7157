// A store whose shards live on three shard nodes, used from this process.
//
// Shows: a shard map (which shard lives on which node), the same typed client
// code as for a local store, a transaction across nodes, and the node registry
// (the spec's getNodes) with status and last heartbeat. The coordinator and its
// decision log stay in this process.
//
// Run:  examples/cluster.sh            (starts three nodes, runs this, stops them)
// or by hand, with three nodes started as
//       ./build/strata-node --data /tmp/n0 --port 7611 --shards 3 --host-shards 0 &
//       (and 7612 with --host-shards 1, 7613 with --host-shards 2), then
//       ./build/examples/cluster /tmp/cluster-client 127.0.0.1:7611 127.0.0.1:7612 127.0.0.1:7613

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "strata/all.hpp"

struct account {
  std::string owner;
  int64_t balance = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(owner), CEREAL_NVP(balance));
  }
};

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: cluster DATA_DIR HOST:PORT...  (one node per shard)\n";
    return 2;
  }
  caf::actor_system_config cfg;
  strata::configure(cfg);
  caf::actor_system sys{cfg};
  strata::store_options opts;
  opts.data_dir = argv[1]; // the coordinator's decision log
  opts.shards = static_cast<uint32_t>(argc - 2);
  for (int i = 2; i < argc; ++i)
    opts.shard_nodes.emplace_back(argv[i]);
  opts.request_timeout = std::chrono::seconds{5};
  opts.log_level = "warning";
  auto store = strata::spawn_store(sys, opts);
  if (!store) {
    std::cerr << "error: " << strata::render(store.error()) << "\n";
    return 1;
  }
  int rc = 0;
  {
    strata::blocking_store<account> db{sys, *store};
    // Plain typed requests: each key goes to its shard's node.
    for (auto name : {"ada", "grace", "linus", "barbara"})
      if (auto err = db.set(std::string{"acct/"} + name, account{name, 100})) {
        std::cerr << "error: " << strata::render(err) << "\n";
        rc = 1;
      }
    // A transaction across nodes: two-phase commit over the network.
    auto moved = db.transaction([](strata::blocking_txn<account>& tx) -> caf::expected<bool> {
      auto from = tx.get("acct/ada");
      auto to = tx.get("acct/linus");
      if (!from || !to)
        return from ? to.error() : from.error();
      if (!*from || !*to)
        return strata::make_error(strata::errc::key_not_found, "no such account");
      auto a = **from;
      auto b = **to;
      a.balance -= 30;
      b.balance += 30;
      if (auto err = tx.set("acct/ada", a))
        return err;
      if (auto err = tx.set("acct/linus", b))
        return err;
      return true;
    });
    if (!moved) {
      std::cerr << "transfer failed: " << strata::render(moved.error()) << "\n";
      rc = 1;
    }
    int64_t total = 0;
    strata::scan_options accounts;
    accounts.prefix = "acct/";
    for (auto& [key, acct] : db.entries(accounts)) {
      std::cout << key << ": " << acct.owner << " " << acct.balance << "\n";
      total += acct.balance;
    }
    std::cout << "total " << total << " (always 400)\n";
    // The node registry: this process and each shard node.
    if (auto nodes = db.nodes()) {
      for (auto& n : *nodes) {
        std::cout << "node " << n.address << ": " << strata::to_string(n.status)
                  << ", shards";
        for (auto s : n.shards)
          std::cout << " " << s;
        std::cout << (n.error.empty() ? "" : ", " + n.error) << "\n";
      }
    }
  }
  caf::anon_send_exit(*store, caf::exit_reason::user_shutdown);
  strata::await_closed(opts.data_dir, std::chrono::seconds{15});
  return rc;
}

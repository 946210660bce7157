// Bank transfers with transactions, from concurrent actor clients.
//
// Shows: opening transactions from event-based actors with
// strata::store<T>::transaction (retries on conflicts included), a business
// rule checked inside the transaction (no negative balances), and the
// invariant that serializable transactions keep across shards: the total
// never changes.
//
// Run:  ./build/examples/bank [DATA_DIR] [CLIENTS] [TRANSFERS_PER_CLIENT]
//       (defaults: ./bank-data, 8 clients, 200 transfers each)

#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "strata/all.hpp"

namespace {

constexpr int accounts = 10;
constexpr int64_t initial = 100;

std::string account(int i) {
  return "account:" + std::to_string(i);
}

/// The outcome of one client: committed transfers and refused ones.
struct tally {
  int committed = 0;
  int refused = 0;
};

/// A client actor: `n` transfers of random amounts between random accounts,
/// one after the other, then reports its tally to `report`.
void client(caf::event_based_actor* self, strata::store<int64_t> bank, int n,
            unsigned seed, caf::actor report) {
  auto rng = std::make_shared<std::mt19937>(seed);
  auto counts = std::make_shared<tally>();
  // `next` refers to itself weakly; the transfer in flight holds it.
  auto next = std::make_shared<std::function<void(int)>>();
  std::weak_ptr<std::function<void(int)>> weak = next;
  *next = [=](int left) {
    auto again = weak.lock();
    if (left == 0) {
      self->send(report, counts->committed, counts->refused);
      self->quit();
      return;
    }
    int from = static_cast<int>((*rng)() % accounts);
    int to = static_cast<int>((from + 1 + (*rng)() % (accounts - 1)) % accounts);
    int64_t amount = 1 + static_cast<int64_t>((*rng)() % 50);
    using done_fn = std::function<void(caf::expected<bool>)>;
    // Ten accounts and eight clients conflict often: allow many retries.
    strata::txn_options opts;
    opts.retries = 30;
    // The executor reads both balances and writes both, unless the source
    // cannot pay; `done` hands its result to strata, which then commits.
    bank
      .transaction<bool>(
        self,
        [=](strata::txn<int64_t> tx, done_fn done) {
          tx.get(self, account(from))
            .then(
              [=](std::optional<int64_t> a) {
                tx.get(self, account(to))
                  .then(
                    [=](std::optional<int64_t> b) {
                      if (!a || !b || *a < amount)
                        return done(false); // refused: commits nothing
                      tx.set(self, account(from), *a - amount)
                        .then(
                          [=](caf::unit_t) {
                            tx.set(self, account(to), *b + amount)
                              .then([=](caf::unit_t) { done(true); },
                                    [=](caf::error e) { done(e); });
                          },
                          [=](caf::error e) { done(e); });
                    },
                    [=](caf::error e) { done(e); });
              },
              [=](caf::error e) { done(e); });
        },
        opts)
      .then(
        [=](bool moved) {
          ++(moved ? counts->committed : counts->refused);
          (*again)(left - 1);
        },
        [=](caf::error e) {
          std::cerr << "transfer failed: " << strata::render(e) << "\n";
          (*again)(left - 1);
        });
  };
  (*next)(n);
}

} // namespace

int main(int argc, char** argv) {
  caf::actor_system_config cfg;
  strata::configure(cfg);
  caf::actor_system sys{cfg};
  strata::store_options opts;
  opts.data_dir = argc > 1 ? argv[1] : "bank-data";
  opts.shards = 4;
  int clients = argc > 2 ? std::stoi(argv[2]) : 8;
  int transfers = argc > 3 ? std::stoi(argv[3]) : 200;
  auto handle = strata::spawn_store(sys, opts);
  if (!handle) {
    std::cerr << "error: " << strata::render(handle.error()) << "\n";
    return 1;
  }
  auto total = [&] {
    strata::blocking_store<int64_t> db{sys, *handle};
    int64_t sum = 0;
    for (auto& [key, balance] : db.entries(strata::scan_options{"account:", {}, 0}))
      sum += balance;
    return sum;
  };
  {
    // Open the accounts once (atomically across shards).
    strata::blocking_store<int64_t> db{sys, *handle};
    if (auto first = db.get(account(0)); first && !*first) {
      std::map<std::string, int64_t> xs;
      for (int i = 0; i < accounts; ++i)
        xs[account(i)] = initial;
      if (auto err = db.set_many(xs)) {
        std::cerr << "error: " << strata::render(err) << "\n";
        return 1;
      }
    }
  }
  auto before = total();
  std::cout << "total before: " << before << "\n";
  caf::scoped_actor waiter{sys};
  strata::store<int64_t> bank{*handle};
  for (int c = 0; c < clients; ++c)
    sys.spawn(client, bank, transfers, 1000u + static_cast<unsigned>(c),
              caf::actor{waiter});
  tally all;
  for (int c = 0; c < clients; ++c)
    waiter->receive([&](int committed, int refused) {
      all.committed += committed;
      all.refused += refused;
    });
  auto after = total();
  std::cout << "transfers committed: " << all.committed
            << ", refused (insufficient funds): " << all.refused << "\n"
            << "total after: " << after << " ("
            << (after == before ? "invariant holds" : "INVARIANT BROKEN") << ")\n";
  caf::anon_send_exit(*handle, caf::exit_reason::user_shutdown);
  return after == before ? 0 : 1;
}

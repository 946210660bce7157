#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>

#include "strata/client.hpp"

/// The bank of the transaction tests: accounts "acct/NN" holding int64
/// balances, and one marker per committed transfer, written in the same
/// transaction: "t/<client>/<n>" → from << 40 | to << 20 | amount. The
/// markers present say exactly which transfers committed, so the balances
/// can be checked against them after concurrency or a crash.
namespace strata::test::bank {

constexpr int accounts = 20;
constexpr int64_t initial = 1000;

inline std::string account(int i) {
  return "acct/" + std::to_string(100 + i).substr(1);
}

inline int64_t marker(int from, int to, int64_t amount) {
  return (int64_t{from} << 40) | (int64_t{to} << 20) | amount;
}

/// Creates the accounts unless they exist.
inline caf::error open_accounts(blocking_store<int64_t>& db) {
  auto first = db.get(account(0));
  if (!first)
    return first.error();
  if (*first)
    return caf::none;
  std::map<std::string, int64_t> xs;
  for (int i = 0; i < accounts; ++i)
    xs[account(i)] = initial;
  return db.set_many(xs);
}

/// The outcome of one transfer attempt.
enum class outcome { committed, insufficient, failed };

/// Moves `amount` from one account to another in one transaction, unless
/// the source would go negative. Retries conflicts.
inline outcome transfer(blocking_store<int64_t>& db, const std::string& marker_key,
                        int from, int to, int64_t amount, caf::error* why = nullptr,
                        txn_options opts = {}) {
  bool insufficient = false;
  auto r = db.transaction(
    [&](blocking_txn<int64_t>& tx) -> caf::expected<caf::unit_t> {
      insufficient = false;
      auto a = tx.get(account(from));
      if (!a)
        return a.error();
      auto b = tx.get(account(to));
      if (!b)
        return b.error();
      if (!*a || !*b)
        return make_error(errc::key_not_found, "no such account");
      if (**a < amount) {
        insufficient = true;
        return caf::unit; // commits nothing but the reads
      }
      if (auto err = tx.set(account(from), **a - amount))
        return err;
      if (auto err = tx.set(account(to), **b + amount))
        return err;
      if (auto err = tx.set(marker_key, marker(from, to, amount)))
        return err;
      return caf::unit;
    },
    opts);
  if (!r) {
    if (why)
      *why = r.error();
    return outcome::failed;
  }
  return insufficient ? outcome::insufficient : outcome::committed;
}

/// What the store holds: balances and markers.
struct snapshot {
  std::map<int, int64_t> balances;
  std::map<std::string, int64_t> markers;
};

inline snapshot read_all(blocking_store<int64_t>& db) {
  snapshot s;
  for (auto& [k, v] : db.entries(scan_options{"acct/", {}, 0}))
    s.balances[std::stoi(k.substr(5))] = v;
  for (auto& [k, v] : db.entries(scan_options{"t/", {}, 0}))
    s.markers[k] = v;
  return s;
}

/// Why `s` breaks the bank's invariants, or an empty string: the total is
/// conserved, no balance is negative, and the balances are exactly the
/// initial ones plus the committed transfers.
inline std::string check(const snapshot& s) {
  if (static_cast<int>(s.balances.size()) != accounts)
    return "expected " + std::to_string(accounts) + " accounts, found "
           + std::to_string(s.balances.size());
  std::map<int, int64_t> expected;
  for (int i = 0; i < accounts; ++i)
    expected[i] = initial;
  for (auto& [k, m] : s.markers) {
    auto from = static_cast<int>(m >> 40);
    auto to = static_cast<int>((m >> 20) & 0xfffff);
    auto amount = m & 0xfffff;
    expected[from] -= amount;
    expected[to] += amount;
  }
  int64_t total = 0;
  for (auto& [i, b] : s.balances) {
    total += b;
    if (b < 0)
      return "account " + std::to_string(i) + " is negative: " + std::to_string(b);
    if (b != expected[i])
      return "account " + std::to_string(i) + " holds " + std::to_string(b)
             + " but its committed transfers say " + std::to_string(expected[i]);
  }
  if (total != accounts * initial)
    return "total is " + std::to_string(total);
  return {};
}

} // namespace strata::test::bank

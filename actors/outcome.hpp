#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "actors/timeouts.hpp"
#include "actors/timer.hpp"
#include "strata/error.hpp"

/// What a commit's sender does when the answer to its commit did not come:
/// it asks whoever decides (the shard of a one-phase commit, the coordinator
/// of a two-phase one) until that one answers or the time is up.
namespace strata {

/// Asks `judge` (`status, txid` → bool) whether transaction `txid`, whose
/// commit failed with `why` (an error after which it may have been applied,
/// see `outcome_unknown`), committed; again after a pause while the judge
/// cannot answer, until `deadline`. Calls `done(err)` once: no error if it
/// committed, TRANSACTION_ABORTED if it did not, CONNECTION_LOST if that
/// could not be learned in time. The judge answers in order with the commit
/// and fences an id it has not seen, so a "no" stays true.
template <class Self, class Judge, class Done>
void learn_outcome(Self* self, Judge judge, uint64_t txid, caf::error why,
                   std::chrono::steady_clock::time_point deadline, Done done,
                   std::chrono::milliseconds pause = std::chrono::milliseconds{20}) {
  auto unknown = [txid](const caf::error& reason) {
    return make_error(errc::connection_lost,
                      "the commit of transaction " + txn_name(txid)
                        + " may or may not have been applied: " + render(reason));
  };
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) {
    done(unknown(why));
    return;
  }
  self->request(judge, timeout_to(self, judge, left), atom::status_v, txid)
    .then(
      [txid, why, done](bool committed) mutable {
        if (committed)
          done(caf::error{});
        else
          done(make_error(errc::transaction_aborted,
                                         "transaction " + txn_name(txid)
                                           + " did not commit: " + render(why)));
      },
      [=](caf::error& err) mutable {
        // The judge cannot tell (a forgotten id), or the time is up.
        if (code_of(err) == errc::key_not_found
            || std::chrono::steady_clock::now() + pause >= deadline) {
          done(unknown(err));
          return;
        }
        // Unreachable for now (a node reconnecting, a shard restarting).
        auto timer = spawn_timer(self->system());
        auto ms = static_cast<uint32_t>(pause.count());
        self->request(timer, caf::infinite, atom::timeout_v, ms)
          .then(
            [=]() mutable {
              learn_outcome(self, judge, txid, why, deadline, done,
                            std::min(pause * 2, std::chrono::milliseconds{1000}));
            },
            [=](caf::error&) mutable { done(unknown(why)); });
      });
}

} // namespace strata

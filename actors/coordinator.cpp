// The two-phase-commit coordinator.
//
//   transaction / router
//        │ commit(txid, parts)
//        ▼
//   coordinator ── one part? ──▶ shard: commit(part) ─ validate+apply+sync ─▶ answer
//        │
//        │ phase 1: prepare(txid, part) to every shard involved
//        ▼          (each validates, logs the part durably, locks it; votes)
//   all voted yes? ── no ──▶ resolve(txid, abort) to all ──▶ VERSION_CONFLICT …
//        │ yes
//        ▼
//   log "commit txid → shards" in the decision log (group commit, synced)
//        │   ◀── the commit point: from here on the transaction commits
//        ▼
//   phase 2: resolve(txid, commit) to every shard (apply, unlock, log; the
//        │   sync comes with a later group: the decision covers the gap)
//        ▼
//   answer the client; every 64 commits: sync barrier on the shards, then
//   those decisions leave the log
//
// Presumed abort: only commit decisions are logged. A shard that restarts
// with a prepared transaction asks `status(txid)`; no decision in the log
// means abort (and a commit still collecting votes is aborted by the
// question). On start, the coordinator re-drives every decision still in its
// log, so a crash between decision and phase 2 loses nothing. Nothing waits
// for a lock: conflicting prepares vote no at once, so no deadlock can form.

#include "actors/coordinator.hpp"

#include <cstdio>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "actors/log.hpp"
#include "actors/timeouts.hpp"
#include "backends/decision_log.hpp"
#include "backends/fault.hpp"
#include "backends/kv_store.hpp"

namespace strata {

namespace {

using coord_ptr = coordinator_actor::stateful_pointer<coordinator_state>;

/// One two-phase commit in progress.
struct commit_run {
  uint64_t txid = 0;
  std::vector<uint32_t> shards;
  caf::response_promise rp;
  size_t waiting = 0;
  caf::error first_error;
  bool writes = false;
  uint64_t deleted = 0;
  bool apply_failed = false;
};

/// A participant's error as the client should see it: CAF errors (a shard
/// that did not answer, or is gone) become TRANSACTION_ABORTED.
caf::error as_strata(const caf::error& err, uint64_t txid) {
  if (code_of(err) != errc::none)
    return err;
  return make_error(errc::transaction_aborted,
                    "transaction " + txn_name(txid)
                      + " aborted: a shard did not vote: " + render(err));
}

/// Sends the outcome to every shard of `run`; `then` runs once all answered.
void resolve_all(coord_ptr self, std::shared_ptr<commit_run> run, bool commit,
                 std::function<void()> then) {
  run->waiting = run->shards.size();
  for (auto s : run->shards)
    self
      ->request(self->state.shards[s],
                timeout_to(self, self->state.shards[s], self->state.timeout),
                atom::resolve_v,
                run->txid, commit)
      .then(
        [run, then, commit](uint64_t deleted) {
          if (commit)
            STRATA_FAULT_POINT("coordinator.during_apply");
          run->deleted += deleted;
          if (--run->waiting == 0)
            then();
        },
        [self, run, then, s, commit](caf::error& err) {
          // The shard keeps the transaction in doubt and asks on restart
          // (or reconnect); a commit decision stays in the log until then.
          if (commit)
            log().warn("transaction {}: shard {} did not apply the commit: {}",
                       txn_name(run->txid), s, render(err));
          run->apply_failed = true;
          if (--run->waiting == 0)
            then();
        });
}

/// Once a batch of commits is applied everywhere: a barrier makes every
/// shard's outcome records durable, then their decisions leave the log. (A
/// decision that stays is re-driven on the next start, which is harmless.)
void forget_applied(coord_ptr self) {
  auto& st = self->state;
  if (st.barrier_running || st.applied.size() < decision_batch)
    return;
  st.barrier_running = true;
  auto batch = std::make_shared<std::vector<std::string>>();
  for (auto txid : st.applied)
    batch->push_back(decision_log::key(txid));
  st.applied.clear();
  auto waiting = std::make_shared<size_t>(st.shards.size());
  auto ok = std::make_shared<bool>(true);
  auto arrived = [self, batch, waiting, ok] {
    if (--*waiting > 0)
      return;
    self->state.barrier_running = false;
    if (*ok)
      self->request(self->state.log_writer, caf::infinite, atom::del_many_v, *batch)
        .then([](uint64_t) {}, [](caf::error&) {});
    forget_applied(self);
  };
  for (auto& s : st.shards)
    self->request(s, timeout_to(self, s, st.timeout), atom::sync_v)
      .then([arrived] { arrived(); },
            [arrived, ok](caf::error&) {
              *ok = false;
              arrived();
            });
}

/// Phase two of a logged commit.
void apply(coord_ptr self, std::shared_ptr<commit_run> run) {
  resolve_all(self, run, true, [self, run] {
    if (run->rp.pending())
      run->rp.deliver(run->deleted);
    if (!run->apply_failed) {
      self->state.applied.push_back(run->txid);
      forget_applied(self);
    }
  });
}

void abort(coord_ptr self, std::shared_ptr<commit_run> run, caf::error why) {
  resolve_all(self, run, false, [run, why]() mutable {
    run->rp.deliver(std::move(why));
  });
}

/// All votes are in.
void decide(coord_ptr self, std::shared_ptr<commit_run> run) {
  auto& open = self->state.open;
  auto i = open.find(run->txid);
  bool asked = i != open.end() && i->second.aborted;
  if (run->first_error || asked) {
    open.erase(run->txid);
    abort(self, run,
          run->first_error ? as_strata(run->first_error, run->txid)
                           : make_error(errc::transaction_aborted,
                                        "transaction " + txn_name(run->txid)
                                          + " was aborted by a recovering shard"));
    return;
  }
  if (!run->writes) {
    // Read-only: every shard validated while holding its locks; release.
    open.erase(run->txid);
    resolve_all(self, run, false, [run] { run->rp.deliver(uint64_t{0}); });
    return;
  }
  if (i == open.end()) {
    // Cannot happen: a commit stays open until decided. Abort to be safe.
    abort(self, run,
          make_error(errc::transaction_aborted,
                     "transaction " + txn_name(run->txid) + " lost its state"));
    return;
  }
  i->second.logging = true;
  auto finish_question = [self, txid = run->txid](bool committed) {
    auto& o = self->state.open;
    if (auto j = o.find(txid); j != o.end()) {
      for (auto& rp : j->second.asking)
        rp.deliver(committed);
      o.erase(j);
    }
  };
  self
    ->request(self->state.log_writer, caf::infinite, atom::set_v,
              decision_log::key(run->txid), decision_log::encode(run->shards))
    .then(
      [self, run, finish_question] {
        STRATA_FAULT_POINT("coordinator.after_decision");
        finish_question(true);
        apply(self, run);
      },
      [self, run, finish_question](caf::error& err) {
        finish_question(false);
        abort(self, run,
              make_error(errc::transaction_aborted,
                         "transaction " + txn_name(run->txid)
                           + ": the commit decision could not be logged: "
                           + render(err)));
      });
}

} // namespace

coordinator_actor::behavior_type
coordinator(coord_ptr self, std::shared_ptr<kv_store> log_store,
            std::vector<participant_actor> shards, uint64_t max_value_size,
            std::chrono::milliseconds timeout) {
  auto& st = self->state;
  st.log = log_store;
  st.log_writer = spawn_shard_writer(self->system(), log_store);
  self->link_to(st.log_writer);
  st.shards = std::move(shards);
  st.timeout = timeout;
  st.max_value_size = max_value_size;
  // Re-drive the decisions of commits a crash interrupted.
  size_t garbled = 0;
  auto logged = guarded([&] { return decision_log::all(*log_store, &garbled); });
  if (!logged)
    log().error("cannot read the decision log: {}", render(logged.error()));
  else
    for (auto& d : *logged) {
      auto run = std::make_shared<commit_run>();
      run->txid = d.txid;
      run->shards = std::move(d.shards);
      run->writes = true;
      log().info("re-driving the commit of transaction {}", txn_name(run->txid));
      apply(self, run);
    }
  if (garbled > 0)
    log().error("decision log: ignored {} garbled entries", garbled);
  return {
    [=](atom::commit, uint64_t txid,
        std::vector<shard_part>& parts) -> caf::result<uint64_t> {
      auto n = self->state.shards.size();
      std::set<uint32_t> seen;
      for (auto& p : parts) {
        if (p.shard >= n || !seen.insert(p.shard).second)
          return make_error(errc::invalid_value,
                            "transaction " + txn_name(txid)
                              + ": bad or repeated shard index "
                              + std::to_string(p.shard));
        if (auto err = check_part(p.part, self->state.max_value_size))
          return err;
      }
      if (parts.empty())
        return uint64_t{0};
      if (parts.size() == 1)
        return self->delegate(self->state.shards[parts[0].shard], atom::commit_v,
                              std::move(parts[0].part));
      if (self->state.open.count(txid) > 0)
        return make_error(errc::invalid_value,
                          "transaction " + txn_name(txid) + " is committing already");
      auto run = std::make_shared<commit_run>();
      run->txid = txid;
      run->rp = self->make_response_promise();
      run->waiting = parts.size();
      for (auto& p : parts) {
        run->shards.push_back(p.shard);
        run->writes = run->writes || !p.part.writes.empty();
      }
      self->state.open.emplace(txid, coordinator_state::undecided{});
      for (auto& p : parts) {
        auto s = p.shard;
        self
          ->request(self->state.shards[s],
                    timeout_to(self, self->state.shards[s], self->state.timeout),
                    atom::prepare_v,
                    txid, std::move(p.part))
          .then(
            [self, run] {
              if (--run->waiting == 0)
                decide(self, run);
            },
            [self, run, s](caf::error& err) {
              if (!run->first_error)
                run->first_error = std::move(err);
              if (--run->waiting == 0)
                decide(self, run);
            });
      }
      return run->rp;
    },
    [=](atom::status, uint64_t txid) -> caf::result<bool> {
      auto& open = self->state.open;
      if (auto i = open.find(txid); i != open.end()) {
        if (i->second.logging) {
          auto rp = self->make_response_promise();
          i->second.asking.push_back(rp);
          return rp;
        }
        i->second.aborted = true;
        return false;
      }
      return guarded([&] {
        return self->state.log->get(decision_log::key(txid)).has_value();
      });
    },
  };
}

coordinator_actor spawn_coordinator(caf::actor_system& sys,
                                    std::shared_ptr<kv_store> log,
                                    std::vector<participant_actor> shards,
                                    uint64_t max_value_size,
                                    std::chrono::milliseconds timeout) {
  return sys.spawn(coordinator, std::move(log), std::move(shards),
                   max_value_size, timeout);
}

} // namespace strata

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
//   log "commit txid → shards" in the decision log (synced)
//        │   ◀── the commit point: from here on the transaction commits
//        ▼
//   phase 2: resolve(txid, commit) to every shard (apply, unlock, log; the
//        │   sync comes with a later group: the decision covers the gap)
//        ▼
//   answer the client; every 64 commits that every shard confirmed: sync
//   barrier on the shards, then those decisions leave the log (after a
//   failed barrier, with the next one). Outcomes a shard did not confirm (an
//   error, a short answer) are sent again, with backoff, until it does: its
//   prepared locks wait for them.
//
// Rounds: the coordinator does not send one message per transaction and
// step. Prepares, decisions and outcomes queue up while it works through its
// mailbox; a flush it sends itself then sends each shard one batch of
// prepares and one of outcomes, and the log one batch of decisions. Under
// load a round carries many transactions, so the messages, syncs and thread
// wake-ups per commit shrink with it (group commit across the protocol).
//
// Presumed abort: only commit decisions are logged. A shard that restarts
// with a prepared transaction asks `status(txid)`; no decision in the log
// means abort (and a commit still collecting votes is aborted by the
// question). On start, the coordinator re-drives every decision still in its
// log, so a crash between decision and phase 2 loses nothing. Nothing waits
// for a lock: conflicting prepares vote no at once, so no deadlock can form.

#include "actors/coordinator.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/checks.hpp"
#include "backends/log.hpp"
#include "actors/outcome.hpp"
#include "actors/timeouts.hpp"
#include "backends/decision_log.hpp"
#include "backends/fault.hpp"
#include "backends/shard_core.hpp"

namespace strata {

/// One two-phase commit in progress.
struct commit_run {
  uint64_t txid = 0;
  std::vector<uint32_t> shards;
  caf::response_promise rp;
  /// Votes or outcome answers still to come.
  size_t waiting = 0;
  caf::error first_error;
  bool writes = false;
  uint64_t deleted = 0;
  /// Runs once every shard answered the outcome. It gets the run as an
  /// argument rather than holding it, so that a run whose answers never come
  /// (the coordinator stops) does not keep itself alive.
  std::function<void(commit_run&)> resolved;
};

namespace {

using coord_ptr = coordinator_impl::stateful_pointer<coordinator_state>;

/// A failed vote as the client should see it. The transaction is aborted
/// now, certainly, so a vote whose own outcome was open (a shard that did
/// not answer, a lost connection) becomes TRANSACTION_ABORTED.
caf::error as_strata(const caf::error& err, uint64_t txid) {
  if (!outcome_unknown(err))
    return err;
  return make_error(errc::transaction_aborted,
                    "transaction " + txn_name(txid)
                      + " aborted: a shard did not vote: " + render(err));
}

void schedule_retry(coord_ptr self);

void schedule_flush(coord_ptr self) {
  if (!self->state.flush_scheduled) {
    self->state.flush_scheduled = true;
    self->send(self, atom::flush_v);
  }
}

/// Queues the outcome for every shard of `run`; `then` runs once all
/// answered.
void resolve_all(coord_ptr self, commit_run_ptr run, bool commit,
                 std::function<void(commit_run&)> then) {
  run->waiting = run->shards.size();
  run->resolved = std::move(then);
  for (auto s : run->shards) {
    auto& r = self->state.round[s];
    r.outcomes.push_back(txn_outcome{run->txid, commit});
    r.resolving.push_back(run);
  }
  schedule_flush(self);
}

/// Once a batch of commits is applied everywhere: a barrier makes every
/// shard's outcome records durable, then their decisions leave the log. (A
/// decision that stays is re-driven on the next start, which is harmless.)
void forget_applied(coord_ptr self) {
  auto& st = self->state;
  if (st.barrier_running || st.barrier_backoff || st.applied.size() < decision_batch)
    return;
  st.barrier_running = true;
  auto batch = std::make_shared<std::vector<uint64_t>>(std::move(st.applied));
  st.applied.clear();
  auto waiting = std::make_shared<size_t>(st.shards.size());
  auto ok = std::make_shared<bool>(true);
  auto arrived = [self, batch, waiting, ok] {
    if (--*waiting > 0)
      return;
    auto& state = self->state;
    state.barrier_running = false;
    if (!*ok) {
      // Not known durable everywhere: the batch waits for a later barrier,
      // after the retry timer rather than at once against a failing shard.
      state.applied.insert(state.applied.end(), batch->begin(), batch->end());
      state.barrier_backoff = true;
      state.retry_delay = std::clamp(state.retry_delay * 2, outcome_retry, outcome_retry_max);
      schedule_retry(self);
      return;
    }
    std::vector<std::string> keys;
    keys.reserve(batch->size());
    for (auto txid : *batch)
      keys.push_back(decision_log::key(txid));
    self->request(state.log_writer, caf::infinite, atom::del_many_v, std::move(keys))
      .then([](uint64_t) {}, [](caf::error&) {});
    // A transaction whose commit answer was lost may still ask about them.
    for (auto txid : *batch)
      state.forgotten.insert(txid);
    while (state.forgotten.size() > forgotten_kept)
      state.forgotten.erase(state.forgotten.begin());
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

/// A shard confirmed the outcome of logged commit `txid`; once every shard
/// has, its decision may leave the log.
void confirmed(coord_ptr self, uint64_t txid) {
  auto& st = self->state;
  auto i = st.unsettled.find(txid);
  if (i == st.unsettled.end() || --i->second > 0)
    return;
  st.unsettled.erase(i);
  st.applied.push_back(txid);
  forget_applied(self);
}

/// Phase two of a logged commit.
void apply(coord_ptr self, commit_run_ptr run) {
  self->state.unsettled[run->txid] += run->shards.size();
  resolve_all(self, run, true, [](commit_run& done) {
    if (!done.rp.pending())
      return;
    // Test builds: the commit is applied, but its answer is lost.
    if (STRATA_FAIL_POINT("coordinator.lose_answer"))
      done.rp.deliver(make_error(errc::connection_lost,
                                 "the answer was lost (fault injected)"));
    else
      done.rp.deliver(done.deleted);
  });
}

void abort(coord_ptr self, commit_run_ptr run, caf::error why) {
  resolve_all(self, run, false, [why](commit_run& done) mutable {
    done.rp.deliver(std::move(why));
  });
}

/// Answers the shards that asked about `txid` while its decision was logged.
void finish_question(coord_ptr self, uint64_t txid, bool committed) {
  auto& o = self->state.open;
  if (auto j = o.find(txid); j != o.end()) {
    for (auto& rp : j->second.asking)
      rp.deliver(committed);
    o.erase(j);
  }
}

/// All votes are in.
void decide(coord_ptr self, commit_run_ptr run) {
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
    resolve_all(self, run, false, [](commit_run& done) { done.rp.deliver(uint64_t{0}); });
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
  self->state.deciding.push_back(std::move(run));
  schedule_flush(self);
}

/// Sends shard `s` one batch of prepares; each vote goes to its run.
void send_prepare_batch(coord_ptr self, uint32_t s, std::vector<txn_prepare> batch,
                        std::shared_ptr<std::vector<commit_run_ptr>> runs) {
  auto count = batch.size();
  auto vote = [self, runs](size_t i, caf::error err) {
    auto& run = (*runs)[i];
    if (err && !run->first_error)
      run->first_error = std::move(err);
    if (--run->waiting == 0)
      decide(self, run);
  };
  auto& dest = self->state.shards[s];
  self
    ->request(dest, timeout_to(self, dest, self->state.timeout), atom::prepare_v,
              std::move(batch))
    .then(
      [vote, count, s](std::vector<caf::error>& votes) {
        caf::error garbled;
        if (votes.size() != count)
          garbled = make_error(errc::transaction_aborted,
                               "shard " + std::to_string(s) + " answered "
                                 + std::to_string(votes.size()) + " votes for "
                                 + std::to_string(count) + " prepares");
        for (size_t i = 0; i < count; ++i)
          vote(i, garbled ? garbled : std::move(votes[i]));
      },
      [vote, count](caf::error& err) {
        for (size_t i = 0; i < count; ++i)
          vote(i, err);
      });
}

/// Sends shard `s` the prepares of this round; each vote goes to its run.
/// A round goes in several messages if together they would come near a
/// node's frame limit.
void send_prepares(coord_ptr self, uint32_t s, shard_round& r) {
  auto all = std::move(r.prepares);
  auto all_runs = std::move(r.preparing);
  r.prepares.clear();
  r.preparing.clear();
  auto budget = self->state.max_frame / 2;
  size_t first = 0;
  while (first < all.size()) {
    auto last = first;
    uint64_t size = 0;
    do
      size += wire_size(all[last++]);
    while (last < all.size() && size + wire_size(all[last]) <= budget);
    std::vector<txn_prepare> batch(std::make_move_iterator(all.begin() + first),
                                   std::make_move_iterator(all.begin() + last));
    auto runs = std::make_shared<std::vector<commit_run_ptr>>(all_runs.begin() + first,
                                                              all_runs.begin() + last);
    send_prepare_batch(self, s, std::move(batch), std::move(runs));
    first = last;
  }
}

/// Sends unconfirmed outcomes again after a while.
void schedule_retry(coord_ptr self) {
  auto& st = self->state;
  if (st.retry_scheduled)
    return;
  st.retry_scheduled = true;
  if (st.retry_delay.count() == 0)
    st.retry_delay = outcome_retry;
  self->delayed_send(self, st.retry_delay, atom::retry_v);
}

/// Keeps the outcomes of shard `s` from `outcomes[from]` on for the next
/// retry (a short answer confirms the ones before).
void unconfirmed(coord_ptr self, uint32_t s, const std::vector<txn_outcome>& outcomes,
                 size_t from = 0) {
  if (from >= outcomes.size())
    return;
  auto& u = self->state.unconfirmed[s];
  u.insert(u.end(), outcomes.begin() + static_cast<long>(from), outcomes.end());
  schedule_retry(self);
}

/// Sends every shard the outcomes it has not confirmed yet.
void retry_outcomes(coord_ptr self) {
  auto& st = self->state;
  st.retry_scheduled = false;
  if (st.barrier_backoff) {
    st.barrier_backoff = false;
    forget_applied(self);
  }
  for (uint32_t s = 0; s < st.unconfirmed.size(); ++s) {
    if (st.unconfirmed[s].empty())
      continue;
    auto batch = std::move(st.unconfirmed[s]);
    st.unconfirmed[s].clear();
    auto& dest = st.shards[s];
    auto sent = std::make_shared<std::vector<txn_outcome>>(batch);
    self->request(dest, timeout_to(self, dest, st.timeout), atom::resolve_v,
                  std::move(batch))
      .then(
        [self, s, sent](std::vector<uint64_t>& deleted) {
          self->state.retry_delay = std::chrono::milliseconds{0};
          unconfirmed(self, s, *sent, deleted.size());
          for (size_t i = 0; i < std::min(deleted.size(), sent->size()); ++i)
            if ((*sent)[i].commit)
              confirmed(self, (*sent)[i].txid);
        },
        [self, s, sent](caf::error& err) {
          auto& delay = self->state.retry_delay;
          delay = std::clamp(delay * 2, outcome_retry, outcome_retry_max);
          log().warn("shard {}: {} outcomes still unconfirmed ({}); next try in {} ms",
                     s, sent->size(), render(err), delay.count());
          unconfirmed(self, s, *sent);
        });
  }
}

/// Sends shard `s` the outcomes of this round.
void send_outcomes(coord_ptr self, uint32_t s, shard_round& r) {
  auto runs = std::make_shared<std::vector<commit_run_ptr>>(std::move(r.resolving));
  r.resolving.clear();
  auto sent = std::make_shared<std::vector<txn_outcome>>(r.outcomes);
  auto answered = [self, runs](size_t i, uint64_t deleted, bool applied) {
    auto& run = (*runs)[i];
    run->deleted += deleted;
    if (applied)
      confirmed(self, run->txid);
    if (--run->waiting == 0) {
      auto then = std::move(run->resolved);
      run->resolved = nullptr;
      then(*run);
    }
  };
  auto& dest = self->state.shards[s];
  self
    ->request(dest, timeout_to(self, dest, self->state.timeout), atom::resolve_v,
              std::move(r.outcomes))
    .then(
      [self, answered, sent, s](std::vector<uint64_t>& deleted) {
        // A short answer counts as failed for the ones it leaves out: they
        // are sent again until the shard confirms them (a commit decision
        // stays in the log meanwhile).
        if (deleted.size() < sent->size())
          log().warn("shard {} answered {} outcomes of {}", s, deleted.size(),
                     sent->size());
        unconfirmed(self, s, *sent, deleted.size());
        for (size_t i = 0; i < sent->size(); ++i) {
          if ((*sent)[i].commit)
            STRATA_FAULT_POINT("coordinator.during_apply");
          answered(i, i < deleted.size() ? deleted[i] : 0, i < deleted.size());
        }
      },
      [self, answered, sent, s](caf::error& err) {
        // The shard keeps these transactions prepared, and their locks, until
        // an outcome arrives: they are sent again (and a restarting shard
        // asks about them). A commit decision stays in the log meanwhile.
        for (size_t i = 0; i < sent->size(); ++i) {
          if ((*sent)[i].commit)
            log().warn("transaction {}: shard {} did not apply the commit: {}",
                       txn_name((*sent)[i].txid), s, render(err));
          answered(i, 0, false);
        }
        unconfirmed(self, s, *sent);
      });
  r.outcomes.clear();
}

/// Logs this round's commit decisions with one write (one sync), then
/// applies them.
void log_decisions(coord_ptr self) {
  auto runs = std::make_shared<std::vector<commit_run_ptr>>(
    std::move(self->state.deciding));
  self->state.deciding.clear();
  std::vector<entry> entries;
  entries.reserve(runs->size());
  for (auto& run : *runs)
    entries.push_back(
      entry{decision_log::key(run->txid), decision_log::encode(run->shards)});
  self->request(self->state.log_writer, caf::infinite, atom::set_many_v,
                std::move(entries))
    .then(
      [self, runs] {
        STRATA_FAULT_POINT("coordinator.after_decision");
        for (auto& run : *runs) {
          finish_question(self, run->txid, true);
          apply(self, run);
        }
      },
      [self, runs](caf::error& err) {
        if (code_of(err) == errc::consistency_violation) {
          // Logged, but the log's store could not apply them: they are
          // durable (a reopen replays them), so they commit; `status`
          // answers for them from memory.
          log().error("decision log: {}", render(err));
          for (auto& run : *runs) {
            self->state.unapplied.insert(run->txid);
            finish_question(self, run->txid, true);
            apply(self, run);
          }
          return;
        }
        for (auto& run : *runs) {
          finish_question(self, run->txid, false);
          abort(self, run,
                make_error(errc::transaction_aborted,
                           "transaction " + txn_name(run->txid)
                             + ": the commit decision could not be logged: "
                             + render(err)));
        }
      });
}

/// A commit on one shard: one phase. Should its answer not come, the shard
/// is asked whether it committed, up to one timeout later.
caf::response_promise commit_one(coord_ptr self, uint64_t txid, shard_part p) {
  auto rp = self->make_response_promise();
  auto& dest = self->state.shards[p.shard];
  auto deadline = std::chrono::steady_clock::now() + self->state.timeout;
  self
    ->request(dest, timeout_to(self, dest, self->state.timeout), atom::commit_v, txid,
              std::move(p.part))
    .then([rp](uint64_t deleted) mutable { rp.deliver(deleted); },
          [self, rp, dest, txid, deadline](caf::error& err) mutable {
            if (!outcome_unknown(err)) {
              rp.deliver(std::move(err));
              return;
            }
            // Learned rather than answered: how many deletes found their key
            // is lost with the answer.
            learn_outcome(self, dest, txid, std::move(err), deadline,
                          [rp](caf::error verdict) mutable {
                            if (verdict)
                              rp.deliver(std::move(verdict));
                            else
                              rp.deliver(uint64_t{0});
                          });
          });
  return rp;
}

/// Sends everything queued since the last round.
void flush(coord_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  for (uint32_t s = 0; s < st.round.size(); ++s) {
    // Outcomes first: they free locks, and the shard's writer runs them
    // before the prepares of its group anyway.
    auto& r = st.round[s];
    if (!r.outcomes.empty())
      send_outcomes(self, s, r);
    if (!r.prepares.empty())
      send_prepares(self, s, r);
  }
  if (!st.deciding.empty())
    log_decisions(self);
}

} // namespace

coordinator_impl::behavior_type
coordinator(coord_ptr self, std::shared_ptr<shard_core> log_store,
            std::vector<participant_actor> shards, uint64_t max_value_size,
            std::chrono::milliseconds timeout, uint64_t max_frame) {
  auto& st = self->state;
  st.log = log_store;
  st.max_frame = max_frame;
  st.log_writer = spawn_shard_writer(self->system(), log_store);
  self->link_to(st.log_writer);
  st.shards = std::move(shards);
  st.round.resize(st.shards.size());
  st.unconfirmed.resize(st.shards.size());
  st.timeout = timeout;
  st.max_value_size = max_value_size;
  // Re-drive the decisions of commits a crash interrupted.
  size_t garbled = 0;
  auto logged = guarded([&] { return decision_log::all(*log_store, &garbled); });
  if (!logged)
    log().error("cannot read the decision log: {}", render(logged.error()));
  else
    for (auto& d : *logged) {
      // A shard index beyond the store's shards is a garbled entry too.
      auto n = st.shards.size();
      if (std::any_of(d.shards.begin(), d.shards.end(), [n](uint32_t s) { return s >= n; })) {
        ++garbled;
        continue;
      }
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
        return commit_one(self, txid, std::move(parts[0]));
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
        auto& r = self->state.round[p.shard];
        r.prepares.push_back(txn_prepare{txid, std::move(p.part)});
        r.preparing.push_back(run);
      }
      schedule_flush(self);
      return run->rp;
    },
    [=](atom::flush) { flush(self); },
    [=](atom::retry) { retry_outcomes(self); },
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
      if (self->state.unapplied.count(txid) > 0
          || self->state.forgotten.count(txid) > 0)
        return true;
      return guarded([&] {
        return self->state.log->get(decision_log::key(txid)).has_value();
      });
    },
  };
}

coordinator_actor spawn_coordinator(caf::actor_system& sys,
                                    std::shared_ptr<shard_core> log,
                                    std::vector<participant_actor> shards,
                                    uint64_t max_value_size,
                                    std::chrono::milliseconds timeout,
                                    uint64_t max_frame) {
  return sys.spawn(coordinator, std::move(log), std::move(shards), max_value_size, timeout,
                   max_frame);
}

} // namespace strata

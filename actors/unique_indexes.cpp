#include "actors/unique_indexes.hpp"

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/default_attachable.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/join.hpp"
#include "actors/timeouts.hpp"
#include "backends/unique.hpp"
#include "strata/error.hpp"
#include "backends/log.hpp"
#include "backends/query_exec.hpp"
#include "strata/routing.hpp"

namespace strata {

namespace {

/// Documents claimed per build step: one transaction.
constexpr uint32_t build_page = 128;

/// What a claim's own key holds once its index's build ended: nothing for
/// success, else why it failed.
constexpr std::string_view failed_tag = "failed: ";

struct unique_index {
  explicit unique_index(unique_constraint x) : c(std::move(x)) {
    // nop
  }

  unique_constraint c;
  /// "building", "ready" or "failed".
  std::string state = "building";
  std::string error;
  /// Building: the shard and the last key claimed on it.
  uint32_t shard = 0;
  std::string after;
  uint64_t built = 0;
};

struct unique_state {
  static inline const char* name = "strata.unique";
  unique_config cfg;
  bool loaded = false;
  /// Requests that came before the definitions were known: called with
  /// nothing once they are, or with the error that kept them from being
  /// learned.
  std::vector<std::function<void(const caf::error*)>> waiting;
  /// Loading failed before: not logged again.
  bool complained = false;
  std::vector<unique_index> indexes;
  /// A build step is under way: a second one does not start.
  bool stepping = false;
  /// Tells the markers of planned writes apart (random start: several
  /// processes may plan for one store over time).
  uint64_t next_marker = std::random_device{}() * (uint64_t{1} << 32) + std::random_device{}();
};

using unique_ptr_t = unique_actor::stateful_pointer<unique_state>;

/// The step under way ended: the next one starts now, or after a second.
void next_step(unique_ptr_t self) {
  self->state.stepping = false;
  self->send(self, atom::build_v);
}

void step_later(unique_ptr_t self) {
  self->state.stepping = false;
  self->delayed_send(self, std::chrono::seconds{1}, atom::build_v);
}

/// A value read with the sequence number of its shard's snapshot.
struct seen {
  std::optional<std::string> value;
  uint64_t seq = 0;
};
using seen_map = std::map<std::string, seen>;

uint32_t shard_of(unique_ptr_t self, const std::string& key) {
  return routing::shard_of(key, static_cast<uint32_t>(self->state.cfg.shards.size()));
}

std::string text_of(const bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

bytes bytes_of_text(const std::string& s) {
  return bytes(s.begin(), s.end());
}

/// Reads `keys` transactionally, then calls `done` with what they hold, or
/// `fail` with the first error.
void read_all(unique_ptr_t self, const std::vector<std::string>& keys,
              std::function<void(seen_map&)> done, std::function<void(caf::error&)> fail) {
  // One per call, shared by the answers' handlers (which must not copy
  // what `done` holds: a write's operations).
  struct gather {
    seen_map found;
    size_t left = 0;
    caf::error failed;
    std::function<void(seen_map&)> done;
    std::function<void(caf::error&)> fail;

    void arrived() {
      if (--left > 0)
        return;
      if (failed)
        fail(failed);
      else
        done(found);
    }
  };
  auto g = std::make_shared<gather>();
  g->left = keys.size();
  g->done = std::move(done);
  g->fail = std::move(fail);
  if (keys.empty()) {
    g->done(g->found);
    return;
  }
  for (auto& key : keys) {
    auto& s = self->state.cfg.shards[shard_of(self, key)];
    self->request(s, timeout_to(self, s, self->state.cfg.timeout), atom::read_v, key)
      .then(
        [g, key](maybe_bytes& v, uint64_t seq) {
          g->found[key] = seen{v ? std::optional<std::string>{text_of(*v)} : std::nullopt, seq};
          g->arrived();
        },
        [g](caf::error& err) {
          if (!g->failed)
            g->failed = std::move(err);
          g->arrived();
        });
  }
}

std::vector<unique_constraint> constraints(unique_ptr_t self) {
  std::vector<unique_constraint> result;
  for (auto& x : self->state.indexes)
    result.push_back(x.c);
  return result;
}

void publish(unique_ptr_t self) {
  self->state.cfg.registry->known = self->state.indexes.empty() ? unique_registry::none
                                                                 : unique_registry::some;
}

/// Parts of a transaction: one per shard, by shard.
struct parts_builder {
  std::map<uint32_t, txn_part> parts;

  void read(uint32_t shard, const std::string& key, uint64_t seq) {
    parts[shard].reads.push_back(read_mark{key, seq});
  }
  void write(uint32_t shard, operation op) {
    parts[shard].writes.push_back(std::move(op));
  }
  std::vector<shard_part> done() {
    std::vector<shard_part> result;
    for (auto& [shard, part] : parts)
      result.push_back(shard_part{shard, std::move(part)});
    return result;
  }
};

/// Plans the claims of `ops`: reads what the write's keys hold, plans, reads
/// the claims, and answers the parts.
void plan(unique_ptr_t self, std::vector<operation> ops, caf::response_promise rp) {
  auto cs = constraints(self);
  if (cs.empty()) {
    rp.deliver(std::vector<shard_part>{});
    return;
  }
  auto fail = [rp](caf::error& err) mutable { rp.deliver(std::move(err)); };
  auto keys = unique::keys_written(ops);
  read_all(
    self, keys,
    [self, ops, cs, rp, fail](seen_map& docs) mutable {
      std::map<std::string, std::optional<std::string>> before;
      for (auto& [key, s] : docs)
        before[key] = s.value;
      unique::claim_plan p;
      try {
        p = unique::plan(cs, ops, before);
      } catch (const storage_error& e) {
        rp.deliver(make_error(e.code(), e.what()));
        return;
      }
      std::set<std::string> claim_keys;
      for (auto& c : p.take)
        if (!p.cleared) // a clear takes every claim away first
          claim_keys.insert(c.claim);
      for (auto& c : p.give_up)
        claim_keys.insert(c.claim);
      read_all(
        self, {claim_keys.begin(), claim_keys.end()},
        [self, ops, p, docs, rp](seen_map& claims) mutable {
          parts_builder b;
          for (auto& [key, s] : docs)
            b.read(shard_of(self, key), key, s.seq);
          for (auto& [key, s] : claims)
            b.read(shard_of(self, key), key, s.seq);
          std::set<std::string> taken;
          for (auto& c : p.take) {
            auto i = claims.find(c.claim);
            auto holder = i != claims.end() ? i->second.value : std::nullopt;
            if (holder && *holder != c.owner) {
              // Only a document of this write that gives the value up may
              // pass it on.
              auto passes = std::any_of(p.give_up.begin(), p.give_up.end(), [&](auto& g) {
                return g.claim == c.claim && g.owner == *holder;
              });
              if (!passes) {
                rp.deliver(make_error(errc::duplicate_key,
                                      unique::duplicate_message(c, *holder)));
                return;
              }
            }
            taken.insert(c.claim);
            if (holder != c.owner)
              b.write(shard_of(self, c.claim),
                      operation::set(c.claim, bytes_of_text(c.owner)));
          }
          for (auto& c : p.give_up) {
            auto i = claims.find(c.claim);
            // Held by another document: a duplicate from before the index
            // was built, which this one never held.
            if (taken.count(c.claim) == 0 && i != claims.end() && i->second.value == c.owner)
              b.write(shard_of(self, c.claim), operation::del(c.claim));
          }
          // The marker on every shard the write's data goes to: its claims
          // were planned.
          auto n = static_cast<uint32_t>(self->state.cfg.shards.size());
          std::set<uint32_t> data_shards;
          for (auto& op : ops) {
            if (op.kind == op_kind::clear)
              for (uint32_t s = 0; s < n; ++s)
                data_shards.insert(s);
            else
              data_shards.insert(shard_of(self, op.key));
          }
          for (auto s : data_shards)
            b.write(s, operation::del(unique::planned_marker(self->state.next_marker++)));
          rp.deliver(b.done());
        },
        fail);
    },
    fail);
}

/// Commits `parts` through the coordinator.
void commit(unique_ptr_t self, std::vector<shard_part> parts, std::function<void()> ok,
            std::function<void(caf::error&)> fail) {
  auto& cfg = self->state.cfg;
  auto txid = (cfg.incarnation << txn_counter_bits) | ++*cfg.next_txn;
  self->request(cfg.coordinator, timeout_to(self, cfg.coordinator, cfg.timeout),
                atom::commit_v, txid, std::move(parts))
    .then([ok](uint64_t) { ok(); }, [fail](caf::error& err) { fail(err); });
}

unique_index* find(unique_ptr_t self, const std::string& name) {
  for (auto& x : self->state.indexes)
    if (x.c.spec.name == name)
      return &x;
  return nullptr;
}

/// Records the end of `name`'s build under its claim prefix.
void finish_build(unique_ptr_t self, const std::string& name, std::string failure) {
  auto key = claim_prefix(name);
  parts_builder b;
  b.write(shard_of(self, key),
          operation::set(key, bytes_of_text(failure.empty() ? "" : std::string{failed_tag}
                                                                   + failure)));
  commit(
    self, b.done(),
    [self, name, failure] {
      if (auto* x = find(self, name)) {
        x->state = failure.empty() ? "ready" : "failed";
        x->error = failure;
        log().info("unique index {}: {}", name,
                   failure.empty() ? "every value claimed" : "failed: " + failure);
      }
      next_step(self);
    },
    [self, name](caf::error& err) {
      log().warn("unique index {}: cannot record its build: {}", name, render(err));
      step_later(self);
    });
}

/// Claims the values of the next page of documents of the first index that
/// is building; one page at a time, each one transaction.
void build_step(unique_ptr_t self) {
  auto& st = self->state;
  if (st.stepping)
    return;
  auto building = std::find_if(st.indexes.begin(), st.indexes.end(),
                               [](auto& i) { return i.state == "building"; });
  if (building == st.indexes.end())
    return;
  st.stepping = true;
  auto name = building->c.spec.name;
  if (building->shard >= st.cfg.shards.size()) {
    finish_build(self, name, {});
    return;
  }
  scan_request req;
  req.after = building->after;
  req.limit = build_page;
  auto shard = building->shard;
  auto& s = st.cfg.shards[shard];
  auto retry_later = [self, name](caf::error& err) {
    log().warn("unique index {}: build step failed, retrying: {}", name, render(err));
    step_later(self);
  };
  self->request(s, timeout_to(self, s, st.cfg.timeout), atom::read_v, req)
    .then(
      [self, name, shard, retry_later](scan_page& page, uint64_t seq) {
        auto* x = find(self, name);
        if (!x || x->state != "building" || x->shard != shard) { // dropped meanwhile
          next_step(self);
          return;
        }
        // The page's claims, and who in the page holds each value.
        std::map<std::string, unique::claim_change> wanted;
        try {
          for (auto& e : page.entries) {
            document doc;
            if (!stored_document(text_of(e.value), doc))
              continue;
            for (auto& c : unique_claims(x->c, e.key, doc)) {
              unique::claim_change change{c.key, e.key, name, c.shown};
              auto [i, fresh] = wanted.emplace(c.key, change);
              if (!fresh) {
                finish_build(self, name, unique::duplicate_message(change, i->second.owner));
                return;
              }
            }
          }
        } catch (const storage_error& e) {
          finish_build(self, name, e.what());
          return;
        }
        std::vector<std::string> keys;
        for (auto& [k, _] : wanted)
          keys.push_back(k);
        read_all(
          self, keys,
          [self, name, shard, page, seq, wanted, retry_later](seen_map& claims) mutable {
            parts_builder b;
            for (auto& e : page.entries)
              b.read(shard, e.key, seq); // the documents, as the page saw them
            for (auto& [key, c] : wanted) {
              auto& held = claims[key];
              b.read(shard_of(self, key), key, held.seq);
              if (held.value && *held.value != c.owner) {
                finish_build(self, name, unique::duplicate_message(c, *held.value));
                return;
              }
              if (!held.value)
                b.write(shard_of(self, key), operation::set(key, bytes_of_text(c.owner)));
            }
            auto next = page.more && !page.entries.empty() ? page.entries.back().key
                                                           : std::string{};
            auto count = page.entries.size();
            auto advance = [self, name, shard, next, count] {
              if (auto* at = find(self, name); at && at->shard == shard) {
                at->built += count;
                if (next.empty()) {
                  ++at->shard;
                  at->after.clear();
                } else {
                  at->after = next;
                }
              }
              next_step(self);
            };
            if (b.parts.empty()) {
              advance();
              return;
            }
            commit(self, b.done(), advance, [self, retry_later](caf::error& err) {
              if (code_of(err) == errc::version_conflict) // a writer came first: again
                next_step(self);
              else
                retry_later(err);
            });
          },
          retry_later);
      },
      retry_later);
}

/// The unique indexes could not be learned: the writes that waited fail
/// (they cannot know their claims), and loading is tried again in a second.
void load_failed(unique_ptr_t self, caf::error& err) {
  if (!self->state.complained)
    log().warn("unique indexes: no shard tells them, retrying: {}", render(err));
  self->state.complained = true;
  auto waiting = std::move(self->state.waiting);
  auto why = make_error(code_of(err) == errc::none ? errc::connection_lost : code_of(err),
                        "cannot learn the store's unique indexes: " + render(err));
  for (auto& f : waiting)
    f(&why);
  self->delayed_send(self, std::chrono::seconds{1}, atom::build_v);
}

/// Learns the unique indexes from a shard and how their builds ended, then
/// answers what waited.
void load(unique_ptr_t self, size_t from = 0) {
  // Every shard has every index: the first that answers tells.
  auto& s = self->state.cfg.shards[from];
  self->request(s, timeout_to(self, s, self->state.cfg.timeout), atom::indexes_v)
    .then(
      [self](std::vector<index_info>& infos) {
        std::vector<std::string> markers;
        for (auto& info : infos)
          if (info.spec.unique && info.state != "dropping") {
            try {
              self->state.indexes.push_back(unique_index{unique_constraint{info.spec}});
            } catch (const query_error& e) {
              log().warn("unique index {}: {}", info.spec.name, e.what());
              continue;
            }
            markers.push_back(claim_prefix(info.spec.name));
          }
        read_all(
          self, markers,
          [self](seen_map& ends) {
            for (auto& x : self->state.indexes) {
              auto& end = ends[claim_prefix(x.c.spec.name)];
              if (!end.value)
                continue; // building: from the start
              auto& why = *end.value;
              x.state = why.empty() ? "ready" : "failed";
              x.error = why.compare(0, failed_tag.size(), failed_tag) == 0
                          ? why.substr(failed_tag.size())
                          : why;
            }
            self->state.loaded = true;
            publish(self);
            auto waiting = std::move(self->state.waiting);
            for (auto& f : waiting)
              f(nullptr);
            self->send(self, atom::build_v);
          },
          [self](caf::error& err) {
            self->state.indexes.clear();
            load_failed(self, err);
          });
      },
      [self, from](caf::error& err) {
        if (from + 1 < self->state.cfg.shards.size())
          load(self, from + 1);
        else
          load_failed(self, err);
      });
}

unique_actor::behavior_type unique_indexes(unique_ptr_t self, unique_config cfg) {
  self->state.cfg = std::move(cfg);
  // Its router attached the monitor (`unique_of`): monitoring it from here
  // could meet it gone, and CAF 0.17 monitors through a raw pointer.
  self->set_down_handler([self](caf::down_msg&) { self->quit(); });
  load(self);
  // Answers now if the definitions are known, else once they are.
  auto when_loaded = [self](caf::response_promise rp, std::function<void()> f) {
    if (self->state.loaded) {
      f();
      return;
    }
    self->state.waiting.push_back([rp, f](const caf::error* err) mutable {
      if (err)
        rp.deliver(*err);
      else
        f();
    });
  };
  return {
    [=](atom::plan, std::vector<operation>& ops) -> caf::result<std::vector<shard_part>> {
      auto rp = self->make_response_promise();
      when_loaded(rp, [self, ops = std::move(ops), rp]() mutable {
        plan(self, std::move(ops), rp);
      });
      return rp;
    },
    [=](atom::create_index, index_spec& spec) -> caf::result<void> {
      auto rp = self->make_response_promise();
      when_loaded(rp, [self, spec, rp]() mutable {
        auto& st = self->state;
        bool fresh = find(self, spec.name) == nullptr;
        if (fresh) {
          try {
            st.indexes.push_back(unique_index{unique_constraint{spec}});
          } catch (const query_error& e) {
            rp.deliver(make_error(errc::query_error, e.what()));
            return;
          }
          publish(self); // writes claim from now on
        }
        struct tally {
          size_t left = 0;
          caf::error failure;
        };
        auto t = std::make_shared<tally>();
        t->left = st.cfg.shards.size();
        auto arrived = [self, t, rp, spec, fresh]() mutable {
          if (--t->left > 0)
            return;
          if (t->failure) {
            // A shard refused (another index of that name): undone.
            if (fresh) {
              auto& xs = self->state.indexes;
              xs.erase(std::remove_if(xs.begin(), xs.end(),
                                      [&](auto& x) { return x.c.spec.name == spec.name; }),
                       xs.end());
              publish(self);
            }
            rp.deliver(std::move(t->failure));
            return;
          }
          rp.deliver(caf::unit);
          next_step(self);
        };
        for (size_t i = 0; i < st.cfg.shards.size(); ++i) {
          auto& s = st.cfg.shards[i];
          self->request(s, timeout_to(self, s, st.cfg.timeout), atom::create_index_v, spec)
            .then([arrived]() mutable { arrived(); },
                  [t, arrived, i](caf::error& err) mutable {
                    if (!t->failure)
                      t->failure = join::annotate(std::move(err), i);
                    arrived();
                  });
        }
      });
      return rp;
    },
    [=](atom::drop_index, std::string& name) {
      when_loaded(caf::response_promise{}, [self, name] {
        auto& xs = self->state.indexes;
        xs.erase(std::remove_if(xs.begin(), xs.end(),
                                [&](auto& x) { return x.c.spec.name == name; }),
                 xs.end());
        publish(self);
      });
    },
    [=](atom::indexes) -> caf::result<std::vector<index_info>> {
      auto rp = self->make_response_promise();
      when_loaded(rp, [self, rp]() mutable {
        std::vector<index_info> out;
        for (auto& x : self->state.indexes) {
          index_info info;
          info.spec = x.c.spec;
          info.state = x.state;
          info.error = x.error;
          info.built = x.built;
          out.push_back(std::move(info));
        }
        rp.deliver(std::move(out));
      });
      return rp;
    },
    [=](atom::build) {
      if (!self->state.loaded) {
        if (self->state.indexes.empty())
          load(self); // the first attempt failed
        return;
      }
      build_step(self);
    },
  };
}

} // namespace

void add_parts(std::vector<shard_part>& parts, std::vector<shard_part> more) {
  for (auto& m : more) {
    auto i = std::find_if(parts.begin(), parts.end(),
                          [&](auto& p) { return p.shard == m.shard; });
    if (i == parts.end()) {
      parts.push_back(std::move(m));
      continue;
    }
    auto& into = i->part;
    std::move(m.part.writes.begin(), m.part.writes.end(), std::back_inserter(into.writes));
    std::move(m.part.reads.begin(), m.part.reads.end(), std::back_inserter(into.reads));
  }
}

unique_actor unique_of(caf::local_actor* router, const unique_config& cfg) {
  auto& reg = *cfg.registry;
  std::lock_guard<std::mutex> guard{reg.mtx};
  if (!reg.actor) {
    reg.actor = router->system().spawn(unique_indexes, cfg);
    router->attach(
      caf::default_attachable::make_monitor(router->address(), reg.actor.address()));
  }
  return reg.actor;
}

} // namespace strata

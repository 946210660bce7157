#include "actors/storage_queries.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <type_traits>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/join.hpp"
#include "actors/shard_reads.hpp"
#include "actors/timeouts.hpp"
#include "backends/aggregate.hpp"
#include "backends/indexes.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_slot.hpp"
#include "strata/envelope.hpp"

namespace strata::storage_queries {

namespace {

using clock = std::chrono::steady_clock;

uint64_t micros_since(clock::time_point start) {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - start).count());
}

/// Sends the request `xs...` to every shard and calls `done` with the
/// answers in shard order, or delivers the first error to `rp`.
template <class T, class Done, class... Ts>
void gather(storage_ptr self, caf::response_promise rp, Done done, Ts... xs) {
  auto& shards = self->state.shards;
  auto results = std::make_shared<std::vector<T>>(shards.size());
  auto j = std::make_shared<join>(shards.size(), std::move(rp),
                                  [results, done]() mutable { done(*results); });
  for (size_t i = 0; i < shards.size(); ++i) {
    auto& s = shards[i];
    auto failed = [j, i](caf::error& err) {
      if (!j->first_error)
        j->first_error = join::annotate(std::move(err), i);
      j->arrived();
    };
    auto req = self->request(s, timeout_to(self, s, self->state.timeout), xs...);
    if constexpr (std::is_same_v<T, caf::unit_t>)
      req.then([j] { j->arrived(); }, failed);
    else
      req.then(
        [j, results, i](T& x) {
          (*results)[i] = std::move(x);
          j->arrived();
        },
        failed);
  }
}

/// Runs `f`, answering a bad pattern with QUERY_ERROR, a too large result
/// with QUOTA_EXCEEDED, a value that does not decode with SERIALIZATION_FAILED
/// and a failing engine with its own code.
template <class F>
caf::error checked(F f) {
  try {
    f();
    return {};
  } catch (const query_error& e) {
    return make_error(errc::query_error, e.what());
  } catch (const result_too_large& e) {
    return make_error(errc::quota_exceeded, e.what());
  } catch (const codec_error& e) {
    return make_error(errc::serialization_failed, e.what());
  } catch (const storage_error& e) {
    // A local shard's engine failing under a read on the router's thread.
    return make_error(e.code(), e.what());
  }
}

/// Every shard's core if all are in this process and open; nothing otherwise.
std::optional<std::vector<std::shared_ptr<shard_core>>> local_cores(storage_ptr self) {
  std::vector<std::shared_ptr<shard_core>> out;
  auto& local = self->state.local;
  if (local.size() != self->state.shards.size())
    return std::nullopt;
  for (auto& slot : local) {
    auto core = slot ? slot->get() : nullptr;
    if (!core)
      return std::nullopt;
    out.push_back(std::move(core));
  }
  return out;
}

bytes encode_position(const query_position& pos) {
  return encode_sort({document::array(pos.sort), document{pos.key}});
}

/// The shards' answers as hit lists; `cut` if a shard had more.
std::vector<std::vector<query_hit>> hit_lists(std::vector<shard_hits>& answers, bool& cut) {
  std::vector<std::vector<query_hit>> lists(answers.size());
  cut = false;
  for (size_t i = 0; i < answers.size(); ++i) {
    cut = cut || answers[i].more;
    for (auto& h : answers[i].hits)
      lists[i].push_back({std::move(h.key), std::move(h.value), decode_sort(h.sort), h.score,
                          static_cast<uint32_t>(i)});
  }
  return lists;
}

/// The first `want` results after `after`, merged; calls
/// `done(hits, more, answers)` or answers `rp` with an error.
template <class Done>
void merged_hits(storage_ptr self, caf::response_promise rp,
                 std::shared_ptr<const query_pattern> q, const std::string& pattern,
                 const std::optional<query_position>& after, uint64_t want, Done done) {
  shard_query sq;
  sq.pattern = pattern;
  if (after)
    sq.after = encode_position(*after);
  sq.want = want;
  // Shards in this process whose indexes narrow the query down are read
  // here, on the router's thread, saving two message hops per shard; a query
  // that would scan goes to the shards, which scan in parallel on their own
  // threads while the router stays free.
  if (auto cores = local_cores(self)) {
    std::vector<std::vector<query_hit>> lists;
    std::vector<shard_hits> answers; // figures only, for explain
    bool cut = false;
    auto err = checked([&] {
      for (size_t i = 0; i < cores->size(); ++i) {
        uint64_t micros = 0;
        auto r = shard_reads::run_on(*(*cores)[i], *q, after, want, false, micros);
        if (!r)
          return;
        cut = cut || r->more;
        shard_hits figures;
        figures.plan = std::move(r->stats.plan);
        figures.estimated = r->stats.estimated;
        figures.examined = r->stats.examined;
        figures.micros = micros;
        figures.hits.resize(r->hits.size());
        for (auto& h : r->hits)
          h.shard = static_cast<uint32_t>(i);
        lists.push_back(std::move(r->hits));
        answers.push_back(std::move(figures));
      }
    });
    if (err) {
      rp.deliver(std::move(err));
      return;
    }
    if (lists.size() == cores->size()) {
      bool more = false;
      auto hits = merge_results(*q, lists, cut, want, more);
      done(hits, more, answers);
      return;
    }
  }
  gather<shard_hits>(
    self, rp,
    [rp, q, want, done](std::vector<shard_hits>& answers) mutable {
      std::vector<query_hit> hits;
      bool more = false;
      if (auto err = checked([&] {
            bool cut = false;
            auto lists = hit_lists(answers, cut);
            hits = merge_results(*q, lists, cut, want, more);
          })) {
        rp.deliver(std::move(err));
        return;
      }
      done(hits, more, answers);
    },
    atom::query_v, std::move(sq));
}

query_result to_result(query_hit& h) {
  return {std::move(h.key), std::move(h.value), h.score, h.shard};
}

} // namespace

caf::result<query_page> query(storage_ptr self, const query_request& req) {
  auto q = std::make_shared<query_pattern>();
  query_cursor cursor;
  if (auto err = checked([&] {
        *q = parse_query(req.pattern);
        cursor = decode_cursor(req.continuation);
      }))
    return err;
  auto page = plan_page(*q, cursor, req.limit);
  if (page.exhausted)
    return query_page{};
  auto rp = self->make_response_promise();
  merged_hits(self, rp, q, req.pattern, cursor.position, page.skip + page.take,
              [rp, q, cursor, page](std::vector<query_hit>& hits, bool more,
                                    std::vector<shard_hits>&) mutable {
                rp.deliver(make_page(*q, cursor, page, hits, more));
              });
  return rp;
}

caf::result<uint64_t> count(storage_ptr self, const std::string& pattern) {
  if (auto err = checked([&] { parse_query(pattern); }))
    return err;
  auto rp = self->make_response_promise();
  gather<uint64_t>(
    self, rp,
    [rp](std::vector<uint64_t>& counts) mutable {
      uint64_t total = 0;
      for (auto c : counts)
        total += c;
      rp.deliver(total);
    },
    atom::count_v, pattern);
  return rp;
}

caf::result<std::vector<query_result>> find(storage_ptr self, const std::string& pattern,
                                            bool one) {
  auto q = std::make_shared<query_pattern>();
  if (auto err = checked([&] { *q = parse_query(pattern); }))
    return err;
  // find_many answers everything or refuses: one more than allowed tells.
  uint64_t cap = limits::max_find_results;
  uint64_t take = one ? 1 : q->limit == 0 ? cap + 1 : std::min<uint64_t>(q->limit, cap + 1);
  auto rp = self->make_response_promise();
  merged_hits(self, rp, q, pattern, std::nullopt, q->offset + take,
              [rp, q, take, cap](std::vector<query_hit>& hits, bool,
                                    std::vector<shard_hits>&) mutable {
                std::vector<query_result> out;
                for (size_t i = std::min<size_t>(q->offset, hits.size()); i < hits.size(); ++i)
                  out.push_back(to_result(hits[i]));
                if (take > cap && out.size() > cap) {
                  rp.deliver(make_error(errc::quota_exceeded,
                                        "find_many: more than " + std::to_string(cap)
                                          + " documents match; page through them with query"));
                  return;
                }
                rp.deliver(std::move(out));
              });
  return rp;
}

caf::result<bytes> aggregate(storage_ptr self, const std::string& pipeline) {
  auto p = std::make_shared<aggregate_pipeline>();
  if (auto err = checked([&] { *p = parse_pipeline(pipeline); }))
    return err;
  auto rp = self->make_response_promise();
  gather<bytes>(
    self, rp,
    [rp, p](std::vector<bytes>& parts) mutable {
      bytes out;
      if (auto err = checked([&] {
            std::vector<document> partials;
            for (auto& part : parts)
              partials.push_back(decode_document(part));
            out = encode_document(aggregate_finish(*p, std::move(partials)));
          })) {
        rp.deliver(std::move(err));
        return;
      }
      rp.deliver(std::move(out));
    },
    atom::partial_v, pipeline);
  return rp;
}

caf::result<query_plan> explain(storage_ptr self, const std::string& pattern) {
  auto q = std::make_shared<query_pattern>();
  if (auto err = checked([&] { *q = parse_query(pattern); }))
    return err;
  auto start = clock::now();
  auto take = q->limit == 0 ? uint64_t{limits::default_query_page} : q->limit;
  auto rp = self->make_response_promise();
  merged_hits(self, rp, q, pattern, std::nullopt, q->offset + take,
              [rp, q, start](std::vector<query_hit>& hits, bool,
                             std::vector<shard_hits>& answers) mutable {
                query_plan plan;
                for (uint32_t i = 0; i < answers.size(); ++i) {
                  auto& a = answers[i];
                  plan.shards.push_back({i, a.plan, a.estimated, a.examined,
                                         static_cast<uint64_t>(a.hits.size()), a.micros});
                }
                plan.returned = hits.size() > q->offset ? hits.size() - q->offset : 0;
                plan.micros = micros_since(start);
                rp.deliver(std::move(plan));
              });
  return rp;
}

caf::result<void> create_index(storage_ptr self, const index_spec& spec) {
  if (auto err = checked([&] { check_index_spec(spec); }))
    return err;
  if (spec.unique) // writes claim its values before the shards create it
    return self->delegate(self->state.unique, atom::create_index_v, spec);
  auto rp = self->make_response_promise();
  gather<caf::unit_t>(
    self, rp, [rp](std::vector<caf::unit_t>&) mutable { rp.deliver(caf::unit); },
    atom::create_index_v, spec);
  return rp;
}

caf::result<void> drop_index(storage_ptr self, const std::string& name) {
  auto rp = self->make_response_promise();
  auto& shards = self->state.shards;
  struct tally {
    size_t left = 0;
    size_t dropped = 0;
    caf::error failure;
  };
  auto t = std::make_shared<tally>();
  t->left = shards.size();
  auto arrived = [self, rp, t, name]() mutable {
    if (--t->left > 0)
      return;
    if (t->failure) {
      rp.deliver(std::move(t->failure));
      return;
    }
    // Writes stop claiming its values once no shard keeps it up to date.
    self->send(self->state.unique, atom::drop_index_v, name);
    if (t->dropped == 0)
      rp.deliver(make_error(errc::key_not_found, "no index named " + name));
    else
      rp.deliver(caf::unit);
  };
  for (size_t i = 0; i < shards.size(); ++i) {
    auto& s = shards[i];
    self->request(s, timeout_to(self, s, self->state.timeout), atom::drop_index_v, name)
      .then(
        [t, arrived]() mutable {
          ++t->dropped;
          arrived();
        },
        [t, arrived, i](caf::error& err) mutable {
          // A shard without it (dropped by an earlier attempt) is fine.
          if (code_of(err) != errc::key_not_found && !t->failure)
            t->failure = join::annotate(std::move(err), i);
          arrived();
        });
  }
  return rp;
}

caf::result<std::vector<index_info>> indexes(storage_ptr self) {
  auto rp = self->make_response_promise();
  gather<std::vector<index_info>>(
    self, rp,
    [self, rp](std::vector<std::vector<index_info>>& per_shard) mutable {
      std::vector<index_info> out;
      for (auto& list : per_shard)
        for (auto& x : list) {
          auto i = std::find_if(out.begin(), out.end(), [&](const index_info& y) {
            return y.spec.name == x.spec.name;
          });
          if (i == out.end()) {
            out.push_back(std::move(x));
            continue;
          }
          // A failed shard fails the index; a building one keeps it building.
          if (i->state != "failed" && x.state != "ready") {
            i->state = x.state;
            i->error = x.error;
          }
          i->built += x.built;
          i->total += x.total;
          i->entries += x.entries;
          i->size += x.size;
          i->hits += x.hits;
          i->misses += x.misses;
        }
      std::sort(out.begin(), out.end(), [](const index_info& x, const index_info& y) {
        return x.spec.name < y.spec.name;
      });
      if (std::none_of(out.begin(), out.end(), [](auto& x) { return x.spec.unique; })) {
        rp.deliver(std::move(out));
        return;
      }
      // A unique index is ready once every value is claimed across the store.
      self->request(self->state.unique, caf::infinite, atom::indexes_v)
        .then(
          [rp, out](std::vector<index_info>& store_wide) mutable {
            for (auto& u : store_wide)
              for (auto& x : out)
                if (x.spec.name == u.spec.name && x.state != "failed"
                    && u.state != "ready") {
                  x.state = u.state;
                  x.error = u.error;
                }
            rp.deliver(std::move(out));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
    },
    atom::indexes_v);
  return rp;
}

} // namespace strata::storage_queries

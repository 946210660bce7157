#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/expected.hpp>
#include <caf/duration.hpp>
#include <caf/node_id.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include "strata/actors.hpp"
#include "strata/codec.hpp"
#include "strata/error.hpp"
#include "strata/pattern.hpp"
#include "strata/store.hpp"
#include "strata/timer.hpp"

/// The typed client: a facade over a `storage_actor` for values of a type `T`
/// that cereal can serialize. Values are stored as self-describing documents
/// (strata/codec.hpp) behind a small header; bytes that do not decode as `T`
/// give SERIALIZATION_FAILED.
///
/// Two flavours share the encoding, and each opens typed transactions
/// (`txn<T>`, `blocking_txn<T>`) on a `observable_storage_actor`:
/// - `store<T>` for event-based actors: every call returns a `pending<R>`
///   whose `.then(on_value, on_error)` sends the request from the actor.
/// - `blocking_store<T>` for `main()` and tests: every call waits for the
///   answer and returns a `caf::expected`; scans are lazy ranges for range-for.
namespace strata {

/// The serialization of a typed client, shared by its copies and the
/// transactions it opens.
template <class T>
using codec_ptr = std::shared_ptr<const value_codec<T>>;

/// Typed value → stored bytes; an unencodable value is SERIALIZATION_FAILED.
template <class T>
caf::expected<bytes> encode(const T& value,
                            const value_codec<T>& codec = *value_codec<T>::standard()) {
  try {
    return codec.encode(value);
  } catch (const codec_error& e) {
    return make_error(errc::serialization_failed, e.what());
  }
}

/// Stored bytes → typed value; bytes that are not a `T` are
/// SERIALIZATION_FAILED.
template <class T>
caf::expected<T> decode(const bytes& data,
                        const value_codec<T>& codec = *value_codec<T>::standard()) {
  try {
    return codec.decode(data);
  } catch (const codec_error& e) {
    return make_error(errc::serialization_failed, e.what());
  }
}

/// One operation of a typed batch.
template <class T>
struct typed_operation {
  op_kind kind = op_kind::set;
  std::string key;
  std::optional<T> value;

  static typed_operation set(std::string k, T v) {
    return {op_kind::set, std::move(k), std::move(v)};
  }
  static typed_operation del(std::string k) {
    return {op_kind::del, std::move(k), std::nullopt};
  }
  static typed_operation clear() {
    return {op_kind::clear, {}, std::nullopt};
  }
};

/// Where an ordered scan starts and how it pages.
struct scan_options {
  /// Only keys with this prefix.
  std::string prefix;
  /// First key, inclusive.
  std::string start;
  /// Keys fetched per request (0: the store's default).
  uint32_t page_size = 0;
};

namespace detail {

template <class T>
caf::expected<std::vector<operation>>
encode_ops(const std::vector<typed_operation<T>>& ops, const value_codec<T>& codec) {
  std::vector<operation> result;
  result.reserve(ops.size());
  for (auto& op : ops) {
    operation x{op.kind, op.key, {}};
    if (op.kind == op_kind::set) {
      if (!op.value)
        return make_error(errc::invalid_value, "set operation for key '"
                                                 + op.key + "' has no value");
      auto b = encode(*op.value, codec);
      if (!b)
        return std::move(b.error());
      x.value = std::move(*b);
    }
    result.push_back(std::move(x));
  }
  return result;
}

template <class T>
caf::expected<std::vector<entry>> encode_entries(const std::map<std::string, T>& xs,
                                                 const value_codec<T>& codec) {
  std::vector<entry> result;
  result.reserve(xs.size());
  for (auto& [k, v] : xs) {
    auto b = encode(v, codec);
    if (!b)
      return std::move(b.error());
    result.push_back(entry{k, std::move(*b)});
  }
  return result;
}

template <class T>
caf::expected<std::optional<T>> decode_maybe(maybe_bytes& x, const value_codec<T>& codec) {
  if (!x)
    return std::optional<T>{};
  auto v = decode<T>(*x, codec);
  if (!v)
    return std::move(v.error());
  return std::optional<T>{std::move(*v)};
}

template <class T>
caf::expected<std::map<std::string, T>>
decode_many(const std::vector<std::string>& keys, std::vector<maybe_bytes>& xs,
            const value_codec<T>& codec) {
  std::map<std::string, T> result;
  for (size_t i = 0; i < keys.size() && i < xs.size(); ++i) {
    if (!xs[i])
      continue;
    auto v = decode<T>(*xs[i], codec);
    if (!v)
      return make_error(errc::serialization_failed,
                        "value of key '" + keys[i] + "': " + render(v.error()));
    result.emplace(keys[i], std::move(*v));
  }
  return result;
}

/// Replaces `codec` by one of `settings` and `custom`, unless they are
/// invalid (SERIALIZATION_FAILED).
template <class T>
caf::error make_codec(codec_ptr<T>& codec, serialization settings, serializer<T> custom) {
  try {
    codec = std::make_shared<const value_codec<T>>(settings, std::move(custom));
    return {};
  } catch (const codec_error& e) {
    return make_error(errc::serialization_failed, e.what());
  }
}

/// The timeout of a request to `store` from an actor on node `here`. A store
/// in the same process needs none: if it dies, its pending requests fail at
/// once. (CAF 0.17 keeps each request's timer until it expires, which costs
/// about a third of a local read's throughput.) Remote stores get `t`.
template <class Handle>
caf::duration timeout_for(const Handle& store, const caf::node_id& here,
                          std::chrono::milliseconds t) {
  if (store && store.node() == here)
    return caf::duration{caf::infinite};
  return caf::duration{t};
}

/// The stand-in (`watch_store`) that a typed client made for a store in
/// another process: stopped with the last copy of the client, since CAF 0.17
/// would keep it in its registry for good.
struct proxy_owner {
  template <class Handle>
  proxy_owner(caf::actor_system& sys, const Handle& store, std::chrono::milliseconds t) {
    auto watched = watch_store(sys, store, t);
    if (watched != store)
      proxy = caf::actor_cast<caf::actor>(watched);
  }
  proxy_owner(const proxy_owner&) = delete;
  proxy_owner& operator=(const proxy_owner&) = delete;
  ~proxy_owner() {
    if (proxy)
      caf::anon_send_exit(proxy, caf::exit_reason::user_shutdown);
  }

  /// The handle to use: the stand-in, or the store itself.
  template <class Handle>
  Handle use(Handle store) const {
    return proxy ? caf::actor_cast<Handle>(proxy) : store;
  }

  caf::actor proxy;
};

/// A commit whose answer did not come (`lost`), once the transaction said
/// how it ended: nothing if it committed, TRANSACTION_ABORTED if it did not,
/// CONNECTION_LOST if nobody can tell.
inline caf::error commit_verdict(const caf::expected<txn_info>& info,
                                 const caf::error& lost) {
  if (info && info->state == txn_state::committed)
    return caf::none;
  if (info && info->state != txn_state::unknown)
    return make_error(errc::transaction_aborted,
                      "transaction " + info->id + " did not commit: " + render(lost));
  return make_error(errc::connection_lost,
                    "the commit may or may not have been applied: " + render(lost));
}

/// How often a client whose commit answer did not come asks the transaction
/// how it ended, while those questions time out as well (a slow node).
constexpr int status_attempts = 3;

/// Whether `transaction(executor)` tries again after `err`. Never after
/// CONNECTION_LOST: the commit may have been applied.
inline bool retryable(const caf::error& err) {
  auto c = code_of(err);
  return c == errc::version_conflict || c == errc::deadlock_detected
         || c == errc::transaction_aborted;
}

/// Backoff before retry `attempt` (0-based): 1, 2, 4 … 64 ms, with jitter so
/// that conflicting clients do not retry in lockstep.
inline uint32_t backoff_ms(uint32_t attempt, uint64_t salt) {
  uint32_t base = 1u << std::min<uint32_t>(attempt, 6);
  auto jitter = static_cast<uint32_t>((salt * 0x9e3779b97f4a7c15ull) >> 60) % (base + 1);
  return base + jitter;
}

inline caf::error no_transactions() {
  return make_error(errc::invalid_value,
                    "this client was made from a storage_actor: transactions and "
                    "the node registry need an observable_storage_actor");
}

inline caf::error no_queries() {
  return make_error(errc::invalid_value,
                    "this client was made from a storage_actor: queries and indexes "
                    "need an observable_storage_actor");
}

inline scan_request make_scan(const scan_options& opts, bool values) {
  scan_request req;
  req.prefix = opts.prefix;
  req.start = opts.start;
  req.limit = opts.page_size;
  req.values = values;
  return req;
}

} // namespace detail

// -- event-based -------------------------------------------------------------------

/// The answer to a request that has not been sent yet: `.then` sends it.
template <class R>
class pending {
public:
  using value_handler = std::function<void(R)>;
  using error_handler = std::function<void(caf::error)>;
  using starter = std::function<void(value_handler, error_handler)>;

  explicit pending(starter start) : start_(std::move(start)) {
    // nop
  }

  /// Sends the request; exactly one of the handlers runs later, in the
  /// requesting actor. Both are required: CAF terminates an actor whose
  /// request fails without an error handler.
  void then(value_handler on_value, error_handler on_error) {
    start_(std::move(on_value), std::move(on_error));
  }

private:
  starter start_;
};

namespace detail {

/// The typed requests that a store and a transaction answer alike, for
/// event-based actors: every call returns a `pending<R>`.
template <class T, class Handle>
class async_ops {
public:
  const Handle& handle() const {
    return handle_;
  }

  /// The value of `key`; an empty optional if it does not exist (in a
  /// transaction: as the transaction sees it).
  template <class Self>
  pending<std::optional<T>> get(Self* self, std::string key) const {
    return make<std::optional<T>>([=, h = handle_, t = timeout_, c = codec_](auto ok,
                                                                             auto fail) {
      self->request(h, timeout_for(h, self->node(), t), atom::get_v, key)
        .then(
          [ok, fail, c](maybe_bytes& x) {
            auto v = decode_maybe<T>(x, *c);
            if (v)
              ok(std::move(*v));
            else
              fail(std::move(v.error()));
          },
          [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  /// Stores `value` under `key` (in a transaction: buffers the write).
  template <class Self>
  pending<caf::unit_t> set(Self* self, std::string key, const T& value) const {
    auto b = encode(value, *codec_);
    return make<caf::unit_t>([=, h = handle_, t = timeout_](auto ok, auto fail) {
      if (!b)
        return fail(b.error());
      self->request(h, timeout_for(h, self->node(), t), atom::set_v, key, *b)
        .then([ok] { ok(caf::unit); }, [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  /// Deletes `key`; true if it existed.
  template <class Self>
  pending<bool> del(Self* self, std::string key) const {
    return forward<bool>(self, atom::del_v, std::move(key));
  }

  /// Whether `key` exists.
  template <class Self>
  pending<bool> has(Self* self, std::string key) const {
    return forward<bool>(self, atom::has_v, std::move(key));
  }

  /// Writes values as `settings` say from now on (and in the transactions
  /// opened after), with `custom` for formats custom and protobuf. Reading
  /// takes any format. SERIALIZATION_FAILED on invalid settings.
  caf::error serialize_with(serialization settings, serializer<T> custom = {}) {
    return make_codec(codec_, settings, std::move(custom));
  }

protected:
  async_ops(Handle handle, std::chrono::milliseconds timeout,
            codec_ptr<T> codec = value_codec<T>::standard())
    : handle_(std::move(handle)), timeout_(timeout), codec_(std::move(codec)) {
    // nop
  }

  template <class R, class F>
  static pending<R> make(F f) {
    return pending<R>{typename pending<R>::starter{std::move(f)}};
  }

  template <class R, class Self, class... Ts>
  pending<R> forward(Self* self, Ts... xs) const {
    return make<R>([=, h = handle_, t = timeout_](auto ok, auto fail) {
      self->request(h, timeout_for(h, self->node(), t), xs...)
        .then([ok](R& r) { ok(std::move(r)); },
              [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  template <class Self, class... Ts>
  pending<caf::unit_t> forward_void(Self* self, Ts... xs) const {
    return make<caf::unit_t>([=, h = handle_, t = timeout_](auto ok, auto fail) {
      self->request(h, timeout_for(h, self->node(), t), xs...)
        .then([ok] { ok(caf::unit); }, [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  Handle handle_;
  std::chrono::milliseconds timeout_;
  codec_ptr<T> codec_;
};

} // namespace detail

/// A typed view of an open transaction for event-based actors. Cheap to
/// copy; `get`, `set`, `del` and `has` as for `store<T>`, seeing the
/// transaction's own writes.
/// One result of a query: the key, its value (or, for a pattern that
/// selects fields, a `T` made of them) and the relevance score.
template <class T>
struct query_match {
  std::string key;
  T value;
  double score = 0;
};

namespace detail {

template <class T>
caf::expected<query_match<T>> decode_match(query_result& r, const value_codec<T>& codec) {
  auto v = decode<T>(r.value, codec);
  if (!v)
    return make_error(code_of(v.error()), "value of key '" + r.key + "': " + render(v.error()));
  return query_match<T>{std::move(r.key), std::move(*v), r.score};
}

/// Every result decoded, or the first one that does not decode as a `T`.
template <class T>
caf::expected<std::vector<query_match<T>>> decode_matches(std::vector<query_result>& rs,
                                                         const value_codec<T>& codec) {
  std::vector<query_match<T>> out;
  out.reserve(rs.size());
  for (auto& r : rs) {
    auto m = decode_match<T>(r, codec);
    if (!m)
      return std::move(m.error());
    out.push_back(std::move(*m));
  }
  return out;
}

} // namespace detail

template <class T>
class txn : public detail::async_ops<T, transaction_actor> {
public:
  txn(transaction_actor handle, std::chrono::milliseconds timeout,
      codec_ptr<T> codec = value_codec<T>::standard())
    : detail::async_ops<T, transaction_actor>(std::move(handle), timeout, std::move(codec)) {
    // nop
  }

  /// Commits. A commit whose answer does not come (a timeout, a lost
  /// connection) asks the transaction how it ended: the error is
  /// TRANSACTION_ABORTED only if it certainly did not commit, and
  /// CONNECTION_LOST if that cannot be learned (it may have).
  template <class Self>
  pending<caf::unit_t> commit(Self* self) const {
    return this->template make<caf::unit_t>([=, h = this->handle_,
                                             t = this->timeout_](auto ok, auto fail) {
      auto timeout = detail::timeout_for(h, self->node(), t);
      self->request(h, timeout, atom::commit_v)
        .then([ok] { ok(caf::unit); },
              [=](caf::error& err) {
                if (!outcome_unknown(err))
                  return fail(std::move(err));
                ask_status(self, h, timeout, err, detail::status_attempts, ok, fail);
              });
    });
  }

private:
  /// Asks how the transaction ended, again while the question times out.
  template <class Self, class Ok, class Fail>
  static void ask_status(Self* self, transaction_actor h, caf::duration timeout,
                         caf::error lost, int left, Ok ok, Fail fail) {
    self->request(h, timeout, atom::status_v)
      .then(
        [=](txn_info& info) {
          auto verdict = detail::commit_verdict(info, lost);
          if (verdict)
            fail(std::move(verdict));
          else
            ok(caf::unit);
        },
        [=](caf::error& e) {
          if (e == caf::sec::request_timeout && left > 1)
            ask_status(self, h, timeout, lost, left - 1, ok, fail);
          else
            fail(detail::commit_verdict(e, lost));
        });
  }

public:
  template <class Self>
  pending<caf::unit_t> rollback(Self* self) const {
    return this->forward_void(self, atom::rollback_v);
  }

  template <class Self>
  pending<caf::unit_t> savepoint(Self* self, std::string name) const {
    return this->forward_void(self, atom::savepoint_v, std::move(name));
  }

  template <class Self>
  pending<caf::unit_t> rollback_to(Self* self, std::string name) const {
    return this->forward_void(self, atom::rollback_to_v, std::move(name));
  }

  template <class Self>
  pending<txn_info> info(Self* self) const {
    return this->template forward<txn_info>(self, atom::info_v);
  }
};

/// A typed view of a store for event-based actors. Cheap to copy. `timeout`
/// applies to stores in other processes; requests to a store in this process
/// wait for the answer (a dying store fails them at once).
template <class T>
class store : public detail::async_ops<T, storage_actor> {
  using super = detail::async_ops<T, storage_actor>;
  using super::codec_;
  using super::handle_;
  using super::timeout_;

public:
  explicit store(storage_actor handle,
                 std::chrono::milliseconds timeout = std::chrono::seconds{30})
    : super(std::move(handle), timeout) {
    // nop
  }

  /// A store with transactions.
  explicit store(observable_storage_actor handle,
                 std::chrono::milliseconds timeout = std::chrono::seconds{30})
    : super(handle, timeout), txn_handle_(std::move(handle)) {
    // nop
  }

  /// A store that may be in another process: reached through `watch_store`,
  /// so that requests fail at once (CONNECTION_LOST) when its connection
  /// goes. (A handle from `connect_store` has that already.)
  store(caf::actor_system& sys, observable_storage_actor handle,
        std::chrono::milliseconds timeout = std::chrono::seconds{30})
    : store(std::make_shared<detail::proxy_owner>(sys, handle, timeout), handle, timeout) {
    // nop
  }

  /// Opens a transaction (the spec's beginTransaction).
  template <class Self>
  pending<txn<T>> begin(Self* self, txn_options opts = {}) const {
    return super::template make<txn<T>>([=, h = txn_handle_, t = timeout_,
                                         c = codec_](auto ok, auto fail) {
      if (!h)
        return fail(detail::no_transactions());
      self->request(h, detail::timeout_for(h, self->node(), t), atom::begin_v, opts)
        .then([ok, t, c](transaction_actor& x) { ok(txn<T>{std::move(x), t, c}); },
              [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  /// The node registry (the spec's getNodes): this process and every shard
  /// node the store uses, with status and last heartbeat.
  template <class Self>
  pending<std::vector<node_info>> nodes(Self* self) const {
    return super::template make<std::vector<node_info>>(
      [=, h = txn_handle_, t = timeout_](auto ok, auto fail) {
        if (!h)
          return fail(detail::no_transactions());
        self->request(h, detail::timeout_for(h, self->node(), t), atom::nodes_v)
          .then([ok](std::vector<node_info>& x) { ok(std::move(x)); },
                [fail](caf::error& e) { fail(std::move(e)); });
      });
  }

  /// The spec's transaction(executor, options): opens a transaction, runs
  /// `executor(tx, done)`, and commits once the executor calls `done` with
  /// a value. If the executor's result or the commit is VERSION_CONFLICT,
  /// DEADLOCK_DETECTED or TRANSACTION_ABORTED, it starts over with a new
  /// transaction, up to `opts.retries` times, after a growing pause. Any
  /// other error from the executor rolls back and is the result. A commit
  /// that may or may not have been applied (CONNECTION_LOST) is never run
  /// again: it is the result, and the executor ran exactly once for it.
  template <class R, class Self, class F>
  pending<R> transaction(Self* self, F executor, txn_options opts = {}) const {
    auto me = *this;
    return super::template make<R>([=](auto ok, auto fail) {
      using error_handler = std::function<void(caf::error)>;
      // The attempt function refers to itself only weakly; the requests in
      // flight hold it, so it goes away with the last of them.
      using attempt_fn = std::function<void(uint32_t)>;
      auto attempt = std::make_shared<attempt_fn>();
      std::weak_ptr<attempt_fn> weak = attempt;
      *attempt = [=](uint32_t n) {
        auto again = weak.lock();
        auto retry_or_fail = [=](caf::error err) {
          if (!detail::retryable(err) || n >= opts.retries)
            return fail(std::move(err));
          // A short-lived timer paces the retry without blocking the actor.
          auto timer = spawn_timer(self->system());
          self->request(timer, caf::infinite, atom::timeout_v,
                        detail::backoff_ms(n, self->id() + n))
            .then([=] { (*again)(n + 1); },
                  [=](caf::error& e) { fail(std::move(e)); });
        };
        me.begin(self, opts).then(
          [=](txn<T> tx) {
            std::function<void(caf::expected<R>)> done
              = [=](caf::expected<R> result) {
                  if (!result) {
                    auto err = std::move(result.error());
                    // Over a connection that failed, a rollback would only
                    // wait for the same failure.
                    if (outcome_unknown(err))
                      return fail(std::move(err));
                    tx.rollback(self).then([=](caf::unit_t) { retry_or_fail(err); },
                                           [=](caf::error) { retry_or_fail(err); });
                    return;
                  }
                  auto value = std::move(*result);
                  tx.commit(self).then([=](caf::unit_t) { ok(value); },
                                       [=](caf::error e) { retry_or_fail(std::move(e)); });
                };
            executor(tx, done);
          },
          error_handler{retry_or_fail});
      };
      (*attempt)(0);
    });
  }

  /// Number of keys.
  template <class Self>
  pending<uint64_t> size(Self* self) const {
    return this->template forward<uint64_t>(self, atom::size_v);
  }

  /// Values of the keys that exist.
  template <class Self>
  pending<std::map<std::string, T>> get_many(Self* self,
                                            std::vector<std::string> keys) const {
    return super::template make<std::map<std::string, T>>(
      [=, h = handle_, t = timeout_, c = codec_](auto ok, auto fail) {
        self->request(h, detail::timeout_for(h, self->node(), t), atom::get_many_v, keys)
          .then(
            [ok, fail, keys, c](std::vector<maybe_bytes>& xs) {
              auto m = detail::decode_many<T>(keys, xs, *c);
              if (m)
                ok(std::move(*m));
              else
                fail(std::move(m.error()));
            },
            [fail](caf::error& e) { fail(std::move(e)); });
      });
  }

  /// Stores every entry of `xs`, atomically (also across shards).
  template <class Self>
  pending<caf::unit_t> set_many(Self* self, const std::map<std::string, T>& xs) const {
    auto es = detail::encode_entries(xs, *codec_);
    return super::template make<caf::unit_t>([=, h = handle_, t = timeout_](auto ok, auto fail) {
      if (!es)
        return fail(es.error());
      self->request(h, detail::timeout_for(h, self->node(), t), atom::set_many_v, *es)
        .then([ok] { ok(caf::unit); }, [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  /// Applies `ops`; see batch_result.
  template <class Self>
  pending<batch_result> batch(Self* self,
                              const std::vector<typed_operation<T>>& ops) const {
    auto encoded = detail::encode_ops(ops, *codec_);
    return super::template make<batch_result>([=, h = handle_, t = timeout_](auto ok, auto fail) {
      if (!encoded)
        return fail(encoded.error());
      self->request(h, detail::timeout_for(h, self->node(), t), atom::batch_v, *encoded)
        .then([ok](batch_result& r) { ok(std::move(r)); },
              [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  /// One page of typed entries starting after `after` (empty: from the start
  /// of `opts`); `more` tells whether to ask again with the last key.
  template <class Self>
  pending<std::pair<std::vector<std::pair<std::string, T>>, bool>>
  page(Self* self, const scan_options& opts, std::string after = {}) const {
    using page_type = std::pair<std::vector<std::pair<std::string, T>>, bool>;
    auto req = detail::make_scan(opts, true);
    req.after = std::move(after);
    return super::template make<page_type>([=, h = handle_, t = timeout_,
                                            c = codec_](auto ok, auto fail) {
      self->request(h, detail::timeout_for(h, self->node(), t), atom::scan_v, req)
        .then(
          [ok, fail, c](scan_page& p) {
            page_type result;
            result.second = p.more;
            for (auto& e : p.entries) {
              auto v = decode<T>(e.value, *c);
              if (!v)
                return fail(v.error());
              result.first.emplace_back(std::move(e.key), std::move(*v));
            }
            ok(std::move(result));
          },
          [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  // -- queries (level 2) -------------------------------------------------------------

  /// One page of `p`'s results after `continuation` (empty: the first page);
  /// the second member is the next page's continuation, empty after the last.
  template <class Self>
  pending<std::pair<std::vector<query_match<T>>, bytes>>
  query(Self* self, const pattern& p, bytes continuation = {}, uint32_t page = 0) const {
    query_request req;
    req.pattern = p.json();
    req.continuation = std::move(continuation);
    req.limit = page;
    return indexed<std::pair<std::vector<query_match<T>>, bytes>, query_page>(
      self,
      [c = codec_](query_page& pg)
        -> caf::expected<std::pair<std::vector<query_match<T>>, bytes>> {
        auto out = detail::decode_matches<T>(pg.results, *c);
        if (!out)
          return std::move(out.error());
        return std::make_pair(std::move(*out), pg.more ? std::move(pg.continuation) : bytes{});
      },
      atom::query_v, std::move(req));
  }

  /// How many documents match `p`.
  template <class Self>
  pending<uint64_t> count(Self* self, const pattern& p) const {
    return indexed<uint64_t, uint64_t>(
      self, [](uint64_t n) -> caf::expected<uint64_t> { return n; }, atom::count_v, p.json());
  }

  /// Every result of `p` (QUOTA_EXCEEDED past `limits::max_find_results`).
  template <class Self>
  pending<std::vector<query_match<T>>> find_many(Self* self, const pattern& p) const {
    return indexed<std::vector<query_match<T>>, std::vector<query_result>>(
      self,
      [c = codec_](std::vector<query_result>& rs) { return detail::decode_matches<T>(rs, *c); },
      atom::find_many_v, p.json());
  }

  /// Runs an aggregation pipeline: an array of result documents.
  template <class Self>
  pending<document> aggregate(Self* self, std::string pipeline) const {
    return indexed<document, bytes>(
      self,
      [](bytes& b) -> caf::expected<document> {
        try {
          return decode_document(b);
        } catch (const codec_error& e) {
          return make_error(errc::serialization_failed, e.what());
        }
      },
      atom::aggregate_v, std::move(pipeline));
  }

private:
  /// Sends `xs...` to the store's indexed interface and converts the answer.
  template <class R, class Answer, class Self, class Convert, class... Ts>
  pending<R> indexed(Self* self, Convert convert, Ts... xs) const {
    return super::template make<R>([=, h = txn_handle_, t = timeout_](auto ok, auto fail) {
      if (!h)
        return fail(detail::no_queries());
      self->request(h, detail::timeout_for(h, self->node(), t), xs...)
        .then(
          [ok, fail, convert](Answer& answer) {
            auto r = convert(answer);
            if (r)
              ok(std::move(*r));
            else
              fail(std::move(r.error()));
          },
          [fail](caf::error& e) { fail(std::move(e)); });
    });
  }

  store(std::shared_ptr<detail::proxy_owner> owner, const observable_storage_actor& h,
        std::chrono::milliseconds timeout)
    : super(owner->use(h), timeout), owner_(owner), txn_handle_(owner->use(h)) {
    // nop
  }

  /// The stand-in made for a remote store, kept by the copies of this store:
  /// the last one stops it.
  std::shared_ptr<detail::proxy_owner> owner_;
  observable_storage_actor txn_handle_;
};

// -- blocking ----------------------------------------------------------------------

namespace detail {

/// The input iterator of a lazy range: `Range` fetches pages as needed in
/// `load()` (false at the end), steps with `advance()` and holds the current
/// element in `current_`.
template <class Range, class Value>
class lazy_iterator {
public:
  using iterator_category = std::input_iterator_tag;
  using value_type = Value;
  using difference_type = std::ptrdiff_t;
  using pointer = const value_type*;
  using reference = const value_type&;

  lazy_iterator() = default;
  explicit lazy_iterator(Range* range) : range_(range) {
    if (!range_->load())
      range_ = nullptr;
  }
  reference operator*() const {
    return range_->current_;
  }
  pointer operator->() const {
    return &range_->current_;
  }
  lazy_iterator& operator++() {
    if (!range_->advance())
      range_ = nullptr;
    return *this;
  }
  bool operator==(const lazy_iterator& other) const {
    return range_ == other.range_;
  }
  bool operator!=(const lazy_iterator& other) const {
    return range_ != other.range_;
  }

private:
  Range* range_ = nullptr;
};

} // namespace detail

template <class T>
class blocking_store;

/// What a scan yields: keys, values or key/value pairs.
enum class scan_yield { keys, values, entries };

/// A lazy, ordered scan: fetches one page when the previous one is used up.
/// Works with range-for. A failed request or a value that does not decode
/// throws `storage_error` with the strata code (SERIALIZATION_FAILED, ...).
template <class T, scan_yield Yield>
class scan_range {
public:
  using value_type = std::conditional_t<
    Yield == scan_yield::keys, std::string,
    std::conditional_t<Yield == scan_yield::values, T, std::pair<std::string, T>>>;

  using iterator = detail::lazy_iterator<scan_range, value_type>;
  friend iterator;

  scan_range(caf::scoped_actor& self, storage_actor handle,
             std::chrono::milliseconds timeout, scan_request req,
             codec_ptr<T> codec = value_codec<T>::standard())
    : self_(&self), handle_(std::move(handle)), timeout_(timeout),
      req_(std::move(req)), codec_(std::move(codec)) {
    // nop
  }

  /// Starts the scan (fetches the first page). Call once.
  iterator begin() {
    return iterator{this};
  }

  iterator end() {
    return iterator{};
  }

private:
  // Makes `current_` the entry at `pos_`, fetching pages as needed.
  bool load() {
    while (pos_ >= page_.entries.size()) {
      if (fetched_ && !page_.more)
        return false;
      fetch();
    }
    auto& e = page_.entries[pos_];
    if constexpr (Yield == scan_yield::keys) {
      current_ = e.key;
    } else {
      auto v = decode<T>(e.value, *codec_);
      if (!v)
        throw storage_error{code_of(v.error()),
                            "value of key '" + e.key + "': " + render(v.error())};
      if constexpr (Yield == scan_yield::values)
        current_ = std::move(*v);
      else
        current_ = value_type{e.key, std::move(*v)};
    }
    return true;
  }

  bool advance() {
    ++pos_;
    return load();
  }

  void fetch() {
    if (fetched_ && !page_.entries.empty())
      req_.after = page_.entries.back().key;
    caf::error failure;
    (*self_)
      ->request(handle_, detail::timeout_for(handle_, (*self_)->node(), timeout_),
                atom::scan_v, req_)
      .receive([&](scan_page& p) { page_ = std::move(p); },
               [&](caf::error& e) { failure = std::move(e); });
    if (failure)
      throw storage_error{code_of(failure), render(failure)};
    fetched_ = true;
    pos_ = 0;
  }

  caf::scoped_actor* self_;
  storage_actor handle_;
  std::chrono::milliseconds timeout_;
  scan_request req_;
  codec_ptr<T> codec_;
  scan_page page_;
  size_t pos_ = 0;
  bool fetched_ = false;
  value_type current_;
};

/// A lazy query: fetches one page of results when the previous one is used
/// up, in the pattern's order. Works with range-for; a failed request or a
/// value that does not decode throws `storage_error` with the strata code
/// (QUERY_ERROR, SERIALIZATION_FAILED, ...). Stopping early stops the work:
/// the shards only ever compute the next page. Inside a transaction (Handle
/// transaction_actor) every page reads the transaction's whole view.
template <class T, class Handle = observable_storage_actor>
class query_range {
public:
  using iterator = detail::lazy_iterator<query_range, query_match<T>>;
  friend iterator;

  query_range(caf::scoped_actor& self, Handle handle, std::chrono::milliseconds timeout,
              query_request req, codec_ptr<T> codec = value_codec<T>::standard())
    : self_(&self), handle_(std::move(handle)), timeout_(timeout), req_(std::move(req)),
      codec_(std::move(codec)) {
    // nop
  }

  /// Starts the query (fetches the first page). Call once.
  iterator begin() {
    return iterator{this};
  }

  iterator end() {
    return iterator{};
  }

private:
  bool advance() {
    ++pos_;
    return load();
  }

  bool load() {
    while (pos_ >= page_.results.size()) {
      if (fetched_ && !page_.more)
        return false;
      fetch();
    }
    auto m = detail::decode_match<T>(page_.results[pos_], *codec_);
    if (!m)
      throw storage_error{code_of(m.error()), render(m.error())};
    current_ = std::move(*m);
    return true;
  }

  void fetch() {
    if (!handle_)
      throw storage_error{errc::invalid_value, render(detail::no_queries())};
    if (fetched_)
      req_.continuation = std::move(page_.continuation);
    caf::error failure;
    (*self_)
      ->request(handle_, detail::timeout_for(handle_, (*self_)->node(), timeout_),
                atom::query_v, req_)
      .receive([&](query_page& p) { page_ = std::move(p); },
               [&](caf::error& e) { failure = std::move(e); });
    if (failure)
      throw storage_error{code_of(failure), render(failure)};
    fetched_ = true;
    pos_ = 0;
  }

  caf::scoped_actor* self_;
  Handle handle_;
  std::chrono::milliseconds timeout_;
  query_request req_;
  codec_ptr<T> codec_;
  query_page page_;
  size_t pos_ = 0;
  bool fetched_ = false;
  query_match<T> current_;
};

namespace detail {

/// The typed requests that a store and a transaction answer alike, waiting
/// for every answer.
template <class T, class Handle>
class blocking_ops {
public:
  const Handle& handle() const {
    return handle_;
  }

  /// The value of `key`; an empty optional if it does not exist (in a
  /// transaction: as the transaction sees it, its own writes first).
  caf::expected<std::optional<T>> get(const std::string& key) {
    auto x = ask<maybe_bytes>(atom::get_v, key);
    if (!x)
      return std::move(x.error());
    return decode_maybe<T>(*x, *codec_);
  }

  /// Stores `value` under `key` and returns once it is durable (in a
  /// transaction: buffers the write until commit).
  caf::error set(const std::string& key, const T& value) {
    auto b = encode(value, *codec_);
    if (!b)
      return std::move(b.error());
    return ask_void(atom::set_v, key, std::move(*b));
  }

  /// Deletes `key`; true if it existed.
  caf::expected<bool> del(const std::string& key) {
    return ask<bool>(atom::del_v, key);
  }

  /// Whether `key` exists.
  caf::expected<bool> has(const std::string& key) {
    return ask<bool>(atom::has_v, key);
  }

  /// Writes values as `settings` say from now on (and in the transactions
  /// opened after), with `custom` for formats custom and protobuf. Reading
  /// takes any format. SERIALIZATION_FAILED on invalid settings.
  caf::error serialize_with(serialization settings, serializer<T> custom = {}) {
    return make_codec(codec_, settings, std::move(custom));
  }

protected:
  blocking_ops(caf::scoped_actor& self, Handle handle, std::chrono::milliseconds timeout,
               codec_ptr<T> codec = value_codec<T>::standard())
    : self_(&self), handle_(std::move(handle)), timeout_(timeout), codec_(std::move(codec)) {
    // nop
  }

  template <class R, class... Ts>
  caf::expected<R> ask(Ts&&... xs) {
    caf::expected<R> result{R{}};
    (*self_)
      ->request(handle_, timeout_for(handle_, (*self_)->node(), timeout_),
                std::forward<Ts>(xs)...)
      .receive([&](R& r) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  template <class... Ts>
  caf::error ask_void(Ts&&... xs) {
    caf::error result;
    (*self_)
      ->request(handle_, timeout_for(handle_, (*self_)->node(), timeout_),
                std::forward<Ts>(xs)...)
      .receive([] {}, [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  caf::scoped_actor* self_;
  Handle handle_;
  std::chrono::milliseconds timeout_;
  codec_ptr<T> codec_;
};

/// Owns the scoped actor of a blocking store; a base class, so that it
/// exists before `blocking_ops` keeps a pointer to it.
struct scoped_self {
  explicit scoped_self(caf::actor_system& sys) : self(sys, true) {
    // nop
  }

  caf::scoped_actor self;
};

} // namespace detail

/// A typed view of an open transaction that waits for every answer (`get`,
/// `set`, `del`, `has` as for `blocking_store<T>`). Made by
/// `blocking_store<T>::begin`; must not outlive its store.
template <class T>
class blocking_txn : public detail::blocking_ops<T, transaction_actor> {
  using super = detail::blocking_ops<T, transaction_actor>;

public:
  blocking_txn(caf::scoped_actor& self, transaction_actor handle,
               std::chrono::milliseconds timeout,
               codec_ptr<T> codec = value_codec<T>::standard())
    : super(self, std::move(handle), timeout, std::move(codec)) {
    // nop
  }

  /// Every entry in the scan's range, as this transaction sees it. Under
  /// SERIALIZABLE the range is protected against phantoms until commit.
  caf::expected<std::vector<std::pair<std::string, T>>>
  entries(const scan_options& opts = {}) {
    std::vector<std::pair<std::string, T>> result;
    auto req = detail::make_scan(opts, true);
    for (;;) {
      auto page = this->template ask<scan_page>(atom::scan_v, req);
      if (!page)
        return std::move(page.error());
      for (auto& e : page->entries) {
        auto v = decode<T>(e.value, *this->codec_);
        if (!v)
          return make_error(errc::serialization_failed,
                            "value of key '" + e.key + "': " + render(v.error()));
        result.emplace_back(e.key, std::move(*v));
      }
      if (!page->more || page->entries.empty())
        return result;
      req.after = page->entries.back().key;
    }
  }

  /// Makes every buffered write durable and visible at once, or nothing. A
  /// commit whose answer does not come (a timeout, a lost connection) asks
  /// the transaction how it ended: the error is TRANSACTION_ABORTED only if
  /// it certainly did not commit, and CONNECTION_LOST if that cannot be
  /// learned (it may have: read to check).
  caf::error commit() {
    auto err = this->ask_void(atom::commit_v);
    if (!outcome_unknown(err))
      return err;
    caf::expected<txn_info> info{caf::error{}};
    for (int i = 0; i < detail::status_attempts; ++i) {
      info = this->template ask<txn_info>(atom::status_v);
      if (info || info.error() != caf::sec::request_timeout)
        break;
    }
    return detail::commit_verdict(info, err);
  }

  caf::error rollback() {
    return this->ask_void(atom::rollback_v);
  }

  caf::error savepoint(const std::string& name) {
    return this->ask_void(atom::savepoint_v, name);
  }

  caf::error rollback_to(const std::string& name) {
    return this->ask_void(atom::rollback_to_v, name);
  }

  /// Id and state (active, committed, aborted).
  /// The results of `p` over the transaction's view (its own writes
  /// included), page by page. Under SERIALIZABLE a document that would change
  /// the results, written by another transaction meanwhile, fails the commit.
  query_range<T, transaction_actor> query(const pattern& p, uint32_t page = 0) {
    query_request req;
    req.pattern = p.json();
    req.limit = page;
    return {*this->self_, this->handle_, this->timeout_, std::move(req), this->codec_};
  }

  caf::expected<txn_info> info() {
    return this->template ask<txn_info>(atom::info_v);
  }
};

/// A typed view of a store that waits for every answer. For `main()`, tools
/// and tests; never use it inside an actor (it blocks the thread). Destroy it
/// before the actor system. `timeout` applies to stores in other processes,
/// as for `store<T>`.
template <class T>
class blocking_store : private detail::scoped_self,
                       private detail::proxy_owner,
                       public detail::blocking_ops<T, storage_actor> {
  using super = detail::blocking_ops<T, storage_actor>;
  using super::codec_;
  using super::handle_;
  using super::timeout_;

public:
  /// A store in another process is reached through `watch_store`, so that
  /// requests fail at once (CONNECTION_LOST) when its connection goes.
  blocking_store(caf::actor_system& sys, storage_actor handle,
                 std::chrono::milliseconds timeout = std::chrono::seconds{30})
    : scoped_self(sys), proxy_owner(sys, handle, timeout),
      super(self, use(handle), timeout) {
    // nop
  }

  /// A store with transactions.
  blocking_store(caf::actor_system& sys, observable_storage_actor handle,
                 std::chrono::milliseconds timeout = std::chrono::seconds{30})
    : scoped_self(sys), proxy_owner(sys, handle, timeout),
      super(self, use(handle), timeout), txn_handle_(use(handle)) {
    // nop
  }

  /// Opens a transaction (the spec's beginTransaction).
  caf::expected<blocking_txn<T>> begin(const txn_options& opts = {}) {
    if (!txn_handle_)
      return detail::no_transactions();
    caf::expected<blocking_txn<T>> result{caf::error{}};
    self
      ->request(txn_handle_, detail::timeout_for(txn_handle_, self->node(), timeout_),
                atom::begin_v, opts)
      .receive(
        [&](transaction_actor& h) {
          result = blocking_txn<T>{self, std::move(h), timeout_, codec_};
        },
        [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  /// The node registry (the spec's getNodes): this process and every shard
  /// node the store uses, with status and last heartbeat.
  caf::expected<std::vector<node_info>> nodes() {
    if (!txn_handle_)
      return detail::no_transactions();
    caf::expected<std::vector<node_info>> result{caf::error{}};
    self
      ->request(txn_handle_, detail::timeout_for(txn_handle_, self->node(), timeout_),
                atom::nodes_v)
      .receive([&](std::vector<node_info>& x) { result = std::move(x); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  /// The spec's transaction(executor, options): opens a transaction, calls
  /// `executor(tx)`, which returns a `caf::expected<R>`, and commits. If the
  /// executor's error or the commit's is VERSION_CONFLICT, DEADLOCK_DETECTED
  /// or TRANSACTION_ABORTED, it starts over with a new transaction, up to
  /// `opts.retries` times, after a growing pause. Any other error from the
  /// executor rolls back and is returned. A commit that may or may not have
  /// been applied (CONNECTION_LOST) is never run again: it is returned.
  template <class F>
  auto transaction(F executor, const txn_options& opts = {})
    -> decltype(executor(std::declval<blocking_txn<T>&>())) {
    for (uint32_t n = 0;; ++n) {
      caf::error err;
      auto tx = begin(opts);
      if (!tx)
        return std::move(tx.error());
      auto result = executor(*tx);
      if (!result) {
        err = std::move(result.error());
        // Over a connection that failed, a rollback would only wait for the
        // same failure.
        if (!outcome_unknown(err))
          tx->rollback();
      } else if (auto e = tx->commit()) {
        err = std::move(e);
      } else {
        return result;
      }
      if (!detail::retryable(err) || n >= opts.retries)
        return err;
      std::this_thread::sleep_for(std::chrono::milliseconds{
        detail::backoff_ms(n, reinterpret_cast<uintptr_t>(this) + n)});
    }
  }

  /// Deletes every key.
  caf::error clear() {
    return this->ask_void(atom::clear_v);
  }

  /// Number of keys.
  caf::expected<uint64_t> size() {
    return this->template ask<uint64_t>(atom::size_v);
  }

  /// Values of the keys that exist.
  caf::expected<std::map<std::string, T>>
  get_many(const std::vector<std::string>& keys) {
    auto xs = this->template ask<std::vector<maybe_bytes>>(atom::get_many_v, keys);
    if (!xs)
      return std::move(xs.error());
    return detail::decode_many<T>(keys, *xs, *codec_);
  }

  /// Stores every entry of `xs`, atomically (also across shards).
  caf::error set_many(const std::map<std::string, T>& xs) {
    auto es = detail::encode_entries(xs, *codec_);
    if (!es)
      return std::move(es.error());
    return this->ask_void(atom::set_many_v, std::move(*es));
  }

  /// Deletes `keys`; returns how many existed.
  caf::expected<uint64_t> del_many(const std::vector<std::string>& keys) {
    return this->template ask<uint64_t>(atom::del_many_v, keys);
  }

  /// Applies `ops`; see batch_result.
  caf::expected<batch_result> batch(const std::vector<typed_operation<T>>& ops) {
    auto encoded = detail::encode_ops(ops, *codec_);
    if (!encoded)
      return std::move(encoded.error());
    return this->template ask<batch_result>(atom::batch_v, std::move(*encoded));
  }

  /// Keys in ascending order, fetched page by page.
  scan_range<T, scan_yield::keys> keys(const scan_options& opts = {}) {
    return {self, handle_, timeout_, detail::make_scan(opts, false), codec_};
  }

  /// Values in ascending key order, fetched page by page.
  scan_range<T, scan_yield::values> values(const scan_options& opts = {}) {
    return {self, handle_, timeout_, detail::make_scan(opts, true), codec_};
  }

  /// Key/value pairs in ascending key order, fetched page by page.
  scan_range<T, scan_yield::entries> entries(const scan_options& opts = {}) {
    return {self, handle_, timeout_, detail::make_scan(opts, true), codec_};
  }

  // -- queries and indexes (level 2) ------------------------------------------------

  /// The results of `p` in its order, fetched `page` at a time (0: the
  /// store's default). Lazy: range-for over it.
  query_range<T> query(const pattern& p, uint32_t page = 0) {
    return query_json(p.json(), page);
  }

  /// Like `query`, for a pattern in its JSON text form.
  query_range<T> query_json(std::string json, uint32_t page = 0) {
    query_request req;
    req.pattern = std::move(json);
    req.limit = page;
    return {self, txn_handle_, timeout_, std::move(req), codec_};
  }

  /// How many documents match `p`'s where clause.
  caf::expected<uint64_t> count(const pattern& p) {
    return ask_indexed<uint64_t>(atom::count_v, p.json());
  }

  /// The first result of `p`, if any.
  caf::expected<std::optional<query_match<T>>> find_one(const pattern& p) {
    auto rs = ask_indexed<std::vector<query_result>>(atom::find_one_v, p.json());
    if (!rs)
      return std::move(rs.error());
    if (rs->empty())
      return std::optional<query_match<T>>{};
    auto m = detail::decode_match<T>(rs->front(), *codec_);
    if (!m)
      return std::move(m.error());
    return std::optional<query_match<T>>{std::move(*m)};
  }

  /// Every result of `p`; QUOTA_EXCEEDED past `limits::max_find_results`
  /// (use `query` for more).
  caf::expected<std::vector<query_match<T>>> find_many(const pattern& p) {
    auto rs = ask_indexed<std::vector<query_result>>(atom::find_many_v, p.json());
    if (!rs)
      return std::move(rs.error());
    return detail::decode_matches<T>(*rs, *codec_);
  }

  /// Runs an aggregation pipeline (JSON text, docs/queries.md); an array of
  /// result documents.
  caf::expected<document> aggregate(const std::string& pipeline) {
    auto b = ask_indexed<bytes>(atom::aggregate_v, pipeline);
    if (!b)
      return std::move(b.error());
    try {
      return decode_document(*b);
    } catch (const codec_error& e) {
      return make_error(errc::serialization_failed, e.what());
    }
  }

  /// Creates an index on every shard; it serves queries once built.
  caf::error create_index(const index_spec& spec) {
    auto r = ask_indexed<caf::unit_t>(atom::create_index_v, spec);
    return r ? caf::error{} : std::move(r.error());
  }

  caf::error drop_index(const std::string& name) {
    auto r = ask_indexed<caf::unit_t>(atom::drop_index_v, name);
    return r ? caf::error{} : std::move(r.error());
  }

  /// Every index, with its state and figures.
  caf::expected<std::vector<index_info>> indexes() {
    return ask_indexed<std::vector<index_info>>(atom::indexes_v);
  }

  /// How the shards run `p`.
  caf::expected<query_plan> explain(const pattern& p) {
    return ask_indexed<query_plan>(atom::explain_v, p.json());
  }

private:
  template <class R, class... Ts>
  caf::expected<R> ask_indexed(Ts&&... xs) {
    if (!txn_handle_)
      return detail::no_queries();
    caf::expected<R> result{caf::error{}};
    auto req = self->request(txn_handle_,
                             detail::timeout_for(txn_handle_, self->node(), timeout_),
                             std::forward<Ts>(xs)...);
    if constexpr (std::is_same_v<R, caf::unit_t>)
      req.receive([&] { result = caf::unit; }, [&](caf::error& e) { result = std::move(e); });
    else
      req.receive([&](R& x) { result = std::move(x); },
                  [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  observable_storage_actor txn_handle_;
};

} // namespace strata

#pragma once

#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "backends/shard_core.hpp"
#include "strata/envelope.hpp"
#include "strata/error.hpp"
#include "strata/messages/wire.hpp"

/// Input checks shared by the storage and shard actors: bad input is answered
/// with a strata error before it reaches a shard's data.
namespace strata {

inline caf::error check_key(const std::string& key, bool reserved_ok = false) {
  if (auto problem = key_problem(key, reserved_ok); !problem.empty())
    return make_error(errc::invalid_key, std::move(problem));
  return caf::none;
}

inline caf::error check_keys(const std::vector<std::string>& keys) {
  for (size_t i = 0; i < keys.size(); ++i)
    if (auto problem = key_problem(keys[i]); !problem.empty())
      return make_error(errc::invalid_key,
                        "key " + std::to_string(i) + ": " + problem);
  return caf::none;
}

/// `max_size` limits what the user stored: strata's 4-byte value header
/// (typed client, CLI) does not count.
inline caf::error check_value(const bytes& value, uint64_t max_size) {
  if (auto problem = value_problem(payload_size(value), max_size); !problem.empty())
    return make_error(errc::invalid_value, std::move(problem));
  return caf::none;
}

inline caf::error check_entries(const std::vector<entry>& entries,
                                uint64_t max_size) {
  for (size_t i = 0; i < entries.size(); ++i) {
    auto problem = key_problem(entries[i].key);
    auto code = errc::invalid_key;
    if (problem.empty()) {
      problem = value_problem(payload_size(entries[i].value), max_size);
      code = errc::invalid_value;
    }
    if (!problem.empty())
      return make_error(code, "entry " + std::to_string(i) + ": " + problem);
  }
  return caf::none;
}

/// One error per bad operation of a batch, each naming its index.
/// `reserved_ok`: the store's own writes, which may write reserved keys.
inline std::vector<caf::error> check_ops(const std::vector<operation>& ops,
                                         uint64_t max_size, bool reserved_ok = false) {
  std::vector<caf::error> result;
  for (size_t i = 0; i < ops.size(); ++i) {
    auto& op = ops[i];
    auto where = "operation " + std::to_string(i) + ": ";
    switch (op.kind) {
      case op_kind::set:
        if (auto p = value_problem(payload_size(op.value), max_size); !p.empty())
          result.push_back(make_error(errc::invalid_value, where + p));
        [[fallthrough]];
      case op_kind::del:
        if (auto p = key_problem(op.key, reserved_ok); !p.empty())
          result.push_back(make_error(errc::invalid_key, where + p));
        break;
      case op_kind::clear:
        break;
      default:
        result.push_back(make_error(
          errc::invalid_value,
          where + "unknown kind "
            + std::to_string(static_cast<unsigned>(op.kind))));
    }
  }
  return result;
}

/// The first problem of a transaction's part: its writes as in `check_ops`,
/// and the keys it read. Parts are made by the store, with the claims of
/// unique indexes among their keys.
inline caf::error check_part(const txn_part& part, uint64_t max_size) {
  if (auto errors = check_ops(part.writes, max_size, true); !errors.empty())
    return std::move(errors.front());
  for (auto& r : part.reads)
    if (auto err = check_key(r.key, true))
      return err;
  return caf::none;
}

/// The first problem of a batch of prepares: the batch is refused whole
/// (the coordinator checks parts before it prepares them).
inline caf::error check_prepares(const std::vector<txn_prepare>& batch,
                                 uint64_t max_size) {
  for (auto& p : batch)
    if (auto err = check_part(p.part, max_size))
      return err;
  return caf::none;
}

// -- message sizes ------------------------------------------------------------------

/// About how many bytes a request takes on the wire (its keys and values
/// plus a little per item), to keep it under a node's `max_frame_size`.
inline uint64_t wire_size(const std::string& x) {
  return x.size() + 8;
}

inline uint64_t wire_size(const operation& op) {
  return op.key.size() + op.value.size() + 16;
}

inline uint64_t wire_size(const entry& e) {
  return e.key.size() + e.value.size() + 16;
}

inline uint64_t wire_size(const txn_part& p) {
  uint64_t n = 32;
  for (auto& op : p.writes)
    n += wire_size(op);
  for (auto& r : p.reads)
    n += r.key.size() + 16;
  for (auto& r : p.ranges)
    n += r.lo.size() + r.hi.size() + 24;
  return n;
}

inline uint64_t wire_size(const txn_prepare& p) {
  return wire_size(p.part) + 8;
}

template <class T>
uint64_t wire_size(const std::vector<T>& xs) {
  uint64_t n = 16;
  for (auto& x : xs)
    n += wire_size(x);
  return n;
}

/// QUOTA_EXCEEDED if a request of about `size` bytes is above `limit` (0:
/// no limit): a node would close the connection rather than read it.
inline caf::error check_frame(uint64_t size, uint64_t limit) {
  if (limit == 0 || size <= limit)
    return caf::none;
  return make_error(errc::quota_exceeded,
                    "a request of about " + std::to_string(size)
                      + " bytes is above max_frame_size (" + std::to_string(limit)
                      + " bytes); split it into smaller ones");
}

/// A backend's optional value as it travels.
inline maybe_bytes to_wire(std::optional<bytes> x) {
  return x ? maybe_bytes{std::move(*x)} : maybe_bytes{};
}

/// Several of them, in order.
inline std::vector<maybe_bytes> to_wire(std::vector<std::optional<bytes>> xs) {
  std::vector<maybe_bytes> result;
  result.reserve(xs.size());
  for (auto& x : xs)
    result.push_back(to_wire(std::move(x)));
  return result;
}

/// Runs `f`, turning a backend's storage_error into a strata CAF error.
template <class F>
auto guarded(F f) -> caf::expected<decltype(f())> {
  try {
    return f();
  } catch (const storage_error& e) {
    return make_error(e.code(), e.what());
  }
}

} // namespace strata

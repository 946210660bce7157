#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "actors/checks.hpp"
#include "actors/relay.hpp"
#include "strata/actors.hpp"

namespace strata {

/// The read handlers of `storage_actor`, and so of `shard_actor` (get, has,
/// size, scan, get_many), that pass a request on unchanged: for the proxy of
/// a remote shard and a client's stand-in for a remote store. Combine them
/// with the rest of a behavior through std::apply.
template <class Self>
auto shard_read_relay_handlers(Self* self) {
  return std::make_tuple(
    [self](atom::get, std::string& key) -> caf::result<maybe_bytes> {
      return relay<maybe_bytes>(self, atom::get_v, std::move(key));
    },
    [self](atom::has, std::string& key) -> caf::result<bool> {
      return relay<bool>(self, atom::has_v, std::move(key));
    },
    [self](atom::size) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::size_v);
    },
    [self](atom::scan, scan_request& req) -> caf::result<scan_page> {
      return relay<scan_page>(self, atom::scan_v, std::move(req));
    },
    [self](atom::get_many, std::vector<std::string>& keys)
      -> caf::result<std::vector<maybe_bytes>> {
      return relay<std::vector<maybe_bytes>>(self, atom::get_many_v, std::move(keys));
    });
}

/// The write handlers of `shard_actor` (plain writes and the shard's side of
/// commits), which check their input and pass the request on to
/// `dest(self->state)`: a remote shard, or the writer of a local one.
/// Requests above `max_frame` bytes (0: no limit) are refused with
/// QUOTA_EXCEEDED rather than sent to a node that would drop the connection.
template <class Self, class Dest>
auto shard_write_relay_handlers(Self* self, Dest dest, uint64_t max_value_size,
                                uint64_t max_frame = 0) {
  auto max = max_value_size;
  return std::make_tuple(
    [self, dest, max, max_frame](atom::set, std::string& key,
                                 bytes& value) -> caf::result<void> {
      if (auto err = check_key(key))
        return err;
      if (auto err = check_value(value, max))
        return err;
      if (auto err = check_frame(wire_size(key) + value.size(), max_frame))
        return err;
      return relay_to<>(self, dest, atom::set_v, std::move(key), std::move(value));
    },
    [self, dest](atom::del, std::string& key) -> caf::result<bool> {
      if (auto err = check_key(key))
        return err;
      return relay_to<bool>(self, dest, atom::del_v, std::move(key));
    },
    [self, dest](atom::clear) -> caf::result<void> {
      return relay_to<>(self, dest, atom::clear_v);
    },
    [self, dest, max, max_frame](atom::set_many,
                                 std::vector<entry>& entries) -> caf::result<void> {
      if (auto err = check_entries(entries, max))
        return err;
      if (auto err = check_frame(wire_size(entries), max_frame))
        return err;
      return relay_to<>(self, dest, atom::set_many_v, std::move(entries));
    },
    [self, dest](atom::del_many, std::vector<std::string>& keys) -> caf::result<uint64_t> {
      if (auto err = check_keys(keys))
        return err;
      return relay_to<uint64_t>(self, dest, atom::del_many_v, std::move(keys));
    },
    [self, dest, max, max_frame](atom::batch,
                                 std::vector<operation>& ops) -> caf::result<batch_result> {
      if (auto errors = check_ops(ops, max); !errors.empty())
        return batch_result{false, 0, std::move(errors)};
      if (auto err = check_frame(wire_size(ops), max_frame))
        return batch_result{false, 0, {std::move(err)}};
      return relay_to<batch_result>(self, dest, atom::batch_v, std::move(ops));
    },
    [self, dest, max, max_frame](atom::commit, uint64_t txid,
                                 txn_part& part) -> caf::result<uint64_t> {
      if (auto err = check_part(part, max))
        return err;
      if (auto err = check_frame(wire_size(part), max_frame))
        return err;
      return relay_to<uint64_t>(self, dest, atom::commit_v, txid, std::move(part));
    },
    // The same way as commits, so that it comes after them.
    [self, dest](atom::status, uint64_t txid) -> caf::result<bool> {
      return relay_to<bool>(self, dest, atom::status_v, txid);
    },
    [self, dest, max, max_frame](atom::prepare, std::vector<txn_prepare>& batch)
      -> caf::result<std::vector<caf::error>> {
      if (auto err = check_prepares(batch, max))
        return err;
      if (auto err = check_frame(wire_size(batch), max_frame))
        return err;
      return relay_to<std::vector<caf::error>>(self, dest, atom::prepare_v,
                                               std::move(batch));
    },
    [self, dest](atom::resolve, std::vector<txn_outcome>& batch)
      -> caf::result<std::vector<uint64_t>> {
      return relay_to<std::vector<uint64_t>>(self, dest, atom::resolve_v,
                                             std::move(batch));
    },
    [self, dest](atom::sync) -> caf::result<void> { return relay_to<>(self, dest, atom::sync_v); });
}

/// The transactional reads of `shard_actor`, passed on to the target.
template <class Self>
auto shard_txn_read_relay_handlers(Self* self) {
  return std::make_tuple(
    [self](atom::read, std::string& key) -> caf::result<maybe_bytes, uint64_t> {
      return relay<maybe_bytes, uint64_t>(self, atom::read_v, std::move(key));
    },
    [self](atom::read, scan_request& req) -> caf::result<scan_page, uint64_t> {
      return relay<scan_page, uint64_t>(self, atom::read_v, std::move(req));
    });
}

/// A shard's parts of queries (`query`, `count`, `partial`), passed on to the
/// target.
template <class Self>
auto shard_query_relay_handlers(Self* self) {
  return std::make_tuple(
    [self](atom::query, shard_query& req) -> caf::result<shard_hits> {
      return relay<shard_hits>(self, atom::query_v, std::move(req));
    },
    [self](atom::count, std::string& pattern) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::count_v, std::move(pattern));
    },
    [self](atom::partial, std::string& pipeline) -> caf::result<bytes> {
      return relay<bytes>(self, atom::partial_v, std::move(pipeline));
    });
}

/// A shard's change log (`changes`, `await`), passed on to the target.
template <class Self>
auto shard_change_relay_handlers(Self* self) {
  return std::make_tuple(
    [self](atom::changes, change_request& req) -> caf::result<change_page> {
      return relay<change_page>(self, atom::changes_v, std::move(req));
    },
    [self](atom::await, uint64_t after, uint32_t wait_ms) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::await_v, after, wait_ms);
    });
}

/// A shard's index management: changes go to `dest(self->state)` (the
/// writer of a local shard, or a remote shard), the list to the target.
template <class Self, class Dest>
auto shard_index_relay_handlers(Self* self, Dest dest) {
  return std::make_tuple(
    [self, dest](atom::create_index, index_spec& spec) -> caf::result<void> {
      return relay_to<>(self, dest, atom::create_index_v, std::move(spec));
    },
    [self, dest](atom::drop_index, std::string& name) -> caf::result<void> {
      return relay_to<>(self, dest, atom::drop_index_v, std::move(name));
    },
    [self](atom::indexes) -> caf::result<std::vector<index_info>> {
      return relay<std::vector<index_info>>(self, atom::indexes_v);
    });
}

/// The requests of `indexed_storage_actor` beyond `storage_actor` (queries,
/// aggregations, indexes, explain), passed on to the target: for a client's
/// stand-in for a remote store.
template <class Self>
auto indexed_relay_handlers(Self* self) {
  return std::make_tuple(
    [self](atom::query, query_request& req) -> caf::result<query_page> {
      return relay<query_page>(self, atom::query_v, std::move(req));
    },
    [self](atom::count, std::string& pattern) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::count_v, std::move(pattern));
    },
    [self](atom::find_one, std::string& pattern) -> caf::result<std::vector<query_result>> {
      return relay<std::vector<query_result>>(self, atom::find_one_v, std::move(pattern));
    },
    [self](atom::find_many, std::string& pattern) -> caf::result<std::vector<query_result>> {
      return relay<std::vector<query_result>>(self, atom::find_many_v, std::move(pattern));
    },
    [self](atom::aggregate, std::string& pipeline) -> caf::result<bytes> {
      return relay<bytes>(self, atom::aggregate_v, std::move(pipeline));
    },
    [self](atom::create_index, index_spec& spec) -> caf::result<void> {
      return relay<>(self, atom::create_index_v, std::move(spec));
    },
    [self](atom::drop_index, std::string& name) -> caf::result<void> {
      return relay<>(self, atom::drop_index_v, std::move(name));
    },
    [self](atom::indexes) -> caf::result<std::vector<index_info>> {
      return relay<std::vector<index_info>>(self, atom::indexes_v);
    },
    // The index actor lives on the store's node; the client talks to it there.
    [self](atom::index, std::string& name) -> caf::result<index_actor> {
      return relay<index_actor>(self, atom::index_v, std::move(name));
    },
    [self](atom::explain, std::string& pattern) -> caf::result<query_plan> {
      return relay<query_plan>(self, atom::explain_v, std::move(pattern));
    });
}

} // namespace strata

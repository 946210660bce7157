#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "actors/relay.hpp"
#include "strata/actors.hpp"

namespace strata {

/// The read handlers of `shard_actor` (get, has, size, scan, get_many) that
/// pass a request on unchanged, for the proxy of a remote shard. Combine
/// them with the rest of a behavior through std::apply.
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

/// The other handlers of `shard_actor` that pass a request on unchanged (all
/// but the reads above, `info` and `recover`), for actors that stand in for
/// a shard: the supervisor of a local shard and the proxy of a remote one.
template <class Self>
auto shard_relay_handlers(Self* self) {
  return std::make_tuple(
    [self](atom::set, std::string& key, bytes& value) -> caf::result<void> {
      return relay<>(self, atom::set_v, std::move(key), std::move(value));
    },
    [self](atom::del, std::string& key) -> caf::result<bool> {
      return relay<bool>(self, atom::del_v, std::move(key));
    },
    [self](atom::clear) -> caf::result<void> { return relay<>(self, atom::clear_v); },
    [self](atom::set_many, std::vector<entry>& entries) -> caf::result<void> {
      return relay<>(self, atom::set_many_v, std::move(entries));
    },
    [self](atom::del_many, std::vector<std::string>& keys) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::del_many_v, std::move(keys));
    },
    [self](atom::batch, std::vector<operation>& ops) -> caf::result<batch_result> {
      return relay<batch_result>(self, atom::batch_v, std::move(ops));
    },
    [self](atom::read, std::string& key) -> caf::result<maybe_bytes, uint64_t> {
      return relay<maybe_bytes, uint64_t>(self, atom::read_v, std::move(key));
    },
    [self](atom::read, scan_request& req) -> caf::result<scan_page, uint64_t> {
      return relay<scan_page, uint64_t>(self, atom::read_v, std::move(req));
    },
    [self](atom::commit, txn_part& part) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::commit_v, std::move(part));
    },
    [self](atom::prepare, uint64_t txid, txn_part& part) -> caf::result<void> {
      return relay<>(self, atom::prepare_v, txid, std::move(part));
    },
    [self](atom::resolve, uint64_t txid, bool commit) -> caf::result<uint64_t> {
      return relay<uint64_t>(self, atom::resolve_v, txid, commit);
    },
    [self](atom::sync) -> caf::result<void> { return relay<>(self, atom::sync_v); });
}

} // namespace strata

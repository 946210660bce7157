#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "strata/messages/atoms.hpp"
#include "strata/messages/wire.hpp"

/// strata's typed actor interfaces, declared once. Each wider interface
/// extends a narrower one, so a handle to a richer store converts to a handle
/// of any poorer level.
namespace strata {

/// Level 1 of the specification, Storage plus BatchStorage: a key-value store
/// of byte values. Keys are 1 to 511 bytes (INVALID_KEY otherwise); values
/// above the store's `max_value_size` are INVALID_VALUE. A write is answered
/// once it is durable (unless the store runs in no-sync mode).
using storage_actor = caf::typed_actor<
  // The value of a key; an empty optional if the key does not exist.
  caf::replies_to<atom::get, std::string>::with<maybe_bytes>,
  // Stores a value, replacing an old one.
  caf::reacts_to<atom::set, std::string, bytes>,
  // Deletes a key; true if it existed.
  caf::replies_to<atom::del, std::string>::with<bool>,
  // Whether a key exists.
  caf::replies_to<atom::has, std::string>::with<bool>,
  // Deletes every key.
  caf::reacts_to<atom::clear>,
  // Number of keys.
  caf::replies_to<atom::size>::with<uint64_t>,
  // One page of an ordered scan over keys (and values).
  caf::replies_to<atom::scan, scan_request>::with<scan_page>,
  // Values of several keys, in request order.
  caf::replies_to<atom::get_many, std::vector<std::string>>::with<
    std::vector<maybe_bytes>>,
  // Stores several entries.
  caf::reacts_to<atom::set_many, std::vector<entry>>,
  // Deletes several keys; answers how many existed.
  caf::replies_to<atom::del_many, std::vector<std::string>>::with<uint64_t>,
  // Applies a list of operations; see batch_result.
  caf::replies_to<atom::batch, std::vector<operation>>::with<batch_result>>;

/// One shard: a complete single-environment store plus operator figures.
/// Within a shard, set_many, del_many and batch are atomic.
using shard_actor = storage_actor::extend<
  // Entry count, map size and use, commits.
  caf::replies_to<atom::info>::with<shard_info>>;

} // namespace strata

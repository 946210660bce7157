#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/response_promise.hpp>
#include <caf/typed_actor.hpp>

#include "strata/actors.hpp"

namespace strata {

class kv_store;

/// The write half of a shard: the only actor that writes to the shard's LMDB
/// environment. Its handlers mirror the storage interface's writes, so the
/// shard can delegate to it and the answer goes straight to the client.
using shard_writer_actor = caf::typed_actor<
  caf::reacts_to<atom::set, std::string, bytes>,
  caf::replies_to<atom::del, std::string>::with<bool>,
  caf::reacts_to<atom::clear>,
  caf::reacts_to<atom::set_many, std::vector<entry>>,
  caf::replies_to<atom::del_many, std::vector<std::string>>::with<uint64_t>,
  caf::replies_to<atom::batch, std::vector<operation>>::with<batch_result>,
  // Commits everything queued so far (sent to itself).
  caf::reacts_to<atom::flush>>;

/// A write waiting for the next group commit.
struct pending_write {
  /// Which request it came from; decides the shape of the answer.
  enum class reply { unit, existed, count, batch } shape;
  std::vector<operation> ops;
  caf::response_promise promise;
};

struct shard_writer_state {
  static inline const char* name = "strata.shard_writer";
  std::shared_ptr<kv_store> store;
  std::vector<pending_write> pending;
  bool flush_scheduled = false;
};

/// Group commit: a write is queued and a flush message is sent to self; the
/// flush runs after every write already in the mailbox, applies them all in
/// one LMDB transaction and one sync, and then answers each. Writes that
/// arrive during the sync form the next group. Spawned detached: the sync
/// blocks its thread, never a scheduler worker.
shard_writer_actor::behavior_type
shard_writer(shard_writer_actor::stateful_pointer<shard_writer_state> self,
             std::shared_ptr<kv_store> store);

/// Spawns a detached writer for `store`.
shard_writer_actor spawn_shard_writer(caf::actor_system& sys,
                                      std::shared_ptr<kv_store> store);

} // namespace strata

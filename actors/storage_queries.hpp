#pragma once

#include <string>
#include <vector>

#include <caf/make_message.hpp>
#include <caf/result.hpp>

#include "actors/storage.hpp"

/// The storage actor's level-2 requests (queries, aggregations, indexes,
/// explain): each scatters its part to every shard and merges the answers.
/// Shards run their parts on their own threads, in parallel; the storage
/// actor only merges pages, so it stays free for other requests.
namespace strata::storage_queries {

using storage_ptr = observable_storage_actor::stateful_pointer<storage_state>;

/// One page: each shard sends its first offset+page results after the
/// continuation's position in the query's order; the k-way merge keeps the
/// first of them. Memory per page is bounded by shards × (offset + page).
caf::result<query_page> query(storage_ptr self, const query_request& req);

caf::result<uint64_t> count(storage_ptr self, const std::string& pattern);

/// find_one (`one`) or find_many.
caf::result<std::vector<query_result>> find(storage_ptr self, const std::string& pattern,
                                            bool one);

caf::result<bytes> aggregate(storage_ptr self, const std::string& pipeline);

caf::result<query_plan> explain(storage_ptr self, const std::string& pattern);

/// Creates the index on every shard (idempotent: a client may repeat it
/// after a failure).
caf::result<void> create_index(storage_ptr self, const index_spec& spec);

/// Drops the index on every shard; KEY_NOT_FOUND if no shard has it.
caf::result<void> drop_index(storage_ptr self, const std::string& name);

/// The shards' indexes, their figures summed.
caf::result<std::vector<index_info>> indexes(storage_ptr self);

} // namespace strata::storage_queries

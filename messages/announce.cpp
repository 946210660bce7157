#include "strata/messages/announce.hpp"

#include <caf/actor_system_config.hpp>

#include "strata/actors.hpp"
#include "strata/messages/wire.hpp"

namespace strata {

void announce_messages(caf::actor_system_config& cfg) {
  // add_message_type<T> also announces std::vector<T>.
  cfg.add_message_type<bytes>("strata::bytes");
  cfg.add_message_type<maybe_bytes>("strata::maybe_bytes");
  cfg.add_message_type<entry>("strata::entry");
  cfg.add_message_type<op_kind>("strata::op_kind");
  cfg.add_message_type<operation>("strata::operation");
  cfg.add_message_type<batch_result>("strata::batch_result");
  cfg.add_message_type<scan_request>("strata::scan_request");
  cfg.add_message_type<scan_page>("strata::scan_page");
  cfg.add_message_type<shard_info>("strata::shard_info");
  cfg.add_message_type<isolation>("strata::isolation");
  cfg.add_message_type<txn_options>("strata::txn_options");
  cfg.add_message_type<txn_state>("strata::txn_state");
  cfg.add_message_type<txn_info>("strata::txn_info");
  cfg.add_message_type<read_mark>("strata::read_mark");
  cfg.add_message_type<range_mark>("strata::range_mark");
  cfg.add_message_type<txn_part>("strata::txn_part");
  cfg.add_message_type<shard_part>("strata::shard_part");
  cfg.add_message_type<txn_prepare>("strata::txn_prepare");
  cfg.add_message_type<txn_outcome>("strata::txn_outcome");
  cfg.add_message_type<node_role>("strata::node_role");
  cfg.add_message_type<node_status>("strata::node_status");
  cfg.add_message_type<node_info>("strata::node_info");
  cfg.add_message_type<query_request>("strata::query_request");
  cfg.add_message_type<query_result>("strata::query_result");
  cfg.add_message_type<query_page>("strata::query_page");
  cfg.add_message_type<shard_query>("strata::shard_query");
  cfg.add_message_type<shard_hit>("strata::shard_hit");
  cfg.add_message_type<shard_hits>("strata::shard_hits");
  cfg.add_message_type<shard_plan>("strata::shard_plan");
  cfg.add_message_type<query_plan>("strata::query_plan");
  cfg.add_message_type<index_field>("strata::index_field");
  cfg.add_message_type<index_spec>("strata::index_spec");
  cfg.add_message_type<index_info>("strata::index_info");
  cfg.add_message_type<change_kind>("strata::change_kind");
  cfg.add_message_type<change>("strata::change");
  cfg.add_message_type<change_batch>("strata::change_batch");
  cfg.add_message_type<change_filter_spec>("strata::change_filter_spec");
  cfg.add_message_type<change_request>("strata::change_request");
  cfg.add_message_type<change_page>("strata::change_page");
  cfg.add_message_type<event_kind>("strata::event_kind");
  cfg.add_message_type<storage_event>("strata::storage_event");
  cfg.add_message_type<subscribe_options>("strata::subscribe_options");
  cfg.add_message_type<watch_options>("strata::watch_options");
  cfg.add_message_type<watch_info>("strata::watch_info");
  cfg.add_message_type<error_event>("strata::error_event");
  // Actor handles in messages: `begin` answers a transaction, `recover`
  // names the coordinator, a shard node hands out its shards.
  cfg.add_message_type<transaction_actor>("strata::transaction_actor");
  cfg.add_message_type<index_actor>("strata::index_actor");
  cfg.add_message_type<coordinator_actor>("strata::coordinator_actor");
  cfg.add_message_type<event_actor>("strata::event_actor");
  cfg.add_message_type<watcher_actor>("strata::watcher_actor");
  cfg.add_message_type<observable_storage_actor>("strata::observable_storage_actor");
  cfg.add_message_type<shard_actor>("strata::shard_actor");
  // Votes and outcome counts of batched prepares and resolves.
  cfg.add_message_type<std::vector<caf::error>>("std::vector<caf::error>");
  cfg.add_message_type<std::vector<uint64_t>>("std::vector<uint64_t>");
}

} // namespace strata

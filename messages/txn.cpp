#include "strata/messages/txn.hpp"

namespace strata {

const char* to_string(isolation x) {
  switch (x) {
    case isolation::read_uncommitted: return "READ_UNCOMMITTED";
    case isolation::read_committed: return "READ_COMMITTED";
    case isolation::repeatable_read: return "REPEATABLE_READ";
    case isolation::serializable: return "SERIALIZABLE";
  }
  return "INVALID";
}

std::optional<isolation> parse_isolation(const std::string& name) {
  for (auto x : {isolation::read_uncommitted, isolation::read_committed,
                 isolation::repeatable_read, isolation::serializable})
    if (name == to_string(x))
      return x;
  return std::nullopt;
}

std::string txn_options::problem() const {
  if (static_cast<uint8_t>(level) > static_cast<uint8_t>(isolation::serializable))
    return "unknown isolation level " + std::to_string(static_cast<int>(level));
  if (timeout_ms < 1 || timeout_ms > 3600000)
    return "timeout must be 1 to 3600000 ms, not " + std::to_string(timeout_ms);
  if (retries > 100)
    return "retries must be at most 100, not " + std::to_string(retries);
  return {};
}

const char* to_string(txn_state x) {
  switch (x) {
    case txn_state::active: return "active";
    case txn_state::committed: return "committed";
    case txn_state::aborted: return "aborted";
    case txn_state::unknown: return "unknown";
  }
  return "invalid";
}

std::string txn_name(uint64_t txid) {
  return "tx-" + std::to_string(txid >> txn_counter_bits) + "-"
         + std::to_string(txid & ((uint64_t{1} << txn_counter_bits) - 1));
}

} // namespace strata

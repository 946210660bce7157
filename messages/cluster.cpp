#include "strata/messages/cluster.hpp"

namespace strata {

const char* to_string(node_role x) {
  switch (x) {
    case node_role::primary: return "primary";
    case node_role::replica: return "replica";
  }
  return "invalid";
}

const char* to_string(node_status x) {
  switch (x) {
    case node_status::healthy: return "healthy";
    case node_status::degraded: return "degraded";
    case node_status::offline: return "offline";
  }
  return "invalid";
}

} // namespace strata

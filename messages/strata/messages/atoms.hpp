#pragma once

#include <caf/atom.hpp>

/// Message tags of strata's typed interfaces: short verbs, at most 10 chars.
namespace strata::atom {

#define STRATA_ATOM(name, text)                                                \
  using name = caf::atom_constant<caf::atom(text)>;                           \
  constexpr name name##_v = name::value;

STRATA_ATOM(get, "get")
STRATA_ATOM(set, "set")
STRATA_ATOM(del, "del")
STRATA_ATOM(has, "has")
STRATA_ATOM(clear, "clear")
STRATA_ATOM(size, "size")
STRATA_ATOM(scan, "scan")
STRATA_ATOM(get_many, "get_many")
STRATA_ATOM(set_many, "set_many")
STRATA_ATOM(del_many, "del_many")
STRATA_ATOM(batch, "batch")
STRATA_ATOM(info, "info")
STRATA_ATOM(flush, "flush")
STRATA_ATOM(begin, "begin")
STRATA_ATOM(read, "read")
STRATA_ATOM(commit, "commit")
STRATA_ATOM(prepare, "prepare")
STRATA_ATOM(resolve, "resolve")
STRATA_ATOM(status, "status")
STRATA_ATOM(recover, "recover")
STRATA_ATOM(rollback, "rollback")
STRATA_ATOM(savepoint, "savepoint")
STRATA_ATOM(rollback_to, "rollbackto")
STRATA_ATOM(timeout, "timeout")
STRATA_ATOM(sync, "sync")
STRATA_ATOM(nodes, "nodes")
STRATA_ATOM(shard, "shard")
STRATA_ATOM(ping, "ping")
STRATA_ATOM(tick, "tick")
STRATA_ATOM(restart, "restart")
STRATA_ATOM(retry, "retry")

#undef STRATA_ATOM

} // namespace strata::atom

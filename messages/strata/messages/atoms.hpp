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
STRATA_ATOM(query, "query")
STRATA_ATOM(count, "count")
STRATA_ATOM(find_one, "find_one")
STRATA_ATOM(find_many, "find_many")
STRATA_ATOM(aggregate, "aggregate")
STRATA_ATOM(partial, "partial")
STRATA_ATOM(explain, "explain")
STRATA_ATOM(create_index, "mkindex")
STRATA_ATOM(drop_index, "dropindex")
STRATA_ATOM(indexes, "indexes")
STRATA_ATOM(build, "build")
STRATA_ATOM(plan, "plan")
STRATA_ATOM(index, "index")
STRATA_ATOM(changes, "changes")
STRATA_ATOM(await, "await")
STRATA_ATOM(watch, "watch")
STRATA_ATOM(on, "on")
STRATA_ATOM(off, "off")
STRATA_ATOM(unwatch, "unwatch")
STRATA_ATOM(before, "before")
STRATA_ATOM(after, "after")
STRATA_ATOM(change, "change")
STRATA_ATOM(failed, "failed")

#undef STRATA_ATOM

} // namespace strata::atom

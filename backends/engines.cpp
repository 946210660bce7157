#include "backends/engines.hpp"

#include <filesystem>
#include <system_error>

#include "backends/graph_engine.hpp"
#include "backends/json_engine.hpp"
#include "backends/lmdb_engine.hpp"
#include "backends/memory_engine.hpp"
#include "backends/sqlite_engine.hpp"

namespace strata {

std::unique_ptr<engine> open_engine(const engine_options& opts) {
  // A directory holds the files of one engine; opening it with another would
  // hide its data behind an empty shard.
  auto holds = [&](const char* file) {
    std::error_code ec;
    return std::filesystem::exists(std::filesystem::path{opts.dir} / file, ec);
  };
  auto refuse = [&](const char* found) {
    return storage_error{errc::consistency_violation,
                         opts.dir + " holds a shard of engine " + found
                           + "; open it with that engine, not "
                           + engine_name(opts.engine)};
  };
  // (A sqlite database or json file under another name than the default's
  // is not recognised.)
  auto mine = opts.engine;
  if (mine != engine_kind::lmdb && holds("data.mdb"))
    throw refuse("lmdb");
  if (mine != engine_kind::memory && holds("memory.snapshot"))
    throw refuse("memory");
  if (mine != engine_kind::sqlite && holds("strata.sqlite"))
    throw refuse("sqlite");
  if (mine != engine_kind::json && holds("strata.json"))
    throw refuse("json");
  if (mine != engine_kind::graph && holds("strata.graph"))
    throw refuse("graph");
  switch (opts.engine) {
    case engine_kind::memory:
      return std::make_unique<memory_engine>(opts);
    case engine_kind::sqlite:
      return std::make_unique<sqlite_engine>(opts);
    case engine_kind::json:
      return std::make_unique<json_engine>(opts);
    case engine_kind::graph:
      return std::make_unique<graph_engine>(opts);
    case engine_kind::lmdb:
      break;
  }
  return std::make_unique<lmdb_engine>(opts);
}

} // namespace strata

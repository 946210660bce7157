#include "backends/engines.hpp"

#include <filesystem>
#include <system_error>

#include "backends/lmdb_engine.hpp"
#include "backends/memory_engine.hpp"

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
  if (opts.engine == engine_kind::memory) {
    if (holds("data.mdb"))
      throw refuse("lmdb");
    return std::make_unique<memory_engine>(opts);
  }
  if (holds("memory.snapshot"))
    throw refuse("memory");
  return std::make_unique<lmdb_engine>(opts);
}

} // namespace strata

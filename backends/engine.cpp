#include "backends/engine.hpp"

#include <filesystem>
#include <system_error>

#include "backends/lmdb_engine.hpp"
#include "backends/memory_engine.hpp"

namespace strata {

const char* keyspace_name(keyspace ks) {
  switch (ks) {
    case keyspace::data:
      return "data";
    case keyspace::prepared:
      return "prepared";
    case keyspace::outcomes:
      return "outcomes";
    case keyspace::meta:
      return "meta";
    case keyspace::index:
      return "index";
    case keyspace::changes:
      return "changes";
  }
  return "?";
}

const char* engine_name(engine_kind kind) {
  return kind == engine_kind::memory ? "memory" : "lmdb";
}

bool parse_engine(std::string_view name, engine_kind& kind) {
  if (name == "lmdb")
    kind = engine_kind::lmdb;
  else if (name == "memory")
    kind = engine_kind::memory;
  else
    return false;
  return true;
}

std::string txid_key(uint64_t txid) {
  std::string key(8, '\0');
  for (int b = 0; b < 8; ++b)
    key[static_cast<size_t>(b)] = static_cast<char>((txid >> (8 * (7 - b))) & 0xff);
  return key;
}

bool txid_of(std::string_view key, uint64_t& txid) {
  if (key.size() != 8)
    return false;
  txid = 0;
  for (auto ch : key)
    txid = (txid << 8) | static_cast<unsigned char>(ch);
  return true;
}

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

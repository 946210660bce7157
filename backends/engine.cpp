#include "backends/engine.hpp"

#include <charconv>

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

uint64_t parse_stored_number(std::string_view text, const std::string& dir) {
  uint64_t x = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  if (ec != std::errc{} || end != text.data() + text.size())
    throw storage_error{errc::consistency_violation,
                        dir + ": the stored number '" + std::string{text} + "' is corrupt"};
  return x;
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

} // namespace strata

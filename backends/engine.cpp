#include "backends/engine.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "backends/fault.hpp"

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
  switch (kind) {
    case engine_kind::lmdb:
      return "lmdb";
    case engine_kind::memory:
      return "memory";
    case engine_kind::sqlite:
      return "sqlite";
    case engine_kind::json:
      return "json";
    case engine_kind::graph:
      return "graph";
  }
  return "?";
}

bool parse_engine(std::string_view name, engine_kind& kind) {
  for (auto k : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite, engine_kind::json,
                 engine_kind::graph})
    if (name == engine_name(k)) {
      kind = k;
      return true;
    }
  return false;
}

std::vector<std::string> capability_names(const engine_capabilities& caps) {
  std::vector<std::string> result;
  auto add = [&](bool has, const char* name) {
    if (has)
      result.emplace_back(name);
  };
  add(caps.ordered_scans, "ordered_scans");
  add(caps.concurrent_readers, "concurrent_readers");
  add(caps.durable, "durable");
  add(caps.transactions, "transactions");
  add(caps.before_images, "before_images");
  add(caps.files, "files");
  return result;
}

void apply_fault_point(const engine_batch& batch) {
  auto data = std::any_of(batch.parts.begin(), batch.parts.end(),
                          [](auto& p) { return p.space == keyspace::data; });
  if (data && STRATA_FAIL_POINT("store.apply"))
    throw storage_error{errc::transaction_aborted, "fault injected at store.apply"};
}

void sync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    auto err = errno;
    if (fd >= 0)
      ::close(fd);
    throw storage_error{errc::transaction_aborted,
                        "cannot sync " + path + ": " + std::strerror(err)};
  }
  ::close(fd);
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

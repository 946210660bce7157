#include "backends/decision_log.hpp"

#include <charconv>
#include <cstdio>

#include "backends/shard_core.hpp"

namespace strata::decision_log {

std::string key(uint64_t txid) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "d/%016llx", static_cast<unsigned long long>(txid));
  return buf;
}

bytes encode(const std::vector<uint32_t>& shards) {
  bytes out;
  for (auto s : shards)
    for (int i = 0; i < 4; ++i)
      out.push_back(static_cast<uint8_t>((s >> (8 * i)) & 0xff));
  return out;
}

std::vector<decision> all(const shard_core& log, size_t* garbled) {
  std::vector<decision> result;
  scan_request req;
  req.prefix = "d/";
  for (;;) {
    auto page = log.scan(req);
    for (auto& e : page.entries) {
      decision d;
      auto first = e.key.data() + 2;
      auto last = e.key.data() + e.key.size();
      auto [end, ec] = std::from_chars(first, last, d.txid, 16);
      if (ec != std::errc{} || end != last || e.value.size() % 4 != 0) {
        if (garbled)
          ++*garbled;
        continue;
      }
      for (size_t pos = 0; pos < e.value.size(); pos += 4) {
        uint32_t s = 0;
        for (int i = 0; i < 4; ++i)
          s |= uint32_t{e.value[pos + i]} << (8 * i);
        d.shards.push_back(s);
      }
      result.push_back(std::move(d));
    }
    if (!page.more || page.entries.empty())
      return result;
    req.after = page.entries.back().key;
  }
}

uint64_t next_incarnation(shard_core& log) {
  uint64_t n = 0;
  if (auto v = log.get("incarnation")) {
    auto first = reinterpret_cast<const char*>(v->data());
    auto last = first + v->size();
    auto [end, ec] = std::from_chars(first, last, n);
    if (ec != std::errc{} || end != last)
      throw storage_error{errc::consistency_violation,
                          log.options().dir + ": the stored incarnation is corrupt"};
  }
  ++n;
  auto text = std::to_string(n);
  std::vector<operation> ops{
    operation::set("incarnation", bytes(text.begin(), text.end()))};
  auto out = log.write(write_group{&ops}).at(0);
  if (out.code != errc::none)
    throw storage_error{out.code, out.message};
  return n;
}

} // namespace strata::decision_log

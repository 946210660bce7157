#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "strata/messages/kv.hpp"

namespace strata {

/// Merges per-shard pages into one page of at most `limit` entries in key
/// order. A shard that has more keys bounds the page: keys after its last one
/// may be missing from its page, so the merged page stops there.
inline scan_page merge_pages(std::vector<scan_page>& pages, uint32_t limit) {
  limit = limit == 0 ? limits::default_page_entries
                     : std::min(limit, limits::max_page_entries);
  std::optional<std::string> bound;
  for (auto& p : pages)
    if (p.more && !p.entries.empty() && (!bound || p.entries.back().key < *bound))
      bound = p.entries.back().key;
  scan_page result;
  for (auto& p : pages) {
    result.more = result.more || p.more;
    for (auto& e : p.entries)
      if (!bound || e.key <= *bound)
        result.entries.push_back(std::move(e));
  }
  std::sort(result.entries.begin(), result.entries.end(),
            [](const entry& x, const entry& y) { return x.key < y.key; });
  if (result.entries.size() > limit) {
    result.entries.resize(limit);
    result.more = true;
  }
  return result;
}

} // namespace strata

#pragma once

// Random documents for the query and index tests: few distinct values of
// every kind, so that conditions match often and values collide.

#include <cstdint>
#include <random>

#include "strata/document.hpp"

namespace strata::test {

/// null, a boolean, a small integer, a half-integer real or one of a few
/// strings (some prefixes of others, and the empty one).
inline document random_scalar(std::mt19937& rng) {
  switch (rng() % 6) {
    case 0:
      return document{};
    case 1:
      return document::boolean(rng() % 2 == 0);
    case 2:
      return document::integer(static_cast<int64_t>(rng() % 9) - 4);
    case 3:
      return document::real((static_cast<double>(rng() % 13) - 6) / 2);
    default: {
      static const char* words[] = {"ant", "bee", "bear", "cat", "be", ""};
      return document::string(words[rng() % 6]);
    }
  }
}

} // namespace strata::test

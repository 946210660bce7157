#pragma once

// Random documents for the query and index tests: few distinct values of
// every kind, so that conditions match often and values collide.

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

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

/// Any document: every kind, extreme integers, reals of any bit pattern
/// (NaN and infinities included), strings of any bytes, nested up to 5 deep.
inline document random_document(std::mt19937_64& rng, int depth) {
  auto pick = rng() % (depth < 4 ? 8 : 6);
  switch (pick) {
    case 0:
      return document{};
    case 1:
      return document{rng() % 2 == 0};
    case 2: {
      switch (rng() % 4) {
        case 0:
          return document::integer(std::numeric_limits<int64_t>::min());
        case 1:
          return document::integer(std::numeric_limits<int64_t>::max());
        case 2:
          return document::integer(static_cast<int64_t>(rng() % 300) - 150);
        default:
          return document::integer(static_cast<int64_t>(rng()));
      }
    }
    case 3: {
      if (rng() % 2 == 0) {
        // Any bit pattern, including NaNs, infinities and subnormals.
        auto bits = rng();
        double d;
        std::memcpy(&d, &bits, sizeof(d));
        return document::real(d);
      }
      return document::real(static_cast<double>(rng() % 1000) / 8.0 - 60);
    }
    case 4: {
      std::string str(rng() % 20, '\0');
      for (auto& c : str)
        c = static_cast<char>(rng() % 256);
      return document{std::move(str)};
    }
    case 5: {
      document::bytes_type buf(rng() % 20);
      for (auto& b : buf)
        b = static_cast<uint8_t>(rng() % 256);
      return document::bytes(std::move(buf));
    }
    case 6: {
      auto result = document::array();
      auto n = rng() % 6;
      for (std::size_t i = 0; i < n; ++i)
        result.push_back(random_document(rng, depth + 1));
      return result;
    }
    default: {
      auto result = document::object();
      auto n = rng() % 6;
      for (std::size_t i = 0; i < n; ++i)
        // Few distinct keys, so set() also exercises replacement.
        result.set("k" + std::to_string(rng() % 8),
                   random_document(rng, depth + 1));
      return result;
    }
  }
}

} // namespace strata::test

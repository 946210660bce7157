#pragma once

#include <cstdint>
#include <vector>

// LEB128 varints, written the same way by the document encoding and the
// size prefix of compressed values. Not installed.

namespace strata::detail {

/// Appends `x` in LEB128: 7 bits per byte, low bits first.
inline void put_varint(std::vector<uint8_t>& out, uint64_t x) {
  while (x >= 0x80) {
    out.push_back(static_cast<uint8_t>(x | 0x80));
    x >>= 7;
  }
  out.push_back(static_cast<uint8_t>(x));
}

} // namespace strata::detail

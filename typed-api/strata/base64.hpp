#pragma once

#include <cstdint>
#include <string>
#include <string_view>

/// @file
/// Base64 (RFC 4648, with padding), for bytes inside JSON text.

namespace strata {

/// Appends the base64 form of `xs` to `out`.
inline void append_base64(std::string& out, std::string_view xs) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto at = [&](size_t i) { return uint32_t{static_cast<uint8_t>(xs[i])}; };
  size_t i = 0;
  for (; i + 3 <= xs.size(); i += 3) {
    auto n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int shift : {18, 12, 6, 0})
      out += alphabet[(n >> shift) & 0x3f];
  }
  auto rest = xs.size() - i;
  if (rest == 0)
    return;
  auto n = (at(i) << 16) | (rest == 2 ? at(i + 1) << 8 : 0);
  out += alphabet[(n >> 18) & 0x3f];
  out += alphabet[(n >> 12) & 0x3f];
  out += rest == 2 ? alphabet[(n >> 6) & 0x3f] : '=';
  out += '=';
}

/// Decodes base64 text (padding required, no whitespace) into `out`; false
/// if `text` is not base64.
inline bool decode_base64(std::string_view text, std::string& out) {
  auto value = [](char ch) -> int {
    if (ch >= 'A' && ch <= 'Z')
      return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
      return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
      return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
  };
  if (text.size() % 4 != 0)
    return false;
  out.reserve(out.size() + text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    auto last = i + 4 == text.size();
    auto pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    if (pad == 1 && text[i + 2] == '=')
      return false; // "x=y=" is not padding
    uint32_t n = 0;
    for (size_t k = 0; k < 4; ++k) {
      auto v = k >= 4 - static_cast<size_t>(pad) ? 0 : value(text[i + k]);
      if (v < 0)
        return false;
      n = (n << 6) | static_cast<uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2)
      out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1)
      out += static_cast<char>(n & 0xff);
  }
  return true;
}

} // namespace strata

#include "backends/index_key.hpp"

#include <cmath>
#include <cstring>

namespace strata::index_key {

namespace {

void put_u64(std::string& out, uint64_t x) {
  for (int i = 7; i >= 0; --i)
    out.push_back(static_cast<char>((x >> (i * 8)) & 0xff));
}

/// A double as an unsigned integer in the same order.
uint64_t ordered_bits(double d) {
  if (std::isnan(d))
    return 0; // below every other number
  if (d == 0)
    d = 0; // -0.0 and 0.0 are the same number
  uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof bits);
  return (bits & 0x8000000000000000ull) ? ~bits : bits | 0x8000000000000000ull;
}

void put_number(std::string& out, const document& x) {
  out.push_back(static_cast<char>(number_tag));
  if (x.is_real()) {
    put_u64(out, ordered_bits(x.as_real()));
    put_u64(out, 0x8000000000000000ull); // distance 0
    return;
  }
  auto i = x.as_int();
  auto d = static_cast<double>(i); // nearest double; within half an ulp of i
  // The exact distance i - d: long double holds every int64 exactly.
  auto diff = static_cast<int64_t>(static_cast<long double>(i) - static_cast<long double>(d));
  put_u64(out, ordered_bits(d));
  put_u64(out, static_cast<uint64_t>(diff) ^ 0x8000000000000000ull);
}

void put_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    out.push_back(c);
    if (c == '\0')
      out.push_back('\xff');
  }
  out.push_back('\0');
  out.push_back('\x01');
}

} // namespace

void append(std::string& out, const document& x) {
  switch (x.kind()) {
    case doc_kind::null:
      out.push_back('\x10');
      return;
    case doc_kind::boolean:
      out.push_back(x.as_bool() ? '\x21' : '\x20');
      return;
    case doc_kind::integer:
    case doc_kind::real:
      put_number(out, x);
      return;
    case doc_kind::string:
      out.push_back('\x40');
      put_escaped(out, x.as_string());
      return;
    case doc_kind::bytes: {
      out.push_back('\x50');
      auto& b = x.as_bytes();
      put_escaped(out, {reinterpret_cast<const char*>(b.data()), b.size()});
      return;
    }
    case doc_kind::array:
      out.push_back('\x60');
      for (auto& e : x.as_array())
        append(out, e);
      out.push_back('\0');
      return;
    case doc_kind::object:
      out.push_back('\x70');
      for (auto& [k, v] : x.as_object()) {
        put_escaped(out, k);
        append(out, v);
      }
      out.push_back('\0');
      return;
  }
}

void append_descending(std::string& out, const document& x) {
  auto start = out.size();
  append(out, x);
  for (auto i = start; i < out.size(); ++i)
    out[i] = static_cast<char>(~static_cast<uint8_t>(out[i]));
}

std::pair<uint8_t, uint8_t> kind_range(const document& x) {
  switch (x.kind()) {
    case doc_kind::null:
      return {0x10, 0x11};
    case doc_kind::boolean:
      return {0x20, 0x22};
    case doc_kind::integer:
    case doc_kind::real:
      return {0x30, 0x31};
    case doc_kind::string:
      return {0x40, 0x41};
    case doc_kind::bytes:
      return {0x50, 0x51};
    case doc_kind::array:
      return {0x60, 0x61};
    case doc_kind::object:
      return {0x70, 0x71};
  }
  return {0, 0xff};
}

uint64_t hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

} // namespace strata::index_key

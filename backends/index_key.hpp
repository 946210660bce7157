#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/document.hpp"

/// @file
/// The order-preserving byte encoding of documents that index keys are made
/// of: for any documents x and y, `encode(x) < encode(y)` bytewise exactly
/// when `compare(x, y) < 0` (backends/query.hpp), and the encodings are equal
/// exactly when compare says equal (so 1 and 1.0 encode alike). Encodings are
/// self-delimiting: one may follow another.
///
///   null 0x10 · false 0x20 · true 0x21
///   number 0x30, then the value as an order-preserving double (NaN lowest,
///     -0.0 as 0.0) and the signed distance of an integer from that double
///     (0 for reals), so that integers beyond 2^53 stay exact
///   string 0x40 / bytes 0x50, then the bytes with 0x00 escaped as 0x00 0xff,
///     ended by 0x00 0x01
///   array 0x60, the elements, then 0x00 · object 0x70, per member the key
///     (escaped as a string) and the value, then 0x00

namespace strata::index_key {

/// Appends the encoding of `x` to `out`.
void append(std::string& out, const document& x);

/// Appends the encoding of `x` with every byte inverted: descending order.
void append_descending(std::string& out, const document& x);

/// The first byte of every number's encoding, and the one after it: the
/// bounds of the numbers (likewise for other kinds, see kind_range).
constexpr uint8_t number_tag = 0x30;

/// The first byte of the encodings of `x`'s kind, and the first byte past
/// them, so that a range over one kind can be bounded.
std::pair<uint8_t, uint8_t> kind_range(const document& x);

/// 64-bit FNV-1a of `bytes`, for hash indexes.
uint64_t hash(std::string_view bytes);

} // namespace strata::index_key

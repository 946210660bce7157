#pragma once

#include <cstddef>

#include <rapidjson/document.h>

#include "strata/document.hpp"

// rapidjson values as documents, shared by the json serialization format and
// the parsers of query patterns. Not installed.

namespace strata::detail {

/// `v` as a document: integers that fit int64 as integers, other numbers as
/// reals. `exact` reads what `to_json` writes back to the same document:
/// {"$bytes": base64} as bytes, and a repeated member is refused; otherwise
/// the last of repeated members wins.
/// @throws codec_error if `v` nests deeper than max_nesting_depth, or (exact)
///         holds bad base64 or a repeated member.
document json_to_document(const rapidjson::Value& v, bool exact, std::size_t depth = 0);

} // namespace strata::detail

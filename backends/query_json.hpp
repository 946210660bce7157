#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "backends/query.hpp"

/// The pieces of the JSON text form of queries, for the parsers of query
/// patterns and aggregation pipelines. Each throws query_error naming the
/// place (`where`) of what is wrong.
namespace strata::query_json {

/// Parses `json` into `d` (iteratively: deep nesting cannot exhaust the stack).
void parse_text(rapidjson::Document& d, std::string_view json);

/// The member `name` of an object, or null.
const rapidjson::Value* member(const rapidjson::Value& obj, const char* name);

std::string text_of(const rapidjson::Value& v, const std::string& where, const char* what);

uint64_t count_of(const rapidjson::Value& v, const std::string& where);

document to_document(const rapidjson::Value& v, size_t depth, const std::string& where);

where_clause parse_where(const rapidjson::Value& v, const std::string& where, size_t depth);

/// `[{"field": …, "direction": "asc"|"desc"}, …]`
std::vector<order_key> parse_order(const rapidjson::Value& v, const std::string& where);

/// `["field.path", …]`
std::vector<field_path> parse_select(const rapidjson::Value& v, const std::string& where);

} // namespace strata::query_json

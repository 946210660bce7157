#include "backends/query_json.hpp"

#include <algorithm>

#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "typed-api/json_value.hpp"

namespace strata::query_json {

document to_document(const rapidjson::Value& v, size_t depth, const std::string& where) {
  try {
    return detail::json_to_document(v, false, depth);
  } catch (const codec_error& e) {
    throw query_error{where + ": " + e.what()};
  }
}

void parse_text(rapidjson::Document& d, std::string_view json) {
  // Iterative: a deeply nested text cannot exhaust the stack; the depth
  // checks below then refuse it.
  // Full precision: a number in a query must equal the stored double exactly.
  d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag>(json.data(),
                                                                              json.size());
  if (d.HasParseError())
    throw query_error{std::string{"not JSON at offset "} + std::to_string(d.GetErrorOffset())
                      + ": " + rapidjson::GetParseError_En(d.GetParseError())};
}

const rapidjson::Value* member(const rapidjson::Value& obj, const char* name) {
  auto m = obj.FindMember(name);
  return m == obj.MemberEnd() ? nullptr : &m->value;
}

std::string text_of(const rapidjson::Value& v, const std::string& where, const char* what) {
  if (!v.IsString())
    throw query_error{where + ": " + what + " must be a string"};
  return std::string{v.GetString(), v.GetStringLength()};
}

where_clause parse_where(const rapidjson::Value& v, const std::string& where, size_t depth) {
  if (depth > max_nesting_depth)
    throw query_error{where + ": nested too deeply"};
  if (!v.IsObject())
    throw query_error{where + ": a where clause must be an object"};
  for (auto& m : v.GetObject()) {
    std::string_view name{m.name.GetString(), m.name.GetStringLength()};
    if (name != "field" && name != "operator" && name != "value" && name != "conditions"
        && name != "nested")
      throw query_error{where + ": unknown member '" + std::string{name} + "'"};
  }
  auto field = member(v, "field");
  auto op = member(v, "operator");
  if (auto nested = member(v, "nested")) {
    if (field == nullptr)
      throw query_error{where + ": a nested clause needs a field"};
    where_clause c;
    c.kind = where_clause::type::nested;
    c.path = field_path::parse(text_of(*field, where + ".field", "field"), where + ".field");
    c.children.push_back(parse_where(*nested, where + ".nested", depth + 1));
    return c;
  }
  if (op == nullptr)
    throw query_error{where + ": missing operator"};
  auto name = text_of(*op, where + ".operator", "operator");
  if (name == "and" || name == "or" || name == "not") {
    auto list = member(v, "conditions");
    if (list == nullptr || !list->IsArray())
      throw query_error{where + ": operator " + name + " needs an array of conditions"};
    if (name == "not" ? list->Size() != 1 : list->Empty())
      throw query_error{where + ": operator " + name
                        + (name == "not" ? " takes exactly one condition"
                                         : " needs at least one condition")};
    where_clause c;
    c.kind = name == "and"  ? where_clause::type::all
             : name == "or" ? where_clause::type::any
                            : where_clause::type::negate;
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i)
      c.children.push_back(parse_where((*list)[i],
                                       where + ".conditions[" + std::to_string(i) + "]",
                                       depth + 1));
    return c;
  }
  static const std::pair<const char*, compare_op> ops[] = {
    {"eq", compare_op::eq},   {"ne", compare_op::ne},   {"gt", compare_op::gt},
    {"gte", compare_op::gte}, {"lt", compare_op::lt},   {"lte", compare_op::lte},
    {"in", compare_op::in},   {"nin", compare_op::nin}, {"regex", compare_op::regex},
    {"exists", compare_op::exists}, {"text", compare_op::text},
    {"within_box", compare_op::within_box}, {"within_radius", compare_op::within_radius},
    {"near", compare_op::near}};
  auto i = std::find_if(std::begin(ops), std::end(ops),
                        [&](auto& x) { return name == x.first; });
  if (i == std::end(ops))
    throw query_error{where + ".operator: unknown operator '" + name + "'"};
  if (field == nullptr)
    throw query_error{where + ": operator " + name + " needs a field"};
  auto value = member(v, "value");
  if (value == nullptr)
    throw query_error{where + ": operator " + name + " needs a value"};
  auto path = field_path::parse(text_of(*field, where + ".field", "field"), where + ".field");
  return make_condition(std::move(path), i->second,
                        to_document(*value, 0, where + ".value"), where);
}

uint64_t count_of(const rapidjson::Value& v, const std::string& where) {
  if (!v.IsUint64())
    throw query_error{where + " must be a non-negative integer"};
  return v.GetUint64();
}

std::vector<order_key> parse_order(const rapidjson::Value& v, const std::string& where) {
  if (!v.IsArray())
    throw query_error{where + " must be an array"};
  std::vector<order_key> result;
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    auto at = where + "[" + std::to_string(i) + "]";
    if (!v[i].IsObject() || member(v[i], "field") == nullptr)
      throw query_error{at + ": needs a field"};
    order_key k;
    k.path = field_path::parse(text_of(*member(v[i], "field"), at + ".field", "field"),
                               at + ".field");
    if (auto dir = member(v[i], "direction")) {
      auto text = text_of(*dir, at + ".direction", "direction");
      if (text != "asc" && text != "desc")
        throw query_error{at + ".direction: must be asc or desc, got '" + text + "'"};
      k.descending = text == "desc";
    }
    k.score = k.path.steps.size() == 1 && k.path.steps[0] == "$score";
    result.push_back(std::move(k));
  }
  return result;
}

std::vector<field_path> parse_select(const rapidjson::Value& v, const std::string& where) {
  if (!v.IsArray())
    throw query_error{where + " must be an array of field paths"};
  std::vector<field_path> result;
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    auto at = where + "[" + std::to_string(i) + "]";
    result.push_back(field_path::parse(text_of(v[i], at, "a field path"), at));
  }
  return result;
}

} // namespace strata::query_json

namespace strata {

using namespace query_json;

document parse_json_document(std::string_view json) {
  rapidjson::Document d;
  parse_text(d, json);
  return to_document(d, 0, "value");
}

namespace {

/// query_error unless text and near conditions stand only at the top or in a
/// top-level `and`, one per query: an index must be able to drive the query
/// and its order.
void check_ranking(const where_clause& c, const std::string& at, bool allowed, int& seen) {
  if (c.kind == where_clause::type::condition
      && (c.op == compare_op::text || c.op == compare_op::near)) {
    auto what = std::string{"a "} + to_string(c.op) + " condition";
    if (!allowed)
      throw query_error{at + ": " + what
                        + " stands at the top of where or in a top-level and, not under or, "
                          "not or nested"};
    if (++seen > 1)
      throw query_error{at + ": one text or near condition per query"};
  }
  for (size_t i = 0; i < c.children.size(); ++i)
    check_ranking(c.children[i],
               at + (c.kind == where_clause::type::nested ? ".nested"
                                                           : ".conditions[" + std::to_string(i)
                                                               + "]"),
               allowed && at == "where" && c.kind == where_clause::type::all, seen);
}

} // namespace

std::string with_hint(std::string_view json, const std::string& index) {
  rapidjson::Document d;
  parse_text(d, json);
  if (!d.IsObject())
    throw query_error{"a query must be a JSON object"};
  if (auto* h = member(d, "hint")) {
    if (!h->IsString() || std::string_view{h->GetString(), h->GetStringLength()} != index)
      throw query_error{"hint: index " + index + " answers only through itself"};
    return std::string{json};
  }
  d.AddMember("hint", rapidjson::Value{index.c_str(), d.GetAllocator()}, d.GetAllocator());
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w{out};
  d.Accept(w);
  return {out.GetString(), out.GetSize()};
}

query_pattern parse_query(std::string_view json) {
  rapidjson::Document d;
  parse_text(d, json);
  if (!d.IsObject())
    throw query_error{"a query must be a JSON object"};
  query_pattern q;
  for (auto& m : d.GetObject()) {
    std::string name{m.name.GetString(), m.name.GetStringLength()};
    auto& v = m.value;
    if (name == "where") {
      q.where = parse_where(v, "where", 0);
    } else if (name == "orderBy") {
      q.order_by = parse_order(v, "orderBy");
    } else if (name == "limit") {
      q.limit = count_of(v, "limit");
    } else if (name == "offset") {
      q.offset = count_of(v, "offset");
    } else if (name == "select") {
      q.select = parse_select(v, "select");
    } else if (name == "hint") {
      if (!v.IsString() || v.GetStringLength() == 0)
        throw query_error{"hint: expected the name of an index"};
      q.hint.assign(v.GetString(), v.GetStringLength());
    } else {
      throw query_error{"unknown member '" + name
                        + "' (known: where, orderBy, limit, offset, select, hint)"};
    }
  }
  if (q.where) {
    int seen = 0;
    check_ranking(*q.where, "where", true, seen);
    if (seen > 0 && q.order_by.empty()) {
      order_key k;
      k.path = field_path::parse("$score", "orderBy");
      k.descending = !q.near(); // relevance: best first; distance: nearest first
      k.score = true;
      q.order_by.push_back(std::move(k));
    }
  }
  return q;
}

} // namespace strata

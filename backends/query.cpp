#include "backends/query.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <re2/re2.h>

#include "backends/text.hpp"

namespace strata {

namespace {

/// The rank of a kind in the total order; integers and reals share one.
int rank(doc_kind k) {
  switch (k) {
    case doc_kind::null:
      return 0;
    case doc_kind::boolean:
      return 1;
    case doc_kind::integer:
    case doc_kind::real:
      return 2;
    case doc_kind::string:
      return 3;
    case doc_kind::bytes:
      return 4;
    case doc_kind::array:
      return 5;
    case doc_kind::object:
      return 6;
  }
  return 7;
}

template <class T>
int three_way(const T& x, const T& y) {
  return x < y ? -1 : (y < x ? 1 : 0);
}

/// An integer against a real, exactly (no rounding of large integers).
int compare_int_real(int64_t i, double r) {
  if (std::isnan(r))
    return 1; // NaN is below every number
  // Every int64 lies in [-2^63, 2^63); reals outside decide at once.
  if (r >= 9223372036854775808.0)
    return -1;
  if (r < -9223372036854775808.0)
    return 1;
  auto t = std::trunc(r);
  auto ti = static_cast<int64_t>(t);
  if (i != ti)
    return i < ti ? -1 : 1;
  // Same integral part: the fraction decides.
  return r > t ? -1 : (r < t ? 1 : 0);
}

int compare_numbers(const document& x, const document& y) {
  if (x.is_int() && y.is_int())
    return three_way(x.as_int(), y.as_int());
  if (x.is_int())
    return compare_int_real(x.as_int(), y.as_real());
  if (y.is_int())
    return -compare_int_real(y.as_int(), x.as_real());
  auto a = x.as_real();
  auto b = y.as_real();
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) ? (std::isnan(b) ? 0 : -1) : 1;
  return three_way(a, b);
}

bool is_index(const std::string& step, size_t& i) {
  if (step.empty() || step.size() > 9)
    return false;
  i = 0;
  for (auto c : step) {
    if (c < '0' || c > '9')
      return false;
    i = i * 10 + static_cast<size_t>(c - '0');
  }
  return true;
}

/// Whether `value` satisfies `op` against `operand` (one candidate value).
bool test(const where_clause& c, const document& value) {
  switch (c.op) {
    case compare_op::eq:
    case compare_op::ne:
      return compare(value, c.value) == 0;
    case compare_op::gt:
    case compare_op::gte:
    case compare_op::lt:
    case compare_op::lte: {
      // Ranges stay within a kind: "year > 1970" never matches a string.
      if (rank(value.kind()) != rank(c.value.kind()))
        return false;
      auto r = compare(value, c.value);
      return c.op == compare_op::gt    ? r > 0
             : c.op == compare_op::gte ? r >= 0
             : c.op == compare_op::lt  ? r < 0
                                       : r <= 0;
    }
    case compare_op::in:
    case compare_op::nin:
      return std::any_of(c.value.as_array().begin(), c.value.as_array().end(),
                         [&](const document& x) { return compare(value, x) == 0; });
    case compare_op::regex:
      return value.is_string() && RE2::PartialMatch(value.as_string(), *c.regex);
    case compare_op::exists:
      return true;
    case compare_op::text:
    case compare_op::within_box:
    case compare_op::within_radius:
    case compare_op::near:
      return false; // matched as a whole (where_clause::matches)
  }
  return false;
}

} // namespace

int compare(const document& x, const document& y) {
  auto rx = rank(x.kind());
  auto ry = rank(y.kind());
  if (rx != ry)
    return rx < ry ? -1 : 1;
  switch (x.kind()) {
    case doc_kind::null:
      return 0;
    case doc_kind::boolean:
      return three_way(x.as_bool(), y.as_bool());
    case doc_kind::integer:
    case doc_kind::real:
      return compare_numbers(x, y);
    case doc_kind::string: {
      auto r = x.as_string().compare(y.as_string());
      return r < 0 ? -1 : (r > 0 ? 1 : 0);
    }
    case doc_kind::bytes:
      return three_way(x.as_bytes(), y.as_bytes());
    case doc_kind::array: {
      auto& a = x.as_array();
      auto& b = y.as_array();
      for (size_t i = 0; i < a.size() && i < b.size(); ++i)
        if (auto r = compare(a[i], b[i]); r != 0)
          return r;
      return three_way(a.size(), b.size());
    }
    case doc_kind::object: {
      auto& a = x.as_object();
      auto& b = y.as_object();
      for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        if (auto r = a[i].first.compare(b[i].first); r != 0)
          return r < 0 ? -1 : 1;
        if (auto r = compare(a[i].second, b[i].second); r != 0)
          return r;
      }
      return three_way(a.size(), b.size());
    }
  }
  return 0;
}

field_path field_path::parse(std::string_view text, std::string_view where) {
  field_path p;
  if (text.empty())
    throw query_error{std::string{where} + ": the field path is empty"};
  size_t start = 0;
  for (;;) {
    auto dot = text.find('.', start);
    auto step = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (step.empty())
      throw query_error{std::string{where} + ": the field path '" + std::string{text}
                        + "' has an empty step"};
    p.steps.emplace_back(step);
    if (dot == std::string_view::npos)
      return p;
    start = dot + 1;
  }
}

std::string field_path::str() const {
  std::string out;
  for (auto& s : steps) {
    if (!out.empty())
      out += '.';
    out += s;
  }
  return out;
}

bool visit_path(const document& doc, const field_path& path, size_t step,
                const std::function<bool(const document&)>& f) {
  if (step == path.steps.size()) {
    if (!f(doc))
      return false;
    if (doc.is_array())
      for (auto& x : doc.as_array())
        if (!f(x))
          return false;
    return true;
  }
  auto& name = path.steps[step];
  if (doc.is_object()) {
    if (auto next = doc.get(name))
      return visit_path(*next, path, step + 1, f);
    return true;
  }
  if (doc.is_array()) {
    size_t i = 0;
    if (is_index(name, i) && i < doc.as_array().size()
        && !visit_path(doc.as_array()[i], path, step + 1, f))
      return false;
    for (auto& x : doc.as_array())
      if (x.is_object() && !visit_path(x, path, step, f))
        return false;
  }
  return true;
}

const document* first_at(const document& doc, const field_path& path) {
  const document* found = nullptr;
  visit_path(doc, path, 0, [&](const document& x) {
    found = &x;
    return false;
  });
  return found;
}

const char* to_string(compare_op op) {
  static const char* names[] = {"eq", "ne", "gt", "gte", "lt", "lte",
                                "in",        "nin",           "regex", "exists",
                                "text",      "within_box",    "within_radius",
                                "near"};
  return names[static_cast<size_t>(op)];
}

bool where_clause::matches(const document& doc) const {
  switch (kind) {
    case type::all:
      return std::all_of(children.begin(), children.end(),
                         [&](const where_clause& c) { return c.matches(doc); });
    case type::any:
      return std::any_of(children.begin(), children.end(),
                         [&](const where_clause& c) { return c.matches(doc); });
    case type::negate:
      return !children.front().matches(doc);
    case type::nested: {
      bool hit = false;
      visit_path(doc, path, 0, [&](const document& x) {
        hit = children.front().matches(x);
        return !hit;
      });
      return hit;
    }
    case type::condition:
      break;
  }
  if (op == compare_op::within_box || op == compare_op::within_radius
      || op == compare_op::near) {
    auto p = point_at(doc, path);
    if (!p)
      return false;
    if (op == compare_op::within_box)
      return p->first >= geo[0] && p->first <= geo[2] && p->second >= geo[1]
             && p->second <= geo[3];
    if (op == compare_op::within_radius)
      return std::hypot(p->first - geo[0], p->second - geo[1]) <= geo[2];
    return true;
  }
  if (op == compare_op::text) {
    // Every term somewhere in the field's strings.
    std::vector<std::string> words;
    visit_path(doc, path, 0, [&](const document& x) {
      if (x.is_string())
        text::append_terms(x.as_string(), words);
      return true;
    });
    std::sort(words.begin(), words.end());
    return std::includes(words.begin(), words.end(), terms.begin(), terms.end());
  }
  bool hit = false;
  visit_path(doc, path, 0, [&](const document& x) {
    hit = test(*this, x);
    return !hit;
  });
  switch (op) {
    case compare_op::ne:
    case compare_op::nin:
      return !hit; // no value at the path equals the operand
    case compare_op::exists:
      return hit == value.as_bool();
    default:
      return hit;
  }
}

std::optional<std::pair<double, double>> point_at(const document& doc, const field_path& path) {
  auto* v = first_at(doc, path);
  return v ? point_of(*v) : std::nullopt;
}

std::optional<std::pair<double, double>> point_of(const document& v) {
  if (!v.is_array() || v.as_array().size() != 2)
    return std::nullopt;
  auto num = [](const document& d, double& out) {
    if (d.is_int())
      out = static_cast<double>(d.as_int());
    else if (d.is_real())
      out = d.as_real();
    else
      return false;
    return std::isfinite(out);
  };
  std::pair<double, double> p;
  if (!num(v.as_array()[0], p.first) || !num(v.as_array()[1], p.second))
    return std::nullopt;
  return p;
}

const where_clause* query_pattern::ranking(compare_op op) const {
  auto is_op = [op](const where_clause& c) {
    return c.kind == where_clause::type::condition && c.op == op;
  };
  if (!where)
    return nullptr;
  if (is_op(*where))
    return &*where;
  if (where->kind == where_clause::type::all)
    for (auto& c : where->children)
      if (is_op(c))
        return &c;
  return nullptr;
}

int query_pattern::order(const document& x, const document& y) const {
  static const document null_doc;
  for (auto& k : order_by) {
    if (k.score)
      continue; // documents alone have no relevance
    auto a = first_at(x, k.path);
    auto b = first_at(y, k.path);
    auto r = compare(a ? *a : null_doc, b ? *b : null_doc);
    if (r != 0)
      return k.descending ? -r : r;
  }
  return 0;
}

document query_pattern::project(const document& doc) const {
  if (select.empty() || !doc.is_object())
    return doc;
  auto out = document::object();
  for (auto& p : select) {
    // Rebuild the path's objects down to the selected value.
    const document* at = &doc;
    document* into = &out;
    for (size_t i = 0; i < p.steps.size() && at != nullptr; ++i) {
      at = at->is_object() ? at->get(p.steps[i]) : nullptr;
      if (at == nullptr)
        break;
      if (i + 1 == p.steps.size()) {
        into->set(p.steps[i], *at);
      } else {
        auto next = into->get(p.steps[i]);
        if (next == nullptr || !next->is_object())
          next = &into->set(p.steps[i], document::object());
        into = next;
      }
    }
  }
  return out;
}

where_clause make_condition(field_path path, compare_op op, document value,
                            std::string_view where) {
  where_clause c;
  c.kind = where_clause::type::condition;
  c.path = std::move(path);
  c.op = op;
  auto bad = [&](const std::string& what) {
    return query_error{std::string{where} + ": operator " + to_string(op) + " " + what};
  };
  switch (op) {
    case compare_op::in:
    case compare_op::nin:
      if (!value.is_array())
        throw bad(std::string{"needs an array value, got "} + strata::to_string(value.kind()));
      break;
    case compare_op::exists:
      if (!value.is_bool())
        throw bad(std::string{"needs true or false, got "} + strata::to_string(value.kind()));
      break;
    case compare_op::text: {
      if (!value.is_string())
        throw bad(std::string{"needs a string value, got "} + strata::to_string(value.kind()));
      c.terms = text::terms(value.as_string());
      std::sort(c.terms.begin(), c.terms.end());
      c.terms.erase(std::unique(c.terms.begin(), c.terms.end()), c.terms.end());
      if (c.terms.empty())
        throw bad("has no words to search for in '" + value.as_string() + "'");
      break;
    }
    case compare_op::within_box:
    case compare_op::within_radius:
    case compare_op::near: {
      auto pt = [&](const document* d, const char* what) {
        auto p = d ? point_of(*d) : std::nullopt;
        if (!p)
          throw bad(std::string{"needs "} + what + " as [x, y], two finite numbers");
        c.geo.push_back(p->first);
        c.geo.push_back(p->second);
      };
      if (op == compare_op::near) {
        pt(&value, "a point");
      } else if (op == compare_op::within_box) {
        if (!value.is_array() || value.as_array().size() != 2)
          throw bad("needs [[x1, y1], [x2, y2]]");
        pt(&value.as_array()[0], "a corner");
        pt(&value.as_array()[1], "a corner");
        if (c.geo[0] > c.geo[2])
          std::swap(c.geo[0], c.geo[2]);
        if (c.geo[1] > c.geo[3])
          std::swap(c.geo[1], c.geo[3]);
      } else {
        auto* radius = value.is_object() ? value.get("radius") : nullptr;
        pt(value.is_object() ? value.get("center") : nullptr, "a center");
        if (radius == nullptr || !(radius->is_int() || radius->is_real()))
          throw bad("needs {\"center\": [x, y], \"radius\": r}");
        auto r = radius->is_int() ? static_cast<double>(radius->as_int()) : radius->as_real();
        if (!(r >= 0) || !std::isfinite(r))
          throw bad("needs a radius of 0 or more");
        c.geo.push_back(r);
      }
      break;
    }
    case compare_op::regex: {
      if (!value.is_string())
        throw bad(std::string{"needs a string value, got "} + strata::to_string(value.kind()));
      RE2::Options o;
      o.set_log_errors(false);
      auto re = std::make_shared<re2::RE2>(value.as_string(), o);
      if (!re->ok())
        throw bad("cannot compile '" + value.as_string() + "': " + re->error());
      c.regex = std::move(re);
      break;
    }
    default:
      break;
  }
  c.value = std::move(value);
  return c;
}

} // namespace strata

#include "backends/aggregate.hpp"

#include <algorithm>
#include <map>

#include "backends/query_exec.hpp"
#include "backends/query_json.hpp"

namespace strata {

namespace {

using op_type = group_field::op_type;

struct doc_less {
  bool operator()(const document& x, const document& y) const {
    return compare(x, y) < 0;
  }
};

/// Groups by key: the key values (an array) → one state per output field.
using group_map = std::map<document, std::vector<document>, doc_less>;

document add_numbers(const document& x, const document& y) {
  if (x.is_int() && y.is_int()) {
    int64_t r = 0;
    if (!__builtin_add_overflow(x.as_int(), y.as_int(), &r))
      return document::integer(r);
  }
  auto real = [](const document& d) {
    return d.is_int() ? static_cast<double>(d.as_int()) : d.as_real();
  };
  return document::real(real(x) + real(y));
}

bool is_number(const document& d) {
  return d.is_int() || d.is_real();
}

document initial_state(op_type op) {
  switch (op) {
    case op_type::count:
    case op_type::sum:
      return document::integer(0);
    case op_type::avg:
      return document::array({document::integer(0), document::integer(0)});
    case op_type::min:
    case op_type::max:
      return document::array();
  }
  return {};
}

/// Folds one value (or, for count, one document) into a state.
void fold_value(op_type op, document& state, const document* value) {
  switch (op) {
    case op_type::count:
      state = document::integer(state.as_int() + 1);
      return;
    case op_type::sum:
      if (value && is_number(*value))
        state = add_numbers(state, *value);
      return;
    case op_type::avg:
      if (value && is_number(*value)) {
        auto& xs = state.as_array();
        xs[0] = add_numbers(xs[0], *value);
        xs[1] = document::integer(xs[1].as_int() + 1);
      }
      return;
    case op_type::min:
    case op_type::max:
      if (value && !value->is_null()) {
        auto& xs = state.as_array();
        if (xs.empty())
          xs.push_back(*value);
        else if (auto c = compare(*value, xs[0]); op == op_type::min ? c < 0 : c > 0)
          xs[0] = *value;
      }
      return;
  }
}

/// Folds another partial state of the same field into `state`.
void merge_state(op_type op, document& state, const document& other) {
  switch (op) {
    case op_type::count:
    case op_type::sum:
      state = add_numbers(state, other);
      return;
    case op_type::avg: {
      auto& xs = state.as_array();
      auto& ys = other.as_array();
      xs[0] = add_numbers(xs[0], ys[0]);
      xs[1] = document::integer(xs[1].as_int() + ys[1].as_int());
      return;
    }
    case op_type::min:
    case op_type::max:
      if (!other.as_array().empty())
        fold_value(op, state, &other.as_array()[0]);
      return;
  }
}

document final_value(op_type op, const document& state) {
  switch (op) {
    case op_type::count:
    case op_type::sum:
      return state;
    case op_type::avg: {
      auto& xs = state.as_array();
      if (xs[1].as_int() == 0)
        return {};
      auto sum = xs[0].is_int() ? static_cast<double>(xs[0].as_int()) : xs[0].as_real();
      return document::real(sum / static_cast<double>(xs[1].as_int()));
    }
    case op_type::min:
    case op_type::max:
      return state.as_array().empty() ? document{} : state.as_array()[0];
  }
  return {};
}

/// Adds `doc` to its group.
void group_document(const aggregate_stage& g, group_map& groups, const document& doc) {
  auto key = document::array();
  for (auto& path : g.by) {
    auto* v = first_at(doc, path);
    key.push_back(v ? *v : document{});
  }
  auto i = groups.find(key);
  if (i == groups.end()) {
    if (groups.size() >= max_aggregate_rows)
      throw result_too_large{"the group stage makes more than "
                             + std::to_string(max_aggregate_rows) + " groups"};
    std::vector<document> states;
    for (auto& f : g.fields)
      states.push_back(initial_state(f.op));
    i = groups.emplace(std::move(key), std::move(states)).first;
  }
  for (size_t j = 0; j < g.fields.size(); ++j) {
    auto& f = g.fields[j];
    fold_value(f.op, i->second[j], f.op == op_type::count ? nullptr : first_at(doc, f.path));
  }
}

/// The groups as result documents: the key fields, then the outputs.
std::vector<document> finish_groups(const aggregate_stage& g, group_map& groups) {
  std::vector<document> result;
  result.reserve(groups.size());
  for (auto& [key, states] : groups) {
    auto out = document::object();
    for (size_t j = 0; j < g.by.size(); ++j)
      out.set(g.by[j].str(), key.as_array()[j]);
    for (size_t j = 0; j < g.fields.size(); ++j)
      out.set(g.fields[j].name, final_value(g.fields[j].op, states[j]));
    result.push_back(std::move(out));
  }
  return result;
}

/// Runs one stage over whole documents (the store's half).
void run_stage(const aggregate_stage& s, std::vector<document>& docs) {
  switch (s.kind) {
    case aggregate_stage::type::match: {
      auto end = std::remove_if(docs.begin(), docs.end(),
                                [&](const document& d) { return !s.where.matches(d); });
      docs.erase(end, docs.end());
      return;
    }
    case aggregate_stage::type::group: {
      group_map groups;
      for (auto& d : docs)
        group_document(s, groups, d);
      docs = finish_groups(s, groups);
      return;
    }
    case aggregate_stage::type::sort: {
      query_pattern q;
      q.order_by = s.order;
      std::stable_sort(docs.begin(), docs.end(), [&](const document& x, const document& y) {
        return q.order(x, y) < 0;
      });
      return;
    }
    case aggregate_stage::type::skip:
      docs.erase(docs.begin(), docs.begin() + static_cast<ptrdiff_t>(
                                 std::min<uint64_t>(s.count, docs.size())));
      return;
    case aggregate_stage::type::limit:
      if (docs.size() > s.count)
        docs.resize(s.count);
      return;
    case aggregate_stage::type::project: {
      query_pattern q;
      q.select = s.select;
      for (auto& d : docs)
        d = q.project(d);
      return;
    }
  }
}

using namespace query_json;

aggregate_stage parse_group(const rapidjson::Value& v, const std::string& at) {
  if (!v.IsObject())
    throw query_error{at + ": must be an object with by and fields"};
  aggregate_stage s;
  s.kind = aggregate_stage::type::group;
  for (auto& m : v.GetObject()) {
    std::string name{m.name.GetString(), m.name.GetStringLength()};
    if (name == "by") {
      s.by = parse_select(m.value, at + ".by");
    } else if (name == "fields") {
      if (!m.value.IsObject())
        throw query_error{at + ".fields: must be an object of output name -> {op: field}"};
      for (auto& out : m.value.GetObject()) {
        std::string out_name{out.name.GetString(), out.name.GetStringLength()};
        auto where = at + ".fields." + out_name;
        if (!out.value.IsObject() || out.value.MemberCount() != 1)
          throw query_error{where + ": must be one {op: field} with op count, sum, avg, "
                                    "min or max"};
        auto& acc = *out.value.MemberBegin();
        std::string op{acc.name.GetString(), acc.name.GetStringLength()};
        static const std::pair<const char*, op_type> ops[] = {{"count", op_type::count},
                                                              {"sum", op_type::sum},
                                                              {"avg", op_type::avg},
                                                              {"min", op_type::min},
                                                              {"max", op_type::max}};
        auto i = std::find_if(std::begin(ops), std::end(ops),
                              [&](auto& x) { return op == x.first; });
        if (i == std::end(ops))
          throw query_error{where + ": unknown accumulator '" + op
                            + "' (known: count, sum, avg, min, max)"};
        group_field f;
        f.name = out_name;
        f.op = i->second;
        if (f.op != op_type::count)
          f.path = field_path::parse(text_of(acc.value, where + "." + op, "a field path"),
                                     where + "." + op);
        if (std::any_of(s.fields.begin(), s.fields.end(),
                        [&](const group_field& x) { return x.name == f.name; }))
          throw query_error{where + ": output name used twice"};
        s.fields.push_back(std::move(f));
      }
    } else {
      throw query_error{at + ": unknown member '" + name + "' (known: by, fields)"};
    }
  }
  return s;
}

} // namespace

aggregate_pipeline parse_pipeline(std::string_view json) {
  rapidjson::Document d;
  parse_text(d, json);
  if (!d.IsArray())
    throw query_error{"a pipeline must be a JSON array of stages"};
  aggregate_pipeline p;
  for (rapidjson::SizeType i = 0; i < d.Size(); ++i) {
    auto at = "pipeline[" + std::to_string(i) + "]";
    auto& v = d[i];
    if (!v.IsObject() || v.MemberCount() != 1)
      throw query_error{at + ": a stage is an object with exactly one member (match, group, "
                             "sort, skip, limit or project)"};
    auto& m = *v.MemberBegin();
    std::string name{m.name.GetString(), m.name.GetStringLength()};
    auto where = at + "." + name;
    aggregate_stage s;
    if (name == "match") {
      s.kind = aggregate_stage::type::match;
      s.where = parse_where(m.value, where, 0);
    } else if (name == "group") {
      s = parse_group(m.value, where);
    } else if (name == "sort") {
      s.kind = aggregate_stage::type::sort;
      s.order = parse_order(m.value, where);
    } else if (name == "skip" || name == "limit") {
      s.kind = name == "skip" ? aggregate_stage::type::skip : aggregate_stage::type::limit;
      s.count = count_of(m.value, where);
    } else if (name == "project") {
      s.kind = aggregate_stage::type::project;
      s.select = parse_select(m.value, where);
    } else {
      throw query_error{at + ": unknown stage '" + name
                        + "' (known: match, group, sort, skip, limit, project)"};
    }
    p.stages.push_back(std::move(s));
  }
  while (p.shard_stages < p.stages.size()
         && p.stages[p.shard_stages].kind == aggregate_stage::type::match)
    ++p.shard_stages;
  if (p.shard_stages < p.stages.size()
      && p.stages[p.shard_stages].kind == aggregate_stage::type::group)
    ++p.shard_stages;
  return p;
}

document aggregate_partial(const engine_snapshot& snap, const aggregate_pipeline& p) {
  auto matches = [&](const document& doc) {
    for (size_t i = 0; i < p.shard_stages; ++i)
      if (p.stages[i].kind == aggregate_stage::type::match && !p.stages[i].where.matches(doc))
        return false;
    return true;
  };
  document doc;
  auto result = document::array();
  if (p.shards_group()) {
    auto& g = p.stages[p.shard_stages - 1];
    group_map groups;
    snap.scan(keyspace::data, {}, false, [&](std::string_view, std::string_view v) {
      if (stored_document(v, doc) && matches(doc))
        group_document(g, groups, doc);
      return true;
    });
    for (auto& [key, states] : groups)
      result.push_back(document::array({key, document::array(states)}));
    return result;
  }
  snap.scan(keyspace::data, {}, false, [&](std::string_view, std::string_view v) {
    if (stored_document(v, doc) && matches(doc)) {
      if (result.as_array().size() >= max_aggregate_rows)
        throw result_too_large{"the pipeline hands more than "
                               + std::to_string(max_aggregate_rows)
                               + " documents to its later stages; group or match first"};
      result.push_back(std::move(doc));
    }
    return true;
  });
  return result;
}

document aggregate_finish(const aggregate_pipeline& p, std::vector<document> partials) {
  std::vector<document> docs;
  auto bad = [] { return query_error{"a shard's partial aggregate does not fit the pipeline"}; };
  if (p.shards_group()) {
    auto& g = p.stages[p.shard_stages - 1];
    group_map groups;
    for (auto& part : partials) {
      if (!part.is_array())
        throw bad();
      for (auto& entry : part.as_array()) {
        if (!entry.is_array() || entry.as_array().size() != 2
            || !entry.as_array()[0].is_array() || !entry.as_array()[1].is_array()
            || entry.as_array()[1].as_array().size() != g.fields.size())
          throw bad();
        auto& key = entry.as_array()[0];
        auto& states = entry.as_array()[1].as_array();
        auto i = groups.find(key);
        if (i == groups.end()) {
          if (groups.size() >= max_aggregate_rows)
            throw result_too_large{"the group stage makes more than "
                                   + std::to_string(max_aggregate_rows) + " groups"};
          groups.emplace(key, states);
          continue;
        }
        for (size_t j = 0; j < g.fields.size(); ++j)
          merge_state(g.fields[j].op, i->second[j], states[j]);
      }
    }
    docs = finish_groups(g, groups);
  } else {
    for (auto& part : partials) {
      if (!part.is_array())
        throw bad();
      for (auto& d : part.as_array()) {
        if (docs.size() >= max_aggregate_rows)
          throw result_too_large{"the pipeline hands more than "
                                 + std::to_string(max_aggregate_rows)
                                 + " documents to its later stages; group or match first"};
        docs.push_back(std::move(d));
      }
    }
  }
  for (size_t i = p.shard_stages; i < p.stages.size(); ++i)
    run_stage(p.stages[i], docs);
  return document::array(std::move(docs));
}

} // namespace strata

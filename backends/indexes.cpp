#include "backends/indexes.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_set>

#include "backends/fault.hpp"
#include "backends/index_key.hpp"
#include "backends/spatial_index.hpp"
#include "backends/text_index.hpp"
#include "strata/envelope.hpp"

namespace strata {

namespace {

constexpr std::string_view meta_prefix = "index:";
/// Most entries one document may have in one index (array fields multiply).
constexpr size_t max_entries_per_document = 1000;

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
         || c == '_' || c == '-' || c == '.';
}

std::string entry_prefix(const std::string& name) {
  std::string p = name;
  p.push_back('\0');
  return p;
}

/// The smallest string greater than every string starting with `p`.
std::string successor(std::string p) {
  while (!p.empty() && static_cast<uint8_t>(p.back()) == 0xff)
    p.pop_back();
  if (p.empty())
    return std::string(1, '\xff') + std::string(600, '\xff'); // past every key
  p.back() = static_cast<char>(static_cast<uint8_t>(p.back()) + 1);
  return p;
}

std::string_view key_of_entry(std::string_view entry) {
  if (entry.size() < 2)
    return {};
  auto n = (static_cast<size_t>(static_cast<uint8_t>(entry[entry.size() - 2])) << 8)
           | static_cast<uint8_t>(entry[entry.size() - 1]);
  if (n + 2 > entry.size())
    return {};
  return entry.substr(entry.size() - 2 - n, n);
}

bool is_hash(const index_def& d) {
  return d.spec.fields.front().type == "hash";
}

bool is_text(const index_def& d) {
  return d.spec.fields.front().type == "fulltext";
}

bool is_spatial(const index_def& d) {
  return d.spec.fields.front().type == "spatial";
}

using index_entry = text_index::entry;

/// An entry's suffix: the document's key and its length.
std::string key_suffix(std::string_view pk) {
  std::string s{pk};
  s.push_back(static_cast<char>((pk.size() >> 8) & 0xff));
  s.push_back(static_cast<char>(pk.size() & 0xff));
  return s;
}

index_entry* find_entry(std::vector<index_entry>& es, const std::string& key) {
  auto i = std::lower_bound(es.begin(), es.end(), key,
                            [](const index_entry& e, const std::string& k) { return e.key < k; });
  return i != es.end() && i->key == key ? &*i : nullptr;
}

// -- definitions as stored --------------------------------------------------------

bytes encode_def(const index_def& d) {
  auto fields = document::array();
  for (auto& f : d.spec.fields) {
    auto x = document::object();
    x.set("name", document{f.name});
    x.set("type", document{f.type});
    x.set("descending", document::boolean(f.descending));
    fields.push_back(std::move(x));
  }
  auto doc = document::object();
  doc.set("name", document{d.spec.name});
  doc.set("fields", std::move(fields));
  doc.set("unique", document::boolean(d.spec.unique));
  doc.set("sparse", document::boolean(d.spec.sparse));
  doc.set("state", document{d.state});
  doc.set("cursor", document{d.cursor});
  doc.set("built", document::integer(static_cast<int64_t>(d.built)));
  doc.set("multikey", document::boolean(d.multikey));
  if (d.state == "failed") {
    doc.set("error", document{d.error});
    doc.set("purged", document::boolean(d.purged));
  }
  return encode_doc(doc);
}

index_def decode_def(std::string_view stored) {
  document doc;
  if (!stored_document(stored, doc) || !doc.is_object())
    throw storage_error{errc::consistency_violation, "an index definition does not decode"};
  try {
    index_def d;
    d.spec.name = doc.get("name")->as_string();
    for (auto& f : doc.get("fields")->as_array())
      d.spec.fields.push_back({f.get("name")->as_string(), f.get("type")->as_string(),
                               f.get("descending")->as_bool()});
    d.spec.unique = doc.get("unique")->as_bool();
    d.spec.sparse = doc.get("sparse")->as_bool();
    d.state = doc.get("state")->as_string();
    d.cursor = doc.get("cursor")->as_string();
    d.built = static_cast<uint64_t>(doc.get("built")->as_int());
    d.multikey = doc.get("multikey")->as_bool();
    if (d.state == "failed") {
      d.error = doc.get("error")->as_string();
      d.purged = doc.get("purged")->as_bool();
    }
    for (auto& f : d.spec.fields)
      d.paths.push_back(field_path::parse(f.name, "index field"));
    return d;
  } catch (const std::exception& e) {
    throw storage_error{errc::consistency_violation,
                        std::string{"an index definition does not decode: "} + e.what()};
  }
}

// -- entries ------------------------------------------------------------------------

/// The distinct values of `path` in `doc` by their encoding: an array field
/// gives the array and each element. Empty if the field is missing.
std::vector<std::pair<std::string, document>> field_values(const document& doc,
                                                            const field_path& path) {
  std::vector<std::pair<std::string, document>> out;
  std::set<std::string> seen;
  visit_path(doc, path, 0, [&](const document& v) {
    std::string enc;
    index_key::append(enc, v);
    if (seen.insert(enc).second)
      out.emplace_back(std::move(enc), v);
    return true;
  });
  return out;
}

/// The entries of `doc` (stored under `pk`) in index `d`, sorted by key.
/// `multi` is set if a btree or hash index has several.
std::vector<index_entry> entries_of(const index_def& d, std::string_view pk,
                                    const document& doc, bool& multi) {
  if (is_text(d) || is_spatial(d)) {
    auto es = is_text(d) ? text_index::entries(entry_prefix(d.spec.name), d.paths[0],
                                               key_suffix(pk), doc, d.spec.name)
                         : spatial_index::entries(entry_prefix(d.spec.name), d.paths[0],
                                                  key_suffix(pk), doc, d.spec.name);
    for (auto& e : es)
      if (e.key.size() > max_index_key)
        throw storage_error{errc::invalid_value,
                            "document '" + std::string{pk} + "': its key is too long for "
                              + "index " + d.spec.name + " (entries of at most "
                              + std::to_string(max_index_key) + " bytes)"};
    return es;
  }
  std::vector<std::vector<std::pair<std::string, document>>> per_field;
  for (size_t i = 0; i < d.paths.size(); ++i) {
    auto vals = field_values(doc, d.paths[i]);
    if (vals.empty()) {
      if (d.spec.sparse && i == 0)
        return {};
      std::string enc;
      index_key::append(enc, document{});
      vals.emplace_back(std::move(enc), document{});
    }
    per_field.push_back(std::move(vals));
  }
  size_t combos = 1;
  for (auto& v : per_field) {
    combos *= v.size();
    if (combos > max_entries_per_document)
      throw storage_error{errc::invalid_value,
                          "document '" + std::string{pk} + "' would have more than "
                            + std::to_string(max_entries_per_document)
                            + " entries in index " + d.spec.name + " (array fields)"};
  }
  multi = combos > 1;
  auto prefix = entry_prefix(d.spec.name);
  std::vector<index_entry> keys;
  std::vector<size_t> pick(per_field.size(), 0);
  for (size_t c = 0; c < combos; ++c) {
    std::string values;
    for (size_t i = 0; i < per_field.size(); ++i) {
      auto& enc = per_field[i][pick[i]].first;
      if (d.spec.fields[i].descending)
        for (char ch : enc)
          values.push_back(static_cast<char>(~static_cast<uint8_t>(ch)));
      else
        values += enc;
    }
    auto key = prefix;
    if (is_hash(d)) {
      auto h = index_key::hash(values);
      for (int i = 7; i >= 0; --i)
        key.push_back(static_cast<char>((h >> (i * 8)) & 0xff));
    } else {
      key += values;
    }
    key += pk;
    key.push_back(static_cast<char>((pk.size() >> 8) & 0xff));
    key.push_back(static_cast<char>(pk.size() & 0xff));
    if (key.size() > max_index_key)
      throw storage_error{errc::invalid_value,
                          "document '" + std::string{pk} + "': its key and values in index "
                            + d.spec.name + " take " + std::to_string(key.size())
                            + " bytes, more than the " + std::to_string(max_index_key)
                            + " an index entry may"};
    keys.push_back({std::move(key), {}});
    for (size_t i = per_field.size(); i-- > 0;) { // next combination
      if (++pick[i] < per_field[i].size())
        break;
      pick[i] = 0;
    }
  }
  auto by_key = [](const index_entry& x, const index_entry& y) { return x.key < y.key; };
  std::sort(keys.begin(), keys.end(), by_key);
  keys.erase(std::unique(keys.begin(), keys.end(),
                         [](const index_entry& x, const index_entry& y) { return x.key == y.key; }),
             keys.end());
  return keys;
}

std::vector<index_entry> entries_of_value(const index_def& d, std::string_view pk,
                                          std::string_view value, bool& multi) {
  document doc;
  multi = false;
  if (!stored_document(value, doc))
    return {};
  return entries_of(d, pk, doc, multi);
}

// -- planning -----------------------------------------------------------------------

/// A key range of the index key space: [lo, hi).
struct key_range {
  std::string lo;
  std::string hi;
};

struct plan {
  const index_def* def = nullptr;
  std::shared_ptr<index_counters> counters;
  std::vector<key_range> ranges;
  std::string text;
  /// Entries come in the query's order.
  bool ordered = false;
  uint64_t estimate = 0;
};

/// The top-level conjuncts of a where clause.
std::vector<const where_clause*> conjuncts(const query_pattern& q) {
  std::vector<const where_clause*> out;
  if (!q.where)
    return out;
  if (q.where->kind == where_clause::type::all) {
    for (auto& c : q.where->children)
      out.push_back(&c);
  } else {
    out.push_back(&*q.where);
  }
  return out;
}

bool same_path(const field_path& x, const field_path& y) {
  return x.steps == y.steps;
}

const where_clause* find_cond(const std::vector<const where_clause*>& cs, const field_path& p,
                              compare_op op) {
  for (auto* c : cs)
    if (c->kind == where_clause::type::condition && c->op == op && same_path(c->path, p))
      return c;
  return nullptr;
}

std::string enc_field(const index_def& d, size_t i, const document& v) {
  std::string out;
  if (d.spec.fields[i].descending)
    index_key::append_descending(out, v);
  else
    index_key::append(out, v);
  return out;
}

/// The ranges of `d` that hold every document `q` can match, or nothing if
/// `d` cannot narrow `q` down.
std::optional<plan> plan_for(const index_def& d, const query_pattern& q,
                             const std::vector<const where_clause*>& cs) {
  if (is_text(d) || is_spatial(d))
    return std::nullopt; // serve their own conditions (text_query, spatial_query)
  plan p;
  p.def = &d;
  auto prefix = entry_prefix(d.spec.name);
  if (is_hash(d)) {
    // Equality on every field (or `in` on a single one).
    std::vector<std::string> values{std::string{}};
    for (size_t i = 0; i < d.paths.size(); ++i) {
      if (auto* c = find_cond(cs, d.paths[i], compare_op::eq)) {
        for (auto& v : values)
          v += enc_field(d, i, c->value);
      } else if (auto* in = find_cond(cs, d.paths[i], compare_op::in);
                 in && d.paths.size() == 1) {
        values.clear();
        for (auto& v : in->value.as_array())
          values.push_back(enc_field(d, 0, v));
      } else {
        return std::nullopt;
      }
    }
    for (auto& v : values) {
      auto key = prefix;
      auto h = index_key::hash(v);
      for (int i = 7; i >= 0; --i)
        key.push_back(static_cast<char>((h >> (i * 8)) & 0xff));
      p.ranges.push_back({key, successor(key)});
    }
    p.text = "index " + d.spec.name + " (hash, " + std::to_string(p.ranges.size())
             + (p.ranges.size() == 1 ? " value)" : " values)");
    return p;
  }
  // btree: equality on leading fields, then a range or a list.
  std::string eq = prefix;
  size_t k = 0;
  std::string how;
  while (k < d.paths.size()) {
    auto* c = find_cond(cs, d.paths[k], compare_op::eq);
    if (!c)
      break;
    eq += enc_field(d, k, c->value);
    ++k;
  }
  if (k > 0)
    how = "eq on " + std::to_string(k) + (k == 1 ? " field" : " fields");
  bool ranged = false;
  if (k < d.paths.size()) {
    auto& path = d.paths[k];
    auto* in = find_cond(cs, path, compare_op::in);
    auto* gt = find_cond(cs, path, compare_op::gt);
    auto* gte = find_cond(cs, path, compare_op::gte);
    auto* lt = find_cond(cs, path, compare_op::lt);
    auto* lte = find_cond(cs, path, compare_op::lte);
    if (in) {
      for (auto& v : in->value.as_array()) {
        auto key = eq + enc_field(d, k, v);
        p.ranges.push_back({key, successor(key)});
      }
      std::sort(p.ranges.begin(), p.ranges.end(),
                [](const key_range& x, const key_range& y) { return x.lo < y.lo; });
      how += (how.empty() ? "" : ", ") + std::string{"in ("} + std::to_string(p.ranges.size())
             + " values)";
      ranged = true;
    } else if ((gt || gte || lt || lte) && !d.spec.fields[k].descending) {
      auto* low = gt ? gt : gte;
      auto* high = lt ? lt : lte;
      auto kinds = index_key::kind_range(low ? low->value : high->value);
      key_range r;
      if (gt)
        r.lo = successor(eq + enc_field(d, k, gt->value));
      else if (gte)
        r.lo = eq + enc_field(d, k, gte->value);
      else
        r.lo = eq + std::string(1, static_cast<char>(kinds.first));
      if (lt)
        r.hi = eq + enc_field(d, k, lt->value);
      else if (lte)
        r.hi = successor(eq + enc_field(d, k, lte->value));
      else
        r.hi = eq + std::string(1, static_cast<char>(kinds.second));
      if (r.lo < r.hi)
        p.ranges.push_back(std::move(r));
      how += (how.empty() ? "" : ", ") + std::string{"range"};
      ranged = true;
    }
  }
  if (!ranged && k > 0)
    p.ranges.push_back({eq, successor(eq)});
  // The index's order is the query's if the order_by names the fields after
  // the equal ones, in the index's directions, and every document is there
  // once.
  auto order_fits = !q.order_by.empty() && !d.multikey && !(d.spec.sparse && k == 0)
                    && q.order_by.size() == d.paths.size() - k && !(ranged && p.ranges.size() > 1);
  for (size_t i = 0; order_fits && i < q.order_by.size(); ++i)
    order_fits = same_path(q.order_by[i].path, d.paths[k + i])
                 && q.order_by[i].descending == d.spec.fields[k + i].descending;
  if (!ranged && k == 0) {
    if (!order_fits)
      return std::nullopt;
    p.ranges.push_back({prefix, successor(prefix)});
    how = "order";
  }
  p.ordered = order_fits;
  p.text = "index " + d.spec.name + " (" + how + (order_fits && how != "order" ? ", order" : "")
           + ")";
  return p;
}

/// Counts the entries in `p`'s ranges, stopping at `cap`.
uint64_t estimate(const engine_snapshot& snap, const plan& p, uint64_t cap) {
  uint64_t n = 0;
  for (auto& r : p.ranges) {
    snap.scan(keyspace::index, r.lo, false, [&](std::string_view k, std::string_view) {
      if (k >= r.hi || n >= cap)
        return false;
      ++n;
      return true;
    });
    if (n >= cap)
      break;
  }
  return n;
}

} // namespace

// -- index_set -------------------------------------------------------------------------

void check_index_spec(const index_spec& spec) {
  if (spec.name.empty() || spec.name.size() > 64
      || !std::all_of(spec.name.begin(), spec.name.end(), valid_name_char))
    throw query_error{"index name '" + spec.name
                      + "': 1 to 64 characters of letters, digits, '_', '-' and '.'"};
  if (spec.fields.empty() || spec.fields.size() > 8)
    throw query_error{"index " + spec.name + ": 1 to 8 fields"};
  for (size_t i = 0; i < spec.fields.size(); ++i) {
    auto& f = spec.fields[i];
    auto at = "index " + spec.name + ": fields[" + std::to_string(i) + "]";
    field_path::parse(f.name, at + ".name");
    if (f.type != "btree" && f.type != "hash" && f.type != "fulltext" && f.type != "spatial")
      throw query_error{at + ".type: unknown index type '" + f.type
                        + "' (known: btree, hash, fulltext, spatial)"};
    if (f.type != spec.fields.front().type)
      throw query_error{at + ".type: every field of an index has the same type"};
    if (f.type == "hash" && f.descending)
      throw query_error{at + ": a hash index has no order"};
    if ((f.type == "fulltext" || f.type == "spatial") && f.descending)
      throw query_error{at + ": a " + f.type + " index has no order"};
  }
  auto& kind = spec.fields.front().type;
  if ((kind == "fulltext" || kind == "spatial") && spec.fields.size() > 1)
    throw query_error{"index " + spec.name + ": a " + kind + " index has one field"};
  if (spec.unique && (kind == "fulltext" || kind == "spatial"))
    throw query_error{"index " + spec.name + ": a " + kind + " index cannot be unique"};
}

// -- unique indexes -------------------------------------------------------------------

std::string claim_prefix(const std::string& index) {
  std::string p{"\0u", 2};
  p += index;
  p.push_back('\0');
  return p;
}

unique_constraint::unique_constraint(index_spec s) : spec(std::move(s)) {
  for (auto& f : spec.fields)
    paths.push_back(field_path::parse(f.name, "index " + spec.name));
}

std::vector<unique_claim> unique_claims(const unique_constraint& c, std::string_view pk,
                                        const document& doc) {
  return unique_claims(c.spec, c.paths, pk, doc);
}

std::vector<unique_claim> unique_claims(const index_spec& spec,
                                        const std::vector<field_path>& paths,
                                        std::string_view pk, const document& doc) {
  std::vector<std::vector<std::pair<std::string, document>>> per_field;
  size_t combos = 1;
  for (auto& path : paths) {
    auto vals = field_values(doc, path);
    // Nulls never collide (as in SQL): a missing or null field claims nothing.
    vals.erase(std::remove_if(vals.begin(), vals.end(),
                              [](auto& v) { return v.second.is_null(); }),
               vals.end());
    if (vals.empty())
      return {};
    combos *= vals.size();
    if (combos > max_entries_per_document)
      throw storage_error{errc::invalid_value,
                          "document '" + std::string{pk} + "' would make more than "
                            + std::to_string(max_entries_per_document)
                            + " claims in unique index " + spec.name + " (array fields)"};
    per_field.push_back(std::move(vals));
  }
  auto prefix = claim_prefix(spec.name);
  std::vector<unique_claim> result;
  std::vector<size_t> pick(per_field.size(), 0);
  for (size_t n = 0; n < combos; ++n) {
    unique_claim claim{prefix, {}};
    for (size_t i = 0; i < per_field.size(); ++i) {
      claim.key += per_field[i][pick[i]].first;
      claim.shown += (i == 0 ? "" : ", ") + to_json(per_field[i][pick[i]].second);
    }
    if (claim.key.size() > max_index_key)
      throw storage_error{errc::invalid_value,
                          "document '" + std::string{pk} + "': its values in unique index "
                            + spec.name + " take " + std::to_string(claim.key.size())
                            + " bytes, more than the " + std::to_string(max_index_key)
                            + " a claim may"};
    result.push_back(std::move(claim));
    for (size_t i = per_field.size(); i-- > 0;) {
      if (++pick[i] < per_field[i].size())
        break;
      pick[i] = 0;
    }
  }
  std::sort(result.begin(), result.end(),
            [](auto& x, auto& y) { return x.key < y.key; });
  result.erase(std::unique(result.begin(), result.end(),
                           [](auto& x, auto& y) { return x.key == y.key; }),
               result.end());
  return result;
}

index_set::index_set(shard_core& core) : core_(core) {
  def_list defs;
  core.with_snapshot([&](const engine_snapshot& snap) {
    snap.scan(keyspace::meta, meta_prefix, false, [&](std::string_view k, std::string_view v) {
      if (k.substr(0, meta_prefix.size()) != meta_prefix)
        return false;
      auto e = std::make_shared<entry_state>();
      e->def = decode_def(v);
      auto prefix = entry_prefix(e->def.spec.name);
      uint64_t n = 0;
      uint64_t size = 0;
      uint64_t docs = 0;
      uint64_t words = 0;
      auto text = is_text(e->def);
      snap.scan(keyspace::index, prefix, false, [&](std::string_view ik, std::string_view iv) {
        if (ik.substr(0, prefix.size()) != prefix)
          return false;
        ++n;
        size += ik.size() + iv.size();
        if (text)
          if (auto w = text_index::doc_words(ik.substr(prefix.size()), iv)) {
            ++docs;
            words += *w;
          }
        return true;
      });
      e->counters->entries = n;
      e->counters->bytes = size;
      e->counters->docs = docs;
      e->counters->words = words;
      defs.push_back(std::move(e));
      return true;
    });
  });
  defs_ = std::make_shared<const def_list>(std::move(defs));
}

void index_set::recount(const index_def& d, index_counters& n) const {
  auto prefix = entry_prefix(d.spec.name);
  // A fulltext index's figures come from its documents' entries alone.
  auto from = is_text(d) ? prefix + 'd' : prefix;
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t docs = 0;
  uint64_t words = 0;
  core_.with_snapshot([&](const engine_snapshot& snap) {
    snap.scan(keyspace::index, from, false, [&](std::string_view k, std::string_view v) {
      if (k.substr(0, from.size()) != from)
        return false;
      ++entries;
      size += k.size() + v.size();
      if (auto w = text_index::doc_words(k.substr(prefix.size()), v)) {
        ++docs;
        words += *w;
      }
      return true;
    });
  });
  if (is_text(d)) {
    n.docs = docs;
    n.words = words;
  } else {
    n.entries = entries;
    n.bytes = size;
  }
}

std::shared_ptr<const index_set::def_list> index_set::current() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return defs_;
}

void index_set::publish(def_list defs) {
  auto next = std::make_shared<const def_list>(std::move(defs));
  std::lock_guard<std::mutex> guard{mtx_};
  defs_ = std::move(next);
}

void index_set::save(const index_def& def, derived_writes& out) const {
  std::vector<operation> ops;
  ops.push_back(operation::set(std::string{meta_prefix} + def.spec.name, encode_def(def)));
  out.emplace_back(keyspace::meta, std::move(ops));
}

void index_set::create(const index_spec& spec) {
  try {
    check_index_spec(spec);
  } catch (const query_error& e) {
    throw storage_error{errc::query_error, e.what()};
  }
  auto defs = *current();
  for (auto& e : defs) {
    if (e->def.spec.name != spec.name)
      continue;
    auto same = e->def.state != "dropping" && e->def.spec.unique == spec.unique
                && e->def.spec.sparse == spec.sparse
                && e->def.spec.fields.size() == spec.fields.size()
                && std::equal(spec.fields.begin(), spec.fields.end(),
                              e->def.spec.fields.begin(),
                              [](const index_field& x, const index_field& y) {
                                return x.name == y.name && x.type == y.type
                                       && x.descending == y.descending;
                              });
    if (e->def.state == "failed")
      throw storage_error{errc::duplicate_key, "index " + spec.name + " failed (" + e->def.error
                                                 + "): drop it before creating it again"};
    if (same)
      return;
    throw storage_error{errc::duplicate_key,
                        "an index named " + spec.name
                          + (e->def.state == "dropping" ? " is still being dropped"
                                                         : " exists with another definition")};
  }
  auto e = std::make_shared<entry_state>();
  e->def.spec = spec;
  for (auto& f : spec.fields)
    e->def.paths.push_back(field_path::parse(f.name, "index field"));
  derived_writes w;
  save(e->def, w);
  core_.write_spaces(w);
  defs.push_back(std::move(e));
  publish(std::move(defs));
}

void index_set::drop(const std::string& name) {
  auto defs = *current();
  for (auto& e : defs) {
    if (e->def.spec.name != name || e->def.state == "dropping")
      continue;
    auto next = std::make_shared<entry_state>(*e);
    next->def.state = "dropping";
    next->def.cursor.clear();
    derived_writes w;
    save(next->def, w);
    core_.write_spaces(w);
    e = std::move(next);
    publish(std::move(defs));
    return;
  }
  throw storage_error{errc::key_not_found, "no index named " + name};
}

namespace {

/// Whether steps have work on an index: building, dropping, or failed with
/// entries left.
bool has_work(const index_def& d) {
  return d.state == "building" || d.state == "dropping" || (d.state == "failed" && !d.purged);
}

/// Whether writes keep an index's entries.
bool maintained(const index_def& d) {
  return d.state == "building" || d.state == "ready";
}

} // namespace

bool index_set::step(size_t budget) {
  auto defs = *current();
  auto changed = false;
  for (size_t i = 0; i < defs.size() && budget > 0; ++i) {
    auto& e = defs[i];
    if (e->def.state == "ready" || (e->def.state == "failed" && e->def.purged))
      continue;
    auto next = std::make_shared<entry_state>(*e);
    auto& d = next->def;
    std::vector<operation> index_ops;
    uint64_t added = 0;
    uint64_t added_bytes = 0;
    uint64_t added_docs = 0;
    uint64_t added_words = 0;
    bool done = true;
    if (d.state == "building") {
      try {
        core_.with_snapshot([&](const engine_snapshot& snap) {
          snap.scan(keyspace::data, d.cursor, !d.cursor.empty(),
                    [&](std::string_view k, std::string_view v) {
                      if (budget == 0) {
                        done = false;
                        return false;
                      }
                      --budget;
                      bool multi = false;
                      auto es = entries_of_value(d, k, v, multi);
                      std::string_view existing;
                      if (!es.empty() && !snap.get(keyspace::index, es.front().key, existing)) {
                        added_docs += 1; // a document's first entry is new: all are
                        added_words += text_index::words_of(entry_prefix(d.spec.name), es);
                      }
                      for (auto& x : es) {
                        if (!snap.get(keyspace::index, x.key, existing)) {
                          ++added;
                          added_bytes += x.key.size() + x.value.size();
                        }
                        index_ops.push_back(operation::set(x.key, bytes_of(x.value)));
                      }
                      d.multikey = d.multikey || multi;
                      d.cursor = std::string{k};
                      ++d.built;
                      return true;
                    });
        });
        if (done)
          d.state = "ready";
      } catch (const storage_error& err) {
        if (err.code() != errc::invalid_value)
          throw; // the engine's trouble: the step is retried
        // This data cannot have the index: it fails, and its entries go.
        d.state = "failed";
        d.error = err.what();
        d.cursor.clear();
        index_ops.clear();
        added = added_bytes = added_docs = added_words = 0;
        done = false;
      }
    } else { // dropping, or failed and not yet purged: its entries and claims go
      core_.with_snapshot([&](const engine_snapshot& snap) {
        for (auto& prefix : {entry_prefix(d.spec.name), claim_prefix(d.spec.name)})
          snap.scan(keyspace::index, prefix, false, [&](std::string_view k, std::string_view) {
            if (k.substr(0, prefix.size()) != prefix)
              return false;
            if (budget == 0) {
              done = false;
              return false;
            }
            --budget;
            index_ops.push_back(operation::del(std::string{k}));
            return true;
          });
      });
    }
    if (d.state == "failed" && done)
      d.purged = true;
    derived_writes w;
    w.emplace_back(keyspace::index, std::move(index_ops));
    if (d.state == "dropping" && done)
      w.emplace_back(keyspace::meta, std::vector<operation>{operation::del(
                                       std::string{meta_prefix} + d.spec.name)});
    else
      save(d, w);
    core_.write_spaces(w);
    STRATA_FAULT_POINT("index.after_step");
    auto finished = d.state == "ready";
    if (d.state != "building" && d.state != "ready") {
      next->counters->entries = 0;
      next->counters->bytes = 0;
      next->counters->docs = 0;
      next->counters->words = 0;
    } else {
      next->counters->entries += added;
      next->counters->bytes += added_bytes;
      if (is_text(d)) {
        next->counters->docs += added_docs;
        next->counters->words += added_words;
      }
    }
    // While it was built, a write could not tell whether the build had
    // indexed its key's old value yet, so the figures may be off: counted
    // anew from the entries (BM25 needs exact statistics).
    if (finished)
      recount(d, *next->counters);
    changed = true;
    if (d.state == "dropping" && done) {
      defs.erase(defs.begin() + static_cast<ptrdiff_t>(i));
      --i;
    } else {
      e = std::move(next);
    }
  }
  if (changed)
    publish(defs);
  return std::any_of(defs.begin(), defs.end(), [](auto& e) { return has_work(e->def); });
}

bool index_set::pending() const {
  auto defs = current();
  return std::any_of(defs->begin(), defs->end(), [](auto& e) { return has_work(e->def); });
}

std::vector<index_info> index_set::list() const {
  auto defs = current();
  uint64_t total = 0;
  core_.with_snapshot([&](const engine_snapshot& snap) { total = snap.count(keyspace::data); });
  std::vector<index_info> out;
  for (auto& e : *defs) {
    if (e->def.state == "dropping")
      continue;
    index_info x;
    x.spec = e->def.spec;
    x.state = e->def.state;
    x.error = e->def.error;
    x.built = e->def.state == "ready" ? total : std::min(e->def.built, total);
    x.total = total;
    x.entries = e->counters->entries;
    x.size = e->counters->bytes;
    x.hits = e->counters->hits;
    x.misses = e->counters->misses;
    out.push_back(std::move(x));
  }
  return out;
}

void index_set::extend(const std::vector<operation>& ops, const pending_data& data,
                       derived_writes& out) {
  auto defs = current();
  bool any = std::any_of(defs->begin(), defs->end(), [](auto& e) { return maintained(e->def); });
  if (!any)
    return;
  std::vector<operation> index_ops;
  // Values this batch gave its keys so far (the pending data is the state
  // before the batch).
  std::map<std::string, std::optional<std::string>, std::less<>> mine;
  bool cleared = false;
  auto before = [&](std::string_view key) -> std::optional<std::string> {
    if (auto i = mine.find(key); i != mine.end())
      return i->second;
    if (cleared)
      return std::nullopt;
    std::string_view v;
    if (data.get(key, v))
      return std::string{v};
    return std::nullopt;
  };
  std::vector<std::shared_ptr<const entry_state>> became_multikey;
  for (auto& op : ops) {
    if (op.kind == op_kind::clear) {
      index_ops.push_back(operation::clear());
      for (auto& e : *defs) {
        e->counters->entries = 0;
        e->counters->bytes = 0;
        e->counters->docs = 0;
        e->counters->words = 0;
      }
      mine.clear();
      cleared = true;
      continue;
    }
    auto old = before(op.key);
    std::optional<std::string> now;
    if (op.kind == op_kind::set)
      now = std::string{reinterpret_cast<const char*>(op.value.data()), op.value.size()};
    // Each document decoded once for all indexes.
    document old_doc;
    document new_doc;
    auto had_doc = old && stored_document(*old, old_doc);
    auto has_doc = now && stored_document(*now, new_doc);
    for (auto& e : *defs) {
      if (!maintained(e->def))
        continue;
      if (e->def.spec.unique && !data.planned()) {
        // Only a write whose claims were planned may change a unique value
        // (one sent before the index was created, say).
        auto claims = [&](bool had, const document& doc) {
          std::vector<std::string> keys;
          if (had)
            for (auto& c : unique_claims(e->def.spec, e->def.paths, op.key, doc))
              keys.push_back(std::move(c.key));
          return keys;
        };
        if (claims(had_doc, old_doc) != claims(has_doc, new_doc))
          throw storage_error{errc::version_conflict,
                              "unique index " + e->def.spec.name + ": document '" + op.key
                                + "' changes a unique value in a write planned without "
                                  "the index (created while the write was under way); "
                                  "retry it"};
      }
      bool multi_old = false;
      bool multi_new = false;
      auto was = had_doc ? entries_of(e->def, op.key, old_doc, multi_old)
                         : std::vector<index_entry>{};
      auto is = has_doc ? entries_of(e->def, op.key, new_doc, multi_new)
                        : std::vector<index_entry>{};
      auto& n = *e->counters;
      for (auto& x : was)
        if (!find_entry(is, x.key)) {
          index_ops.push_back(operation::del(x.key));
          n.entries -= std::min<uint64_t>(1, n.entries);
          n.bytes -= std::min<uint64_t>(x.key.size() + x.value.size(), n.bytes);
        }
      for (auto& x : is) {
        auto* old_entry = find_entry(was, x.key);
        if (!old_entry || old_entry->value != x.value)
          index_ops.push_back(operation::set(x.key, bytes_of(x.value)));
        if (!old_entry) {
          ++n.entries;
          n.bytes += x.key.size() + x.value.size();
        }
      }
      if (is_text(e->def)) {
        auto prefix = entry_prefix(e->def.spec.name);
        auto w_old = text_index::words_of(prefix, was);
        auto w_new = text_index::words_of(prefix, is);
        n.docs += (is.empty() ? 0 : 1);
        n.docs -= std::min<uint64_t>(was.empty() ? 0 : 1, n.docs);
        n.words += w_new;
        n.words -= std::min<uint64_t>(w_old, n.words);
      }
      if (multi_new && !e->def.multikey)
        became_multikey.push_back(e);
    }
    mine[op.key] = std::move(now);
  }
  if (!index_ops.empty())
    out.emplace_back(keyspace::index, std::move(index_ops));
  if (!became_multikey.empty()) {
    // Recorded with the batch; in memory at once (harmless if the batch fails:
    // the flag only stops the index from serving orders).
    auto next = *defs;
    for (auto& e : next)
      if (std::find(became_multikey.begin(), became_multikey.end(), e)
          != became_multikey.end()) {
        auto m = std::make_shared<entry_state>(*e);
        m->def.multikey = true;
        save(m->def, out);
        e = std::move(m);
      }
    publish(std::move(next));
  }
}

// -- queries -------------------------------------------------------------------------

namespace {

/// Picks the ready index that narrows `q` most, or none (scan).
std::optional<plan> choose(const engine_snapshot& snap, const query_pattern& q,
                           const std::vector<std::pair<const index_def*,
                                                       std::shared_ptr<index_counters>>>& defs,
                           size_t want) {
  auto cs = conjuncts(q);
  auto total = snap.count(keyspace::data);
  std::optional<plan> best;
  for (auto& [d, counters] : defs) {
    auto p = plan_for(*d, q, cs);
    if (!p) {
      ++counters->misses;
      continue;
    }
    p->counters = counters;
    if (p->ordered && want <= 1000) {
      // Serves the order and stops after `want` results: no count needed.
      p->estimate = want;
      if (!best || !best->ordered)
        best = std::move(p);
      continue;
    }
    if (best && best->ordered && want <= 1000)
      continue;
    // An index that keeps more than a quarter of the data is no better than
    // reading it all, unless it serves the order (a limit stops it early).
    auto cap = std::max<uint64_t>(1000, total / 4);
    p->estimate = estimate(snap, *p, cap);
    auto useful = p->estimate < cap || p->ordered;
    if (!useful) {
      ++counters->misses;
      continue;
    }
    if (!best || p->estimate < best->estimate || (p->ordered && !best->ordered
                                                  && p->estimate <= best->estimate))
      best = std::move(p);
  }
  if (best)
    ++best->counters->hits;
  return best;
}

/// The plan of the index `q` hints at: it must exist, be ready, be a btree
/// or hash index, and have a condition or the order of `q` on its fields.
template <class Defs>
plan hinted(const engine_snapshot& snap, const query_pattern& q, const Defs& defs) {
  if (q.text() || q.near())
    throw query_error{"hint: a query with a text or near condition uses its fulltext or "
                      "spatial index"};
  for (auto& e : defs) {
    auto& d = e->def;
    if (d.spec.name != q.hint || d.state == "dropping")
      continue;
    if (d.state != "ready")
      throw query_error{"hint: index " + q.hint + " is " + d.state
                        + "; only ready indexes answer queries"};
    if (is_text(d) || is_spatial(d))
      throw query_error{"hint: index " + q.hint + " is a " + d.spec.fields.front().type
                        + " index; its operators use it without a hint"};
    auto p = plan_for(d, q, conjuncts(q));
    if (!p)
      throw query_error{"hint: index " + q.hint
                        + " has neither a condition nor the order of this query on its "
                          "fields"};
    p->counters = e->counters;
    p->estimate = estimate(snap, *p, std::max<uint64_t>(1000, snap.count(keyspace::data)));
    ++p->counters->hits;
    return std::move(*p);
  }
  throw query_error{"hint: no index named " + q.hint};
}

/// Calls `f(key, value)` for the documents `p` finds, each once, in the
/// index's order; `f` returns false to stop.
template <class F>
void for_each_candidate(const engine_snapshot& snap, const plan& p, uint64_t& examined, F f) {
  std::unordered_set<std::string> seen;
  auto dedupe = p.def->multikey || p.ranges.size() > 1;
  for (auto& r : p.ranges) {
    bool go = true;
    snap.scan(keyspace::index, r.lo, false, [&](std::string_view k, std::string_view) {
      if (k >= r.hi)
        return false;
      auto pk = key_of_entry(k);
      if (dedupe && !seen.insert(std::string{pk}).second)
        return true;
      std::string_view value;
      if (!snap.get(keyspace::data, pk, value))
        return true;
      ++examined;
      go = f(pk, value);
      return go;
    });
    if (!go)
      return;
  }
}

/// The ready index of `type` ("fulltext", "spatial") on `path`, if any.
/// `building` gets the name of one still building.
template <class Defs>
std::pair<const index_def*, std::shared_ptr<index_counters>>
index_on(const Defs& defs, const char* type, const field_path& path, std::string& building) {
  for (auto& e : defs) {
    if (e->def.spec.fields.front().type != type || !same_path(e->def.paths[0], path))
      continue;
    if (e->def.state == "ready")
      return {&e->def, e->counters};
    if (e->def.state == "building")
      building = e->def.spec.name;
  }
  return {nullptr, nullptr};
}

/// The ready index of `type` that condition `t` (text, near) needs;
/// query_error saying so if there is none.
template <class Defs>
std::pair<const index_def*, std::shared_ptr<index_counters>>
required_index(const Defs& defs, const char* type, const where_clause& t) {
  std::string building;
  auto found = index_on(defs, type, t.path, building);
  if (!found.first)
    throw query_error{std::string{"where: "} + to_string(t.op) + " on '" + t.path.str()
                      + "' needs a ready " + type + " index on that field"
                      + (building.empty() ? "" : " (index " + building + " is building)")};
  return found;
}

/// The documents holding every term of `t`, through fulltext index `d`.
std::vector<text_index::hit> text_candidates(const engine_snapshot& snap, const index_def& d,
                                             index_counters& n, const where_clause& t,
                                             uint64_t& postings) {
  ++n.hits;
  return text_index::search(snap, entry_prefix(d.spec.name), t, n.docs, n.words, postings);
}

/// A query with a text condition, through fulltext index `d`.
shard_query_result text_query(const engine_snapshot& snap, const index_def& d,
                              index_counters& n, const where_clause& t, const query_pattern& q,
                              const std::optional<query_position>& after, size_t want) {
  uint64_t postings = 0;
  auto found = text_candidates(snap, d, n, t, postings);
  query_collector c{q, after, want, false};
  auto feed = [&](const text_index::hit& h) {
    auto pk = key_of_entry(h.suffix);
    std::string_view value;
    if (snap.get(keyspace::data, pk, value))
      c.feed(pk, value, h.score);
  };
  bool more = false;
  if (q.order_by.size() == 1 && q.order_by[0].score && q.order_by[0].descending
      && &*q.where == &t) {
    // Ordered by relevance and filtered by the words alone: the page is known
    // from the postings, and only its documents are read.
    std::vector<const text_index::hit*> page;
    for (auto& h : found)
      if (!after
          || order_results(q, {document::real(h.score)}, key_of_entry(h.suffix), after->sort,
                           after->key)
               > 0)
        page.push_back(&h);
    auto better = [](const text_index::hit* x, const text_index::hit* y) {
      return x->score != y->score ? x->score > y->score
                                  : key_of_entry(x->suffix) < key_of_entry(y->suffix);
    };
    if (page.size() > want) {
      std::nth_element(page.begin(), page.begin() + static_cast<ptrdiff_t>(want), page.end(),
                       better);
      page.resize(want);
      more = true;
    }
    for (auto* h : page)
      feed(*h);
  } else {
    for (auto& h : found)
      feed(h);
  }
  auto r = c.finish();
  r.more = r.more || more;
  r.stats.plan = "index " + d.spec.name + " (text, " + std::to_string(t.terms.size())
                 + (t.terms.size() == 1 ? " term)" : " terms)");
  r.stats.estimated = postings;
  return r;
}

/// The farthest any point within the bounds can be from `c`.
double farthest(const spatial_index::point& c) {
  using namespace spatial_index;
  double r = 0;
  for (auto x : {min_coord, max_coord})
    for (auto y : {min_coord, max_coord})
      r = std::max(r, std::hypot(x - c.x, y - c.y));
  return r;
}

/// A query with a near condition through spatial index `d`: the points within
/// a radius that grows (doubling, from what the shard's density suggests)
/// until it holds `want` matches after the position, or everything.
shard_query_result near_query(const engine_snapshot& snap, const index_def& d,
                              index_counters& n, const where_clause& t, const query_pattern& q,
                              const std::optional<query_position>& after, size_t want) {
  ++n.hits;
  auto prefix = entry_prefix(d.spec.name);
  spatial_index::point c{t.geo[0], t.geo[1]};
  auto max_r = farthest(c);
  // Ordered by distance alone, a radius suffices; any other order needs all.
  auto by_distance = q.order_by.size() == 1 && q.order_by[0].score && !q.order_by[0].descending;
  auto points = std::max<double>(1, static_cast<double>(n.entries.load()));
  auto area = (spatial_index::max_coord - spatial_index::min_coord)
              * (spatial_index::max_coord - spatial_index::min_coord);
  auto r = by_distance ? std::sqrt(area * static_cast<double>(want + 1) / (M_PI * points)) * 2
                       : max_r;
  uint64_t examined = 0;
  std::vector<std::pair<const spatial_index::hit*, std::string_view>> page; // hit, value
  std::vector<spatial_index::hit> found;
  document doc;
  for (;;) {
    r = std::min(r, max_r);
    found = spatial_index::within_radius(snap, prefix, c, r, examined);
    std::sort(found.begin(), found.end(), [](auto& x, auto& y) {
      return x.distance != y.distance ? x.distance < y.distance : x.suffix < y.suffix;
    });
    page.clear();
    for (auto& h : found) {
      auto pk = key_of_entry(h.suffix);
      if (by_distance && after
          && order_results(q, {document::real(h.distance)}, pk, after->sort, after->key) <= 0)
        continue;
      std::string_view value;
      if (!snap.get(keyspace::data, pk, value) || !stored_document(value, doc) || !q.matches(doc))
        continue;
      page.emplace_back(&h, value);
      if (by_distance && page.size() > want)
        break;
    }
    // Everything outside the radius is farther than everything inside.
    if (!by_distance || page.size() > want || r >= max_r)
      break;
    r *= 2;
  }
  query_collector col{q, after, want, false};
  for (auto& [h, value] : page)
    col.feed(key_of_entry(h->suffix), value, h->distance);
  auto res = col.finish();
  res.stats.plan = "index " + d.spec.name + " (near)";
  res.stats.estimated = found.size();
  res.stats.examined = examined;
  return res;
}

/// The points of within_box or within_radius condition `t`, through spatial
/// index `d`.
std::vector<spatial_index::hit> spatial_hits(const engine_snapshot& snap, const index_def& d,
                                             index_counters& n, const where_clause& t,
                                             uint64_t& examined) {
  ++n.hits;
  auto prefix = entry_prefix(d.spec.name);
  if (t.op == compare_op::within_box)
    return spatial_index::within_box(snap, prefix, {t.geo[0], t.geo[1]}, {t.geo[2], t.geo[3]},
                                     examined);
  return spatial_index::within_radius(snap, prefix, {t.geo[0], t.geo[1]}, t.geo[2], examined);
}

/// A query with a top-level within_box or within_radius condition through
/// spatial index `d`: the points in the box or circle, then the rest of the
/// where clause on their documents.
shard_query_result within_query(const engine_snapshot& snap, const index_def& d,
                                index_counters& n, const where_clause& t,
                                const query_pattern& q,
                                const std::optional<query_position>& after, size_t want) {
  uint64_t examined = 0;
  auto found = spatial_hits(snap, d, n, t, examined);
  query_collector col{q, after, want, false};
  for (auto& h : found) {
    auto pk = key_of_entry(h.suffix);
    std::string_view value;
    if (snap.get(keyspace::data, pk, value))
      col.feed(pk, value);
  }
  auto res = col.finish();
  res.stats.plan = "index " + d.spec.name
                   + (t.op == compare_op::within_box ? " (box)" : " (radius)");
  res.stats.estimated = examined;
  return res;
}

/// The first top-level within_box or within_radius condition that a ready
/// spatial index serves.
template <class Defs>
std::tuple<const where_clause*, const index_def*, std::shared_ptr<index_counters>>
spatial_filter(const Defs& defs, const query_pattern& q) {
  for (auto* c : conjuncts(q)) {
    if (c->kind != where_clause::type::condition
        || (c->op != compare_op::within_box && c->op != compare_op::within_radius))
      continue;
    std::string building;
    auto [d, n] = index_on(defs, "spatial", c->path, building);
    if (d)
      return {c, d, n};
  }
  return {nullptr, nullptr, nullptr};
}

} // namespace

shard_query_result index_set::run(const engine_snapshot& snap, const query_pattern& q,
                                  const std::optional<query_position>& after,
                                  size_t want) const {
  if (auto r = run_indexed(snap, q, after, want))
    return std::move(*r);
  return run_query(snap, q, after, want);
}

std::optional<shard_query_result>
index_set::run_indexed(const engine_snapshot& snap, const query_pattern& q,
                       const std::optional<query_position>& after, size_t want) const {
  auto defs = current();
  std::optional<plan> p;
  if (!q.hint.empty()) {
    p = hinted(snap, q, *defs);
  } else if (auto* t = q.text()) {
    auto [d, n] = required_index(*defs, "fulltext", *t);
    return text_query(snap, *d, *n, *t, q, after, want);
  }
  if (!p) {
    if (auto* t = q.near()) {
      auto [d, n] = required_index(*defs, "spatial", *t);
      return near_query(snap, *d, *n, *t, q, after, want);
    }
    if (auto [t, d, n] = spatial_filter(*defs, q); t)
      return within_query(snap, *d, *n, *t, q, after, want);
    std::vector<std::pair<const index_def*, std::shared_ptr<index_counters>>> ready;
    for (auto& e : *defs)
      if (e->def.state == "ready")
        ready.emplace_back(&e->def, e->counters);
    if (!ready.empty() && (q.where || !q.order_by.empty()))
      p = choose(snap, q, ready, want);
  }
  if (!p)
    return std::nullopt;
  // Candidates come in the index's order: in the query's order if the plan
  // serves it, else collected and sorted.
  query_collector c{q, after, want, p->ordered};
  uint64_t examined = 0;
  for_each_candidate(snap, *p, examined,
                     [&](std::string_view k, std::string_view v) { return c.feed(k, v); });
  auto r = c.finish();
  r.stats.plan = p->text;
  r.stats.estimated = p->estimate;
  return r;
}

void open_indexes(shard_core& core) {
  auto ix = std::make_shared<index_set>(core);
  core.add_hook(ix);
  core.attach_indexes(std::move(ix));
}

uint64_t index_set::count(const engine_snapshot& snap, const query_pattern& q) const {
  auto defs = current();
  // Candidates an index found for condition `t`: all of them match if `t`
  // is the whole where clause, else their documents are checked.
  auto matching = [&](const where_clause* t, const auto& found) -> uint64_t {
    if (&*q.where == t)
      return found.size();
    uint64_t matched = 0;
    document doc;
    for (auto& h : found) {
      std::string_view value;
      if (snap.get(keyspace::data, key_of_entry(h.suffix), value) && stored_document(value, doc)
          && q.matches(doc))
        ++matched;
    }
    return matched;
  };
  std::optional<plan> p;
  if (!q.hint.empty()) {
    p = hinted(snap, q, *defs);
  } else if (auto [t, d, n] = spatial_filter(*defs, q); t && !q.text()) {
    uint64_t examined = 0;
    return matching(t, spatial_hits(snap, *d, *n, *t, examined));
  }
  if (auto* t = q.text(); t && !p) {
    std::string building;
    if (auto [d, n] = index_on(*defs, "fulltext", t->path, building); d) {
      uint64_t postings = 0;
      return matching(t, text_candidates(snap, *d, *n, *t, postings));
    }
    return count_matches(snap, q); // the words are matched document by document
  }
  if (!p) {
    std::vector<std::pair<const index_def*, std::shared_ptr<index_counters>>> ready;
    for (auto& e : *defs)
      if (e->def.state == "ready")
        ready.emplace_back(&e->def, e->counters);
    if (!ready.empty() && q.where)
      p = choose(snap, q, ready, SIZE_MAX);
  }
  if (!p)
    return count_matches(snap, q);
  uint64_t n = 0;
  uint64_t examined = 0;
  document doc;
  for_each_candidate(snap, *p, examined, [&](std::string_view, std::string_view v) {
    if (stored_document(v, doc) && q.matches(doc))
      ++n;
    return true;
  });
  return n;
}

} // namespace strata

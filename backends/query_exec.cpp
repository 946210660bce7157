#include "backends/query_exec.hpp"

#include <algorithm>
#include <queue>

#include "strata/envelope.hpp"
#include "strata/serialization.hpp"

namespace strata {

namespace {

/// The query's sort values of `doc` (null for a missing field).
std::vector<document> sort_values(const query_pattern& q, const document& doc, double score) {
  std::vector<document> result;
  result.reserve(q.order_by.size());
  for (auto& k : q.order_by) {
    if (k.score) {
      result.push_back(document::real(score));
      continue;
    }
    auto* v = first_at(doc, k.path);
    result.push_back(v ? *v : document{});
  }
  return result;
}

/// Builds the hit for a matching document.
query_hit make_hit(const query_pattern& q, std::string_view key, std::string_view value,
                   const document& doc) {
  query_hit h;
  h.key = std::string{key};
  if (q.select.empty())
    h.value = bytes_of(value);
  else
    h.value = encode_doc(q.project(doc));
  return h;
}

bool after_position(const query_pattern& q, const std::vector<document>& sort,
                    std::string_view key, const std::optional<query_position>& after) {
  return !after || order_results(q, sort, key, after->sort, after->key) > 0;
}

} // namespace

int order_results(const query_pattern& q, const std::vector<document>& xs,
                  std::string_view xk, const std::vector<document>& ys,
                  std::string_view yk) {
  auto n = std::min({q.order_by.size(), xs.size(), ys.size()});
  for (size_t i = 0; i < n; ++i) {
    auto c = compare(xs[i], ys[i]);
    if (c != 0)
      return q.order_by[i].descending ? -c : c;
  }
  return xk.compare(yk);
}

bool stored_document(std::string_view value, document& out) {
  auto* data = reinterpret_cast<const uint8_t*>(value.data());
  if (value.size() < value_header_size || data[0] != value_magic
      || data[1] != value_format_version
      || !holds_document(static_cast<value_encoding>(data[2])))
    return false;
  try {
    // The common case without a detour: an uncompressed binary document.
    if (data[2] == static_cast<uint8_t>(value_encoding::document)
        && data[3] == static_cast<uint8_t>(value_compression::none))
      out = decode_document(data + value_header_size, value.size() - value_header_size);
    else
      out = decode_doc(data, value.size());
    return true;
  } catch (const codec_error&) {
    return false;
  }
}

query_collector::query_collector(const query_pattern& q,
                                 const std::optional<query_position>& after, size_t want,
                                 bool in_order)
  : q_(q), after_(after), want_(want), in_order_(in_order) {
  // nop
}

bool query_collector::feed(std::string_view key, std::string_view value, double score) {
  ++r_.stats.examined;
  if (!stored_document(value, doc_) || !q_.matches(doc_))
    return true;
  ++r_.stats.matched;
  auto sort = sort_values(q_, doc_, score);
  if (!after_position(q_, sort, key, after_))
    return true;
  auto worse = [this](const query_hit& x, const query_hit& y) {
    return order_results(q_, x.sort, x.key, y.sort, y.key) < 0;
  };
  if (in_order_) {
    if (r_.hits.size() == want_) {
      r_.more = true;
      return false;
    }
  } else if (heap_.size() == want_) {
    r_.more = true;
    if (want_ == 0)
      return false;
    auto& top = heap_.front();
    if (order_results(q_, sort, key, top.sort, top.key) >= 0)
      return true;
    std::pop_heap(heap_.begin(), heap_.end(), worse);
    heap_.pop_back();
  }
  auto h = make_hit(q_, key, value, doc_);
  h.sort = std::move(sort);
  h.score = score;
  if (in_order_) {
    r_.hits.push_back(std::move(h));
  } else {
    heap_.push_back(std::move(h));
    std::push_heap(heap_.begin(), heap_.end(), worse);
  }
  return true;
}

shard_query_result query_collector::finish() {
  if (!in_order_) {
    std::sort(heap_.begin(), heap_.end(), [this](const query_hit& x, const query_hit& y) {
      return order_results(q_, x.sort, x.key, y.sort, y.key) < 0;
    });
    r_.hits = std::move(heap_);
  }
  return std::move(r_);
}

shard_query_result run_query(const engine_snapshot& snap, const query_pattern& q,
                             const std::optional<query_position>& after, size_t want) {
  // Relevance and distance need the index's statistics and points.
  for (auto [t, type] : {std::pair{q.text(), "fulltext"}, std::pair{q.near(), "spatial"}})
    if (t)
      throw query_error{std::string{"where: "} + to_string(t->op) + " on '" + t->path.str()
                        + "' needs a ready " + type + " index on that field"};
  // Without order_by key order is the query's: read from the position and
  // stop early; with it every document is looked at.
  auto in_key_order = q.order_by.empty();
  query_collector c{q, after, want, in_key_order};
  std::string_view from = after && in_key_order ? std::string_view{after->key}
                                                : std::string_view{};
  snap.scan(keyspace::data, from, after && in_key_order,
            [&](std::string_view k, std::string_view v) { return c.feed(k, v); });
  auto r = c.finish();
  r.stats.estimated = snap.count(keyspace::data);
  return r;
}

uint64_t count_matches(const engine_snapshot& snap, const query_pattern& q) {
  uint64_t n = 0;
  document doc;
  snap.scan(keyspace::data, {}, false, [&](std::string_view, std::string_view v) {
    if (stored_document(v, doc) && q.matches(doc))
      ++n;
    return true;
  });
  return n;
}

std::vector<query_hit> merge_results(const query_pattern& q,
                                     std::vector<std::vector<query_hit>>& lists,
                                     bool cut, size_t want, bool& more) {
  using cursor = std::pair<size_t, size_t>; // list, position
  auto later = [&](const cursor& x, const cursor& y) {
    auto& a = lists[x.first][x.second];
    auto& b = lists[y.first][y.second];
    return order_results(q, a.sort, a.key, b.sort, b.key) > 0;
  };
  std::priority_queue<cursor, std::vector<cursor>, decltype(later)> heads{later};
  size_t total = 0;
  for (size_t i = 0; i < lists.size(); ++i) {
    total += lists[i].size();
    if (!lists[i].empty())
      heads.emplace(i, 0);
  }
  std::vector<query_hit> result;
  result.reserve(std::min(want, total));
  while (!heads.empty() && result.size() < want) {
    auto [i, j] = heads.top();
    heads.pop();
    result.push_back(std::move(lists[i][j]));
    if (j + 1 < lists[i].size())
      heads.emplace(i, j + 1);
  }
  more = cut || total > result.size();
  return result;
}

bytes encode_cursor(const query_cursor& c) {
  auto doc = document::array();
  doc.push_back(document{static_cast<int64_t>(c.delivered)});
  if (c.position) {
    auto sort = document::array();
    for (auto& v : c.position->sort)
      sort.push_back(v);
    doc.push_back(std::move(sort));
    doc.push_back(document{c.position->key});
  }
  return encode_doc(doc);
}

query_cursor decode_cursor(const bytes& data) {
  query_cursor c;
  if (data.empty())
    return c;
  document doc;
  std::string_view text{reinterpret_cast<const char*>(data.data()), data.size()};
  if (!stored_document(text, doc) || !doc.is_array()
      || (doc.as_array().size() != 1 && doc.as_array().size() != 3)
      || !doc.as_array()[0].is_int() || doc.as_array()[0].as_int() < 0)
    throw query_error{"continuation: not one that this store handed out"};
  auto& xs = doc.as_array();
  c.delivered = static_cast<uint64_t>(xs[0].as_int());
  if (xs.size() == 3) {
    if (!xs[1].is_array() || !xs[2].is_string())
      throw query_error{"continuation: not one that this store handed out"};
    c.position = query_position{xs[1].as_array(), xs[2].as_string()};
  }
  return c;
}

page_request plan_page(const query_pattern& q, const query_cursor& c, uint32_t page) {
  page_request p;
  auto size = page == 0 ? limits::default_query_page : std::min(page, limits::max_page_entries);
  auto remaining = q.limit == 0               ? UINT64_MAX
                   : q.limit > c.delivered    ? q.limit - c.delivered
                                              : 0;
  p.exhausted = remaining == 0;
  p.skip = c.position ? 0 : q.offset;
  p.take = std::min<uint64_t>(size, remaining);
  return p;
}

query_page make_page(const query_pattern& q, const query_cursor& c, const page_request& p,
                     std::vector<query_hit>& hits, bool more) {
  query_page out;
  for (size_t i = std::min<size_t>(p.skip, hits.size()); i < hits.size(); ++i)
    out.results.push_back({std::move(hits[i].key), std::move(hits[i].value), hits[i].score,
                           hits[i].shard});
  auto delivered = c.delivered + out.results.size();
  out.more = more && !out.results.empty() && (q.limit == 0 || delivered < q.limit);
  if (out.more)
    out.continuation = encode_cursor(
      {delivered, query_position{hits.back().sort, out.results.back().key}});
  return out;
}

bytes encode_sort(const std::vector<document>& sort) {
  if (sort.empty())
    return {};
  return encode_document(document::array(sort));
}

std::vector<document> decode_sort(const bytes& data) {
  if (data.empty())
    return {};
  try {
    auto doc = decode_document(data.data(), data.size());
    if (doc.is_array())
      return std::move(doc.as_array());
  } catch (const codec_error&) {
    // below
  }
  throw query_error{"sort values of a shard's result do not decode"};
}

} // namespace strata

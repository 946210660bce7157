#include "backends/text_index.hpp"

#include <algorithm>
#include <map>

#include "backends/text.hpp"
#include "strata/errc.hpp"

namespace strata::text_index {

namespace {

void put_u32(std::string& out, uint64_t x) {
  auto v = static_cast<uint32_t>(std::min<uint64_t>(x, UINT32_MAX));
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

uint32_t get_u32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (size_t i = at; i < at + 4 && i < in.size(); ++i)
    v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

struct posting {
  std::string suffix;
  uint32_t tf = 0;
  uint32_t words = 0;
};

bool by_suffix(const posting& x, std::string_view suffix) {
  return x.suffix < suffix;
}

} // namespace

std::vector<entry> entries(const std::string& prefix, const field_path& path,
                           std::string_view suffix, const document& doc,
                           const std::string& index_name) {
  std::vector<std::string> words;
  visit_path(doc, path, 0, [&](const document& x) {
    if (x.is_string())
      text::append_terms(x.as_string(), words);
    return true;
  });
  if (words.empty())
    return {};
  std::map<std::string, uint32_t> tf;
  for (auto& w : words)
    ++tf[w];
  if (tf.size() > max_terms_per_document)
    throw storage_error{errc::invalid_value,
                        "document '" + std::string{suffix.substr(0, suffix.size() - 2)}
                          + "' has more than " + std::to_string(max_terms_per_document)
                          + " distinct words for fulltext index " + index_name};
  std::vector<entry> out;
  out.reserve(tf.size() + 1);
  entry d;
  d.key = prefix + 'd';
  d.key += suffix;
  put_u32(d.value, words.size());
  out.push_back(std::move(d));
  for (auto& [term, n] : tf) { // map order: the keys come out sorted
    entry p;
    p.key = prefix + 'p';
    p.key += term;
    p.key.push_back('\0');
    p.key += suffix;
    put_u32(p.value, n);
    put_u32(p.value, words.size());
    out.push_back(std::move(p));
  }
  return out;
}

uint64_t words_of(const std::string& prefix, const std::vector<entry>& es) {
  // 'd' sorts before 'p': the document's entry comes first.
  if (es.empty() || es.front().key.size() <= prefix.size()
      || es.front().key[prefix.size()] != 'd')
    return 0;
  return get_u32(es.front().value, 0);
}

std::optional<uint64_t> doc_words(std::string_view entry, std::string_view value) {
  if (entry.empty() || entry[0] != 'd')
    return std::nullopt;
  return get_u32(value, 0);
}

std::vector<hit> search(const engine_snapshot& snap, const std::string& prefix,
                        const where_clause& c, uint64_t docs, uint64_t words,
                        uint64_t& postings) {
  // Each term's postings, in key order.
  std::vector<std::vector<posting>> lists;
  for (auto& term : c.terms) {
    auto from = prefix + 'p' + term;
    from.push_back('\0');
    std::vector<posting> list;
    snap.scan(keyspace::index, from, false, [&](std::string_view k, std::string_view v) {
      if (k.substr(0, from.size()) != from)
        return false;
      list.push_back({std::string{k.substr(from.size())}, get_u32(v, 0), get_u32(v, 4)});
      return true;
    });
    postings += list.size();
    if (list.empty())
      return {}; // a term no document holds: nothing holds them all
    lists.push_back(std::move(list));
  }
  // Intersect, starting from the rarest term.
  std::vector<size_t> order(lists.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t x, size_t y) { return lists[x].size() < lists[y].size(); });
  auto average = docs > 0 ? static_cast<double>(words) / static_cast<double>(docs) : 0.0;
  std::vector<hit> out;
  auto& first = lists[order[0]];
  std::vector<size_t> at(lists.size(), 0);
  for (auto& p : first) {
    double score = text::bm25(p.tf, p.words, average, docs, first.size());
    bool all = true;
    for (size_t j = 1; j < order.size() && all; ++j) {
      auto& list = lists[order[j]];
      auto& i = at[order[j]];
      // Galloping would pay off for very unequal lists; lower_bound from the
      // last place keeps it O(n log m).
      i = static_cast<size_t>(std::lower_bound(list.begin() + static_cast<ptrdiff_t>(i),
                                               list.end(), p.suffix, by_suffix)
                              - list.begin());
      if (i == list.size() || list[i].suffix != p.suffix) {
        all = false;
        break;
      }
      score += text::bm25(list[i].tf, list[i].words, average, docs, list.size());
    }
    if (all)
      out.push_back({p.suffix, score});
  }
  return out;
}

} // namespace strata::text_index

#include "backends/text.hpp"

#include <cmath>
#include <memory>

#include <libstemmer.h>

namespace strata::text {

namespace {

struct stemmer_deleter {
  void operator()(sb_stemmer* s) const {
    sb_stemmer_delete(s);
  }
};

/// A stemmer is not thread-safe: one per thread, made on first use.
sb_stemmer& stemmer() {
  thread_local std::unique_ptr<sb_stemmer, stemmer_deleter> s{
    sb_stemmer_new("english", "UTF_8")};
  if (!s)
    throw std::bad_alloc{};
  return *s;
}

bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

} // namespace

void append_terms(std::string_view s, std::vector<std::string>& out) {
  std::string word;
  auto& st = stemmer();
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && !word_byte(static_cast<unsigned char>(s[i])))
      ++i;
    word.clear();
    while (i < s.size() && word_byte(static_cast<unsigned char>(s[i]))) {
      auto c = s[i++];
      word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    }
    if (word.empty() || word.size() > max_word)
      continue;
    auto* stem = sb_stemmer_stem(&st, reinterpret_cast<const sb_symbol*>(word.data()),
                                 static_cast<int>(word.size()));
    if (stem == nullptr) // out of memory: the word as it is
      out.push_back(word);
    else
      out.emplace_back(reinterpret_cast<const char*>(stem),
                       static_cast<size_t>(sb_stemmer_length(&st)));
  }
}

std::vector<std::string> terms(std::string_view s) {
  std::vector<std::string> out;
  append_terms(s, out);
  return out;
}

double bm25(uint32_t tf, uint32_t length, double average, uint64_t docs, uint64_t df) {
  auto n = static_cast<double>(docs);
  auto d = static_cast<double>(std::min(df, docs));
  auto idf = std::log(1.0 + (n - d + 0.5) / (d + 0.5));
  auto norm = average > 0 ? static_cast<double>(length) / average : 1.0;
  auto f = static_cast<double>(tf);
  return idf * f * (bm25_k1 + 1) / (f + bm25_k1 * (1 - bm25_b + bm25_b * norm));
}

} // namespace strata::text

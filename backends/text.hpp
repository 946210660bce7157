#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// @file
/// Text for fulltext indexes and `text` conditions: words are cut, case-folded
/// and stemmed one way everywhere (index entries, query terms, matching), and
/// scored with Okapi BM25. Plain C++.

namespace strata::text {

/// Longest word kept, in bytes: longer runs are not words anyone searches.
constexpr size_t max_word = 64;

/// The terms of `s` in order of appearance, repeats included: runs of ASCII
/// letters and digits and of non-ASCII bytes (UTF-8 letters stay inside
/// words), ASCII letters lowercased, each stemmed by the Snowball English
/// stemmer ("running" and "runs" become "run").
std::vector<std::string> terms(std::string_view s);

/// Appends the terms of `s` to `out`.
void append_terms(std::string_view s, std::vector<std::string>& out);

/// BM25 parameters (Lucene's defaults).
constexpr double bm25_k1 = 1.2;
constexpr double bm25_b = 0.75;

/// One term's BM25 weight in a document: `tf` occurrences in a document of
/// `length` terms, where `docs` documents of average length `average` hold
/// text and `df` of them hold the term. idf is log(1 + (N - df + 0.5) /
/// (df + 0.5)), always positive.
double bm25(uint32_t tf, uint32_t length, double average, uint64_t docs, uint64_t df);

} // namespace strata::text

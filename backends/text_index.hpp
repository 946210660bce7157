#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/engine.hpp"
#include "backends/query.hpp"

/// @file
/// The entries of fulltext indexes and searching them. An index's entries
/// (after its `name \0` prefix):
///
///     p TERM \0 KEY LEN  ->  tf (u32 BE), words of the document (u32 BE)
///     d KEY LEN          ->  words of the document (u32 BE)
///
/// The postings of a term lie together, ordered by document key, so a search
/// reads one range per term and intersects them; the `d` entries give the
/// shard's document count and average length (BM25's statistics) when the
/// index is opened. Scores use the shard's own statistics, as most search
/// engines' shards do: with keys spread by hash they differ little between
/// shards.

namespace strata::text_index {

/// Most distinct terms one document may have in a fulltext index.
constexpr size_t max_terms_per_document = 65536;

struct entry {
  std::string key;
  std::string value;
};

/// The entries, sorted by key, of the strings at `path` in `doc`, a document
/// stored under the key that `suffix` (KEY LEN) names. `prefix` is the
/// index's. Empty if the field holds no word. INVALID_VALUE (storage_error)
/// past max_terms_per_document.
std::vector<entry> entries(const std::string& prefix, const field_path& path,
                           std::string_view suffix, const document& doc,
                           const std::string& index_name);

/// The words of the document whose entries (as `entries` gives them) these
/// are; 0 for none.
uint64_t words_of(const std::string& prefix, const std::vector<entry>& es);

/// If `entry` (the key after the prefix) is a document's `d` entry: its words.
std::optional<uint64_t> doc_words(std::string_view entry, std::string_view value);

/// A document holding every term, and its relevance.
struct hit {
  /// The entry suffix: KEY LEN.
  std::string suffix;
  double score = 0;
};

/// The documents holding every term of text condition `c`, in key order,
/// scored with BM25 over `docs` documents of `words` words in all. `postings`
/// gets the postings read.
std::vector<hit> search(const engine_snapshot& snap, const std::string& prefix,
                        const where_clause& c, uint64_t docs, uint64_t words,
                        uint64_t& postings);

} // namespace strata::text_index

// strata-serialization-bench: every format x compression on one realistic
// corpus, in one run: stored bytes, encode and decode throughput, each with
// its ratio to the default (binary document, uncompressed).
//
// The corpus: order documents as a shop would store them (customer with
// name, e-mail and address, 1-8 line items, timestamps, status, tags and a
// free-text comment from a small vocabulary), 300 B to 2 KB each in the
// binary encoding. Encode is document -> stored value (header, payload,
// compression); decode is stored value -> document, i.e. what a query or an
// index does per value it reads.
//
// Not a test; run by hand: build-release/bench/strata-serialization-bench
// [--docs N] [--seconds S]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "strata/serialization.hpp"

namespace {

using namespace strata;
using clock_type = std::chrono::steady_clock;

const char* words[] = {"great",   "product", "arrived", "late",   "box",     "damaged",
                       "works",   "as",      "described", "would", "buy",    "again",
                       "the",     "color",   "is",      "darker", "than",    "pictured",
                       "fast",    "shipping", "thanks", "quality", "excellent", "poor"};
const char* cities[] = {"Lyon", "Berlin", "Porto", "Oslo", "Krakow", "Ghent", "Turin"};
const char* first_names[] = {"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Leslie"};
const char* statuses[] = {"pending", "paid", "shipped", "delivered", "returned"};

document make_order(std::mt19937_64& rng, int64_t id) {
  auto pick = [&](auto& xs) { return xs[rng() % (sizeof(xs) / sizeof(xs[0]))]; };
  auto customer = document::object();
  std::string name = pick(first_names);
  customer.set("name", document{name + " " + pick(first_names) + "son"});
  customer.set("email", document{name + std::to_string(rng() % 1000) + "@example.org"});
  auto address = document::object();
  address.set("street", document{std::to_string(1 + rng() % 200) + " " + pick(words) + " street"});
  address.set("city", document{pick(cities)});
  address.set("zip", document{std::to_string(10000 + rng() % 90000)});
  customer.set("address", std::move(address));
  auto items = document::array();
  auto n = 1 + rng() % 8;
  for (uint64_t i = 0; i < n; ++i) {
    auto item = document::object();
    item.set("sku", document{"SKU-" + std::to_string(rng() % 5000)});
    item.set("title", document{std::string{pick(words)} + " " + pick(words) + " " + pick(words)});
    item.set("quantity", document::integer(static_cast<int64_t>(1 + rng() % 4)));
    item.set("price", document::real(static_cast<double>(rng() % 20000) / 100.0));
    items.push_back(std::move(item));
  }
  std::string comment;
  for (uint64_t i = 0, m = rng() % 40; i < m; ++i) {
    comment += pick(words);
    comment += ' ';
  }
  auto tags = document::array();
  for (uint64_t i = 0, m = rng() % 4; i < m; ++i)
    tags.push_back(document{pick(words)});
  auto doc = document::object();
  doc.set("id", document::integer(id));
  doc.set("created", document::integer(1700000000000 + static_cast<int64_t>(rng() % 1000000000)));
  doc.set("status", document{pick(statuses)});
  doc.set("customer", std::move(customer));
  doc.set("items", std::move(items));
  doc.set("tags", std::move(tags));
  doc.set("comment", document{comment});
  doc.set("gift", document::boolean(rng() % 5 == 0));
  return doc;
}

struct row {
  value_encoding format;
  value_compression compression;
  size_t bytes = 0;
  size_t compressed_values = 0;
  double encode_per_s = 0;
  double decode_per_s = 0;
};

/// Runs `f` over the corpus again and again for `seconds`; items per second.
template <class F>
double rate(size_t n, double seconds, F f) {
  size_t done = 0;
  auto start = clock_type::now();
  std::chrono::duration<double> elapsed{0};
  do {
    for (size_t i = 0; i < n; ++i)
      f(i);
    done += n;
    elapsed = clock_type::now() - start;
  } while (elapsed.count() < seconds);
  return static_cast<double>(done) / elapsed.count();
}

} // namespace

int main(int argc, char** argv) {
  size_t docs = 5000;
  double seconds = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string arg = argv[i];
    if (arg == "--docs")
      docs = std::strtoull(argv[i + 1], nullptr, 10);
    else if (arg == "--seconds")
      seconds = std::strtod(argv[i + 1], nullptr);
    else {
      std::fprintf(stderr, "usage: %s [--docs N] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  std::mt19937_64 rng{2026};
  std::vector<document> corpus;
  size_t binary_bytes = 0;
  for (size_t i = 0; i < docs; ++i) {
    corpus.push_back(make_order(rng, static_cast<int64_t>(i)));
    binary_bytes += encode_document(corpus.back()).size();
  }
  std::printf("corpus: %zu order documents, %.0f bytes each on average in the binary encoding\n",
              docs, static_cast<double>(binary_bytes) / static_cast<double>(docs));
  std::vector<row> rows;
  for (auto f : {value_encoding::document, value_encoding::msgpack, value_encoding::json})
    for (auto c : {value_compression::none, value_compression::gzip, value_compression::lz4,
                   value_compression::snappy, value_compression::zstd}) {
      row r{f, c};
      serialization s;
      s.format = f;
      s.compression = c;
      std::vector<std::vector<uint8_t>> stored(corpus.size());
      r.encode_per_s = rate(corpus.size(), seconds,
                            [&](size_t i) { stored[i] = encode_doc(corpus[i], s); });
      for (auto& x : stored) {
        r.bytes += x.size();
        r.compressed_values += x[3] != 0 ? 1 : 0;
      }
      for (size_t i = 0; i < corpus.size(); ++i)
        if (decode_doc(stored[i]) != corpus[i]) {
          std::fprintf(stderr, "%s + %s: document %zu does not round-trip\n", to_string(f),
                       to_string(c), i);
          return 1;
        }
      size_t sink = 0;
      r.decode_per_s = rate(corpus.size(), seconds, [&](size_t i) {
        sink += decode_doc(stored[i]).as_object().size();
      });
      if (sink == 0)
        return 1;
      rows.push_back(r);
    }
  auto& base = rows.front();
  std::printf("\n%-9s %-7s %12s %8s %11s %7s %11s %7s %11s\n", "format", "compr.", "bytes",
              "ratio", "encode/s", "ratio", "decode/s", "ratio", "compressed");
  for (auto& r : rows)
    std::printf("%-9s %-7s %12zu %7.2fx %11.0f %6.2fx %11.0f %6.2fx %10.0f%%\n",
                to_string(r.format), to_string(r.compression), r.bytes,
                static_cast<double>(r.bytes) / static_cast<double>(base.bytes), r.encode_per_s,
                r.encode_per_s / base.encode_per_s, r.decode_per_s,
                r.decode_per_s / base.decode_per_s,
                100.0 * static_cast<double>(r.compressed_values) / static_cast<double>(docs));
  std::printf("\nratios: against document + none in this run (bytes: smaller is better; "
              "rates: larger is better)\n");
}

// Serialization formats and compression: every format x compression round-trips
// random documents, the header names what was written, small and
// incompressible payloads stay plain, and damaged or hostile values are
// refused with a codec_error (never a crash, never a huge allocation).

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "strata/envelope.hpp"
#include "strata/serialization.hpp"
#include "tests/random_docs.hpp"

using namespace strata;
using Catch::Matchers::Contains;
using strata::test::random_document;

namespace {

const value_encoding formats[] = {value_encoding::document, value_encoding::json,
                                  value_encoding::msgpack};
const value_compression compressions[] = {value_compression::none, value_compression::gzip,
                                          value_compression::lz4, value_compression::snappy,
                                          value_compression::zstd};

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const codec_error& e) {
    return e.what();
  }
  return "no error";
}

/// Whether JSON holds `x` exactly: finite reals, UTF-8 text, and no object
/// that looks like the {"$bytes": ...} marker.
bool json_exact(const document& x) {
  switch (x.kind()) {
    case doc_kind::real:
      return std::isfinite(x.as_real());
    case doc_kind::string:
      return is_utf8(x.as_string());
    case doc_kind::array:
      for (auto& y : x.as_array())
        if (!json_exact(y))
          return false;
      return true;
    case doc_kind::object:
      for (auto& [k, y] : x.as_object())
        if (!is_utf8(k) || (k == "$bytes" && x.as_object().size() == 1) || !json_exact(y))
          return false;
      return true;
    default:
      return true;
  }
}

/// A realistic record: repeated field names and text, so it compresses.
document order(int i) {
  auto items = document::array();
  for (int j = 0; j < 8; ++j) {
    auto item = document::object();
    item.set("sku", document{"SKU-" + std::to_string(1000 + (i * 7 + j) % 50)});
    item.set("quantity", document::integer(1 + j % 3));
    item.set("price", document::real(9.99 + j));
    item.set("description", document{"a plain description of the item, the same words again"});
    items.push_back(std::move(item));
  }
  auto doc = document::object();
  doc.set("id", document::integer(i));
  doc.set("customer", document{"customer-" + std::to_string(i % 100)});
  doc.set("status", document{i % 2 ? "shipped" : "pending"});
  doc.set("items", std::move(items));
  return doc;
}

serialization settings(value_encoding f, value_compression c) {
  serialization s;
  s.format = f;
  s.compression = c;
  return s;
}

std::vector<uint8_t> bytes_of(std::initializer_list<int> xs) {
  std::vector<uint8_t> out;
  for (auto x : xs)
    out.push_back(static_cast<uint8_t>(x));
  return out;
}

} // namespace

TEST_CASE("serialization: every format and compression round-trips random documents",
          "[serialization]") {
  std::mt19937_64 rng{4242};
  for (int i = 0; i < 400; ++i) {
    auto doc = random_document(rng, 0);
    for (auto f : formats)
      for (auto c : compressions) {
        auto s = settings(f, c);
        s.compress_min = 0;
        INFO("document " << i << ", " << to_string(f) << " + " << to_string(c));
        if (f == value_encoding::json && !json_exact(doc)) {
          CHECK_THAT(error_of([&] { encode_doc(doc, s); }), Contains("format json cannot"));
          continue;
        }
        auto stored = encode_doc(doc, s);
        REQUIRE(stored.size() >= value_header_size);
        CHECK(stored[2] == static_cast<uint8_t>(f));
        CHECK((stored[3] == static_cast<uint8_t>(c) || stored[3] == 0));
        CHECK(decode_doc(stored) == doc);
      }
  }
}

TEST_CASE("serialization: the header names format and compression; small or "
          "incompressible payloads stay plain",
          "[serialization]") {
  auto doc = order(7);
  for (auto f : formats)
    for (auto c : compressions) {
      INFO(to_string(f) << " + " << to_string(c));
      auto stored = encode_doc(doc, settings(f, c));
      CHECK(stored[0] == value_magic);
      CHECK(stored[2] == static_cast<uint8_t>(f));
      CHECK(stored[3] == static_cast<uint8_t>(c));
      auto plain = encode_doc(doc, settings(f, value_compression::none));
      if (c != value_compression::none)
        CHECK(stored.size() < plain.size() / 2);
      opened_value v{stored.data(), stored.size()};
      CHECK(v.header().encoding == f);
      CHECK(v.payload().size() == plain.size() - value_header_size);
      CHECK(decode_doc(stored) == doc);
    }
  SECTION("below compress_min") {
    auto small = document::object({{"a", 1}});
    for (auto c : compressions) {
      auto stored = encode_doc(small, settings(value_encoding::msgpack, c));
      CHECK(stored[3] == 0);
      CHECK(stored.size() == value_header_size + 4); // 0x81 0xa1 'a' 0x01
      CHECK(decode_doc(stored) == small);
    }
  }
  SECTION("incompressible") {
    std::mt19937_64 rng{1};
    document::bytes_type noise(4000);
    for (auto& b : noise)
      b = static_cast<uint8_t>(rng());
    auto doc2 = document::bytes(noise);
    for (auto c : compressions) {
      auto stored = encode_doc(doc2, settings(value_encoding::document, c));
      CHECK(stored[3] == 0);
      CHECK(decode_doc(stored) == doc2);
    }
  }
  SECTION("extremely compressible values read back") {
    auto zeros = document::bytes(document::bytes_type(8u << 20, 0));
    for (auto c : compressions) {
      auto stored = encode_doc(zeros, settings(value_encoding::msgpack, c));
      if (c != value_compression::none)
        CHECK(stored.size() < (1u << 20));
      CHECK(decode_doc(stored) == zeros);
    }
  }
  SECTION("the binary document format uncompressed is today's encoding") {
    CHECK(encode_doc(doc, serialization{}) == encode_doc(doc));
  }
}

TEST_CASE("serialization: msgpack written elsewhere reads as documents", "[serialization]") {
  auto stored = [](std::initializer_list<int> payload) {
    auto out = bytes_of({0x53, 1, 3, 0});
    for (auto x : payload)
      out.push_back(static_cast<uint8_t>(x));
    return out;
  };
  // {"a": 1, "b": [true, nil, -1, 1.5], "c": bin "xy"}
  auto doc = decode_doc(stored({0x83, 0xa1, 'a', 0x01, 0xa1, 'b', 0x94, 0xc3, 0xc0, 0xff, 0xcb,
                                0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa1, 'c', 0xc4, 2, 'x', 'y'}));
  CHECK(doc.find("a")->as_int() == 1);
  CHECK(doc.find("b.0")->as_bool());
  CHECK(doc.find("b.1")->is_null());
  CHECK(doc.find("b.2")->as_int() == -1);
  CHECK(doc.find("b.3")->as_real() == 1.5);
  CHECK(doc.find("c")->as_bytes() == document::bytes_type{'x', 'y'});
  // float32 reads as a real.
  CHECK(decode_doc(stored({0xca, 0x3f, 0xc0, 0, 0})).as_real() == 1.5);
  SECTION("what documents cannot hold is refused") {
    CHECK_THAT(error_of([&] { decode_doc(stored({0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                  0xff, 0xff})); }),
               Contains("above the largest document integer"));
    CHECK_THAT(error_of([&] { decode_doc(stored({0xd4, 1, 2})); }), Contains("extension"));
    CHECK_THAT(error_of([&] { decode_doc(stored({0x81, 0x01, 0x02})); }),
               Contains("not a string"));
    CHECK_THAT(error_of([&] { decode_doc(stored({0x82, 0xa1, 'a', 1, 0xa1, 'a', 2})); }),
               Contains("twice"));
    CHECK_THAT(error_of([&] { decode_doc(stored({0x01, 0x02})); }), Contains("trailing"));
    CHECK_THAT(error_of([&] { decode_doc(stored({0x92, 0x01})); }), Contains("msgpack"));
  }
  SECTION("a count larger than the input allocates nothing") {
    // An array of 2^32-1 elements in 5 bytes.
    CHECK_THAT(error_of([&] { decode_doc(stored({0xdd, 0xff, 0xff, 0xff, 0xff})); }),
               Contains("msgpack payload does not decode"));
  }
  SECTION("nesting deeper than documents allow") {
    auto deep = bytes_of({0x53, 1, 3, 0});
    for (int i = 0; i < 200; ++i)
      deep.push_back(0x91);
    deep.push_back(0xc0);
    CHECK_THAT(error_of([&] { decode_doc(deep); }), Contains("msgpack"));
  }
}

TEST_CASE("serialization: json values are readable text and exact", "[serialization]") {
  auto doc = document::object({{"name", "Zoë"}, {"n", 3}});
  doc.set("r", document::real(1.0));
  doc.set("raw", document::bytes({0, 1, 2}));
  auto stored = encode_doc(doc, settings(value_encoding::json, value_compression::none));
  std::string text(stored.begin() + value_header_size, stored.end());
  CHECK(text == R"({"name":"Zoë","n":3,"r":1.0,"raw":{"$bytes":"AAEC"}})");
  auto back = decode_doc(stored);
  CHECK(back == doc);
  CHECK(back.find("r")->is_real());
  SECTION("what json cannot hold exactly is refused when writing") {
    auto s = settings(value_encoding::json, value_compression::none);
    CHECK_THAT(error_of([&] { encode_doc(document::real(NAN), s); }), Contains("NaN"));
    CHECK_THAT(error_of([&] { encode_doc(document{std::string{"\xff"}}, s); }),
               Contains("not UTF-8"));
    CHECK_THAT(error_of([&] { encode_doc(document::object({{"$bytes", "AA=="}}), s); }),
               Contains("$bytes"));
  }
  SECTION("damaged text is refused when reading") {
    auto bad = [](std::string payload) {
      auto out = bytes_of({0x53, 1, 2, 0});
      out.insert(out.end(), payload.begin(), payload.end());
      return out;
    };
    CHECK_THAT(error_of([&] { decode_doc(bad("{\"a\":")); }), Contains("not JSON"));
    CHECK_THAT(error_of([&] { decode_doc(bad("{} x")); }), Contains("not JSON"));
    CHECK_THAT(error_of([&] { decode_doc(bad(R"({"a":1,"a":2})")); }), Contains("twice"));
    CHECK_THAT(error_of([&] { decode_doc(bad(R"({"$bytes":"!!"})")); }),
               Contains("not base64"));
    CHECK_THAT(error_of([&] { decode_doc(bad(std::string(300, '['))); }),
               Contains("json"));
  }
}

TEST_CASE("serialization: damaged compressed values are refused", "[serialization]") {
  auto doc = order(3);
  for (auto c : compressions) {
    if (c == value_compression::none)
      continue;
    INFO(to_string(c));
    auto stored = encode_doc(doc, settings(value_encoding::document, c));
    REQUIRE(stored[3] == static_cast<uint8_t>(c));
    SECTION(std::string{"truncated "} + to_string(c)) {
      auto cut = stored;
      cut.resize(cut.size() - 5);
      CHECK_THAT(error_of([&] { decode_doc(cut); }), Contains("does not decompress"));
    }
    SECTION(std::string{"wrong size "} + to_string(c)) {
      auto lie = stored;
      lie[4] = static_cast<uint8_t>(lie[4] ^ 0x01); // the varint's low bits
      CHECK_THAT(error_of([&] { decode_doc(lie); }), Contains("decompress"));
    }
    SECTION(std::string{"a bomb "} + to_string(c)) {
      // Claims 2^40 bytes from a few: refused before allocating.
      auto bomb = bytes_of({0x53, 1, 1, static_cast<int>(c), 0x80, 0x80, 0x80, 0x80, 0x80,
                            0x20, 1, 2, 3});
      CHECK_THAT(error_of([&] { decode_doc(bomb); }), Contains("claims"));
    }
    SECTION(std::string{"no size "} + to_string(c)) {
      CHECK_THAT(error_of([&] { decode_doc(bytes_of({0x53, 1, 1, static_cast<int>(c)})); }),
                 Contains("size prefix"));
    }
  }
}

TEST_CASE("serialization: random corruption of stored values never crashes",
          "[serialization]") {
  std::mt19937_64 rng{77};
  std::vector<std::vector<uint8_t>> samples;
  for (auto f : formats)
    for (auto c : compressions)
      for (int i = 0; i < 4; ++i) {
        auto doc = f == value_encoding::json ? order(i) : random_document(rng, 0);
        auto s = settings(f, c);
        s.compress_min = 0;
        samples.push_back(encode_doc(doc, s));
      }
  int refused = 0;
  for (int round = 0; round < 20000; ++round) {
    auto x = samples[rng() % samples.size()];
    auto flips = 1 + rng() % 4;
    for (uint64_t k = 0; k < flips; ++k) {
      auto at = value_header_size + rng() % (x.size() - value_header_size + 1);
      if (at < x.size())
        x[at] = static_cast<uint8_t>(rng());
    }
    if (rng() % 4 == 0)
      x.resize(value_header_size + rng() % (x.size() - value_header_size + 1));
    try {
      decode_doc(x);
    } catch (const codec_error&) {
      ++refused;
    }
  }
  CHECK(refused > 1000);
}

TEST_CASE("serialization: names and settings", "[serialization]") {
  value_encoding f{};
  value_compression c{};
  for (auto name : {"document", "json", "msgpack", "protobuf", "custom"}) {
    REQUIRE(parse_format(name, f));
    CHECK(std::string{to_string(f)} == name);
  }
  for (auto name : {"none", "gzip", "lz4", "snappy", "zstd"}) {
    REQUIRE(parse_compression(name, c));
    CHECK(std::string{to_string(c)} == name);
  }
  CHECK_FALSE(parse_format("raw", f));
  CHECK_FALSE(parse_format("xml", f));
  CHECK_FALSE(parse_compression("brotli", c));
  serialization s;
  CHECK(s.problem().empty());
  s.format = value_encoding::raw;
  CHECK_THAT(s.problem(), Contains("format must be"));
  s.format = static_cast<value_encoding>(9);
  CHECK_THAT(s.problem(), Contains("format must be"));
  s.format = value_encoding::json;
  s.compression = static_cast<value_compression>(9);
  CHECK_THAT(s.problem(), Contains("compression must be"));
  SECTION("formats that need a serializer") {
    CHECK_THAT(error_of([] {
                 encode_doc(document{1}, settings(value_encoding::custom,
                                                  value_compression::none));
               }),
               Contains("needs a serializer"));
  }
  SECTION("custom values hold no document") {
    auto stored = seal_value(value_encoding::custom, "opaque", serialization{});
    CHECK(stored[2] == 5);
    CHECK_THAT(error_of([&] { decode_doc(stored); }), Contains("custom encoding"));
  }
  SECTION("raw values are never compressed by seal_value's callers, but read back") {
    serialization z;
    z.compression = value_compression::zstd;
    z.compress_min = 0;
    auto stored = seal_value(value_encoding::raw, std::string(500, 'x'), z);
    CHECK(stored[3] == static_cast<uint8_t>(value_compression::zstd));
    CHECK_THAT(error_of([&] { raw_payload(stored); }), Contains("compressed"));
    opened_value v{stored.data(), stored.size()};
    CHECK(v.payload() == std::string(500, 'x'));
  }
}

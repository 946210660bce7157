// Tests for the document model, its binary encoding, the stored-value header
// and the cereal mapping (strata/document.hpp, strata/codec.hpp).

#include "strata/codec.hpp"
#include "strata/document.hpp"

#include <cereal/types/array.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "tests/random_docs.hpp"

// -- allocation probe ---------------------------------------------------------

// Records the largest single allocation while armed, so tests can show that a
// hostile length prefix is rejected before anything is allocated for it.
namespace {

bool probe_armed = false;
std::size_t probe_largest = 0;

struct allocation_probe {
  allocation_probe() {
    probe_largest = 0;
    probe_armed = true;
  }
  ~allocation_probe() {
    probe_armed = false;
  }
  std::size_t largest() const {
    return probe_largest;
  }
};

} // namespace

// The whole non-aligned family is replaced so that every allocation and
// deallocation pairs malloc with free (sanitizers check the pairing). Out of
// line, so the compiler never sees free() paired with operator new.
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (probe_armed && size > probe_largest)
    probe_largest = size;
  if (auto ptr = std::malloc(size == 0 ? 1 : size))
    return ptr;
  throw std::bad_alloc{};
}

[[gnu::noinline]] void* operator new[](std::size_t size) {
  return operator new(size);
}

[[gnu::noinline]] void* operator new(std::size_t size,
                                     const std::nothrow_t&) noexcept {
  try {
    return operator new(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

[[gnu::noinline]] void* operator new[](std::size_t size,
                                       const std::nothrow_t&) noexcept {
  return operator new(size, std::nothrow);
}

[[gnu::noinline]] void operator delete(void* ptr) noexcept {
  std::free(ptr);
}

[[gnu::noinline]] void operator delete[](void* ptr) noexcept {
  std::free(ptr);
}

[[gnu::noinline]] void operator delete(void* ptr, std::size_t) noexcept {
  std::free(ptr);
}

[[gnu::noinline]] void operator delete[](void* ptr, std::size_t) noexcept {
  std::free(ptr);
}

[[gnu::noinline]] void operator delete(void* ptr,
                                       const std::nothrow_t&) noexcept {
  std::free(ptr);
}

[[gnu::noinline]] void operator delete[](void* ptr,
                                         const std::nothrow_t&) noexcept {
  std::free(ptr);
}

using namespace strata;
using strata::test::random_document;
using Catch::Matchers::Contains;

namespace {

// -- helpers ------------------------------------------------------------------

// Runs `f`, requires a codec_error and returns its message. Any other
// exception escapes and fails the test.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const codec_error& e) {
    return e.what();
  }
  FAIL("expected a codec_error");
  return {};
}

std::vector<uint8_t> bytes_of(std::initializer_list<int> xs) {
  std::vector<uint8_t> result;
  for (auto x : xs)
    result.push_back(static_cast<uint8_t>(x));
  return result;
}

void append_varint(std::vector<uint8_t>& out, uint64_t x) {
  while (x >= 0x80) {
    out.push_back(static_cast<uint8_t>(x | 0x80));
    x >>= 7;
  }
  out.push_back(static_cast<uint8_t>(x));
}

document nested_arrays(std::size_t levels) {
  document result;
  for (std::size_t i = 0; i < levels; ++i) {
    auto outer = document::array();
    outer.push_back(std::move(result));
    result = std::move(outer);
  }
  return result;
}

// -- types for the cereal mapping ---------------------------------------------

struct point {
  double x = 0;
  double y = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(x), CEREAL_NVP(y));
  }

  friend bool operator==(const point& a, const point& b) {
    return a.x == b.x && a.y == b.y;
  }
};

struct tag_count {
  std::string key;
  int64_t count = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(key), CEREAL_NVP(count));
  }

  friend bool operator==(const tag_count& a, const tag_count& b) {
    return a.key == b.key && a.count == b.count;
  }
};

// Members without names become "value0", "value1", ...
struct unnamed_pair {
  int32_t first = 0;
  std::string second;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(first, second);
  }

  friend bool operator==(const unnamed_pair& a, const unnamed_pair& b) {
    return a.first == b.first && a.second == b.second;
  }
};

struct holder {
  point pos;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(pos));
  }
};

// Holds a value a document cannot represent.
struct big {
  uint64_t v = std::numeric_limits<uint64_t>::max();

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(v));
  }
};

// Writes the same member name twice.
struct twice {
  int a = 1;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(cereal::make_nvp("a", a), cereal::make_nvp("a", a));
  }
};

// A versioned type using cereal's generic pair, variant and std::array.
struct versioned {
  std::pair<int, std::string> pr{1, "one"};
  std::variant<int, std::string> var{std::string{"v"}};
  std::array<int16_t, 2> arr{{3, 4}};
  uint32_t seen_version = 0;

  template <class Archive>
  void serialize(Archive& ar, std::uint32_t version) {
    seen_version = version;
    ar(CEREAL_NVP(pr), CEREAL_NVP(var), CEREAL_NVP(arr));
  }
};

enum class color : uint8_t { red = 1, green = 7 };

struct record {
  std::string name;
  std::string with_nul;
  std::string unicode;
  int64_t min_i = 0;
  int64_t max_i = 0;
  uint32_t small_u = 0;
  int8_t tiny = 0;
  uint64_t big_u = 0;
  double neg_zero = 0;
  double huge = 0;
  double pi = 0;
  float ratio = 0;
  bool yes = false;
  bool no = true;
  std::vector<uint8_t> raw;
  point pos;
  std::vector<point> path;
  std::vector<std::string> tags;
  std::vector<tag_count> tag_counts;
  std::optional<int32_t> maybe_set;
  std::optional<int32_t> maybe_empty;
  std::optional<point> maybe_point;
  std::vector<std::optional<int>> sparse;
  std::map<std::string, int> counts;
  std::unordered_map<std::string, std::string> labels;
  std::map<int, std::string> by_id;
  unnamed_pair pair;
  color hue = color::red;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(with_nul), CEREAL_NVP(unicode),
       CEREAL_NVP(min_i), CEREAL_NVP(max_i), CEREAL_NVP(small_u),
       CEREAL_NVP(tiny), CEREAL_NVP(big_u), CEREAL_NVP(neg_zero),
       CEREAL_NVP(huge), CEREAL_NVP(pi), CEREAL_NVP(ratio), CEREAL_NVP(yes),
       CEREAL_NVP(no), CEREAL_NVP(raw), CEREAL_NVP(pos), CEREAL_NVP(path),
       CEREAL_NVP(tags), CEREAL_NVP(tag_counts), CEREAL_NVP(maybe_set),
       CEREAL_NVP(maybe_empty), CEREAL_NVP(maybe_point), CEREAL_NVP(sparse),
       CEREAL_NVP(counts), CEREAL_NVP(labels), CEREAL_NVP(by_id),
       CEREAL_NVP(pair), cereal::make_nvp("color", hue));
  }
};

void check_equal(const record& a, const record& b) {
  CHECK(a.name == b.name);
  CHECK(a.with_nul == b.with_nul);
  CHECK(a.unicode == b.unicode);
  CHECK(a.min_i == b.min_i);
  CHECK(a.max_i == b.max_i);
  CHECK(a.small_u == b.small_u);
  CHECK(a.tiny == b.tiny);
  CHECK(a.big_u == b.big_u);
  CHECK(a.neg_zero == b.neg_zero);
  CHECK(std::signbit(a.neg_zero) == std::signbit(b.neg_zero));
  CHECK(a.huge == b.huge);
  CHECK(a.pi == b.pi);
  CHECK(a.ratio == b.ratio);
  CHECK(a.yes == b.yes);
  CHECK(a.no == b.no);
  CHECK(a.raw == b.raw);
  CHECK(a.pos == b.pos);
  CHECK(a.path == b.path);
  CHECK(a.tags == b.tags);
  CHECK(a.tag_counts == b.tag_counts);
  CHECK(a.maybe_set == b.maybe_set);
  CHECK(a.maybe_empty == b.maybe_empty);
  CHECK(a.maybe_point == b.maybe_point);
  CHECK(a.sparse == b.sparse);
  CHECK(a.counts == b.counts);
  CHECK(a.labels == b.labels);
  CHECK(a.by_id == b.by_id);
  CHECK(a.pair == b.pair);
  CHECK(a.hue == b.hue);
}

record sample_record() {
  record r;
  r.name = "sensor-7";
  r.with_nul = std::string("a\0b\0", 4);
  r.unicode = u8"Grüße, 世界 😀";
  r.min_i = std::numeric_limits<int64_t>::min();
  r.max_i = std::numeric_limits<int64_t>::max();
  r.small_u = 4000000000u;
  r.tiny = -128;
  r.big_u = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  r.neg_zero = -0.0;
  r.huge = 1e308;
  r.pi = 3.141592653589793;
  r.ratio = 0.25f;
  r.yes = true;
  r.no = false;
  r.raw = {0, 1, 2, 0x7f, 0x80, 0xff};
  r.pos = {1.5, -2.25};
  r.path = {{0, 0}, {1, 1}, {2.5, -4}};
  r.tags = {"a", "b", ""};
  r.tag_counts = {{"x", 3}, {"y", -1}};
  r.maybe_set = 42;
  r.maybe_point = point{7, 8};
  r.sparse = {1, std::nullopt, 3};
  r.counts = {{"alpha", 1}, {"beta", -2}, {"", 0}};
  r.labels = {{"zone", "eu"}, {"rack", "r1"}, {"row", "3"}};
  r.by_id = {{3, "three"}, {-1, "minus one"}};
  r.pair = {9, "nine"};
  r.hue = color::green;
  return r;
}

} // namespace

CEREAL_CLASS_VERSION(versioned, 5)

// -- document model -----------------------------------------------------------

TEST_CASE("document: kinds, accessors and mutation", "[document]") {
  CHECK(document{}.kind() == doc_kind::null);
  CHECK(document{true}.as_bool());
  CHECK(document{42}.as_int() == 42);
  CHECK(document{uint8_t{200}}.as_int() == 200);
  CHECK(document{2.5}.as_real() == 2.5);
  CHECK(document{"hi"}.as_string() == "hi");
  CHECK(document{std::string_view{"sv"}}.as_string() == "sv");
  CHECK(document::bytes({1, 2}).as_bytes() == std::vector<uint8_t>{1, 2});
  CHECK(std::string{to_string(doc_kind::object)} == "object");
  SECTION("wrong kind throws") {
    document x{42};
    CHECK_THAT(error_of([&] { x.as_string(); }),
               Contains("expected string, found integer"));
    CHECK_THROWS_AS(x.as_bool(), codec_error);
    CHECK_THROWS_AS(x.as_real(), codec_error);
    CHECK_THROWS_AS(x.as_bytes(), codec_error);
    CHECK_THROWS_AS(x.as_array(), codec_error);
    CHECK_THROWS_AS(x.as_object(), codec_error);
    CHECK_THROWS_AS(x.set("a", 1), codec_error);
    CHECK_THROWS_AS(x.push_back(1), codec_error);
    CHECK(x.get("a") == nullptr);
  }
  SECTION("unsigned values above INT64_MAX are rejected") {
    CHECK_THAT(error_of([] { document{std::numeric_limits<uint64_t>::max()}; }),
               Contains("exceeds INT64_MAX"));
  }
  SECTION("objects keep insertion order and unique keys") {
    auto obj = document::object({{"b", 1}, {"a", 2}});
    obj.set("c", 3);
    obj.set("b", "replaced");
    REQUIRE(obj.as_object().size() == 3);
    CHECK(obj.as_object()[0].first == "b");
    CHECK(obj.get("b")->as_string() == "replaced");
    CHECK(obj.as_object()[2].first == "c");
    CHECK(obj.get("missing") == nullptr);
    CHECK_THAT(error_of([] { document::object({{"k", 1}, {"k", 2}}); }),
               Contains("\"k\""));
  }
  SECTION("arrays") {
    auto arr = document::array({1, "two"});
    arr.push_back(nullptr);
    REQUIRE(arr.as_array().size() == 3);
    CHECK(arr.as_array()[2].is_null());
  }
  SECTION("equality is structural and exact") {
    auto nan = std::numeric_limits<double>::quiet_NaN();
    CHECK(document{nan} == document{nan});
    CHECK(document{-0.0} != document{0.0});
    CHECK(document{1} != document{1.0});
    CHECK(document::array({1, 2}) == document::array({1, 2}));
    CHECK(document::array({1, 2}) != document::array({2, 1}));
    CHECK(document::object({{"a", 1}, {"b", 2}})
          != document::object({{"b", 2}, {"a", 1}}));
    CHECK(document::object({{"a", document::array({nan})}})
          == document::object({{"a", document::array({nan})}}));
  }
}

TEST_CASE("document: find follows dotted paths", "[document]") {
  auto doc = document::object({
    {"pos", document::object({{"x", 1.0}, {"y", 4}})},
    {"tags", document::array({"a", "b", "c"})},
    {"counts", document::array({document::object({{"key", "x"}, {"n", 1}}),
                                document::object({{"key", "y"}, {"n", 2}})})},
    {"name", "n"},
    {"7", "seven"},
  });
  REQUIRE(doc.find("pos.y") != nullptr);
  CHECK(doc.find("pos.y")->as_int() == 4);
  CHECK(doc.find("tags.1")->as_string() == "b");
  CHECK(doc.find("counts.0.key")->as_string() == "x");
  CHECK(doc.find("counts.1.n")->as_int() == 2);
  CHECK(doc.find("7")->as_string() == "seven"); // digits name members too
  CHECK(doc.find("") == &doc);
  CHECK(doc.find("pos")->is_object());
  // Absent.
  CHECK(doc.find("nope") == nullptr);
  CHECK(doc.find("pos.z") == nullptr);
  CHECK(doc.find("pos.y.deeper") == nullptr);
  CHECK(doc.find("name.first") == nullptr);
  CHECK(doc.find("pos.") == nullptr);
  CHECK(doc.find(".pos") == nullptr);
  // Out of range or not an index.
  CHECK(doc.find("tags.3") == nullptr);
  CHECK(doc.find("tags.-1") == nullptr);
  CHECK(doc.find("tags.x") == nullptr);
  CHECK(doc.find("tags.") == nullptr);
  CHECK(doc.find("tags.99999999999999999999999999") == nullptr);
  CHECK(doc.find("counts.2.key") == nullptr);
  // The mutable overload reaches the same value.
  *doc.find("tags.0") = "z";
  CHECK(doc.find("tags.0")->as_string() == "z");
  // On a scalar, every non-empty path is absent.
  CHECK(document{5}.find("a") == nullptr);
}

// -- binary encoding ----------------------------------------------------------

TEST_CASE("document: encoding matches the documented format", "[document]") {
  CHECK(encode_document(document{}) == bytes_of({0x00}));
  CHECK(encode_document(document{false}) == bytes_of({0x01}));
  CHECK(encode_document(document{true}) == bytes_of({0x02}));
  CHECK(encode_document(document{0}) == bytes_of({0x03, 0x00}));
  CHECK(encode_document(document{-1}) == bytes_of({0x03, 0x01}));
  CHECK(encode_document(document{1}) == bytes_of({0x03, 0x02}));
  CHECK(encode_document(document{64}) == bytes_of({0x03, 0x80, 0x01}));
  CHECK(encode_document(document{std::numeric_limits<int64_t>::min()})
        == bytes_of({0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                     0x01}));
  CHECK(encode_document(document{1.0})
        == bytes_of({0x04, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}));
  CHECK(encode_document(document{"ab"}) == bytes_of({0x05, 0x02, 'a', 'b'}));
  CHECK(encode_document(document::bytes({9})) == bytes_of({0x06, 0x01, 9}));
  CHECK(encode_document(document::array({true, nullptr}))
        == bytes_of({0x07, 0x02, 0x02, 0x00}));
  CHECK(encode_document(document::object({{"k", 1}}))
        == bytes_of({0x08, 0x01, 0x01, 'k', 0x03, 0x02}));
}

TEST_CASE("document: random documents survive encode and decode",
          "[document]") {
  std::mt19937_64 rng{20240611};
  for (int i = 0; i < 3000; ++i) {
    auto doc = random_document(rng, 0);
    auto buf = encode_document(doc);
    auto back = decode_document(buf);
    REQUIRE(back == doc);
    // Canonical: re-encoding reproduces the bytes.
    REQUIRE(encode_document(back) == buf);
    // JSON rendering copes with everything, including invalid UTF-8 and NaN.
    CHECK_FALSE(to_json(doc).empty());
  }
}

TEST_CASE("document: every truncation of a valid encoding is rejected",
          "[document]") {
  std::vector<std::vector<uint8_t>> samples;
  samples.push_back(encode_document(to_document(sample_record())));
  std::mt19937_64 rng{7};
  for (int i = 0; i < 50; ++i)
    samples.push_back(encode_document(random_document(rng, 0)));
  std::size_t cases = 0;
  for (auto& buf : samples) {
    for (std::size_t len = 0; len < buf.size(); ++len) {
      auto msg = error_of([&] { decode_document(buf.data(), len); });
      CHECK_THAT(msg, Contains("byte offset"));
      ++cases;
    }
  }
  CHECK(cases > 500);
}

TEST_CASE("document: random corruption never crashes the decoder",
          "[document]") {
  std::mt19937_64 rng{99};
  std::vector<std::vector<uint8_t>> samples;
  samples.push_back(encode_document(to_document(sample_record())));
  for (int i = 0; i < 30; ++i)
    samples.push_back(encode_document(random_document(rng, 0)));
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    auto buf = samples[rng() % samples.size()];
    if (buf.empty())
      continue;
    auto flips = 1 + rng() % 4;
    for (std::size_t j = 0; j < flips; ++j)
      buf[rng() % buf.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    try {
      auto doc = decode_document(buf);
      // Whatever is accepted is canonical.
      REQUIRE(encode_document(doc) == buf);
      ++accepted;
    } catch (const codec_error&) {
      ++rejected;
    }
  }
  // Pure noise, too.
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> noise(rng() % 40);
    for (auto& b : noise)
      b = static_cast<uint8_t>(rng() % 256);
    try {
      auto doc = decode_document(noise);
      REQUIRE(encode_document(doc) == noise);
      ++accepted;
    } catch (const codec_error&) {
      ++rejected;
    }
  }
  CHECK(accepted > 0);
  CHECK(rejected > 0);
}

TEST_CASE("document: huge length prefixes are rejected before allocating",
          "[document]") {
  auto check = [](std::vector<uint8_t> buf, const char* expected) {
    std::string msg;
    {
      allocation_probe probe;
      try {
        decode_document(buf);
      } catch (const codec_error& e) {
        msg = e.what();
      }
      // Only small bookkeeping (and the error message) may be allocated.
      CHECK(probe.largest() < 4096);
    }
    CHECK_THAT(msg, Contains(expected));
    CHECK_THAT(msg, Contains("byte offset"));
  };
  std::vector<uint8_t> buf;
  SECTION("the probe sees allocations") {
    allocation_probe probe;
    std::vector<char> big(100000);
    CHECK(probe.largest() >= big.size());
  }
  SECTION("string") {
    buf = bytes_of({0x05});
    append_varint(buf, uint64_t{1} << 62);
    buf.insert(buf.end(), {'a', 'b', 'c'});
    check(buf, "string length 4611686018427387904 exceeds the 3 bytes");
  }
  SECTION("bytes") {
    buf = bytes_of({0x06});
    append_varint(buf, std::numeric_limits<uint64_t>::max());
    check(buf, "bytes length");
  }
  SECTION("array") {
    buf = bytes_of({0x07});
    append_varint(buf, 1000000000000);
    buf.push_back(0x00);
    check(buf, "array element count");
  }
  SECTION("object") {
    buf = bytes_of({0x08});
    append_varint(buf, 1000000000000);
    buf.insert(buf.end(), {0x00, 0x00});
    check(buf, "object member count");
  }
  SECTION("object key") {
    buf = bytes_of({0x08, 0x01});
    append_varint(buf, uint64_t{1} << 40);
    buf.insert(buf.end(), {'k', 0x00});
    check(buf, "object key length");
  }
}

TEST_CASE("document: nesting is limited", "[document]") {
  auto arrays = [](std::size_t levels) {
    std::vector<uint8_t> buf;
    for (std::size_t i = 0; i < levels; ++i)
      buf.insert(buf.end(), {0x07, 0x01});
    buf.push_back(0x00);
    return buf;
  };
  SECTION("10 000 nested arrays") {
    CHECK_THAT(error_of([&] { decode_document(arrays(10000)); }),
               Contains("nest deeper than 100"));
  }
  SECTION("10 000 nested objects") {
    std::vector<uint8_t> buf;
    for (int i = 0; i < 10000; ++i)
      buf.insert(buf.end(), {0x08, 0x01, 0x01, 'k'});
    buf.push_back(0x00);
    CHECK_THAT(error_of([&] { decode_document(buf); }),
               Contains("nest deeper than 100"));
  }
  SECTION("the limit is exact, and the encoder enforces it too") {
    CHECK(decode_document(arrays(max_nesting_depth))
          == nested_arrays(max_nesting_depth));
    CHECK_THROWS_AS(decode_document(arrays(max_nesting_depth + 1)),
                    codec_error);
    CHECK(encode_document(nested_arrays(max_nesting_depth))
          == arrays(max_nesting_depth));
    CHECK_THAT(error_of([] {
                 encode_document(nested_arrays(max_nesting_depth + 1));
               }),
               Contains("nest deeper"));
  }
}

TEST_CASE("document: malformed encodings give actionable errors",
          "[document]") {
  CHECK_THAT(error_of([] { decode_document(nullptr, 0); }),
             Contains("tag byte was expected (at byte offset 0)"));
  CHECK_THAT(error_of([] { decode_document(bytes_of({0x07, 0x01, 0x2a})); }),
             Contains("unknown tag byte 0x2a"));
  CHECK_THAT(error_of([] { decode_document(bytes_of({0x07, 0x01, 0x2a})); }),
             Contains("at byte offset 2"));
  CHECK_THAT(error_of([] { decode_document(bytes_of({0x00, 0x00})); }),
             Contains("trailing bytes"));
  CHECK_THAT(error_of([] {
               decode_document(
                 bytes_of({0x08, 0x02, 0x01, 'k', 0x00, 0x01, 'k', 0x02}));
             }),
             Contains("holds the key \"k\" more than once"));
  CHECK_THAT(error_of([] {
               decode_document(bytes_of({0x03, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x02}));
             }),
             Contains("does not fit in 64 bits"));
  CHECK_THAT(error_of([] {
               decode_document(bytes_of({0x03, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x81, 0x00}));
             }),
             Contains("does not fit in 64 bits"));
  CHECK_THAT(error_of([] { decode_document(bytes_of({0x03, 0x80, 0x00})); }),
             Contains("canonical"));
  CHECK_THAT(error_of([] { decode_document(bytes_of({0x04, 1, 2, 3})); }),
             Contains("needs 8 bytes but 3 remain"));
  // The encoder refuses what the decoder would refuse.
  auto dup = document::object();
  dup.as_object().emplace_back("k", 1);
  dup.as_object().emplace_back("k", 2);
  CHECK_THAT(error_of([&] { encode_document(dup); }),
             Contains("holds the key \"k\" twice"));
}

// -- JSON -----------------------------------------------------------------------

TEST_CASE("document: to_json", "[document]") {
  CHECK(to_json(document{}) == "null");
  CHECK(to_json(document{true}) == "true");
  CHECK(to_json(document{std::numeric_limits<int64_t>::min()})
        == "-9223372036854775808");
  SECTION("strings are escaped") {
    CHECK(to_json(document{"a\"b\\c/"}) == R"("a\"b\\c/")");
    CHECK(to_json(document{"\n\r\t\b\f"}) == R"("\n\r\t\b\f")");
    CHECK(to_json(document{std::string("x\0y\x01\x1f\x7f", 6)})
          == "\"x\\u0000y\\u0001\\u001f\x7f\"");
    CHECK(to_json(document{u8"Grüße 世界 😀"}) == u8"\"Grüße 世界 😀\"");
    // Invalid UTF-8: stray continuation, truncated sequence, overlong form,
    // surrogate. Each bad byte becomes U+FFFD, so the output stays valid.
    CHECK(to_json(document{"\x80"}) == R"("\ufffd")");
    CHECK(to_json(document{"a\xc3"}) == R"("a\ufffd")");
    CHECK(to_json(document{"\xc0\xaf"}) == R"("\ufffd\ufffd")");
    CHECK(to_json(document{"\xed\xa0\x80"}) == R"("\ufffd\ufffd\ufffd")");
  }
  SECTION("reals") {
    CHECK(to_json(document{1.0}) == "1.0");
    CHECK(to_json(document{0.1}) == "0.1");
    CHECK(to_json(document{-0.0}) == "-0.0");
    CHECK(to_json(document{1e308}) == "1e+308");
    CHECK(to_json(document{2.5}) == "2.5");
    CHECK(to_json(document{std::numeric_limits<double>::quiet_NaN()})
          == "null");
    CHECK(to_json(document{-std::numeric_limits<double>::infinity()})
          == "null");
  }
  SECTION("bytes render as base64") {
    CHECK(to_json(document::bytes({})) == R"({"$bytes":""})");
    CHECK(to_json(document::bytes({0, 1, 2, 255})) == R"({"$bytes":"AAEC/w=="})");
    CHECK(to_json(document::bytes({'f', 'o'})) == R"({"$bytes":"Zm8="})");
    CHECK(to_json(document::bytes({'f', 'o', 'o'})) == R"({"$bytes":"Zm9v"})");
  }
  SECTION("containers are compact") {
    auto doc = document::object({
      {"a", document::array({1, true, nullptr})},
      {"b", document::object()},
      {"q\"k", document::array()},
    });
    CHECK(to_json(doc) == R"({"a":[1,true,null],"b":{},"q\"k":[]})");
  }
}

// -- stored-value header --------------------------------------------------------

TEST_CASE("codec: the stored-value header", "[codec]") {
  SECTION("raw values") {
    std::string payload("hello\0world", 11);
    auto stored = encode_raw(payload);
    REQUIRE(stored.size() == value_header_size + payload.size());
    CHECK(stored[0] == 0x53);
    CHECK(stored[1] == 1);
    CHECK(stored[2] == 0);
    CHECK(stored[3] == 0);
    CHECK(raw_payload(stored) == payload);
    auto hdr = read_header(stored.data(), stored.size());
    CHECK(hdr.version == 1);
    CHECK(hdr.encoding == value_encoding::raw);
    CHECK(hdr.compression == value_compression::none);
    CHECK_THAT(error_of([&] { decode_doc(stored); }),
               Contains("raw encoding, but a document-encoded value"));
    auto empty = encode_raw("");
    CHECK(empty.size() == value_header_size);
    CHECK(raw_payload(empty).empty());
  }
  SECTION("document values") {
    auto doc = document::object({{"a", 1}});
    auto stored = encode_doc(doc);
    CHECK(stored[2] == 1);
    CHECK(decode_doc(stored) == doc);
    CHECK_THAT(error_of([&] { raw_payload(stored); }),
               Contains("document encoding, but a raw-encoded value"));
  }
  SECTION("header errors") {
    CHECK_THAT(error_of([] { read_header(nullptr, 0); }),
               Contains("0 bytes long, shorter than the 4-byte value header"));
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x53, 1, 1})); }),
               Contains("3 bytes long"));
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x54, 1, 1, 0, 0})); }),
               Contains("starts with byte 0x54 instead of the magic byte"));
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x53, 2, 1, 0, 0})); }),
               Contains("format version 2"));
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x53, 1, 6, 0, 0})); }),
               Contains("unknown encoding 6"));
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x53, 1, 1, 5, 0})); }),
               Contains("unknown compression 5"));
    CHECK_THAT(error_of([] { decode_value<point>(std::vector<uint8_t>{}); }),
               Contains("shorter than the 4-byte value header"));
  }
  SECTION("payload errors mention the header") {
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x53, 1, 1, 0, 0x2a})); }),
               Contains("after the 4-byte header"));
    CHECK_THAT(error_of([] { decode_doc(bytes_of({0x53, 1, 1, 0})); }),
               Contains("tag byte was expected"));
  }
}

// -- cereal mapping ---------------------------------------------------------------

TEST_CASE("codec: a realistic record round-trips", "[codec]") {
  auto original = sample_record();
  auto doc = to_document(original);
  SECTION("the document has the documented shape") {
    REQUIRE(doc.is_object());
    CHECK(doc.find("pos.y")->as_real() == -2.25);
    CHECK(doc.find("tags.1")->as_string() == "b");
    CHECK(doc.find("tag_counts.0.key")->as_string() == "x");
    CHECK(doc.find("with_nul")->as_string() == std::string("a\0b\0", 4));
    CHECK(doc.find("min_i")->as_int() == std::numeric_limits<int64_t>::min());
    CHECK(doc.find("no")->is_bool());
    CHECK(doc.find("raw")->as_bytes() == original.raw);
    CHECK(doc.find("maybe_set")->as_int() == 42);
    CHECK(doc.find("maybe_empty")->is_null());
    CHECK(doc.find("maybe_point.x")->as_real() == 7);
    CHECK(doc.find("sparse.1")->is_null());
    CHECK(doc.find("counts.beta")->as_int() == -2);
    CHECK(doc.find("counts")->as_object().size() == 3);
    // Hash maps are written in key order.
    auto& labels = doc.find("labels")->as_object();
    REQUIRE(labels.size() == 3);
    CHECK(labels[0].first == "rack");
    CHECK(labels[1].first == "row");
    CHECK(labels[2].first == "zone");
    // Maps with other keys use cereal's generic key/value form.
    CHECK(doc.find("by_id.0.key")->as_int() == -1);
    CHECK(doc.find("by_id.0.value")->as_string() == "minus one");
    CHECK(doc.find("pair.value0")->as_int() == 9);
    CHECK(doc.find("pair.value1")->as_string() == "nine");
    CHECK(doc.find("color")->as_int() == 7);
  }
  SECTION("through a document") {
    check_equal(from_document<record>(doc), original);
  }
  SECTION("through the stored-value encoding") {
    auto stored = encode_value(original);
    CHECK(stored[0] == 0x53);
    CHECK(stored[2] == static_cast<uint8_t>(value_encoding::document));
    check_equal(decode_value<record>(stored), original);
    check_equal(decode_value<record>(stored.data(), stored.size()), original);
    CHECK(decode_doc(stored) == doc);
    CHECK(encode_doc(doc) == stored);
  }
  SECTION("members are read by name, in any order") {
    auto shuffled = document::object();
    auto& members = doc.as_object();
    for (auto i = members.rbegin(); i != members.rend(); ++i)
      shuffled.set(i->first, i->second);
    shuffled.set("unknown_extra", "ignored");
    check_equal(from_document<record>(shuffled), original);
  }
  SECTION("a missing optional member reads as empty") {
    auto& members = doc.as_object();
    auto i = std::find_if(members.begin(), members.end(),
                          [](auto& x) { return x.first == "maybe_set"; });
    REQUIRE(i != members.end());
    members.erase(i);
    auto back = from_document<record>(doc);
    CHECK_FALSE(back.maybe_set.has_value());
    CHECK(back.maybe_point == original.maybe_point);
  }
}

TEST_CASE("codec: top-level values of every mapped kind", "[codec]") {
  CHECK(to_document(int16_t{-5}) == document{-5});
  CHECK(to_document(std::string{"s"}) == document{"s"});
  CHECK(to_document(std::vector<uint8_t>{1, 2}) == document::bytes({1, 2}));
  CHECK(to_document(std::vector<int>{1, 2}) == document::array({1, 2}));
  CHECK(to_document(std::vector<int>{}) == document::array());
  CHECK(to_document(std::optional<int>{}) == document{});
  CHECK(to_document(std::map<std::string, int>{}) == document::object());
  CHECK(from_document<std::vector<int>>(document::array({3, 4}))
        == std::vector<int>{3, 4});
  CHECK(from_document<std::optional<std::string>>(document{}) == std::nullopt);
  CHECK(from_document<std::optional<std::string>>(document{"x"}) == "x");
  CHECK(from_document<double>(document{3}) == 3.0); // integers widen to reals
  CHECK(from_document<std::vector<std::vector<uint8_t>>>(
          document::array({document::bytes({1}), document::bytes({})}))
        == std::vector<std::vector<uint8_t>>{{1}, {}});
}

TEST_CASE("codec: other cereal types follow cereal's JSON layout", "[codec]") {
  versioned x;
  x.pr = {2, "two"};
  x.var = 9;
  x.arr = {{-1, 1}};
  auto doc = to_document(x);
  CHECK(doc.find("cereal_class_version")->as_int() == 5);
  CHECK(doc.find("pr.first")->as_int() == 2);
  CHECK(doc.find("var.index")->as_int() == 0);
  CHECK(doc.find("var.data")->as_int() == 9);
  CHECK(doc.find("arr.value1")->as_int() == 1);
  auto back = decode_value<versioned>(encode_value(x));
  CHECK(back.seen_version == 5);
  CHECK(back.pr == x.pr);
  CHECK(back.var == x.var);
  CHECK(back.arr == x.arr);
}

TEST_CASE("codec: mismatched documents give codec_error", "[codec]") {
  auto stored_point = encode_value(point{1, 2});
  SECTION("missing member") {
    CHECK_THAT(error_of([&] { decode_value<tag_count>(stored_point); }),
               Contains("at 'key': missing member"));
  }
  SECTION("kind mismatch names the path") {
    auto doc = document::object(
      {{"pos", document::object({{"x", 1.0}, {"y", "oops"}})}});
    CHECK_THAT(error_of([&] { from_document<holder>(doc); }),
               Contains("at 'pos.y': expected real, found string"));
    CHECK_THAT(error_of([] { from_document<holder>(document::object()); }),
               Contains("at 'pos': missing member"));
    CHECK_THAT(error_of([] { from_document<point>(document{5}); }),
               Contains("at the top level: expected object or array, found "
                        "integer"));
  }
  SECTION("sequences need arrays, maps need objects") {
    CHECK_THAT(error_of([] {
                 from_document<std::vector<int>>(document::object());
               }),
               Contains("expected array, found object"));
    CHECK_THAT(error_of([] {
                 from_document<std::map<std::string, int>>(document::array());
               }),
               Contains("expected object, found array"));
    CHECK_THAT(error_of([] {
                 from_document<std::vector<int>>(document::array({1, "x"}));
               }),
               Contains("at '1': expected integer, found string"));
    CHECK_THAT(error_of([] {
                 from_document<point>(document::array({1.0, 2.0}));
               }),
               Contains("expected object with member 'x', found array"));
    CHECK_THAT(error_of([] {
                 from_document<std::vector<uint8_t>>(document::array({1}));
               }),
               Contains("expected bytes, found array"));
  }
  SECTION("integers out of range for the target type") {
    CHECK_THAT(error_of([] { from_document<int8_t>(document{300}); }),
               Contains("integer 300 is out of range for the target type "
                        "(-128..127)"));
    CHECK_THAT(error_of([] { from_document<uint32_t>(document{-1}); }),
               Contains("integer -1 is out of range"));
    CHECK_THAT(error_of([] { from_document<float>(document{1e300}); }),
               Contains("out of range"));
    CHECK_THAT(error_of([] { from_document<int>(document{1.5}); }),
               Contains("expected integer, found real"));
    CHECK_THAT(error_of([] { from_document<bool>(document{1}); }),
               Contains("expected boolean, found integer"));
  }
  SECTION("unsigned values above INT64_MAX cannot be written") {
    CHECK_THAT(error_of([] { to_document(big{}); }),
               Contains("at 'v': unsigned integer 18446744073709551615 "
                        "exceeds INT64_MAX"));
    CHECK_THAT(error_of([] { encode_value(big{}); }),
               Contains("exceeds INT64_MAX"));
  }
  SECTION("repeated member names are rejected when writing") {
    CHECK_THAT(error_of([] { to_document(twice{}); }),
               Contains("member name 'a' is written twice"));
  }
  SECTION("corrupted stored values") {
    auto corrupted = stored_point;
    corrupted.back() ^= 0xff;
    corrupted.push_back(0);
    CHECK_THROWS_AS(decode_value<point>(corrupted), codec_error);
  }
}

// The json engine beyond what every engine shares (engine_test): its file as
// a person or a tool reads and writes it, lossless values, damaged files,
// and a write that fails.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "backends/engines.hpp"
#include "backends/fault.hpp"
#include "backends/json_engine.hpp"
#include "strata/envelope.hpp"
#include "tests/temp_dir.hpp"

using namespace strata;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

engine_options options(const std::string& dir) {
  engine_options o;
  o.dir = dir;
  o.engine = engine_kind::json;
  o.map_size = 64 << 20;
  return o;
}

apply_result write(engine& e, std::vector<operation> ops, keyspace ks = keyspace::data) {
  engine_batch batch;
  batch.parts.push_back({ks, &ops});
  return e.apply({batch}, true);
}

std::optional<bytes> get(const engine& e, const std::string& key) {
  std::optional<bytes> result;
  e.read([&](const engine_snapshot& s) {
    std::string_view v;
    if (s.get(keyspace::data, key, v))
      result = bytes_of(v);
  });
  return result;
}

/// A stored document value, as the typed client writes it.
bytes stored(const document& d) {
  auto out = detail::make_value_header(value_encoding::document);
  encode_document(d, out);
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
}

} // namespace

TEST_CASE("json settings that cannot work are INVALID_VALUE") {
  test::temp_dir dir;
  auto o = options(dir / "j");
  o.json.encoding = "latin1";
  CHECK_THROWS_AS(json_engine{o}, storage_error);
  o = options(dir / "j");
  o.json.file = "../escape.json";
  try {
    json_engine e{o};
    FAIL("opened");
  } catch (const storage_error& err) {
    CHECK(err.code() == errc::invalid_value);
    CHECK_THAT(err.what(), Catch::Contains("json file"));
  }
}

TEST_CASE("the json file shows documents as JSON and keeps every other value losslessly") {
  test::temp_dir dir;
  for (auto encoding : {"utf8", "ascii"})
    for (bool pretty : {false, true}) {
      INFO(encoding << (pretty ? " pretty" : " compact"));
      auto o = options(dir / (std::string{encoding} + (pretty ? "p" : "c")));
      o.json.encoding = encoding;
      o.json.pretty = pretty;
      auto doc = document::object({{"name", "Zoë"},
                                   {"age", 41},
                                   {"score", 0.1},
                                   {"tags", document::array({"a", "b"})},
                                   {"nested", document::object({{"ok", true}})}});
      // Bytes inside a document do not read back from JSON as bytes: that
      // value is kept as base64 instead.
      auto with_bytes = document::object({{"blob", document::bytes({0, 1, 255})}});
      auto marker = document::object({{"$base64", "AAAA"}});
      std::vector<std::pair<std::string, bytes>> entries{
        {"user:1", stored(doc)},
        {"raw", b("plain bytes \xff\x00 here")},
        {std::string("bin\xff\x01", 5), b("v")},
        {"~tilde", b("t")},
        {"with-bytes", stored(with_bytes)},
        {"marker", stored(marker)},
        {"empty", {}},
        {"", b("empty key")},
      };
      {
        json_engine e{o};
        std::vector<operation> ops;
        for (auto& [k, v] : entries)
          ops.push_back(operation::set(k, v));
        REQUIRE(write(e, ops).code == errc::none);
        REQUIRE(write(e, {operation::set("m", b("x"))}, keyspace::meta).code == errc::none);
      }
      auto text = slurp(dir / (std::string{encoding} + (pretty ? "p" : "c")) + "/strata.json");
      rapidjson::Document d;
      d.Parse(text.c_str());
      REQUIRE(!d.HasParseError());
      CHECK(std::string{d["format"].GetString()} == "strata-json-1");
      auto& data = d["data"];
      REQUIRE(data.IsObject());
      // The document is plain JSON a tool can read.
      REQUIRE(data.HasMember("user:1"));
      CHECK(std::string{data["user:1"]["name"].GetString()} == "Zoë");
      CHECK(data["user:1"]["age"].GetInt() == 41);
      CHECK(data["raw"].HasMember("$base64"));
      CHECK(data["with-bytes"].HasMember("$base64"));
      CHECK(data["marker"]["$base64"].IsString()); // a look-alike document: base64 itself
      CHECK(data.HasMember("~fnRpbGRl")); // "~tilde"
      CHECK(d["meta"].HasMember("m"));
      if (std::string{encoding} == "ascii")
        CHECK(std::none_of(text.begin(), text.end(),
                           [](char ch) { return static_cast<unsigned char>(ch) > 0x7f; }));
      CHECK((text.find("\n  \"data\"") != std::string::npos) == pretty);
      // Reopened, every value is the same bytes.
      json_engine e{o};
      for (auto& [k, v] : entries) {
        INFO("key " << k);
        CHECK(get(e, k) == v);
      }
    }
}

TEST_CASE("a json file written by hand opens as a store") {
  test::temp_dir dir;
  std::filesystem::create_directories(dir / "j");
  spit(dir / "j/strata.json", R"({"format": "strata-json-1",
    "data": {"user:1": {"name": "Ann", "langs": ["en", "fr"]}, "n": 3,
             "~AP8=": {"$base64": "aGk="}}})");
  json_engine e{options(dir / "j")};
  CHECK(get(e, "user:1")
        == stored(document::object(
          {{"name", "Ann"}, {"langs", document::array({"en", "fr"})}})));
  CHECK(get(e, "n") == stored(document{3}));
  CHECK(get(e, std::string("\0\xff", 2)) == b("hi"));
  // The first write puts it into the engine's own form, keeping everything.
  REQUIRE(write(e, {operation::set("new", b("x"))}).code == errc::none);
  json_engine again{options(dir / "j")};
  CHECK(get(again, "user:1") == get(e, "user:1"));
  CHECK(get(again, "new") == b("x"));
}

TEST_CASE("a damaged json file is refused with CONSISTENCY_VIOLATION and left alone") {
  test::temp_dir dir;
  std::vector<std::pair<std::string, std::string>> cases{
    {"{\"format\": \"strata-json-1\", \"data\": {", "JSON error"},
    {"{\"data\": {}}", "format"},
    {"[1, 2]", "format"},
    {"{\"format\": \"strata-json-1\", \"stuff\": {}}", "unknown member"},
    {"{\"format\": \"strata-json-1\", \"data\": []}", "not an object"},
    {"{\"format\": \"strata-json-1\", \"data\": {\"~!!\": 1}}", "base64"},
    {"{\"format\": \"strata-json-1\", \"data\": {\"k\": {\"$base64\": \"#\"}}}", "base64"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto& [text, what] = cases[i];
    INFO(text);
    auto d = dir / ("j" + std::to_string(i));
    std::filesystem::create_directories(d);
    spit(d + "/strata.json", text);
    try {
      json_engine e{options(d)};
      FAIL("opened");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::consistency_violation);
      CHECK_THAT(err.what(), Catch::Contains(what) && Catch::Contains("strata.json"));
    }
    CHECK(slurp(d + "/strata.json") == text);
  }
}

#ifdef STRATA_FAULT_INJECTION
TEST_CASE("a json write that fails fails its group, and the engine goes back to the file") {
  test::temp_dir dir;
  json_engine e{options(dir / "j")};
  REQUIRE(write(e, {operation::set("a", b("1"))}).code == errc::none);
  auto before = slurp(e.path());
  {
    fault::scoped_arm arm{"json.write", 1};
    auto res = write(e, {operation::set("a", b("2")), operation::set("b", b("3"))});
    CHECK(res.code == errc::transaction_aborted);
    CHECK(!res.logged);
    CHECK_THAT(res.message, Catch::Contains("cannot write"));
  }
  CHECK(get(e, "a") == b("1"));
  CHECK(!get(e, "b"));
  CHECK(slurp(e.path()) == before);
  REQUIRE(write(e, {operation::set("b", b("4"))}).code == errc::none);
  json_engine again{options(dir / "j")};
  CHECK(get(again, "a") == b("1"));
  CHECK(get(again, "b") == b("4"));
}
#endif

TEST_CASE("a json shard is not opened as another engine's") {
  test::temp_dir dir;
  auto o = options(dir / "j");
  { auto e = open_engine(o); }
  for (auto other : {engine_kind::lmdb, engine_kind::memory, engine_kind::sqlite}) {
    auto as = o;
    as.engine = other;
    try {
      open_engine(as);
      FAIL("opened");
    } catch (const storage_error& err) {
      CHECK(err.code() == errc::consistency_violation);
      CHECK_THAT(err.what(), Catch::Contains("holds a shard of engine json"));
    }
  }
}

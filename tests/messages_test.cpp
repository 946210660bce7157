// Every message type survives CAF's binary serialization, as it must to reach
// a shard on another node.

#include <catch2/catch.hpp>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "tests/fixture.hpp"

using namespace strata;
using strata::test::fixture;
using strata::test::to_bytes;

namespace {

template <class T>
T round_trip(caf::actor_system& sys, T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE(!sink(x));
  T y;
  caf::binary_deserializer source{sys, buf};
  REQUIRE(!source(y));
  return y;
}

} // namespace

TEST_CASE("message types round-trip through CAF's binary serializer") {
  fixture f;
  auto& sys = f.sys();
  entry e{"k", to_bytes("v\0v")};
  auto e2 = round_trip(sys, e);
  CHECK(e2.key == e.key);
  CHECK(e2.value == e.value);
  operation op = operation::set("key", to_bytes("value"));
  auto op2 = round_trip(sys, op);
  CHECK(op2.kind == op_kind::set);
  CHECK(op2.key == "key");
  CHECK(op2.value == to_bytes("value"));
  CHECK(round_trip(sys, operation::clear()).kind == op_kind::clear);
  scan_request req{"pre", "start", "after", 17, false};
  auto req2 = round_trip(sys, req);
  CHECK(req2.prefix == "pre");
  CHECK(req2.start == "start");
  CHECK(req2.after == "after");
  CHECK(req2.limit == 17);
  CHECK(!req2.values);
  scan_page page{{e, {"z", {}}}, true};
  auto page2 = round_trip(sys, page);
  REQUIRE(page2.entries.size() == 2);
  CHECK(page2.entries[1].key == "z");
  CHECK(page2.more);
  batch_result br{false, 3, {make_error(errc::storage_full, "full")}};
  auto br2 = round_trip(sys, br);
  CHECK(!br2.success);
  CHECK(br2.operations == 3);
  REQUIRE(br2.errors.size() == 1);
  CHECK(render(br2.errors[0]) == "STORAGE_FULL: full");
  shard_info si{2, 10, 1 << 20, 4096, 5, 1, "/x"};
  auto si2 = round_trip(sys, si);
  CHECK(si2.shard == 2);
  CHECK(si2.entries == 10);
  CHECK(si2.map_size == 1 << 20);
  CHECK(si2.path == "/x");
  std::vector<maybe_bytes> mb{to_bytes("a"), caf::none};
  auto mb2 = round_trip(sys, mb);
  REQUIRE(mb2.size() == 2);
  CHECK(*mb2[0] == to_bytes("a"));
  CHECK(!mb2[1]);
}

TEST_CASE("every message type is announced under a strata name") {
  fixture f;
  auto& types = f.sys().types();
  for (auto name : {"strata::bytes", "strata::maybe_bytes", "strata::entry",
                    "strata::operation", "strata::batch_result",
                    "strata::scan_request", "strata::scan_page",
                    "strata::shard_info", "std::vector<strata::entry>",
                    "std::vector<strata::operation>",
                    "std::vector<strata::maybe_bytes>"})
    CHECK(types.make_value(name) != nullptr);
}

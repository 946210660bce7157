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
  shard_info si{2,        10,       1 << 20, 4096, 5, 1, 3, 4, "/x", "sqlite",
                {"durable", "files"}, {"cache_size=-2000"}};
  auto si2 = round_trip(sys, si);
  CHECK(si2.shard == 2);
  CHECK(si2.engine == "sqlite");
  CHECK(si2.capabilities == std::vector<std::string>{"durable", "files"});
  CHECK(si2.tuning == std::vector<std::string>{"cache_size=-2000"});
  CHECK(si2.in_doubt == 3);
  CHECK(si2.entries == 10);
  CHECK(si2.map_size == 1 << 20);
  CHECK(si2.restarts == 4);
  CHECK(si2.path == "/x");
  node_info ni{"id#1", "127.0.0.1:7601", node_role::primary, node_status::degraded,
               1234, {1, 3}, "slow"};
  auto ni2 = round_trip(sys, ni);
  CHECK(ni2.id == "id#1");
  CHECK(ni2.address == "127.0.0.1:7601");
  CHECK(ni2.status == node_status::degraded);
  CHECK(ni2.last_seen_ms == 1234);
  CHECK(ni2.shards == std::vector<uint32_t>{1, 3});
  CHECK(ni2.error == "slow");
  std::vector<maybe_bytes> mb{to_bytes("a"), caf::none};
  auto mb2 = round_trip(sys, mb);
  REQUIRE(mb2.size() == 2);
  CHECK(*mb2[0] == to_bytes("a"));
  CHECK(!mb2[1]);
  txn_options to{isolation::repeatable_read, 250, true, 7};
  auto to2 = round_trip(sys, to);
  CHECK(to2.level == isolation::repeatable_read);
  CHECK(to2.timeout_ms == 250);
  CHECK(to2.read_only);
  CHECK(to2.retries == 7);
  txn_info ti{"tx-1-2", txn_state::committed};
  auto ti2 = round_trip(sys, ti);
  CHECK(ti2.id == "tx-1-2");
  CHECK(ti2.state == txn_state::committed);
  shard_part sp{3, {}};
  sp.part.writes.push_back(operation::set("k", to_bytes("v")));
  sp.part.reads.push_back(read_mark{"r", 9});
  sp.part.ranges.push_back(range_mark{"a", "b", 11});
  std::vector<shard_part> sps{sp};
  auto sps2 = round_trip(sys, sps);
  REQUIRE(sps2.size() == 1);
  CHECK(sps2[0].shard == 3);
  CHECK(sps2[0].part.writes[0].key == "k");
  CHECK(sps2[0].part.reads[0].seq == 9);
  CHECK(sps2[0].part.ranges[0].hi == "b");
  CHECK(sps2[0].part.ranges[0].seq == 11);
}

TEST_CASE("isolation levels and states print with the spec's names") {
  for (auto x : {isolation::read_uncommitted, isolation::read_committed,
                 isolation::repeatable_read, isolation::serializable})
    CHECK(parse_isolation(to_string(x)) == x);
  CHECK(std::string{to_string(isolation::serializable)} == "SERIALIZABLE");
  CHECK(!parse_isolation("serializable"));
  CHECK(std::string{to_string(txn_state::aborted)} == "aborted");
  CHECK(txn_name((uint64_t{5} << txn_counter_bits) | 17) == "tx-5-17");
  txn_options o;
  CHECK(o.problem().empty());
  o.timeout_ms = 0;
  CHECK(o.problem() == "timeout must be 1 to 3600000 ms, not 0");
  o.timeout_ms = 10;
  o.level = static_cast<isolation>(9);
  CHECK(!o.problem().empty());
}

TEST_CASE("every message type is announced under a strata name") {
  fixture f;
  auto& types = f.sys().types();
  for (auto name : {"strata::bytes", "strata::maybe_bytes", "strata::entry",
                    "strata::operation", "strata::batch_result",
                    "strata::scan_request", "strata::scan_page",
                    "strata::shard_info", "std::vector<strata::entry>",
                    "std::vector<strata::operation>",
                    "std::vector<strata::maybe_bytes>", "strata::txn_options",
                    "strata::txn_info", "strata::txn_part", "strata::shard_part",
                    "std::vector<strata::shard_part>"})
    CHECK(types.make_value(name) != nullptr);
}

// Serialization settings through a store: values of every format and
// compression side by side, read by any client and seen by queries, indexes
// and transactions; custom serializers; protobuf messages, also on a node that
// knows their types only from a descriptor set; the CLI's --format.

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>

#include "strata/client.hpp"
#include "strata/protobuf.hpp"
#include "tests/fixture.hpp"
#include "tests/process.hpp"
#include "order.pb.h" // generated from tests/proto/order.proto

using namespace strata;
using Catch::Matchers::Contains;
using strata::test::fixture;
using strata::test::node_process;
using strata::test::run;

namespace {

struct shipment {
  int64_t id = 0;
  std::string customer;
  std::string status;
  std::vector<std::string> notes;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(id), CEREAL_NVP(customer), CEREAL_NVP(status), CEREAL_NVP(notes));
  }

  friend bool operator==(const shipment& x, const shipment& y) {
    return x.id == y.id && x.customer == y.customer && x.status == y.status
           && x.notes == y.notes;
  }
};

shipment make_shipment(int i) {
  shipment s;
  s.id = i;
  s.customer = "customer-" + std::to_string(i % 7);
  s.status = i % 3 == 0 ? "shipped" : "pending";
  // Repetitive text, so that every compressor gains.
  for (int j = 0; j < 4; ++j)
    s.notes.push_back("handle with care, keep dry, this side up (" + std::to_string(j) + ")");
  return s;
}

std::string key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ship:%04d", i);
  return buf;
}

const value_encoding formats[] = {value_encoding::document, value_encoding::json,
                                  value_encoding::msgpack};
const value_compression compressions[] = {value_compression::none, value_compression::gzip,
                                          value_compression::lz4, value_compression::snappy,
                                          value_compression::zstd};

serialization setting_of(int i) {
  serialization s;
  s.format = formats[i % 3];
  s.compression = compressions[(i / 3) % 5];
  return s;
}

/// The stored bytes of `key`, as the store holds them.
bytes stored(fixture& f, const observable_storage_actor& store, const std::string& key) {
  auto x = f.ask<maybe_bytes>(store, atom::get_v, key);
  REQUIRE(x);
  REQUIRE(*x);
  return **x;
}

std::vector<std::string> keys_of(const std::vector<query_match<shipment>>& ms) {
  std::vector<std::string> out;
  for (auto& m : ms)
    out.push_back(m.key);
  std::sort(out.begin(), out.end());
  return out;
}

test::Order make_order(int i) {
  test::Order o;
  o.set_id(i);
  o.set_customer("customer-" + std::to_string(i % 5));
  o.set_status(i % 2 ? test::Order::SHIPPED : test::Order::PENDING);
  o.set_total(10.5 * i);
  for (int j = 0; j < 2; ++j) {
    auto* line = o.add_lines();
    line->set_sku("SKU-" + std::to_string((i + j) % 4));
    line->set_quantity(j + 1);
  }
  (*o.mutable_labels())["env"] = i % 4 == 0 ? "prod" : "test";
  o.set_signature(std::string("\0\1\2", 3));
  if (i % 3 == 0)
    o.set_note("fragile");
  return o;
}

} // namespace

TEST_CASE("values of every format and compression live side by side") {
  fixture f;
  auto store = f.open(f.options(3));
  constexpr int n = 150;
  std::map<std::string, shipment> model;
  for (int i = 0; i < n; ++i) {
    blocking_store<shipment> writer{f.sys(), store};
    REQUIRE_FALSE(writer.serialize_with(setting_of(i)));
    REQUIRE_FALSE(writer.set(key_of(i), make_shipment(i)));
    model[key_of(i)] = make_shipment(i);
  }
  // Each value's header names what its writer chose.
  for (int i = 0; i < n; ++i) {
    auto b = stored(f, store, key_of(i));
    INFO(key_of(i));
    CHECK(b[2] == static_cast<uint8_t>(setting_of(i).format));
    CHECK(b[3] == static_cast<uint8_t>(setting_of(i).compression));
  }
  // Any client reads them all, whatever it writes itself.
  blocking_store<shipment> reader{f.sys(), store};
  REQUIRE_FALSE(reader.serialize_with({value_encoding::msgpack, value_compression::lz4}));
  std::map<std::string, shipment> seen;
  for (auto& [k, v] : reader.entries())
    seen[k] = v;
  CHECK(seen == model);
  auto some = reader.get_many({key_of(1), key_of(2), key_of(4)});
  REQUIRE(some);
  CHECK(some->at(key_of(4)) == make_shipment(4));
  // Queries read fields of every format, with and without indexes.
  auto shipped = [&] {
    std::vector<std::string> out;
    for (auto& [k, v] : model)
      if (v.status == "shipped" && v.customer == "customer-3")
        out.push_back(k);
    return out;
  }();
  REQUIRE(shipped.size() > 3);
  auto p = pattern{where("status").eq("shipped") && where("customer").eq("customer-3")};
  auto found = reader.find_many(p);
  REQUIRE(found);
  CHECK(keys_of(*found) == shipped);
  CHECK(*reader.count(p) == shipped.size());
  index_spec by_customer;
  by_customer.name = "by_customer";
  by_customer.fields = {{"customer", "btree", false}};
  REQUIRE_FALSE(reader.create_index(by_customer));
  REQUIRE(f.indexes_ready(store));
  found = reader.find_many(pattern{p}.hint("by_customer"));
  REQUIRE(found);
  CHECK(keys_of(*found) == shipped);
  auto plan = reader.explain(pattern{p}.hint("by_customer"));
  REQUIRE(plan);
  uint64_t examined = 0;
  for (auto& s : plan->shards)
    examined += s.examined;
  CHECK(examined < n / 2); // the index narrowed it
  // An aggregation over the mixed values.
  auto groups = reader.aggregate(R"([{"group": {"by": ["status"], "fields":
                                     {"n": {"count": "*"}}}}])");
  REQUIRE(groups);
  int64_t total = 0;
  for (auto& g : groups->as_array())
    total += g.find("n")->as_int();
  CHECK(total == n);
  // Values written after the index, in another format, are indexed too.
  blocking_store<shipment> late{f.sys(), store};
  REQUIRE_FALSE(late.serialize_with({value_encoding::json, value_compression::zstd}));
  auto extra = make_shipment(3);
  REQUIRE_FALSE(late.set("ship:late", extra));
  found = reader.find_many(pattern{p}.hint("by_customer"));
  REQUIRE(found);
  CHECK(found->size() == shipped.size() + 1);
}

TEST_CASE("transactions and event-based clients write with their store's settings") {
  fixture f;
  auto store = f.open(f.options(2));
  blocking_store<shipment> writer{f.sys(), store};
  REQUIRE_FALSE(writer.serialize_with({value_encoding::msgpack, value_compression::zstd}));
  auto tx = writer.begin();
  REQUIRE(tx);
  REQUIRE_FALSE(tx->set("in-txn", make_shipment(1)));
  auto own = tx->get("in-txn");
  REQUIRE(own);
  CHECK(**own == make_shipment(1));
  REQUIRE_FALSE(tx->commit());
  auto b = stored(f, store, "in-txn");
  CHECK(b[2] == static_cast<uint8_t>(value_encoding::msgpack));
  CHECK(b[3] == static_cast<uint8_t>(value_compression::zstd));
  // The event-based client.
  strata::store<shipment> async{store};
  REQUIRE_FALSE(async.serialize_with({value_encoding::json, value_compression::gzip}));
  auto report = caf::actor{f.self};
  f.sys().spawn([=](caf::event_based_actor* self) {
    async.set(self, "async", make_shipment(2))
      .then([=](caf::unit_t) {
              async.begin(self).then(
                [=](txn<shipment> t) {
                  t.set(self, "async-txn", make_shipment(3))
                    .then([=](caf::unit_t) {
                            t.commit(self).then([=](caf::unit_t) { self->send(report, true); },
                                                [=](caf::error e) { self->send(report, e); });
                          },
                          [=](caf::error e) { self->send(report, e); });
                },
                [=](caf::error e) { self->send(report, e); });
            },
            [=](caf::error e) { self->send(report, e); });
  });
  f.self->receive([](bool) {}, [](caf::error& e) { FAIL(render(e)); });
  for (auto key : {"async", "async-txn"}) {
    auto x = stored(f, store, key);
    CHECK(x[2] == static_cast<uint8_t>(value_encoding::json));
    CHECK(x[3] == static_cast<uint8_t>(value_compression::gzip));
  }
  blocking_store<shipment> plain{f.sys(), store};
  CHECK(**plain.get("async-txn") == make_shipment(3));
}

TEST_CASE("a custom serializer writes and reads its own bytes") {
  fixture f;
  auto store = f.open(f.options(2));
  serializer<shipment> csv;
  csv.serialize = [](const shipment& s) {
    return std::to_string(s.id) + "," + s.customer + "," + s.status;
  };
  csv.deserialize = [](std::string_view text) {
    shipment s;
    auto a = text.find(',');
    auto b = text.find(',', a + 1);
    if (a == std::string_view::npos || b == std::string_view::npos)
      throw std::runtime_error("not three fields");
    s.id = std::stoll(std::string{text.substr(0, a)});
    s.customer = std::string{text.substr(a + 1, b - a - 1)};
    s.status = std::string{text.substr(b + 1)};
    return s;
  };
  blocking_store<shipment> custom{f.sys(), store};
  REQUIRE_FALSE(custom.serialize_with({}, csv));
  auto s = make_shipment(6);
  s.notes.clear();
  REQUIRE_FALSE(custom.set("c", s));
  auto b = stored(f, store, "c");
  CHECK(b[2] == static_cast<uint8_t>(value_encoding::custom));
  CHECK(std::string(b.begin() + 4, b.end()) == "6,customer-6,shipped");
  CHECK(**custom.get("c") == s);
  // Compression applies to custom bytes too.
  blocking_store<shipment> squeezed{f.sys(), store};
  serialization z;
  z.compression = value_compression::zstd;
  z.compress_min = 0;
  auto big = s;
  big.customer = std::string(500, 'x');
  REQUIRE_FALSE(squeezed.serialize_with(z, csv));
  REQUIRE_FALSE(squeezed.set("big", big));
  CHECK(stored(f, store, "big")[3] == static_cast<uint8_t>(value_compression::zstd));
  CHECK(**squeezed.get("big") == big);
  // A client without the serializer cannot read custom values, and queries
  // skip them; documents next to them are unaffected.
  blocking_store<shipment> plain{f.sys(), store};
  REQUIRE_FALSE(plain.set("d", make_shipment(6)));
  auto got = plain.get("c");
  REQUIRE_FALSE(got);
  CHECK(code_of(got.error()) == errc::serialization_failed);
  CHECK_THAT(render(got.error()), Contains("custom serializer"));
  CHECK(*plain.count(pattern{where("customer").eq("customer-6")}) == 1);
  // A serializer that throws: SERIALIZATION_FAILED, and the store goes on.
  serializer<shipment> broken = csv;
  broken.serialize = [](const shipment&) -> std::string { throw std::runtime_error("boom"); };
  blocking_store<shipment> failing{f.sys(), store};
  REQUIRE_FALSE(failing.serialize_with({}, broken));
  auto err = failing.set("e", s);
  CHECK(code_of(err) == errc::serialization_failed);
  CHECK_THAT(render(err), Contains("boom"));
  REQUIRE_FALSE(plain.set("e", make_shipment(1)));
  REQUIRE_FALSE(custom.set("empty", shipment{}));
  auto garbage = custom.get("d"); // a document, not csv: read as a document
  REQUIRE(garbage);
  CHECK(**garbage == make_shipment(6));
  // Settings that cannot work are refused.
  blocking_store<shipment> wrong{f.sys(), store};
  CHECK(code_of(wrong.serialize_with({value_encoding::raw, value_compression::none}))
        == errc::serialization_failed);
  CHECK(code_of(wrong.serialize_with({value_encoding::json,
                                      static_cast<value_compression>(17)}))
        == errc::serialization_failed);
  REQUIRE_FALSE(wrong.serialize_with({value_encoding::custom, value_compression::none}));
  err = wrong.set("f", s);
  CHECK(code_of(err) == errc::serialization_failed);
  CHECK_THAT(render(err), Contains("needs a serializer"));
  CHECK(*plain.size() == 5);
}

TEST_CASE("protobuf messages as values: typed, queried and indexed by field") {
  fixture f;
  auto store = f.open(f.options(3));
  blocking_store<test::Order> orders{f.sys(), store};
  REQUIRE_FALSE(orders.serialize_with({}, protobuf_serializer<test::Order>()));
  for (int i = 0; i < 40; ++i)
    REQUIRE_FALSE(orders.set("order:" + std::to_string(i), make_order(i)));
  auto b = stored(f, store, "order:7");
  CHECK(b[2] == static_cast<uint8_t>(value_encoding::protobuf));
  auto back = orders.get("order:7");
  REQUIRE(back);
  REQUIRE(*back);
  CHECK((*back)->SerializeAsString() == make_order(7).SerializeAsString());
  // The value as a document: fields by name, enums by name, maps with
  // string keys as objects, repeated messages as arrays.
  auto doc = decode_doc(b);
  CHECK(doc.find("id")->as_int() == 7);
  CHECK(doc.find("status")->as_string() == "SHIPPED");
  CHECK(doc.find("lines.1.sku")->as_string() == "SKU-0");
  CHECK(doc.find("labels.env")->as_string() == "test");
  CHECK(doc.find("signature")->as_bytes() == document::bytes_type{0, 1, 2});
  CHECK(doc.find("note") == nullptr); // unset, with presence
  CHECK(decode_doc(stored(f, store, "order:0")).find("total")->as_real() == 0.0);
  // Queries and an index over message fields.
  auto p = pattern{where("status").eq("SHIPPED") && where("labels.env").eq("test")};
  CHECK(*orders.count(p) == 20);
  index_spec by_sku;
  by_sku.name = "by_sku";
  by_sku.fields = {{"lines.sku", "btree", false}};
  REQUIRE_FALSE(orders.create_index(by_sku));
  REQUIRE(f.indexes_ready(store));
  auto found = orders.find_many(pattern{where("lines.sku").eq("SKU-2")}.hint("by_sku"));
  REQUIRE(found);
  CHECK(found->size() == 20); // i % 4 in {1, 2}
  for (auto& m : *found) {
    auto& lines = m.value.lines();
    CHECK(std::any_of(lines.begin(), lines.end(),
                      [](const test::Line& l) { return l.sku() == "SKU-2"; }));
  }
  // A client of another message type refuses the value.
  blocking_store<test::Line> lines{f.sys(), store};
  REQUIRE_FALSE(lines.serialize_with({}, protobuf_serializer<test::Line>()));
  auto wrong = lines.get("order:1");
  REQUIRE_FALSE(wrong);
  CHECK(code_of(wrong.error()) == errc::serialization_failed);
  CHECK_THAT(render(wrong.error()), Contains("not a strata.test.Line"));
}

TEST_CASE("a node reads protobuf fields only for types it knows from a descriptor set") {
  fixture f;
  auto write_and_count = [&](node_process& node) {
    auto s = connect_store(f.sys(), "127.0.0.1", node.port());
    REQUIRE(s);
    blocking_store<test::Order> orders{f.sys(), *s};
    REQUIRE_FALSE(orders.serialize_with({}, protobuf_serializer<test::Order>()));
    for (int i = 0; i < 10; ++i)
      REQUIRE_FALSE(orders.set("order:" + std::to_string(i), make_order(i)));
    CHECK(*orders.size() == 10);
    auto n = orders.count(pattern{where("status").eq("SHIPPED")});
    REQUIRE(n);
    return *n;
  };
  auto args = [&](const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> a{"--data", f.dir / dir, "--port", "0", "--log-level", "warning",
                               "--shards", "2"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  {
    // The node does not link the generated code: the values are opaque there.
    node_process node{args("plain", {}), f.dir / "plain.log"};
    CHECK(write_and_count(node) == 0);
  }
  {
    node_process node{args("known", {"--protobuf-descriptors", STRATA_ORDER_DESCRIPTORS}),
                      f.dir / "known.log"};
    CHECK(write_and_count(node) == 5);
  }
  // A file that is not a descriptor set stops the node with a clear error.
  std::ofstream{f.dir / "garbage.desc"} << "not a descriptor set \xff\xff\xff";
  CHECK_THROWS(node_process{args("bad", {"--protobuf-descriptors", f.dir / "garbage.desc"}),
                            f.dir / "bad.log"});
  CHECK_THAT(test::slurp(f.dir / "bad.log"), Contains("is not a protobuf FileDescriptorSet"));
}

TEST_CASE("strata-cli writes documents in the chosen format and compression") {
  fixture f;
  std::string data = f.dir / "cli";
  auto cli = [&](std::vector<std::string> a) {
    a.insert(a.begin(), {"--data", data, "--shards", "2"});
    return run("strata-cli", a, f.dir.path());
  };
  auto text = std::string{R"({"name":"Ada","tags":["x","y"],"n":3,"note":")"}
              + std::string(200, 'z') + "\"}";
  for (auto format : {"document", "json", "msgpack"})
    for (auto compression : {"none", "zstd", "snappy"}) {
      auto key = std::string{format} + "-" + compression;
      auto r = cli({"--format", format, "--compression", compression, "set", "--doc", key, text});
      REQUIRE(r.code == 0);
      CHECK(cli({"get", key}).out == text + "\n");
    }
  CHECK(cli({"count", R"({"where": {"field": "name", "operator": "eq", "value": "Ada"}})"}).out
        == "9\n");
  auto bad = cli({"--format", "xml", "size"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("--format must be document, json or msgpack"));
  bad = cli({"--compression", "brotli", "size"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("--compression must be"));
}

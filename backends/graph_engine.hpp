#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "backends/mirrored_engine.hpp"
#include "backends/sparql.hpp"

namespace strata {

/// An engine whose shard is one named graph on a SPARQL 1.1 server
/// (Virtuoso Open Source), so that the data is reachable by graph queries.
/// The key spaces are kept in memory too (a memory engine) and reads are
/// served from there; each group is one SPARQL Update request, and readers
/// see a group only once the server has it.
///
/// The graph (`G`, recorded in the shard's directory as `strata.graph`):
///
///   <G/SPACE/KEY> <urn:strata:value> "base64 of the stored bytes" .
///   <G/data/KEY>  <urn:strata:key>   "the key"          (UTF-8 keys)
///   <G/data/KEY>  <urn:strata:field:NAME> VALUE ...     (documents)
///
/// KEY is the key percent-encoded (letters, digits and -._~:@ as they are).
/// A document's top-level fields become properties: booleans, integers,
/// doubles, UTF-8 strings and bytes (xsd:base64Binary) as literals, arrays
/// as one triple per element, objects as JSON (rdf:JSON). A field RDF cannot
/// hold (null, NaN, a string that is not UTF-8) is only in the value.
///
/// All or nothing: a server runs an update request's operations in order but
/// commits each on its own, so a group first records itself whole under
/// <G/journal> <urn:strata:pending>, then writes its entries, then removes
/// that record: one request for a small group, several for a large one. A group found recorded (a request that failed half-way, a crash)
/// is written again, whole, on the next open or at once when the server is
/// back; a request whose answer was lost is settled by reading back what it
/// touched.
class graph_engine final : public mirrored_engine {
public:
  explicit graph_engine(engine_options opts);
  ~graph_engine() override;

  engine_kind kind() const override {
    return engine_kind::graph;
  }

  void sync() override {
    // The server committed each group before its request returned.
  }

  engine_info info() const override;

  /// The shard's named graph.
  const std::string& graph() const {
    return graph_;
  }

  /// The net effect of a group per key space: cleared first, then each
  /// touched key's final value (none: deleted).
  struct net_space {
    bool cleared = false;
    std::map<std::string, std::optional<std::string>> keys;
  };
  using net_group = std::array<net_space, keyspace_count>;

private:
  apply_result persist(const std::vector<engine_batch>& group, bool sync) override;
  /// The graph's IRI: the one recorded in the directory, or a new one.
  std::string choose_graph() const;
  /// Writes `text` to `path` in the shard's directory, durably.
  void write_marker(const std::string& path, const std::string& text) const;
  /// Waits until the graph has not changed for a while (a request nobody
  /// waits for may still be running); false if it kept changing for longer
  /// than a request may take.
  bool quiet();
  /// Writes a group recorded by an earlier request, if there is one.
  void finish_journal();
  /// A fresh copy with what the graph holds.
  std::unique_ptr<memory_engine> load();
  /// The update operations that write `net` and then drop the record.
  std::vector<std::string> write_ops(const net_group& net) const;
  /// Sends `ops` from `first` on, in order, batched into small requests;
  /// sets `*first_done` once the first request was answered.
  void send(const std::vector<std::string>& ops, size_t first = 0,
            bool* first_done = nullptr);
  /// Whether the graph holds exactly what `net` says of what it touches.
  bool holds(const net_group& net);
  /// `<G/SPACE/KEY>`.
  std::string subject(keyspace ks, std::string_view key) const;

  std::string graph_;
  std::unique_ptr<sparql_client> client_;
  /// A request whose answer was lost may still be running on the server.
  bool unsettled_ = false;
};

} // namespace strata

#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>

#include "backends/mirrored_engine.hpp"

namespace strata {

/// An engine whose shard is one JSON document in one file, for small tools,
/// fixtures and data a person reads or edits while the store is closed. The
/// key spaces live in memory (a memory engine); each group rewrites the whole
/// file once, atomically by default: a temporary file, synced, renamed over
/// the old one, and the directory synced, so that a crash leaves the old file
/// or the new one. A group reaches the file before readers see it; if the
/// file cannot be written, the group fails and nothing of it is seen.
///
/// The document:
///
///   {"format": "strata-json-1", "data": {KEY: VALUE, ...},
///    "meta": {...}, "prepared": {...}, "outcomes": {...}, "index": {...},
///    "changes": {...}}
///
/// A key is the JSON string of its bytes; one that is not UTF-8, or starts
/// with '~', is '~' followed by its base64. A value that is a strata document
/// is that document's JSON (when it reads back to the same bytes); any other
/// value is {"$base64": "..."}.
///
/// Size: the file is rewritten per group, so a shard holds at most
/// `max_bytes` of keys and values (or `map_size`, if smaller).
class json_engine final : public mirrored_engine {
public:
  /// The most a json shard holds, whatever `map_size` says.
  static constexpr uint64_t max_bytes = uint64_t{64} << 20;

  explicit json_engine(engine_options opts);
  ~json_engine() override;

  engine_kind kind() const override {
    return engine_kind::json;
  }

  void sync() override;

  /// The shard's file.
  std::string path() const;

private:
  apply_result persist(const std::vector<engine_batch>& group, bool sync) override;
  /// A fresh copy with what the file holds (empty if there is none).
  std::unique_ptr<memory_engine> load() const;
  /// Renders the entry `key` of `ks` again (null: it is gone).
  void remember(keyspace ks, const std::string& key, const bytes* value);
  /// Renders every entry again.
  void remember_all();
  /// The document, from the rendered entries.
  std::string render() const;
  void save(bool sync);

  /// Per key space, each entry's text in the file ("key":value), so that a
  /// group renders only what it wrote.
  std::array<std::map<std::string, std::string>, keyspace_count> fragments_;
  /// Groups were written without a sync since the last one.
  bool unsynced_ = false;
  uint64_t file_bytes_ = 0;
};

} // namespace strata

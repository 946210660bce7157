#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/query.hpp"
#include "backends/query_exec.hpp"
#include "backends/shard_core.hpp"
#include "strata/messages/query.hpp"

/// @file
/// A shard's secondary indexes. Their definitions live in the shard's `meta`
/// key space and their entries in its `index` key space, beside the data:
/// the index set is a write hook of the shard core, so every data write
/// carries the index entries it changes in the same engine batch (one WAL
/// record, one LMDB transaction): no moment, and no crash, in which an index
/// disagrees with the data.
///
/// Entry keys: `name \0 values pk len(pk)`: the index name, the indexed
/// values in the order-preserving encoding (backends/index_key.hpp; inverted
/// for descending fields; for hash indexes the 64-bit hash of the values
/// instead), the document's key and its length (2 bytes), so entries of equal
/// values are ordered by key. A document whose array field holds several
/// values gets an entry per value (and one for the array itself). Non-sparse
/// indexes index a missing field as null; sparse ones leave documents without
/// their first field out.
///
/// An index created over existing data is built in steps on the writer's
/// thread (`build_step`), between write groups, from a cursor kept in its
/// definition: writes meanwhile maintain entries for every key, and each step
/// indexes the next keys from the current data, so a crash resumes where the
/// last step ended. Only complete ("ready") indexes serve queries. A build that
/// meets a document it cannot index (INVALID_VALUE: too many entries, a key too
/// long) fails: the index keeps its definition and the reason, its entries are
/// removed in steps, writes no longer maintain it, and it stays "failed" until
/// it is dropped.
namespace strata {

/// One index of a shard, as stored.
struct index_def {
  index_spec spec;
  std::vector<field_path> paths;
  /// "building", "ready", "failed" or "dropping".
  std::string state = "building";
  /// Why the build failed.
  std::string error;
  /// Failed: its entries are all removed.
  bool purged = false;
  /// Building: the last data key indexed.
  std::string cursor;
  uint64_t built = 0;
  /// Some document has several entries (an array field): the index's order
  /// cannot serve a query's order.
  bool multikey = false;
};

/// Figures the index set keeps in memory.
struct index_counters {
  std::atomic<uint64_t> entries{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  /// Fulltext: documents with words, and their words in all (BM25's
  /// statistics).
  std::atomic<uint64_t> docs{0};
  std::atomic<uint64_t> words{0};
};

/// Most bytes of an index entry's key (LMDB's key limit, less room).
constexpr size_t max_index_key = 500;

/// Checks an index definition; query_error naming the problem.
void check_index_spec(const index_spec& spec);

/// Unique indexes are unique across the store. Each value a document holds
/// in one is claimed under a reserved key (backends/shard_core.hpp's
/// `reserved_key`), `\0 u NAME \0 VALUES` with the values in the
/// order-preserving encoding, whose value is the document's key. Claims are
/// routed like any key, so the shard that owns a value decides who holds it,
/// and a write that changes a claimed value commits the document and its
/// claims together in one transaction (actors/unique_writes.hpp). The index's
/// entries are kept per shard as for any btree or hash index.
struct unique_constraint {
  index_spec spec;
  std::vector<field_path> paths;

  explicit unique_constraint(index_spec s);
};

/// One value a document claims: the claim's key, and the value for people.
struct unique_claim {
  std::string key;
  std::string shown;
};

/// The first bytes of every claim of `index`.
std::string claim_prefix(const std::string& index);

/// The claims of document `doc` stored under `pk`, by key, without
/// repeats: one per value (per combination, for several fields; array
/// fields claim each element and the whole array), none if a field is
/// missing or null (nulls never collide). INVALID_VALUE if one is too long.
std::vector<unique_claim> unique_claims(const unique_constraint& c, std::string_view pk,
                                        const document& doc);
std::vector<unique_claim> unique_claims(const index_spec& spec,
                                        const std::vector<field_path>& paths,
                                        std::string_view pk, const document& doc);

class index_set : public write_hook {
public:
  /// Loads the definitions from `core`'s meta space and counts the entries.
  explicit index_set(shard_core& core);

  // -- managing (the writer's thread) -------------------------------------------

  /// Creates an index (state "building"). The same definition again does
  /// nothing; another one under a taken name is DUPLICATE_KEY.
  void create(const index_spec& spec);

  /// Starts dropping an index: queries stop using it at once, its entries go
  /// in later steps. KEY_NOT_FOUND if there is none.
  void drop(const std::string& name);

  /// Does one step of the pending builds and drops (up to `budget` documents
  /// or entries); true if work is left.
  bool step(size_t budget);

  /// Whether builds or drops are pending.
  bool pending() const;

  // -- reading (any thread) -------------------------------------------------------

  /// The definitions with their figures, per index.
  std::vector<index_info> list() const;

  /// Runs a query over a snapshot with the best ready index, or by scanning.
  shard_query_result run(const engine_snapshot& snap, const query_pattern& q,
                         const std::optional<query_position>& after, size_t want) const;

  /// Runs a query with the best ready index; nothing if no index narrows it
  /// down (the caller would scan).
  std::optional<shard_query_result> run_indexed(const engine_snapshot& snap,
                                                const query_pattern& q,
                                                const std::optional<query_position>& after,
                                                size_t want) const;

  /// Counts matches with the best ready index, or by scanning.
  uint64_t count(const engine_snapshot& snap, const query_pattern& q) const;

  // -- write_hook -------------------------------------------------------------------

  void extend(const std::vector<operation>& ops, const pending_data& data,
              derived_writes& out) override;

private:
  struct entry_state {
    index_def def;
    std::shared_ptr<index_counters> counters = std::make_shared<index_counters>();
  };
  using def_list = std::vector<std::shared_ptr<const entry_state>>;

  std::shared_ptr<const def_list> current() const;
  void publish(def_list defs);
  void save(const index_def& def, derived_writes& out) const;
  void apply(derived_writes writes);
  /// Counts an index's figures from its entries.
  void recount(const index_def& d, index_counters& n) const;

  shard_core& core_;
  mutable std::mutex mtx_;
  std::shared_ptr<const def_list> defs_;
};

/// Loads `core`'s indexes and installs them: as its write hook and as
/// `core.indexes()`. Before the core's first write.
void open_indexes(shard_core& core);

} // namespace strata

#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

// strata's error codes without any CAF dependency, so that storage backends
// can use them. strata/error.hpp adds the CAF error category.
namespace strata {

/// The error codes of the storage interface specification. The numeric values
/// cross the wire and are stored nowhere else; they are never renumbered.
enum class errc : uint8_t {
  /// Not an error.
  none = 0,
  /// A node or a storage directory could not be reached or opened at all.
  connection_failed = 1,
  /// A node went away while a request was in flight.
  connection_lost = 2,
  /// A key that must exist does not. A plain get of a missing key is not an
  /// error: it answers an empty result.
  key_not_found = 3,
  /// A key that must not exist already does.
  duplicate_key = 4,
  /// A transaction or write could not be applied; nothing of it is stored.
  transaction_aborted = 5,
  /// Transactions waited for each other; one of them was chosen to fail.
  deadlock_detected = 6,
  /// Stored data or configuration contradicts itself (for example a data
  /// directory created with a different shard count, or a corrupt file).
  consistency_violation = 7,
  /// A concurrent writer changed what this request read.
  version_conflict = 8,
  /// The storage map or the disk is full. Stored data stays readable and
  /// deletes keep working; raise `map_size` to write more.
  storage_full = 9,
  /// A configured limit (readers, page size, request size) was exceeded.
  quota_exceeded = 10,
  /// A key is empty, longer than 511 bytes, or otherwise unusable.
  invalid_key = 11,
  /// A value or an argument is out of range (for example above
  /// `max_value_size`).
  invalid_value = 12,
  /// Bytes could not be turned into the requested type, or a value into bytes.
  serialization_failed = 13,
  /// A query pattern cannot be evaluated: an unknown operator, an operand of
  /// the wrong kind, a regex that does not compile, an empty field path.
  query_error = 14,
};

/// Returns the specification's name of `x`, e.g. `KEY_NOT_FOUND`.
const char* to_string(errc x);

/// Parses a name as printed by `to_string`.
std::optional<errc> parse_errc(const std::string& name);

/// Thrown by storage backends; actors turn it into a CAF error of the same code.
class storage_error : public std::runtime_error {
public:
  storage_error(errc code, const std::string& message)
    : std::runtime_error(message), code_(code) {
    // nop
  }

  /// The strata code.
  errc code() const noexcept {
    return code_;
  }

private:
  errc code_;
};

} // namespace strata

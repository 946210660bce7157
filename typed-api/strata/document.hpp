#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

/// @file
/// The self-describing document model and its compact binary encoding.
/// Plain C++: no CAF, no LMDB, no JSON library.

namespace strata {

// -- errors -------------------------------------------------------------------

/// Signals malformed input or a value that the document model cannot hold.
/// The message names what was wrong and where (a byte offset or a field path).
class codec_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// -- kinds --------------------------------------------------------------------

// GCC's -Wshadow reports the enumerator `bytes` as shadowing the alias
// strata::bytes (fwd.hpp), although a scoped enumerator hides nothing outside
// the enum. Silence that false positive here only.
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wshadow"
#endif

/// The kind of value a document holds.
enum class doc_kind : uint8_t {
  /// No value.
  null,
  /// `true` or `false`.
  boolean,
  /// A signed 64-bit integer.
  integer,
  /// An IEEE 754 double.
  real,
  /// A byte string, UTF-8 by convention (not validated; may contain NUL).
  string,
  /// Opaque binary data.
  bytes,
  /// An ordered sequence of documents.
  array,
  /// Named members with unique keys, kept in insertion order.
  object,
};

#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif

/// Returns the lower-case name of `x`, e.g. "integer".
const char* to_string(doc_kind x) noexcept;

/// Arrays and objects nest at most this many levels; the encoder and the
/// decoder both enforce it, so everything that is written can be read back.
constexpr std::size_t max_nesting_depth = 100;

// -- document -----------------------------------------------------------------

/// A self-describing value: null, boolean, integer, real, string, bytes, array
/// or object. A plain value type (copyable, movable, comparable).
///
/// Equality is structural and exact: kinds must match (integer 1 differs from
/// real 1.0), reals compare by bit pattern (NaN equals itself, -0.0 differs
/// from 0.0) and objects compare member by member in order. This makes `==`
/// a faithful round-trip check; query semantics belong to the query layer.
///
/// Not thread-safe for concurrent mutation; concurrent reads are fine.
class document {
public:
  // -- member types -----------------------------------------------------------

  /// Storage for `doc_kind::bytes`.
  using bytes_type = std::vector<uint8_t>;

  /// Storage for `doc_kind::array`.
  using array_type = std::vector<document>;

  /// One member of an object: key and value.
  using member_type = std::pair<std::string, document>;

  /// Storage for `doc_kind::object`; keys are unique, order is insertion order.
  using object_type = std::vector<member_type>;

  // -- constructors -----------------------------------------------------------

  /// Constructs null.
  document() noexcept = default;

  /// Constructs null.
  document(std::nullptr_t) noexcept {
    // nop
  }

  /// Constructs a boolean. A template so that pointers and other scalars do
  /// not silently convert to `bool`.
  template <class T, std::enable_if_t<std::is_same_v<T, bool>, int> = 0>
  document(T x) noexcept : value_(std::in_place_type<bool>, x) {
    // nop
  }

  /// Constructs an integer from any integral type except `bool`.
  /// @throws codec_error if `x` is unsigned and larger than INT64_MAX.
  template <class T, std::enable_if_t<std::is_integral_v<T>
                                        && !std::is_same_v<T, bool>,
                                      int> = 0>
  document(T x) : value_(std::in_place_type<int64_t>, checked_int(x)) {
    // nop
  }

  /// Constructs a real.
  document(double x) noexcept : value_(std::in_place_type<double>, x) {
    // nop
  }

  /// Constructs a string.
  document(const char* x) : value_(std::in_place_type<std::string>, x) {
    // nop
  }

  /// Constructs a string.
  document(std::string x) noexcept
    : value_(std::in_place_type<std::string>, std::move(x)) {
    // nop
  }

  /// Constructs a string.
  document(std::string_view x) : value_(std::in_place_type<std::string>, x) {
    // nop
  }

  // -- factories --------------------------------------------------------------

  /// Returns null.
  static document null() noexcept {
    return document{};
  }

  /// Returns a boolean.
  static document boolean(bool x) noexcept {
    return document{x};
  }

  /// Returns an integer.
  static document integer(int64_t x) noexcept;

  /// Returns a real.
  static document real(double x) noexcept {
    return document{x};
  }

  /// Returns a string.
  static document string(std::string x) noexcept {
    return document{std::move(x)};
  }

  /// Returns a bytes value.
  static document bytes(bytes_type x) noexcept;

  /// Returns an array.
  static document array(array_type xs = {}) noexcept;

  /// Returns an object.
  /// @throws codec_error if two members share a key.
  static document object(object_type xs = {});

  // -- observers --------------------------------------------------------------

  /// Returns what this document holds.
  doc_kind kind() const noexcept {
    return static_cast<doc_kind>(value_.index());
  }

  /// Returns whether this is null.
  bool is_null() const noexcept {
    return kind() == doc_kind::null;
  }

  /// Returns whether this is a boolean.
  bool is_bool() const noexcept {
    return kind() == doc_kind::boolean;
  }

  /// Returns whether this is an integer.
  bool is_int() const noexcept {
    return kind() == doc_kind::integer;
  }

  /// Returns whether this is a real.
  bool is_real() const noexcept {
    return kind() == doc_kind::real;
  }

  /// Returns whether this is a string.
  bool is_string() const noexcept {
    return kind() == doc_kind::string;
  }

  /// Returns whether this is a bytes value.
  bool is_bytes() const noexcept {
    return kind() == doc_kind::bytes;
  }

  /// Returns whether this is an array.
  bool is_array() const noexcept {
    return kind() == doc_kind::array;
  }

  /// Returns whether this is an object.
  bool is_object() const noexcept {
    return kind() == doc_kind::object;
  }

  // -- checked accessors: each throws codec_error on the wrong kind ----------

  /// Returns the boolean.
  bool as_bool() const;

  /// Returns the integer.
  int64_t as_int() const;

  /// Returns the real.
  double as_real() const;

  /// Returns the string.
  const std::string& as_string() const;

  /// Returns the bytes.
  const bytes_type& as_bytes() const;

  /// Returns the elements.
  const array_type& as_array() const;

  /// Returns the elements for modification.
  array_type& as_array();

  /// Returns the members.
  const object_type& as_object() const;

  /// Returns the members for modification. The caller keeps keys unique;
  /// `encode_document` rejects an object with a repeated key.
  object_type& as_object();

  // -- object and array access ------------------------------------------------

  /// Returns the member `field`, or nullptr if this is not an object or has
  /// no such member. Linear in the number of members.
  const document* get(std::string_view field) const noexcept;

  /// Returns the member `field` for modification, or nullptr (see above).
  document* get(std::string_view field) noexcept;

  /// Sets member `key` to `value`: replaces it in place if present, appends
  /// it otherwise. Returns the stored value.
  /// @throws codec_error if this is not an object.
  document& set(std::string key, document value);

  /// Appends `value` and returns the stored element.
  /// @throws codec_error if this is not an array.
  document& push_back(document value);

  /// Follows a dotted path such as `pos.y`, `tags.1` or `counts.0.key`.
  /// On an object a segment names a member; on an array a segment of decimal
  /// digits is an index. Returns nullptr if any step is absent, out of range
  /// or applied to a scalar. An empty path returns `this`. Keys containing
  /// '.' cannot be addressed. Allocation-free.
  const document* find(std::string_view dotted_path) const noexcept;

  /// Follows a dotted path to a value for modification (see above).
  document* find(std::string_view dotted_path) noexcept;

  // -- comparison -------------------------------------------------------------

  /// Structural, exact equality (see the class comment).
  friend bool operator==(const document& x, const document& y) noexcept;

  /// Negation of `==`.
  friend bool operator!=(const document& x, const document& y) noexcept {
    return !(x == y);
  }

private:
  template <class T>
  static int64_t checked_int(T x) {
    static_assert(sizeof(T) <= sizeof(int64_t), "integers wider than 64 bits");
    // Only a 64-bit unsigned type can exceed INT64_MAX.
    if constexpr (std::is_unsigned_v<T> && sizeof(T) == sizeof(int64_t)) {
      if (static_cast<uint64_t>(x)
          > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw_unsigned_overflow(static_cast<uint64_t>(x));
    }
    return static_cast<int64_t>(x);
  }

  [[noreturn]] static void throw_unsigned_overflow(uint64_t x);

  [[noreturn]] void throw_kind_mismatch(doc_kind expected) const;

  // The alternative order matches doc_kind, so index() is the kind.
  std::variant<std::monostate, bool, int64_t, double, std::string, bytes_type,
               array_type, object_type>
    value_;
};

// -- binary encoding (on-disk format) -----------------------------------------
//
// A stored document is exactly one value; each value is a tag byte followed by
// a payload that depends on the tag:
//
//   tag   kind     payload
//   0x00  null     (none)
//   0x01  boolean  (none): false
//   0x02  boolean  (none): true
//   0x03  integer  varint(zigzag(v))
//   0x04  real     8 bytes: the IEEE 754 binary64 bit pattern, little-endian
//   0x05  string   varint(n), then n bytes (UTF-8 by convention, not
//                  validated; may contain NUL)
//   0x06  bytes    varint(n), then n bytes
//   0x07  array    varint(n), then n values
//   0x08  object   varint(n), then n members; a member is varint(k), k key
//                  bytes, then the value. Keys are unique within an object;
//                  members appear in insertion order.
//
// Tags 0x09..0xff are reserved and rejected.
//
// varint: unsigned LEB128, 7 bits per byte, least significant group first,
// the high bit set on every byte but the last. It must be canonical: at most
// 10 bytes, value below 2^64, and no overlong form (a varint longer than one
// byte never ends in 0x00).
//
// zigzag maps signed to unsigned so that small magnitudes stay short:
// 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3, ..., INT64_MIN -> 2^64 - 1.
//
// Arrays and objects nest at most max_nesting_depth (100) levels. Nothing may
// follow the top-level value.
//
// Every encoding the decoder accepts is canonical, so re-encoding a decoded
// document reproduces the input bytes exactly.
//
// This is an on-disk format: any change to it needs a new value format
// version in the stored-value header (see strata/codec.hpp).

/// Returns the binary encoding of `x`.
/// @throws codec_error if `x` nests deeper than max_nesting_depth or holds an
///         object with a repeated key (the decoder would reject either).
std::vector<uint8_t> encode_document(const document& x);

/// Appends the binary encoding of `x` to `out` (same errors as above; on error
/// `out` may hold a partial encoding).
void encode_document(const document& x, std::vector<uint8_t>& out);

/// Decodes exactly one document from `size` bytes at `data`.
///
/// Safe on untrusted input: every length is checked against the remaining
/// input before anything is allocated, nesting is limited, and unknown tags,
/// non-canonical varints, repeated object keys and trailing bytes are errors.
/// @throws codec_error naming the problem and its byte offset.
document decode_document(const uint8_t* data, std::size_t size);

/// Decodes exactly one document from `buf` (see above).
inline document decode_document(const std::vector<uint8_t>& buf) {
  return decode_document(buf.data(), buf.size());
}

// -- JSON rendering -----------------------------------------------------------

/// Whether `x` is well-formed UTF-8 (no overlong forms, surrogates or values
/// above U+10FFFF), i.e. whether `to_json` renders it without loss.
bool is_utf8(std::string_view x) noexcept;

/// Renders `x` as compact JSON.
///
/// Strings: `"` and `\` are escaped, control characters become \u00XX (or
/// \b \f \n \r \t), valid UTF-8 passes through and each invalid byte becomes
/// \ufffd, so the result is always valid JSON. Reals use the shortest form
/// that reads back to the same double and always show a '.' or an exponent;
/// NaN and infinities become null. Bytes render as {"$bytes":"<base64>"}.
std::string to_json(const document& x);

} // namespace strata

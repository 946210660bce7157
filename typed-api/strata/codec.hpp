#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/vector.hpp>

#include "strata/document.hpp"
#include "strata/envelope.hpp"
#include "strata/serialization.hpp"

/// @file
/// The mapping between cereal-serializable C++ types and documents, stored
/// in the envelope of strata/envelope.hpp.
///
/// Mapping of C++ types to documents (`to_document` / `from_document`):
///
///   bool                          boolean
///   other integral types          integer (an unsigned value above INT64_MAX
///                                 is an error when writing)
///   floating-point types          real (reading also accepts an integer)
///   std::string                   string
///   std::vector<uint8_t>          bytes
///   std::optional<T>              null or T; reading treats a missing member
///                                 like null
///   std::map / std::unordered_map object (unordered maps are written in key
///     with std::string keys       order, so the encoding is deterministic)
///   sequences (cereal SizeTag)    array
///   other maps                    array of {"key": ..., "value": ...} objects
///                                 (cereal's generic map code)
///   classes with serialize()      object; members named by CEREAL_NVP or
///                                 make_nvp, unnamed ones "value0", "value1",
///                                 ... as in cereal's JSON archive
///   enums                         integer (cereal's save_minimal)
///   anything else cereal knows    as in cereal's JSON archive, e.g. a pair
///     (pair, variant, pointers,   is {"first": ..., "second": ...}, a
///     base classes, std::array)   variant {"index": ..., "data": ...}
///
/// Reading looks members up by name, so member order does not matter, and
/// ignores members the type does not know (so fields can be added). A missing
/// member (unless optional), a kind mismatch or an integer that does not fit
/// the target type is a codec_error whose message names the field path.

namespace strata {

// -- cereal archives --------------------------------------------------------------

namespace detail {

/// One step of a field path, used only to build error messages.
struct path_label {
  /// Member name, unless `is_index`.
  std::string_view name;
  /// Array position, if `is_index`.
  std::size_t index = 0;
  /// Whether this step is an array position.
  bool is_index = false;
  /// Whether this is the top-level value (contributes nothing to the path).
  bool is_root = false;
};

/// Renders "at 'a.b.1'" from the labels of `frames` plus `last` (if any).
template <class Frames>
std::string describe_path(const Frames& frames, const path_label* last) {
  std::string path;
  auto add = [&path](const path_label& x) {
    if (x.is_root)
      return;
    if (!path.empty())
      path += '.';
    if (x.is_index)
      path += std::to_string(x.index);
    else
      path.append(x.name);
  };
  for (auto& f : frames)
    add(f.label);
  if (last != nullptr)
    add(*last);
  return path.empty() ? std::string{"at the top level"} : "at '" + path + "'";
}

} // namespace detail

/// A cereal output archive that builds a `document` tree.
///
/// Use `to_document` rather than this class directly. The archive holds one
/// top-level value; the functions below the banner are hooks for the cereal
/// overloads in this header.
class doc_output_archive : public cereal::OutputArchive<doc_output_archive>,
                           public cereal::traits::TextArchive {
public:
  /// Constructs an empty archive.
  doc_output_archive() : cereal::OutputArchive<doc_output_archive>(this) {
    // nop
  }

  doc_output_archive(const doc_output_archive&) = delete;

  doc_output_archive& operator=(const doc_output_archive&) = delete;

  /// Moves out the document written so far (null if nothing was written).
  document release() {
    return std::move(root_);
  }

  // -- hooks for the cereal overloads ---------------------------------------

  /// Names the next value. `known_unique` skips the duplicate check, for map
  /// keys, which are unique by construction.
  void set_next_name(std::string_view name, bool known_unique = false) noexcept {
    next_name_ = name;
    has_next_name_ = true;
    next_name_known_unique_ = known_unique;
  }

  /// Starts an object for the next value; `make_array` may turn it into an
  /// array before anything is written into it.
  void start_node() {
    document& slot = next_slot();
    slot = document::object();
    stack_.push_back(frame{&slot, 0, current_});
  }

  /// Finishes the node opened by the last `start_node`.
  void finish_node() {
    stack_.pop_back();
  }

  /// Turns the node just started into an array.
  void make_array() {
    if (stack_.empty())
      throw codec_error{"to_document: a sequence size appears outside of any "
                        "value"};
    *stack_.back().node = document::array();
  }

  /// Writes `x` as the next value.
  void write_leaf(document x) {
    next_slot() = std::move(x);
  }

  /// Writes an arithmetic value as boolean, integer or real.
  template <class T>
  void write_arithmetic(T x) {
    if constexpr (std::is_same_v<T, bool>) {
      write_leaf(document{x});
    } else if constexpr (std::is_integral_v<T>) {
      static_assert(sizeof(T) <= sizeof(int64_t),
                    "integers wider than 64 bits cannot be stored");
      // Only a 64-bit unsigned type can exceed INT64_MAX.
      if constexpr (std::is_unsigned_v<T> && sizeof(T) == sizeof(int64_t)) {
        constexpr auto max = static_cast<uint64_t>(
          std::numeric_limits<int64_t>::max());
        if (static_cast<uint64_t>(x) > max)
          throw codec_error{"to_document: " + describe_next()
                            + ": unsigned integer " + std::to_string(x)
                            + " exceeds INT64_MAX, the largest integer a "
                              "document can hold"};
      }
      write_leaf(document::integer(static_cast<int64_t>(x)));
    } else {
      write_leaf(document::real(static_cast<double>(x)));
    }
  }

private:
  struct frame {
    document* node;
    uint32_t unnamed; // counter for "value0", "value1", ...
    detail::path_label label;
  };

  // Returns where the next value goes: the root, a new array element, or a
  // new object member named by the pending name or the unnamed counter.
  // Pointers on the stack stay valid: a container is only appended to while
  // it is the innermost open node.
  document& next_slot() {
    bool named = has_next_name_;
    has_next_name_ = false;
    if (stack_.empty()) {
      if (root_written_)
        throw codec_error{"to_document: a document holds exactly one top-level "
                          "value; wrap several values in a struct"};
      root_written_ = true;
      current_ = detail::path_label{{}, 0, false, true};
      return root_;
    }
    auto& top = stack_.back();
    if (top.node->is_array()) {
      auto& elements = top.node->as_array();
      current_ = detail::path_label{{}, elements.size(), true, false};
      return elements.emplace_back();
    }
    auto& members = top.node->as_object();
    auto key = named ? std::string{next_name_}
                     : "value" + std::to_string(top.unnamed++);
    if (!named || !next_name_known_unique_) {
      for (auto& member : members)
        if (member.first == key)
          throw codec_error{"to_document: "
                            + detail::describe_path(stack_, nullptr)
                            + ": the member name '" + key
                            + "' is written twice"};
    }
    auto& member = members.emplace_back(std::move(key), document{});
    current_ = detail::path_label{member.first, 0, false, false};
    return member.second;
  }

  // Describes the path of the value about to be written, for errors.
  std::string describe_next() const {
    if (stack_.empty())
      return detail::describe_path(stack_, nullptr);
    detail::path_label next;
    std::string unnamed;
    auto& top = stack_.back();
    if (top.node->is_array()) {
      next.is_index = true;
      next.index = top.node->as_array().size();
    } else if (has_next_name_) {
      next.name = next_name_;
    } else {
      unnamed = "value" + std::to_string(top.unnamed);
      next.name = unnamed;
    }
    return detail::describe_path(stack_, &next);
  }

  document root_;
  bool root_written_ = false;
  std::vector<frame> stack_;
  std::string_view next_name_;
  bool has_next_name_ = false;
  bool next_name_known_unique_ = false;
  detail::path_label current_;
};

/// A cereal input archive that reads values from a `document` tree.
///
/// Use `from_document` rather than this class directly. The archive refers
/// to the document, which must outlive it. The functions below the banner are
/// hooks for the cereal overloads in this header.
class doc_input_archive : public cereal::InputArchive<doc_input_archive>,
                          public cereal::traits::TextArchive {
public:
  /// Constructs an archive reading from `root`.
  explicit doc_input_archive(const document& root)
    : cereal::InputArchive<doc_input_archive>(this), root_(root) {
    // nop
  }

  doc_input_archive(const doc_input_archive&) = delete;

  doc_input_archive& operator=(const doc_input_archive&) = delete;

  // -- hooks for the cereal overloads ---------------------------------------

  /// Names the next value: it is looked up by name in the current object.
  void set_next_name(std::string_view name) noexcept {
    next_name_ = name;
    has_next_name_ = true;
  }

  /// Enters the next value, which must be an object or an array.
  void start_node() {
    const document& x = next_value();
    if (!x.is_object() && !x.is_array())
      fail_kind("object or array", x);
    stack_.push_back(frame{&x, 0, current_});
  }

  /// Leaves the node entered by the last `start_node`.
  void finish_node() {
    stack_.pop_back();
  }

  /// Reads the element count of the current node, which must be an array.
  void load_size(cereal::size_type& size) {
    if (stack_.empty() || !stack_.back().node->is_array())
      fail("to read a sequence, expected array, found "
             + std::string{stack_.empty()
                             ? "nothing"
                             : to_string(stack_.back().node->kind())},
           nullptr);
    size = stack_.back().node->as_array().size();
  }

  /// Returns the members of the current node, which must be an object.
  const document::object_type& current_object() const {
    if (stack_.empty() || !stack_.back().node->is_object())
      fail("to read a map with string keys, expected object, found "
             + std::string{stack_.empty()
                             ? "nothing"
                             : to_string(stack_.back().node->kind())},
           nullptr);
    return stack_.back().node->as_object();
  }

  /// Reads an arithmetic value, checking kind and range.
  template <class T>
  void read_arithmetic(T& x) {
    const document& value = next_value();
    if constexpr (std::is_same_v<T, bool>) {
      if (!value.is_bool())
        fail_kind("boolean", value);
      x = value.as_bool();
    } else if constexpr (std::is_integral_v<T>) {
      static_assert(sizeof(T) <= sizeof(int64_t),
                    "integers wider than 64 bits cannot be stored");
      if (!value.is_int())
        fail_kind("integer", value);
      auto i = value.as_int();
      using limits = std::numeric_limits<T>;
      if constexpr (std::is_signed_v<T>) {
        constexpr auto lo = static_cast<int64_t>(limits::min());
        constexpr auto hi = static_cast<int64_t>(limits::max());
        if (i < lo || i > hi)
          fail_range(i, std::to_string(lo) + ".." + std::to_string(hi));
      } else {
        constexpr auto hi = static_cast<uint64_t>(limits::max());
        if (i < 0 || static_cast<uint64_t>(i) > hi)
          fail_range(i, "0.." + std::to_string(hi));
      }
      x = static_cast<T>(i);
    } else {
      double d;
      if (value.is_real())
        d = value.as_real();
      else if (value.is_int())
        d = static_cast<double>(value.as_int());
      else
        fail_kind("real", value);
      if constexpr (sizeof(T) < sizeof(double)) {
        if (std::isfinite(d)
            && std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max()))
          fail("real " + std::to_string(d)
                 + " is out of range for the target floating-point type",
               &current_);
      }
      x = static_cast<T>(d);
    }
  }

  /// Reads a string.
  void read_string(std::string& x) {
    const document& value = next_value();
    if (!value.is_string())
      fail_kind("string", value);
    x = value.as_string();
  }

  /// Reads a bytes value.
  template <class Allocator>
  void read_bytes(std::vector<uint8_t, Allocator>& x) {
    const document& value = next_value();
    if (!value.is_bytes())
      fail_kind("bytes", value);
    auto& content = value.as_bytes();
    x.assign(content.begin(), content.end());
  }

  /// Reads a null.
  void read_null() {
    const document& value = next_value();
    if (!value.is_null())
      fail_kind("null", value);
  }

  /// Returns the next value without consuming it, or nullptr if a named
  /// member is missing or a node has no more values.
  const document* peek_next() {
    return resolve(false, false);
  }

  /// Consumes the next value if there is one (an absent optional).
  void skip_next() {
    resolve(false, true);
  }

private:
  struct frame {
    const document* node;
    std::size_t cursor; // next position for unnamed reads and name lookups
    detail::path_label label;
  };

  const document& next_value() {
    return *resolve(true, true);
  }

  // Locates the next value: the root, the member named by the pending name,
  // or the element at the cursor. With `required`, absence is an error;
  // otherwise it yields nullptr. Only `consume` changes state.
  const document* resolve(bool required, bool consume) {
    bool named = has_next_name_;
    if (consume)
      has_next_name_ = false;
    if (stack_.empty()) {
      if (root_taken_) {
        if (!required)
          return nullptr;
        fail("the document holds one top-level value and it was already read",
             nullptr);
      }
      if (consume) {
        root_taken_ = true;
        current_ = detail::path_label{{}, 0, false, true};
      }
      return &root_;
    }
    auto& top = stack_.back();
    if (top.node->is_object()) {
      auto& members = top.node->as_object();
      auto n = members.size();
      std::size_t pos = n;
      if (named) {
        // Start at the cursor: members usually come in the order written.
        for (std::size_t i = 0; i < n; ++i) {
          auto candidate = (top.cursor + i) % n;
          if (members[candidate].first == next_name_) {
            pos = candidate;
            break;
          }
        }
        if (pos == n) {
          if (!required)
            return nullptr;
          detail::path_label missing{next_name_, 0, false, false};
          fail("missing member", &missing);
        }
      } else {
        if (top.cursor >= n) {
          if (!required)
            return nullptr;
          fail("expected an unnamed member at position "
                 + std::to_string(top.cursor) + " but the object has only "
                 + std::to_string(n),
               nullptr);
        }
        pos = top.cursor;
      }
      if (consume) {
        top.cursor = pos + 1;
        current_ = detail::path_label{members[pos].first, 0, false, false};
      }
      return &members[pos].second;
    }
    // start_node admits only objects and arrays.
    auto& elements = top.node->as_array();
    if (named)
      fail("expected object with member '" + std::string{next_name_}
             + "', found array",
           nullptr);
    if (top.cursor >= elements.size()) {
      if (!required)
        return nullptr;
      fail("expected an element at position " + std::to_string(top.cursor)
             + " but the array has only " + std::to_string(elements.size()),
           nullptr);
    }
    auto pos = top.cursor;
    if (consume) {
      ++top.cursor;
      current_ = detail::path_label{{}, pos, true, false};
    }
    return &elements[pos];
  }

  [[noreturn]] void fail(const std::string& what,
                         const detail::path_label* last) const {
    throw codec_error{"from_document: " + detail::describe_path(stack_, last)
                      + ": " + what};
  }

  [[noreturn]] void fail_range(int64_t value, const std::string& range) const {
    fail("integer " + std::to_string(value)
           + " is out of range for the target type (" + range + ")",
         &current_);
  }

  [[noreturn]] void fail_kind(const char* expected, const document& found) const {
    fail(std::string{"expected "} + expected + ", found "
           + to_string(found.kind()),
         &current_);
  }

  const document& root_;
  bool root_taken_ = false;
  std::vector<frame> stack_;
  std::string_view next_name_;
  bool has_next_name_ = false;
  detail::path_label current_; // the value most recently located
};

} // namespace strata

// -- cereal glue: prologue and epilogue -------------------------------------------
//
// Mirrors cereal's JSON archive: names and size tags open no node, leaves
// (arithmetic, strings, bytes, optionals, nullptr) open no node, everything
// else opens a node that becomes an object or, after a size tag, an array.
// These overloads are more specialized than cereal's generic ones and win by
// partial ordering.

namespace cereal {

/// Names open no node.
template <class T>
void prologue(strata::doc_output_archive&, const NameValuePair<T>&) {
  // nop
}

/// Names open no node.
template <class T>
void epilogue(strata::doc_output_archive&, const NameValuePair<T>&) {
  // nop
}

/// Names open no node.
template <class T>
void prologue(strata::doc_input_archive&, const NameValuePair<T>&) {
  // nop
}

/// Names open no node.
template <class T>
void epilogue(strata::doc_input_archive&, const NameValuePair<T>&) {
  // nop
}

/// Deferred data opens no node.
template <class T>
void prologue(strata::doc_output_archive&, const DeferredData<T>&) {
  // nop
}

/// Deferred data opens no node.
template <class T>
void epilogue(strata::doc_output_archive&, const DeferredData<T>&) {
  // nop
}

/// Deferred data opens no node.
template <class T>
void prologue(strata::doc_input_archive&, const DeferredData<T>&) {
  // nop
}

/// Deferred data opens no node.
template <class T>
void epilogue(strata::doc_input_archive&, const DeferredData<T>&) {
  // nop
}

/// A size tag turns the node just opened into an array.
template <class T>
void prologue(strata::doc_output_archive& ar, const SizeTag<T>&) {
  ar.make_array();
}

/// Size tags close nothing.
template <class T>
void epilogue(strata::doc_output_archive&, const SizeTag<T>&) {
  // nop
}

/// Size tags open no node.
template <class T>
void prologue(strata::doc_input_archive&, const SizeTag<T>&) {
  // nop
}

/// Size tags close nothing.
template <class T>
void epilogue(strata::doc_input_archive&, const SizeTag<T>&) {
  // nop
}

/// Types that are one node of the document: neither arithmetic nor
/// serialized minimally (as one value).
template <class T>
constexpr bool opens_node_on_output
  = !std::is_arithmetic<T>::value
    && !traits::has_minimal_base_class_serialization<
      T, traits::has_minimal_output_serialization, strata::doc_output_archive>::value
    && !traits::has_minimal_output_serialization<T, strata::doc_output_archive>::value;

template <class T>
constexpr bool opens_node_on_input
  = !std::is_arithmetic<T>::value
    && !traits::has_minimal_base_class_serialization<
      T, traits::has_minimal_input_serialization, strata::doc_input_archive>::value
    && !traits::has_minimal_input_serialization<T, strata::doc_input_archive>::value;

/// Every non-minimal type without its own overload opens a node.
template <class T,
          traits::EnableIf<opens_node_on_output<T>> = traits::sfinae>
void prologue(strata::doc_output_archive& ar, const T&) {
  ar.start_node();
}

/// Closes the node opened by the prologue.
template <class T,
          traits::EnableIf<opens_node_on_output<T>> = traits::sfinae>
void epilogue(strata::doc_output_archive& ar, const T&) {
  ar.finish_node();
}

/// Every non-minimal type without its own overload enters a node.
template <class T,
          traits::EnableIf<opens_node_on_input<T>> = traits::sfinae>
void prologue(strata::doc_input_archive& ar, const T&) {
  ar.start_node();
}

/// Leaves the node entered by the prologue.
template <class T,
          traits::EnableIf<opens_node_on_input<T>> = traits::sfinae>
void epilogue(strata::doc_input_archive& ar, const T&) {
  ar.finish_node();
}

/// Leaves open no node.
inline void prologue(strata::doc_output_archive&, const std::nullptr_t&) {
  // nop
}

/// Leaves open no node.
inline void epilogue(strata::doc_output_archive&, const std::nullptr_t&) {
  // nop
}

/// Leaves open no node.
inline void prologue(strata::doc_input_archive&, const std::nullptr_t&) {
  // nop
}

/// Leaves open no node.
inline void epilogue(strata::doc_input_archive&, const std::nullptr_t&) {
  // nop
}

/// Leaves open no node.
template <class T, traits::EnableIf<std::is_arithmetic<T>::value>
                     = traits::sfinae>
void prologue(strata::doc_output_archive&, const T&) {
  // nop
}

/// Leaves open no node.
template <class T, traits::EnableIf<std::is_arithmetic<T>::value>
                     = traits::sfinae>
void epilogue(strata::doc_output_archive&, const T&) {
  // nop
}

/// Leaves open no node.
template <class T, traits::EnableIf<std::is_arithmetic<T>::value>
                     = traits::sfinae>
void prologue(strata::doc_input_archive&, const T&) {
  // nop
}

/// Leaves open no node.
template <class T, traits::EnableIf<std::is_arithmetic<T>::value>
                     = traits::sfinae>
void epilogue(strata::doc_input_archive&, const T&) {
  // nop
}

/// Leaves open no node.
template <class Traits, class Alloc>
void prologue(strata::doc_output_archive&,
              const std::basic_string<char, Traits, Alloc>&) {
  // nop
}

/// Leaves open no node.
template <class Traits, class Alloc>
void epilogue(strata::doc_output_archive&,
              const std::basic_string<char, Traits, Alloc>&) {
  // nop
}

/// Leaves open no node.
template <class Traits, class Alloc>
void prologue(strata::doc_input_archive&,
              const std::basic_string<char, Traits, Alloc>&) {
  // nop
}

/// Leaves open no node.
template <class Traits, class Alloc>
void epilogue(strata::doc_input_archive&,
              const std::basic_string<char, Traits, Alloc>&) {
  // nop
}

/// Bytes are a leaf, not a sequence.
template <class Alloc>
void prologue(strata::doc_output_archive&, const std::vector<uint8_t, Alloc>&) {
  // nop
}

/// Bytes are a leaf, not a sequence.
template <class Alloc>
void epilogue(strata::doc_output_archive&, const std::vector<uint8_t, Alloc>&) {
  // nop
}

/// Bytes are a leaf, not a sequence.
template <class Alloc>
void prologue(strata::doc_input_archive&, const std::vector<uint8_t, Alloc>&) {
  // nop
}

/// Bytes are a leaf, not a sequence.
template <class Alloc>
void epilogue(strata::doc_input_archive&, const std::vector<uint8_t, Alloc>&) {
  // nop
}

/// An optional is its value or null, not a wrapper node.
template <class T>
void prologue(strata::doc_output_archive&, const std::optional<T>&) {
  // nop
}

/// An optional is its value or null, not a wrapper node.
template <class T>
void epilogue(strata::doc_output_archive&, const std::optional<T>&) {
  // nop
}

/// An optional is its value or null, not a wrapper node.
template <class T>
void prologue(strata::doc_input_archive&, const std::optional<T>&) {
  // nop
}

/// An optional is its value or null, not a wrapper node.
template <class T>
void epilogue(strata::doc_input_archive&, const std::optional<T>&) {
  // nop
}

// -- cereal glue: save and load -----------------------------------------------------

/// Writes a named value.
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive& ar,
                               const NameValuePair<T>& x) {
  ar.set_next_name(x.name);
  ar(x.value);
}

/// Reads a named value.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar,
                               NameValuePair<T>& x) {
  ar.set_next_name(x.name);
  ar(x.value);
}

/// Arrays carry their size implicitly.
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive&, const SizeTag<T>&) {
  // nop
}

/// Reads the size of the current array.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar, SizeTag<T>& x) {
  cereal::size_type size = 0;
  ar.load_size(size);
  x.size = static_cast<std::remove_reference_t<T>>(size);
}

/// Writes null.
inline void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive& ar,
                                      const std::nullptr_t&) {
  ar.write_leaf(strata::document{});
}

/// Reads null.
inline void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar,
                                      std::nullptr_t&) {
  ar.read_null();
}

/// Writes a boolean, integer or real.
template <class T, traits::EnableIf<std::is_arithmetic<T>::value>
                     = traits::sfinae>
void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive& ar, const T& x) {
  ar.write_arithmetic(x);
}

/// Reads a boolean, integer or real.
template <class T, traits::EnableIf<std::is_arithmetic<T>::value>
                     = traits::sfinae>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar, T& x) {
  ar.read_arithmetic(x);
}

/// Writes a string.
template <class Traits, class Alloc>
void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive& ar,
                               const std::basic_string<char, Traits, Alloc>& x) {
  ar.write_leaf(strata::document{std::string{x.data(), x.size()}});
}

/// Reads a string.
template <class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar,
                               std::basic_string<char, Traits, Alloc>& x) {
  std::string tmp;
  ar.read_string(tmp);
  x.assign(tmp.data(), tmp.size());
}

/// Writes bytes as one compact leaf rather than an array of integers.
template <class Alloc>
void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive& ar,
                               const std::vector<uint8_t, Alloc>& x) {
  ar.write_leaf(strata::document::bytes({x.begin(), x.end()}));
}

/// Reads bytes.
template <class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar,
                               std::vector<uint8_t, Alloc>& x) {
  ar.read_bytes(x);
}

/// Writes the value, or null if empty.
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(strata::doc_output_archive& ar,
                               const std::optional<T>& x) {
  if (x)
    ar(*x);
  else
    ar.write_leaf(strata::document{});
}

/// Reads null or a missing member as empty, anything else as the value.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar,
                               std::optional<T>& x) {
  if (auto next = ar.peek_next(); next == nullptr || next->is_null()) {
    ar.skip_next();
    x.reset();
  } else {
    x.emplace();
    ar(*x);
  }
}

/// Writes a map with string keys as an object.
template <class V, class Compare, class Alloc>
void CEREAL_SAVE_FUNCTION_NAME(
  strata::doc_output_archive& ar,
  const std::map<std::string, V, Compare, Alloc>& xs) {
  for (auto& [key, value] : xs) {
    ar.set_next_name(key, true);
    ar(value);
  }
}

/// Reads a map with string keys from an object.
template <class V, class Compare, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(strata::doc_input_archive& ar,
                               std::map<std::string, V, Compare, Alloc>& xs) {
  xs.clear();
  for (auto& member : ar.current_object()) {
    V value{};
    // Keys are unique, so the lookup by name finds exactly this member (and
    // finds it at once, since the cursor points at it).
    ar.set_next_name(member.first);
    ar(value);
    xs.emplace_hint(xs.end(), member.first, std::move(value));
  }
}

/// Writes a hash map with string keys as an object, in key order so that
/// equal maps always produce equal documents.
template <class V, class Hash, class KeyEqual, class Alloc>
void CEREAL_SAVE_FUNCTION_NAME(
  strata::doc_output_archive& ar,
  const std::unordered_map<std::string, V, Hash, KeyEqual, Alloc>& xs) {
  using entry = typename std::unordered_map<std::string, V, Hash, KeyEqual,
                                            Alloc>::value_type;
  std::vector<const entry*> sorted;
  sorted.reserve(xs.size());
  for (auto& x : xs)
    sorted.push_back(&x);
  std::sort(sorted.begin(), sorted.end(),
            [](const entry* x, const entry* y) { return x->first < y->first; });
  for (auto x : sorted) {
    ar.set_next_name(x->first, true);
    ar(x->second);
  }
}

/// Reads a hash map with string keys from an object.
template <class V, class Hash, class KeyEqual, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(
  strata::doc_input_archive& ar,
  std::unordered_map<std::string, V, Hash, KeyEqual, Alloc>& xs) {
  xs.clear();
  auto& members = ar.current_object();
  xs.reserve(members.size());
  for (auto& member : members) {
    V value{};
    ar.set_next_name(member.first);
    ar(value);
    xs.emplace(member.first, std::move(value));
  }
}

} // namespace cereal

CEREAL_REGISTER_ARCHIVE(strata::doc_output_archive)
CEREAL_REGISTER_ARCHIVE(strata::doc_input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(strata::doc_input_archive,
                            strata::doc_output_archive)

// -- conversions ----------------------------------------------------------------

namespace strata {

/// Converts any cereal-serializable `x` into a document (see the mapping at
/// the top of this header).
/// @throws codec_error if `x` holds a value a document cannot represent.
template <class T>
document to_document(const T& x) {
  doc_output_archive ar;
  try {
    ar(x);
  } catch (const cereal::Exception& e) {
    throw codec_error{std::string{"to_document: "} + e.what()};
  }
  return ar.release();
}

/// Reads a `T` (default-constructible, cereal-serializable) from `x`.
/// @throws codec_error on a missing member, kind mismatch or out-of-range
///         integer; the message names the field path.
template <class T>
T from_document(const document& x) {
  static_assert(std::is_default_constructible_v<T>,
                "from_document needs a default-constructible type");
  T result{};
  doc_input_archive ar{x};
  try {
    ar(result);
  } catch (const cereal::Exception& e) {
    throw codec_error{std::string{"from_document: "} + e.what()};
  }
  return result;
}

/// Returns `x` as a stored value: header (document encoding) followed by the
/// binary encoding of `to_document(x)`.
/// @throws codec_error if `x` cannot be represented.
template <class T>
std::vector<uint8_t> encode_value(const T& x) {
  return encode_doc(to_document(x));
}

/// Reads a `T` from a stored value written by `encode_value`, e.g. straight
/// from the storage engine's memory. Safe on untrusted bytes.
/// @throws codec_error on a bad header, malformed payload or a document that
///         does not match `T`.
template <class T>
T decode_value(const uint8_t* data, std::size_t size) {
  return from_document<T>(decode_doc(data, size));
}

/// Reads a `T` from a stored value written by `encode_value` (see above).
template <class T>
T decode_value(const std::vector<uint8_t>& stored) {
  return decode_value<T>(stored.data(), stored.size());
}

// -- serialization settings --------------------------------------------------------

/// How a typed client turns `T` into stored values and back: `serialization`
/// settings, plus an optional `serializer<T>` of the application's (the only
/// way to write formats custom and protobuf). Reading needs no settings: the
/// value's header names its format and compression, so values written under
/// any settings read back; only custom values need the serializer that wrote
/// them.
template <class T>
class value_codec {
public:
  value_codec() = default;

  /// @throws codec_error if `s` is invalid.
  explicit value_codec(serialization s, serializer<T> custom = {})
    : settings_(s), custom_(std::move(custom)) {
    if (custom_.serialize)
      settings_.format = custom_.encoding;
    if (auto problem = settings_.problem(); !problem.empty())
      throw codec_error{problem};
  }

  /// The codec of clients that were given no settings: documents, uncompressed.
  static const std::shared_ptr<const value_codec>& standard() {
    static const auto instance = std::make_shared<const value_codec>();
    return instance;
  }

  const serialization& settings() const noexcept {
    return settings_;
  }

  /// @throws codec_error if `x` cannot be written in the chosen format.
  std::vector<uint8_t> encode(const T& x) const {
    auto format = settings_.format;
    if (format == value_encoding::custom || format == value_encoding::protobuf) {
      if (!custom_.serialize)
        throw codec_error{std::string{"format "} + to_string(format)
                          + " needs a serializer (value_codec(settings, serializer))"};
      return seal_value(custom_.encoding, guarded([&] { return custom_.serialize(x); }),
                        settings_);
    }
    if constexpr (writes_documents) {
      if (format == value_encoding::document && settings_.compression == value_compression::none)
        return encode_doc(to_document(x));
      return encode_doc(to_document(x), settings_);
    } else {
      throw codec_error{"this type is not cereal-serializable: it needs a serializer"};
    }
  }

  /// @throws codec_error if the bytes are not a `T` this codec can read.
  T decode(const uint8_t* data, std::size_t size) const {
    opened_value v{data, size};
    auto encoding = v.header().encoding;
    if (custom_.deserialize && encoding == custom_.encoding)
      return guarded([&] { return custom_.deserialize(v.payload()); });
    if (encoding == value_encoding::custom)
      throw codec_error{"stored value was written by a custom serializer, and this client "
                        "has none"};
    if constexpr (reads_documents)
      return from_document<T>(decode_doc(v));
    else
      throw codec_error{std::string{"stored value has "} + to_string(encoding)
                        + " encoding, and this client's serializer does not read it"};
  }

  T decode(const std::vector<uint8_t>& stored) const {
    return decode(stored.data(), stored.size());
  }

private:
  /// Whether `T` maps to documents through cereal; other types (protobuf
  /// messages, say) are written and read by a serializer only.
  static constexpr bool writes_documents
    = cereal::traits::is_output_serializable<T, doc_output_archive>::value;
  static constexpr bool reads_documents
    = cereal::traits::is_input_serializable<T, doc_input_archive>::value;

  /// An application's serializer may throw anything; the client reports
  /// SERIALIZATION_FAILED either way.
  template <class F>
  static auto guarded(F f) {
    try {
      return f();
    } catch (const codec_error&) {
      throw;
    } catch (const std::exception& e) {
      throw codec_error{std::string{"serializer: "} + e.what()};
    }
  }

  serialization settings_;
  serializer<T> custom_;
};

} // namespace strata

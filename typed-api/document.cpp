#include "strata/document.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include "strata/base64.hpp"
#include "typed-api/varint.hpp"

namespace strata {

namespace {

// -- helpers ------------------------------------------------------------------

// Tag bytes of the binary encoding; see the format description in the header.
enum tag : uint8_t {
  tag_null = 0x00,
  tag_false = 0x01,
  tag_true = 0x02,
  tag_integer = 0x03,
  tag_real = 0x04,
  tag_string = 0x05,
  tag_bytes = 0x06,
  tag_array = 0x07,
  tag_object = 0x08,
};

uint64_t double_bits(double x) noexcept {
  uint64_t result;
  std::memcpy(&result, &x, sizeof(result));
  return result;
}

double bits_to_double(uint64_t x) noexcept {
  double result;
  std::memcpy(&result, &x, sizeof(result));
  return result;
}

uint64_t zigzag(int64_t x) noexcept {
  auto u = static_cast<uint64_t>(x);
  return x < 0 ? ~(u << 1) : u << 1;
}

int64_t unzigzag(uint64_t x) noexcept {
  // Both branches stay within int64_t: x >> 1 is at most INT64_MAX.
  auto magnitude = static_cast<int64_t>(x >> 1);
  return (x & 1) != 0 ? -magnitude - 1 : magnitude;
}

// Returns a key with a repeated occurrence in `xs`, or nullptr. Quadratic for
// the small objects that dominate in practice, O(n log n) otherwise so that a
// hostile input with many members cannot make decoding quadratic.
const std::string* find_duplicate_key(const document::object_type& xs) {
  constexpr std::size_t pairwise_limit = 16;
  if (xs.size() <= pairwise_limit) {
    for (std::size_t i = 0; i < xs.size(); ++i)
      for (std::size_t j = i + 1; j < xs.size(); ++j)
        if (xs[i].first == xs[j].first)
          return &xs[i].first;
    return nullptr;
  }
  std::vector<const std::string*> keys;
  keys.reserve(xs.size());
  for (auto& member : xs)
    keys.push_back(&member.first);
  std::sort(keys.begin(), keys.end(),
            [](const std::string* x, const std::string* y) { return *x < *y; });
  auto i = std::adjacent_find(
    keys.begin(), keys.end(),
    [](const std::string* x, const std::string* y) { return *x == *y; });
  return i == keys.end() ? nullptr : *i;
}

// Returns the length of the well-formed UTF-8 sequence at `first`, or 0 if the
// bytes there are not one (overlong forms, surrogates and values above
// U+10FFFF are ill-formed).
std::size_t utf8_sequence_length(const unsigned char* first,
                                 const unsigned char* last) noexcept {
  auto avail = static_cast<std::size_t>(last - first);
  auto lead = first[0];
  std::size_t len;
  unsigned char lo = 0x80;
  unsigned char hi = 0xbf;
  if (lead < 0x80)
    return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    len = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    len = 3;
    if (lead == 0xe0)
      lo = 0xa0;
    else if (lead == 0xed)
      hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    len = 4;
    if (lead == 0xf0)
      lo = 0x90;
    else if (lead == 0xf4)
      hi = 0x8f;
  } else {
    return 0;
  }
  if (avail < len)
    return 0;
  if (first[1] < lo || first[1] > hi)
    return 0;
  for (std::size_t i = 2; i < len; ++i)
    if (first[i] < 0x80 || first[i] > 0xbf)
      return 0;
  return len;
}

} // namespace

bool is_utf8(std::string_view x) noexcept {
  auto first = reinterpret_cast<const unsigned char*>(x.data());
  auto last = first + x.size();
  while (first != last) {
    auto len = utf8_sequence_length(first, last);
    if (len == 0)
      return false;
    first += len;
  }
  return true;
}

namespace {

void append_json_string(std::string& out, std::string_view x) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  auto first = reinterpret_cast<const unsigned char*>(x.data());
  auto last = first + x.size();
  while (first != last) {
    auto c = *first;
    if (c >= 0x80) {
      if (auto len = utf8_sequence_length(first, last); len > 0) {
        out.append(reinterpret_cast<const char*>(first), len);
        first += len;
      } else {
        out += "\\ufffd";
        ++first;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0x0f];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++first;
  }
  out += '"';
}

// Renders a key for an error message: JSON-quoted and cut to a sane length,
// since keys come from untrusted input.
std::string quote_for_message(std::string_view x) {
  constexpr std::size_t max_len = 64;
  std::string result;
  append_json_string(result, x.substr(0, max_len));
  if (x.size() > max_len)
    result += "...";
  return result;
}

void append_json(std::string& out, const document& x) {
  switch (x.kind()) {
    case doc_kind::null:
      out += "null";
      break;
    case doc_kind::boolean:
      out += x.as_bool() ? "true" : "false";
      break;
    case doc_kind::integer: {
      std::array<char, 24> buf;
      auto res = std::to_chars(buf.data(), buf.data() + buf.size(), x.as_int());
      out.append(buf.data(), res.ptr);
      break;
    }
    case doc_kind::real: {
      auto value = x.as_real();
      if (!std::isfinite(value)) {
        out += "null";
        break;
      }
      // Shortest representation that reads back to the same double.
      std::array<char, 32> buf;
      auto res = std::to_chars(buf.data(), buf.data() + buf.size(), value);
      std::string_view str{buf.data(),
                           static_cast<std::size_t>(res.ptr - buf.data())};
      out += str;
      // Keep reals recognisable as reals: 1.0 renders as "1.0", not "1".
      if (str.find_first_of(".e") == std::string_view::npos)
        out += ".0";
      break;
    }
    case doc_kind::string:
      append_json_string(out, x.as_string());
      break;
    case doc_kind::bytes: {
      auto& raw = x.as_bytes();
      out += "{\"$bytes\":\"";
      append_base64(out, {reinterpret_cast<const char*>(raw.data()), raw.size()});
      out += "\"}";
      break;
    }
    case doc_kind::array: {
      out += '[';
      bool first = true;
      for (auto& element : x.as_array()) {
        if (!first)
          out += ',';
        first = false;
        append_json(out, element);
      }
      out += ']';
      break;
    }
    case doc_kind::object: {
      out += '{';
      bool first = true;
      for (auto& [key, value] : x.as_object()) {
        if (!first)
          out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        append_json(out, value);
      }
      out += '}';
      break;
    }
  }
}

// -- encoder ------------------------------------------------------------------

using detail::put_varint;

void put_chunk(std::vector<uint8_t>& out, const void* data, std::size_t size) {
  put_varint(out, size);
  auto first = static_cast<const uint8_t*>(data);
  out.insert(out.end(), first, first + size);
}

// `depth` counts the arrays and objects enclosing `x`.
void encode_value(const document& x, std::vector<uint8_t>& out,
                  std::size_t depth) {
  switch (x.kind()) {
    case doc_kind::null:
      out.push_back(tag_null);
      return;
    case doc_kind::boolean:
      out.push_back(x.as_bool() ? tag_true : tag_false);
      return;
    case doc_kind::integer:
      out.push_back(tag_integer);
      put_varint(out, zigzag(x.as_int()));
      return;
    case doc_kind::real: {
      out.push_back(tag_real);
      auto bits = double_bits(x.as_real());
      for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
      return;
    }
    case doc_kind::string: {
      auto& str = x.as_string();
      out.push_back(tag_string);
      put_chunk(out, str.data(), str.size());
      return;
    }
    case doc_kind::bytes: {
      auto& content = x.as_bytes();
      out.push_back(tag_bytes);
      put_chunk(out, content.data(), content.size());
      return;
    }
    case doc_kind::array:
    case doc_kind::object:
      break;
  }
  if (depth >= max_nesting_depth)
    throw codec_error{"encode_document: arrays and objects nest deeper than "
                      + std::to_string(max_nesting_depth)
                      + " levels; decode_document would reject the result"};
  if (x.is_array()) {
    auto& xs = x.as_array();
    out.push_back(tag_array);
    put_varint(out, xs.size());
    for (auto& element : xs)
      encode_value(element, out, depth + 1);
    return;
  }
  auto& xs = x.as_object();
  if (auto key = find_duplicate_key(xs))
    throw codec_error{"encode_document: an object holds the key "
                      + quote_for_message(*key)
                      + " twice; decode_document would reject the result"};
  out.push_back(tag_object);
  put_varint(out, xs.size());
  for (auto& [key, value] : xs) {
    put_chunk(out, key.data(), key.size());
    encode_value(value, out, depth + 1);
  }
}

// -- decoder ------------------------------------------------------------------

// Reads one document from untrusted bytes. Every read is bounds-checked and
// every length is compared with the remaining input before allocating.
class decoder {
public:
  decoder(const uint8_t* data, std::size_t size)
    : first_(data), pos_(data), last_(data + size) {
    // nop
  }

  document run() {
    auto result = value(0);
    if (pos_ != last_)
      fail(offset(), "trailing bytes: the document ends here but the input is "
                       + std::to_string(last_ - first_) + " bytes long");
    return result;
  }

private:
  std::size_t offset() const noexcept {
    return static_cast<std::size_t>(pos_ - first_);
  }

  std::size_t remaining() const noexcept {
    return static_cast<std::size_t>(last_ - pos_);
  }

  [[noreturn]] static void fail(std::size_t at, const std::string& what) {
    throw codec_error{"decode_document: " + what + " (at byte offset "
                      + std::to_string(at) + ")"};
  }

  uint64_t varint(const char* what) {
    auto start = offset();
    uint64_t result = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (pos_ == last_)
        fail(start, std::string{"input ends inside the "} + what + " varint");
      auto byte = *pos_++;
      // The 10th byte carries bit 63 only; anything more overflows.
      if (shift == 63 && byte > 1)
        fail(start, std::string{"the "} + what
                      + " varint does not fit in 64 bits");
      result |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift > 0)
          fail(start, std::string{"the "} + what
                        + " varint is not in canonical (shortest) form");
        return result;
      }
    }
  }

  // Reads a length prefix and checks that `n * min_unit_size` bytes remain.
  std::size_t length(const char* what, std::size_t min_unit_size,
                     std::size_t value_start) {
    auto n = varint(what);
    if (n > remaining() / min_unit_size)
      fail(value_start, std::string{"the "} + what + " " + std::to_string(n)
                          + " exceeds the " + std::to_string(remaining())
                          + " bytes that remain in the input");
    return static_cast<std::size_t>(n);
  }

  std::string chunk(const char* what, std::size_t value_start) {
    auto n = length(what, 1, value_start);
    std::string result(reinterpret_cast<const char*>(pos_), n);
    pos_ += n;
    return result;
  }

  document value(std::size_t depth) {
    auto start = offset();
    if (pos_ == last_)
      fail(start, "input ends where a value's tag byte was expected");
    auto tag_byte = *pos_++;
    switch (tag_byte) {
      case tag_null:
        return document{};
      case tag_false:
        return document{false};
      case tag_true:
        return document{true};
      case tag_integer:
        return document::integer(unzigzag(varint("integer")));
      case tag_real: {
        if (remaining() < 8)
          fail(start, "input ends inside a real, which needs 8 bytes but "
                        + std::to_string(remaining()) + " remain");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i)
          bits |= uint64_t{pos_[i]} << (8 * i);
        pos_ += 8;
        return document::real(bits_to_double(bits));
      }
      case tag_string:
        return document::string(chunk("string length", start));
      case tag_bytes: {
        auto n = length("bytes length", 1, start);
        document::bytes_type content(pos_, pos_ + n);
        pos_ += n;
        return document::bytes(std::move(content));
      }
      case tag_array: {
        check_depth(depth, start);
        // Each element takes at least its tag byte.
        auto n = length("array element count", 1, start);
        auto result = document::array();
        auto& xs = result.as_array();
        // No reserve: n is bounded by the input size, but reserving on every
        // nesting level would still multiply a small hostile input into a
        // large allocation.
        for (std::size_t i = 0; i < n; ++i)
          xs.push_back(value(depth + 1));
        return result;
      }
      case tag_object: {
        check_depth(depth, start);
        // Each member takes at least a key length byte and a tag byte.
        auto n = length("object member count", 2, start);
        auto result = document::object();
        auto& xs = result.as_object();
        for (std::size_t i = 0; i < n; ++i) {
          auto key = chunk("object key length", offset());
          xs.emplace_back(std::move(key), value(depth + 1));
        }
        if (auto key = find_duplicate_key(xs))
          fail(start, "the object holds the key " + quote_for_message(*key)
                        + " more than once");
        return result;
      }
      default: {
        static constexpr char hex[] = "0123456789abcdef";
        std::string tag_str{"0x"};
        tag_str += hex[tag_byte >> 4];
        tag_str += hex[tag_byte & 0x0f];
        fail(start, "unknown tag byte " + tag_str
                      + " (known tags are 0x00..0x08); the data is corrupt "
                        "or was written by a newer format");
      }
    }
  }

  static void check_depth(std::size_t depth, std::size_t at) {
    if (depth >= max_nesting_depth)
      fail(at, "arrays and objects nest deeper than "
                 + std::to_string(max_nesting_depth) + " levels");
  }

  const uint8_t* first_;
  const uint8_t* pos_;
  const uint8_t* last_;
};

// Parses a non-empty string of decimal digits; false on anything else or on
// overflow. Allocation-free, for find().
bool parse_index(std::string_view x, std::size_t& result) noexcept {
  if (x.empty())
    return false;
  std::size_t n = 0;
  for (auto c : x) {
    if (c < '0' || c > '9')
      return false;
    auto digit = static_cast<std::size_t>(c - '0');
    if (n > (std::numeric_limits<std::size_t>::max() - digit) / 10)
      return false;
    n = n * 10 + digit;
  }
  result = n;
  return true;
}

} // namespace

// -- doc_kind -----------------------------------------------------------------

const char* to_string(doc_kind x) noexcept {
  switch (x) {
    case doc_kind::null:
      return "null";
    case doc_kind::boolean:
      return "boolean";
    case doc_kind::integer:
      return "integer";
    case doc_kind::real:
      return "real";
    case doc_kind::string:
      return "string";
    case doc_kind::bytes:
      return "bytes";
    case doc_kind::array:
      return "array";
    case doc_kind::object:
      return "object";
  }
  return "unknown";
}

// -- document: factories --------------------------------------------------------

document document::integer(int64_t x) noexcept {
  document result;
  result.value_.emplace<int64_t>(x);
  return result;
}

document document::bytes(bytes_type x) noexcept {
  document result;
  result.value_.emplace<bytes_type>(std::move(x));
  return result;
}

document document::array(array_type xs) noexcept {
  document result;
  result.value_.emplace<array_type>(std::move(xs));
  return result;
}

document document::object(object_type xs) {
  if (auto key = find_duplicate_key(xs))
    throw codec_error{"document::object: the key " + quote_for_message(*key)
                      + " appears more than once"};
  document result;
  result.value_.emplace<object_type>(std::move(xs));
  return result;
}

// -- document: checked accessors ----------------------------------------------

void document::throw_unsigned_overflow(uint64_t x) {
  throw codec_error{"document: unsigned integer " + std::to_string(x)
                    + " exceeds INT64_MAX, the largest integer a document "
                      "can hold"};
}

void document::throw_kind_mismatch(doc_kind expected) const {
  throw codec_error{std::string{"document: expected "} + to_string(expected)
                    + ", found " + to_string(kind())};
}

bool document::as_bool() const {
  if (auto ptr = std::get_if<bool>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::boolean);
}

int64_t document::as_int() const {
  if (auto ptr = std::get_if<int64_t>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::integer);
}

double document::as_real() const {
  if (auto ptr = std::get_if<double>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::real);
}

const std::string& document::as_string() const {
  if (auto ptr = std::get_if<std::string>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::string);
}

const document::bytes_type& document::as_bytes() const {
  if (auto ptr = std::get_if<bytes_type>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::bytes);
}

const document::array_type& document::as_array() const {
  if (auto ptr = std::get_if<array_type>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::array);
}

document::array_type& document::as_array() {
  if (auto ptr = std::get_if<array_type>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::array);
}

const document::object_type& document::as_object() const {
  if (auto ptr = std::get_if<object_type>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::object);
}

document::object_type& document::as_object() {
  if (auto ptr = std::get_if<object_type>(&value_))
    return *ptr;
  throw_kind_mismatch(doc_kind::object);
}

// -- document: object and array access ------------------------------------------

const document* document::get(std::string_view field) const noexcept {
  if (auto members = std::get_if<object_type>(&value_))
    for (auto& [key, value] : *members)
      if (key == field)
        return &value;
  return nullptr;
}

document* document::get(std::string_view field) noexcept {
  return const_cast<document*>(std::as_const(*this).get(field));
}

document& document::set(std::string key, document value) {
  auto& members = as_object();
  for (auto& member : members) {
    if (member.first == key) {
      member.second = std::move(value);
      return member.second;
    }
  }
  members.emplace_back(std::move(key), std::move(value));
  return members.back().second;
}

document& document::push_back(document value) {
  auto& elements = as_array();
  elements.push_back(std::move(value));
  return elements.back();
}

const document* document::find(std::string_view dotted_path) const noexcept {
  auto current = this;
  if (dotted_path.empty())
    return current;
  for (;;) {
    auto dot = dotted_path.find('.');
    auto segment = dotted_path.substr(0, dot);
    if (auto members = std::get_if<object_type>(&current->value_)) {
      current = nullptr;
      for (auto& [key, value] : *members) {
        if (key == segment) {
          current = &value;
          break;
        }
      }
      if (current == nullptr)
        return nullptr;
    } else if (auto elements = std::get_if<array_type>(&current->value_)) {
      std::size_t index = 0;
      if (!parse_index(segment, index) || index >= elements->size())
        return nullptr;
      current = &(*elements)[index];
    } else {
      return nullptr;
    }
    if (dot == std::string_view::npos)
      return current;
    dotted_path.remove_prefix(dot + 1);
  }
}

document* document::find(std::string_view dotted_path) noexcept {
  return const_cast<document*>(std::as_const(*this).find(dotted_path));
}

// -- document: comparison -----------------------------------------------------

bool operator==(const document& x, const document& y) noexcept {
  if (x.kind() != y.kind())
    return false;
  // Bitwise for reals: see the class comment. Everything else, including the
  // elements of arrays and objects, compares through the variant, which
  // recurses into this operator.
  if (auto lhs = std::get_if<double>(&x.value_))
    return double_bits(*lhs) == double_bits(std::get<double>(y.value_));
  return x.value_ == y.value_;
}

// -- binary encoding ----------------------------------------------------------

std::vector<uint8_t> encode_document(const document& x) {
  std::vector<uint8_t> result;
  encode_document(x, result);
  return result;
}

void encode_document(const document& x, std::vector<uint8_t>& out) {
  encode_value(x, out, 0);
}

document decode_document(const uint8_t* data, std::size_t size) {
  if (data == nullptr && size > 0)
    throw codec_error{"decode_document: null data pointer with non-zero size"};
  return decoder{data, size}.run();
}

// -- JSON -----------------------------------------------------------------------

std::string to_json(const document& x) {
  std::string result;
  append_json(result, x);
  return result;
}

} // namespace strata

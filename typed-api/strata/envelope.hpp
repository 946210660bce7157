#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/document.hpp"

/// @file
/// The stored-value envelope, without CAF or cereal.
///
/// Every stored value written by strata's typed client or CLI starts with a
/// 4-byte header:
///
///   byte 0  magic 0x53 ('S')
///   byte 1  format version (currently 1)
///   byte 2  encoding: 0 raw (opaque payload), 1 document (see document.hpp),
///           2 json (UTF-8 JSON text), 3 msgpack, 4 protobuf, 5 custom
///   byte 3  compression: 0 none, 1 gzip, 2 lz4, 3 snappy, 4 zstd
///
/// followed by the payload. A compressed payload starts with the size of the
/// uncompressed payload (LEB128 varint), then the compressed bytes. The
/// header travels with the value, so values written under one serialization
/// setting stay readable under any other (strata/serialization.hpp). Like
/// the document encoding this is an on-disk format: the numbers above are
/// never reused for something else.

namespace strata {

// -- stored-value envelope ------------------------------------------------------

/// First byte of every stored value.
constexpr uint8_t value_magic = 0x53;

/// The only format version this build reads and writes.
constexpr uint8_t value_format_version = 1;

/// Size of the stored-value header in bytes.
constexpr std::size_t value_header_size = 4;

/// How the payload after the header is encoded. Values are on disk: never
/// renumber.
enum class value_encoding : uint8_t {
  /// Opaque bytes, stored as given.
  raw = 0,
  /// The binary document encoding of document.hpp.
  document = 1,
  /// A document as UTF-8 JSON text (`to_json`; bytes as {"$bytes": base64}).
  json = 2,
  /// A document as MessagePack: bytes as bin, objects as maps with string keys.
  msgpack = 3,
  /// A protobuf message: the full message type name (varint length, then the
  /// name), then the message's wire bytes.
  protobuf = 4,
  /// Bytes made by an application's own serializer; opaque to strata.
  custom = 5,
};

/// How the payload after the header is compressed. Values are on disk: never
/// renumber.
enum class value_compression : uint8_t {
  /// Not compressed.
  none = 0,
  /// DEFLATE in a gzip wrapper (zlib).
  gzip = 1,
  /// LZ4 block format.
  lz4 = 2,
  /// Snappy's raw format.
  snappy = 3,
  /// A Zstandard frame.
  zstd = 4,
};

/// The highest known encoding and compression numbers.
constexpr uint8_t last_value_encoding = static_cast<uint8_t>(value_encoding::custom);
constexpr uint8_t last_value_compression = static_cast<uint8_t>(value_compression::zstd);

/// Lower-case names: "raw", "document", "json", ... and "none", "gzip", ...
const char* to_string(value_encoding x) noexcept;
const char* to_string(value_compression x) noexcept;

/// Whether a document can be read from values of this encoding (document,
/// json, msgpack, and protobuf when its message type is known).
constexpr bool holds_document(value_encoding x) noexcept {
  return x == value_encoding::document || x == value_encoding::json
         || x == value_encoding::msgpack || x == value_encoding::protobuf;
}

/// The decoded stored-value header.
struct value_header {
  /// Format version (byte 1).
  uint8_t version;
  /// Payload encoding (byte 2).
  value_encoding encoding;
  /// Payload compression (byte 3).
  value_compression compression;
};

/// Reads and validates the header of a stored value.
/// @throws codec_error if the value is shorter than the header, does not start
///         with the magic byte, or uses a version, encoding or compression
///         this build does not know.
inline value_header read_header(const uint8_t* data, std::size_t size) {
  if (size < value_header_size)
    throw codec_error{"stored value is " + std::to_string(size)
                      + " bytes long, shorter than the "
                      + std::to_string(value_header_size)
                      + "-byte value header: truncated or not a strata value"};
  if (data[0] != value_magic) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string found{"0x"};
    found += hex[data[0] >> 4];
    found += hex[data[0] & 0x0f];
    throw codec_error{"stored value starts with byte " + found
                      + " instead of the magic byte 0x53 ('S'): not a strata "
                        "value, or corrupted"};
  }
  if (data[1] != value_format_version)
    throw codec_error{"stored value has format version "
                      + std::to_string(data[1]) + " but this build reads only "
                      + "version " + std::to_string(value_format_version)
                      + " (written by a different strata release?)"};
  if (data[2] > last_value_encoding)
    throw codec_error{"stored value uses unknown encoding " + std::to_string(data[2])
                      + " (known: 0 raw, 1 document, 2 json, 3 msgpack, 4 protobuf, 5 custom)"};
  if (data[3] > last_value_compression)
    throw codec_error{"stored value uses unknown compression " + std::to_string(data[3])
                      + " (known: 0 none, 1 gzip, 2 lz4, 3 snappy, 4 zstd)"};
  return {data[1], static_cast<value_encoding>(data[2]),
          static_cast<value_compression>(data[3])};
}

namespace detail {

inline std::vector<uint8_t> make_value_header(value_encoding encoding) {
  return {value_magic, value_format_version, static_cast<uint8_t>(encoding),
          static_cast<uint8_t>(value_compression::none)};
}

inline void require_encoding(const value_header& hdr, value_encoding expected) {
  if (hdr.encoding == expected)
    return;
  throw codec_error{std::string{"stored value has "} + to_string(hdr.encoding)
                    + " encoding, but a " + to_string(expected)
                    + "-encoded value was expected"};
}

} // namespace detail

/// Returns a stored value holding `payload` unchanged (raw encoding).
inline std::vector<uint8_t> encode_raw(std::string_view payload) {
  // Sized once: header and payload copied in, no growth.
  auto header = detail::make_value_header(value_encoding::raw);
  std::vector<uint8_t> result(header.size() + payload.size());
  std::copy(header.begin(), header.end(), result.begin());
  std::copy(payload.begin(), payload.end(),
            result.begin() + static_cast<std::ptrdiff_t>(header.size()));
  return result;
}

/// Returns the payload of a raw stored value; it points into `data`.
/// @throws codec_error on a bad header or a non-raw encoding.
inline std::string_view raw_payload(const uint8_t* data, std::size_t size) {
  auto hdr = read_header(data, size);
  detail::require_encoding(hdr, value_encoding::raw);
  if (hdr.compression != value_compression::none)
    throw codec_error{std::string{"stored raw value is compressed ("}
                      + to_string(hdr.compression) + "): read it with open_value"};
  return {reinterpret_cast<const char*>(data) + value_header_size,
          size - value_header_size};
}

/// Returns the payload of a raw stored value; it points into `stored`.
/// @throws codec_error on a bad header or a non-raw encoding.
inline std::string_view raw_payload(const std::vector<uint8_t>& stored) {
  return raw_payload(stored.data(), stored.size());
}

/// Deleted: the result would point into a destroyed temporary.
std::string_view raw_payload(std::vector<uint8_t>&&) = delete;

/// Returns a stored value holding the binary encoding of `x`.
/// @throws codec_error if `x` cannot be encoded (see encode_document).
inline std::vector<uint8_t> encode_doc(const document& x) {
  auto result = detail::make_value_header(value_encoding::document);
  encode_document(x, result);
  return result;
}

/// Decodes a stored value that holds a document (encoding document, json,
/// msgpack or protobuf, any compression), e.g. straight from the storage
/// engine's memory. Safe on untrusted bytes.
/// @throws codec_error on a bad header, an encoding that holds no document, a
///         payload that does not decompress or decode (byte offsets in the
///         message count from the payload start, i.e. after the header).
document decode_doc(const uint8_t* data, std::size_t size);

/// Decodes a document-encoded stored value (see above).
inline document decode_doc(const std::vector<uint8_t>& stored) {
  return decode_doc(stored.data(), stored.size());
}

/// The size of a value without its envelope: what `max_value_size` limits
/// (for a compressed value, its compressed size).
/// Bytes that do not start with a valid header (a client that stores bytes
/// of its own) count whole.
inline std::size_t payload_size(const uint8_t* data, std::size_t size) noexcept {
  if (size >= value_header_size && data[0] == value_magic
      && data[1] == value_format_version && data[2] <= last_value_encoding
      && data[3] <= last_value_compression)
    return size - value_header_size;
  return size;
}

inline std::size_t payload_size(const std::vector<uint8_t>& value) noexcept {
  return payload_size(value.data(), value.size());
}

} // namespace strata

#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/document.hpp"
#include "strata/envelope.hpp"

/// @file
/// Serialization settings (the spec's SerializationConfig) and the functions
/// behind them: documents as the binary document encoding, JSON or
/// MessagePack, payloads compressed with gzip, lz4, snappy or zstd, and a
/// hook for an application's own serializer (the spec's Serializer<T>).
///
/// The header of every stored value names its encoding and compression
/// (envelope.hpp), so a reader never needs the writer's settings: a store
/// holds values of every setting side by side, and queries and indexes read
/// fields from each document format.

namespace strata {

/// Payloads shorter than this many bytes are stored uncompressed by default:
/// below it the compressors' own framing eats what they save.
constexpr std::size_t default_compress_min = 64;

/// The largest payload a compressed value may expand to. A value that claims
/// more is refused before anything is allocated.
constexpr std::size_t max_uncompressed_size = std::size_t{256} << 20;

/// How a typed client writes values.
struct serialization {
  /// document (the default: compact, exact), json (readable), msgpack
  /// (compact, read by every language), protobuf or custom (both through a
  /// `serializer<T>`).
  value_encoding format = value_encoding::document;
  /// none, gzip, lz4, snappy or zstd.
  value_compression compression = value_compression::none;
  /// Payloads shorter than this stay uncompressed; so does a payload that
  /// compression would not make smaller.
  std::size_t compress_min = default_compress_min;

  /// What is wrong with these settings; empty if nothing.
  std::string problem() const;
};

/// Reads a format name ("document", "json", "msgpack", "protobuf", "custom").
bool parse_format(std::string_view name, value_encoding& out) noexcept;

/// Reads a compression name ("none", "gzip", "lz4", "snappy", "zstd").
bool parse_compression(std::string_view name, value_compression& out) noexcept;

/// The spec's Serializer<T>: an application's own value <-> bytes mapping.
/// Values it writes are marked `encoding` (custom; protobuf for the protobuf
/// serializer); strata cannot read fields from custom values, so queries and
/// indexes skip them.
template <class T>
struct serializer {
  std::function<std::string(const T&)> serialize;
  std::function<T(std::string_view)> deserialize;
  value_encoding encoding = value_encoding::custom;
};

/// The stored value for `doc` in `s.format` (document, json or msgpack),
/// compressed as `s` says.
/// @throws codec_error if the format cannot hold `doc` exactly (json: NaN,
///         infinities, strings or keys that are not UTF-8) or is not a
///         document format.
std::vector<uint8_t> encode_doc(const document& doc, const serialization& s);

/// A stored value of `encoding` holding `payload`, compressed as `s` says.
std::vector<uint8_t> seal_value(value_encoding encoding, std::string_view payload,
                                const serialization& s);

/// A stored value with its header read and its payload uncompressed.
class opened_value {
public:
  /// Opens `data` (not copied unless compressed: it must outlive this).
  /// @throws codec_error on a bad header or a payload that does not
  ///         decompress to the size it claims.
  opened_value(const uint8_t* data, std::size_t size);

  const value_header& header() const noexcept {
    return header_;
  }

  /// The uncompressed payload.
  std::string_view payload() const noexcept {
    return header_.compression == value_compression::none ? view_ : std::string_view{buffer_};
  }

private:
  value_header header_;
  std::string_view view_;
  std::string buffer_;
};

/// The document an opened value holds (see decode_doc in envelope.hpp).
document decode_doc(const opened_value& v);

/// The document in a payload of `encoding` (document, json or msgpack).
/// @throws codec_error if it does not decode.
document decode_payload(value_encoding encoding, std::string_view payload);

/// The payload of a protobuf value split into its message type and wire bytes.
/// @throws codec_error if it is malformed.
void split_protobuf(std::string_view payload, std::string_view& type, std::string_view& message);

/// The payload of a protobuf value: `type`, then the message's wire bytes.
std::string join_protobuf(std::string_view type, std::string_view message);

/// The document in a protobuf payload: its fields by name (see
/// docs/concepts.md for the mapping), read through the message type's
/// descriptor.
/// @throws codec_error if the type is not known in this process (neither
///         compiled in nor loaded by load_protobuf_descriptors) or the
///         message does not parse.
document protobuf_document(std::string_view payload);

/// Makes protobuf values of the message types in a FileDescriptorSet (the
/// output of `protoc --include_imports --descriptor_set_out=FILE`) readable
/// as documents in this process, for queries and indexes on a node that does
/// not link the generated code. Types compiled into the process are readable
/// without it. Thread-safe.
/// @throws codec_error if the file cannot be read or is not a descriptor set.
void load_protobuf_descriptors(const std::string& path);

} // namespace strata

#include "strata/serialization.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#define MSGPACK_NO_BOOST
#include <msgpack.hpp>

#include <lz4.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include "strata/base64.hpp"
#include "typed-api/varint.hpp"
#include "typed-api/json_value.hpp"

namespace strata {

namespace {

// -- names ------------------------------------------------------------------------

constexpr const char* encoding_names[] = {"raw", "document", "json", "msgpack", "protobuf",
                                          "custom"};
constexpr const char* compression_names[] = {"none", "gzip", "lz4", "snappy", "zstd"};

// -- LEB128 size prefix of compressed payloads --------------------------------------

using detail::put_varint;

uint64_t get_varint(std::string_view& in, const char* what) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty())
      break;
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    x |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0)
      return x;
  }
  throw codec_error{std::string{what} + ": truncated or overlong size prefix"};
}

// -- compression ------------------------------------------------------------------

// Each thread keeps its compression state: setting one up costs more than
// compressing a small value (zlib's is 256 KiB, zstd's more).
struct zlib_streams {
  z_stream deflater{};
  z_stream inflater{};
  bool deflate_ok = false;
  bool inflate_ok = false;

  zlib_streams() {
    // 15 + 16: a gzip wrapper around a 32 KiB window.
    deflate_ok = deflateInit2(&deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                              Z_DEFAULT_STRATEGY)
                 == Z_OK;
    inflate_ok = inflateInit2(&inflater, 15 + 16) == Z_OK;
  }

  ~zlib_streams() {
    if (deflate_ok)
      deflateEnd(&deflater);
    if (inflate_ok)
      inflateEnd(&inflater);
  }
};

struct zstd_contexts {
  ZSTD_CCtx* compressor = ZSTD_createCCtx();
  ZSTD_DCtx* decompressor = ZSTD_createDCtx();

  ~zstd_contexts() {
    ZSTD_freeCCtx(compressor);
    ZSTD_freeDCtx(decompressor);
  }
};

zlib_streams& zlib_state() {
  thread_local zlib_streams instance;
  return instance;
}

zstd_contexts& zstd_state() {
  thread_local zstd_contexts instance;
  return instance;
}

/// Compresses `in` into `out` (appended); false if the compressor failed.
bool compress(value_compression c, std::string_view in, std::vector<uint8_t>& out) {
  auto start = out.size();
  switch (c) {
    case value_compression::none:
      return false;
    case value_compression::gzip: {
      auto& zs = zlib_state();
      auto& z = zs.deflater;
      if (!zs.deflate_ok || deflateReset(&z) != Z_OK)
        return false;
      out.resize(start + deflateBound(&z, in.size()));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = out.data() + start;
      z.avail_out = static_cast<uInt>(out.size() - start);
      auto rc = deflate(&z, Z_FINISH);
      auto n = z.total_out;
      if (rc != Z_STREAM_END)
        return false;
      out.resize(start + n);
      return true;
    }
    case value_compression::lz4: {
      if (in.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE))
        return false;
      auto bound = LZ4_compressBound(static_cast<int>(in.size()));
      out.resize(start + static_cast<size_t>(bound));
      auto n = LZ4_compress_default(in.data(), reinterpret_cast<char*>(out.data() + start),
                                    static_cast<int>(in.size()), bound);
      if (n <= 0)
        return false;
      out.resize(start + static_cast<size_t>(n));
      return true;
    }
    case value_compression::snappy: {
      out.resize(start + snappy::MaxCompressedLength(in.size()));
      size_t n = 0;
      snappy::RawCompress(in.data(), in.size(), reinterpret_cast<char*>(out.data() + start), &n);
      out.resize(start + n);
      return true;
    }
    case value_compression::zstd: {
      out.resize(start + ZSTD_compressBound(in.size()));
      auto n = ZSTD_compressCCtx(zstd_state().compressor, out.data() + start,
                                 out.size() - start, in.data(), in.size(), 3);
      if (ZSTD_isError(n))
        return false;
      out.resize(start + n);
      return true;
    }
  }
  return false;
}

/// At most how many times its compressed size a payload may expand to.
uint64_t max_ratio(value_compression c) {
  switch (c) {
    case value_compression::gzip:
      return 1100;
    case value_compression::lz4:
      return 300;
    case value_compression::snappy:
      return 64;
    case value_compression::zstd:
      return 40000;
    default:
      return 1;
  }
}

/// Decompresses `in` into exactly `size` bytes.
std::string decompress(value_compression c, std::string_view in, size_t size) {
  auto fail = [&](const std::string& why) {
    return codec_error{std::string{"stored value's "} + to_string(c) + " payload "
                       + "does not decompress: " + why};
  };
  std::string out(size, '\0');
  switch (c) {
    case value_compression::none:
      break;
    case value_compression::gzip: {
      auto& zs = zlib_state();
      auto& z = zs.inflater;
      if (!zs.inflate_ok || inflateReset(&z) != Z_OK)
        throw fail("zlib would not start");
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = reinterpret_cast<Bytef*>(out.data());
      z.avail_out = static_cast<uInt>(out.size());
      auto rc = inflate(&z, Z_FINISH);
      auto n = z.total_out;
      auto rest = z.avail_in;
      if (rc != Z_STREAM_END || n != size || rest != 0)
        throw fail(rc == Z_STREAM_END ? "wrong size" : "corrupt stream");
      break;
    }
    case value_compression::lz4: {
      if (size > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)
          || in.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
        throw fail("too large");
      auto n = LZ4_decompress_safe(in.data(), out.data(), static_cast<int>(in.size()),
                                   static_cast<int>(size));
      if (n < 0 || static_cast<size_t>(n) != size)
        throw fail(n < 0 ? "corrupt block" : "wrong size");
      break;
    }
    case value_compression::snappy: {
      size_t n = 0;
      if (!snappy::GetUncompressedLength(in.data(), in.size(), &n) || n != size)
        throw fail("wrong size");
      if (!snappy::RawUncompress(in.data(), in.size(), out.data()))
        throw fail("corrupt block");
      break;
    }
    case value_compression::zstd: {
      auto n = ZSTD_decompressDCtx(zstd_state().decompressor, out.data(), out.size(), in.data(),
                                   in.size());
      if (ZSTD_isError(n))
        throw fail(ZSTD_getErrorName(n));
      if (n != size)
        throw fail("wrong size");
      break;
    }
  }
  return out;
}

// -- JSON -------------------------------------------------------------------------

/// Whether `x` renders as JSON that reads back as `x` (to_json maps NaN and
/// infinities to null and invalid UTF-8 to U+FFFD).
void require_json_exact(const document& x, size_t depth) {
  switch (x.kind()) {
    case doc_kind::real:
      if (!std::isfinite(x.as_real()))
        throw codec_error{"format json cannot hold NaN or infinity; use document or msgpack"};
      break;
    case doc_kind::string:
      if (!is_utf8(x.as_string()))
        throw codec_error{"format json cannot hold a string that is not UTF-8; use bytes, "
                          "or format document or msgpack"};
      break;
    case doc_kind::array:
      for (auto& y : x.as_array())
        require_json_exact(y, depth + 1);
      break;
    case doc_kind::object:
      for (auto& [k, y] : x.as_object()) {
        if (!is_utf8(k))
          throw codec_error{"format json cannot hold an object key that is not UTF-8"};
        if (k == "$bytes" && x.as_object().size() == 1)
          throw codec_error{"format json cannot hold an object whose only member is "
                            "\"$bytes\" (it stands for bytes there)"};
        require_json_exact(y, depth + 1);
      }
      break;
    default:
      break;
  }
}

document decode_json(std::string_view text) {
  rapidjson::Document d;
  // Iterative: deep nesting cannot exhaust the stack. Full precision: reals
  // read back to the very double that was written.
  d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag>(text.data(),
                                                                              text.size());
  if (d.HasParseError())
    throw codec_error{"json payload is not JSON at offset " + std::to_string(d.GetErrorOffset())
                      + ": " + rapidjson::GetParseError_En(d.GetParseError())};
  try {
    return detail::json_to_document(d, true);
  } catch (const codec_error& e) {
    throw codec_error{std::string{"json payload: "} + e.what()};
  }
}

// -- MessagePack ------------------------------------------------------------------

void pack(msgpack::sbuffer& buf, msgpack::packer<msgpack::sbuffer>& pk, const document& x) {
  switch (x.kind()) {
    case doc_kind::null:
      pk.pack_nil();
      break;
    case doc_kind::boolean:
      x.as_bool() ? pk.pack_true() : pk.pack_false();
      break;
    case doc_kind::integer:
      pk.pack_int64(x.as_int());
      break;
    case doc_kind::real: {
      // float64 by hand: the packer writes integral doubles as integers,
      // which would read back as a different kind.
      uint64_t bits;
      auto d = x.as_real();
      std::memcpy(&bits, &d, sizeof(bits));
      char out[9];
      out[0] = static_cast<char>(0xcb);
      for (int i = 0; i < 8; ++i)
        out[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
      buf.write(out, sizeof(out));
      break;
    }
    case doc_kind::string: {
      auto& s = x.as_string();
      pk.pack_str(static_cast<uint32_t>(s.size()));
      pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
      break;
    }
    case doc_kind::bytes: {
      auto& b = x.as_bytes();
      pk.pack_bin(static_cast<uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<uint32_t>(b.size()));
      break;
    }
    case doc_kind::array:
      pk.pack_array(static_cast<uint32_t>(x.as_array().size()));
      for (auto& y : x.as_array())
        pack(buf, pk, y);
      break;
    case doc_kind::object:
      pk.pack_map(static_cast<uint32_t>(x.as_object().size()));
      for (auto& [k, y] : x.as_object()) {
        pk.pack_str(static_cast<uint32_t>(k.size()));
        pk.pack_str_body(k.data(), static_cast<uint32_t>(k.size()));
        pack(buf, pk, y);
      }
      break;
  }
}

document from_msgpack(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return document{};
    case msgpack::type::BOOLEAN:
      return document::boolean(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw codec_error{"msgpack payload holds the integer " + std::to_string(o.via.u64)
                          + ", above the largest document integer (2^63-1)"};
      return document::integer(static_cast<int64_t>(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER:
      return document::integer(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return document::real(o.via.f64);
    case msgpack::type::STR:
      return document::string(std::string{o.via.str.ptr, o.via.str.size});
    case msgpack::type::BIN:
      return document::bytes(document::bytes_type(
        reinterpret_cast<const uint8_t*>(o.via.bin.ptr),
        reinterpret_cast<const uint8_t*>(o.via.bin.ptr) + o.via.bin.size));
    case msgpack::type::ARRAY: {
      document::array_type xs;
      xs.reserve(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        xs.push_back(from_msgpack(o.via.array.ptr[i]));
      return document::array(std::move(xs));
    }
    case msgpack::type::MAP: {
      auto out = document::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR)
          throw codec_error{"msgpack payload holds a map key that is not a string"};
        std::string name{kv.key.via.str.ptr, kv.key.via.str.size};
        if (out.get(name) != nullptr)
          throw codec_error{"msgpack payload: a map holds the key \"" + name + "\" twice"};
        out.set(std::move(name), from_msgpack(kv.val));
      }
      return out;
    }
    case msgpack::type::EXT:
      break;
  }
  throw codec_error{"msgpack payload holds an extension type, which documents do not have"};
}

document decode_msgpack(std::string_view in) {
  // Every element takes at least one byte: no count may exceed the input,
  // so a short value cannot make the parser allocate much. The depth limit
  // matches the document model's.
  auto n = in.size();
  msgpack::unpack_limit limit{n, n, n, n, n, max_nesting_depth + 1};
  try {
    size_t off = 0;
    auto handle = msgpack::unpack(in.data(), in.size(), off, nullptr, nullptr, limit);
    if (off != in.size())
      throw codec_error{"msgpack payload has " + std::to_string(in.size() - off)
                        + " trailing bytes"};
    return from_msgpack(handle.get());
  } catch (const codec_error&) {
    throw;
  } catch (const std::exception& e) {
    throw codec_error{std::string{"msgpack payload does not decode: "} + e.what()};
  }
}

} // namespace

// -- names ------------------------------------------------------------------------

const char* to_string(value_encoding x) noexcept {
  auto i = static_cast<size_t>(x);
  return i <= last_value_encoding ? encoding_names[i] : "unknown";
}

const char* to_string(value_compression x) noexcept {
  auto i = static_cast<size_t>(x);
  return i <= last_value_compression ? compression_names[i] : "unknown";
}

bool parse_format(std::string_view name, value_encoding& out) noexcept {
  for (uint8_t i = 1; i <= last_value_encoding; ++i)
    if (name == encoding_names[i]) {
      out = static_cast<value_encoding>(i);
      return true;
    }
  return false;
}

bool parse_compression(std::string_view name, value_compression& out) noexcept {
  for (uint8_t i = 0; i <= last_value_compression; ++i)
    if (name == compression_names[i]) {
      out = static_cast<value_compression>(i);
      return true;
    }
  return false;
}

std::string serialization::problem() const {
  if (format == value_encoding::raw || static_cast<uint8_t>(format) > last_value_encoding)
    return "serialization format must be document, json, msgpack, protobuf or custom";
  if (static_cast<uint8_t>(compression) > last_value_compression)
    return "serialization compression must be none, gzip, lz4, snappy or zstd";
  return {};
}

// -- values -----------------------------------------------------------------------

std::vector<uint8_t> seal_value(value_encoding encoding, std::string_view payload,
                                const serialization& s) {
  auto out = detail::make_value_header(encoding);
  if (s.compression != value_compression::none && payload.size() >= s.compress_min
      && payload.size() <= max_uncompressed_size) {
    out[3] = static_cast<uint8_t>(s.compression);
    put_varint(out, payload.size());
    // Kept only if it saves something.
    if (compress(s.compression, payload, out) && out.size() < value_header_size + payload.size())
      return out;
    out.resize(value_header_size);
    out[3] = static_cast<uint8_t>(value_compression::none);
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> encode_doc(const document& doc, const serialization& s) {
  switch (s.format) {
    case value_encoding::document: {
      if (s.compression == value_compression::none)
        return encode_doc(doc);
      auto payload = encode_document(doc);
      return seal_value(s.format,
                        {reinterpret_cast<const char*>(payload.data()), payload.size()}, s);
    }
    case value_encoding::json: {
      require_json_exact(doc, 0);
      return seal_value(s.format, to_json(doc), s);
    }
    case value_encoding::msgpack: {
      msgpack::sbuffer buf;
      msgpack::packer<msgpack::sbuffer> pk{buf};
      pack(buf, pk, doc);
      return seal_value(s.format, {buf.data(), buf.size()}, s);
    }
    default:
      throw codec_error{std::string{"format "} + to_string(s.format)
                        + " does not write documents: it needs a serializer"};
  }
}

opened_value::opened_value(const uint8_t* data, std::size_t size)
  : header_(read_header(data, size)) {
  std::string_view rest{reinterpret_cast<const char*>(data) + value_header_size,
                        size - value_header_size};
  if (header_.compression == value_compression::none) {
    view_ = rest;
    return;
  }
  auto n = get_varint(rest, "stored value's compressed payload");
  // Each format expands its input at most so much (DEFLATE about 1032:1,
  // an LZ4 block 255:1, snappy about 22:1, zstd's RLE blocks about
  // 32 768:1): a larger claim is a damaged or hostile value, refused before
  // anything is allocated for it.
  if (n > max_uncompressed_size || n > (rest.size() + 16) * max_ratio(header_.compression))
    throw codec_error{"stored value claims " + std::to_string(n)
                      + " bytes uncompressed from " + std::to_string(rest.size())
                      + " compressed: damaged, or beyond the limit of "
                      + std::to_string(max_uncompressed_size) + " bytes"};
  buffer_ = decompress(header_.compression, rest, static_cast<size_t>(n));
}

document decode_payload(value_encoding encoding, std::string_view payload) {
  switch (encoding) {
    case value_encoding::document:
      return decode_document(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    case value_encoding::json:
      return decode_json(payload);
    case value_encoding::msgpack:
      return decode_msgpack(payload);
    default:
      throw codec_error{std::string{"stored value has "} + to_string(encoding)
                        + " encoding, which holds no document"};
  }
}

document decode_doc(const opened_value& v) {
  auto encoding = v.header().encoding;
  if (!holds_document(encoding))
    detail::require_encoding(v.header(), value_encoding::document);
  try {
    if (encoding == value_encoding::protobuf)
      return protobuf_document(v.payload());
    return decode_payload(encoding, v.payload());
  } catch (const codec_error& e) {
    throw codec_error{std::string{"stored value payload (after the "}
                      + std::to_string(value_header_size) + "-byte header): " + e.what()};
  }
}

document decode_doc(const uint8_t* data, std::size_t size) {
  return decode_doc(opened_value{data, size});
}

void split_protobuf(std::string_view payload, std::string_view& type,
                    std::string_view& message) {
  auto n = get_varint(payload, "protobuf payload");
  if (n == 0 || n > payload.size() || n > 4096)
    throw codec_error{"protobuf payload: bad message type name length"};
  type = payload.substr(0, static_cast<size_t>(n));
  message = payload.substr(static_cast<size_t>(n));
}

std::string join_protobuf(std::string_view type, std::string_view message) {
  std::vector<uint8_t> prefix;
  put_varint(prefix, type.size());
  std::string out{prefix.begin(), prefix.end()};
  out += type;
  out += message;
  return out;
}

namespace detail {

document json_to_document(const rapidjson::Value& v, bool exact, std::size_t depth) {
  if (depth > max_nesting_depth)
    throw codec_error{"nested too deeply (more than " + std::to_string(max_nesting_depth)
                      + " levels)"};
  switch (v.GetType()) {
    case rapidjson::kNullType:
      return document{};
    case rapidjson::kFalseType:
      return document::boolean(false);
    case rapidjson::kTrueType:
      return document::boolean(true);
    case rapidjson::kNumberType:
      if (v.IsInt64())
        return document::integer(v.GetInt64());
      return document::real(v.GetDouble());
    case rapidjson::kStringType:
      return document::string(std::string{v.GetString(), v.GetStringLength()});
    case rapidjson::kArrayType: {
      document::array_type xs;
      xs.reserve(v.Size());
      for (auto& x : v.GetArray())
        xs.push_back(json_to_document(x, exact, depth + 1));
      return document::array(std::move(xs));
    }
    case rapidjson::kObjectType: {
      if (exact && v.MemberCount() == 1 && v.MemberBegin()->name == "$bytes"
          && v.MemberBegin()->value.IsString()) {
        auto& text = v.MemberBegin()->value;
        std::string raw;
        if (!decode_base64({text.GetString(), text.GetStringLength()}, raw))
          throw codec_error{"$bytes is not base64"};
        return document::bytes(document::bytes_type(raw.begin(), raw.end()));
      }
      auto out = document::object();
      for (auto& m : v.GetObject()) {
        std::string name{m.name.GetString(), m.name.GetStringLength()};
        if (exact && out.get(name) != nullptr)
          throw codec_error{"an object holds the key \"" + name + "\" twice"};
        out.set(std::move(name), json_to_document(m.value, exact, depth + 1));
      }
      return out;
    }
  }
  return document{};
}

} // namespace detail

} // namespace strata

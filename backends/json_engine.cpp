#include "backends/json_engine.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "backends/fault.hpp"
#include "backends/query_json.hpp"
#include "strata/base64.hpp"
#include "strata/envelope.hpp"

namespace strata {

namespace {

constexpr const char* format_name = "strata-json-1";
constexpr auto parse_flags = rapidjson::kParseFullPrecisionFlag;

bool ascii(const json_settings& s) {
  return s.encoding == "ascii";
}

/// `text` (valid UTF-8) as a JSON string in the file's encoding.
std::string json_string(std::string_view text, bool in_ascii) {
  rapidjson::StringBuffer buf;
  auto size = static_cast<rapidjson::SizeType>(text.size());
  if (in_ascii) {
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::ASCII<>> w{buf};
    w.String(text.data(), size);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w{buf};
    w.String(text.data(), size);
  }
  return {buf.GetString(), buf.GetSize()};
}

std::string json_of(const rapidjson::Value& v, bool in_ascii) {
  rapidjson::StringBuffer buf;
  if (in_ascii) {
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::ASCII<>> w{buf};
    v.Accept(w);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w{buf};
    v.Accept(w);
  }
  return {buf.GetString(), buf.GetSize()};
}

std::string key_json(std::string_view key, bool in_ascii) {
  if (is_utf8(key) && (key.empty() || key[0] != '~'))
    return json_string(key, in_ascii);
  std::string tagged = "~";
  append_base64(tagged, key);
  return json_string(tagged, false);
}

bool is_base64_marker(const rapidjson::Value& v) {
  return v.IsObject() && v.MemberCount() == 1 && v.HasMember("$base64")
         && v["$base64"].IsString();
}

/// The stored bytes a JSON value of the file stands for.
std::string value_of(const rapidjson::Value& v, const std::string& where) {
  if (is_base64_marker(v)) {
    std::string out;
    auto& text = v["$base64"];
    if (!decode_base64({text.GetString(), text.GetStringLength()}, out))
      throw query_error{where + ": $base64 is not base64"};
    return out;
  }
  auto doc = query_json::to_document(v, 0, where);
  auto out = detail::make_value_header(value_encoding::document);
  encode_document(doc, out);
  return {reinterpret_cast<const char*>(out.data()), out.size()};
}

/// A value as the file holds it: a strata document as its JSON if that reads
/// back to the same bytes, anything else as {"$base64": ...}.
std::string value_json(std::string_view value, bool in_ascii) {
  auto as_base64 = [&] {
    std::string out = "{\"$base64\":\"";
    append_base64(out, value);
    out += "\"}";
    return out;
  };
  auto data = reinterpret_cast<const uint8_t*>(value.data());
  try {
    auto hdr = read_header(data, value.size());
    if (hdr.encoding != value_encoding::document || hdr.compression != value_compression::none)
      return as_base64();
    auto doc = decode_document(data + value_header_size, value.size() - value_header_size);
    rapidjson::Document parsed;
    auto text = to_json(doc);
    parsed.Parse<parse_flags>(text.data(), text.size());
    if (parsed.HasParseError() || is_base64_marker(parsed))
      return as_base64();
    auto rendered = json_of(parsed, in_ascii);
    // What a load makes of the text must be these very bytes.
    rapidjson::Document back;
    back.Parse<parse_flags>(rendered.data(), rendered.size());
    if (back.HasParseError() || value_of(back, "") != value)
      return as_base64();
    return rendered;
  } catch (const codec_error&) {
    return as_base64();
  } catch (const query_error&) {
    return as_base64();
  }
}

/// Writes `text` to `path` (created or truncated), synced if `sync`.
void write_file(const std::string& path, const std::string& text, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  auto fail = [&](const char* what) {
    auto err = errno;
    if (fd >= 0)
      ::close(fd);
    auto code = err == ENOSPC || err == EDQUOT ? errc::storage_full : errc::transaction_aborted;
    return storage_error{code, std::string{"cannot "} + what + " " + path + ": "
                                 + std::strerror(err)};
  };
  if (fd < 0)
    throw fail("create");
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || STRATA_FAIL_POINT("json.write")) {
      if (n > 0)
        errno = EIO;
      throw fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0)
    throw fail("sync");
  ::close(fd);
}


} // namespace

json_engine::json_engine(engine_options opts)
  : mirrored_engine(std::move(opts), "json", max_bytes) {
  if (auto problem = opts_.json.problem(); !problem.empty())
    throw storage_error{errc::invalid_value, problem};
  std::error_code ec;
  std::filesystem::create_directories(opts_.dir, ec);
  caps_.durable = opts_.json.atomic;
  mem_ = load();
  remember_all();
  // A new shard gets its file at once: it is recognised as json from then on,
  // and a directory it cannot write to fails here, not at the first write.
  if (!std::filesystem::exists(path(), ec))
    save(true);
}

json_engine::~json_engine() = default;

std::string json_engine::path() const {
  return opts_.dir + "/" + opts_.json.file;
}

std::unique_ptr<memory_engine> json_engine::load() const {
  std::array<std::vector<operation>, keyspace_count> ops;
  std::ifstream in{path(), std::ios::binary};
  if (!in)
    return filled(std::move(ops), path()); // a new shard
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  auto corrupt = [&](const std::string& what) {
    return storage_error{errc::consistency_violation,
                         path() + " is not a strata JSON store (" + what
                           + "); repair or move it away"};
  };
  rapidjson::Document d;
  d.Parse<parse_flags>(text.data(), text.size());
  if (d.HasParseError())
    throw corrupt("JSON error at offset " + std::to_string(d.GetErrorOffset()));
  if (!d.IsObject() || !d.HasMember("format") || !d["format"].IsString()
      || std::string{d["format"].GetString()} != format_name)
    throw corrupt(std::string{"\"format\": \""} + format_name + "\" is missing");
  for (auto& m : d.GetObject()) {
    std::string name{m.name.GetString(), m.name.GetStringLength()};
    if (name == "format")
      continue;
    size_t s = 0;
    while (s < keyspace_count && name != keyspace_name(static_cast<keyspace>(s)))
      ++s;
    if (s == keyspace_count)
      throw corrupt("unknown member \"" + name + "\"");
    if (!m.value.IsObject())
      throw corrupt("\"" + name + "\" is not an object");
    for (auto& entry : m.value.GetObject()) {
      std::string key{entry.name.GetString(), entry.name.GetStringLength()};
      auto where = name + "." + key;
      if (!key.empty() && key[0] == '~') {
        std::string raw;
        if (!decode_base64(std::string_view{key}.substr(1), raw))
          throw corrupt(where + ": a key after '~' must be base64");
        key = std::move(raw);
      }
      try {
        auto value = value_of(entry.value, where);
        ops[s].push_back(operation::set(std::move(key), bytes_of(value)));
      } catch (const query_error& e) {
        throw corrupt(e.what());
      }
    }
  }
  return filled(std::move(ops), path());
}

void json_engine::remember(keyspace ks, const std::string& key, const bytes* value) {
  auto& m = fragments_[static_cast<size_t>(ks)];
  if (value == nullptr) {
    m.erase(key);
    return;
  }
  auto in_ascii = ascii(opts_.json);
  m[key] = key_json(key, in_ascii) + (opts_.json.pretty ? ": " : ":")
           + value_json(view_of(*value), in_ascii);
}

void json_engine::remember_all() {
  for (auto& m : fragments_)
    m.clear();
  mem_->read([&](const engine_snapshot& snap) {
    for (size_t s = 0; s < keyspace_count; ++s)
      snap.scan(static_cast<keyspace>(s), {}, false,
                [&](std::string_view key, std::string_view value) {
                  auto v = bytes_of(value);
                  remember(static_cast<keyspace>(s), std::string{key}, &v);
                  return true;
                });
  });
}

std::string json_engine::render() const {
  auto pretty = opts_.json.pretty;
  std::string nl = pretty ? "\n" : "";
  auto indent = [&](int n) { return pretty ? std::string(size_t(n) * 2, ' ') : std::string{}; };
  std::string colon = pretty ? ": " : ":";
  size_t size = 64;
  for (auto& m : fragments_)
    for (auto& [key, text] : m)
      size += text.size() + 8;
  std::string out;
  out.reserve(size);
  out += "{" + nl + indent(1) + "\"format\"" + colon + "\"" + format_name + "\"";
  for (size_t s = 0; s < keyspace_count; ++s) {
    out += "," + nl + indent(1) + "\"" + keyspace_name(static_cast<keyspace>(s)) + "\"" + colon
           + "{";
    bool first = true;
    for (auto& [key, text] : fragments_[s]) {
      if (!first)
        out += ',';
      out += nl;
      out += indent(2);
      out += text;
      first = false;
    }
    out += (first ? "" : nl + indent(1)) + "}";
  }
  out += nl + "}" + nl;
  return out;
}

void json_engine::save(bool sync) {
  auto text = render();
  auto synced = sync && !opts_.no_sync;
  auto file = path();
  if (!opts_.json.atomic) {
    write_file(file, text, synced);
  } else {
    // A crash at any moment leaves the old file or the new one.
    auto tmp = file + ".tmp";
    write_file(tmp, text, synced);
    STRATA_FAULT_POINT("json.rename");
    std::error_code ec;
    std::filesystem::rename(tmp, file, ec);
    if (ec)
      throw storage_error{errc::transaction_aborted,
                          "cannot rename " + tmp + ": " + ec.message()};
    if (synced)
      sync_path(opts_.dir, O_RDONLY | O_DIRECTORY);
  }
  unsynced_ = unsynced_ || (!synced && !opts_.no_sync);
}

apply_result json_engine::persist(const std::vector<engine_batch>& group, bool sync) {
  // Only what the group writes is rendered again.
  try {
    for (auto& batch : group)
      for (auto& part : batch.parts)
        for (auto& op : *part.ops) {
          if (op.kind == op_kind::clear)
            fragments_[static_cast<size_t>(part.space)].clear();
          else
            remember(part.space, op.key, op.kind == op_kind::set ? &op.value : nullptr);
        }
    save(sync);
  } catch (const storage_error& e) {
    // The file and the engine hold what they held before: the group did not
    // happen.
    remember_all();
    apply_result failed;
    failed.code = e.code();
    failed.message = e.what();
    return failed;
  }
  return {};
}

void json_engine::sync() {
  if (!unsynced_)
    return;
  sync_path(path(), O_RDONLY);
  sync_path(opts_.dir, O_RDONLY | O_DIRECTORY);
  unsynced_ = false;
}

} // namespace strata

#include "backends/memory_engine.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fcntl.h>
#include <zlib.h>

#include "backends/log.hpp"

namespace strata {

namespace {

/// Snapshot file (little endian): u64 magic | u64 last sequence number |
/// u64 count | count × (u8 key space | u32 length | key | u32 length | value)
/// | u32 CRC-32 of everything before it.
constexpr uint64_t snapshot_magic = 0x31504e534d525453; // "STRMSNP1"

void put(std::string& out, uint64_t x, int width) {
  for (int i = 0; i < width; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

bool get(std::string_view& in, uint64_t& x, int width) {
  if (in.size() < static_cast<size_t>(width))
    return false;
  x = 0;
  for (int i = 0; i < width; ++i)
    x |= uint64_t{static_cast<unsigned char>(in[static_cast<size_t>(i)])} << (8 * i);
  in.remove_prefix(static_cast<size_t>(width));
  return true;
}

bool get(std::string_view& in, std::string_view& x) {
  uint64_t len = 0;
  if (!get(in, len, 4) || in.size() < len)
    return false;
  x = in.substr(0, len);
  in.remove_prefix(len);
  return true;
}

uint32_t checksum(std::string_view data) {
  return static_cast<uint32_t>(
    crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}


size_t cost(const std::string& key, const bytes& value) {
  return key.size() + value.size();
}

} // namespace

/// A read under the shared lock.
class memory_engine::view final : public engine_snapshot {
public:
  explicit view(const memory_engine& owner) : owner_(owner), guard_(owner.mtx_) {
    // nop
  }

  uint64_t seq() const override {
    return owner_.applied_seq_;
  }

  bool get(keyspace ks, std::string_view key, std::string_view& value) const override {
    auto& m = owner_.spaces_[static_cast<size_t>(ks)];
    auto i = m.find(key);
    if (i == m.end())
      return false;
    value = view_of(i->second);
    return true;
  }

  void scan(keyspace ks, std::string_view from, bool skip_from,
            function_ref<bool(std::string_view, std::string_view)> f) const override {
    auto& m = owner_.spaces_[static_cast<size_t>(ks)];
    auto i = m.lower_bound(from);
    if (i != m.end() && skip_from && i->first == from)
      ++i;
    for (; i != m.end(); ++i)
      if (!f(i->first, view_of(i->second)))
        return;
  }

  uint64_t count(keyspace ks) const override {
    return owner_.spaces_[static_cast<size_t>(ks)].size();
  }

private:
  const memory_engine& owner_;
  std::shared_lock<std::shared_mutex> guard_;
};

memory_engine::memory_engine(engine_options opts) : opts_(std::move(opts)) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  applied_seq_ = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  if (opts_.snapshot)
    load();
  next_seq_ = applied_seq_ + 1;
}

memory_engine::~memory_engine() {
  if (!opts_.snapshot || !broken_.empty())
    return;
  try {
    save();
  } catch (const storage_error& e) {
    log().error("{}: the memory engine's data is lost: {}", opts_.dir, e.what());
  }
}

std::string memory_engine::snapshot_path() const {
  return opts_.dir + "/memory.snapshot";
}

void memory_engine::load() {
  std::ifstream in{snapshot_path(), std::ios::binary};
  if (!in)
    return; // nothing saved
  std::string file{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  auto corrupt = [&](const char* what) {
    return storage_error{errc::consistency_violation,
                         snapshot_path() + " is corrupt (" + what
                           + "); move it away to start empty"};
  };
  if (file.size() < 28)
    throw corrupt("too short");
  std::string_view body{file.data(), file.size() - 4};
  std::string_view tail{file.data() + body.size(), 4};
  uint64_t crc = 0;
  get(tail, crc, 4);
  if (crc != checksum(body))
    throw corrupt("checksum");
  uint64_t magic = 0;
  uint64_t seq = 0;
  uint64_t count = 0;
  get(body, magic, 8);
  get(body, seq, 8);
  get(body, count, 8);
  if (magic != snapshot_magic)
    throw corrupt("not a snapshot");
  uint64_t total = 0;
  for (uint64_t k = 0; k < count; ++k) {
    uint64_t space = 0;
    std::string_view key;
    std::string_view value;
    if (!get(body, space, 1) || space >= keyspace_count || !get(body, key)
        || !get(body, value))
      throw corrupt("entry");
    auto first = reinterpret_cast<const uint8_t*>(value.data());
    spaces_[space].insert_or_assign(std::string{key}, bytes(first, first + value.size()));
    total += key.size() + value.size();
  }
  if (!body.empty())
    throw corrupt("trailing bytes");
  bytes_ = total;
  applied_seq_ = std::max(applied_seq_, seq);
  stale_file_ = true;
}

void memory_engine::save() const {
  std::string out;
  put(out, snapshot_magic, 8);
  put(out, applied_seq_, 8);
  uint64_t count = 0;
  for (auto& m : spaces_)
    count += m.size();
  put(out, count, 8);
  for (size_t s = 0; s < keyspace_count; ++s)
    for (auto& [key, value] : spaces_[s]) {
      put(out, s, 1);
      put(out, key.size(), 4);
      out += key;
      put(out, value.size(), 4);
      out += view_of(value);
    }
  put(out, checksum(out), 4);
  std::error_code ec;
  std::filesystem::create_directories(opts_.dir, ec);
  // A crash at any moment leaves the old file or the new one.
  auto tmp = snapshot_path() + ".tmp";
  {
    std::ofstream f{tmp, std::ios::binary | std::ios::trunc};
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.flush();
    if (!f)
      throw storage_error{errc::storage_full, "cannot write " + tmp};
  }
  sync_path(tmp, O_RDONLY);
  std::filesystem::rename(tmp, snapshot_path(), ec);
  if (ec)
    throw storage_error{errc::transaction_aborted,
                        "cannot rename " + tmp + ": " + ec.message()};
  sync_path(opts_.dir, O_RDONLY | O_DIRECTORY);
}

const engine_capabilities& memory_engine::capabilities() const {
  static const engine_capabilities caps = [] {
    engine_capabilities c;
    c.durable = false;
    c.files = false;
    return c;
  }();
  return caps;
}

void memory_engine::read(function_ref<void(const engine_snapshot&)> f) const {
  view v{*this};
  f(v);
}

void memory_engine::apply_one(keyspace ks, const std::vector<operation>& ops,
                              batch_effect& effect, bool images) {
  auto& m = spaces_[static_cast<size_t>(ks)];
  bool data = ks == keyspace::data;
  images = images && data;
  for (auto& op : ops) {
    switch (op.kind) {
      case op_kind::set: {
        auto i = m.find(op.key);
        if (i == m.end()) {
          if (images)
            effect.before.emplace_back();
          m.emplace(op.key, op.value);
          bytes_ += cost(op.key, op.value);
        } else {
          bytes_ -= cost(i->first, i->second);
          if (images)
            effect.before.emplace_back(std::move(i->second));
          i->second = op.value;
          bytes_ += cost(i->first, i->second);
        }
        break;
      }
      case op_kind::del: {
        auto i = m.find(op.key);
        if (i == m.end()) {
          if (images)
            effect.before.emplace_back();
          break;
        }
        bytes_ -= cost(i->first, i->second);
        if (images)
          effect.before.emplace_back(std::move(i->second));
        if (data)
          ++effect.deleted;
        m.erase(i);
        break;
      }
      case op_kind::clear:
        if (data)
          effect.deleted += m.size();
        for (auto& [key, value] : m)
          bytes_ -= cost(key, value);
        m.clear();
        break;
    }
  }
}

apply_result memory_engine::apply(const std::vector<engine_batch>& group, bool) {
  apply_result out;
  if (!broken_.empty()) {
    out.code = errc::transaction_aborted;
    out.message = broken_;
    return out;
  }
  if (stale_file_ && !group.empty()) {
    // From now on the file would be older than the data.
    std::error_code ec;
    std::filesystem::remove(snapshot_path(), ec);
    if (ec) {
      out.code = errc::transaction_aborted;
      out.message = "cannot remove " + snapshot_path() + ": " + ec.message();
      return out;
    }
    stale_file_ = false;
  }
  out.logged = true;
  out.effects.resize(group.size());
  try {
    for (size_t i = 0; i < group.size(); ++i) {
      apply_fault_point(group[i]);
      auto& effect = out.effects[i];
      effect.seq = next_seq_++;
      // A batch is all or nothing for readers: they wait while it applies.
      std::unique_lock<std::shared_mutex> guard{mtx_};
      for (auto& part : group[i].parts)
        apply_one(part.space, *part.ops, effect, group[i].before_images);
      applied_seq_ = effect.seq;
    }
  } catch (const storage_error& e) {
    // Earlier batches of the group are applied, later ones not: no snapshot
    // of this state may be saved.
    broken_ = std::string{e.what()} + "; the memory engine must be reopened";
    out.code = errc::consistency_violation;
    out.message = "partly applied: " + broken_;
    out.effects.clear();
  }
  return out;
}

engine_info memory_engine::info() const {
  engine_info result;
  result.map_size = opts_.map_size;
  result.map_used = bytes_;
  return result;
}

} // namespace strata

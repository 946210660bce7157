#include "backends/kv_store.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace strata {

std::string key_problem(std::string_view key) {
  if (key.empty())
    return "key is empty; keys are 1 to 511 bytes";
  if (key.size() > limits::max_key_size)
    return "key is " + std::to_string(key.size())
           + " bytes; keys are 1 to 511 bytes";
  return {};
}

std::string value_problem(size_t size, uint64_t max_size) {
  if (size > max_size)
    return "value is " + std::to_string(size) + " bytes, above max_value_size ("
           + std::to_string(max_size) + " bytes)";
  return {};
}

namespace {

constexpr const char* format_version = "1";

lmdb::env open_env(const kv_store_options& opts) {
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  if (ec)
    throw storage_error{errc::connection_failed,
                        "cannot create shard directory " + opts.dir + ": "
                          + ec.message()};
  lmdb::env_options eo;
  eo.map_size = opts.map_size;
  eo.no_sync = opts.no_sync;
  return lmdb::env{opts.dir, eo};
}

std::string_view as_view(const bytes& x) {
  return {reinterpret_cast<const char*>(x.data()), x.size()};
}

bytes to_bytes(std::string_view x) {
  auto first = reinterpret_cast<const uint8_t*>(x.data());
  return bytes(first, first + x.size());
}

bool has_prefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

} // namespace

/// Borrows a pooled read transaction and gives it back on destruction.
class kv_store::reader {
public:
  explicit reader(const kv_store& owner)
    : owner_(owner), map_guard_(owner.map_mtx_), txn_(owner.acquire_reader()) {
    // nop
  }

  ~reader() {
    owner_.release_reader(std::move(txn_));
  }

  const lmdb::txn& operator*() const {
    return txn_;
  }

  const lmdb::txn* operator->() const {
    return &txn_;
  }

private:
  const kv_store& owner_;
  std::shared_lock<std::shared_mutex> map_guard_;
  lmdb::txn txn_;
};

kv_store::kv_store(kv_store_options opts)
  : opts_(std::move(opts)), env_(open_env(opts_)) {
  // Named databases are opened once, in one write transaction, before any
  // other transaction can use their handles.
  auto t = lmdb::txn::write(env_);
  data_ = t.open_db("data", true);
  check_meta(t, t.open_db("meta", true));
  t.commit();
}

kv_store::~kv_store() {
  // Reader slots must be released before the environment closes.
  std::lock_guard<std::mutex> guard{readers_mtx_};
  readers_.clear();
}

void kv_store::check_meta(lmdb::txn& t, MDB_dbi meta) {
  const std::pair<const char*, std::string> expected[] = {
    {"format", format_version},
    {"store", opts_.store_id},
    {"shard", std::to_string(opts_.shard)},
    {"shards", std::to_string(opts_.shard_count)},
  };
  std::string_view found;
  if (!t.get(meta, "format", found)) {
    for (auto& [key, value] : expected)
      t.put(meta, key, value);
    return;
  }
  for (auto& [key, value] : expected) {
    if (!t.get(meta, key, found))
      found = "(missing)";
    if (found != value)
      throw storage_error{
        errc::consistency_violation,
        opts_.dir + " was created with " + key + " = " + std::string{found}
          + " but is opened with " + key + " = " + value
          + "; open it with the settings it was created with"};
  }
}

lmdb::txn kv_store::acquire_reader() const {
  {
    std::lock_guard<std::mutex> guard{readers_mtx_};
    if (!readers_.empty()) {
      auto t = std::move(readers_.back());
      readers_.pop_back();
      t.renew();
      return t;
    }
  }
  return lmdb::txn::read(env_);
}

void kv_store::release_reader(lmdb::txn t) const {
  if (!t)
    return;
  t.reset();
  std::lock_guard<std::mutex> guard{readers_mtx_};
  readers_.push_back(std::move(t));
}

std::optional<bytes> kv_store::get(std::string_view key) const {
  reader r{*this};
  std::string_view v;
  if (!r->get(data_, key, v))
    return std::nullopt;
  return to_bytes(v);
}

bool kv_store::has(std::string_view key) const {
  reader r{*this};
  std::string_view v;
  return r->get(data_, key, v);
}

std::vector<std::optional<bytes>>
kv_store::get_many(const std::vector<std::string>& keys) const {
  std::vector<std::optional<bytes>> result;
  result.reserve(keys.size());
  reader r{*this};
  std::string_view v;
  for (auto& key : keys) {
    if (!key.empty() && r->get(data_, key, v))
      result.emplace_back(to_bytes(v));
    else
      result.emplace_back(std::nullopt);
  }
  return result;
}

scan_page kv_store::scan(const scan_request& req) const {
  scan_page page;
  auto limit = req.limit == 0 ? limits::default_page_entries
                              : std::min(req.limit, limits::max_page_entries);
  std::string_view prefix = req.prefix;
  std::string_view seek = std::max(std::string_view{req.start}, prefix);
  bool skip_equal = false;
  if (!req.after.empty() && std::string_view{req.after} >= seek) {
    seek = req.after;
    skip_equal = true;
  }
  reader r{*this};
  lmdb::cursor c{*r, data_};
  bool ok = seek.empty() ? c.first() : c.seek(seek);
  if (ok && skip_equal && c.key() == seek)
    ok = c.next();
  size_t page_bytes = 0;
  for (; ok; ok = c.next()) {
    if (!has_prefix(c.key(), prefix))
      return page; // keys are sorted: nothing further can match
    if (page.entries.size() == limit || page_bytes >= limits::max_page_bytes) {
      page.more = true;
      return page;
    }
    entry e;
    e.key = std::string{c.key()};
    if (req.values)
      e.value = to_bytes(c.value());
    page_bytes += e.key.size() + e.value.size();
    page.entries.push_back(std::move(e));
  }
  return page;
}

uint64_t kv_store::size() const {
  reader r{*this};
  return r->entries(data_);
}

shard_info kv_store::info() const {
  shard_info result;
  result.shard = opts_.shard;
  result.entries = size();
  auto ei = env_.info();
  auto st = env_.stat();
  result.map_size = ei.me_mapsize;
  result.map_used = (ei.me_last_pgno + 1) * uint64_t{st.ms_psize};
  result.commits = commits_;
  result.path = opts_.dir;
  return result;
}

void kv_store::apply(lmdb::txn& t, const std::vector<operation>& ops,
                     write_outcome& out) {
  for (auto& op : ops) {
    switch (op.kind) {
      case op_kind::set:
        t.put(data_, op.key, as_view(op.value));
        break;
      case op_kind::del:
        if (t.del(data_, op.key))
          ++out.deleted;
        break;
      case op_kind::clear:
        out.deleted += t.entries(data_);
        t.clear(data_);
        break;
    }
  }
}

std::vector<write_outcome> kv_store::write(const write_group& group) {
  std::vector<write_outcome> out(group.size());
  try {
    auto t = lmdb::txn::write(env_);
    for (size_t i = 0; i < group.size(); ++i)
      apply(t, *group[i], out[i]);
    t.commit();
    ++commits_;
    return out;
  } catch (const storage_error&) {
    // handled below
  }
  // Some request broke the combined transaction: give each its own, so that
  // only the culprit fails (and a delete-only one may get headroom).
  for (size_t i = 0; i < group.size(); ++i)
    out[i] = write_alone(*group[i]);
  return out;
}

write_outcome kv_store::write_alone(const std::vector<operation>& ops) {
  auto attempt = [&] {
    write_outcome out;
    try {
      auto t = lmdb::txn::write(env_);
      apply(t, ops, out);
      t.commit();
      ++commits_;
    } catch (const storage_error& e) {
      out = write_outcome{e.code(), e.what(), 0};
    }
    return out;
  };
  auto out = attempt();
  auto deletes_only = std::none_of(ops.begin(), ops.end(), [](auto& op) {
    return op.kind == op_kind::set;
  });
  if (out.code != errc::storage_full || !deletes_only)
    return out;
  // Freeing space needs a few fresh pages first. Grow the map for this one
  // transaction, then return to the configured size (LMDB keeps it at least
  // as large as the data, so at most a few pages stay above the limit).
  std::unique_lock<std::shared_mutex> guard{map_mtx_};
  resize_map(opts_.map_size + std::max<uint64_t>(1 << 20, opts_.map_size / 64));
  out = attempt();
  resize_map(opts_.map_size);
  return out;
}

void kv_store::resize_map(uint64_t size) {
  lmdb::check(mdb_env_set_mapsize(env_.get(), size), "cannot resize the map");
}

} // namespace strata

#include "backends/change_log.hpp"

#include <chrono>
#include <cstring>
#include <limits>
#include <unordered_map>

#include <re2/re2.h>

#include "backends/log.hpp"
#include "backends/query_exec.hpp"

namespace strata {

// -- filter --------------------------------------------------------------------

std::string change_filter::glob_to_regex(std::string_view glob) {
  std::string out;
  for (size_t i = 0; i < glob.size(); ++i) {
    auto c = glob[i];
    if (c == '*') {
      out += "(?s:.*)";
    } else if (c == '?') {
      out += "(?s:.)";
    } else {
      if (c == '\\' && i + 1 < glob.size())
        c = glob[++i];
      out += RE2::QuoteMeta(re2::StringPiece{&c, 1});
    }
  }
  return out;
}

change_filter::change_filter(const change_filter_spec& spec) {
  if (!spec.pattern.empty() && (spec.regex || spec.pattern != "*")) {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_encoding(RE2::Options::EncodingLatin1); // keys are bytes
    auto text = spec.regex ? spec.pattern : glob_to_regex(spec.pattern);
    regex_ = std::make_unique<RE2>(text, o);
    if (!regex_->ok())
      throw storage_error{errc::query_error,
                          "watch pattern '" + spec.pattern + "' does not compile: "
                            + regex_->error()};
  }
  if (!spec.where.empty()) {
    where_ = parse_query(spec.where);
    if (!where_->where)
      throw storage_error{errc::query_error, "the watch's query has no where clause"};
  }
}

change_filter::~change_filter() = default;

bool change_filter::matches(const change& c) const {
  if (c.kind == change_kind::clear)
    return true; // it changes every key
  if (regex_ && !RE2::FullMatch(c.key, *regex_))
    return false;
  if (!where_)
    return true;
  document doc;
  auto passes = [&](bool present, const bytes& value) {
    return present && stored_document(view_of(value), doc) && where_->matches(doc);
  };
  return passes(c.kind == change_kind::set, c.new_value) || passes(c.had_old, c.old_value);
}

// -- records -------------------------------------------------------------------

namespace {

constexpr uint8_t record_version = 1;

void put64(std::string& out, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    out += static_cast<char>((x >> (8 * i)) & 0xff);
}

void put32(std::string& out, uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out += static_cast<char>((x >> (8 * i)) & 0xff);
}

/// Reads a record, throwing CONSISTENCY_VIOLATION when it ends too soon.
struct reader {
  std::string_view in;

  [[noreturn]] static void corrupt() {
    throw storage_error{errc::consistency_violation, "a change log record is corrupt"};
  }

  uint64_t u(size_t n) {
    if (in.size() < n)
      corrupt();
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i)
      x |= uint64_t{static_cast<uint8_t>(in[i])} << (8 * i);
    in.remove_prefix(n);
    return x;
  }

  std::string_view take(size_t n) {
    if (in.size() < n)
      corrupt();
    auto x = in.substr(0, n);
    in.remove_prefix(n);
    return x;
  }

  std::string_view sized() {
    return take(static_cast<size_t>(u(4)));
  }
};

uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

/// The commit time of a record, read from its header; false if the header
/// cannot be read.
bool time_of(std::string_view record, uint64_t& time) {
  if (record.size() < 9 || static_cast<uint8_t>(record[0]) != record_version)
    return false;
  time = reader{record.substr(1)}.u(8);
  return true;
}

uint64_t seq_of(std::string_view key) {
  uint64_t seq = 0;
  if (!txid_of(key, seq))
    reader::corrupt();
  return seq;
}

constexpr const char* floor_key = "changes_floor";

} // namespace

std::string change_log::encode(const change_batch& b) {
  std::string out;
  out += static_cast<char>(record_version);
  put64(out, b.time);
  put64(out, b.txid);
  put32(out, static_cast<uint32_t>(b.changes.size()));
  for (auto& c : b.changes) {
    out += static_cast<char>(c.kind);
    out += static_cast<char>(c.had_old ? 1 : 0);
    put32(out, static_cast<uint32_t>(c.key.size()));
    out += c.key;
    if (c.had_old) {
      put32(out, static_cast<uint32_t>(c.old_value.size()));
      out.append(reinterpret_cast<const char*>(c.old_value.data()), c.old_value.size());
    }
    if (c.kind == change_kind::set) {
      put32(out, static_cast<uint32_t>(c.new_value.size()));
      out.append(reinterpret_cast<const char*>(c.new_value.data()), c.new_value.size());
    }
  }
  return out;
}

change_batch change_log::decode(std::string_view record) {
  reader r{record};
  if (r.u(1) != record_version)
    reader::corrupt();
  change_batch b;
  b.time = r.u(8);
  b.txid = r.u(8);
  auto n = r.u(4);
  if (n > r.in.size()) // each change takes at least 6 bytes
    reader::corrupt();
  b.changes.resize(static_cast<size_t>(n));
  for (auto& c : b.changes) {
    auto kind = r.u(1);
    if (kind > static_cast<uint8_t>(change_kind::clear))
      reader::corrupt();
    c.kind = static_cast<change_kind>(kind);
    c.had_old = r.u(1) != 0;
    c.key = std::string{r.sized()};
    if (c.had_old)
      c.old_value = bytes_of(r.sized());
    if (c.kind == change_kind::set)
      c.new_value = bytes_of(r.sized());
  }
  if (!r.in.empty())
    reader::corrupt();
  return b;
}

// -- the hook ------------------------------------------------------------------

change_log::change_log(shard_core& core, change_log_options opts)
  : core_(core), opts_(opts) {
  core_.with_snapshot([&](const engine_snapshot& s) {
    resync(s);
    last_ = s.seq();
  });
}

void change_log::resync(const engine_snapshot& snap) {
  records_ = snap.count(keyspace::changes);
  std::string_view found;
  floor_ = snap.get(keyspace::meta, floor_key, found)
             ? parse_stored_number(found, core_.options().dir)
             : 0;
  stale_ = false;
}

void change_log::aborted() {
  stale_ = true;
}

void change_log::extend(const std::vector<operation>& ops, const pending_data& data,
                        derived_writes& out) {
  auto* snap = data.snapshot();
  if (snap == nullptr)
    return;
  if (stale_)
    resync(*snap);
  change_batch b;
  b.time = now_ms();
  b.txid = data.txid();
  b.changes.reserve(ops.size());
  // Keys written earlier in this batch: their old value is that write's.
  std::unordered_map<std::string_view, const operation*> earlier;
  bool cleared = false;
  for (auto& op : ops) {
    change c;
    c.kind = op.kind == op_kind::set   ? change_kind::set
             : op.kind == op_kind::del ? change_kind::del
                                       : change_kind::clear;
    c.key = op.key;
    if (c.kind == change_kind::clear) {
      earlier.clear();
      cleared = true;
    } else if (opts_.old_values && !data.full()) {
      std::string_view old;
      if (auto i = earlier.find(op.key); i != earlier.end()) {
        c.had_old = i->second->kind == op_kind::set;
        old = view_of(i->second->value);
      } else {
        c.had_old = !cleared && data.get(op.key, old);
      }
      if (c.had_old)
        c.old_value = bytes_of(old);
      if (ops.size() > 1)
        earlier[op.key] = &op;
      if (!c.had_old && c.kind == change_kind::del)
        continue; // deleting what is not there changes nothing
    }
    if (c.kind == change_kind::set)
      c.new_value = op.value;
    b.changes.push_back(std::move(c));
  }
  std::vector<operation> writes;
  if (!b.changes.empty()) {
    auto record = encode(b);
    writes.push_back(operation::set(txid_key(data.seq()), bytes(record.begin(), record.end())));
    ++records_;
  }
  // Trim a few of the oldest records past the limits, in this same write.
  // A full shard gives up its oldest commits first, whatever the limits, so
  // that deletes make room.
  auto full = data.full();
  size_t budget = full ? 64 : 8;
  auto floor = floor_.load();
  auto trimmed = floor;
  if (opts_.retain_commits > 0 || opts_.retain_ms > 0 || full) {
    size_t removed = 0;
    auto oldest_kept = b.time > opts_.retain_ms ? b.time - opts_.retain_ms : 0;
    auto from = floor == 0 ? std::string{} : txid_key(floor);
    snap->scan(keyspace::changes, from, floor != 0,
               [&](std::string_view key, std::string_view record) {
                 if (removed == budget)
                   return false;
                 uint64_t seq = 0;
                 uint64_t time = 0;
                 auto readable = txid_of(key, seq) && time_of(record, time);
                 auto over = full
                             || (opts_.retain_commits > 0 && records_ > opts_.retain_commits);
                 auto old = opts_.retain_ms > 0 && time < oldest_kept;
                 // An unreadable oldest record goes now: readers cannot pass
                 // it, and it must not fail the writes that trim the log.
                 if (readable && !over && !old)
                   return false;
                 if (!readable)
                   log().warn("shard {}: removed an unreadable change log record",
                              core_.options().dir);
                 writes.push_back(operation::del(std::string{key}));
                 if (seq > trimmed) // the floor passes it: nobody resumes into the gap
                   trimmed = seq;
                 --records_;
                 ++removed;
                 return true;
               });
  }
  if (!writes.empty())
    out.emplace_back(keyspace::changes, std::move(writes));
  if (trimmed != floor) {
    floor_ = trimmed;
    auto text = std::to_string(trimmed);
    std::vector<operation> meta;
    meta.push_back(operation::set(floor_key, bytes(text.begin(), text.end())));
    out.emplace_back(keyspace::meta, std::move(meta));
  }
}

void change_log::committed(const committed_change& change) {
  if (change.seq > last_.load())
    last_ = change.seq;
}

change_page change_log::read(const engine_snapshot& snap, const change_request& req,
                             const change_filter& filter, uint32_t shard) const {
  change_page page;
  std::string_view found;
  auto floor = snap.get(keyspace::meta, floor_key, found)
                 ? parse_stored_number(found, core_.options().dir)
                 : 0;
  page.floor = floor;
  if (req.after == std::numeric_limits<uint64_t>::max()) {
    page.last = snap.seq();
    return page;
  }
  if (req.after < floor)
    throw storage_error{errc::consistency_violation,
                        "resume token older than retention: shard " + std::to_string(shard)
                          + " keeps changes after position " + std::to_string(floor)
                          + ", the token asks for those after " + std::to_string(req.after)};
  auto limit = req.limit == 0 ? limits::default_change_page
                              : std::min(req.limit, limits::max_change_page);
  // A filter that passes little must not make one page read the whole log.
  auto max_examined = size_t{limit} * 16;
  size_t examined = 0;
  size_t page_bytes = 0;
  page.last = std::max(req.after, snap.seq());
  snap.scan(keyspace::changes, txid_key(req.after), true,
            [&](std::string_view key, std::string_view record) {
              if (page.batches.size() == limit || examined == max_examined
                  || page_bytes >= limits::max_page_bytes) {
                page.more = true;
                return false;
              }
              ++examined;
              auto seq = seq_of(key);
              page.last = seq;
              auto b = decode(record);
              if (!filter.all()) {
                std::vector<change> kept;
                for (auto& c : b.changes)
                  if (filter.matches(c))
                    kept.push_back(std::move(c));
                if (kept.empty())
                  return true;
                b.changes = std::move(kept);
              }
              b.shard = shard;
              b.seq = seq;
              for (auto& c : b.changes)
                page_bytes += c.key.size() + c.old_value.size() + c.new_value.size() + 16;
              page.batches.push_back(std::move(b));
              return true;
            });
  if (!page.more)
    page.last = std::max(req.after, snap.seq());
  return page;
}

std::shared_ptr<change_log> open_change_log(shard_core& core, const change_log_options& opts) {
  if (!opts.enabled)
    return nullptr;
  auto log = std::make_shared<change_log>(core, opts);
  core.add_hook(log);
  core.attach_changes(log);
  return log;
}

} // namespace strata

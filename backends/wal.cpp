#include "backends/wal.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "backends/fault.hpp"
#include "strata/errc.hpp"

namespace strata {

namespace {

[[noreturn]] void fail(const std::string& what, int err,
                       errc otherwise = errc::transaction_aborted) {
  auto code = err == ENOSPC || err == EDQUOT ? errc::storage_full : otherwise;
  throw storage_error{code, what + ": " + std::strerror(err)};
}

void put32(std::string& out, uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

void put64(std::string& out, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

uint32_t crc(const char* data, size_t size, uint32_t seed = 0) {
  return static_cast<uint32_t>(
    crc32(seed, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(size)));
}

/// Reads fixed-width integers with bounds checks.
struct reader {
  const char* pos;
  const char* end;

  bool get(uint64_t& x, int width) {
    if (end - pos < width)
      return false;
    x = 0;
    for (int i = 0; i < width; ++i)
      x |= uint64_t{static_cast<unsigned char>(pos[i])} << (8 * i);
    pos += width;
    return true;
  }

  bool get(std::string_view& x, uint64_t size) {
    if (static_cast<uint64_t>(end - pos) < size)
      return false;
    x = {pos, static_cast<size_t>(size)};
    pos += size;
    return true;
  }
};

void put_ops(std::string& out, const std::vector<operation>& ops) {
  put32(out, static_cast<uint32_t>(ops.size()));
  for (auto& op : ops) {
    out.push_back(static_cast<char>(op.kind));
    put32(out, static_cast<uint32_t>(op.key.size()));
    out += op.key;
    if (op.kind == op_kind::set) {
      put32(out, static_cast<uint32_t>(op.value.size()));
      out.append(reinterpret_cast<const char*>(op.value.data()), op.value.size());
    }
  }
}

void put_str(std::string& out, const std::string& x) {
  put32(out, static_cast<uint32_t>(x.size()));
  out += x;
}

bool get_ops(reader& r, std::vector<operation>& ops) {
  uint64_t count = 0;
  if (!r.get(count, 4))
    return false;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t kind = 0;
    uint64_t len = 0;
    std::string_view key;
    std::string_view value;
    if (!r.get(kind, 1) || kind > 2 || !r.get(len, 4) || !r.get(key, len))
      return false;
    if (kind == 0 && (!r.get(len, 4) || !r.get(value, len)))
      return false;
    operation op;
    op.kind = static_cast<op_kind>(kind);
    op.key = std::string{key};
    op.value.assign(value.begin(), value.end());
    ops.push_back(std::move(op));
  }
  return true;
}

bool get_str(reader& r, std::string& x) {
  uint64_t len = 0;
  std::string_view v;
  if (!r.get(len, 4) || !r.get(v, len))
    return false;
  x = std::string{v};
  return true;
}

void put_part(std::string& out, const txn_part& part) {
  put_ops(out, part.writes);
  put32(out, static_cast<uint32_t>(part.reads.size()));
  for (auto& r : part.reads)
    put_str(out, r.key);
  put32(out, static_cast<uint32_t>(part.ranges.size()));
  for (auto& r : part.ranges) {
    put_str(out, r.lo);
    put_str(out, r.hi);
  }
}

bool get_part(reader& r, txn_part& part) {
  uint64_t count = 0;
  if (!get_ops(r, part.writes) || !r.get(count, 4))
    return false;
  for (uint64_t i = 0; i < count; ++i) {
    read_mark m;
    if (!get_str(r, m.key))
      return false;
    part.reads.push_back(std::move(m));
  }
  if (!r.get(count, 4))
    return false;
  for (uint64_t i = 0; i < count; ++i) {
    range_mark m;
    if (!get_str(r, m.lo) || !get_str(r, m.hi))
      return false;
    part.ranges.push_back(std::move(m));
  }
  return true;
}

bool decode(std::string_view payload, wal_record& rec) {
  reader r{payload.data(), payload.data() + payload.size()};
  uint64_t type = 0;
  if (!r.get(rec.seq, 8) || !r.get(type, 1) || type > 5)
    return false;
  rec.kind = static_cast<wal_record::type>(type);
  bool ok = false;
  switch (rec.kind) {
    case wal_record::type::write:
      ok = get_ops(r, rec.ops);
      break;
    case wal_record::type::prepare:
      ok = r.get(rec.txid, 8) && get_part(r, rec.part);
      break;
    case wal_record::type::commit:
    case wal_record::type::abort:
      ok = r.get(rec.txid, 8);
      break;
    case wal_record::type::commit_one:
      ok = r.get(rec.txid, 8) && get_ops(r, rec.ops);
      break;
    case wal_record::type::batch: {
      uint64_t count = 0;
      ok = r.get(count, 1);
      for (uint64_t i = 0; ok && i < count; ++i) {
        uint64_t space = 0;
        std::vector<operation> ops;
        ok = r.get(space, 1) && space < keyspace_count && get_ops(r, ops);
        if (ok)
          rec.parts.emplace_back(static_cast<keyspace>(space), std::move(ops));
      }
      break;
    }
  }
  return ok && r.pos == r.end;
}

/// Frames a payload: length, CRC (filled in by `append`, which knows the
/// log's epoch), payload.
std::string frame(const std::string& payload) {
  std::string record;
  record.reserve(payload.size() + 8);
  put32(record, static_cast<uint32_t>(payload.size()));
  put32(record, 0);
  record += payload;
  return record;
}

std::string head(uint64_t seq, wal_record::type type) {
  std::string payload;
  put64(payload, seq);
  payload.push_back(static_cast<char>(type));
  return payload;
}

} // namespace

wal::wal(std::string path, bool sync) : path_(std::move(path)), sync_(sync) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    fail("cannot open write-ahead log " + path_, errno, errc::connection_failed);
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    auto err = errno;
    ::close(fd_);
    fd_ = -1;
    fail("cannot stat " + path_, err, errc::connection_failed);
  }
  // Where the records end is known after `replay`.
  size_ = end_ = static_cast<uint64_t>(st.st_size);
}

void wal::reserve(uint64_t needed) {
  if (needed <= end_)
    return;
  static const std::string zeros(64 * 1024, '\0');
  auto target = (needed + chunk - 1) / chunk * chunk;
  auto pos = end_;
  while (pos < target) {
    auto n = ::pwrite(fd_, zeros.data(),
                      static_cast<size_t>(std::min<uint64_t>(zeros.size(), target - pos)),
                      static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto err = n < 0 ? errno : EIO;
      // Give back what was added; the records are untouched.
      if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0)
        errno = 0;
      fail("cannot append to write-ahead log " + path_, err);
    }
    pos += static_cast<uint64_t>(n);
  }
  end_ = target;
}

wal::~wal() {
  if (fd_ >= 0)
    ::close(fd_);
}

std::string wal::encode_batch(uint64_t seq, const engine_batch& batch) {
  // Framed in place: the payload is most of a record's bytes.
  size_t size = 8 + 8 + 1 + 1;
  for (auto& part : batch.parts) {
    size += 1 + 4;
    for (auto& op : *part.ops)
      size += 1 + 4 + op.key.size() + 4 + op.value.size();
  }
  std::string record;
  record.reserve(size);
  put32(record, 0); // length, below
  put32(record, 0); // CRC, by `append`
  put64(record, seq);
  record.push_back(static_cast<char>(wal_record::type::batch));
  record.push_back(static_cast<char>(batch.parts.size()));
  for (auto& part : batch.parts) {
    record.push_back(static_cast<char>(part.space));
    put_ops(record, *part.ops);
  }
  auto length = static_cast<uint32_t>(record.size() - 8);
  for (int i = 0; i < 4; ++i)
    record[static_cast<size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
  return record;
}

std::string wal::encode(uint64_t seq, const std::vector<operation>& ops) {
  auto payload = head(seq, wal_record::type::write);
  put_ops(payload, ops);
  return frame(payload);
}

std::string wal::encode_commit_one(uint64_t seq, uint64_t txid,
                                   const std::vector<operation>& ops) {
  auto payload = head(seq, wal_record::type::commit_one);
  put64(payload, txid);
  put_ops(payload, ops);
  return frame(payload);
}

std::string wal::encode_prepare(uint64_t seq, uint64_t txid,
                                const txn_part& part) {
  auto payload = head(seq, wal_record::type::prepare);
  put64(payload, txid);
  put_part(payload, part);
  return frame(payload);
}

std::string wal::encode_outcome(uint64_t seq, uint64_t txid, bool commit) {
  auto payload = head(seq, commit ? wal_record::type::commit
                                  : wal_record::type::abort);
  put64(payload, txid);
  return frame(payload);
}

std::string wal::encode_part(const txn_part& part) {
  std::string out;
  put_part(out, part);
  return out;
}

bool wal::decode_part(std::string_view data, txn_part& part) {
  reader r{data.data(), data.data() + data.size()};
  return get_part(r, part) && r.pos == r.end;
}

void wal::set_epoch(uint64_t epoch) {
  epoch_ = epoch;
  seed_ = 0;
  if (epoch != 0) {
    std::string e;
    put64(e, epoch);
    seed_ = crc(e.data(), e.size());
  }
}

uint32_t wal::checksum(std::string_view payload) const {
  return crc(payload.data(), payload.size(), seed_);
}

void wal::append(std::vector<std::string> records, bool durable) {
  std::vector<iovec> iov;
  size_t total = 0;
  for (auto& r : records) {
    if (r.size() >= 8) { // the CRC in this log's epoch
      auto sum = checksum(std::string_view{r}.substr(8));
      for (int i = 0; i < 4; ++i)
        r[4 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
    }
    iov.push_back(iovec{const_cast<char*>(r.data()), r.size()});
    total += r.size();
  }
  reserve(size_ + total);
  auto undo = [this](int err, const std::string& what) {
    // Nothing of this append may count: cut the file back (the zeros after
    // the records come back with the next append). Should that fail too, the
    // records stay: the next append overwrites them from the start, and any
    // left after it numbered below it, so replay stops there.
    if (!STRATA_FAIL_POINT("wal.truncate")
        && ::ftruncate(fd_, static_cast<off_t>(size_)) == 0)
      end_ = size_;
    else
      errno = 0;
    fail(what, err);
  };
  size_t done = 0;
  size_t first = 0;
  while (done < total) {
    // pwritev may write less than asked (large groups): continue after it.
    // At most IOV_MAX buffers per call (a group may hold more records).
    auto count = std::min<size_t>(iov.size() - first, IOV_MAX);
    if (STRATA_FAIL_POINT("wal.short_append")) {
      // Test builds: the first record reaches the file, then the disk fails.
      if (::pwrite(fd_, iov[first].iov_base, iov[first].iov_len,
                   static_cast<off_t>(size_ + done)) < 0)
        errno = 0;
      undo(ENOSPC, "cannot append to write-ahead log " + path_);
    }
    auto n = ::pwritev(fd_, iov.data() + first, static_cast<int>(count),
                       static_cast<off_t>(size_ + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      undo(errno, "cannot append to write-ahead log " + path_);
    }
    if (n == 0) // no progress: give up rather than spin
      undo(EIO, "cannot append to write-ahead log " + path_);
    done += static_cast<size_t>(n);
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len)
      left -= iov[first++].iov_len;
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  // The one blocking sync of a group commit. After a failed sync the kernel
  // may have dropped the dirty pages: what is on disk is unknown.
  if (!durable) {
    unsynced_ = true;
  } else if (sync_ && ::fdatasync(fd_) != 0) {
    sync_failed_ = true;
    undo(errno, "cannot sync write-ahead log " + path_);
  } else {
    unsynced_ = false;
  }
  size_ += total;
}

void wal::sync() {
  if (!unsynced_ || !sync_)
    return;
  if (::fdatasync(fd_) != 0) {
    sync_failed_ = true;
    fail("cannot sync write-ahead log " + path_, errno);
  }
  unsynced_ = false;
}

void wal::replay(const std::function<void(wal_record&)>& f) {
  std::string data(end_, '\0');
  size_t got = 0;
  while (got < data.size()) {
    auto n = ::pread(fd_, data.data() + got, data.size() - got,
                     static_cast<off_t>(got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail("cannot read write-ahead log " + path_, n < 0 ? errno : EIO);
    got += static_cast<size_t>(n);
  }
  size_t pos = 0;
  uint64_t last_seq = 0;
  while (data.size() - pos >= 8) {
    reader head{data.data() + pos, data.data() + data.size()};
    uint64_t len = 0;
    uint64_t sum = 0;
    head.get(len, 4);
    head.get(sum, 4);
    if (len == 0)
      break; // the zeros after the last record
    if (data.size() - pos - 8 < len)
      break; // torn: cut short by a crash
    std::string_view payload{data.data() + pos + 8, static_cast<size_t>(len)};
    if (checksum(payload) != sum)
      break; // torn, or from before a reset (another epoch)
    wal_record rec;
    // An intact record (its CRC matches) that does not decode is not a torn
    // tail: cutting the log here would drop acknowledged writes.
    if (!decode(payload, rec))
      throw storage_error{errc::consistency_violation,
                          path_ + ": record at offset " + std::to_string(pos)
                            + " is intact but unreadable (written by another "
                              "format version?); the log is left as it is"};
    if (pos > 0 && rec.seq <= last_seq)
      break; // left behind by a reset: older than the log's records
    last_seq = rec.seq;
    f(rec);
    pos += 8 + len;
  }
  // Whatever follows was never acknowledged (or is older): cut it off, so
  // that no new record can line up with it.
  if (pos < end_) {
    if (::ftruncate(fd_, static_cast<off_t>(pos)) != 0)
      fail("cannot truncate write-ahead log " + path_, errno);
    end_ = pos;
  }
  size_ = pos;
}

void wal::reset(uint64_t epoch) {
  // The file keeps its size: new records overwrite the old ones, which the
  // next replay tells apart by their epoch (and sequence numbers).
  size_ = 0;
  unsynced_ = false;
  set_epoch(epoch);
}

} // namespace strata

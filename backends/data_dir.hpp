#pragma once

#include <chrono>
#include <string>

/// The data directory: one subdirectory per shard, plus a LOCK file that keeps
/// a second process (or a second store in this process) from opening it.
namespace strata {

/// Holds an exclusive flock(2) on `<dir>/LOCK` for its lifetime. The kernel
/// drops the lock when the process dies, so a crash never leaves it behind.
class dir_lock {
public:
  /// Creates `dir` if needed and locks it. Throws `storage_error`
  /// (CONNECTION_FAILED) when the directory cannot be created or is in use.
  explicit dir_lock(const std::string& dir);
  dir_lock(const dir_lock&) = delete;
  dir_lock& operator=(const dir_lock&) = delete;
  ~dir_lock();

private:
  int fd_ = -1;
};

/// Waits until no store holds `dir` (its LOCK is free), polling every few
/// milliseconds; returns false if `timeout` passed first.
bool await_unlocked(const std::string& dir, std::chrono::milliseconds timeout);

/// The environment directory of shard `index`: `<dir>/shard-007`.
std::string shard_dir(const std::string& dir, uint32_t index);

/// Directory of the store's transaction coordinator (its decision log).
std::string coordinator_dir(const std::string& dir);

} // namespace strata

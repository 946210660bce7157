#include "backends/data_dir.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "strata/errc.hpp"

namespace strata {

dir_lock::dir_lock(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw storage_error{errc::connection_failed,
                        "cannot create data directory " + dir + ": "
                          + ec.message()};
  auto path = dir + "/LOCK";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw storage_error{errc::connection_failed,
                        "cannot open " + path + ": " + std::strerror(errno)};
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    auto err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw storage_error{errc::connection_failed,
                          "data directory " + dir
                            + " is in use by another store (locked by " + path
                            + "); stop it or pick another directory"};
    throw storage_error{errc::connection_failed,
                        "cannot lock " + path + ": " + std::strerror(err)};
  }
  // The pid helps an operator find the owner; failures here are harmless.
  auto pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0)
    errno = 0;
}

dir_lock::~dir_lock() {
  if (fd_ >= 0)
    ::close(fd_);
}

bool await_unlocked(const std::string& dir, std::chrono::milliseconds timeout) {
  auto path = dir + "/LOCK";
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return true; // no lock file: nobody holds it
    // flock conflicts between open file descriptions, also in one process.
    bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    if (free)
      return true;
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string coordinator_dir(const std::string& dir) {
  return dir + "/coordinator";
}

std::string shard_dir(const std::string& dir, uint32_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "/shard-%03u", index);
  return dir + name;
}

} // namespace strata

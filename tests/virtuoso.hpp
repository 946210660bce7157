#pragma once

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/sparql.hpp"
#include "strata/engine_settings.hpp"

/// A real Virtuoso Open Source server for the graph engine's tests: started
/// on 127.0.0.1 with ephemeral ports and a database in a directory of its
/// own, stopped (and its directory removed) by `stop`.
namespace strata::test {

/// A free TCP port on 127.0.0.1, as the kernel hands one out.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

/// The settings that reach the server in `dir` (its endpoint and dba login).
inline graph_settings virtuoso_settings(const std::string& url) {
  graph_settings s;
  s.url = url;
  s.username = "dba";
  s.password = "dba";
  s.timeout_ms = 60000;
  return s;
}

class virtuoso {
public:
  /// Starts a server with its files in `dir` (created), or again on the
  /// database and ports a server had there before. `detach`: it outlives
  /// this process (ctest's fixture); otherwise it dies with it. Waits until
  /// it answers queries; throws if it does not within 60 s.
  static virtuoso start(const std::string& where, bool detach) {
    std::filesystem::create_directories(where);
    // The server runs in it; the ini names files by absolute paths.
    auto dir = std::filesystem::absolute(where).string();
    virtuoso v;
    v.dir_ = dir;
    auto http_port = 0;
    if (std::ifstream old{dir + "/http-port"}; old >> http_port) {
      // A restart: the ini names the ports already. A server that was
      // killed leaves its lock file behind.
      std::error_code ec;
      std::filesystem::remove(dir + "/strata.lck", ec);
    } else {
      auto sql_port = free_port();
      http_port = free_port();
      std::ofstream{dir + "/http-port"} << http_port << "\n";
      std::ofstream ini{dir + "/virtuoso.ini"};
      ini << "[Database]\nDatabaseFile = " << dir << "/strata.db\nErrorLogFile = " << dir
          << "/strata.log\nTransactionFile = " << dir << "/strata.trx\nxa_persistent_file = "
          << dir << "/strata.pxa\n[TempDatabase]\nDatabaseFile = " << dir
          << "/strata-temp.db\nTransactionFile = " << dir << "/strata-temp.trx\n"
          << "[Parameters]\nServerPort = 127.0.0.1:" << sql_port << "\nDirsAllowed = " << dir
          << "\n[HTTPServer]\nServerPort = 127.0.0.1:" << http_port
          << "\nServerThreads = 8\n[SPARQL]\nResultSetMaxRows = 10000\n";
    }
    auto pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      if (detach)
        ::setsid();
      else
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      auto out = dir + "/console.log";
      int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (::chdir(dir.c_str()) != 0)
        ::_exit(126);
      ::execlp("virtuoso-t", "virtuoso-t", "-f", "-c", "virtuoso.ini", nullptr);
      ::_exit(127);
    }
    v.pid_ = pid;
    v.url_ = "http://127.0.0.1:" + std::to_string(http_port) + "/sparql-auth";
    sparql_client probe{virtuoso_settings(v.url_)};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
    for (;;) {
      try {
        probe.query("ASK { ?s ?p ?o }");
        break;
      } catch (const sparql_error&) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
          v.pid_ = 0;
          throw std::runtime_error("virtuoso-t exited; see " + dir + "/console.log");
        }
        if (std::chrono::steady_clock::now() > deadline)
          throw std::runtime_error("virtuoso-t did not answer within 60 s; see " + dir
                                   + "/console.log");
        std::this_thread::sleep_for(std::chrono::milliseconds{200});
      }
    }
    std::ofstream{dir + "/url"} << v.url_ << "\n";
    std::ofstream{dir + "/pid"} << pid << "\n";
    return v;
  }

  /// Stops the server recorded in `dir` and removes the directory.
  static void stop(const std::string& dir) {
    std::ifstream in{dir + "/pid"};
    pid_t pid = 0;
    if (in >> pid && pid > 0)
      terminate(pid);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  virtuoso() = default;
  virtuoso(virtuoso&& other) noexcept
    : dir_(std::move(other.dir_)), url_(std::move(other.url_)), pid_(other.pid_) {
    other.pid_ = 0;
  }
  virtuoso& operator=(virtuoso&&) = delete;

  ~virtuoso() {
    if (pid_ > 0) {
      terminate(pid_);
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  const std::string& url() const {
    return url_;
  }

  pid_t pid() const {
    return pid_;
  }

  /// Leaves the server running past this object (`stop` ends it).
  void release() {
    pid_ = 0;
  }

  /// Kills the server without warning (a crash).
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = 0;
    }
  }

private:
  static void terminate(pid_t pid) {
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int status = 0;
      auto r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && ::kill(pid, 0) != 0))
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }

  std::string dir_;
  std::string url_;
  pid_t pid_ = 0;
};

/// Settings for a graph store on the tests' server: the one ctest started in
/// STRATA_TEST_VIRTUOSO (a directory set by CMake), else one this process
/// starts on first use and stops at exit. Each shard gets a graph of its own.
inline graph_settings test_graph() {
  static std::string url = [] {
#ifdef STRATA_TEST_VIRTUOSO
    std::ifstream in{std::string{STRATA_TEST_VIRTUOSO} + "/url"};
#else
    std::ifstream in;
#endif
    std::string u;
    if (in >> u) {
      try {
        sparql_client{virtuoso_settings(u)}.query("ASK { ?s ?p ?o }");
        return u;
      } catch (const sparql_error&) {
        // Left by a run that was interrupted: start one of our own.
      }
    }
    static auto base = std::filesystem::temp_directory_path()
                       / ("strata-virtuoso-" + std::to_string(::getpid()));
    static auto server = virtuoso::start(base.string(), false);
    return server.url();
  }();
  return virtuoso_settings(url);
}

} // namespace strata::test

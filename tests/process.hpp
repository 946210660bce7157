#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

/// Real child processes for multi-process tests: strata-node and strata-cli
/// run exactly as an operator would run them.
namespace strata::test {

/// Directory of the built programs (set by CMake).
inline std::string bin_dir() {
  return STRATA_BIN_DIR;
}

/// Exit code and output of a finished program.
struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace detail {

inline pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  auto pid = ::fork();
  if (pid < 0)
    throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::perror("execv");
    ::_exit(127);
  }
  return pid;
}

} // namespace detail

/// Runs `program` from bin_dir() with `args` to completion.
inline run_result run(const std::string& program, const std::vector<std::string>& args,
                      const std::string& scratch) {
  std::vector<std::string> argv{bin_dir() + "/" + program};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out_path = scratch + "/out.txt";
  auto err_path = scratch + "/err.txt";
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  auto pid = detail::spawn(argv, out_fd, err_fd);
  ::close(out_fd);
  ::close(err_fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  run_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

/// A running strata-node. The destructor kills it if it is still alive.
class node_process {
public:
  /// Starts strata-node with `args` and waits (up to 20 s) for its
  /// `listening on HOST:PORT` line. Throws if it does not come.
  node_process(const std::vector<std::string>& args, const std::string& log_path) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0)
      throw std::runtime_error("pipe failed");
    int err_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<std::string> argv{bin_dir() + "/strata-node"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = detail::spawn(argv, pipe_fds[1], err_fd);
    ::close(pipe_fds[1]);
    ::close(err_fd);
    out_ = pipe_fds[0];
    first_line_ = read_line(std::chrono::seconds(20));
    const std::string prefix = "listening on 127.0.0.1:";
    if (first_line_.rfind(prefix, 0) != 0)
      throw std::runtime_error("strata-node did not start: '" + first_line_
                               + "', log: " + slurp(log_path));
    port_ = static_cast<uint16_t>(std::stoi(first_line_.substr(prefix.size())));
  }

  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  ~node_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0)
      ::close(out_);
  }

  uint16_t port() const {
    return port_;
  }

  pid_t pid() const {
    return pid_;
  }

  const std::string& first_line() const {
    return first_line_;
  }

  /// Sends `sig` and waits (up to 30 s, then kills it) for the process;
  /// returns its exit code, 128 + signal, or -1 if it had to be killed.
  int stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  /// Everything the node printed to stdout after its first line (available
  /// once it has exited).
  std::string rest_of_stdout() {
    std::string result;
    char buf[256];
    ssize_t n;
    while ((n = ::read(out_, buf, sizeof(buf))) > 0)
      result.append(buf, static_cast<size_t>(n));
    return result;
  }

private:
  std::string read_line(std::chrono::seconds timeout) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0)
        continue;
      char c;
      auto n = ::read(out_, &c, 1);
      if (n <= 0)
        break;
      if (c == '\n')
        return line;
      line += c;
    }
    return line;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  uint16_t port_ = 0;
  std::string first_line_;
};

} // namespace strata::test

// Starts or stops the Virtuoso server that ctest's graph tests share:
//   strata-test-virtuoso start DIR   (returns once it answers queries)
//   strata-test-virtuoso stop DIR

#include <cstring>
#include <iostream>

#include "tests/virtuoso.hpp"

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[1], "start") != 0 && std::strcmp(argv[1], "stop") != 0)) {
    std::cerr << "usage: strata-test-virtuoso start|stop DIR\n";
    return 2;
  }
  std::string dir = argv[2];
  try {
    if (std::strcmp(argv[1], "stop") == 0) {
      strata::test::virtuoso::stop(dir);
      std::cout << "virtuoso stopped\n";
      return 0;
    }
    strata::test::virtuoso::stop(dir); // one left from an interrupted run
    auto server = strata::test::virtuoso::start(dir, true);
    std::cout << "virtuoso at " << server.url() << " (pid " << server.pid() << ")\n";
    server.release();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

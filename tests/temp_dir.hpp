#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace strata::test {

/// A fresh directory under $TMPDIR, removed with everything in it at scope exit.
class temp_dir {
public:
  temp_dir() {
    auto base = std::filesystem::temp_directory_path() / "strata-test-XXXXXX";
    std::string tmpl = base.string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const {
    return path_;
  }

  std::string operator/(const std::string& sub) const {
    return path_ + "/" + sub;
  }

private:
  std::string path_;
};

} // namespace strata::test

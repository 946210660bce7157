#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include <caf/error.hpp>
#include <caf/response_promise.hpp>

#include "strata/error.hpp"

namespace strata {

/// Counts the answers of a scatter/gather. Once all have arrived it runs
/// `finish`, or delivers the first error instead.
struct join {
  join(size_t n, caf::response_promise promise, std::function<void()> f)
    : pending(n), rp(std::move(promise)), finish(std::move(f)) {
    // nop
  }

  join(const join&) = delete;
  join& operator=(const join&) = delete;

  /// Only the handlers of the requests hold a join. They go before all
  /// answers came only when the router stops, and CAF 0.17 would leave the
  /// client unanswered: answer it here.
  ~join() {
    if (pending > 0)
      rp.deliver(make_error(errc::connection_lost,
                            "the store stopped before this request was answered"));
  }

  void arrived() {
    if (--pending > 0)
      return;
    if (first_error)
      rp.deliver(std::move(first_error));
    else
      finish();
  }

  /// Prefixes a strata error's message with the shard it came from.
  static caf::error annotate(caf::error err, size_t shard) {
    if (code_of(err) == errc::none)
      return err;
    auto ctx = err.context().match_elements<std::string>()
                 ? err.context().get_as<std::string>(0)
                 : std::string{};
    return make_error(code_of(err),
                      "shard " + std::to_string(shard) + ": " + ctx);
  }

  size_t pending;
  caf::response_promise rp;
  std::function<void()> finish;
  caf::error first_error;
};

} // namespace strata

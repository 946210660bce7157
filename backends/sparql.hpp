#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "strata/engine_settings.hpp"

namespace strata {

/// Why a SPARQL request failed, as far as the caller must know it: whether
/// the server can have acted on it.
class sparql_error : public std::runtime_error {
public:
  enum class kind {
    /// No connection was made (refused, unresolvable, TLS handshake failed):
    /// the server never saw the request.
    unreachable,
    /// The request was sent but no complete answer came (timeout, reset):
    /// the server may or may not have acted on it.
    lost,
    /// The server refused the credentials (HTTP 401/403): it did nothing.
    unauthorized,
    /// The server answered with an error: it stopped at the failing operation.
    refused,
    /// The server aborted the request as deadlocked with other writers
    /// every time it was sent (SQLSTATE 40001).
    deadlock,
  };

  sparql_error(kind k, const std::string& message) : std::runtime_error(message), kind_(k) {
    // nop
  }

  kind what_kind() const noexcept {
    return kind_;
  }

private:
  kind kind_;
};

/// A SPARQL 1.1 Protocol client over HTTP(S) (libcurl): queries and updates
/// as form-encoded POSTs to one endpoint, digest or basic authentication as
/// the server asks, TLS with the settings' certificates. One connection, kept
/// alive between requests; not thread-safe (one per writer).
///
/// A request the server aborts as deadlocked (Virtuoso locks index pages
/// that writers to different graphs share) is sent again after a short,
/// growing, random pause, up to `deadlock_retries` times: callers send only
/// requests that are safe to repeat (every update strata sends is: inserting
/// a triple that is there and deleting one that is not change nothing).
class sparql_client {
public:
  /// Times a deadlocked request is sent again before `deadlock` is thrown.
  static constexpr int deadlock_retries = 40;

  explicit sparql_client(const graph_settings& settings);
  sparql_client(const sparql_client&) = delete;
  sparql_client& operator=(const sparql_client&) = delete;
  ~sparql_client();

  /// Runs a query; the answer in SPARQL 1.1 Query Results JSON.
  std::string query(std::string_view text);

  /// Runs an update request (operations separated by ';', which the server
  /// runs in order until one fails).
  void update(std::string_view text);

private:
  std::string post(std::string_view field, std::string_view text);
  std::string post_once(const std::string& body, bool& deadlocked);

  struct handle;
  graph_settings settings_;
  std::unique_ptr<handle> handle_;
};

} // namespace strata

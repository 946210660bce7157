#pragma once

#include <string>

#include <caf/fwd.hpp>

namespace strata {

/// Prepares an actor system configuration for strata. Call it once, before
/// constructing the `caf::actor_system` (before or after `cfg.parse`). It
/// - announces strata's message types (the same in every process),
/// - registers strata's error category, so errors render as `KEY_NOT_FOUND:
///   ...`,
/// - loads CAF's middleman (`libcaf_io`) for remote nodes; do not load it again,
/// - sets tuned scheduler defaults that the configuration does not set
///   itself: `work-stealing.moderate-poll-attempts = 0` (idle workers no
///   longer sleep ~100 us between polls, which cuts request latency several
///   times on small machines), `scheduler.max-threads` = the number of
///   cores, at least 2 (CAF's default is at least 4) and
///   `middleman.workers = 0`,
/// - turns on the middleman's heartbeats (`middleman.heartbeat-interval =
///   500ms`, `middleman.connection-timeout = 5s`): a remote peer that hangs
///   is dropped, and its actors reported down, within 5 s. Every process of a
///   deployment needs them (a peer without heartbeats would be dropped).
void configure(caf::actor_system_config& cfg);

/// Loads CAF's OpenSSL module (`libcaf_openssl`), so that stores with
/// `store_options::tls` reach their shard nodes over TLS and `strata-node
/// --tls` serves over TLS. Call it after `configure` and before constructing
/// the actor system. Certificates come from CAF's options (config file, or
/// `--openssl.certificate=F --openssl.key=F --openssl.cafile=F` on the
/// command line, or `cfg.openssl_certificate = ...` in code). Once any of them
/// is set, both sides of every TLS connection must present a certificate
/// signed by a CA in `openssl.cafile` (or `openssl.capath`), and connections
/// without one are refused.
void configure_tls(caf::actor_system_config& cfg);

/// Sets the level of strata's log (spdlog logger "strata", on stderr).
/// Accepts trace, debug, info, warning, error, critical and off; anything
/// else is an INVALID_VALUE error and leaves the level unchanged.
caf::error set_log_level(const std::string& level);

} // namespace strata

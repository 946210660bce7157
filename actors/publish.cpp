// Publishing a node's actor behind a frame guard.
//
// CAF 0.17's BASP reads a 4-byte payload length from each frame header and
// reserves that much before it looks at anything else: one 32-byte header
// announcing 4 GiB makes a node allocate (and zero) 4 GiB on its one network
// thread, which stalls every connection for seconds. So a node's connections
// get a scribe of strata's own, which reads each header before BASP does:
//
//   accept ──▶ guarded_scribe ──header──▶ check ──ok──▶ BASP (unchanged)
//                                          │ not a client handshake first,
//                                          │ or a payload above the limit
//                                          ▼
//                          close the connection, log a warning
//
// Until the peer's client handshake has arrived, only that handshake may
// come, with at most `handshake_limit` bytes; afterwards any frame up to
// `max_frame_size`. The doorman that accepts connections is handed to BASP
// exactly as CAF's middleman actor hands over its own (`publish_atom`), the
// way CAF's OpenSSL module substitutes its TLS scribes.

#include "strata/store.hpp"

#include <caf/actor_system.hpp>
#include <caf/io/basp/header.hpp>
#include <caf/io/basp/message_type.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/doorman_impl.hpp>
#include <caf/io/network/scribe_impl.hpp>
#include <caf/send.hpp>

#include "backends/log.hpp"
#include "strata/error.hpp"

namespace strata {

namespace {

using caf::io::network::native_socket;
using default_mpx = caf::io::network::default_multiplexer;

/// Bytes a client's handshake may have: its node id and application ids.
constexpr uint32_t handshake_limit = 64 * 1024;

/// A connection's scribe that checks each BASP frame header before BASP
/// sees it. BASP always reads exactly a header, then exactly its payload.
class guarded_scribe : public caf::io::network::scribe_impl {
public:
  guarded_scribe(default_mpx& mpx, native_socket fd, uint64_t max_frame)
    : scribe_impl(mpx, fd), max_frame_(max_frame) {
    // nop
  }

  bool consume(caf::execution_unit* ctx, const void* data, size_t size) override {
    if (header_next_ && size == caf::io::basp::header_size) {
      auto bytes = static_cast<const unsigned char*>(data);
      auto op = static_cast<caf::io::basp::message_type>(bytes[0]);
      // The payload length: 4 bytes, big endian (network order), at offset 4.
      uint64_t len = (uint64_t{bytes[4]} << 24) | (uint64_t{bytes[5]} << 16)
                     | (uint64_t{bytes[6]} << 8) | uint64_t{bytes[7]};
      if (auto why = refuse(op, len); !why.empty()) {
        log().warn("closing connection from {}:{}: {}", addr(), port(), why);
        // As if the peer had gone: BASP forgets the connection.
        io_failure(ctx, caf::io::network::operation::read);
        return false;
      }
      if (len > 0) {
        header_next_ = false;
        payload_of_ = op;
      } else if (op == caf::io::basp::message_type::client_handshake) {
        handshaken_ = true;
      }
    } else if (!header_next_) {
      header_next_ = true;
      if (payload_of_ == caf::io::basp::message_type::client_handshake)
        handshaken_ = true;
    }
    return scribe_impl::consume(ctx, data, size);
  }

private:
  /// Why a frame with this header must not be read, or nothing.
  std::string refuse(caf::io::basp::message_type op, uint64_t len) const {
    if (!handshaken_) {
      if (op != caf::io::basp::message_type::client_handshake)
        return "a frame of type " + std::to_string(static_cast<unsigned>(op))
               + " before the handshake (not a CAF node, or a scan)";
      if (len > handshake_limit)
        return "a handshake of " + std::to_string(len) + " bytes (the limit is "
               + std::to_string(handshake_limit) + ")";
      return {};
    }
    if (len > max_frame_)
      return "a frame of " + std::to_string(len) + " bytes (max_frame_size is "
             + std::to_string(max_frame_) + ")";
    return {};
  }

  uint64_t max_frame_;
  bool handshaken_ = false;
  bool header_next_ = true;
  caf::io::basp::message_type payload_of_ = caf::io::basp::message_type::heartbeat;
};

/// Accepts connections like CAF's doorman, with guarded scribes.
class guarded_doorman : public caf::io::network::doorman_impl {
public:
  guarded_doorman(default_mpx& mpx, native_socket fd, uint64_t max_frame)
    : doorman_impl(mpx, fd), max_frame_(max_frame) {
    // nop
  }

  bool new_connection() override {
    if (detached())
      return false; // the broker let go of us; the socket goes with us
    auto& mpx = acceptor_.backend();
    auto fd = acceptor_.accepted_socket();
    static_cast<void>(caf::io::network::keepalive(fd, true));
    auto scribe = caf::make_counted<guarded_scribe>(mpx, fd, max_frame_);
    auto hdl = scribe->hdl();
    parent()->add_scribe(std::move(scribe));
    return doorman::new_connection(&mpx, hdl);
  }

private:
  uint64_t max_frame_;
};

caf::expected<uint16_t> publish_guarded(caf::actor_system& sys, caf::strong_actor_ptr whom,
                                        std::set<std::string> interface, uint16_t port,
                                        const std::string& host, uint64_t max_frame_size) {
  if (max_frame_size < handshake_limit)
    return make_error(errc::invalid_value,
                      "max_frame_size must be at least " + std::to_string(handshake_limit)
                        + " bytes, got " + std::to_string(max_frame_size));
  auto& mpx = static_cast<default_mpx&>(sys.middleman().backend());
  auto fd = caf::io::network::new_tcp_acceptor_impl(port, host.empty() ? nullptr
                                                                       : host.c_str(),
                                                    true);
  if (!fd)
    return make_error(errc::connection_failed,
                      "cannot listen on " + host + ":" + std::to_string(port) + ": "
                        + sys.render(fd.error()));
  caf::io::doorman_ptr doorman = caf::make_counted<guarded_doorman>(mpx, *fd, max_frame_size);
  auto actual = doorman->port();
  // What CAF's middleman actor does with the doorman it opens in publish().
  auto basp = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  caf::anon_send(basp, caf::publish_atom::value, std::move(doorman), actual, std::move(whom),
                 std::move(interface));
  return actual;
}

} // namespace

caf::expected<uint16_t> publish(caf::actor_system& sys,
                                const observable_storage_actor& store, uint16_t port,
                                const std::string& host, uint64_t max_frame_size) {
  return publish_guarded(sys, caf::actor_cast<caf::strong_actor_ptr>(store),
                         sys.message_types(store), port, host, max_frame_size);
}

caf::expected<uint16_t> publish(caf::actor_system& sys, const node_actor& node,
                                uint16_t port, const std::string& host,
                                uint64_t max_frame_size) {
  return publish_guarded(sys, caf::actor_cast<caf::strong_actor_ptr>(node),
                         sys.message_types(node), port, host, max_frame_size);
}

} // namespace strata

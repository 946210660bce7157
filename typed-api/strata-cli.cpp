// strata-cli: talks to a strata node, or opens a data directory itself.
//
//   strata-cli [--host H] --port N [--json] COMMAND [ARGS]     (a running node)
//   strata-cli --data DIR [--shards K] [--json] COMMAND [ARGS] (embedded, no node)
//
// Commands: set KEY VALUE, get KEY, del KEY, has KEY, size, clear,
//           keys [--prefix P] [--limit N], scan [--prefix P] [--limit N].
// Errors exit non-zero with `error: CODE: message` on stderr; `get` of a
// missing key exits 1 with `not found` on stderr.
//
// Values written by `set` are raw text behind strata's value header. `get` and
// `scan` print raw values as they are, typed (document) values as JSON, and
// anything else as {"$bytes": base64}. With --json, keys and raw values that
// are not valid UTF-8 print as {"$bytes": base64} too, so that nothing is lost.
// `--` ends the options: `strata-cli --port N set -- k --v` stores "--v".

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "strata/client.hpp"
#include "strata/codec.hpp"
#include "strata/document.hpp"
#include "strata/error.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"

namespace {

using namespace strata;

const char* usage =
  "usage: strata-cli [--host H] --port N [--json] COMMAND [ARGS]\n"
  "       strata-cli --data DIR [--shards K] [--json] COMMAND [ARGS]\n"
  "commands:\n"
  "  set KEY VALUE      store VALUE (text) under KEY\n"
  "  get KEY            print the value of KEY (exit 1 if missing)\n"
  "  del KEY            delete KEY; prints whether it existed\n"
  "  has KEY            print whether KEY exists\n"
  "  size               print the number of keys\n"
  "  clear              delete every key\n"
  "  keys [--prefix P] [--limit N]   list keys in order\n"
  "  scan [--prefix P] [--limit N]   list keys and values in order\n"
  "  nodes              print the node registry: address, status, role,\n"
  "                     shards, last heartbeat, node id, error\n"
  "options:\n"
  "  --timeout MS       request timeout (default 30000)\n"
  "  --connect-timeout MS  how long to keep trying to reach the node\n"
  "                     (default: --timeout)\n"
  "  --tls              reach the node over TLS, with --tls-cert PEM,\n"
  "                     --tls-key PEM and --tls-ca PEM (the node's CA)\n"
  "  --json             machine-readable output; keys and values that are\n"
  "                     not UTF-8 print as {\"$bytes\":\"<base64>\"}\n"
  "  --                 ends the options (for keys or values starting with -)\n";

struct cli_args {
  std::string host = "127.0.0.1";
  std::optional<uint16_t> port;
  std::string data;
  uint32_t shards = 4;
  bool json = false;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{0}; // 0: `timeout`
  std::string prefix;
  uint64_t limit = 0; // 0: everything
  bool tls = false;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  std::vector<std::string> command;
};

/// Thrown for usage errors; exit code 2.
struct usage_error {
  std::string what;
};

uint64_t to_number(const std::string& flag, const std::string& x) {
  try {
    size_t used = 0;
    auto n = std::stoull(x, &used);
    if (used == x.size() && x[0] != '-')
      return n;
  } catch (...) {
    // fall through
  }
  throw usage_error{flag + " needs a number, got '" + x + "'"};
}

cli_args parse(int argc, char** argv) {
  cli_args a;
  bool options = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!options || arg == "--") {
      if (options)
        options = false;
      else
        a.command.push_back(arg);
      continue;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw usage_error{arg + " needs a value"};
      return argv[++i];
    };
    if (arg == "--host")
      a.host = value();
    else if (arg == "--port") {
      auto n = to_number(arg, value());
      if (n > 65535)
        throw usage_error{"--port must be at most 65535"};
      a.port = static_cast<uint16_t>(n);
    } else if (arg == "--data")
      a.data = value();
    else if (arg == "--shards")
      a.shards = static_cast<uint32_t>(to_number(arg, value()));
    else if (arg == "--json")
      a.json = true;
    else if (arg == "--tls")
      a.tls = true;
    else if (arg == "--tls-cert")
      a.tls_cert = value();
    else if (arg == "--tls-key")
      a.tls_key = value();
    else if (arg == "--tls-ca")
      a.tls_ca = value();
    else if (arg == "--timeout") {
      a.timeout = std::chrono::milliseconds{to_number(arg, value())};
      if (a.timeout.count() == 0)
        throw usage_error{"--timeout must be at least 1 ms"};
    } else if (arg == "--connect-timeout") {
      a.connect_timeout = std::chrono::milliseconds{to_number(arg, value())};
      if (a.connect_timeout.count() == 0)
        throw usage_error{"--connect-timeout must be at least 1 ms"};
    }
    else if (arg == "--prefix")
      a.prefix = value();
    else if (arg == "--limit")
      a.limit = to_number(arg, value());
    else if (arg == "--help" || arg == "-h")
      throw usage_error{""};
    else if (arg.rfind("--", 0) == 0)
      throw usage_error{"unknown option " + arg};
    else
      a.command.push_back(arg);
  }
  if (a.command.empty())
    throw usage_error{"no command given"};
  if (a.data.empty() == !a.port.has_value())
    throw usage_error{"give either --port (a node) or --data (embedded)"};
  static const std::vector<std::pair<std::string, size_t>> arity = {
    {"set", 3}, {"get", 2}, {"del", 2},  {"has", 2},
    {"size", 1}, {"clear", 1}, {"keys", 1}, {"scan", 1}, {"nodes", 1},
  };
  for (auto& [name, n] : arity)
    if (a.command[0] == name) {
      if (a.command.size() != n)
        throw usage_error{name + " takes " + std::to_string(n - 1)
                          + " argument(s)"};
      return a;
    }
  throw usage_error{"unknown command '" + a.command[0] + "'"};
}

/// Text as a JSON string, or as {"$bytes": base64} if it is not UTF-8: JSON
/// strings cannot carry other bytes.
std::string quote(std::string_view x) {
  if (is_utf8(x))
    return to_json(document{x});
  return to_json(document::bytes(bytes(x.begin(), x.end())));
}

/// A stored value for display: raw text as is, documents as JSON, anything
/// else as base64 bytes.
std::string show(const bytes& value, bool json) {
  try {
    auto hdr = read_header(value.data(), value.size());
    if (hdr.encoding == value_encoding::raw) {
      auto text = raw_payload(value);
      return json ? quote(text) : std::string{text};
    }
    return to_json(decode_doc(value));
  } catch (const codec_error&) {
    return to_json(document::bytes(value));
  }
}

class session {
public:
  /// A store on a node is reached through a stand-in that fails a request
  /// at once if the connection goes.
  session(caf::actor_system& sys, transactional_storage_actor store, const cli_args& a)
    : self_(sys, true), proxy_(sys, store, a.timeout), store_(proxy_.use(store)), args_(a) {
    // nop
  }

  /// Runs the command; returns the exit code.
  int run() {
    auto& cmd = args_.command;
    auto& name = cmd[0];
    if (name == "set") {
      check(ask_void(atom::set_v, cmd[1], encode_raw(cmd[2])));
      print(args_.json ? "{\"ok\":true}" : "OK");
    } else if (name == "get") {
      auto v = ask<maybe_bytes>(atom::get_v, cmd[1]);
      if (!*v) {
        std::cerr << "not found" << std::endl;
        return 1;
      }
      if (args_.json)
        print("{\"key\":" + quote(cmd[1]) + ",\"value\":" + show(**v, true) + "}");
      else
        print(show(**v, false));
    } else if (name == "del") {
      print(*ask<bool>(atom::del_v, cmd[1]) ? "true" : "false");
    } else if (name == "has") {
      print(*ask<bool>(atom::has_v, cmd[1]) ? "true" : "false");
    } else if (name == "size") {
      print(std::to_string(*ask<uint64_t>(atom::size_v)));
    } else if (name == "clear") {
      check(ask_void(atom::clear_v));
      print(args_.json ? "{\"ok\":true}" : "OK");
    } else if (name == "nodes") {
      nodes();
    } else {
      scan(name == "scan");
    }
    return 0;
  }

private:
  void nodes() {
    using namespace std::chrono;
    auto all = ask<std::vector<node_info>>(atom::nodes_v);
    auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    if (args_.json)
      std::cout << "[";
    bool first = true;
    for (auto& n : *all) {
      std::string shards;
      for (auto i : n.shards)
        shards += (shards.empty() ? "" : ",") + std::to_string(i);
      if (args_.json) {
        std::cout << (first ? "" : ",") << "{\"id\":" << quote(n.id)
                  << ",\"address\":" << quote(n.address) << ",\"role\":\""
                  << to_string(n.role) << "\",\"status\":\"" << to_string(n.status)
                  << "\",\"last_seen_ms\":" << n.last_seen_ms << ",\"shards\":["
                  << shards << "],\"error\":" << quote(n.error) << "}";
      } else {
        auto ago = n.last_seen_ms == 0
                     ? std::string{"never"}
                     : std::to_string((now - n.last_seen_ms) / 1000.0).substr(0, 4) + " s ago";
        std::cout << n.address << '\t' << to_string(n.status) << '\t'
                  << to_string(n.role) << "\tshards " << (shards.empty() ? "-" : shards)
                  << "\tseen " << ago << '\t' << (n.id.empty() ? "-" : n.id)
                  << (n.error.empty() ? "" : "\t" + n.error) << '\n';
      }
      first = false;
    }
    if (args_.json)
      std::cout << "]\n";
    std::cout.flush();
  }

  void scan(bool with_values) {
    scan_request req;
    req.prefix = args_.prefix;
    req.values = with_values;
    uint64_t shown = 0;
    bool first = true;
    if (args_.json)
      std::cout << "[";
    for (;;) {
      if (args_.limit > 0)
        req.limit = static_cast<uint32_t>(
          std::min<uint64_t>(args_.limit - shown, limits::max_page_entries));
      auto page = ask<scan_page>(atom::scan_v, req);
      for (auto& e : page->entries) {
        if (args_.json) {
          std::cout << (first ? "" : ",");
          if (with_values)
            std::cout << "{\"key\":" << quote(e.key)
                      << ",\"value\":" << show(e.value, true) << "}";
          else
            std::cout << quote(e.key);
        } else if (with_values) {
          std::cout << e.key << '\t' << show(e.value, false) << '\n';
        } else {
          std::cout << e.key << '\n';
        }
        first = false;
        ++shown;
      }
      if (!page->more || page->entries.empty()
          || (args_.limit > 0 && shown >= args_.limit))
        break;
      req.after = page->entries.back().key;
    }
    if (args_.json)
      std::cout << "]\n";
    std::cout.flush();
  }

  static void print(const std::string& line) {
    std::cout << line << std::endl;
  }

  static void check(const caf::error& err) {
    if (err)
      throw err;
  }

  template <class R, class... Ts>
  caf::expected<R> ask(Ts&&... xs) {
    caf::expected<R> result{caf::error{}};
    self_->request(store_, detail::timeout_for(store_, self_->node(), args_.timeout),
                   std::forward<Ts>(xs)...)
      .receive([&](R& r) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    if (!result)
      throw result.error();
    return result;
  }

  template <class... Ts>
  caf::error ask_void(Ts&&... xs) {
    caf::error result;
    self_->request(store_, detail::timeout_for(store_, self_->node(), args_.timeout),
                   std::forward<Ts>(xs)...)
      .receive([] {}, [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  caf::scoped_actor self_;
  detail::proxy_owner proxy_;
  transactional_storage_actor store_;
  const cli_args& args_;
};

int error_exit(const caf::error& err) {
  // CAF's own errors (a timeout, a dropped connection) mean the node did not
  // answer.
  if (code_of(err) == errc::none)
    return error_exit(make_error(errc::connection_lost,
                                 "no answer from the node: " + render(err)));
  std::cerr << "error: " << render(err) << std::endl;
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  cli_args args;
  try {
    args = parse(argc, argv);
  } catch (const usage_error& e) {
    if (!e.what.empty())
      std::cerr << "error: " << e.what << "\n";
    std::cerr << usage;
    return e.what.empty() ? 0 : 2;
  }
  caf::actor_system_config cfg;
  configure(cfg);
  if (args.tls) {
    configure_tls(cfg);
    cfg.openssl_certificate = args.tls_cert;
    cfg.openssl_key = args.tls_key;
    cfg.openssl_cafile = args.tls_ca;
  }
  caf::actor_system sys{cfg};
  // The command's own error says what went wrong; no log lines besides it.
  set_log_level("error");
  transactional_storage_actor store;
  if (!args.data.empty()) {
    store_options opts;
    opts.data_dir = args.data;
    opts.shards = args.shards;
    opts.log_level = "warning";
    auto s = spawn_store(sys, opts);
    if (!s)
      return error_exit(s.error());
    store = *s;
  } else {
    connect_options co;
    co.timeout = args.connect_timeout.count() > 0 ? args.connect_timeout : args.timeout;
    co.tls = args.tls;
    auto s = connect_store(sys, args.host, *args.port, co);
    if (!s)
      return error_exit(s.error());
    store = *s;
  }
  int rc = 0;
  try {
    rc = session{sys, store, args}.run();
  } catch (const caf::error& err) {
    rc = error_exit(err);
  }
  if (!args.data.empty()) {
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    store = nullptr;
    await_closed(args.data, std::chrono::seconds{15});
  }
  return rc;
}

// strata-cli: talks to a strata node, or opens a data directory itself.
//
//   strata-cli [--host H] --port N [--json] COMMAND [ARGS]     (a running node)
//   strata-cli --data DIR [--shards K] [--json] COMMAND [ARGS] (embedded, no node)
//
// Commands: set [--doc] KEY VALUE, get KEY, del KEY, has KEY, size, clear,
//           keys [--prefix P] [--limit N], scan [--prefix P] [--limit N],
//           nodes, load FILE.jsonl, query PATTERN, count PATTERN,
//           aggregate PIPELINE, explain PATTERN,
//           index create NAME FIELD[:desc|:hash|:text|:spatial]... [--sparse] [--unique] [--wait],
//           index drop NAME, index list,
//           watch PATTERN [--from TOKEN] [--regex] [--where JSON] [--limit N],
//           changes [--from TOKEN] [--limit N].
// Errors exit non-zero with `error: CODE: message` on stderr; `get` of a
// missing key exits 1 with `not found` on stderr.
//
// Values written by `set` are raw text behind strata's value header. `get` and
// `scan` print raw values as they are, typed (document) values as JSON, and
// anything else as {"$bytes": base64}. With --json, keys and raw values that
// are not valid UTF-8 print as {"$bytes": base64} too, so that nothing is lost.
// `--` ends the options: `strata-cli --port N set -- k --v` stores "--v".

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "backends/query.hpp"
#include "strata/client.hpp"
#include "strata/codec.hpp"
#include "strata/document.hpp"
#include "strata/error.hpp"
#include "strata/events.hpp"
#include "strata/serialization.hpp"
#include "strata/store.hpp"
#include "strata/system.hpp"

namespace {

using namespace strata;

const char* usage =
  "usage: strata-cli [--host H] --port N [--json] COMMAND [ARGS]\n"
  "       strata-cli --data DIR [--shards K] [--engine E] [--json] COMMAND [ARGS]\n"
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
  "  info               print each shard: engine, entries, bytes used of its\n"
  "                     limit, directory, the engine's capabilities and\n"
  "                     tuning\n"
  "  set --doc KEY JSON store JSON text as a document (queries see documents)\n"
  "  load FILE          store each line {\"key\": K, \"value\": JSON} of a JSON\n"
  "                     Lines file as a document, in batches, with progress\n"
  "  query PATTERN      print the documents a JSON query pattern finds, in its\n"
  "                     order (docs/queries.md): key TAB value per line\n"
  "  count PATTERN      print how many documents match\n"
  "  aggregate PIPELINE print the result documents of a JSON pipeline\n"
  "  explain PATTERN    print how each shard runs the pattern\n"
  "  index create NAME FIELD[:desc|:hash|:text|:spatial]... [--sparse] [--unique] [--wait]\n"
  "                     create an index (built in the background; --wait shows\n"
  "                     the build's progress until it is ready)\n"
  "  index drop NAME    drop an index\n"
  "  index list         print the indexes: state, progress, entries, bytes,\n"
  "                     hits, misses\n"
  "  watch PATTERN      print the changes of keys matching a glob (user:*) as\n"
  "                     they commit, until interrupted (or --limit N changes),\n"
  "                     then the resume token; --from TOKEN replays from it\n"
  "                     first (or from the oldest retained with --from oldest),\n"
  "                     --regex takes PATTERN as an RE2 regex, --where JSON\n"
  "                     keeps documents a query pattern matches\n"
  "  changes            print the retained changes after --from TOKEN (or\n"
  "                     oldest), at most --limit N commits per shard, then the\n"
  "                     token to continue from\n"
  "options:\n"
  "  --engine E         with --data: the store's engine, lmdb (default),\n"
  "                     memory, sqlite, json or graph (default settings;\n"
  "                     graph takes --graph-url URL, --graph-user U and\n"
  "                     --graph-password P)\n"
  "  --format F         how set --doc and load write documents: document\n"
  "                     (default), json or msgpack\n"
  "  --compression C    and compress them: none (default), gzip, lz4,\n"
  "                     snappy or zstd\n"
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
  std::string engine = "lmdb";
  strata::graph_settings graph;
  bool json = false;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{0}; // 0: `timeout`
  std::string prefix;
  uint64_t limit = 0; // 0: everything
  bool doc = false;
  strata::serialization serialization;
  bool sparse = false;
  bool unique = false;
  bool wait = false;
  bool tls = false;
  std::string from;
  bool regex = false;
  std::string where;
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
    else if (arg == "--engine")
      a.engine = value();
    else if (arg == "--graph-url")
      a.graph.url = value();
    else if (arg == "--graph-user")
      a.graph.username = value();
    else if (arg == "--graph-password")
      a.graph.password = value();
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
    else if (arg == "--doc")
      a.doc = true;
    else if (arg == "--format") {
      auto name = value();
      if (!strata::parse_format(name, a.serialization.format)
          || !strata::holds_document(a.serialization.format)
          || a.serialization.format == strata::value_encoding::protobuf)
        throw usage_error{"--format must be document, json or msgpack, not '" + name + "'"};
    } else if (arg == "--compression") {
      auto name = value();
      if (!strata::parse_compression(name, a.serialization.compression))
        throw usage_error{"--compression must be none, gzip, lz4, snappy or zstd, not '" + name
                          + "'"};
    }
    else if (arg == "--sparse")
      a.sparse = true;
    else if (arg == "--unique")
      a.unique = true;
    else if (arg == "--wait")
      a.wait = true;
    else if (arg == "--prefix")
      a.prefix = value();
    else if (arg == "--from")
      a.from = value();
    else if (arg == "--regex")
      a.regex = true;
    else if (arg == "--where")
      a.where = value();
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
    {"size", 1}, {"clear", 1}, {"keys", 1}, {"scan", 1}, {"nodes", 1}, {"info", 1},
    {"load", 2}, {"query", 2}, {"count", 2}, {"aggregate", 2}, {"explain", 2},
    {"watch", 2}, {"changes", 1},
  };
  if (a.command[0] == "index") {
    auto& c = a.command;
    auto sub = c.size() > 1 ? c[1] : std::string{};
    if ((sub == "create" && c.size() >= 4) || (sub == "drop" && c.size() == 3)
        || (sub == "list" && c.size() == 2))
      return a;
    throw usage_error{"index create NAME FIELD..., index drop NAME or index list"};
  }
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
    opened_value v{value.data(), value.size()};
    if (v.header().encoding == value_encoding::raw) {
      auto text = v.payload();
      return json ? quote(text) : std::string{text};
    }
    return to_json(decode_doc(v));
  } catch (const codec_error&) {
    return to_json(document::bytes(value));
  }
}

class session {
public:
  /// A store on a node is reached through a stand-in that fails a request
  /// at once if the connection goes.
  session(caf::actor_system& sys, observable_storage_actor store, const cli_args& a)
    : self_(sys, true), proxy_(sys, store, a.timeout), store_(proxy_.use(store)), args_(a) {
    // nop
  }

  /// Runs the command; returns the exit code.
  int run() {
    auto& cmd = args_.command;
    auto& name = cmd[0];
    if (name == "set") {
      check(ask_void(atom::set_v, cmd[1],
                     args_.doc ? encode_doc(json_document(cmd[2]), args_.serialization)
                               : encode_raw(cmd[2])));
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
    } else if (name == "info") {
      info();
    } else if (name == "load") {
      return load(cmd[1]);
    } else if (name == "query") {
      query(cmd[1]);
    } else if (name == "count") {
      print(std::to_string(*ask<uint64_t>(atom::count_v, cmd[1])));
    } else if (name == "aggregate") {
      auto result = decode_document(*ask<bytes>(atom::aggregate_v, cmd[1]));
      if (args_.json)
        print(to_json(result));
      else
        for (auto& row : result.as_array())
          print(to_json(row));
    } else if (name == "explain") {
      explain(cmd[1]);
    } else if (name == "index") {
      index(cmd);
    } else if (name == "watch") {
      return watch(cmd[1]);
    } else if (name == "changes") {
      changes();
    } else {
      scan(name == "scan");
    }
    return 0;
  }

private:
  static document json_document(const std::string& text) {
    try {
      return parse_json_document(text);
    } catch (const query_error& e) {
      throw make_error(errc::invalid_value, std::string{"not a JSON value: "} + e.what());
    }
  }

  /// Progress on stderr, redrawn in place on a terminal.
  static void progress(const std::string& what, uint64_t done, uint64_t total) {
    static const bool tty = ::isatty(2) != 0;
    auto pct = total == 0 ? 100 : static_cast<int>(done * 100 / total);
    std::string bar(static_cast<size_t>(pct / 5), '#');
    bar.resize(20, '.');
    std::cerr << (tty ? "\r" : "") << what << " [" << bar << "] " << done << "/" << total
              << (tty ? "" : "\n") << std::flush;
  }

  int load(const std::string& path) {
    std::ifstream in{path};
    if (!in)
      throw make_error(errc::invalid_value, "cannot read " + path);
    in.seekg(0, std::ios::end);
    auto total = static_cast<uint64_t>(in.tellg());
    in.seekg(0);
    std::vector<entry> batch;
    uint64_t loaded = 0;
    uint64_t line_no = 0;
    auto flush = [&] {
      if (batch.empty())
        return;
      check(ask_void(atom::set_many_v, batch));
      loaded += batch.size();
      batch.clear();
      auto at = static_cast<int64_t>(in.tellg());
      progress("loading", at < 0 ? total : static_cast<uint64_t>(at), total);
    };
    std::string line;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos)
        continue;
      document d;
      try {
        d = parse_json_document(line);
      } catch (const query_error& e) {
        flush();
        throw make_error(errc::invalid_value, path + ":" + std::to_string(line_no)
                                                + ": not JSON (" + e.what() + "); "
                                                + std::to_string(loaded)
                                                + " documents were stored before it");
      }
      auto* key = d.is_object() ? d.get("key") : nullptr;
      auto* value = d.is_object() ? d.get("value") : nullptr;
      if (!key || !key->is_string() || !value) {
        flush();
        throw make_error(errc::invalid_value,
                         path + ":" + std::to_string(line_no)
                           + ": a line must be {\"key\": string, \"value\": JSON}; "
                           + std::to_string(loaded) + " documents were stored before it");
      }
      batch.push_back({key->as_string(), encode_doc(*value, args_.serialization)});
      if (batch.size() == 1000)
        flush();
    }
    flush();
    progress("loading", total, total);
    std::cerr << "\n";
    print(args_.json ? "{\"loaded\":" + std::to_string(loaded) + "}"
                     : "loaded " + std::to_string(loaded));
    return 0;
  }

  void query(const std::string& text) {
    query_request req;
    req.pattern = text;
    req.limit = args_.limit > 0 ? static_cast<uint32_t>(std::min<uint64_t>(
                                    args_.limit, limits::max_page_entries))
                                : limits::default_query_page;
    bool first = true;
    if (args_.json)
      std::cout << "[";
    for (;;) {
      auto page = ask<query_page>(atom::query_v, req);
      for (auto& r : page->results) {
        if (args_.json)
          std::cout << (first ? "" : ",") << "{\"key\":" << quote(r.key)
                    << ",\"value\":" << show(r.value, true) << ",\"score\":" << r.score
                    << "}";
        else
          std::cout << r.key << '\t' << show(r.value, false) << '\n';
        first = false;
      }
      if (!page->more)
        break;
      req.continuation = std::move(page->continuation);
    }
    if (args_.json)
      std::cout << "]\n";
    std::cout.flush();
  }

  void explain(const std::string& text) {
    auto plan = ask<query_plan>(atom::explain_v, text);
    if (args_.json) {
      std::cout << "{\"returned\":" << plan->returned << ",\"micros\":" << plan->micros
                << ",\"shards\":[";
      for (size_t i = 0; i < plan->shards.size(); ++i) {
        auto& s = plan->shards[i];
        std::cout << (i ? "," : "") << "{\"shard\":" << s.shard << ",\"plan\":"
                  << quote(s.plan) << ",\"estimated\":" << s.estimated
                  << ",\"examined\":" << s.examined << ",\"returned\":" << s.returned
                  << ",\"micros\":" << s.micros << "}";
      }
      std::cout << "]}\n";
    } else {
      for (auto& s : plan->shards)
        std::cout << "shard " << s.shard << '\t' << s.plan << "\testimated " << s.estimated
                  << "\texamined " << s.examined << "\treturned " << s.returned << '\t'
                  << s.micros << " us\n";
      std::cout << "merged\treturned " << plan->returned << '\t' << plan->micros << " us\n";
    }
    std::cout.flush();
  }

  void index(const std::vector<std::string>& cmd) {
    if (cmd[1] == "create") {
      index_spec spec;
      spec.name = cmd[2];
      spec.sparse = args_.sparse;
      spec.unique = args_.unique;
      for (size_t i = 3; i < cmd.size(); ++i) {
        index_field f;
        auto& text = cmd[i];
        auto colon = text.rfind(':');
        f.name = text.substr(0, colon);
        if (colon != std::string::npos) {
          auto how = text.substr(colon + 1);
          if (how == "desc")
            f.descending = true;
          else if (how == "hash")
            f.type = "hash";
          else if (how == "text")
            f.type = "fulltext";
          else if (how == "spatial")
            f.type = "spatial";
          else if (how != "asc")
            throw make_error(errc::invalid_value,
                             "field " + text + ": the suffix is :asc, :desc, :hash, :text or :spatial");
        }
        spec.fields.push_back(std::move(f));
      }
      check(ask_void(atom::create_index_v, spec));
      while (args_.wait) {
        auto list = ask<std::vector<index_info>>(atom::indexes_v);
        auto i = std::find_if(list->begin(), list->end(),
                              [&](const index_info& x) { return x.spec.name == spec.name; });
        if (i == list->end())
          throw make_error(errc::key_not_found, "index " + spec.name + " went away");
        progress("building " + spec.name, i->built, i->total);
        if (i->state == "ready") {
          std::cerr << "\n";
          break;
        }
        if (i->state == "failed") {
          std::cerr << "\n";
          throw make_error(errc::invalid_value, "index " + spec.name + " failed: " + i->error);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{200});
      }
      print(args_.json ? "{\"ok\":true}" : "OK");
    } else if (cmd[1] == "drop") {
      check(ask_void(atom::drop_index_v, cmd[2]));
      print(args_.json ? "{\"ok\":true}" : "OK");
    } else {
      auto list = ask<std::vector<index_info>>(atom::indexes_v);
      if (args_.json)
        std::cout << "[";
      bool first = true;
      for (auto& x : *list) {
        std::string fields;
        for (auto& f : x.spec.fields)
          fields += (fields.empty() ? "" : ",") + f.name
                    + (f.type == "hash"       ? ":hash"
                       : f.type == "fulltext" ? ":text"
                       : f.type == "spatial"  ? ":spatial"
                       : f.descending         ? ":desc"
                                              : "");
        if (args_.json) {
          std::cout << (first ? "" : ",") << "{\"name\":" << quote(x.spec.name)
                    << ",\"fields\":" << quote(fields) << ",\"sparse\":"
                    << (x.spec.sparse ? "true" : "false") << ",\"unique\":"
                    << (x.spec.unique ? "true" : "false") << ",\"state\":\"" << x.state
                    << "\",\"built\":" << x.built << ",\"total\":" << x.total
                    << ",\"entries\":" << x.entries << ",\"size\":" << x.size
                    << ",\"hits\":" << x.hits << ",\"misses\":" << x.misses;
          if (!x.error.empty())
            std::cout << ",\"error\":" << quote(x.error);
          std::cout << "}";
        } else {
          std::cout << x.spec.name << '\t' << fields << (x.spec.sparse ? "\tsparse" : "") << (x.spec.unique ? "\tunique" : "")
                    << '\t' << x.state << ' ' << x.built << '/' << x.total << "\tentries "
                    << x.entries << "\tbytes " << x.size << "\thits " << x.hits
                    << "\tmisses " << x.misses;
          if (!x.error.empty())
            std::cout << "\t" << x.error;
          std::cout << '\n';
        }
        first = false;
      }
      if (args_.json)
        std::cout << "]\n";
      std::cout.flush();
    }
  }

  void info() {
    auto all = ask<std::vector<shard_info>>(atom::info_v);
    if (args_.json)
      std::cout << "[";
    bool first = true;
    for (auto& s : *all) {
      std::string caps;
      for (auto& c : s.capabilities)
        caps += (caps.empty() ? "" : ",") + (args_.json ? quote(c) : c);
      std::string tuning;
      for (auto& t : s.tuning)
        tuning += (tuning.empty() ? "" : ",") + (args_.json ? quote(t) : t);
      if (args_.json)
        std::cout << (first ? "" : ",") << "{\"shard\":" << s.shard
                  << ",\"engine\":" << quote(s.engine) << ",\"entries\":" << s.entries
                  << ",\"map_size\":" << s.map_size << ",\"map_used\":" << s.map_used
                  << ",\"commits\":" << s.commits << ",\"in_doubt\":" << s.in_doubt
                  << ",\"restarts\":" << s.restarts << ",\"path\":" << quote(s.path)
                  << ",\"capabilities\":[" << caps << "],\"tuning\":[" << tuning << "]}";
      else
        std::cout << "shard " << s.shard << '\t' << s.engine << '\t' << s.entries
                  << " entries\t" << s.map_used << " of " << s.map_size << " bytes\t"
                  << s.path << '\t' << (caps.empty() ? "-" : caps) << '\t'
                  << (tuning.empty() ? "-" : tuning) << '\n';
      first = false;
    }
    if (args_.json)
      std::cout << "]\n";
    std::cout.flush();
  }

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

  /// One change as a line.
  static std::string line_of(const change_batch& b, const change& c, bool json) {
    if (!json) {
      if (c.kind == change_kind::clear)
        return "clear";
      auto line = std::string{to_string(c.kind)} + '\t' + c.key;
      if (c.kind == change_kind::set)
        line += '\t' + show(c.new_value, false);
      return line;
    }
    auto line = std::string{"{\"type\":\""} + to_string(c.kind) + "\",\"key\":" + quote(c.key);
    if (c.kind == change_kind::set)
      line += ",\"value\":" + show(c.new_value, true);
    if (c.had_old)
      line += ",\"old\":" + show(c.old_value, true);
    return line + ",\"shard\":" + std::to_string(b.shard) + ",\"seq\":" + std::to_string(b.seq)
           + ",\"txid\":" + std::to_string(b.txid) + ",\"time\":" + std::to_string(b.time)
           + "}";
  }

  void print_token(const std::string& token) const {
    print(args_.json ? "{\"resume\":" + quote(token) + "}" : "resume " + token);
  }

  change_filter_spec filter(const std::string& pattern) const {
    change_filter_spec f;
    f.pattern = pattern;
    f.regex = args_.regex;
    f.where = args_.where;
    return f;
  }

  void changes() {
    auto limit = static_cast<uint32_t>(std::min<uint64_t>(args_.limit, limits::max_change_page));
    std::vector<change_batch> batches;
    std::string next;
    self_->request(store_, detail::timeout_for(store_, self_->node(), args_.timeout),
                   atom::changes_v, args_.from.empty() ? std::string{"oldest"} : args_.from,
                   limit, filter(""))
      .receive(
        [&](std::vector<change_batch>& bs, std::string& t) {
          batches = std::move(bs);
          next = std::move(t);
        },
        [](caf::error& err) { throw err; });
    for (auto& b : batches)
      for (auto& c : b.changes)
        print(line_of(b, c, args_.json));
    print_token(next);
  }

  /// Prints changes as they commit until a signal, --limit or an error.
  int watch(const std::string& pattern) {
    static std::atomic<bool> stop{false};
    std::signal(SIGINT, [](int) { stop = true; });
    std::signal(SIGTERM, [](int) { stop = true; });
    struct shared_state {
      detail::subscription_state position;
      std::atomic<uint64_t> printed{0};
      std::mutex mtx;
      std::optional<error_event> failed;
    };
    auto st = std::make_shared<shared_state>();
    auto json = args_.json;
    auto who = self_->system().spawn(
      [st, json](event_actor::pointer) -> event_actor::behavior_type {
        return {
          [](atom::before, std::vector<storage_event>&) {},
          [](atom::after, std::vector<storage_event>&) {},
          [st, json](atom::change, std::vector<change_batch>& bs) {
            for (auto& b : bs) {
              for (auto& c : b.changes)
                std::cout << line_of(b, c, json) << '\n';
              st->printed += b.changes.size();
              st->position.advance(b);
            }
            std::cout.flush();
          },
          [st](atom::failed, error_event& e) {
            if (auto t = resume_token::parse(e.position))
              st->position.merge(*t);
            std::lock_guard<std::mutex> guard{st->mtx};
            st->failed = std::move(e);
          },
        };
      });
    // The subscriber ends however this ends (the actor system waits for it).
    struct stopper {
      event_actor who;
      ~stopper() {
        caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
      }
    } stop_who{who};
    watch_options opts;
    opts.filter = filter(pattern);
    opts.from = args_.from;
    if (auto t = resume_token::parse(args_.from))
      st->position.merge(*t);
    auto w = ask<watcher_actor>(atom::watch_v, opts, who);
    self_->request(*w, args_.timeout, atom::info_v)
      .receive(
        [&](watch_info& info) {
          if (auto t = resume_token::parse(info.position))
            st->position.merge(*t);
        },
        [](caf::error& err) { throw err; });
    int rc = 0;
    while (!stop) {
      if (args_.limit > 0 && st->printed >= args_.limit)
        break;
      {
        std::lock_guard<std::mutex> guard{st->mtx};
        if (st->failed) {
          std::cerr << "error: " << render(st->failed->error) << std::endl;
          rc = 1;
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    caf::anon_send(*w, atom::unwatch_v);
    caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
    self_->wait_for(who);
    print_token(st->position.token());
    return rc;
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
  observable_storage_actor store_;
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
  observable_storage_actor store;
  if (!args.data.empty()) {
    store_options opts;
    opts.data_dir = args.data;
    opts.shards = args.shards;
    opts.engine = args.engine;
    opts.graph = args.graph;
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
  } catch (const codec_error& e) {
    rc = error_exit(make_error(errc::serialization_failed, e.what()));
  }
  if (!args.data.empty()) {
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    store = nullptr;
    await_closed(args.data, std::chrono::seconds{15});
  }
  return rc;
}

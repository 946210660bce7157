#include "backends/graph_engine.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <system_error>
#include <thread>

#include <fcntl.h>

#include <rapidjson/document.h>

#include "backends/fault.hpp"
#include "backends/query_exec.hpp"
#include "strata/base64.hpp"
#include "strata/document.hpp"

namespace strata {

namespace {

constexpr const char* marker_file = "strata.graph";
/// Present while a request of this shard's may still be running on the
/// server without anyone waiting for it: from an open until a clean close,
/// and after a lost answer until the graph was seen quiet again.
constexpr const char* unsettled_file = "strata.graph.unsettled";
/// How long a graph must stay unchanged to count as quiet, and how often it
/// is looked at meanwhile.
constexpr auto quiet_for = std::chrono::milliseconds{1000};
constexpr auto look_every = std::chrono::milliseconds{100};
constexpr const char* value_iri = "<urn:strata:value>";
constexpr const char* key_iri = "<urn:strata:key>";
constexpr const char* pending_iri = "<urn:strata:pending>";
constexpr const char* xsd = "http://www.w3.org/2001/XMLSchema#";
/// Rows per page when a graph is read; below Virtuoso's default result limit.
constexpr uint64_t page_rows = 5000;
/// Subjects per VALUES block of a delete, and triples per INSERT DATA: a
/// server's cost per operation grows faster than its size (Virtuoso: 0.07 s
/// to delete 250 subjects, 1.2 s for 2000; its parser fails at some 5000
/// triples in one INSERT DATA).
constexpr size_t values_chunk = 250;
constexpr size_t insert_chunk = 500;
/// Operations per request beyond the first few: a server compiles a request
/// whole, at a cost that also grows faster than its length.
constexpr size_t request_bytes = 64 * 1024;

bool plain_iri_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
         || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == ':' || ch == '@';
}

/// `x` percent-encoded for an IRI: what `plain_iri_char` allows stays.
std::string pct_encode(std::string_view x) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(x.size());
  for (auto ch : x) {
    if (plain_iri_char(ch)) {
      out += ch;
    } else {
      auto c = static_cast<unsigned char>(ch);
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool pct_decode(std::string_view x, std::string& out) {
  auto digit = [](char ch) -> int {
    if (ch >= '0' && ch <= '9')
      return ch - '0';
    if (ch >= 'A' && ch <= 'F')
      return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
      return ch - 'a' + 10;
    return -1;
  };
  out.clear();
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] != '%') {
      out += x[i];
      continue;
    }
    if (i + 2 >= x.size())
      return false;
    auto hi = digit(x[i + 1]);
    auto lo = digit(x[i + 2]);
    if (hi < 0 || lo < 0)
      return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

std::string b64(std::string_view x) {
  std::string out;
  append_base64(out, x);
  return out;
}

/// UTF-8 `text` as a SPARQL string literal: JSON's string escapes are all
/// SPARQL escapes too.
std::string string_literal(std::string_view text) {
  return to_json(document{std::string{text}});
}

std::string typed(std::string_view lexical, const char* type) {
  return "\"" + std::string{lexical} + "\"^^<" + xsd + type + ">";
}

/// A document as an RDF object; empty if RDF cannot hold it.
std::string object_of(const document& x) {
  switch (x.kind()) {
    case doc_kind::boolean:
      return x.as_bool() ? "true" : "false";
    case doc_kind::integer:
      return std::to_string(x.as_int());
    case doc_kind::real: {
      auto r = x.as_real();
      if (std::isnan(r))
        return {};
      if (std::isinf(r))
        return typed(r > 0 ? "INF" : "-INF", "double");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", r);
      return typed(buf, "double");
    }
    case doc_kind::string:
      return is_utf8(x.as_string()) ? string_literal(x.as_string()) : std::string{};
    case doc_kind::bytes: {
      auto& raw = x.as_bytes();
      return typed(b64({reinterpret_cast<const char*>(raw.data()), raw.size()}), "base64Binary");
    }
    case doc_kind::array:
    case doc_kind::object:
      return string_literal(to_json(x)) + "^^<http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON>";
    case doc_kind::null:
      break;
  }
  return {};
}

/// Appends the triples of one entry; returns how many.
size_t append_triples(std::string& out, const std::string& s, keyspace ks, std::string_view key,
                      std::string_view value) {
  size_t n = 1;
  out += s;
  out += ' ';
  out += value_iri;
  out += " \"";
  append_base64(out, value);
  out += "\" .\n";
  if (ks != keyspace::data)
    return n;
  if (is_utf8(key)) {
    out += s + ' ' + key_iri + ' ' + string_literal(key) + " .\n";
    ++n;
  }
  document doc;
  if (!stored_document(value, doc) || !doc.is_object())
    return n;
  for (auto& [name, field] : doc.as_object()) {
    auto p = "<urn:strata:field:" + pct_encode(name) + ">";
    auto one = [&](const document& x) {
      auto o = object_of(x);
      if (!o.empty()) {
        out += s + ' ' + p + ' ' + o + " .\n";
        ++n;
      }
    };
    if (field.is_array()) {
      for (auto& element : field.as_array())
        one(element);
    } else {
      one(field);
    }
  }
  return n;
}

graph_engine::net_group net_of(const std::vector<engine_batch>& group) {
  graph_engine::net_group net;
  for (auto& batch : group)
    for (auto& part : batch.parts) {
      auto& space = net[static_cast<size_t>(part.space)];
      for (auto& op : *part.ops) {
        if (op.kind == op_kind::clear) {
          space.cleared = true;
          space.keys.clear();
        } else if (op.kind == op_kind::set) {
          space.keys[op.key] = std::string{view_of(op.value)};
        } else {
          space.keys[op.key] = std::nullopt;
        }
      }
    }
  return net;
}

void put_u32(std::string& out, size_t x) {
  for (int i = 0; i < 4; ++i)
    out += static_cast<char>((x >> (8 * i)) & 0xff);
}

bool get_u32(std::string_view& in, size_t& x) {
  if (in.size() < 4)
    return false;
  x = 0;
  for (int i = 0; i < 4; ++i)
    x |= size_t{static_cast<unsigned char>(in[i])} << (8 * i);
  in.remove_prefix(4);
  return true;
}

/// The record of a group: per key space its index, whether it was cleared,
/// and each key with its value or none.
std::string journal_of(const graph_engine::net_group& net) {
  std::string out;
  for (size_t s = 0; s < keyspace_count; ++s) {
    auto& space = net[s];
    if (!space.cleared && space.keys.empty())
      continue;
    out += static_cast<char>(s);
    out += static_cast<char>(space.cleared ? 1 : 0);
    put_u32(out, space.keys.size());
    for (auto& [key, value] : space.keys) {
      put_u32(out, key.size());
      out += key;
      out += static_cast<char>(value ? 1 : 0);
      if (value) {
        put_u32(out, value->size());
        out += *value;
      }
    }
  }
  return out;
}

bool net_from_journal(std::string_view in, graph_engine::net_group& net) {
  while (!in.empty()) {
    if (in.size() < 2 || static_cast<size_t>(in[0]) >= keyspace_count)
      return false;
    auto& space = net[static_cast<size_t>(in[0])];
    space.cleared = in[1] != 0;
    in.remove_prefix(2);
    size_t n = 0;
    if (!get_u32(in, n))
      return false;
    for (size_t i = 0; i < n; ++i) {
      size_t len = 0;
      if (!get_u32(in, len) || in.size() < len + 1)
        return false;
      std::string key{in.substr(0, len)};
      auto has = in[len] != 0;
      in.remove_prefix(len + 1);
      if (!has) {
        space.keys[key] = std::nullopt;
        continue;
      }
      if (!get_u32(in, len) || in.size() < len)
        return false;
      space.keys[key] = std::string{in.substr(0, len)};
      in.remove_prefix(len);
    }
  }
  return true;
}

/// The bindings of a SPARQL JSON results document.
const rapidjson::Value& bindings_of(rapidjson::Document& d, const std::string& text) {
  d.Parse(text.data(), text.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("results")
      || !d["results"].IsObject() || !d["results"].HasMember("bindings")
      || !d["results"]["bindings"].IsArray())
    throw sparql_error{sparql_error::kind::refused,
                       "SPARQL server answered something else than JSON results"};
  return d["results"]["bindings"];
}

/// The value of variable `name` in one row; false if it is unbound.
bool binding(const rapidjson::Value& row, const char* name, std::string& out) {
  if (!row.IsObject() || !row.HasMember(name) || !row[name].IsObject()
      || !row[name].HasMember("value") || !row[name]["value"].IsString())
    return false;
  auto& v = row[name]["value"];
  out.assign(v.GetString(), v.GetStringLength());
  return true;
}

storage_error unreachable(const std::string& graph, const sparql_error& e) {
  return storage_error{errc::connection_failed, "cannot open graph <" + graph + ">: " + e.what()};
}

} // namespace

graph_engine::graph_engine(engine_options opts)
  : mirrored_engine(std::move(opts), "graph", std::numeric_limits<uint64_t>::max()) {
  if (auto problem = opts_.graph.problem(); !problem.empty())
    throw storage_error{errc::invalid_value, problem};
  caps_.files = false;
  std::error_code ec;
  std::filesystem::create_directories(opts_.dir, ec);
  graph_ = choose_graph();
  client_ = std::make_unique<sparql_client>(opts_.graph);
  auto unsettled = opts_.dir + "/" + unsettled_file;
  try {
    // A process that died (or lost an answer) may have left a request
    // running on the server: the graph is read once that is over.
    if (std::filesystem::exists(unsettled, ec) && !quiet())
      throw storage_error{errc::consistency_violation,
                          "graph <" + graph_ + "> did not stop changing within "
                            + std::to_string(opts_.graph.timeout_ms)
                            + " ms; is another process writing it?"};
    finish_journal();
    mem_ = load();
  } catch (const sparql_error& e) {
    throw unreachable(graph_, e);
  }
  write_marker(unsettled, "");
  // The directory is a graph shard's from now on.
  auto marker = opts_.dir + "/" + marker_file;
  if (!std::filesystem::exists(marker, ec))
    write_marker(marker, graph_ + "\n");
}

graph_engine::~graph_engine() {
  if (!unsettled_) {
    std::error_code ec;
    std::filesystem::remove(opts_.dir + "/" + unsettled_file, ec);
  }
}

void graph_engine::write_marker(const std::string& path, const std::string& text) const {
  std::ofstream out{path};
  out << text;
  out.close();
  if (!out)
    throw storage_error{errc::connection_failed, "cannot write " + path};
  if (!opts_.no_sync) {
    // Without it a restart could not find its graph, or would not wait.
    sync_path(path, O_RDONLY);
    sync_path(opts_.dir, O_RDONLY | O_DIRECTORY);
  }
}

bool graph_engine::quiet() {
  using clock = std::chrono::steady_clock;
  auto count = [&] {
    return client_->query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH <" + graph_
                          + "> { ?s ?p ?o } }");
  };
  auto deadline = clock::now() + std::chrono::milliseconds{opts_.graph.timeout_ms};
  auto seen = count();
  auto since = clock::now();
  while (clock::now() - since < quiet_for) {
    if (clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(look_every);
    auto now = count();
    if (now != seen) {
      seen = std::move(now);
      since = clock::now();
    }
  }
  unsettled_ = false;
  return true;
}

std::string graph_engine::choose_graph() const {
  auto marker = opts_.dir + "/" + marker_file;
  std::filesystem::path dir{opts_.dir};
  auto name = dir.filename().empty() ? dir.parent_path().filename() : dir.filename();
  auto wanted = opts_.graph.database.empty()
                  ? std::string{}
                  : opts_.graph.database + "/" + pct_encode(name.string());
  std::ifstream in{marker};
  if (in) {
    std::string recorded;
    std::getline(in, recorded);
    if (recorded.empty() || recorded.find_first_of(" <>\"") != std::string::npos)
      throw storage_error{errc::consistency_violation,
                          marker + " does not name a graph; repair or move it away"};
    if (!wanted.empty() && wanted != recorded)
      throw storage_error{errc::consistency_violation,
                          opts_.dir + " holds the shard of graph <" + recorded + ">, not <"
                            + wanted + ">; open it with graph database "
                            + recorded.substr(0, recorded.rfind('/'))};
    return recorded;
  }
  if (!wanted.empty())
    return wanted;
  std::random_device rd;
  char id[40];
  std::snprintf(id, sizeof id, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return "urn:strata:" + std::string{id} + "/" + pct_encode(name.string());
}

std::string graph_engine::subject(keyspace ks, std::string_view key) const {
  return "<" + graph_ + "/" + keyspace_name(ks) + "/" + pct_encode(key) + ">";
}

std::vector<std::string> graph_engine::write_ops(const net_group& net) const {
  auto in_graph = [&](const std::string& patterns) {
    return "GRAPH <" + graph_ + "> { " + patterns + " }";
  };
  std::vector<std::string> out;
  std::vector<std::string> touched;
  std::vector<std::string> inserts{std::string{}};
  size_t in_last = 0;
  for (size_t s = 0; s < keyspace_count; ++s) {
    auto ks = static_cast<keyspace>(s);
    auto& space = net[s];
    if (space.cleared)
      out.push_back("DELETE { " + in_graph("?s ?p ?o") + " } WHERE { "
                    + in_graph("?s ?p ?o FILTER(STRSTARTS(STR(?s), \"" + graph_ + "/"
                               + keyspace_name(ks) + "/\"))")
                    + " }");
    for (auto& [key, value] : space.keys) {
      auto s_iri = subject(ks, key);
      if (!space.cleared)
        touched.push_back(s_iri);
      if (value) {
        if (in_last >= insert_chunk) {
          inserts.emplace_back();
          in_last = 0;
        }
        in_last += append_triples(inserts.back(), s_iri, ks, key, *value);
      }
    }
  }
  for (size_t i = 0; i < touched.size(); i += values_chunk) {
    std::string subjects;
    for (size_t j = i; j < std::min(touched.size(), i + values_chunk); ++j)
      subjects += touched[j] + ' ';
    out.push_back("DELETE { " + in_graph("?s ?p ?o") + " } WHERE { "
                  + in_graph("VALUES ?s { " + subjects + "} ?s ?p ?o") + " }");
  }
  for (auto& triples : inserts)
    if (!triples.empty())
      out.push_back("INSERT DATA { " + in_graph(triples) + " }");
  out.push_back("DELETE WHERE { " + in_graph("<" + graph_ + "/journal> ?p ?o") + " }");
  return out;
}

void graph_engine::send(const std::vector<std::string>& ops, size_t first, bool* first_done) {
  // In order, as few requests as keep each one small.
  std::string request;
  for (size_t i = first; i < ops.size(); ++i) {
    if (!request.empty() && request.size() + ops[i].size() > request_bytes) {
      client_->update(request);
      request.clear();
      if (first_done != nullptr)
        *first_done = true;
    }
    if (!request.empty())
      request += " ;\n";
    request += ops[i];
  }
  if (!request.empty())
    client_->update(request);
  if (first_done != nullptr)
    *first_done = true;
}

void graph_engine::finish_journal() {
  rapidjson::Document d;
  auto text = client_->query("SELECT ?j WHERE { GRAPH <" + graph_ + "> { <" + graph_
                             + "/journal> " + pending_iri + " ?j } }");
  auto& rows = bindings_of(d, text);
  if (rows.Size() == 0)
    return;
  std::string encoded;
  std::string raw;
  net_group net;
  if (rows.Size() != 1 || !binding(rows[0], "j", encoded) || !decode_base64(encoded, raw)
      || !net_from_journal(raw, net))
    throw storage_error{errc::consistency_violation,
                        "graph <" + graph_ + "> holds a damaged record of a group (<" + graph_
                          + "/journal>); repair it with a SPARQL client"};
  send(write_ops(net));
}

std::unique_ptr<memory_engine> graph_engine::load() {
  auto pattern = "GRAPH <" + graph_ + "> { ?s " + value_iri + " ?v";
  rapidjson::Document d;
  std::string n_text;
  auto& counted = bindings_of(d, client_->query("SELECT (COUNT(*) AS ?n) WHERE { " + pattern
                                                 + " } }"));
  uint64_t expected = 0;
  if (counted.Size() == 1 && binding(counted[0], "n", n_text))
    expected = parse_stored_number(n_text, graph_);
  auto corrupt = [&](const std::string& what) {
    return storage_error{errc::consistency_violation, "graph <" + graph_ + "> " + what};
  };
  std::array<std::vector<operation>, keyspace_count> ops;
  uint64_t seen = 0;
  auto prefix = graph_ + "/";
  // Pages after the last subject seen: a server refuses large offsets.
  std::string after;
  while (seen < expected) {
    auto filter = after.empty() ? std::string{}
                                : " FILTER(STR(?s) > " + string_literal(after) + ")";
    auto text = client_->query("SELECT ?s ?v WHERE { " + pattern + filter
                               + " } } ORDER BY STR(?s) LIMIT " + std::to_string(page_rows));
    rapidjson::Document page;
    auto& rows = bindings_of(page, text);
    if (rows.Size() == 0)
      break;
    for (auto& row : rows.GetArray()) {
      std::string s;
      std::string v;
      if (!binding(row, "s", s) || !binding(row, "v", v))
        throw corrupt("answered a row without ?s or ?v");
      if (s.rfind(prefix, 0) != 0)
        throw corrupt("holds <" + s + ">, which is not one of its entries");
      auto rest = std::string_view{s}.substr(prefix.size());
      auto slash = rest.find('/');
      size_t space = 0;
      while (space < keyspace_count
             && rest.substr(0, slash) != keyspace_name(static_cast<keyspace>(space)))
        ++space;
      std::string key;
      std::string value;
      if (slash == std::string_view::npos || space == keyspace_count
          || !pct_decode(rest.substr(slash + 1), key))
        throw corrupt("holds <" + s + ">, which names no key space and key");
      if (!decode_base64(v, value))
        throw corrupt("holds a value of <" + s + "> that is not base64");
      ops[space].push_back(operation::set(std::move(key), bytes_of(value)));
      ++seen;
      after = std::move(s);
    }
  }
  if (seen != expected)
    throw corrupt("gave " + std::to_string(seen) + " of its " + std::to_string(expected)
                  + " entries (did the server cut the results, or did another writer change"
                    " the graph?)");
  return filled(std::move(ops), "graph <" + graph_ + ">");
}

bool graph_engine::holds(const net_group& net) {
  std::vector<std::string> subjects;
  std::map<std::string, const std::optional<std::string>*> wanted;
  for (size_t s = 0; s < keyspace_count; ++s) {
    auto ks = static_cast<keyspace>(s);
    auto& space = net[s];
    if (space.cleared) {
      // Nothing but the group's keys may be left in a cleared space.
      size_t sets = 0;
      for (auto& [key, value] : space.keys)
        sets += value ? 1 : 0;
      rapidjson::Document d;
      auto& rows = bindings_of(
        d, client_->query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH <" + graph_ + "> { ?s "
                          + value_iri + " ?v FILTER(STRSTARTS(STR(?s), \"" + graph_ + "/"
                          + keyspace_name(ks) + "/\")) } }"));
      std::string n;
      if (rows.Size() != 1 || !binding(rows[0], "n", n) || n != std::to_string(sets))
        return false;
    }
    for (auto& [key, value] : space.keys) {
      auto iri = subject(ks, key);
      wanted[iri.substr(1, iri.size() - 2)] = &value;
      subjects.push_back(iri);
    }
  }
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < subjects.size(); i += values_chunk) {
    std::string list;
    for (size_t j = i; j < std::min(subjects.size(), i + values_chunk); ++j)
      list += subjects[j] + ' ';
    rapidjson::Document d;
    auto& rows = bindings_of(d, client_->query("SELECT ?s ?v WHERE { GRAPH <" + graph_
                                               + "> { VALUES ?s { " + list + "} ?s "
                                               + value_iri + " ?v } }"));
    for (auto& row : rows.GetArray()) {
      std::string s;
      std::string v;
      if (binding(row, "s", s) && binding(row, "v", v))
        found[s] = v;
    }
  }
  for (auto& [iri, value] : wanted) {
    auto it = found.find(iri);
    if (!*value ? it != found.end() : it == found.end() || it->second != b64(**value))
      return false;
  }
  return true;
}

apply_result graph_engine::persist(const std::vector<engine_batch>& group, bool) {
  auto failed = [](errc code, std::string message, bool logged) {
    apply_result out;
    out.code = code;
    out.message = std::move(message);
    out.logged = logged;
    return out;
  };
  auto net = net_of(group);
  // The record first: from then on the group is whole on the server or can
  // be made whole from it.
  auto ops = write_ops(net);
  ops.insert(ops.begin(), "INSERT DATA { GRAPH <" + graph_ + "> { <" + graph_ + "/journal> "
                            + pending_iri + " \"" + b64(journal_of(net)) + "\" } }");
  // Whether the first request, the one with the record, was answered.
  bool first_done = false;
  try {
    using kind = sparql_error::kind;
    if (STRATA_FAIL_POINT("graph.unsent"))
      throw sparql_error{kind::lost, "fail point graph.unsent: the request was lost"};
    if (STRATA_FAIL_POINT("graph.cut")) {
      // The server went away after the first operation.
      client_->update(ops.front());
      throw sparql_error{kind::lost, "fail point graph.cut: the request stopped after the record"};
    }
    send(ops, 0, &first_done);
    if (STRATA_FAIL_POINT("graph.lost"))
      throw sparql_error{kind::lost, "fail point graph.lost: the answer was lost"};
  } catch (const sparql_error& e) {
    using kind = sparql_error::kind;
    auto never_sent = e.what_kind() == kind::unreachable || e.what_kind() == kind::unauthorized;
    if (never_sent && !first_done)
      return failed(errc::connection_failed, e.what(), false); // nothing reached the server
    // The server stopped part-way, or its answer was lost: settle what it
    // holds before saying anything.
    try {
      if (STRATA_FAIL_POINT("graph.settle"))
        throw sparql_error{kind::lost, "fail point graph.settle: the server is still away"};
      if (e.what_kind() == kind::lost) {
        // The request may still be running there: look once it is over.
        unsettled_ = true;
        if (!quiet())
          throw sparql_error{kind::lost, "the graph did not stop changing"};
      }
      auto text = client_->query("SELECT ?j WHERE { GRAPH <" + graph_ + "> { <" + graph_
                                + "/journal> " + pending_iri + " ?j } }");
      rapidjson::Document d;
      auto recorded = bindings_of(d, text).Size() > 0;
      if (recorded) {
        send(ops, 1); // the rest of the group, whole
      } else if ((e.what_kind() != kind::lost && !first_done) || !holds(net)) {
        // The record was never written (or the whole group, answer and
        // all, was lost on the way): nothing of the group happened.
        auto code = e.what_kind() == kind::deadlock ? errc::deadlock_detected
                    : e.what_kind() == kind::lost   ? errc::connection_lost
                    : never_sent                    ? errc::connection_failed
                                                    : errc::transaction_aborted;
        return failed(code, e.what(), false);
      }
    } catch (const sparql_error& again) {
      // Unknown until the server is back: a reopen settles it.
      broken_ = std::string{e.what()} + "; then " + again.what()
                + "; the graph engine must be reopened";
      return failed(errc::connection_lost, broken_, true);
    }
  }
  return {};
}

engine_info graph_engine::info() const {
  auto result = mirrored_engine::info();
  result.tuning.push_back("graph=" + graph_);
  result.tuning.push_back("endpoint=" + opts_.graph.url);
  return result;
}

} // namespace strata

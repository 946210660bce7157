#pragma once

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>

/// @file
/// Settings of the storage engines that take some, shared by `store_options`
/// and the engines themselves (no CAF).

namespace strata {

/// The sqlite engine: one SQLite database per shard.
struct sqlite_settings {
  /// The database file in each shard's directory, or ":memory:" (not
  /// durable: a shard's data lives as long as it is open).
  std::string database = "strata.sqlite";
  /// The data's table; the engine's other key spaces get `<table>_<space>`.
  std::string table = "strata";
  /// Write-ahead logging: readers never wait for the writer.
  bool wal = true;
  /// SQLite's foreign key enforcement, for tables of your own in the same
  /// database file.
  bool foreign_keys = false;
  /// Page cache per connection in KiB (0: SQLite's default, 2 MiB).
  uint64_t cache_kib = 0;
  /// Bytes of the database file read through mmap (0: none).
  uint64_t mmap_bytes = 0;

  /// What is wrong with these settings; empty if nothing.
  std::string problem() const {
    auto plain = !table.empty() && table.size() <= 64
                 && !std::isdigit(static_cast<unsigned char>(table[0]));
    for (auto ch : table)
      plain = plain && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
    if (!plain)
      return "sqlite table name '" + table
             + "' must be 1-64 letters, digits and '_', not starting with a digit";
    if (database != ":memory:"
        && (database.empty() || database.find('/') != std::string::npos || database == "."
            || database == ".."))
      return "sqlite database '" + database
             + "' must be a file name (it lives in each shard's directory) or :memory:";
    return {};
  }
};

/// The spec's PerformanceHints: what the store should expect, for the engines
/// to tune themselves by (docs/concepts.md says what each engine does with
/// each hint).
struct performance_hints {
  /// How many entries the store should hold (the spec's expectedSize).
  uint64_t expected_size = 0;
  /// The spec's accessPattern: "" (none), "random", "sequential",
  /// "write-heavy" or "read-heavy".
  std::string access;
  /// Memory per shard for caching data, in bytes (0: the engine's default).
  uint64_t cache_bytes = 0;

  /// What is wrong with these hints; empty if nothing.
  std::string problem() const {
    if (!access.empty() && access != "random" && access != "sequential"
        && access != "write-heavy" && access != "read-heavy")
      return "hints.access must be random, sequential, write-heavy or read-heavy, got '"
             + access + "'";
    return {};
  }
};

/// The json engine: each shard is one JSON document of key -> value.
struct json_settings {
  /// The file in each shard's directory.
  std::string file = "strata.json";
  /// "utf8": text as it is; "ascii": every character beyond ASCII escaped
  /// (\uXXXX), for tools that read only ASCII.
  std::string encoding = "utf8";
  /// Indent the document (one entry per line).
  bool pretty = false;
  /// Write a temporary file, sync it and rename it over the old one, so that
  /// a crash at any moment leaves the old file or the new one. False: write
  /// the file in place (a crash can leave it torn: not durable).
  bool atomic = true;

  /// What is wrong with these settings; empty if nothing.
  std::string problem() const {
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      return "json file '" + file + "' must be a file name (it lives in each shard's directory)";
    if (encoding != "utf8" && encoding != "utf-8" && encoding != "ascii")
      return "json encoding must be utf8 or ascii, got '" + encoding + "'";
    return {};
  }
};

/// The graph engine: each shard is a named graph on a SPARQL 1.1 server
/// (Virtuoso Open Source), reached over HTTP.
struct graph_settings {
  /// The SPARQL endpoint that takes both queries and updates; with a
  /// username, requests authenticate (digest or basic, as the server asks).
  /// Virtuoso: http://HOST:8890/sparql-auth. https:// uses TLS.
  std::string url = "http://127.0.0.1:8890/sparql-auth";
  /// The IRI under which the store's graphs live: a shard's graph is
  /// `<database>/<shard directory name>`. Empty: a fresh random IRI per shard,
  /// recorded in the shard's directory.
  std::string database;
  std::string username;
  std::string password;
  /// TLS (https:// URLs): check the server's certificate (against `ca_file`
  /// if given, else the system's CAs), and present `cert_file`/`key_file`
  /// if the server asks for a client certificate.
  bool tls_verify = true;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  /// How long one request may take, in milliseconds.
  uint64_t timeout_ms = 30000;

  /// What is wrong with these settings; empty if nothing.
  std::string problem() const {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
      return "graph url must start with http:// or https://, got '" + url + "'";
    for (auto ch : database)
      if (static_cast<unsigned char>(ch) <= ' ' || std::string_view{"<>\"{}|^`\\"}.find(ch)
                                                       != std::string_view::npos)
        return "graph database '" + database
               + "' must be an IRI (no spaces, quotes, braces or angle brackets)";
    if (!database.empty() && database.find(':') == std::string::npos)
      return "graph database '" + database + "' must be an absolute IRI, e.g. urn:strata:orders";
    if (cert_file.empty() != key_file.empty())
      return "graph cert_file and key_file go together";
    if (timeout_ms == 0)
      return "graph timeout_ms must be positive";
    return {};
  }
};

} // namespace strata

# Finds strata's dependencies, all from Debian 12 packages. CAF 0.17 and LMDB ship
# no CMake package configuration, so they are found by hand and wrapped in
# namespaced interface targets. Also installed, for strataConfig.cmake.
include_guard(GLOBAL)
find_package(Threads REQUIRED)
find_package(cereal CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(ZLIB REQUIRED)
# SQLite: the sqlite engine, and the peer of the benchmarks.
find_package(SQLite3 REQUIRED)
# libcurl: the graph engine's SPARQL client.
find_package(CURL REQUIRED)

# Serialization: MessagePack (header-only), protobuf, and the compressors.
find_package(Protobuf REQUIRED)
find_path(STRATA_MSGPACK_INCLUDE_DIR msgpack.hpp REQUIRED)
find_path(STRATA_LZ4_INCLUDE_DIR lz4.h REQUIRED)
find_library(STRATA_LZ4_LIBRARY lz4 REQUIRED)
find_path(STRATA_SNAPPY_INCLUDE_DIR snappy.h REQUIRED)
find_library(STRATA_SNAPPY_LIBRARY snappy REQUIRED)
find_path(STRATA_ZSTD_INCLUDE_DIR zstd.h REQUIRED)
find_library(STRATA_ZSTD_LIBRARY zstd REQUIRED)

find_path(STRATA_CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(STRATA_CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(STRATA_CAF_IO_LIBRARY caf_io REQUIRED)
find_library(STRATA_CAF_OPENSSL_LIBRARY caf_openssl REQUIRED)
find_path(STRATA_LMDB_INCLUDE_DIR lmdb.h REQUIRED)
find_library(STRATA_LMDB_LIBRARY lmdb REQUIRED)
# RE2: linear-time regular expressions for queries (a user's pattern cannot
# stall a shard).
find_path(STRATA_RE2_INCLUDE_DIR re2/re2.h REQUIRED)
find_library(STRATA_RE2_LIBRARY re2 REQUIRED)
# The Snowball stemmers, for fulltext indexes.
find_path(STRATA_STEMMER_INCLUDE_DIR libstemmer.h REQUIRED)
find_library(STRATA_STEMMER_LIBRARY stemmer REQUIRED)

if(NOT TARGET strata::caf_core)
  add_library(strata::caf_core INTERFACE IMPORTED)
  set_target_properties(strata::caf_core PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${STRATA_CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${STRATA_CAF_CORE_LIBRARY};Threads::Threads")
  add_library(strata::caf_io INTERFACE IMPORTED)
  set_target_properties(strata::caf_io PROPERTIES
    INTERFACE_LINK_LIBRARIES "${STRATA_CAF_IO_LIBRARY};strata::caf_core")
  add_library(strata::caf_openssl INTERFACE IMPORTED)
  set_target_properties(strata::caf_openssl PROPERTIES
    INTERFACE_LINK_LIBRARIES "${STRATA_CAF_OPENSSL_LIBRARY};strata::caf_io")
  add_library(strata::lmdb INTERFACE IMPORTED)
  set_target_properties(strata::lmdb PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${STRATA_LMDB_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${STRATA_LMDB_LIBRARY}")
  add_library(strata::re2 INTERFACE IMPORTED)
  set_target_properties(strata::re2 PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${STRATA_RE2_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${STRATA_RE2_LIBRARY};Threads::Threads")
  add_library(strata::compression INTERFACE IMPORTED)
  set_target_properties(strata::compression PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES
      "${STRATA_MSGPACK_INCLUDE_DIR};${STRATA_LZ4_INCLUDE_DIR};${STRATA_SNAPPY_INCLUDE_DIR};${STRATA_ZSTD_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES
      "${STRATA_LZ4_LIBRARY};${STRATA_SNAPPY_LIBRARY};${STRATA_ZSTD_LIBRARY};ZLIB::ZLIB")
  add_library(strata::stemmer INTERFACE IMPORTED)
  set_target_properties(strata::stemmer PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${STRATA_STEMMER_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${STRATA_STEMMER_LIBRARY}")
endif()

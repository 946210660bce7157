#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a
# separate project that finds it with find_package(strata).
set -euo pipefail
build=$1
source=$2
flags=()
if [ "${3:-OFF}" = ON ]; then
  flags=(-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined
         -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source/tests/consumer" -B "$tmp/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release "${flags[@]}" \
  >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer" "$tmp/data"

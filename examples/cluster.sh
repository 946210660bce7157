#!/usr/bin/env bash
# Starts three shard nodes on 127.0.0.1 (one shard each, ports picked by the
# OS), runs examples/cluster against them, and stops them again.
#
# Run from the repository root after a build:  examples/cluster.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
addresses=()
for i in 0 1 2; do
  fifo="$work/out$i"
  mkfifo "$fifo"
  "$build/strata-node" --data "$work/node$i" --host 127.0.0.1 --port 0 --shards 3 \
    --host-shards "$i" --log-level warning > "$fifo" &
  pids+=($!)
  read -r line < "$fifo"              # "listening on 127.0.0.1:PORT"
  addresses+=("${line#listening on }")
  echo "shard node $i: ${addresses[$i]}"
done
"$build/examples/cluster" "$work/client" "${addresses[@]}"

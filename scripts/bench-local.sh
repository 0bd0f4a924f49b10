#!/usr/bin/env bash
# Benchmark a fresh loopback cluster of 1 or 3 nodes with cmd/bench.
#
#   scripts/bench-local.sh [-n 1|3] [-- bench flags…]
#   scripts/bench-local.sh -n 3 -- -mode write -clients 64 -duration 20s
#   scripts/bench-local.sh -n 1 -- -mode read -clients 64 -duration 20s -preload 10000
#
# Builds cmd/node and cmd/bench, starts the nodes on 127.0.0.1 (HTTP
# 18081…, Raft 17001…, gossip 17901…) with their data in a temporary
# directory, waits until every node is ready, runs the benchmark against
# every node's HTTP endpoint, then stops the nodes and removes the data.
# NODE_FLAGS adds flags to every node (e.g. NODE_FLAGS="-shards 32").
set -euo pipefail
cd "$(dirname "$0")/.."

n=1
while [[ $# -gt 0 ]]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "usage: $0 [-n 1|3] [-- bench flags…]" >&2; exit 2 ;;
	esac
done
[[ $n == 1 || $n == 3 ]] || { echo "$0: -n must be 1 or 3" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/cairn-node" ./cmd/node
go build -o "$work/cairn-bench" ./cmd/bench

endpoints=()
for i in $(seq 1 "$n"); do
	args=(-node-id "n$i" -data-dir "$work/n$i" -http-addr "127.0.0.1:1808$i"
		-raft-addr "127.0.0.1:1700$i" -gossip-addr "127.0.0.1:1790$i")
	if [[ $n -gt 1 ]]; then
		args+=(-bootstrap-expect "$n")
		[[ $i -gt 1 ]] && args+=(-join 127.0.0.1:17901)
	fi
	# shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
	"$work/cairn-node" "${args[@]}" ${NODE_FLAGS:-} 2>"$work/n$i.log" &
	pids+=($!)
	endpoints+=("http://127.0.0.1:1808$i")
done

for e in "${endpoints[@]}"; do
	for _ in $(seq 1 300); do
		curl -fsS "$e/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "$e/readyz" >/dev/null || { echo "$0: $e never became ready; its log:" >&2; tail -20 "$work"/n*.log >&2; exit 1; }
done

list=$(IFS=,; echo "${endpoints[*]}")
"$work/cairn-bench" -endpoints "$list" "$@"

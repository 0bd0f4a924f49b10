#!/usr/bin/env bash
# Show the cluster's logs: every node's, or those named.
#
#   scripts/cluster-logs.sh              # the last 100 lines of every node
#   scripts/cluster-logs.sh n2           # n2's, all of them, across restarts
#   scripts/cluster-logs.sh -f n1 n3     # follow (any docker-compose logs option works)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

opts=() names=() takes_value=0
for a in "$@"; do
	if ((takes_value)) || [[ $a == -* ]]; then
		opts+=("$a")
		takes_value=0
		[[ $a == --tail ]] && takes_value=1
	else
		names+=("$a")
	fi
done
if ((${#names[@]} == 0)); then
	# Every node: bounded, or it is a wall of text.
	[[ " ${opts[*]} " == *" --tail"* ]] || opts+=(--tail 100)
	compose logs --no-color "${opts[@]}"
else
	for n in "${names[@]}"; do container "$n" >/dev/null; done
	compose logs --no-color "${opts[@]}" "${names[@]}"
fi

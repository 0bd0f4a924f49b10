#!/usr/bin/env bash
# Start the docker-compose cluster and wait until every node is healthy.
#
#   scripts/cluster-up.sh            # n1, n2, n3
#   scripts/cluster-up.sh --scale    # and n4, n5 (compose profile "scale")
#
# Builds the image first if it is missing (scripts/build-image.sh). Waits at
# most CAIRN_UP_TIMEOUT seconds (default 120) for docker's healthcheck —
# the node's own /readyz — to pass on every node; then prints each node's
# HTTP endpoint on this host.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

profile=()
want=(n1 n2 n3)
case ${1:-} in
"") ;;
--scale)
	profile=(--profile scale)
	want+=(n4 n5)
	;;
*) die "usage: ${0##*/} [--scale]" ;;
esac

image=${CAIRN_IMAGE:-cairn:dev}
if ! docker image inspect "$image" >/dev/null 2>&1; then
	echo "cluster-up: no image $image yet; building it"
	scripts/build-image.sh
fi

compose "${profile[@]}" up -d

timeout=${CAIRN_UP_TIMEOUT:-120}
deadline=$((SECONDS + timeout))
last=""
while :; do
	line="" ready=1
	for n in "${want[@]}"; do
		s=$(state "$(container "$n")")
		line+="$n $s · "
		[[ $s == "running healthy" ]] || ready=0
	done
	line=${line% · }
	[[ $line != "$last" ]] && echo "cluster-up: $line"
	last=$line
	((ready)) && break
	if ((SECONDS >= deadline)); then
		echo "cluster-up: not every node is healthy after ${timeout}s; the last lines of their logs:" >&2
		compose logs --tail 15 "${want[@]}" >&2 || true
		exit 1
	fi
	sleep 2
done

for n in "${want[@]}"; do
	echo "cluster-up: $n http://127.0.0.1:$(http_port "$n")"
done

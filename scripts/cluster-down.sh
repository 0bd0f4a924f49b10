#!/usr/bin/env bash
# Stop and remove the docker-compose cluster's containers and network.
#
#   scripts/cluster-down.sh          # the data volumes stay: up again finds it
#   scripts/cluster-down.sh --wipe   # the volumes go too: the next up is a new cluster
#
# The nodes of the "scale" profile (n4, n5) go too.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

args=(down --remove-orphans)
case ${1:-} in
"") ;;
--wipe) args+=(--volumes) ;;
*) die "usage: ${0##*/} [--wipe]" ;;
esac
compose --profile scale "${args[@]}"

#!/usr/bin/env bash
# The chaos suite against the docker-compose cluster, in one command.
#
#   scripts/e2e-docker.sh                          # every scenario (about 8 min)
#   scripts/e2e-docker.sh -run 'TestDockerPause$'  # extra go test arguments
#   CAIRN_E2E_DURATION=60s scripts/e2e-docker.sh   # longer traffic per scenario
#
# Builds the image (scripts/build-image.sh), then runs
# CAIRN_E2E_DOCKER=1 go test -v -timeout 20m -run Docker ./e2e/: nine
# scenarios (seven faults, scale-out, scale-in), each under the register,
# counter, SQL and alarm workloads. Every scenario brings up its own compose
# project (cairn-e2e-<random>) on fresh volumes and removes it; whatever an
# interrupted run leaves behind is removed on exit here, whatever happens.
# The suite needs 127.0.0.1:8081-8085 free (n4 and n5 of the scale profile
# publish 8084 and 8085): a cluster of `docker-compose up` has to be stopped
# first. The alarm webhook listens in the test process on the compose
# network's gateway address (the host's side of the bridge), so that the
# containers reach it and nothing else does.
# CAIRN_E2E_SEED, CAIRN_E2E_SAVE and CAIRN_E2E_ARTIFACTS work as for the
# process suite (e2e/README.md). A scenario that fails leaves its histories
# and node logs in e2e/artifacts/<test>-<timestamp>/, however it fails (a
# verdict, the cluster not coming up, a go test -timeout); when the run
# fails, the `docker logs` of every container it left behind go to
# e2e/artifacts/<project>-<timestamp>/<node>.log before they are removed.
# Each scenario's one-line summary (fault cycles, operations checked per
# workload, verdicts) is printed again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# go test runs in e2e/: a relative CAIRN_E2E_ARTIFACTS is relative to it.
artifacts=${CAIRN_E2E_ARTIFACTS:-artifacts}
[[ $artifacts == /* ]] || artifacts=e2e/$artifacts
summary=$(mktemp "${TMPDIR:-/tmp}/cairn-e2e-summary.XXXXXX")
export CAIRN_E2E_SUMMARY=$summary
failed=1 # until go test says otherwise: an interrupted run failed too

# save_logs PROJECT: the docker logs of each of its containers.
save_logs() {
	local dir id service
	dir=$artifacts/$1-$(date +%Y%m%d-%H%M%S)
	mkdir -p "$dir" || return 0
	docker ps -a --filter "label=com.docker.compose.project=$1" \
		--format '{{.ID}} {{.Label "com.docker.compose.service"}}' |
		while read -r id service; do
			docker logs --timestamps "$id" >"$dir/${service:-$id}.log" 2>&1 || true
		done
	echo "e2e-docker: logs of project $1 saved in $dir"
}

cleanup() {
	local p
	for p in $( (docker ps -a --format '{{.Label "com.docker.compose.project"}}'
		docker network ls --format '{{.Label "com.docker.compose.project"}}'
		docker volume ls --format '{{.Label "com.docker.compose.project"}}') 2>/dev/null |
		grep '^cairn-e2e-' | sort -u); do
		((failed)) && save_logs "$p"
		echo "e2e-docker: removing leftover compose project $p"
		docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f -v >/dev/null
		docker network ls -q --filter "label=com.docker.compose.project=$p" | xargs -r docker network rm >/dev/null
		docker volume ls -q --filter "label=com.docker.compose.project=$p" | xargs -r docker volume rm -f >/dev/null
	done
	if [[ -s $summary ]]; then
		echo "e2e-docker: summary"
		sed 's/^/  /' "$summary"
	fi
	rm -f "$summary"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/build-image.sh
start=$SECONDS
rc=0
CAIRN_E2E_DOCKER=1 go test -v -timeout 20m -run Docker "$@" ./e2e/ || rc=$?
((rc)) || failed=0
echo "e2e-docker: $((SECONDS - start)) s, exit $rc"
exit $rc

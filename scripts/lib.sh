# Shared by the cluster scripts (sourced, not run). They drive the compose
# project of this repository's docker-compose.yml: the same containers that
# `docker-compose up -d` in the repository root made (COMPOSE_PROJECT_NAME,
# if set, is honoured like docker-compose itself does).
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

# The Python docker-compose (v1) and the plugin take the same arguments here.
if command -v docker-compose >/dev/null 2>&1; then
	compose() { docker-compose "$@"; }
elif docker compose version >/dev/null 2>&1; then
	compose() { docker compose "$@"; }
else
	echo "${0##*/}: neither docker-compose nor the docker compose plugin is installed" >&2
	exit 1
fi

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# The compose project: as docker-compose names it, from COMPOSE_PROJECT_NAME
# or the directory's name, lower case, without other characters than
# a-z 0-9 _ -. Containers are found by its labels with plain docker, which
# answers in milliseconds where each docker-compose call takes seconds.
PROJECT=${COMPOSE_PROJECT_NAME:-$(basename "$PWD")}
PROJECT=$(tr 'A-Z' 'a-z' <<<"$PROJECT" | tr -cd 'a-z0-9_-')

# container NODE: the id of NODE's container (running or not), or fails.
container() {
	local id
	id=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
		--filter "label=com.docker.compose.service=$1")
	[[ -n $id ]] || die "no container for node '$1' in project $PROJECT (is the cluster up? scripts/cluster-up.sh)"
	echo "${id%%$'\n'*}"
}

# nodes: every node that has a container, in order (n1 n2 n3 [n4 n5]).
nodes() {
	docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
		--format '{{.Label "com.docker.compose.service"}}' | sort -uV
}

# state ID: running, paused, exited, … and, while it runs, its health:
# "running healthy", "running starting", "paused", "exited".
state() {
	docker inspect -f '{{.State.Status}}{{if and .State.Running .State.Health}} {{.State.Health.Status}}{{end}}' "$1"
}

# network: the name of the project's cluster network (service key "cairn").
network() {
	local name
	name=$(docker network ls --filter "label=com.docker.compose.project=$PROJECT" \
		--filter "label=com.docker.compose.network=cairn" --format '{{.Name}}')
	[[ -n $name ]] || die "no network 'cairn' of project $PROJECT"
	echo "$name"
}

# advertised ID: the node's static IP, the value of its -advertise-addr
# (read from its arguments, so it is known while it is disconnected too).
advertised() {
	docker inspect -f '{{json .Args}}' "$1" | python3 -c '
import json, sys
a = json.load(sys.stdin)
print(a[a.index("-advertise-addr") + 1])'
}

# http_port NODE: the host port NODE's HTTP API is published on.
http_port() {
	local c port
	c=$(container "$1")
	port=$(docker inspect -f '{{range $p, $b := .HostConfig.PortBindings}}{{if eq $p "8080/tcp"}}{{(index $b 0).HostPort}}{{end}}{{end}}' "$c")
	echo "$port"
}

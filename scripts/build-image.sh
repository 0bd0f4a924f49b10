#!/usr/bin/env bash
# Build the Cairn node image (FROM scratch + a static binary built here).
#
#   scripts/build-image.sh                       # -> cairn:dev
#   CAIRN_IMAGE=cairn:test scripts/build-image.sh
#
# Nothing is pulled: the binary is built on this machine with CGO_ENABLED=0
# for the Docker engine's architecture and copied into a temporary build
# context together with the Dockerfile, an empty data/ (the volume's mount
# point, owned by the image's non-root user) and the host's CA bundle.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${CAIRN_IMAGE:-cairn:dev}
arch=$(docker version --format '{{.Server.Arch}}' 2>/dev/null) || {
	echo "build-image: the Docker engine does not answer (is dockerd running?)" >&2
	exit 1
}

ctx=$(mktemp -d "${TMPDIR:-/tmp}/cairn-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT

echo "build-image: go build ./cmd/node (linux/$arch, static)"
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -o "$ctx/cairn" ./cmd/node
mkdir "$ctx/data"
cp Dockerfile .dockerignore "$ctx/"
if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
	cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
else
	: >"$ctx/ca-certificates.crt" # no bundle here: https webhooks will not verify
fi

# Without the buildx plugin a recent docker CLI would refuse BuildKit; the
# classic builder does all this Dockerfile needs.
if ! docker buildx version >/dev/null 2>&1; then
	export DOCKER_BUILDKIT=0
fi
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "build-image: docker build -t $image"
# The classic builder's deprecation notice is noise here; any other output
# is shown when the build fails.
if ! out=$(docker build --quiet \
	--label org.opencontainers.image.title=cairn \
	--label org.opencontainers.image.revision="$revision" \
	-t "$image" "$ctx" 2>&1); then
	echo "$out" >&2
	exit 1
fi
docker image ls "$image" --format 'build-image: {{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}'

# Cairn node image: the static binary and nothing else.
#
# No base image can be pulled where Cairn is built, so the image is FROM
# scratch and the binary is built on the host with CGO_ENABLED=0. The build
# context is not the repository: scripts/build-image.sh assembles it in a
# temporary directory:
#
#   cairn                  the static binary (go build -trimpath ./cmd/node)
#   data/                  an empty directory: the mount point of the volume
#   ca-certificates.crt    the host's CA bundle (alarm webhooks over https)
#
#   scripts/build-image.sh                 # builds cairn:dev ($CAIRN_IMAGE)
#   docker run --rm cairn:dev -h           # every flag
#
# Every flag is also an environment variable CAIRN_<NAME>. A container must
# be told the address its peers reach it on (-advertise-addr, an IP: gossip
# needs one), and -allow-unauthenticated or -tokens-file since it serves
# HTTP on all interfaces; docker-compose.yml shows a three-node cluster.
FROM scratch

COPY cairn /cairn
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# A fresh named volume takes the owner of the image's directory, so the
# non-root user can write /data; /tmp for the few temporary files.
COPY --chown=65532:65532 data/ /data/
COPY --chown=65532:65532 data/ /tmp/

ENV CAIRN_DATA_DIR=/data \
    CAIRN_HTTP_ADDR=0.0.0.0:8080 \
    CAIRN_RAFT_ADDR=0.0.0.0:7000 \
    CAIRN_GOSSIP_ADDR=0.0.0.0:7946 \
    TMPDIR=/tmp

USER 65532:65532
VOLUME /data
# HTTP API, Raft (every shard shares the port), gossip (memberlist: TCP and UDP).
EXPOSE 8080/tcp 7000/tcp 7946/tcp 7946/udp

# The image has no shell and no curl: the binary asks its own /readyz
# (200 once every shard this node holds has a leader). It dials loopback
# explicitly rather than CAIRN_HTTP_ADDR's 0.0.0.0; change it along with
# the port if -http-addr moves.
HEALTHCHECK --interval=5s --timeout=4s --start-period=60s --retries=3 \
    CMD ["/cairn", "healthcheck", "-http-addr", "127.0.0.1:8080", "-timeout", "3s"]

ENTRYPOINT ["/cairn"]

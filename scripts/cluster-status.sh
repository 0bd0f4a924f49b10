#!/usr/bin/env bash
# The cluster as its nodes see it: GET /v1/cluster, rendered as two tables
# (nodes, shards), with each container's docker state beside its node.
# Gossip takes a few seconds to declare a killed or paused node dead; until
# then the node and the shards it led are marked with * when its container
# is not running.
#
#   scripts/cluster-status.sh                          # asks the first node that answers
#   scripts/cluster-status.sh http://127.0.0.1:8082    # asks this one
#   scripts/cluster-status.sh --json                   # the raw answer
#
# Needs curl and python3 (no jq).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

raw=0 urls=()
for a in "$@"; do
	case $a in
	--json) raw=1 ;;
	http://* | https://*) urls+=("${a%/}") ;;
	*) die "usage: ${0##*/} [--json] [http://host:port]" ;;
	esac
done

# The containers' states, "n1=running healthy;n2=exited;…", and their ports.
states=""
if ((${#urls[@]} == 0)); then
	for n in $(nodes); do
		c=$(container "$n")
		states+="$n=$(state "$c");"
		urls+=("http://127.0.0.1:$(http_port "$n")")
	done
	((${#urls[@]})) || urls=(http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083)
fi

body="" from=""
for u in "${urls[@]}"; do
	if body=$(curl -fsS --max-time 3 "$u/v1/cluster" 2>/dev/null); then
		from=$u
		break
	fi
done
[[ -n $from ]] || die "no node answered GET /v1/cluster (tried ${urls[*]})"
if ((raw)); then
	echo "$body"
	exit 0
fi

CAIRN_STATES=$states CAIRN_FROM=$from python3 -c '
import json, os, signal, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)

d = json.load(sys.stdin)
states = dict(kv.split("=", 1) for kv in os.environ["CAIRN_STATES"].split(";") if kv)

def table(head, rows):
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for r in [head] + rows:
        print("  ".join(str(x).ljust(n) for x, n in zip(r, w)).rstrip())

print("cluster as seen by %s\n" % os.environ["CAIRN_FROM"])
# Gossip still calls a node alive for a few seconds after its container
# stopped; so do the shards it led. Mark both.
down = {k for k, v in states.items() if not v.startswith("running")}
rows = []
stale = False
for n in d.get("nodes", []):
    member = n.get("state", "")
    if n["id"] in down and member == "alive":
        member, stale = member + "*", True
    rows.append([n["id"], member, states.get(n["id"], "-"), n.get("httpAddr", ""),
                 n.get("raftAddr", ""), n.get("gossipAddr", ""), n.get("shardsHeld", ""), n.get("shardsLed", "")])
table(["NODE", "MEMBER", "CONTAINER", "HTTP", "RAFT", "GOSSIP", "HELD", "LED"], rows)
print()
rows = []
shards = d.get("shards", [])
for s in shards:
    leader = s.get("leader") or "(none)"
    if leader in down:
        leader, stale = leader + "*", True
    rows.append([s["id"], leader, ",".join(s.get("voters") or []) or "-",
                 ",".join(s.get("nonVoters") or []) or "-", s.get("appliedIndex", "")])
table(["SHARD", "LEADER", "VOTERS", "NON-VOTERS", "APPLIED"], rows)
if stale:
    print("\n* its container is not running: gossip declares the node dead, and its shards elect\n"
          "  new leaders, within a few seconds; run this again then")
leaderless = [str(s["id"]) for s in shards if not s.get("leader") or s["leader"] in down]
print("\n%d nodes, %d shards, %s" % (len(d.get("nodes", [])), len(shards),
      "every shard has a leader" if not leaderless else "NO LEADER: shard " + ", ".join(leaderless)))
' <<<"$body"

#!/usr/bin/env bash
# Hurt the docker-compose cluster's nodes by hand and undo it.
#
#   scripts/chaos.sh kill n2          # SIGKILL (docker kill -s KILL): stays down
#   scripts/chaos.sh restart n2       # back: starts a killed or stopped node,
#                                     # restarts a running one cleanly (SIGTERM)
#   scripts/chaos.sh crash n2         # SIGKILL from the host's view of the
#                                     # process: docker's restart policy brings it back
#   scripts/chaos.sh stop n2          # clean stop (SIGTERM: leaderships handed over)
#   scripts/chaos.sh start n2
#   scripts/chaos.sh pause n3         # freeze (cgroup freezer), unpause to thaw
#   scripts/chaos.sh unpause n3
#   scripts/chaos.sh isolate n1       # disconnect from the cluster network
#   scripts/chaos.sh heal n1          # reconnect, same static IP (heal alone: every node)
#   scripts/chaos.sh partition n1     # the nodes named (a minority) against the rest
#   scripts/chaos.sh heal
#
# A node may be "all" (every node that has a container).
#
# Why kill needs restart: docker counts `docker kill` as a manual stop, so
# `restart: unless-stopped` leaves the container down (checked on Docker
# 20.10); a process that dies on its own — crash — is restarted by the
# policy within a second.
#
# isolate and partition disconnect the node from the cluster network, so
# it is also cut from this host: its published port (127.0.0.1:808N) does
# not answer until heal, which reconnects it with its static IP and gets the
# port back. A partitioned minority of two (in five) is two isolated nodes,
# not a pair that still talk to each other: with docker networks alone a
# node is on the network or not. For quorum it makes no difference — a
# minority cannot elect a leader either way.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit "${1:-2}"
}
(($# >= 1)) || usage
action=$1
shift
case $action in
kill | crash | stop | start | restart | pause | unpause | isolate | partition) (($# >= 1)) || usage ;;
heal) ;;
-h | --help | help) usage 0 ;;
*) echo "chaos: unknown action '$action'" >&2 && usage ;;
esac

targets=()
for n in "$@"; do
	if [[ $n == all ]]; then
		mapfile -t targets < <(nodes)
	else
		container "$n" >/dev/null
		targets+=("$n")
	fi
done

# connected ID NETWORK: whether the container is attached to the network.
connected() {
	[[ -n $(docker inspect -f "{{with index .NetworkSettings.Networks \"$2\"}}yes{{end}}" "$1") ]]
}

# unfreeze ID: a frozen process cannot act on SIGTERM; thaw it first.
unfreeze() {
	[[ $(docker inspect -f '{{.State.Paused}}' "$1") == true ]] && docker unpause "$1" >/dev/null
	return 0
}

disconnect() {
	local n=$1 c net
	c=$(container "$n")
	net=$(network)
	if connected "$c" "$net"; then
		docker network disconnect "$net" "$c"
		echo "chaos: $n disconnected from $net (unreachable from its peers, and from this host until heal)"
	else
		echo "chaos: $n is already disconnected"
	fi
}

heal() {
	local n=$1 c net ip
	c=$(container "$n")
	net=$(network)
	if connected "$c" "$net"; then
		return 0
	fi
	ip=$(advertised "$c")
	docker network connect --ip "$ip" --alias "$n" "$net" "$c"
	echo "chaos: $n reconnected to $net as $ip"
}

case $action in
kill)
	for n in "${targets[@]}"; do
		docker kill -s KILL "$(container "$n")" >/dev/null
		echo "chaos: $n killed (SIGKILL); docker's restart policy leaves a killed container down: bring it back with scripts/chaos.sh restart $n"
	done
	;;
crash)
	for n in "${targets[@]}"; do
		c=$(container "$n")
		pid=$(docker inspect -f '{{.State.Pid}}' "$c")
		((pid > 0)) || die "$n is not running"
		kill -KILL "$pid" 2>/dev/null || die "cannot signal $n's process $pid from here (needs root on the Docker host; use kill)"
		echo "chaos: $n's process $pid killed (SIGKILL from the host); restart: unless-stopped starts it again"
	done
	;;
stop)
	for n in "${targets[@]}"; do
		c=$(container "$n")
		unfreeze "$c"
		docker stop -t 15 "$c" >/dev/null
		echo "chaos: $n stopped cleanly"
	done
	;;
start)
	for n in "${targets[@]}"; do
		docker start "$(container "$n")" >/dev/null
		echo "chaos: $n started"
	done
	;;
restart)
	# Every target at once: "restart all" is a whole-cluster restart.
	pids=()
	for n in "${targets[@]}"; do
		c=$(container "$n")
		unfreeze "$c"
		if [[ $(docker inspect -f '{{.State.Running}}' "$c") == true ]]; then
			(docker restart -t 15 "$c" >/dev/null && echo "chaos: $n restarted (SIGTERM, then started again)") &
		else
			(docker start "$c" >/dev/null && echo "chaos: $n started") &
		fi
		pids+=($!)
	done
	rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	exit $rc
	;;
pause)
	for n in "${targets[@]}"; do
		docker pause "$(container "$n")" >/dev/null
		echo "chaos: $n paused (frozen); scripts/chaos.sh unpause $n"
	done
	;;
unpause)
	for n in "${targets[@]}"; do
		docker unpause "$(container "$n")" >/dev/null
		echo "chaos: $n unpaused"
	done
	;;
isolate)
	for n in "${targets[@]}"; do disconnect "$n"; done
	;;
partition)
	mapfile -t everyone < <(nodes)
	majority=()
	for n in "${everyone[@]}"; do
		[[ " ${targets[*]} " == *" $n "* ]] || majority+=("$n")
	done
	if ((2 * ${#targets[@]} >= ${#everyone[@]})); then
		echo "chaos: warning: ${targets[*]} is not a minority of ${#everyone[@]} nodes; each is cut off alone, so no side keeps a quorum" >&2
	fi
	for n in "${targets[@]}"; do disconnect "$n"; done
	echo "chaos: partition: minority {${targets[*]}} | majority {${majority[*]}}; undo with scripts/chaos.sh heal"
	;;
heal)
	((${#targets[@]})) || mapfile -t targets < <(nodes)
	for n in "${targets[@]}"; do heal "$n"; done
	echo "chaos: healed ${targets[*]}"
	;;
esac

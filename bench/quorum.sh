#!/usr/bin/env bash
# What quorum queues cost and give, on this machine: a node of its own and
# a three-node cluster (separate processes, loopback), then
#   - throughput: warren-perf, 1 producer and 1 consumer, 1 KiB messages
#     with confirms (-c 100), -qa x-queue-type=quorum, for DURATION seconds:
#     on the node alone, and in the cluster with both clients on the
#     queue's leader;
#   - idle cost: QUEUES idle quorum queues on the cluster, each node's CPU
#     over IDLE seconds and its goroutines (proc_used in /api/nodes).
# Then, when rabbitmq-server is installed, the same throughput runs (same
# warren-perf command lines, same summary) against RabbitMQ's quorum queues,
# once Warren's nodes are stopped: a private RabbitMQ node alone (AMQP port
# 5830), then a private three-node RabbitMQ cluster (AMQP 5831-5833,
# distribution 25830-25833) with both clients on the queue's leader. Every
# RabbitMQ node is stopped and its state removed on exit, whatever happens
# (see bench/rabbitmq-cluster.sh; root or sudo is needed). The RabbitMQ part
# adds about a minute to the runs themselves (nodes boot one after another).
#
#   BIN  warren binary (default: built from ./cmd/warren)
#   QUEUES default 1000;  IDLE default 20;  DURATION default 15
#   NO_RABBITMQ=1   Warren only, even when RabbitMQ is installed
#   SKIP_WARREN=1   RabbitMQ only (Warren is neither built nor run)
set -euo pipefail

QUEUES=${QUEUES:-1000}
IDLE=${IDLE:-20}
DURATION=${DURATION:-15}
skip_warren=0
[[ ${SKIP_WARREN:-} == 1 ]] && skip_warren=1
rabbit=0
if [[ ${NO_RABBITMQ:-} != 1 ]] && command -v rabbitmq-server >/dev/null && command -v rabbitmqctl >/dev/null; then
	rabbit=1
fi
if ((skip_warren && !rabbit)); then
	echo "SKIP_WARREN=1 but no RabbitMQ to run (NO_RABBITMQ=1, or rabbitmq-server is not installed)" >&2
	exit 2
fi
((skip_warren)) && BIN=${BIN:-/nonexistent} # lib.sh builds only what is missing
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=bench/rabbitmq-cluster.sh
source "$here/rabbitmq-cluster.sh"
# On exit, the RabbitMQ nodes too, then what lib.sh's trap does; errors in
# the trap do not cut it short.
eval "set -- $(trap -p EXIT)"
# shellcheck disable=SC2064 # lib.sh's trap command, as it is now
trap "set +e; rabbit_stop_all; $3" EXIT

# summary FILE: warren-perf's totals and latencies, from its last lines.
summary() {
	echo "$(grep -o 'receiving rate avg: [0-9]* msg/s' "$1" | tail -1);" \
		"$(grep -o 'consumer latency min.*µs' "$1" | tail -1);" \
		"$(grep -o 'sent: [0-9]*, confirmed: [0-9]*.*received: [0-9]*' "$1" | tail -1)"
}
# run_perf NAME PORT: the run of every scenario, against 127.0.0.1:PORT, its
# output in $work/NAME.
run_perf() {
	"$PERF" -h "amqp://guest:guest@127.0.0.1:$2/" -x 1 -y 1 -u perf-q -qa x-queue-type=quorum -ad false \
		-s 1024 -f persistent -c 100 -z "$DURATION" >"$work/$1" 2>&1
}
# declare_queue PORT: declares the quorum queue perf-q on the node at PORT, as
# warren-perf would.
declare_queue() {
	/usr/bin/python3 -c "
import pika
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', $1))
c.channel().queue_declare('perf-q', durable=True, arguments={'x-queue-type': 'quorum'})
"
}
# leader PORT QUEUE: the AMQP port of the node that leads QUEUE, asked on
# the node whose management port is 1PORT.
leader() {
	curl -s -u guest:guest "http://127.0.0.1:1$1/api/queues/%2F/$2" |
		/usr/bin/python3 -c 'import json,sys; print(5820 + int(json.load(sys.stdin)["leader"][-1]))'
}

if ((!skip_warren)); then
	echo "== 1 KiB, confirms, quorum queue, 1 producer 1 consumer, $DURATION s"
	start_nodes 582 q
	run_perf alone 5820
	echo "alone:   $(summary "$work/alone")"
	declare_queue 5821
	sleep 3 # its first election
	run_perf cluster "$(leader 5821 perf-q)"
	echo "cluster: $(summary "$work/cluster")"

	echo "== $QUEUES idle quorum queues on the cluster, idle for $IDLE s"
	/usr/bin/python3 - "$QUEUES" <<'PY'
import sys, pika
n = int(sys.argv[1])
chans = [pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', p)).channel() for p in (5821, 5822, 5823)]
for i in range(n):
    chans[i % 3].queue_declare('idle-%d' % i, durable=True, arguments={'x-queue-type': 'quorum'})
PY
	sleep 5 # elections settle
	ticks=$(getconf CLK_TCK)
	declare -A before
	for p in "${pids[@]}"; do before[$p]=$(awk '{print $14+$15}' "/proc/$p/stat"); done
	sleep "$IDLE"
	for i in 1 2 3; do
		p=${pids[$i]}
		after=$(awk '{print $14+$15}' "/proc/$p/stat")
		gor=$(curl -s -u guest:guest "http://127.0.0.1:1582$i/api/nodes" |
			/usr/bin/python3 -c 'import json,sys; print([n for n in json.load(sys.stdin) if n["name"] == "warren@q'$i'"][0]["proc_used"])')
		rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$p/status")
		printf 'cluster node %s  CPU %s%% of a core, %s goroutines, %s MiB resident\n' "$i" \
			"$(echo "scale=2; ($after-${before[$p]})*100/$ticks/$IDLE" | bc)" "$gor" "$rss"
	done
	# Warren's nodes go before RabbitMQ's come: two brokers on two cores would
	# measure each other.
	kill "${pids[@]}"
	wait "${pids[@]}" 2>/dev/null || true
	pids=()
fi

((rabbit)) || exit 0
# RabbitMQ alone: a node of its own, warren-perf declares the queue.
rabbit_start "rq$$-0" 5830 25830
echo "== RabbitMQ $(rabbit_ctl "rq$$-0" eval 'rabbit_misc:version().' | tr -d '"'), the same runs:" \
	"1 KiB, confirms, quorum queue, 1 producer 1 consumer, $DURATION s"
run_perf rabbit-alone 5830
echo "rabbitmq alone:   $(summary "$work/rabbit-alone")"
rabbit_stop "rq$$-0"
# A RabbitMQ cluster of three, joined one node after another; the queue is
# declared on the first node, both clients go to its leader.
for i in 1 2 3; do
	rabbit_start "rq$$-$i" "583$i" "2583$i"
	((i == 1)) || rabbit_join "rq$$-$i" "rq$$-1"
done
declare_queue 5831
port=""
for _ in $(seq 30); do # its leader, once elected
	lead=$(rabbit_ctl "rq$$-1" list_queues name leader --no-table-headers | awk '$1 == "perf-q" {print $2}') || true
	[[ $lead == ?*@* ]] && port=${rabbit_amqp[${lead%@*}]:-}
	[[ -n $port ]] && break
	sleep 1
done
[[ -n $port ]] || { echo "the RabbitMQ cluster elected no leader for perf-q in 30 s" >&2; exit 1; }
run_perf rabbit-cluster "$port"
echo "rabbitmq cluster: $(summary "$work/rabbit-cluster")"

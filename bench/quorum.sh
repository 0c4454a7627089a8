#!/usr/bin/env bash
# What quorum queues cost and give, on this machine: a node of its own and
# a three-node cluster (separate processes, loopback), then
#   - throughput: warren-perf, 1 producer and 1 consumer, 1 KiB messages
#     with confirms (-c 100), -qa x-queue-type=quorum, for DURATION seconds:
#     on the node alone, and in the cluster with both clients on the
#     queue's leader;
#   - idle cost: QUEUES idle quorum queues on the cluster, each node's CPU
#     over IDLE seconds and its goroutines (proc_used in /api/nodes).
#
#   BIN  warren binary (default: built from ./cmd/warren)
#   QUEUES default 1000;  IDLE default 20;  DURATION default 15
set -euo pipefail

QUEUES=${QUEUES:-1000}
IDLE=${IDLE:-20}
DURATION=${DURATION:-15}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

start_nodes 582 q

# summary FILE: warren-perf's totals and latencies, from its last lines.
summary() {
	echo "$(grep -o 'receiving rate avg: [0-9]* msg/s' "$1" | tail -1);" \
		"$(grep -o 'consumer latency min.*µs' "$1" | tail -1);" \
		"$(grep -o 'sent: [0-9]*, confirmed: [0-9]*.*received: [0-9]*' "$1" | tail -1)"
}
# leader PORT QUEUE: the AMQP port of the node that leads QUEUE, asked on
# the node whose management port is 1PORT.
leader() {
	curl -s -u guest:guest "http://127.0.0.1:1$1/api/queues/%2F/$2" |
		/usr/bin/python3 -c 'import json,sys; print(5820 + int(json.load(sys.stdin)["leader"][-1]))'
}

echo "== 1 KiB, confirms, quorum queue, 1 producer 1 consumer, $DURATION s"
qa=x-queue-type=quorum
"$PERF" -h amqp://guest:guest@127.0.0.1:5820/ -x 1 -y 1 -u perf-q -qa "$qa" -ad false -s 1024 -f persistent -c 100 -z "$DURATION" >"$work/alone" 2>&1
echo "alone:   $(summary "$work/alone")"
/usr/bin/python3 -c "
import pika
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', 5821))
c.channel().queue_declare('perf-q', durable=True, arguments={'x-queue-type': 'quorum'})
"
sleep 3 # its first election
port=$(leader 5821 perf-q)
"$PERF" -h "amqp://guest:guest@127.0.0.1:$port/" -x 1 -y 1 -u perf-q -qa "$qa" -ad false -s 1024 -f persistent -c 100 -z "$DURATION" >"$work/cluster" 2>&1
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

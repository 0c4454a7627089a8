#!/usr/bin/env bash
# What clustering costs, on this machine: it starts a node of its own and a
# three-node cluster (separate processes, loopback), then measures
#   - declare latency: DECLARES sequential durable queue.declare calls from
#     one pika client, alone and on each cluster node (median, p99, max);
#   - idle cost: each process's CPU over IDLE seconds with no clients, and
#     its goroutines (proc_used in /api/nodes);
#   - forwarding: 1 KiB persistent messages with confirms for DURATION
#     seconds, the queue on node 1, the publisher on node 3, the consumer on
#     node 2, against all three on the node of its own.
#
#   BIN  warren binary (default: built from ./cmd/warren)
#   DECLARES default 300;  IDLE default 20;  DURATION default 15
set -euo pipefail

DECLARES=${DECLARES:-300}
IDLE=${IDLE:-20}
DURATION=${DURATION:-15}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

start_nodes 581 n

echo "== declare latency ($DECLARES durable queues, one after another)"
for p in 5810 5811 5812 5813; do
	/usr/bin/python3 - "$p" "$DECLARES" <<'PY'
import sys, time, pika
port, n = int(sys.argv[1]), int(sys.argv[2])
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', port))
ch = c.channel()
lat = []
for i in range(n):
    t = time.perf_counter()
    ch.queue_declare('latency-%d' % i, durable=True)
    lat.append((time.perf_counter() - t) * 1000)
for i in range(n):
    ch.queue_delete('latency-%d' % i)
lat.sort()
who = 'alone' if port == 5810 else 'cluster node %d' % (port - 5810)
print('%-15s median %.2f ms  p99 %.2f ms  max %.2f ms' % (who, lat[n // 2], lat[int(n * 0.99)], lat[-1]))
PY
done

echo "== idle for $IDLE s"
ticks=$(getconf CLK_TCK)
declare -A before
for p in "${pids[@]}"; do before[$p]=$(awk '{print $14+$15}' "/proc/$p/stat"); done
sleep "$IDLE"
for i in "${!pids[@]}"; do
	p=${pids[$i]}
	after=$(awk '{print $14+$15}' "/proc/$p/stat")
	gor=$(curl -s -u guest:guest "http://127.0.0.1:1581$i/api/nodes" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["proc_used"])')
	who=$([[ $i == 0 ]] && echo alone || echo "cluster node $i")
	printf '%-15s CPU %s%% of a core, %s goroutines\n' "$who" "$(echo "scale=2; ($after-${before[$p]})*100/$ticks/$IDLE" | bc)" "$gor"
done

echo "== 1 KiB persistent, confirms, $DURATION s (sent / received by warren-perf)"
/usr/bin/python3 -c "
import pika
for p in (5810, 5811):
    c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', p)); c.channel().queue_declare('perf', durable=True); c.close()
"
# summary FILE: warren-perf's totals and consumer latency, from its last lines.
summary() {
	echo "$(grep -o 'sent: [0-9]*, confirmed: [0-9]*.*received: [0-9]*' "$1" | tail -1);" \
		"$(grep -o 'consumer latency min.*µs' "$1" | tail -1)"
}
"$PERF" -h amqp://guest:guest@127.0.0.1:5810/ -x 1 -y 1 -u perf -ad false -s 1024 -f persistent -c 100 -z "$DURATION" >"$work/alone" 2>&1
echo "alone: $(summary "$work/alone")"
"$PERF" -h amqp://guest:guest@127.0.0.1:5812/ -x 0 -y 1 -u perf -ad false -s 1024 -f persistent -z $((DURATION + 3)) >"$work/cons" 2>&1 &
cons=$!
sleep 1
"$PERF" -h amqp://guest:guest@127.0.0.1:5813/ -x 1 -y 0 -u perf -ad false -s 1024 -f persistent -c 100 -z "$DURATION" >"$work/prod" 2>&1
wait "$cons"
echo "cluster, queue on node 1: publisher on node 3: $(summary "$work/prod")"
echo "cluster, queue on node 1: consumer on node 2: $(summary "$work/cons")"

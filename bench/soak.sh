#!/usr/bin/env bash
# A steady load that never overloads anything, to watch the broker's memory
# and disk over time: PRODUCERS producers at RATE msg/s each, SIZE-byte
# persistent messages with confirms (100 in flight), one queue and one
# consumer (prefetch 100, manual ack) per producer, for DURATION seconds.
# Every 5 s it prints the broker's resident set (anonymous and file-backed,
# i.e. the store's mapped files) and the data directory's size, then the
# load's summary (losses, latency). It starts its own broker.
#
#   BIN        warren binary (default: built from ./cmd/warren)
#   DURATION   seconds (default 240)
#   PRODUCERS  default 50;  RATE  default 100;  SIZE  default 1024
#
# Under a steady load whose messages are consumed within milliseconds, RSS
# and the data directory should stay flat.
set -euo pipefail

DURATION=${DURATION:-240}
PRODUCERS=${PRODUCERS:-50}
RATE=${RATE:-100}
SIZE=${SIZE:-1024}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

data=$work/data
"$BIN" --listen 127.0.0.1:5803 --data-dir "$data" --mgmt-listen "" --prometheus-listen "" --log-level error 2>"$work/log" &
pid=$!
wait_listening 5803
"$PERF" -h amqp://guest:guest@127.0.0.1:5803 -x "$PRODUCERS" -y "$PRODUCERS" -qp 'soak-%d' -qpf 1 -qpt "$PRODUCERS" \
	-s "$SIZE" -f persistent -c 100 -r "$RATE" -q 100 -z "$DURATION" --json >"$work/perf.json" 2>"$work/perf.err" &
load=$!
kb() { awk -v k="$1:" '$1 == k { print int($2 / 1024) }' "/proc/$pid/status"; }
printf '%6s %8s %8s %8s %8s\n' seconds rss_mb anon_mb file_mb data_mb
t=0
while kill -0 "$load" 2>/dev/null; do
	printf '%6d %8s %8s %8s %8s\n' "$t" "$(kb VmRSS)" "$(kb RssAnon)" "$(kb RssFile)" "$(du -sm "$data" | cut -f1)"
	sleep 5
	t=$((t + 5))
done
wait "$load" || { cat "$work/perf.err" >&2; exit 1; }
kill "$pid"
wait "$pid" 2>/dev/null || true
cat "$work/perf.json"

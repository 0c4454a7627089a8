#!/usr/bin/env bash
# Measures what scraping the metrics and the management API costs a broker
# under load: 1 producer and 1 consumer of 16-byte auto-ack messages
# (warren-perf), alternating runs without and with a scraper that GETs
# /metrics, /metrics/per-object and /api/overview every SCRAPE_EVERY
# seconds, and prints each run's receive rate and the broker's CPU per
# 1,000 messages. It starts its own brokers (one per run, fresh data dir).
#
#   BIN           warren binary (default: built from ./cmd/warren)
#   ROUNDS        rounds (default 3)
#   DURATION      seconds per run (default 15)
#   SCRAPE_EVERY  seconds between scrapes (default 1)
#
# Differences under ~20 % between runs are noise on a 2-core machine (see
# run.sh); compare medians over several rounds.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
SCRAPE_EVERY=${SCRAPE_EVERY:-1}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# cpu_ticks PID: user+system CPU of PID, in clock ticks (1/100 s).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run LABEL SCRAPE: one run; SCRAPE is 1 to scrape during it.
run() {
	local label=$1 scrape=$2 dir pid sp="" t0 t1 out recv
	dir=$(mktemp -d "$work/data.XXXXXX")
	"$BIN" --listen 127.0.0.1:5800 --data-dir "$dir" --mgmt-listen 127.0.0.1:15800 \
		--prometheus-listen 127.0.0.1:15801 --log-level error 2>"$dir.log" &
	pid=$!
	wait_listening 5800
	if ((scrape)); then
		(while kill -0 "$pid" 2>/dev/null; do
			curl -s -o /dev/null http://127.0.0.1:15801/metrics
			curl -s -o /dev/null http://127.0.0.1:15801/metrics/per-object
			curl -s -o /dev/null -u guest:guest http://127.0.0.1:15800/api/overview
			sleep "$SCRAPE_EVERY"
		done) &
		sp=$!
	fi
	t0=$(cpu_ticks "$pid")
	out=$("$PERF" -h amqp://guest:guest@127.0.0.1:5800 -x 1 -y 1 -u scrape-q -s 16 -a -z "$DURATION" --json 2>/dev/null | tail -n1)
	t1=$(cpu_ticks "$pid")
	[[ -n $sp ]] && kill "$sp" 2>/dev/null
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	recv=$(sed -n 's/.*"receive_rate":\([0-9.]*\).*/\1/p' <<<"$out")
	awk -v l="$label" -v r="$recv" -v a="$t0" -v b="$t1" -v d="$DURATION" \
		'BEGIN { printf "%-10s receive %9.0f msg/s  broker CPU %.3f ms per 1,000 messages\n", l, r, (b - a) * 10 / (r * d / 1000) }'
}

for _ in $(seq "$ROUNDS"); do
	run plain 0
	run scraped 1
done

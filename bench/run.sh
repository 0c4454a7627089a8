#!/usr/bin/env bash
# Runs bench/scenarios.txt against Warren and RabbitMQ, alternating brokers
# (Warren, RabbitMQ, Warren, RabbitMQ, ...) for ROUNDS rounds, and prints the
# median of each metric and the Warren/RabbitMQ ratio as a markdown table.
#
# It starts no broker: point it at running ones.
#   WARREN_URI   amqp URI of Warren   (a broker left unset is skipped)
#   RABBIT_URI   amqp URI of RabbitMQ
#   WARREN_PID   pid of the Warren process   (optional; for rss_mb)
#   RABBIT_PID   pid of RabbitMQ's beam.smp  (optional; for rss_mb)
#   ROUNDS       rounds per scenario (default 3)
#   DURATION     seconds per timed run (default 10)
#   SCENARIOS    scenario file (default bench/scenarios.txt)
#   ONLY         run only scenarios whose name matches this regex
#   PERF         warren-perf binary (default: built from ./cmd/warren-perf)
#   LOG_DIR      where each run's output goes (default: a temp dir)
#
# Noise: an A/A run (both URIs at the same RabbitMQ, 2 rounds of 3 s) gave
# ratios from 0.81 to 1.05, so read differences under ~20 % as noise unless
# more rounds (ROUNDS=5) agree.
#
# A run that exits non-zero (error, or lost/duplicated/out-of-order messages)
# is reported in the table's last column and makes the script exit 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SCENARIOS=${SCENARIOS:-$here/scenarios.txt}
ONLY=${ONLY:-.}
LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/warren-bench.XXXXXX)}
mkdir -p "$LOG_DIR"

if [[ -z ${WARREN_URI:-} && -z ${RABBIT_URI:-} ]]; then
	echo "set WARREN_URI and/or RABBIT_URI" >&2
	exit 2
fi
if [[ -z ${PERF:-} ]]; then
	PERF=$LOG_DIR/warren-perf
	(cd "$root" && go build -o "$PERF" ./cmd/warren-perf)
fi

brokers=()
[[ -n ${WARREN_URI:-} ]] && brokers+=(warren)
[[ -n ${RABBIT_URI:-} ]] && brokers+=(rabbit)

uri_of() { if [[ $1 == warren ]]; then echo "$WARREN_URI"; else echo "$RABBIT_URI"; fi; }
pid_of() { if [[ $1 == warren ]]; then echo "${WARREN_PID:-}"; else echo "${RABBIT_PID:-}"; fi; }

# json_num FIELD < json: a numeric field of warren-perf's one-line summary.
json_num() { sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" | head -n1; }

# metric NAME FILE: one metric of a run's JSON summary (rss_mb is separate).
metric() {
	case $1 in
	send_rate) json_num send_rate <"$2" ;;
	receive_rate) json_num receive_rate <"$2" ;;
	p50_us) json_num median <"$2" ;;
	p99_us) json_num p99 <"$2" ;;
	*) echo "" ;;
	esac
}

# median of numbers given as arguments (empty if none).
median() {
	printf '%s\n' "$@" | { grep -E '^[-0-9.eE+]+$' || true; } | sort -g | awk '
		{ v[NR] = $1 }
		END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# sample_rss PID OUT: writes the peak VmRSS (MiB) of PID to OUT until killed.
sample_rss() {
	local pid=$1 out=$2 peak=0 kb
	trap 'echo $((peak / 1024)) >"$out"; exit 0' TERM
	while :; do
		kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
		((kb > peak)) && peak=$kb
		echo $((peak / 1024)) >"$out"
		sleep 0.2
	done
}

declare -A values   # "scenario|broker|metric" -> space-separated values
declare -A failures # "scenario" -> text
names=()
metrics_of=()
failed=0

while IFS= read -r line; do
	[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
	name=$(echo "${line%%|*}" | xargs)
	rest=${line#*|}
	metrics=$(echo "${rest%%|*}" | xargs)
	args=$(echo "${rest#*|}" | xargs)
	[[ $name =~ $ONLY ]] || continue
	names+=("$name")
	metrics_of+=("$metrics")
	timed=(-z "$DURATION")
	[[ " $args " == *" -C "* ]] && timed=()
	for ((round = 1; round <= ROUNDS; round++)); do
		for b in "${brokers[@]}"; do
			log=$LOG_DIR/$name.$b.$round
			echo "== $name round $round on $b: warren-perf $args ${timed[*]}" >&2
			rss_pid=""
			pid=$(pid_of "$b")
			if [[ -n $pid && ,$metrics, == *,rss_mb,* ]]; then
				sample_rss "$pid" "$log.rss" &
				rss_pid=$!
			fi
			rc=0
			# shellcheck disable=SC2086 # args are split on purpose
			"$PERF" -h "$(uri_of "$b")" $args "${timed[@]}" --json >"$log.json" 2>"$log.lines" || rc=$?
			if [[ -n $rss_pid ]]; then
				kill -TERM "$rss_pid" 2>/dev/null || true
				wait "$rss_pid" 2>/dev/null || true
			fi
			tail -n1 "$log.json" >&2
			if ((rc != 0)); then
				failures[$name]+="$b round $round exit $rc; "
				failed=1
			fi
			for m in ${metrics//,/ }; do
				if [[ $m == rss_mb ]]; then
					v=$(cat "$log.rss" 2>/dev/null || true)
				else
					v=$(metric "$m" "$log.json")
				fi
				values[$name|$b|$m]+="$v "
			done
		done
	done
done <"$SCENARIOS"

echo
echo "Medians of $ROUNDS rounds, ${DURATION}s per timed run; logs in $LOG_DIR."
echo "Rates in msg/s (higher is better), latencies in µs and RSS in MiB (lower is better)."
echo
echo "| scenario | metric | Warren | RabbitMQ | Warren/RabbitMQ | problems |"
echo "|---|---|---:|---:|---:|---|"
for i in "${!names[@]}"; do
	name=${names[$i]}
	for m in ${metrics_of[$i]//,/ }; do
		# shellcheck disable=SC2086
		w=$(median ${values[$name|warren|$m]:-})
		# shellcheck disable=SC2086
		r=$(median ${values[$name|rabbit|$m]:-})
		ratio=""
		if [[ -n $w && -n $r ]]; then
			ratio=$(awk -v w="$w" -v r="$r" 'BEGIN { if (r + 0 == 0) print "-"; else printf "%.2f", w / r }')
		fi
		fmt() { [[ -n $1 ]] && awk -v v="$1" 'BEGIN { printf "%.0f", v }' || echo "-"; }
		echo "| $name | $m | $(fmt "$w") | $(fmt "$r") | ${ratio:--} | ${failures[$name]:-} |"
	done
done
exit $failed

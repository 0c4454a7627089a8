# Shared by the scripts that start their own broker (scrape-cost.sh,
# soak.sh); source it after `set -euo pipefail`. It makes a work directory
# (removed on exit) and builds what is missing: BIN, the warren binary
# (unless given), and PERF, warren-perf.
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d /tmp/warren-bench.XXXXXX)
pids=() # processes to kill on exit (start_nodes adds its own)
trap 'set +e; kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
if [[ -z ${BIN:-} ]]; then
	BIN=$work/warren
	(cd "$root" && go build -o "$BIN" ./cmd/warren)
fi
PERF=$work/warren-perf
(cd "$root" && go build -o "$PERF" ./cmd/warren-perf)

# wait_listening PORT: waits (up to 10 s) until something listens on the
# loopback PORT.
wait_listening() {
	for _ in $(seq 100); do
		(echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# start_nodes P X: a node of its own on AMQP port P0 and a cluster of three
# on P1-P3 (management API on 1P0-1P3, cluster listeners on 2P1-2P3, node
# names warren@X1-X3), data and logs under $work; their pids go to pids.
# It returns once all four listen.
start_nodes() {
	local p=$1 x=$2 seeds=127.0.0.1:2${1}1,127.0.0.1:2${1}2,127.0.0.1:2${1}3
	"$BIN" --listen "127.0.0.1:${p}0" --data-dir "$work/d0" --mgmt-listen "127.0.0.1:1${p}0" --prometheus-listen "" \
		--log-level error 2>"$work/log0" &
	pids+=($!)
	for i in 1 2 3; do
		WARREN_CLUSTER_SECRET=bench "$BIN" --listen "127.0.0.1:$p$i" --data-dir "$work/d$i" --mgmt-listen "127.0.0.1:1$p$i" \
			--prometheus-listen "" --log-level error --node-name "warren@$x$i" --cluster-listen "127.0.0.1:2$p$i" \
			--cluster-seeds "$seeds" 2>"$work/log$i" &
		pids+=($!)
	done
	for i in 0 1 2 3; do wait_listening "$p$i"; done
}

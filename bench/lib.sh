# Shared by the scripts that start their own broker (scrape-cost.sh,
# soak.sh); source it after `set -euo pipefail`. It makes a work directory
# (removed on exit) and builds what is missing: BIN, the warren binary
# (unless given), and PERF, warren-perf.
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d /tmp/warren-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
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

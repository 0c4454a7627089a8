#!/usr/bin/env bash
# Benchmarks Warren against RabbitMQ on this machine: builds warren and
# warren-perf, starts a private Warren and (when rabbitmq-server is installed) a
# private RabbitMQ node, runs bench/run.sh against both, then stops both brokers
# and removes their state, whatever happens. `make bench` runs it.
#
# Settings (environment):
#   ROUNDS, DURATION, ONLY, SCENARIOS, LOG_DIR   passed to run.sh (ROUNDS 3,
#                      DURATION 10 by default; see run.sh)
#   WARREN_FLAGS       extra flags for warren, e.g. "--sync=false" or
#                      "--pprof 127.0.0.1:6061"
#   NO_RABBITMQ=1      run Warren only, even when RabbitMQ is installed
#   INSTALL_RABBITMQ=1 apt-get install rabbitmq-server when it is missing
#                      (nothing is installed otherwise)
#
# The RabbitMQ node is its own: node name warren-bench-PID@localhost, its own
# AMQP and distribution ports on 127.0.0.1, mnesia and log dirs under a
# temporary directory owned by the rabbitmq user (Debian's wrapper runs the
# node as that user), no plugins. Root is needed for it (sudo otherwise).
# epmd, which the first node on a machine starts, is shared and left running.
#
# Exit status: run.sh's (1 when a run failed or lost messages), or 2 when a
# broker could not be built or started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-10}
export LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/warren-bench-logs.XXXXXX)}
mkdir -p "$LOG_DIR"

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 2; }

# as_root CMD...: runs CMD as root (via sudo when not root).
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

tmp=$(mktemp -d /tmp/warren-bench-state.XXXXXX)
warren_pid=""
run_pid=""
rabbit_node=""
rabbit_env=()

# cleanup stops whatever this script started (by pid or node name) and
# removes the brokers' state, keeping copies of their logs in LOG_DIR.
cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	if [[ -n $run_pid ]]; then
		log "interrupted: stopping run.sh (pid $run_pid) and its warren-perf"
		pkill -TERM -P "$run_pid" 2>/dev/null || true
		kill -TERM "$run_pid" 2>/dev/null || true
		wait "$run_pid" 2>/dev/null || true
	fi
	if [[ -n $warren_pid ]] && kill -0 "$warren_pid" 2>/dev/null; then
		log "stopping Warren (pid $warren_pid)"
		kill -TERM "$warren_pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do kill -0 "$warren_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$warren_pid" 2>/dev/null || true
		wait "$warren_pid" 2>/dev/null || true
	fi
	if [[ -n $rabbit_node ]]; then
		log "stopping RabbitMQ ($rabbit_node${RABBIT_PID:+, pid $RABBIT_PID})"
		as_root env "${rabbit_env[@]}" rabbitmqctl -q -n "$rabbit_node" stop >/dev/null 2>&1 || true
		if [[ -n ${RABBIT_PID:-} ]]; then
			for ((i = 0; i < 300; i++)); do kill -0 "$RABBIT_PID" 2>/dev/null || break; sleep 0.1; done
			if kill -0 "$RABBIT_PID" 2>/dev/null; then
				log "RabbitMQ did not stop; killing pid $RABBIT_PID"
				as_root kill -KILL "$RABBIT_PID" 2>/dev/null || true
			fi
		fi
	fi
	cp "$tmp/warren.log" "$LOG_DIR/warren.log" 2>/dev/null || true
	[[ -d $tmp/rabbit/log ]] && as_root cp -r "$tmp/rabbit/log" "$LOG_DIR/rabbitmq-log" 2>/dev/null || true
	as_root rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port: a loopback TCP port nobody listens on, not handed out before.
used_ports=" "
free_port() {
	local p
	for _ in {1..200}; do
		p=$((20000 + RANDOM % 25000))
		[[ $used_ports == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports+="$p "
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# --- build -------------------------------------------------------------------
log "building warren and warren-perf from $root ($(cd "$root" && git describe --always --dirty 2>/dev/null || echo 'not a git checkout'))"
mkdir -p "$tmp/bin"
(cd "$root" && go build -o "$tmp/bin/warren" ./cmd/warren && go build -o "$tmp/bin/warren-perf" ./cmd/warren-perf) ||
	die "build failed"
export PERF=$tmp/bin/warren-perf

# --- RabbitMQ: install? --------------------------------------------------------
have_rabbit=0
if [[ ${NO_RABBITMQ:-} == 1 ]]; then
	log "NO_RABBITMQ=1: running Warren only"
elif command -v rabbitmq-server >/dev/null && command -v rabbitmqctl >/dev/null; then
	have_rabbit=1
elif [[ ${INSTALL_RABBITMQ:-} == 1 ]]; then
	log "INSTALL_RABBITMQ=1: installing rabbitmq-server"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
	have_rabbit=1
else
	log "rabbitmq-server is not installed: running Warren only (INSTALL_RABBITMQ=1 installs it)"
fi

# --- Warren --------------------------------------------------------------------
warren_port=$(free_port)
# shellcheck disable=SC2086 # WARREN_FLAGS is split on purpose
"$tmp/bin/warren" --listen "127.0.0.1:$warren_port" --data-dir "$tmp/warren-data" ${WARREN_FLAGS:-} \
	>"$tmp/warren.log" 2>&1 &
warren_pid=$!
for ((i = 0; ; i++)); do
	grep -q 'msg="Warren started"' "$tmp/warren.log" 2>/dev/null && break
	if ! kill -0 "$warren_pid" 2>/dev/null || ((i >= 300)); then
		cat "$tmp/warren.log" >&2
		die "Warren did not start"
	fi
	sleep 0.1
done
export WARREN_URI=amqp://guest:guest@127.0.0.1:$warren_port/ WARREN_PID=$warren_pid
log "Warren $warren_pid listening on 127.0.0.1:$warren_port${WARREN_FLAGS:+ with $WARREN_FLAGS}"

# --- RabbitMQ ------------------------------------------------------------------
if ((have_rabbit)); then
	rdir=$tmp/rabbit
	mkdir -p "$rdir/mnesia" "$rdir/log"
	echo '[].' >"$rdir/enabled_plugins"
	: >"$rdir/rabbitmq-env.conf"
	echo '# empty: defaults, whatever /etc/rabbitmq says' >"$rdir/rabbitmq.conf"
	amqp_port=$(free_port)
	dist_port=$(free_port)
	rabbit_env=(
		RABBITMQ_NODENAME="warren-bench-$$@localhost"
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$amqp_port"
		RABBITMQ_DIST_PORT="$dist_port"
		RABBITMQ_MNESIA_BASE="$rdir/mnesia"
		RABBITMQ_LOG_BASE="$rdir/log"
		RABBITMQ_PID_FILE="$rdir/rabbit.pid"
		RABBITMQ_ENABLED_PLUGINS_FILE="$rdir/enabled_plugins"
		RABBITMQ_CONF_ENV_FILE="$rdir/rabbitmq-env.conf"
		RABBITMQ_CONFIG_FILE="$rdir/rabbitmq.conf"
	)
	as_root chown -R rabbitmq:rabbitmq "$rdir"
	chmod 755 "$tmp"
	rabbit_node="warren-bench-$$@localhost"
	log "starting RabbitMQ $rabbit_node on 127.0.0.1:$amqp_port (dist $dist_port)"
	as_root env "${rabbit_env[@]}" rabbitmq-server -detached >"$tmp/rabbit-start.out" 2>&1 ||
		{ cat "$tmp/rabbit-start.out" >&2; die "rabbitmq-server -detached failed"; }
	# epmd registration can take seconds: retry await_startup.
	started=0
	for ((i = 0; i < 30; i++)); do
		if as_root env "${rabbit_env[@]}" rabbitmqctl -q -n "$rabbit_node" await_startup --timeout 10 >/dev/null 2>&1; then
			started=1
			break
		fi
		sleep 1
	done
	if ((!started)); then
		as_root sh -c "cat '$rdir'/log/*.log" >&2 2>/dev/null || true
		die "RabbitMQ did not start"
	fi
	RABBIT_PID=$(as_root env "${rabbit_env[@]}" rabbitmqctl -q -n "$rabbit_node" eval 'os:getpid().' | tr -dc 0-9)
	[[ -n $RABBIT_PID && $(cat "/proc/$RABBIT_PID/comm" 2>/dev/null) == beam.smp ]] ||
		die "could not find the beam.smp pid of $rabbit_node (got '$RABBIT_PID')"
	version=$(as_root env "${rabbit_env[@]}" rabbitmqctl -q -n "$rabbit_node" eval 'rabbit_misc:version().' | tr -d '"')
	export RABBIT_URI=amqp://guest:guest@127.0.0.1:$amqp_port/ RABBIT_PID
	log "RabbitMQ $version: beam.smp $RABBIT_PID listening on 127.0.0.1:$amqp_port"
fi

# --- run -------------------------------------------------------------------------
log "running bench/run.sh: ROUNDS=$ROUNDS DURATION=$DURATION, logs in $LOG_DIR"
# In the background, so that a signal to this script is handled at once (bash
# runs traps only between foreground commands); the table is printed at the end.
rc=0
"$here/run.sh" >"$LOG_DIR/table.md" &
run_pid=$!
wait "$run_pid" || rc=$?
run_pid=""
cat "$LOG_DIR/table.md"
exit "$rc"

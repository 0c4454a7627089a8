# shellcheck shell=bash
# Private RabbitMQ nodes, alone or clustered, for the benchmarks that compare
# Warren with RabbitMQ (bench/quorum.sh). Source it after
# `set -euo pipefail`; it starts nothing by itself, and its caller's EXIT trap
# should run rabbit_stop_all.
#
# Each node is its own: node name NAME@localhost, its own AMQP and Erlang
# distribution ports on 127.0.0.1, mnesia and log dirs under one temporary
# directory owned by the rabbitmq user (Debian's wrapper runs the node and
# rabbitmqctl as that user), no plugins, RabbitMQ's defaults whatever
# /etc/rabbitmq says. All nodes share the rabbitmq user's Erlang cookie
# (/var/lib/rabbitmq/.erlang.cookie), so they can form a cluster. Root is
# needed (sudo otherwise). epmd, which the first node on a machine starts, is
# shared: rabbit_stop_all stops it (epmd -kill, which epmd refuses while any
# node is registered) only when it was not running before the first node here.
#
#   rabbit_start NAME AMQP_PORT DIST_PORT  starts NAME@localhost, returns once
#                             it has booted (starting it again, up to 3 times
#                             in all, when it dies while booting)
#   rabbit_join NAME SEED     makes the running node NAME join SEED's cluster
#                             (stop_app, join_cluster, start_app; retried)
#   rabbit_ctl NAME ARGS...   rabbitmqctl -q -n NAME@localhost ARGS...
#   rabbit_stop NAME          stops NAME (SIGKILL if it is still there after
#                             30 s) and removes its state
#   rabbit_stop_all           stops every node still running, removes all state
#   rabbit_amqp[NAME]         the node's AMQP port

rabbit_state=""          # the temporary directory, made by the first rabbit_start
rabbit_epmd_was_up=1     # whether epmd ran before the first rabbit_start
rabbit_nodes=()          # names of the nodes started and not stopped, in order
declare -A rabbit_amqp=() rabbit_dist=() rabbit_pid=()

# as_root CMD...: runs CMD as root (via sudo when not root).
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# _rabbit_env NAME: sets renv to the environment of node NAME.
_rabbit_env() {
	local d=$rabbit_state/$1
	renv=(
		RABBITMQ_NODENAME="$1@localhost"
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="${rabbit_amqp[$1]}"
		RABBITMQ_DIST_PORT="${rabbit_dist[$1]}"
		RABBITMQ_MNESIA_BASE="$d/mnesia"
		RABBITMQ_LOG_BASE="$d/log"
		RABBITMQ_PID_FILE="$d/rabbit.pid"
		RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
		RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
		RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	)
}

rabbit_ctl() {
	local renv name=$1
	shift
	_rabbit_env "$name"
	as_root env "${renv[@]}" rabbitmqctl -q -n "$name@localhost" "$@"
}

# _rabbit_log NAME: the end of the node's logs, on stderr.
_rabbit_log() {
	echo "--- $1: the end of its logs" >&2
	as_root sh -c "tail -n 30 '$rabbit_state/$1'/log/*.log" >&2 2>/dev/null || true
}

# _rabbit_boot NAME: starts the node once; fails when it does not boot.
_rabbit_boot() {
	local renv name=$1 d=$rabbit_state/$1 i pid
	_rabbit_env "$name"
	as_root rm -rf "$d"
	mkdir -p "$d/mnesia" "$d/log"
	echo '[].' >"$d/enabled_plugins"
	: >"$d/rabbitmq-env.conf"
	echo '# empty: defaults, whatever /etc/rabbitmq says' >"$d/rabbitmq.conf"
	as_root chown -R rabbitmq:rabbitmq "$d"
	as_root env "${renv[@]}" rabbitmq-server -detached >"$d.start.out" 2>&1 ||
		{ cat "$d.start.out" >&2; return 1; }
	# Registration with epmd can take seconds: retry await_startup, until the
	# node is up, or its process is gone, or 60 s have passed.
	for ((i = 0; i < 30; i++)); do
		rabbit_ctl "$name" await_startup --timeout 10 >/dev/null 2>&1 && break
		pid=$(as_root cat "$d/rabbit.pid" 2>/dev/null || true)
		if [[ -n $pid && ! -d /proc/$pid ]]; then
			echo "rabbitmq-cluster: $name@localhost (pid $pid) died while booting" >&2
			_rabbit_log "$name"
			return 1
		fi
		sleep 1
	done
	pid=$(rabbit_ctl "$name" eval 'os:getpid().' 2>/dev/null | tr -dc 0-9) || true
	if [[ -z $pid || $(cat "/proc/$pid/comm" 2>/dev/null) != beam.smp ]]; then
		echo "rabbitmq-cluster: $name@localhost did not boot in 60 s" >&2
		_rabbit_log "$name"
		return 1
	fi
	rabbit_pid[$name]=$pid
}

rabbit_start() {
	local name=$1 try p
	for p in "$2" "$3"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "rabbitmq-cluster: port $p is taken: $name@localhost cannot start" >&2
			return 1
		fi
	done
	if [[ -z $rabbit_state ]]; then
		rabbit_state=$(mktemp -d /tmp/warren-rabbit.XXXXXX)
		chmod 755 "$rabbit_state" # the rabbitmq user must reach its dirs
		epmd -names >/dev/null 2>&1 || rabbit_epmd_was_up=0
	fi
	rabbit_amqp[$name]=$2
	rabbit_dist[$name]=$3
	rabbit_nodes+=("$name")
	for try in 1 2 3; do
		_rabbit_boot "$name" && return 0
		_rabbit_kill "$name"
		((try < 3)) && echo "rabbitmq-cluster: starting $name@localhost again" >&2
	done
	echo "rabbitmq-cluster: $name@localhost did not start" >&2
	return 1
}

rabbit_join() {
	local name=$1 seed=$2 try out=$rabbit_state/$1.join.out
	for try in 1 2 3; do
		if rabbit_ctl "$name" stop_app >"$out" 2>&1 &&
			rabbit_ctl "$name" join_cluster "$seed@localhost" >>"$out" 2>&1 &&
			rabbit_ctl "$name" start_app >>"$out" 2>&1 &&
			rabbit_ctl "$name" await_startup --timeout 60 >>"$out" 2>&1; then
			return 0
		fi
		echo "rabbitmq-cluster: $name@localhost could not join $seed@localhost (try $try)" >&2
		cat "$out" >&2
		_rabbit_log "$name"
		# A node that died (e.g. incompatible_feature_flags) boots afresh.
		if ! rabbit_ctl "$name" status >/dev/null 2>&1; then
			_rabbit_kill "$name"
			_rabbit_boot "$name" || true
		else
			rabbit_ctl "$name" stop_app >/dev/null 2>&1 || true
			rabbit_ctl "$name" reset >/dev/null 2>&1 || true
			rabbit_ctl "$name" start_app >/dev/null 2>&1 || true
		fi
	done
	return 1
}

# _rabbit_kill NAME: asks the node to stop, waits for its process, kills it
# after 30 s.
_rabbit_kill() {
	local renv name=$1 pid i
	pid=${rabbit_pid[$name]:-}
	# A node just started writes its pid file a few seconds later.
	for ((i = 0; i < 100 && ${#pid} == 0; i++)); do
		[[ -e $rabbit_state/$name.start.out ]] || break # never started
		pid=$(as_root cat "$rabbit_state/$name/rabbit.pid" 2>/dev/null || true)
		[[ -n $pid ]] || sleep 0.1
	done
	_rabbit_env "$name"
	as_root timeout 60 env "${renv[@]}" rabbitmqctl -q -n "$name@localhost" stop >/dev/null 2>&1 || true
	if [[ -n $pid ]]; then
		for ((i = 0; i < 300; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
		if [[ -d /proc/$pid ]]; then
			echo "rabbitmq-cluster: $name@localhost did not stop; killing pid $pid" >&2
			as_root kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	unset "rabbit_pid[$name]"
}

rabbit_stop() {
	local name=$1 n kept=()
	_rabbit_kill "$name"
	as_root rm -rf "${rabbit_state:?}/$name" "$rabbit_state/$name".*.out
	for n in "${rabbit_nodes[@]}"; do [[ $n == "$name" ]] || kept+=("$n"); done
	rabbit_nodes=("${kept[@]}")
}

rabbit_stop_all() {
	local i
	[[ -n $rabbit_state ]] || return 0
	for ((i = ${#rabbit_nodes[@]} - 1; i >= 0; i--)); do rabbit_stop "${rabbit_nodes[$i]}" || true; done
	as_root rm -rf "$rabbit_state"
	rabbit_state=""
	((rabbit_epmd_was_up)) || epmd -kill >/dev/null 2>&1 || true
}

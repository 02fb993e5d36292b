# shellcheck shell=bash
# bench/lib.sh - helpers shared by the bench/*.sh scripts (source it).
#
# Everything here talks to 127.0.0.1 only, and every load run is bounded in
# requests (h2load -n) and seconds (timeout).  Servers started through
# bench_start are remembered by PID and stopped by bench_cleanup, which
# bench_init installs as an EXIT trap.  A script starts:
#
#   set -u
#   . "$(dirname "$0")/lib.sh"
#   bench_init NAME ["SECTION TITLE"]     # traps, $INFERGW, temp dir $T

set -u

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
H2LOAD=${H2LOAD:-h2load}

# CPU pinning: server on one core, load generator on the other.  On a machine
# with a single CPU both run unpinned.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	SRV_CPU=${SRV_CPU:-1}
	CLI_CPU=${CLI_CPU:-0}
	PIN_SRV="taskset -c $SRV_CPU"
	PIN_CLI="taskset -c $CLI_CPU"
else
	PIN_SRV=""
	PIN_CLI=""
fi

BENCH_PIDS=()
BENCH_TMP=""

# bench_tmpdir - create (once) and print a private temp dir, removed on exit.
bench_tmpdir() {
	if [ -z "$BENCH_TMP" ]; then
		BENCH_TMP=$(mktemp -d /tmp/infergw-bench.XXXXXX)
	fi
}

# bench_reap PID - wait up to 5 s for PID (already sent SIGTERM) to exit,
# then SIGKILL it and collect it.
bench_reap() {
	local pid=$1 _
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# bench_cleanup - SIGTERM every server we started (by PID), then SIGKILL
# whatever is still there after 5 s; remove the temp dir.
bench_cleanup() {
	local pid
	for pid in "${BENCH_PIDS[@]:-}"; do
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${BENCH_PIDS[@]:-}"; do
		[ -n "$pid" ] && bench_reap "$pid"
	done
	BENCH_PIDS=()
	if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
		rm -rf "$BENCH_TMP"
	fi
}

# bench_init NAME [TITLE] - the common start of a bench script: stop our
# servers and remove the temp dir on exit (exit 130 on INT/TERM), set
# INFERGW (the gateway binary) and T (a private temp dir).  NAME prefixes
# bench_fail's messages; with TITLE, bench_fail also appends a "## TITLE"
# section saying FAILED to $OUT_MD.
# shellcheck disable=SC2034 # T is for the scripts
bench_init() {
	BENCH_NAME=$1
	BENCH_TITLE=${2:-}
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	INFERGW="${INFERGW_BIN:-$BENCH_ROOT/build/infergw}"	# INFERGW_BIN: an A/B build
	bench_tmpdir
	T=$BENCH_TMP
}

# bench_fail MSG... - say "NAME: MSG" on stderr (and as a FAILED section in
# $OUT_MD when bench_init had a TITLE), then exit 1.
bench_fail() {
	echo "$BENCH_NAME: $*" >&2
	if [ -n "$BENCH_TITLE" ]; then
		{
			echo "## $BENCH_TITLE"
			echo
			echo "FAILED: $*"
			echo
		} >>"$OUT_MD"
	fi
	exit 1
}

# bench_load_params N C M ROUNDS WARM - the h2load knobs of a script: each of
# N (requests per round), C (clients), M (streams per client), ROUNDS and
# WARM (warm-up requests) from the environment, else the default given here;
# then H2FLAGS (one measured run) and WARMFLAGS (the warm-up run).
# shellcheck disable=SC2034 # the flags are for the scripts
bench_load_params() {
	N=${N:-$1}
	C=${C:-$2}
	M=${M:-$3}
	ROUNDS=${ROUNDS:-$4}
	WARM=${WARM:-$5}
	H2FLAGS="-n $N -c $C -m $M -t 1"
	WARMFLAGS="-n $WARM -c $C -m $M -t 1"
}

# bench_need_infergw - bench_fail unless the gateway binary is built.
bench_need_infergw() {
	[ -x "$INFERGW" ] || bench_fail "$INFERGW not built (make)"
}

# bench_gw_yaml_head PORT THREADS LEVEL [ADMIN_PORT] - print the listen,
# admin (only with ADMIN_PORT), limits and log sections of a gateway.yaml;
# the caller adds models and backends.
bench_gw_yaml_head() {
	echo "listen: {address: 127.0.0.1, port: $1, threads: $2}"
	[ -n "${4:-}" ] && echo "admin: {address: 127.0.0.1, port: $4}"
	cat <<EOF
limits: {max_body_bytes: 4194304, max_header_bytes: 16384, max_concurrent_streams: 128,
         idle_timeout_ms: 60000, shutdown_grace_ms: 2000}
log: {level: $3, access: false}
EOF
}

# bench_start_gw LOG CONFIG PORT SECS - start $INFERGW on CONFIG (output to
# LOG) and wait up to SECS for GET /v2/health/ready on PORT; its PID in
# BENCH_LAST_PID.  bench_fail when it does not become ready.
bench_start_gw() {
	local log=$1 config=$2 port=$3 secs=$4
	bench_start "$log" "$INFERGW" --config "$config"
	bench_wait_http "http://127.0.0.1:$port/v2/health/ready" "$BENCH_LAST_PID" "$secs" ||
		bench_fail "infergw did not become ready: $(tail -5 "$log")"
}

# bench_warn_if_dead PID - warn on stderr when the gateway PID did not
# survive the run (its errors would show in the numbers above).
# bench_log_problems LOG - the report line counting the server log's lines
# that mention an error, a warning, an abort or an assertion.
bench_log_problems() {
	echo "infergw log lines matching error/warn during the run: $(grep -ciE 'error|warn|abort|assert' "$1" || true)"
}

bench_warn_if_dead() {
	kill -0 "$1" 2>/dev/null || echo "$BENCH_NAME: warning: infergw died during the run" >&2
}

# bench_round_done LABEL OUT LOG POOL [MORE...] - after one bench_measure
# run: append its per-request LOG to POOL (percentiles come from all rounds),
# remove LOG, and say "NAME: round LABEL: <h2load's finished line> MORE" on
# stderr.
bench_round_done() {
	local label=$1 out=$2 log=$3 pool=$4
	shift 4
	cat "$log" >>"$pool" 2>/dev/null
	rm -f "$log"
	echo "$BENCH_NAME: round $label: $(grep -o 'finished in .*req/s' "$out")" "$@" >&2
}

# bench_free_port - print a TCP port nobody listens on (127.0.0.1).
bench_free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# bench_start LOG CMD... - start CMD in the background (pinned to the server
# CPU), remember its PID in BENCH_LAST_PID.
bench_start() {
	local log=$1
	shift
	# shellcheck disable=SC2086
	$PIN_SRV "$@" >"$log" 2>&1 &
	BENCH_LAST_PID=$!
	BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_stop PID - SIGTERM one server and wait for it (SIGKILL after 5 s).
bench_stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	bench_reap "$pid"
	local keep=() p
	for p in "${BENCH_PIDS[@]:-}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	BENCH_PIDS=("${keep[@]:-}")
	return 0
}

# bench_wait_http URL PID [SECS] - wait until URL answers 200 over h2c
# (prior knowledge), as long as PID lives.  0 when ready.
bench_wait_http() {
	local url=$1 pid=$2 secs=${3:-20} code
	for _ in $(seq $((secs * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: server (pid $pid) exited before $url was ready" >&2
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
			--http2-prior-knowledge "$url" 2>/dev/null)
		[ "$code" = "200" ] && return 0
		sleep 0.1
	done
	echo "bench: $url not ready after ${secs}s" >&2
	return 1
}

# bench_h2load OUT LOGFILE ARGS... - run h2load pinned to the client CPU,
# bounded by timeout; its stdout+stderr go to OUT, the per-request log to
# LOGFILE (pass "" for none), its user/system CPU seconds to OUT.time.
bench_h2load() {
	local out=$1 log=$2
	shift 2
	local logarg=()
	[ -n "$log" ] && logarg=(--log-file="$log")
	# shellcheck disable=SC2086
	timeout -k 5 "${H2LOAD_TIMEOUT:-60}" /usr/bin/time -f '%U %S' -o "$out.time" \
		$PIN_CLI "$H2LOAD" "${logarg[@]}" "$@" >"$out" 2>&1
	local rc=$?
	[ $rc -eq 124 ] && echo "bench: h2load timed out" >>"$out"
	return $rc
}

# bench_parse NAME OUT [--log F] [--ticks N] [--syscalls N] [--client-time F]
# - one JSON line for an h2load run (see bench/parse_h2load.py).
bench_parse() {
	$PY "$BENCH_ROOT/bench/parse_h2load.py" "$@"
}

# bench_cpu_ticks PID - user+system clock ticks PID (all its threads) has used.
bench_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# bench_syscalls PID - read+write syscalls PID (all its threads) has made.
bench_syscalls() {
	awk '/^sysc[rw]:/ { n += $2 } END { print n + 0 }' "/proc/$1/io" 2>/dev/null || echo 0
}

# bench_measure NAME PID OUT LOG JSONL ARGS... - one h2load run against PID's
# server: server CPU and syscalls around it, parsed result appended to JSONL.
bench_measure() {
	local name=$1 pid=$2 out=$3 log=$4 jsonl=$5
	shift 5
	local t0 t1 s0 s1
	t0=$(bench_cpu_ticks "$pid")
	s0=$(bench_syscalls "$pid")
	bench_h2load "$out" "$log" "$@"
	t1=$(bench_cpu_ticks "$pid")
	s1=$(bench_syscalls "$pid")
	bench_parse "$name" "$out" --ticks $((t1 - t0)) --syscalls $((s1 - s0)) \
		--client-time "$out.time" >>"$jsonl"
}

# bench_md_block CAPTION TEXT - unless TEXT is empty, print CAPTION and TEXT
# as a markdown code block, each followed by a blank line.
bench_md_block() {
	[ -n "$2" ] || return 0
	echo "$1"
	echo
	echo '```'
	echo "$2"
	echo '```'
	echo
}

# bench_env_md - machine and date, as markdown bullet lines.
bench_env_md() {
	local model
	model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- machine: nproc=$(nproc), CPU: ${model:-unknown}, kernel $(uname -r)"
	echo "- git: $(cd "$BENCH_ROOT" && git describe --always --dirty 2>/dev/null || echo 'no commits')"
	echo "- load average when the section ended (1/5/15 min; the machine is shared): $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- pinning: ${PIN_SRV:-none} (server), ${PIN_CLI:-none} (h2load)"
	echo "- h2load: $($H2LOAD --version 2>/dev/null | head -1)"
}

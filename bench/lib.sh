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

# h2load using more than this share of its core marks a round client-bound.
export BENCH_CLIENT_BOUND=${BENCH_CLIENT_BOUND:-0.9}
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

# Equal CPU budget for the servers of a comparison (bench_cpu_budget_init,
# bench_cpu_limit): each server gets BENCH_SERVER_CPU of a core (0.35; 0 or
# "off" = unthrottled) through a CFS quota over a short period (10 ms, so
# that throttling is smooth rather than 50 ms bursts), in a cgroup of this
# bench's own, removed by bench_cleanup.
export BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-0.35}
BENCH_CPU_PERIOD_US=${BENCH_CPU_PERIOD_US:-10000}
BENCH_CG=""		# our cgroup directory (parent of one per server), or ""
BENCH_CG_KIND=""	# v1 or v2
export BENCH_CPU_NOTE=""	# "servers capped at ..." or "" (report.py, summary rows)

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
	bench_cpu_budget_remove
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
# N (requests per round), C (clients), M (streams per client), ROUNDS
# (throughput rounds) and WARM (warm-up requests) from the environment,
# else the default given here; LAT_ROUNDS (latency rounds, 2); then H2FLAGS
# (one measured run) and WARMFLAGS (the warm-up run).
# shellcheck disable=SC2034 # the flags are for the scripts
bench_load_params() {
	N=${N:-$1}
	C=${C:-$2}
	M=${M:-$3}
	ROUNDS=${ROUNDS:-$4}
	WARM=${WARM:-$5}
	LAT_ROUNDS=${LAT_ROUNDS:-2}
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

# bench_health_docroot DIR - the file servers' side of the health anchor:
# DIR/htdocs/v2/health/live holding infergw's 13-byte answer (readable by
# every server user): every h2o/nghttpd comparison serves the same bytes.
bench_health_docroot() {
	mkdir -p "$1/htdocs/v2/health"
	printf '%s' '{"live":true}' >"$1/htdocs/v2/health/live"
	chmod -R a+rX "$1"
}

# bench_h2o_yaml DIR PORT - h2o's config for the health anchor (one thread,
# 127.0.0.1:PORT, DIR/htdocs, pid and error log in DIR) on stdout.
bench_h2o_yaml() {
	cat <<EOF
listen: {host: 127.0.0.1, port: $2}
num-threads: 1
user: $(id -un)
pid-file: $1/h2o.pid
error-log: $1/h2o.err
hosts:
  default:
    paths:
      /:
        file.dir: $1/htdocs
EOF
}

# bench_digits_gw_yaml PORT QUEUE - a gateway.yaml with one loop thread and
# one CPU worker serving digits (max_queue QUEUE), no admin listener, on
# stdout: the infergw side of the wire benchmarks.
bench_digits_gw_yaml() {
	bench_gw_yaml_head "$1" 1 warn 0
	cat <<EOF
models:
  - {name: digits, path: $BENCH_ROOT/config/models/digits, max_batch: 32,
     max_queue_delay_us: 0, max_queue: $2}
backends:
  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 1.0, models: [digits]}
EOF
}

# bench_wide_model DIR - a model named wide in DIR: a softmax over rows of
# 1024 FP32 and no weights, so that large tensors (64 rows: 256 KiB in,
# 256 KiB out) cost next to no compute and the wire path sets the pace.
bench_wide_model() {
	mkdir -p "$1"
	cat >"$1/model.yaml" <<'EOF'
name: wide
platform: infergw-mlp
version: 1
max_batch_size: 64
weights: model.safetensors
inputs:
  - {name: input, datatype: FP32, shape: [-1, 1024]}
outputs:
  - {name: probabilities, datatype: FP32, shape: [-1, 1024]}
layers:
  - {type: softmax}
EOF
	$PY -c 'import struct, sys; h = b"{}"; open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h)' \
		"$1/model.safetensors"
}

# bench_quantize_calibrated MODEL OUT NAME LOG - OUT: MODEL's INT8 variant
# with static activation scales, calibrated on 256 rows uniform in [-1, 1)
# (the distribution of gpu_body.py's inputs; the model's input is 1024
# wide), named NAME in its model.yaml.  bench_fail on any error.
bench_quantize_calibrated() {
	local model=$1 out=$2 name=$3 log=$4
	$PY - "$out.calib.safetensors" <<'PYEOF' || bench_fail "cannot write the calibration file"
import json, struct, sys
import numpy as np
x = np.random.default_rng(7).uniform(-1, 1, (256, 1024)).astype("<f4")
h = json.dumps({"features": {"dtype": "F32", "shape": list(x.shape),
                             "data_offsets": [0, x.nbytes]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + x.tobytes())
PYEOF
	"$BENCH_ROOT/build/infergw-quantize" "$model" "$out" --calibration "$out.calib.safetensors" \
		>"$log" 2>&1 || bench_fail "infergw-quantize --calibration failed: $(cat "$log")"
	sed -i "s/^name: .*/name: $name/" "$out/model.yaml"
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

# bench_loop_threads PID - how many event-loop threads (igw-loop*) the
# gateway PID runs: listen.threads 0 counts the CPUs it may use, which the
# pinning makes fewer than nproc.
bench_loop_threads() {
	local n=0 t
	for t in /proc/"$1"/task/*/comm; do
		case $(cat "$t" 2>/dev/null) in igw-loop*) n=$((n + 1)) ;; esac
	done
	echo "$n"
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

# bench_cpu_budget_init - make our cgroup for capped servers: cgroup v1's
# cpu controller (/sys/fs/cgroup/cpu) or, failing that, cgroup v2 with the
# cpu controller (/sys/fs/cgroup/cpu.max files).  Sets BENCH_CG and
# BENCH_CPU_NOTE; returns 0 when servers can be capped, 1 (with a message on
# stderr, BENCH_CPU_NOTE saying so) when the budget is off or unavailable
# (not root, no cpu controller): the servers then run unthrottled as before.
bench_cpu_budget_init() {
	local v1=/sys/fs/cgroup/cpu v2=/sys/fs/cgroup name
	BENCH_CPU_NOTE=""
	case $BENCH_SERVER_CPU in
	"" | 0 | 0.0 | off)
		BENCH_CPU_NOTE="servers unthrottled (BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-})"
		return 1
		;;
	esac
	awk -v c="$BENCH_SERVER_CPU" 'BEGIN { exit !(c > 0 && c <= 64) }' || {
		BENCH_CPU_NOTE="servers unthrottled (BENCH_SERVER_CPU=$BENCH_SERVER_CPU is not a share of a core in (0, 64])"
		echo "bench: $BENCH_CPU_NOTE" >&2
		return 1
	}
	[ -n "$BENCH_CG" ] && return 0
	bench_cpu_budget_sweep
	name="infergw-bench.$$.$(date +%s%N)"
	if [ "$(id -u)" != 0 ]; then
		:
	elif [ -w "$v1/cgroup.procs" ] && [ -f "$v1/cpu.cfs_quota_us" ] && mkdir "$v1/$name" 2>/dev/null; then
		BENCH_CG="$v1/$name"
		BENCH_CG_KIND=v1
	elif grep -qw cpu "$v2/cgroup.controllers" 2>/dev/null && mkdir "$v2/$name" 2>/dev/null; then
		BENCH_CG="$v2/$name"
		BENCH_CG_KIND=v2
		# the per-server children need the cpu controller enabled below us
		echo +cpu >"$BENCH_CG/cgroup.subtree_control" 2>/dev/null || {
			bench_cpu_budget_remove
		}
	fi
	if [ -z "$BENCH_CG" ]; then
		BENCH_CPU_NOTE="servers unthrottled: no writable cgroup cpu controller (v1 $v1 or v2 cpu.max) as uid $(id -u)"
		echo "bench: $BENCH_CPU_NOTE" >&2
		return 1
	fi
	BENCH_CPU_NOTE="each server capped at $BENCH_SERVER_CPU CPU (cgroup $BENCH_CG_KIND CFS quota $(bench_cpu_quota_us) us per $BENCH_CPU_PERIOD_US us)"
	return 0
}

# bench_cpu_quota_us - BENCH_SERVER_CPU of a core as microseconds per period.
bench_cpu_quota_us() {
	awk -v c="$BENCH_SERVER_CPU" -v p="$BENCH_CPU_PERIOD_US" 'BEGIN { printf "%d\n", c * p + 0.5 }'
}

# bench_cpu_budget_sweep - remove the cgroups of earlier benches whose shell
# is gone (killed with SIGKILL, so its EXIT trap never ran), with the
# servers left in them: a throttled server must not linger.  The bench
# shell's PID is in the name (infergw-bench.PID.NS); a live one's cgroups
# are left alone (another bench may be running).
bench_cpu_budget_sweep() {
	local d owner
	for d in /sys/fs/cgroup/cpu/infergw-bench.*/ /sys/fs/cgroup/infergw-bench.*/; do
		[ -d "$d" ] || continue
		owner=${d%/}
		owner=${owner##*/infergw-bench.}
		owner=${owner%%.*}
		kill -0 "$owner" 2>/dev/null && continue
		echo "bench: removing the stale cgroup $d (bench pid $owner is gone)" >&2
		BENCH_CG=${d%/} bench_cpu_budget_remove
	done
}

# bench_cpu_limit PID NAME - move the process PID (all its threads, and the
# children it forks from now on) into a cgroup NAME of its own under ours,
# capped at BENCH_SERVER_CPU of a core: every server of a comparison gets
# the same budget.  0 on success; 1 when there is no budget
# (bench_cpu_budget_init failed or was not called) or the move failed
# (message on stderr; the server then runs unthrottled).
bench_cpu_limit() {
	local pid=$1 dir quota
	[ -n "$BENCH_CG" ] || return 1
	dir="$BENCH_CG/$2"
	quota=$(bench_cpu_quota_us)
	mkdir -p "$dir" || return 1
	if [ "$BENCH_CG_KIND" = v1 ]; then
		echo "$BENCH_CPU_PERIOD_US" >"$dir/cpu.cfs_period_us" &&
			echo "$quota" >"$dir/cpu.cfs_quota_us"
	else
		echo "$quota $BENCH_CPU_PERIOD_US" >"$dir/cpu.max"
	fi || { echo "bench: cannot set the CPU quota of $dir" >&2; return 1; }
	echo "$pid" >"$dir/cgroup.procs" 2>/dev/null || {
		echo "bench: cannot move pid $pid into $dir" >&2
		return 1
	}
	return 0
}

# bench_cap PID NAME - with a budget (bench_cpu_budget_init returned 0),
# bench_cpu_limit PID NAME or bench_fail: a comparison where one server is
# capped and another is not would be meaningless.  Without one, nothing.
bench_cap() {
	[ -n "$BENCH_CG" ] || return 0
	bench_cpu_limit "$1" "$2" || bench_fail "could not cap $2 (pid $1) at $BENCH_SERVER_CPU CPU"
}

# bench_uncap NAME - lift the quota of our cgroup NAME (bench_cap's): its
# server runs unthrottled from now on, for a part that is compute-bound
# anyway (h2load never its bottleneck) and would only take longer capped.
bench_uncap() {
	local dir="$BENCH_CG/$1"
	[ -n "$BENCH_CG" ] && [ -d "$dir" ] || return 0
	if [ "$BENCH_CG_KIND" = v1 ]; then
		echo -1 >"$dir/cpu.cfs_quota_us"
	else
		echo "max $BENCH_CPU_PERIOD_US" >"$dir/cpu.max"
	fi || bench_fail "cannot lift the CPU quota of $dir"
}

# bench_cpu_budget_remove - SIGKILL whatever is still in our cgroups (only
# processes we started and moved there, by PID from cgroup.procs), then
# remove them.  Safe to call twice.
bench_cpu_budget_remove() {
	if [ -z "$BENCH_CG" ] || [ ! -d "$BENCH_CG" ]; then
		BENCH_CG=""
		return 0
	fi
	local d pid _
	for d in "$BENCH_CG"/*/ "$BENCH_CG/"; do
		[ -f "$d/cgroup.procs" ] || continue
		while read -r pid; do
			[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
		done <"$d/cgroup.procs"
	done
	for _ in $(seq 50); do
		for d in "$BENCH_CG"/*/; do
			[ -d "$d" ] && rmdir "$d" 2>/dev/null
		done
		rmdir "$BENCH_CG" 2>/dev/null && break
		sleep 0.1
	done
	[ -d "$BENCH_CG" ] && echo "bench: warning: could not remove cgroup $BENCH_CG" >&2
	BENCH_CG=""
	return 0
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
# bounded by timeout (H2LOAD_TIMEOUT, 60 s); its stdout+stderr go to OUT,
# the per-request log to LOGFILE (pass "" for none), its user, system and
# wall seconds ("%U %S %e") to OUT.time.  The low-level runner: a measured
# round goes through bench_round (throughput) or bench_latency_round.
bench_h2load() {
	local out=$1 log=$2
	shift 2
	local logarg=()
	[ -n "$log" ] && logarg=(--log-file="$log")
	# shellcheck disable=SC2086
	timeout -k 5 "${H2LOAD_TIMEOUT:-60}" /usr/bin/time -f '%U %S %e' -o "$out.time" \
		$PIN_CLI "$H2LOAD" "${logarg[@]}" "$@" >"$out" 2>&1
	local rc=$?
	[ $rc -eq 124 ] && echo "bench: h2load timed out" >>"$out"
	return $rc
}

# bench_parse NAME OUT [--log F] [--ticks N] [--syscalls N] [--client-time F]
# [--latency] - one JSON line for an h2load run (see bench/parse_h2load.py).
bench_parse() {
	$PY "$BENCH_ROOT/bench/parse_h2load.py" "$@"
}

# bench_cpu_ticks PID - user+system clock ticks PID (all its threads) has used.
bench_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# bench_cpu_ns PID - nanoseconds of CPU PID's threads have run (the sum of
# their sum_exec_runtime, /proc/PID/task/*/schedstat; a thread that exits
# takes its share with it: servers keep theirs); where schedstat is missing,
# bench_cpu_ticks in nanoseconds (10 ms steps).
bench_cpu_ns() {
	local ns
	ns=$(cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ n += $1 } END { if (NR) printf "%.0f\n", n }')
	if [ -n "$ns" ]; then
		echo "$ns"
	else
		echo $(($(bench_cpu_ticks "$1") * 1000000000 / $(getconf CLK_TCK)))
	fi
}

# bench_loop_cpu_ns PID - nanoseconds of CPU PID's event-loop threads
# (igw-loop*) have run (schedstat's sum_exec_runtime); empty without schedstat.
bench_loop_cpu_ns() {
	local t n=0 any=""
	for t in /proc/"$1"/task/*; do
		case $(cat "$t/comm" 2>/dev/null) in
		igw-loop*)
			[ -r "$t/schedstat" ] || continue
			n=$((n + $(cut -d' ' -f1 "$t/schedstat"))) any=1
			;;
		esac
	done
	[ -n "$any" ] && echo "$n"
}

# bench_syscalls PID - read+write syscalls PID (all its threads) has made.
bench_syscalls() {
	awk '/^sysc[rw]:/ { n += $2 } END { print n + 0 }' "/proc/$1/io" 2>/dev/null || echo 0
}

# bench_run_h2load NAME PID OUT LOG JSONL [--latency] -- ARGS... - the one
# measured h2load run of every bench script (use bench_round or
# bench_latency_round): h2load pinned to its CPU, the server's CPU time (ns) and
# syscalls from /proc/PID around it, h2load's own CPU from GNU time; the
# parsed JSON line (parse_h2load.py: client_util, client_bound) appended to
# JSONL, and one progress line on stderr.  PID may be a list "P1 P2" (all
# their CPU is the server's).
bench_run_h2load() {
	local name=$1 pids=$2 out=$3 log=$4 jsonl=$5 lat=() p t0=0 t1=0 s0=0 s1=0
	shift 5
	if [ "${1:-}" = --latency ]; then
		lat=(--latency --log "$log")
		shift
	fi
	[ "${1:-}" = -- ] && shift
	for p in $pids; do
		t0=$((t0 + $(bench_cpu_ns "$p")))
		s0=$((s0 + $(bench_syscalls "$p")))
	done
	bench_h2load "$out" "$log" "$@"
	for p in $pids; do
		t1=$((t1 + $(bench_cpu_ns "$p")))
		s1=$((s1 + $(bench_syscalls "$p")))
	done
	local line
	line=$(bench_parse "$name" "$out" --cpu-ns $((t1 - t0)) --syscalls $((s1 - s0)) \
		--client-time "$out.time" "${lat[@]}")
	echo "$line" >>"$jsonl"
	printf '%s' "$line" | $PY -c '
import json, sys
r = json.load(sys.stdin)
u = r.get("client_util")
print("%s: %s%s: %s req/s, %s/%s ok, h2load CPU %s%s" % (
    sys.argv[1], "latency " if r.get("latency_round") else "", r["name"],
    "-" if r.get("rps") is None else "%.0f" % r["rps"], r.get("s2xx", "?"), r.get("total", "?"),
    "-" if u is None else "%.0f%%" % (100 * u),
    " (client-bound: not used for ratios)" if r.get("client_bound") else ""))' \
		"${BENCH_NAME:-bench}" >&2
}

# bench_round NAME PID OUT JSONL ARGS... - one throughput round: h2load
# ARGS never with --log-file (logging every request makes h2load the
# bottleneck); a round where h2load used more than BENCH_CLIENT_BOUND (0.9)
# of its core is marked client_bound and left out of server ratios.
bench_round() {
	local name=$1 pid=$2 out=$3 jsonl=$4 a
	shift 4
	for a in "$@"; do
		case $a in
		--log-file*) bench_fail "bench_round $name: no --log-file in a throughput round (bench_latency_round)" ;;
		esac
	done
	bench_run_h2load "$name" "$pid" "$out" "" "$jsonl" -- "$@"
}

# bench_latency_round NAME PID OUT LOGDIR JSONL ARGS... - one latency round:
# h2load ARGS with --log-file, the per-request lines pooled into
# LOGDIR/NAME.log (report.py's percentiles), the parsed line (marked
# latency_round) appended to JSONL; never used for throughput.
bench_latency_round() {
	local name=$1 pid=$2 out=$3 logdir=$4 jsonl=$5
	shift 5
	mkdir -p "$logdir"
	bench_run_h2load "$name" "$pid" "$out" "$out.log" "$jsonl" --latency -- "$@"
	cat "$out.log" >>"$logdir/$name.log" 2>/dev/null
	rm -f "$out.log"
}

# bench_rotate R ITEM... - the items rotated left by R - 1 (round R of an
# interleaved loop starts with a different item each round, so that none
# always goes first): bench_rotate 2 a b c -> b c a.
bench_rotate() {
	local r=$1 n i
	shift
	n=$#
	[ "$n" -gt 0 ] || return 0
	local items=("$@")
	for i in $(seq 0 $((n - 1))); do
		printf '%s ' "${items[$(((i + r - 1) % n))]}"
	done
	echo
}

# bench_row PART KEY VALUE LABEL [key=value ...] - one row for the summary
# (bench/rows.py documents the format; bench/summary.py reads them).
bench_row() {
	$PY "$BENCH_ROOT/bench/rows.py" "$@"
}

# bench_cmd_block CMD... - the exact commands of a table, as a code block
# (one argument per line).
bench_cmd_block() {
	echo '```'
	printf '%s\n' "$@"
	echo '```'
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
# bench_simd - the CPU's vector extensions that decide oneDNN's kernels, one
# line: the widest of AVX-512/AVX2, and whether INT8 has VNNI (without it
# the CPU backend runs INT8 inputs that may be negative as two u8 halves:
# docs/int8.md, and INT8 gains little or loses).
bench_simd() {
	local f
	f=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
	case " $f " in
	*" avx512f "*) printf 'AVX-512' ;;
	*" avx2 "*) printf 'AVX2' ;;
	*) printf 'below AVX2' ;;
	esac
	case " $f " in
	*" avx512_vnni "* | *" avx_vnni "*) printf ', VNNI (INT8 dot products)\n' ;;
	*) printf ', no VNNI (INT8 runs without it: see docs/int8.md)\n' ;;
	esac
}

bench_env_md() {
	local model
	model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "- machine: nproc=$(nproc), CPU: ${model:-unknown}, kernel $(uname -r)"
	echo "- SIMD: $(bench_simd)"
	echo "- git: $(cd "$BENCH_ROOT" && git describe --always --dirty 2>/dev/null || echo 'no commits')"
	echo "- load average when the section ended (1/5/15 min; the machine is shared): $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- pinning: ${PIN_SRV:-none} (server), ${PIN_CLI:-none} (h2load)"
	echo "- h2load: $($H2LOAD --version 2>/dev/null | head -1)"
}

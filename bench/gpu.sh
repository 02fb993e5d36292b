#!/usr/bin/env bash
# bench/gpu.sh - the GPU backend through the gateway on mlp-large (issue 13),
# against the CPU backend in the same run (`make bench-gpu`; part `gpu` of
# bench/run.sh).  Four gateways, started once, measured in interleaved rounds:
#
#   cpu          cpu0 alone (WORKERS workers x TPW OpenMP threads)
#   gpu          gpu0 alone (STREAMS streams, math fp32, CUDA Graphs on)
#   gpu-nograph  gpu0 alone, graphs: false
#   cpu+gpu      cpu0 + gpu0: the seed's comparison against `cpu` at the
#                same load (the same h2load -c/-m and requests)
#
# For each request size B in BATCHES (rows per request, Triton binary
# bodies, seeded inputs): h2load -n N/B... bounded in requests and seconds;
# req/s (median round), rows/s, p50/p99 (every request of every round),
# the GPU/CPU and graphs on/off ratios.  Every gateway first answers one
# request of each size correctly (bench/gpu_body.py check).
#
# Without a device (or built without CUDA) gpu0 is down: the section says
# so, with the gateway's reason, and the script exits 0.
#
# usage: bench/gpu.sh [OUT.md]
# env:   ROWS=40000 (rows per round and configuration) C=8 M=16 ROUNDS=3 LAT_ROUNDS=1
#        BATCHES="1 8 32 64" STREAMS=4 WORKERS= TPW= (default: a quarter of
#        the server CPUs each) MATH=fp32 GW_THREADS=4
#        GPU_AS_CPU=1: gpu0 is a CPU backend (tests this script without a device)
# Pinning: with 8 or more CPUs the servers get all but the last 4, h2load
# those 4 (SRV_CPU / CLI_CPU override, as in bench/lib.sh).
set -u
NP=$(nproc)
if [ "$NP" -ge 8 ]; then
	export SRV_CPU=${SRV_CPU:-0-$((NP - 5))} CLI_CPU=${CLI_CPU:-$((NP - 4))-$((NP - 1))}
fi
. "$(dirname "$0")/lib.sh"
bench_init gpu "8. GPU: gpu0 vs cpu0 through the gateway, mlp-large"

OUT_MD=${1:-/dev/stdout}
ROWS=${ROWS:-40000}
C=${C:-8}
M=${M:-16}
ROUNDS=${ROUNDS:-3}
LAT_ROUNDS=${LAT_ROUNDS:-1}
BATCHES=${BATCHES:-1 8 32 64}
STREAMS=${STREAMS:-4}
MATH=${MATH:-fp32}
GW_THREADS=${GW_THREADS:-4}
SRV_N=$([ "$NP" -ge 8 ] && echo $((NP - 4)) || echo 1)
WORKERS=${WORKERS:-$(((SRV_N + 3) / 4))}
TPW=${TPW:-$(((SRV_N + 3) / 4))}
MODEL_DIR="$BENCH_ROOT/config/models/mlp-large"

bench_need_infergw
[ -f "$MODEL_DIR/model.safetensors" ] || bench_fail "$MODEL_DIR missing (make models)"
$PY "$BENCH_ROOT/bench/gpu_body.py" gen "$MODEL_DIR" "$T" $BATCHES ||
	bench_fail "cannot build the request bodies (bench/gpu_body.py)"

cpu_yaml() {
	echo "  - {name: cpu0, kind: cpu, workers: $WORKERS, threads_per_worker: $TPW, cost: 1.0, models: [mlp-large]}"
}
# GPU_AS_CPU=1: gpu0 is a CPU backend (the script's own test, no device).
gpu_yaml() {	# gpu_yaml GRAPHS
	if [ "${GPU_AS_CPU:-0}" = 1 ]; then
		echo "  - {name: gpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 0.5, models: [mlp-large]}"
		return
	fi
	echo "  - {name: gpu0, kind: gpu, device: 0, streams: $STREAMS, math: $MATH, graphs: $1, cost: 0.5, models: [mlp-large]}"
}

# gw NAME BACKENDS... : write NAME.yaml, start a gateway on it (not waiting
# for ready: a gateway whose only backend is down never is); port and pid
# in GW_PORT[NAME], GW_PID[NAME].
declare -A GW_PORT GW_PID GW_APORT
gw() {
	local name=$1 port aport
	shift
	port=$(bench_free_port)
	aport=$(bench_free_port)	# /metrics: admin port only
	{
		bench_gw_yaml_head "$port" "$GW_THREADS" info "$aport"
		echo "models:"
		echo "  - {name: mlp-large, path: $MODEL_DIR, max_queue: 4096}"
		echo "backends:"
		printf '%s\n' "$@"
	} >"$T/$name.yaml"
	bench_start "$T/$name.log" "$INFERGW" --config "$T/$name.yaml"
	GW_PORT[$name]=$port
	GW_APORT[$name]=$aport
	GW_PID[$name]=$BENCH_LAST_PID
}

# skip WHY - the section says the GPU part did not run, and why; exit 0.
skip() {
	{
		echo "## $BENCH_TITLE"
		echo
		bench_env_md
		echo
		echo "**Skipped: $*.** Nothing was measured on a GPU. On a machine with a"
		echo "device: \`make bench-gpu\` (this script), \`make gpu-check\`, or"
		echo "\`tests/gpu/device_run.sh\` for both (docs/gpu.md)."
		echo
	} >>"$OUT_MD"
	echo "gpu: skipped: $*" >&2
	bench_row gpu skipped - "GPU through the gateway" note="not measured: $*"
	exit 0
}

# The GPU first: is there one?
gw gpu "$(gpu_yaml true)"
# ready, or the gateway's "left down" (no device) - whichever comes first
for _ in $(seq 600); do
	grep -q 'left down' "$T/gpu.log" && break
	curl -s -o /dev/null --max-time 1 --http2-prior-knowledge \
		"http://127.0.0.1:${GW_PORT[gpu]}/v2/health/ready" -w '%{http_code}' 2>/dev/null |
		grep -q 200 && break
	sleep 0.1
done
if grep -q 'left down' "$T/gpu.log" ||
	! bench_wait_http "http://127.0.0.1:${GW_PORT[gpu]}/v2/health/ready" "${GW_PID[gpu]}" 5; then
	why=$(grep -m1 -E 'CUDA|cuda|gpu0' "$T/gpu.log" || tail -2 "$T/gpu.log")
	why=$(printf '%s' "$why" | tr '\n`' '  ' | head -c 300)
	"$INFERGW" --version 2>&1 | grep -qw cuda || why="infergw built without CUDA ($why)"
	skip "gpu0 did not become ready: ${why:-see the gateway log}"
fi
gw gpu-nograph "$(gpu_yaml false)"
gw cpu "$(cpu_yaml)"
gw cpu+gpu "$(cpu_yaml)" "$(gpu_yaml true)"
for name in gpu-nograph cpu cpu+gpu; do
	bench_wait_http "http://127.0.0.1:${GW_PORT[$name]}/v2/health/ready" "${GW_PID[$name]}" 60 ||
		bench_fail "$name: not ready: $(tail -3 "$T/$name.log")"
done

url() { echo "http://127.0.0.1:${GW_PORT[$1]}/v2/models/mlp-large/infer"; }
hdrs() { echo "-H content-type:application/octet-stream -H inference-header-content-length:$(cat "$T/b$1.hl")"; }

# Every gateway answers each size correctly, then warms up (graph capture,
# service-time calibration) before anything is measured.
for name in gpu gpu-nograph cpu cpu+gpu; do
	for b in $BATCHES; do
		# shellcheck disable=SC2046
		curl -s --max-time 30 --http2-prior-knowledge -D "$T/h" -o "$T/r" \
			$(hdrs "$b") --data-binary @"$T/b$b.body" "$(url "$name")" ||
			bench_fail "$name: no answer for $b rows"
		$PY "$BENCH_ROOT/bench/gpu_body.py" check "$T/h" "$T/r" "$T/b$b.npy" >"$T/check" 2>&1 ||
			bench_fail "$name: wrong answer for $b rows: $(cat "$T/check") $(head -c 200 "$T/r")"
		# shellcheck disable=SC2046
		bench_h2load "$T/warm.out" "" -n $((C * M * 4)) -c "$C" -m "$M" -t 1 \
			$(hdrs "$b") -d "$T/b$b.body" "$(url "$name")"
	done
done

: >"$T/runs.jsonl"
: >"$T/lat.jsonl"
mkdir -p "$T/logs"
for r in $(seq "$ROUNDS"); do
	for b in $BATCHES; do
		n=$((ROWS / b))
		[ "$n" -lt $((C * M)) ] && n=$((C * M))
		for name in $(bench_rotate "$r" cpu gpu gpu-nograph cpu+gpu); do
			# shellcheck disable=SC2046
			bench_round "$name.b$b" "${GW_PID[$name]}" "$T/$name.$b.$r.out" "$T/runs.jsonl" \
				-n "$n" -c "$C" -m "$M" -t 1 $(hdrs "$b") -d "$T/b$b.body" "$(url "$name")"
		done
	done
done
# percentiles: separate rounds with --log-file
for r in $(seq "$LAT_ROUNDS"); do
	for b in $BATCHES; do
		n=$((ROWS / b))
		[ "$n" -lt $((C * M)) ] && n=$((C * M))
		for name in cpu gpu gpu-nograph cpu+gpu; do
			# shellcheck disable=SC2046
			bench_latency_round "$name.b$b" "${GW_PID[$name]}" "$T/lat.$name.$b.$r.out" \
				"$T/logs" "$T/lat.jsonl" -n "$n" -c "$C" -m "$M" -t 1 $(hdrs "$b") \
				-d "$T/b$b.body" "$(url "$name")"
		done
	done
done
[ -n "${BENCH_RAW_DIR:-}" ] && cp "$T/runs.jsonl" "$BENCH_RAW_DIR/gpu.jsonl"
for name in "${!GW_PID[@]}"; do bench_warn_if_dead "${GW_PID[$name]}"; done

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	dev=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
	echo "- device: ${dev:-unknown (no nvidia-smi)}"
	echo "- servers: every gateway listen.threads $GW_THREADS; mlp-large (max_batch_size 64; a GPU batch may hold up to its own limit, 256); cpu0: $WORKERS workers x $TPW threads; gpu0: $STREAMS streams, math $MATH, graphs on (\`gpu\`, \`cpu+gpu\`) or off (\`gpu-nograph\`), cost 0.5"
	echo "- bodies: Triton binary tensor extension, B rows x 1024 FP32 per request"
	echo "- commands ($ROUNDS throughput rounds, configurations interleaved, order rotating; req/s = median round; ratios = median of per-round ratios, client-bound rounds left out; percentiles from $LAT_ROUNDS latency round(s) with --log-file; n = max($ROWS / B, C x M)):"
	echo
	CMDS="$PIN_CLI h2load -n N -c $C -m $M -t 1 -H content-type:application/octet-stream -H inference-header-content-length:HL -d bB.body URL"
	bench_cmd_block "$CMDS"
	bench_row gpu _cmd - "commands" cmd="$CMDS"
	echo
	$PY "$BENCH_ROOT/bench/gpu_body.py" table "$T/runs.jsonl" "$T/logs" $BATCHES
	echo
	bench_md_block "Backend rows after the run (cpu+gpu: who served the mixed load):" \
		"$(curl -s --max-time 2 "http://127.0.0.1:${GW_APORT[cpu+gpu]}/metrics" |
			grep -E '^infergw_backend_(rows_total|batches_total|state)')"
	for name in cpu gpu gpu-nograph cpu+gpu; do
		echo "- $name: $(bench_log_problems "$T/$name.log")"
	done
	echo
} >>"$OUT_MD"

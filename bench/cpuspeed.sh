#!/usr/bin/env bash
# bench/cpuspeed.sh - mlp-large through the gateway (HTTP/2, Triton binary
# tensor bodies) against raw oneDNN in the same run, the two CPU-backend
# ratios of issues 15 and 18:
#   gw FP32 / raw f32   mlp-large at batch B through infergw (listen.threads
#                       1, cpu0: 1 worker x THREADS OpenMP threads) over raw
#                       oneDNN f32 matmuls at the same thread count
#                       (build/bench/kernel's raw column);
#   gw INT8 / gw FP32   its INT8 variant (build/infergw-quantize: dynamic
#                       per-row scales; CALIB=1 also a calibrated one) on
#                       the same gateway.
# Rounds interleave kernel, FP32, INT8 (and calibrated INT8) so that the
# neighbours' load hits all alike; each ratio is taken within a round, the
# table gives the median and the range over rounds.  Two measures: wall
# (GFLOP per second: the targets) and CPU (GFLOP per second of the
# process's CPU time, all threads: the gateway's from /proc/PID/stat over
# each h2load run, the kernel's from CLOCK_PROCESS_CPUTIME_ID per slice).
# On a machine shared with other work the wall figures include the time the
# neighbours took and the CPU ones do not; run with OMP_WAIT_POLICY=passive
# (both sides inherit it) for CPU figures that count no barrier spinning.
#
# usage: bench/cpuspeed.sh [OUT.md]      (markdown; default stdout)
# env:   THREADS=2 B=64 ROUNDS=5 N=96 (requests per h2load run) C=1 M=2
#        WORKERS=1 (cpu0's workers; WORKERS=2 THREADS=1 runs two batches at
#        once, one thread each; the kernel still runs -t THREADS x WORKERS)
#        NICE=10 (the backend's nice: the gateway's default; the kernel
#        runs at the same nice so that neither gets a better share of a
#        shared machine) CALIB=0
set -u
. "$(dirname "$0")/lib.sh"
bench_init cpuspeed "CPU backend: mlp-large through the gateway vs raw oneDNN, INT8 vs FP32"

# Not pinned: the backend's THREADS OpenMP threads need both cores, as the
# raw kernel has them; h2load (a few requests a second) costs little.
# shellcheck disable=SC2034  # read by lib.sh's bench_start / bench_h2load
PIN_SRV=""
# shellcheck disable=SC2034
PIN_CLI=""
OUT_MD=${1:-/dev/stdout}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-1}
B=${B:-64}
ROUNDS=${ROUNDS:-5}
N=${N:-96}
C=${C:-1}
M=${M:-2}
NICE=${NICE:-10}
CALIB=${CALIB:-0}
MODEL="$BENCH_ROOT/config/models/mlp-large"
Q8="$T/mlp-large-int8"
Q8S="$T/mlp-large-int8s"

bench_need_infergw
[ -f "$MODEL/model.safetensors" ] || bench_fail "$MODEL/model.safetensors missing (make models)"
make -C "$BENCH_ROOT" build/infergw-quantize build/bench/kernel >"$T/build.log" 2>&1 ||
	bench_fail "cannot build: $(tail -5 "$T/build.log")"
"$BENCH_ROOT/build/infergw-quantize" "$MODEL" "$Q8" >"$T/q.log" 2>&1 ||
	bench_fail "infergw-quantize failed: $(cat "$T/q.log")"
MODELS="mlp-large mlp-large-int8"
if [ "$CALIB" = 1 ]; then
	bench_quantize_calibrated "$MODEL" "$Q8S" mlp-large-int8s "$T/qs.log"
	MODELS="$MODELS mlp-large-int8s"
fi

$PY "$BENCH_ROOT/bench/gpu_body.py" gen "$MODEL" "$T" "$B" ||
	bench_fail "cannot build the request body (bench/gpu_body.py)"
PORT=$(bench_free_port)
{
	bench_gw_yaml_head "$PORT" 1 info
	echo "models:"
	echo "  - {name: mlp-large, path: $MODEL, max_queue: 4096}"
	echo "  - {name: mlp-large-int8, path: $Q8, max_queue: 4096}"
	[ "$CALIB" = 1 ] && echo "  - {name: mlp-large-int8s, path: $Q8S, max_queue: 4096}"
	echo "backends:"
	echo "  - {name: cpu0, kind: cpu, workers: $WORKERS, threads_per_worker: $THREADS, nice: $NICE, cost: 1.0, models: [${MODELS// /, }]}"
} >"$T/gw.yaml"
bench_start_gw "$T/gw.log" "$T/gw.yaml" "$PORT" 90
GW=$BENCH_LAST_PID
url() { echo "http://127.0.0.1:$PORT/v2/models/$1/infer"; }
# split on purpose: two -H options
HDRS="-H content-type:application/octet-stream -H inference-header-content-length:$(cat "$T/b$B.hl")"

# shellcheck disable=SC2086
curl -s --max-time 30 --http2-prior-knowledge -D "$T/h" -o "$T/r" $HDRS \
	--data-binary @"$T/b$B.body" "$(url mlp-large)" || bench_fail "mlp-large: no answer"
$PY "$BENCH_ROOT/bench/gpu_body.py" check "$T/h" "$T/r" "$T/b$B.npy" >"$T/check" 2>&1 ||
	bench_fail "mlp-large: wrong answer: $(cat "$T/check")"
for mdl in $MODELS; do	# warm-up (and every model answers)
	bench_h2load "$T/warm.out" "" -n $((C * M * 2)) -c "$C" -m "$M" -t 1 $HDRS \
		-d "$T/b$B.body" "$(url "$mdl")"
	grep -q "$((C * M * 2)) succeeded" "$T/warm.out" || bench_fail "$mdl: warm-up failed"
done

KT=$((THREADS * WORKERS))	# the raw kernel gets as many threads as the backend has
KCMD="nice -n $NICE build/bench/kernel -t $KT -r 5 -s 0.1 -b $B config/models/mlp-large"
: >"$T/runs.tsv"
for r in $(seq "$ROUNDS"); do
	nice -n "$NICE" "$BENCH_ROOT/build/bench/kernel" -t "$KT" -r 5 -s 0.1 -b "$B" "$MODEL" \
		>"$T/k.out" 2>"$T/k.err" || bench_fail "kernel failed: $(tail -3 "$T/k.err")"
	raw=$(awk '$1 == "RESULT" { print $4 }' "$T/k.out")
	rawcpu=$(awk '$1 == "CPU" { print $4 }' "$T/k.out")
	printf '%s\traw\t%s\t%s\n' "$r" "$raw" "$rawcpu" >>"$T/runs.tsv"
	for mdl in $MODELS; do
		t0=$(bench_cpu_ticks "$GW")
		bench_h2load "$T/run.out" "" -n "$N" -c "$C" -m "$M" -t 1 $HDRS -d "$T/b$B.body" \
			"$(url "$mdl")"
		t1=$(bench_cpu_ticks "$GW")
		rps=$(grep -oP 'finished in [^,]+, \K[0-9.]+(?= req/s)' "$T/run.out")
		ok=$(grep -oP '[0-9]+(?= succeeded)' "$T/run.out")
		[ "${ok:-0}" = "$N" ] || bench_fail "$mdl: only ${ok:-0} of $N requests succeeded"
		# CPU GFLOP/s: N requests' FLOPs over the gateway's CPU seconds
		cpu=$(awk -v n="$N" -v b="$B" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
			'BEGIN { printf("%.3f", (t > 0 ? n * b * 50.331648e-3 / (t / hz) : 0)) }')
		printf '%s\t%s\t%s\t%s\n' "$r" "$mdl" "$rps" "$cpu" >>"$T/runs.tsv"
	done
	echo "cpuspeed: round $r: $(awk -v r="$r" '$1 == r { printf "%s %s  ", $2, $3 }' "$T/runs.tsv")" >&2
done
bench_warn_if_dead "$GW"

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- gateway: listen.threads 1, cpu0 workers $WORKERS x threads_per_worker $THREADS, nice $NICE; h2load -n $N -c $C -m $M -t 1, Triton binary bodies of $B x 1024 FP32 (bench/gpu_body.py); answer check: $(cat "$T/check")"
	echo "- raw: \`$KCMD\` (raw oneDNN f32 matmul chain, format_any weights, fused bias+ReLU: the RESULT line's raw column)"
	echo "- $ROUNDS rounds, each: kernel, then ${MODELS// /, } through the gateway; GFLOP/s = req/s x $B x 50.3 MFLOP (INT8: the FP32 model's FLOPs, so columns compare as rows/s); CPU GFLOP/s = FLOPs / CPU seconds of the process; ratios within a round, median [min - max]; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
	echo
	$PY - "$T/runs.tsv" "$B" <<'PYEOF'
import statistics, sys
B = int(sys.argv[2])
rounds, cpu = {}, {}
for line in open(sys.argv[1]):
    r, what, v, c = line.split()
    rounds.setdefault(int(r), {})[what] = float(v)
    cpu.setdefault(int(r), {})[what] = float(c)
fl = 50.331648e6 * B / 1e9      # GFLOP per request (mlp-large: 2 x 12.58M MAC per row)
def stat(xs):
    return f"{statistics.median(xs):.3g} [{min(xs):.3g} - {max(xs):.3g}]"
rows = [("raw oneDNN f32 GFLOP/s", [d["raw"] for d in rounds.values()])]
for m in ("mlp-large", "mlp-large-int8", "mlp-large-int8s"):
    if all(m in d for d in rounds.values()):
        rows.append((f"gateway {m} GFLOP/s (FP32-equivalent)", [d[m] * fl for d in rounds.values()]))
rows.append(("**gateway FP32 / raw f32**", [d["mlp-large"] * fl / d["raw"] for d in rounds.values()]))
for m, name in (("mlp-large-int8", "dynamic per row"), ("mlp-large-int8s", "calibrated")):
    if all(m in d for d in rounds.values()):
        rows.append((f"**gateway INT8 ({name}) / FP32**",
                     [d[m] / d["mlp-large"] for d in rounds.values()]))
crows = [("raw oneDNN f32", [d["raw"] for d in cpu.values()])]
for m in ("mlp-large", "mlp-large-int8", "mlp-large-int8s"):
    if all(m in d for d in cpu.values()):
        crows.append((f"gateway {m}", [d[m] for d in cpu.values()]))
crows.append(("**gateway FP32 / raw f32**", [d["mlp-large"] / d["raw"] for d in cpu.values()]))
for m, name in (("mlp-large-int8", "dynamic per row"), ("mlp-large-int8s", "calibrated")):
    if all(m in d for d in cpu.values()):
        crows.append((f"**gateway INT8 ({name}) / FP32**",
                       [d[m] / d["mlp-large"] for d in cpu.values()]))
print(f"| batch {B}, wall GFLOP/s | median [min - max] over {len(rounds)} rounds |")
print("|---|---:|")
for name, xs in rows:
    print(f"| {name} | {stat(xs)} |")
    print(f"RESULT-CPUSPEED wall {name.strip('*')}: {statistics.median(xs):.4f}", file=sys.stderr)
print()
print(f"| batch {B}, GFLOP per CPU second | median [min - max] over {len(rounds)} rounds |")
print("|---|---:|")
for name, xs in crows:
    print(f"| {name} | {stat(xs)} |")
    print(f"RESULT-CPUSPEED cpu {name.strip('*')}: {statistics.median(xs):.4f}", file=sys.stderr)
PYEOF
	echo
	echo "- $(bench_log_problems "$T/gw.log")"
	echo
} >>"$OUT_MD"

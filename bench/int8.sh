#!/usr/bin/env bash
# bench/int8.sh - INT8 against FP32 on mlp-large (config/models/mlp-large,
# 1024-4096-4096-1024), in one run:
#   1. bench/int8.c: raw oneDNN s8s8 vs f32 matmul chains, and infergw's CPU
#      backend (be_cpu_ops directly) on the FP32 model vs its INT8 variant,
#      at batch 1, 8, 64, interleaved slices;
#   2. through the gateway: one infergw serving mlp-large and
#      mlp-large-int8 on cpu0, h2load POSTs of B-row requests (Triton binary
#      bodies) to each, configurations interleaved per round.
# The INT8 variant is made here by build/infergw-quantize (dynamic per-row
# activation scales, the tool's default); the gateway also serves a
# calibrated one (static scales from 256 rows like the bench's inputs:
# activations stay 8-bit inside oneDNN between layers).
#
# usage: bench/int8.sh [OUT.md]     (markdown section; default stdout)
# env:   THREADS=2 SLICES=15 SLICE_SECS=0.05 BATCHES=1,8,64
#        ROWS=2048 (rows per h2load run, n clamped to [64, 512] requests)
#        C=1 M=4 ROUNDS=2 (h2load clients, streams per client, rounds)
set -u
. "$(dirname "$0")/lib.sh"
bench_init int8 "10. INT8 vs FP32: mlp-large, raw oneDNN, CPU backend, gateway"

OUT_MD=${1:-/dev/stdout}
THREADS=${THREADS:-2}
SLICES=${SLICES:-15}
SLICE_SECS=${SLICE_SECS:-0.05}
BATCHES=${BATCHES:-1,8,64}
ROWS=${ROWS:-2048}
C=${C:-1}
M=${M:-4}
ROUNDS=${ROUNDS:-2}
MODEL="$BENCH_ROOT/config/models/mlp-large"
Q8="$T/mlp-large-int8"
Q8S="$T/mlp-large-int8s"

bench_need_infergw
[ -f "$MODEL/model.safetensors" ] || bench_fail "$MODEL/model.safetensors missing (make models)"
make -C "$BENCH_ROOT" build/infergw-quantize build/bench/int8 >"$T/build.log" 2>&1 ||
	bench_fail "cannot build build/bench/int8: $(tail -5 "$T/build.log")"
"$BENCH_ROOT/build/infergw-quantize" "$MODEL" "$Q8" >"$T/quantize.log" 2>&1 ||
	bench_fail "infergw-quantize failed: $(cat "$T/quantize.log")"
# calibration rows: uniform [-1, 1), the distribution of gpu_body.py's inputs
$PY - "$T/calib.safetensors" <<'PYEOF' || bench_fail "cannot write the calibration file"
import json, struct, sys
import numpy as np
x = np.random.default_rng(7).uniform(-1, 1, (256, 1024)).astype("<f4")
h = json.dumps({"features": {"dtype": "F32", "shape": list(x.shape),
                             "data_offsets": [0, x.nbytes]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + x.tobytes())
PYEOF
"$BENCH_ROOT/build/infergw-quantize" "$MODEL" "$Q8S" --calibration "$T/calib.safetensors" \
	>"$T/quantize.log" 2>&1 || bench_fail "infergw-quantize --calibration failed: $(cat "$T/quantize.log")"
sed -i 's/^name: .*/name: mlp-large-int8s/' "$Q8S/model.yaml"

# ---- 1. kernels: raw oneDNN and the backend, in one program ----
CMD="build/bench/int8 -t $THREADS -r $SLICES -s $SLICE_SECS -b $BATCHES config/models/mlp-large MLP_LARGE_INT8"
timeout -k 5 150 "$BENCH_ROOT/build/bench/int8" -t "$THREADS" -r "$SLICES" -s "$SLICE_SECS" \
	-b "$BATCHES" "$MODEL" "$Q8" >"$T/int8.out" 2>"$T/int8.err" ||
	bench_fail "build/bench/int8 failed: $(tail -5 "$T/int8.err")"
grep -E 'reference' "$T/int8.err" >&2

# ---- 2. through the gateway ----
BLIST=${BATCHES//,/ }
# shellcheck disable=SC2086
$PY "$BENCH_ROOT/bench/gpu_body.py" gen "$MODEL" "$T" $BLIST ||
	bench_fail "cannot build the request bodies (bench/gpu_body.py)"
PORT=$(bench_free_port)
{
	bench_gw_yaml_head "$PORT" 1 info 0
	echo "models:"
	echo "  - {name: mlp-large, path: $MODEL, max_queue: 4096}"
	echo "  - {name: mlp-large-int8, path: $Q8, max_queue: 4096}"
	echo "  - {name: mlp-large-int8s, path: $Q8S, max_queue: 4096}"
	echo "backends:"
	echo "  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 1.0, models: [mlp-large, mlp-large-int8, mlp-large-int8s]}"
} >"$T/gw.yaml"
bench_start_gw "$T/gw.log" "$T/gw.yaml" "$PORT" 60
GW=$BENCH_LAST_PID
url() { echo "http://127.0.0.1:$PORT/v2/models/$1/infer"; }
hdrs() { echo "-H content-type:application/octet-stream -H inference-header-content-length:$(cat "$T/b$1.hl")"; }
nreq() { local n=$((ROWS / $1)); [ $n -lt 64 ] && n=64; [ $n -gt 512 ] && n=512; echo $n; }

for b in $BLIST; do
	# the FP32 answer is checked against the float64 reference; the INT8
	# one (checked value by value in tests/integration/test_int8.py) must answer
	curl -s --max-time 30 --http2-prior-knowledge -D "$T/h" -o "$T/r" \
		$(hdrs "$b") --data-binary @"$T/b$b.body" "$(url mlp-large)" ||
		bench_fail "mlp-large: no answer for $b rows"
	$PY "$BENCH_ROOT/bench/gpu_body.py" check "$T/h" "$T/r" "$T/b$b.npy" >"$T/check" 2>&1 ||
		bench_fail "mlp-large: wrong answer for $b rows: $(cat "$T/check")"
	for q in mlp-large-int8 mlp-large-int8s; do
		code=$(curl -s --max-time 30 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
			$(hdrs "$b") --data-binary @"$T/b$b.body" "$(url $q)")
		[ "$code" = 200 ] || bench_fail "$q: HTTP $code for $b rows"
	done
	for mdl in mlp-large mlp-large-int8 mlp-large-int8s; do	# warm-up
		bench_h2load "$T/warm.out" "" -n $((C * M * 2)) -c "$C" -m "$M" -t 1 \
			$(hdrs "$b") -d "$T/b$b.body" "$(url $mdl)"
	done
done

: >"$T/gw.tsv"
: >"$T/gw.jsonl"
for r in $(seq "$ROUNDS"); do
	for b in $BLIST; do
		for mdl in $(bench_rotate "$r" mlp-large mlp-large-int8 mlp-large-int8s); do
			# shellcheck disable=SC2046
			bench_round "$mdl.b$b" "$GW" "$T/run.out" "$T/gw.jsonl" -n "$(nreq "$b")" \
				-c "$C" -m "$M" -t 1 $(hdrs "$b") -d "$T/b$b.body" "$(url $mdl)"
			read -r rps ok bound < <(tail -1 "$T/gw.jsonl" | $PY -c 'import json, sys
r = json.load(sys.stdin)
print(r.get("rps") or 0, r.get("succeeded") or 0, 1 if r.get("client_bound") else 0)')
			[ "${ok:-0}" = "$(nreq "$b")" ] || bench_fail "$mdl b$b: only ${ok:-0} of $(nreq "$b") requests succeeded"
			printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$b" "$mdl" "$rps" "$bound" >>"$T/gw.tsv"
		done
	done
done
bench_warn_if_dead "$GW"

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- files: mlp-large model.safetensors $(stat -c %s "$MODEL/model.safetensors") B FP32, $(stat -c %s "$Q8/model.safetensors") B INT8 (infergw-quantize, dynamic per-row activation scales)"
	echo "- kernels (\`$CMD\`, not pinned, $THREADS OpenMP threads): infergw = be_cpu_ops.submit of one B-row request (gather, matmuls, softmax, scatter; INT8 also quantizes each layer's input); raw = oneDNN matmul chains only, weights reordered into format_any, bias+ReLU fused; raw s8s8 keeps s8 between layers (requantized in the primitive). GFLOP/s counts the FP32 model's FLOPs for both, so they compare as rows/s; ratios = median of per-slice ratios"
	echo
	grep -v '^RESULT' "$T/int8.out"
	echo "- gateway: one infergw (listen.threads 1, cpu0: 1 worker x 1 thread, pinned ${PIN_SRV:-none}) serving the three models (INT8 dynamic per row, and calibrated: --calibration on 256 uniform [-1, 1) rows); h2load -c $C -m $M -t 1, Triton binary bodies of B x 1024 FP32, n = clamp($ROWS / B, 64, 512) requests; $ROUNDS rounds, models interleaved; rows/s = median round req/s x B"
	echo
	echo "| batch (rows/request) | FP32 rows/s | INT8 rows/s | **INT8 / FP32** | INT8 calibrated rows/s | **calibrated / FP32** |"
	echo "|---:|---:|---:|---:|---:|---:|"
	$PY - "$T/gw.tsv" "$T/int8.out" "$BENCH_ROOT/bench" <<'PYEOF'
import statistics, sys
sys.path.insert(0, sys.argv[3])
import rows
runs, bound = {}, {}
for line in open(sys.argv[1]):
    r, b, mdl, rps, cb = line.split()
    runs.setdefault((int(b), mdl), {})[int(r)] = float(rps)
    bound.setdefault((int(b), mdl), {})[int(r)] = cb == "1"
def ratio(b, mdl):
    """Median of per-round mdl / FP32 ratios; a client-bound round (h2load
    > 90% of its core) is left out.  Returns (median, per-round list)."""
    per = [runs[(b, mdl)][r] / runs[(b, "mlp-large")][r]
           for r in runs[(b, "mlp-large")] if r in runs[(b, mdl)]
           and runs[(b, "mlp-large")][r] and not bound[(b, "mlp-large")][r]
           and not bound[(b, mdl)].get(r)]
    med = statistics.median(runs[(b, mdl)].values()) / statistics.median(runs[(b, "mlp-large")].values())
    return (statistics.median(per) if per else med), per


for b in sorted({b for b, _ in runs}):
    f = statistics.median(runs[(b, "mlp-large")].values()) * b
    q = statistics.median(runs[(b, "mlp-large-int8")].values()) * b
    s = statistics.median(runs[(b, "mlp-large-int8s")].values()) * b
    rq, perq = ratio(b, "mlp-large-int8")
    rs, pers = ratio(b, "mlp-large-int8s")
    print(f"| {b} | {f:.0f} | {q:.0f} | **{rq:.2f}x** | {s:.0f} | **{rs:.2f}x** |")
    print(f"RESULT-GW {b} {f:.1f} {q:.1f} {rq:.3f} {s:.1f} {rs:.3f}", file=sys.stderr)
    for key, what, r, per in (("gw_b", "INT8", rq, perq), ("gw_static_b", "INT8 calibrated", rs, pers)):
        rows.emit("int8", f"{key}{b}", round(r, 4), f"through the gateway, {what} / FP32 rows/s, batch {b}",
                  unit="x", lo=round(min(per), 4) if per else None,
                  hi=round(max(per), 4) if per else None, rounds=len(per))
for line in open(sys.argv[2]):
    p = line.split()
    if len(p) == 8 and p[0] == "RESULT":
        rows.emit("int8", f"backend_b{p[1]}", float(p[6]),
                  f"CPU backend INT8 / FP32 GFLOP/s, batch {p[1]} (raw oneDNN s8/f32: {float(p[7]):.2f}x)",
                  unit="x")
PYEOF
	echo
	echo "- $(bench_log_problems "$T/gw.log")"
	echo
} >>"$OUT_MD"

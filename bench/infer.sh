#!/usr/bin/env bash
# bench/infer.sh - POST /v2/models/digits/infer (one 64-float sample, KServe
# v2 JSON) on infergw, against GET /v2/health/live on the same server in the
# same run: req/s, p50/p99 and the infer/health ratio; and the same request
# with its 64 values subnormal, and as a Python client prints float32 data
# (17 significant digits), each against the plain one.
#
# usage: bench/infer.sh [OUT.md]     (markdown section; default stdout)
# env:   N=50000 C=32 M=32 ROUNDS=7 WARM=10000 LAT_ROUNDS=2
# Throughput rounds without --log-file, latency rounds apart (bench/lib.sh).
#
# infergw runs with its default event-loop threads (listen.threads 0 = one
# per core) and a CPU backend with one worker of one OpenMP thread; the
# process is pinned to the server CPU like in h2_health.sh so that h2load
# keeps its own core.  The process (all its threads) is capped at
# BENCH_SERVER_CPU of a core (0.35 by default, bench/lib.sh) for health and
# infer rounds alike, so that h2load is not the bottleneck of the health
# rounds; BENCH_SERVER_CPU=0 (or no cgroup cpu controller) runs unthrottled.
set -u
. "$(dirname "$0")/lib.sh"
bench_init infer "2. Inference: POST /v2/models/digits/infer"
bench_cpu_budget_init || true	# unthrottled when unavailable (BENCH_CPU_NOTE says)

OUT_MD=${1:-/dev/stdout}
bench_load_params 50000 32 32 7 10000  # N C M ROUNDS WARM
MODEL_DIR="$BENCH_ROOT/config/models/digits"

bench_need_infergw

# Row 0 of the held-out set and its float64 reference answer.
$PY "$BENCH_ROOT/bench/digits_body.py" "$MODEL_DIR" "$T/body.json" "$T/expect.json" ||
	bench_fail "cannot build the request body (bench/digits_body.py)"

PORT=$(bench_free_port)
APORT=$(bench_free_port)	# /metrics is served on the admin port only
{
	bench_gw_yaml_head "$PORT" 0 warn "$APORT"
	cat <<EOF
models:
  # max_queue above h2load's -c x -m so that a full pipeline is never shed.
  - {name: digits, path: $MODEL_DIR, max_batch: 32, max_queue_delay_us: 0, max_queue: 4096}
backends:
  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 1.0, models: [digits]}
EOF
} >"$T/infergw.yaml"

bench_start_gw "$T/infergw.log" "$T/infergw.yaml" "$PORT" 30
PID=$BENCH_LAST_PID
bench_cap "$PID" infergw
LOOPS=$(bench_loop_threads "$PID")
BASE="http://127.0.0.1:$PORT"
URL_H="$BASE/v2/health/live"
URL_I="$BASE/v2/models/digits/infer"

# One request by hand: status 200 and an argmax equal to the label.
resp=$(curl -s --max-time 5 --http2-prior-knowledge -H 'content-type: application/json' \
	--data-binary @"$T/body.json" -w '\n%{http_code}' "$URL_I")
code=${resp##*$'\n'}
[ "$code" = "200" ] || bench_fail "one infer request gave HTTP $code: ${resp%$'\n'*}"
CHECK=$(printf '%s' "${resp%$'\n'*}" | $PY "$BENCH_ROOT/bench/digits_body.py" --check "$T/expect.json" 2>&1)
echo "infer: one request: $CHECK" >&2

# The attack case of tests/attack/test_subnormal_attacks.py: the same request
# with its 64 values subnormal (1e-39 .. 2.2e-39), parsed on the general path
# and computed flushed to zero (backends/cpu/cpu.c be_cpu_flush_enter).
$PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
d["inputs"][0]["data"] = [float("%.3g" % (1e-39 + i * 2e-41)) for i in range(64)]
json.dump(d, open(sys.argv[2], "w"), separators=(",", ":"))' "$T/body.json" "$T/sub.json" ||
	bench_fail "cannot write the subnormal body"

# The row as a Python client prints FP32 data (numpy's float32 values as
# doubles, json.dumps: 17 significant digits): each value made non-integral
# (x (1 + 1e-4) + 1e-3, rounded to float32) so that its shortest text is long.
$PY -c '
import json, struct, sys
d = json.load(open(sys.argv[1]))
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
d["inputs"][0]["data"] = [f32(v * 1.0001 + 0.001) for v in d["inputs"][0]["data"]]
json.dump(d, open(sys.argv[2], "w"), separators=(",", ":"))' "$T/body.json" "$T/d17.json" ||
	bench_fail "cannot write the 17-digit body"

CT=(-H 'content-type: application/json')
bench_h2load "$T/warm.h.out" "" $WARMFLAGS "$URL_H"
bench_h2load "$T/warm.i.out" "" $WARMFLAGS -d "$T/body.json" "${CT[@]}" "$URL_I"
: >"$T/runs.jsonl"
: >"$T/runs.i.jsonl"
: >"$T/runs.s.jsonl"
: >"$T/runs.d.jsonl"
mkdir -p "$T/logs"
: >"$T/lat.jsonl"
for r in $(seq "$ROUNDS"); do
	# alternate which goes first
	if [ $((r % 2)) = 1 ]; then
		bench_round health "$PID" "$T/h.$r.out" "$T/runs.jsonl" $H2FLAGS "$URL_H"
		bench_round infer "$PID" "$T/i.$r.out" "$T/runs.i.jsonl" \
			$H2FLAGS -d "$T/body.json" "${CT[@]}" "$URL_I"
		bench_round subnormal "$PID" "$T/s.$r.out" "$T/runs.s.jsonl" \
			$H2FLAGS -d "$T/sub.json" "${CT[@]}" "$URL_I"
		bench_round digits17 "$PID" "$T/d.$r.out" "$T/runs.d.jsonl" \
			$H2FLAGS -d "$T/d17.json" "${CT[@]}" "$URL_I"
	else
		bench_round digits17 "$PID" "$T/d.$r.out" "$T/runs.d.jsonl" \
			$H2FLAGS -d "$T/d17.json" "${CT[@]}" "$URL_I"
		bench_round subnormal "$PID" "$T/s.$r.out" "$T/runs.s.jsonl" \
			$H2FLAGS -d "$T/sub.json" "${CT[@]}" "$URL_I"
		bench_round infer "$PID" "$T/i.$r.out" "$T/runs.i.jsonl" \
			$H2FLAGS -d "$T/body.json" "${CT[@]}" "$URL_I"
		bench_round health "$PID" "$T/h.$r.out" "$T/runs.jsonl" $H2FLAGS "$URL_H"
	fi
done
for r in $(seq "$LAT_ROUNDS"); do
	bench_latency_round health "$PID" "$T/lh.$r.out" "$T/logs" "$T/lat.jsonl" $H2FLAGS "$URL_H"
	bench_latency_round infer "$PID" "$T/li.$r.out" "$T/logs" "$T/lat.jsonl" \
		$H2FLAGS -d "$T/body.json" "${CT[@]}" "$URL_I"
done
cat "$T/runs.i.jsonl" "$T/runs.s.jsonl" "$T/runs.d.jsonl" >>"$T/runs.jsonl"
[ -n "${BENCH_RAW_DIR:-}" ] && cp "$T/runs.jsonl" "$BENCH_RAW_DIR/infer.jsonl"
bench_warn_if_dead "$PID"
# Batch sizes the scheduler actually cut, and how many batches ran on the
# loop rather than on the worker (inline_us), if /metrics says.
METRICS=$(curl -s --max-time 2 "http://127.0.0.1:$APORT/metrics" 2>/dev/null |
	grep -E '^infergw_(batch_rows_(sum|count)|requests_total|queue_seconds_(sum|count)|execute_seconds_(sum|count)|backend_(inline_)?batches_total)\{' |
	grep -v 'backend="none"' | head -14)
ROWS_PER_BATCH=$(printf '%s\n' "$METRICS" | awk '/^infergw_batch_rows_sum/ {s += $2}
	/^infergw_batch_rows_count/ {c += $2} END {if (c > 0) printf "%.1f", s / c}')
[ -n "$ROWS_PER_BATCH" ] && METRICS="$METRICS"$'\n'"# mean rows per batch over the whole run: $ROWS_PER_BATCH"
[ -n "$METRICS" ] || METRICS="(none: GET http://127.0.0.1:$APORT/metrics answered no batching series)"

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- server: infergw, listen.threads 0 (= $LOOPS loop thread(s) under the pinning), CPU backend workers 1, threads_per_worker 1, digits max_batch 32, max_queue_delay_us 0, max_queue 4096"
	echo "- CPU budget: ${BENCH_CPU_NOTE:-server unthrottled (BENCH_SERVER_CPU=$BENCH_SERVER_CPU)}"
	echo "- body: row 0 of config/models/digits/heldout.safetensors, $(wc -c <"$T/body.json") bytes of KServe v2 JSON; response check: $CHECK"
	echo "- commands ($ROUNDS throughput rounds of health, infer, subnormal and 17-digit, the order reversed every other round, after warm-ups of $WARM each; req/s = median round; client-bound rounds (h2load > ${BENCH_CLIENT_BOUND} of its core) left out of the ratio; percentiles from $LAT_ROUNDS latency rounds with --log-file):"
	echo
	CMDS="$PIN_CLI h2load $H2FLAGS http://127.0.0.1:PORT/v2/health/live"$'\n'"$PIN_CLI h2load $H2FLAGS -d body.json -H 'content-type: application/json' http://127.0.0.1:PORT/v2/models/digits/infer"$'\n'"$PIN_CLI h2load $H2FLAGS -d sub.json -H 'content-type: application/json' http://127.0.0.1:PORT/v2/models/digits/infer   # sub.json: the 64 values subnormal"$'\n'"$PIN_CLI h2load $H2FLAGS -d d17.json -H 'content-type: application/json' http://127.0.0.1:PORT/v2/models/digits/infer   # d17.json: the 64 values as a Python client prints float32 data (17 digits)"
	bench_cmd_block "$CMDS"
	bench_row infer _cmd - "commands" cmd="$CMDS"$'\n'"# ${BENCH_CPU_NOTE:-server unthrottled}"
	echo
	$PY "$BENCH_ROOT/bench/report.py" infer "$T/runs.jsonl" "$T/logs"
	echo
	bench_md_block "/metrics after the run (batching):" "$METRICS"
	bench_log_problems "$T/infergw.log"
	echo
} >>"$OUT_MD"

#!/usr/bin/env bash
# tools/soak.sh - a long mixed run against one gateway, looking for what
# short tests miss: a request that never ends, memory that creeps, a
# sanitizer report after millions of requests, a crash under reloads.
#
# usage: tools/soak.sh [SECONDS]        (default 120; make soak)
# env:   INFERGW_BIN=build-asan/infergw (another build; ASan/TSan welcome)
#        SOAK_RSS_MB=64                  (allowed resident growth, see below)
#
# One gateway (one loop thread, one CPU worker; digits and "wide", a
# softmax over 64 x 1024 FP32 rows, bench/lib.sh bench_wide_model) under,
# all at once for SECONDS:
#   - five h2load loads, each a loop of bounded batches (-n), every batch
#     under a timeout: HTTP/2 JSON digits, HTTP/1.1 JSON digits, gRPC
#     ModelInfer digits, ModelStreamInfer calls of 4 x 256 KiB wide
#     messages, binary 256 KiB wide bodies.  A batch must end within its
#     timeout (a stream or request that never ends fails it), with every
#     request answered 2xx;
#   - two hostile clients (tools/soak_chaos.py): requests cut at random
#     bytes, RST_STREAM mid-body, DATA frames of 1 to 16,384 bytes, abrupt
#     closes, over HTTP/2, gRPC and HTTP/1.1;
#   - SIGHUP (a reload) every 2 s.
# Then: every gRPC call answered with status 0 (the gateway's counts),
# resident memory from a quarter of the run to its end grown by at most
# SOAK_RSS_MB, the gateway exits 0 on SIGTERM with no sanitizer report.
# The last line is "soak: passed (...)" or "soak: FAILED: ..." (exit 1).
# Everything runs on 127.0.0.1; processes are stopped by PID.
set -u
. "$(dirname "$0")/../bench/lib.sh"
bench_init soak
SECS=${1:-120}
RSS_MB=${SOAK_RSS_MB:-64}
PROBLEMS=()
problem() { PROBLEMS+=("$*"); echo "soak: problem: $*" >&2; }

bench_need_infergw
command -v "$H2LOAD" >/dev/null || bench_fail "h2load not found (make deps)"
bench_wide_model "$T/widemodel"
mkdir -p "$T/dg" "$T/wide"
$PY "$BENCH_ROOT/bench/grpc_bench.py" gen "$BENCH_ROOT/config/models/digits" "$T/dg" 1 0 \
	>/dev/null || bench_fail "cannot build the digits bodies"
$PY "$BENCH_ROOT/bench/grpc_bench.py" gen "$T/widemodel" "$T/wide" 64 1 >/dev/null ||
	bench_fail "cannot build the wide bodies"
for _ in 1 2 3 4; do cat "$T/wide/grpc.body"; done >"$T/wide/grpcs.body"

PORT=$(bench_free_port)
APORT=$(bench_free_port)
cat >"$T/gw.yaml" <<EOF
listen: {address: 127.0.0.1, port: $PORT, threads: 1}
admin: {address: 127.0.0.1, port: $APORT}
log: {level: warn, access: false}
models:
  - {name: digits, path: $BENCH_ROOT/config/models/digits, max_batch: 32, max_queue: 4096}
  - {name: wide, path: $T/widemodel, max_batch: 64, max_queue: 4096}
backends:
  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, models: [digits, wide]}
EOF
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
bench_start "$T/gw.log" "$INFERGW" --config "$T/gw.yaml"
GW=$BENCH_LAST_PID
bench_wait_http "http://127.0.0.1:$PORT/v2/health/ready" "$GW" 60 ||
	bench_fail "the gateway did not become ready: $(tail -5 "$T/gw.log")"
echo "soak: $INFERGW (pid $GW) on 127.0.0.1:$PORT for ${SECS}s" >&2

U=http://127.0.0.1:$PORT
G="$U/inference.GRPCInferenceService"
END=$((SECONDS + SECS))
# load NAME N TIMEOUT H2LOAD-ARGS...: batches of N requests until the end;
# NAME.sum gets "batches requests" when done, NAME.bad each failed batch.
load() {
	local name=$1 n=$2 tmo=$3 batches=0 reqs=0 out
	shift 3
	out="$T/$name.out"
	while [ $SECONDS -lt $END ]; do
		if ! timeout -k 5 "$tmo" $PIN_CLI "$H2LOAD" -t 1 -n "$n" "$@" >"$out" 2>&1; then
			echo "$name: h2load did not finish $n requests in ${tmo}s (or failed): $(tail -3 "$out" | tr '\n' ' ')" >>"$T/$name.bad"
			break
		fi
		if ! grep -q "^requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored, 0 timeout" "$out" ||
			! grep -q "^status codes: $n 2xx, 0 3xx, 0 4xx, 0 5xx" "$out"; then
			echo "$name: $(grep -E '^(requests|status codes):' "$out" | tr '\n' ' ')" >>"$T/$name.bad"
			break
		fi
		batches=$((batches + 1)) reqs=$((reqs + n))
	done
	echo "$batches $reqs" >"$T/$name.sum"
}
JSON=(-d "$T/dg/json.body" -H content-type:application/json)
GRPC=(-H content-type:application/grpc -H te:trailers)
load h2-json 20000 60 -c 4 -m 16 "${JSON[@]}" "$U/v2/models/digits/infer" &
L1=$!
load h1-json 2000 60 --h1 -c 2 "${JSON[@]}" "$U/v2/models/digits/infer" &
L2=$!
load grpc 10000 60 -c 2 -m 8 -d "$T/dg/grpc.body" "${GRPC[@]}" "$G/ModelInfer" &
L3=$!
load grpc-stream 200 90 -c 2 -m 2 -d "$T/wide/grpcs.body" "${GRPC[@]}" "$G/ModelStreamInfer" &
L4=$!
load binary 200 90 -c 1 -m 2 -d "$T/wide/bin.body" \
	-H "inference-header-content-length:$(cat "$T/wide/bin.hl")" "$U/v2/models/wide/infer" &
L5=$!
CH=()
for seed in 1 2; do
	$PIN_CLI timeout -k 5 $((SECS + 60)) $PY "$BENCH_ROOT/tools/soak_chaos.py" "$PORT" "$SECS" \
		"$seed" "$T/dg/json.body" "$T/dg/grpc.body" "$T/wide/grpc.body" >"$T/chaos$seed.out" 2>&1 &
	CH[$seed]=$!
done
RSS=()
while [ $SECONDS -lt $END ] && kill -0 "$GW" 2>/dev/null; do
	kill -HUP "$GW"
	RSS+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$GW/status" 2>/dev/null)")
	sleep 2
done
wait $L1 $L2 $L3 $L4 $L5
for seed in "${!CH[@]}"; do
	wait "${CH[$seed]}" || problem "chaos client $seed: $(tail -3 "$T/chaos$seed.out" | tr '\n' ' ')"
done
kill -0 "$GW" 2>/dev/null || problem "the gateway died: $(tail -5 "$T/gw.log")"

total=0
for name in h2-json h1-json grpc grpc-stream binary; do
	[ -f "$T/$name.bad" ] && problem "$(cat "$T/$name.bad")"
	read -r b r <"$T/$name.sum" 2>/dev/null || { b=0 r=0; }
	[ "$b" -gt 0 ] || problem "$name: no batch finished"
	echo "soak: $name: $b batches, $r requests" >&2
	total=$((total + r))
done
grep -h '^chaos' "$T"/chaos*.out >&2
M=$(curl -s --max-time 10 "http://127.0.0.1:$APORT/metrics")
bad=$(echo "$M" | awk '/^infergw_grpc_requests_total\{/ && !/code="0"/ && $2 > 0' | head -5)
[ -z "$bad" ] || problem "gRPC calls answered with an error: $bad"
# resident memory: from a quarter of the run (warm: pools, batches, the
# reload's second model set) to the end
n=${#RSS[@]}
if [ "$n" -ge 4 ]; then
	from=${RSS[$((n / 4))]} to=${RSS[$((n - 1))]} peak=0
	for v in "${RSS[@]:$((n / 4))}"; do [ "$v" -gt "$peak" ] && peak=$v; done
	echo "soak: resident $((from / 1024)) MB at a quarter, $((to / 1024)) MB at the end, peak $((peak / 1024)) MB" >&2
	[ $((peak - from)) -le $((RSS_MB * 1024)) ] ||
		problem "resident memory grew by $(((peak - from) / 1024)) MB (allowed $RSS_MB)"
fi
kill -TERM "$GW"
wait "$GW"
rc=$?
[ "$rc" -eq 0 ] || problem "the gateway exited $rc on SIGTERM"
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:' "$T/gw.log"; then
	problem "sanitizer report: $(grep -m3 -E 'ERROR:|WARNING: ThreadSanitizer|runtime error:' "$T/gw.log")"
fi
BENCH_PIDS=()
if [ ${#PROBLEMS[@]} -gt 0 ]; then
	echo "soak: FAILED: ${#PROBLEMS[@]} problem(s) in ${SECS}s; the first: ${PROBLEMS[0]}"
	exit 1
fi
echo "soak: passed ($total requests in ${SECS}s, ${#RSS[@]} reloads)"

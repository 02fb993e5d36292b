#!/usr/bin/env bash
# bench/payloads.sh - the same inference as KServe v2 JSON, as Triton's
# binary tensor extension and as msgpack, on one infergw in one run:
# req/s, p50/p99 and the binary/JSON and msgpack/JSON ratios.
#
#   digits     one 64-float row (row 0 of the held-out set)
#   mlp-large  one 1024-float row (seeded), 1024 floats back; ~50 MFLOP a
#              row, so that part is bounded to a few hundred requests
#   wide       64 rows of 1024 floats each way (256 KiB in, 256 KiB out),
#              binary, through a softmax: the wire path sets the pace;
#              HTTP/2 (-c 4 -m 4) against HTTP/1.1 (--h1 -c 8 -m 1),
#              server CPU and its event loop's CPU a request
#
# Each format is answered in its own kind: JSON -> JSON; binary input ->
# binary output (outputs[0].parameters.binary_data true, what tritonclient
# asks by default); msgpack (bin data) -> msgpack (accept).
#
# The server is capped at BENCH_SERVER_CPU of a core (bench/lib.sh, 0.35 by
# default) like in infer.sh: unthrottled, the digits rounds were bound by
# h2load (its core > 90% busy) and said nothing of the server; capped, a
# format's req/s is the server's, and the server CPU per request beside it
# compares the codecs' costs directly.  The mlp-large part runs uncapped:
# its compute, not h2load, sets the pace.
#
# usage: bench/payloads.sh [OUT.md]     (markdown; default stdout)
# env:   N=30000 C=16 M=16 ROUNDS=5 WARM=3000 LAT_ROUNDS=1   (digits)
#        NL=400 CL=4 ML=2 ROUNDS_L=3 WARM_L=40  (mlp-large)
#        NW=3000 ROUNDS_W=5  (wide: 64 x 1024 FP32 each way, a softmax)
set -u
. "$(dirname "$0")/lib.sh"
bench_init payloads "Payload formats: JSON vs binary tensors vs msgpack"

bench_cpu_budget_init || true	# unthrottled when unavailable (BENCH_CPU_NOTE says)

OUT_MD=${1:-/dev/stdout}
LAT_ROUNDS=${LAT_ROUNDS:-1}
bench_load_params 30000 16 16 5 3000  # N C M ROUNDS WARM
NW=${NW:-3000}
ROUNDS_W=${ROUNDS_W:-5}
NL=${NL:-400}
CL=${CL:-4}
ML=${ML:-2}
ROUNDS_L=${ROUNDS_L:-3}
WARM_L=${WARM_L:-40}
DIGITS="$BENCH_ROOT/config/models/digits"
LARGE="$BENCH_ROOT/config/models/mlp-large"
HELPER="$BENCH_ROOT/bench/payloads.py"

bench_need_infergw
command -v "$H2LOAD" >/dev/null || bench_fail "h2load not found"
if [ ! -f "$LARGE/model.safetensors" ] || [ ! -f "$LARGE/model.yaml" ]; then
	echo "payloads: generating $LARGE" >&2
	$PY "$BENCH_ROOT/tools/gen_mlp.py" --out "$LARGE" >&2 || bench_fail "tools/gen_mlp.py failed"
fi

mkdir -p "$T/digits" "$T/large" "$T/logs" "$T/wide" "$T/widemodel"
SRC_D=$($PY "$HELPER" gen "$DIGITS" "$T/digits") || bench_fail "cannot build the digits bodies"
SRC_L=$($PY "$HELPER" gen "$LARGE" "$T/large" --random 1) || bench_fail "cannot build the mlp-large bodies"
# "wide": large tensors with next to no compute (a softmax over 64 rows of
# 1024: 256 KiB in, 256 KiB out), so that the wire path, not the model,
# sets the pace: HTTP/2 against HTTP/1.1 on the same server.
bench_wide_model "$T/widemodel"
$PY "$BENCH_ROOT/bench/gpu_body.py" gen "$T/widemodel" "$T/wide" 64 ||
	bench_fail "cannot build the wide bodies"

PORT=$(bench_free_port)
{
	bench_gw_yaml_head "$PORT" 0 info 0
	cat <<EOF
models:
  # max_queue above h2load's -c x -m so that a full pipeline is never shed.
  - {name: digits, path: $DIGITS, max_batch: 32, max_queue_delay_us: 0, max_queue: 4096}
  # mlp-large one row a batch: batched, a codec that frees the loop sooner
  # made smaller batches (-c 4 -m 2, one core: 4.0 rows a batch binary, 5.7-6.3
  # JSON), and the weights streamed per batch, not the codec, set the CPU
  # per request (binary looked 1.35x JSON's).
  - {name: mlp-large, path: $LARGE, max_batch: 1, max_queue_delay_us: 0, max_queue: 4096}
  - {name: wide, path: $T/widemodel, max_batch: 64, max_queue_delay_us: 0, max_queue: 4096}
backends:
  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 1.0, models: [digits, mlp-large, wide]}
EOF
} >"$T/infergw.yaml"

bench_start_gw "$T/infergw.log" "$T/infergw.yaml" "$PORT" 60
PID=$BENCH_LAST_PID
bench_cap "$PID" infergw
BASE="http://127.0.0.1:$PORT"
ADMIN=$(sed -n 's/.*\badmin=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/infergw.log" | head -1)

# h2load flags per format: body file and headers
fmt_args() { # MODELDIR-TMP FORMAT
	case $2 in
	json) echo "-d $1/json.body -H content-type:application/json" ;;
	bin) echo "-d $1/bin.body -H inference-header-content-length:$(cat "$1/bin.hl")" ;;
	mp) echo "-d $1/mp.body -H content-type:application/msgpack -H accept:application/msgpack" ;;
	esac
}

# One request per format by hand (curl, h2c): status 200, values vs reference.
CHECKS=""
for part in digits large; do
	model=digits
	[ $part = large ] && model=mlp-large
	for f in json bin mp; do
		hdr=()
		case $f in
		json) hdr=(-H 'content-type: application/json') ;;
		bin) hdr=(-H "inference-header-content-length: $(cat "$T/$part/bin.hl")") ;;
		mp) hdr=(-H 'content-type: application/msgpack' -H 'accept: application/msgpack') ;;
		esac
		code=$(curl -s --max-time 20 --http2-prior-knowledge "${hdr[@]}" \
			--data-binary @"$T/$part/$f.body" -D "$T/$part/$f.rh" -o "$T/$part/$f.rb" \
			-w '%{http_code}' "$BASE/v2/models/$model/infer")
		[ "$code" = "200" ] || bench_fail "$model $f: one request gave HTTP $code: $(head -c 300 "$T/$part/$f.rb")"
		line=$($PY "$HELPER" check "$f" "$T/$part/$f.rh" "$T/$part/$f.rb" "$T/$part/expect.npy") ||
			bench_fail "$model $f: $line"
		CHECKS="$CHECKS- $model $line"$'\n'
		echo "payloads: $model $line" >&2
	done
done

# Warm-ups, then rounds: the three formats back to back in each round.
: >"$T/runs.jsonl"
run_part() { # PART MODEL N C M ROUNDS WARM
	local part=$1 model=$2 n=$3 c=$4 m=$5 rounds=$6 warm=$7 r f
	local url="$BASE/v2/models/$model/infer"
	for f in json bin mp; do
		# shellcheck disable=SC2046
		bench_h2load "$T/warm.$part.$f.out" "" -n "$warm" -c "$c" -m "$m" -t 1 \
			$(fmt_args "$T/$part" $f) "$url"
	done
	for r in $(seq "$rounds"); do
		for f in $(bench_rotate "$r" json bin mp); do
			# shellcheck disable=SC2046
			bench_round "$part.$f" "$PID" "$T/$part.$f.$r.out" "$T/runs.jsonl" \
				-n "$n" -c "$c" -m "$m" -t 1 $(fmt_args "$T/$part" $f) "$url"
		done
	done
	# latency: separate rounds with --log-file
	for r in $(seq "$LAT_ROUNDS"); do
		for f in json bin mp; do
			# shellcheck disable=SC2046
			bench_latency_round "$part.$f" "$PID" "$T/lat.$part.$f.$r.out" "$T/logs" \
				"$T/lat.jsonl" -n "$n" -c "$c" -m "$m" -t 1 $(fmt_args "$T/$part" $f) "$url"
		done
	done
}
H2LOAD_TIMEOUT=60 run_part digits digits "$N" "$C" "$M" "$ROUNDS" "$WARM"
bench_uncap infergw	# mlp-large: compute-bound, never client-bound
H2LOAD_TIMEOUT=120 run_part large mlp-large "$NL" "$CL" "$ML" "$ROUNDS_L" "$WARM_L"

# wide: one request checked, then HTTP/2 and HTTP/1.1 rounds in rotating
# order (uncapped: ~2 GB/s through loopback, h2load about half its core);
# the loop thread's CPU beside each round's server CPU.
WURL="$BASE/v2/models/wide/infer"
WHDR=(-H content-type:application/octet-stream -H "inference-header-content-length:$(cat "$T/wide/b64.hl")")
W_H2=(-n "$NW" -c 4 -m 4 -t 1 "${WHDR[@]}" -d "$T/wide/b64.body" "$WURL")
W_H1=(--h1 -n "$NW" -c 8 -m 1 -t 1 "${WHDR[@]}" -d "$T/wide/b64.body" "$WURL")
curl -s --max-time 20 --http2-prior-knowledge "${WHDR[@]}" --data-binary @"$T/wide/b64.body" \
	-D "$T/wide/rh" -o "$T/wide/rb" "$WURL" &&
	WCHECK=$($PY "$BENCH_ROOT/bench/gpu_body.py" check "$T/wide/rh" "$T/wide/rb" "$T/wide/b64.npy") ||
	bench_fail "wide: the answer is wrong: ${WCHECK:-no answer}"
bench_h2load "$T/warm.wide.out" "" "${W_H2[@]}"
: >"$T/wide.loop"
for r in $(seq "$ROUNDS_W"); do
	for w in $(bench_rotate "$r" h2 h1); do
		l0=$(bench_loop_cpu_ns "$PID")
		if [ "$w" = h2 ]; then
			bench_round "wide.h2" "$PID" "$T/wide.h2.$r.out" "$T/runs.jsonl" "${W_H2[@]}"
		else
			bench_round "wide.h1" "$PID" "$T/wide.h1.$r.out" "$T/runs.jsonl" "${W_H1[@]}"
		fi
		l1=$(bench_loop_cpu_ns "$PID")
		[ -n "$l0" ] && [ -n "$l1" ] && echo "$w $r $((l1 - l0))" >>"$T/wide.loop"
	done
done
bench_warn_if_dead "$PID"

RESP=$(curl -s --max-time 2 "http://127.0.0.1:${ADMIN:-0}/metrics" 2>/dev/null |
	grep -E '^infergw_http_responses_total' | head -12)

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- lscpu model name: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1); nproc: $(nproc)"
	echo "- server: infergw, listen.threads 0 (= $(bench_loop_threads "$PID") loop thread(s) under the pinning), CPU backend workers 1, threads_per_worker 1; digits max_batch 32, mlp-large max_batch 1 (batch size must not depend on the codec), max_queue_delay_us 0; admin port 0 (= ${ADMIN:-?})"
	echo "- CPU budget: ${BENCH_CPU_NOTE:-server unthrottled (BENCH_SERVER_CPU=$BENCH_SERVER_CPU)} for the digits part; the mlp-large part unthrottled (compute-bound)"
	echo "- digits input: $SRC_D; mlp-large input: $SRC_L"
	echo "- answers: JSON in -> JSON out; binary in -> binary out (binary_data true); msgpack (bin) in -> msgpack out"
	echo "- one request per format checked by hand (curl --http2-prior-knowledge):"
	printf '%s' "$CHECKS" | sed 's/^- /  - /'
	echo "- commands (digits: $ROUNDS throughput rounds after $WARM-request warm-ups; mlp-large: $ROUNDS_L rounds after $WARM_L; formats back to back within a round, order rotating; req/s = median round; client-bound rounds left out of the ratios; percentiles from $LAT_ROUNDS latency round(s) per format with --log-file):"
	echo
	CMDS=$(for part in digits large; do
		model=digits n=$N c=$C m=$M
		[ $part = large ] && model=mlp-large n=$NL c=$CL m=$ML
		for f in json bin mp; do
			echo "$PIN_CLI h2load -n $n -c $c -m $m -t 1 $(fmt_args "$T/$part" $f | sed "s#$T/##g") http://127.0.0.1:PORT/v2/models/$model/infer"
		done
	done)
	bench_cmd_block "$CMDS"
	bench_row payloads _cmd - "commands" cmd="$CMDS"
	echo
	$PY "$HELPER" table "$T/runs.jsonl" "$T/logs" \
		digits.json="$T/digits/json.body" digits.bin="$T/digits/bin.body" digits.mp="$T/digits/mp.body" \
		large.json="$T/large/json.body" large.bin="$T/large/bin.body" large.mp="$T/large/mp.body"
	echo
	echo "### Large tensors on the wire (wide: 64 x 1024 FP32 each way, binary, a softmax)"
	echo
	echo "- one answer checked by hand: $WCHECK"
	W_CMD="$PIN_CLI h2load -n $NW -c 4 -m 4 -t 1 -H content-type:application/octet-stream -H inference-header-content-length:HL -d b64.body URL   # HTTP/2; HTTP/1.1: --h1 -c 8 -m 1"
	bench_cmd_block "$W_CMD"
	echo
	$PY - "$T/runs.jsonl" "$T/wide.loop" "$NW" "$BENCH_ROOT/bench" "$W_CMD" <<'PYEOF'
import json, statistics, sys
sys.path.insert(0, sys.argv[4])
import rows
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loop = {}
for l in open(sys.argv[2]):
    w, r, ns = l.split()
    loop[(w, int(r))] = int(ns) / int(sys.argv[3]) / 1000
h2 = [r for r in runs if r["name"] == "wide.h2"]
h1 = [r for r in runs if r["name"] == "wide.h1"]
print("| round | HTTP/2 req/s | HTTP/1.1 req/s | HTTP/2 / HTTP/1.1 | server CPU us/req h2 / h1 | loop thread us/req h2 / h1 |")
print("|---:|---:|---:|---:|---:|---:|")
per = []
f = lambda v, k="%.0f": "-" if v is None else k % v
for i, (a, b) in enumerate(zip(h2, h1), 1):
    q = a["rps"] / b["rps"] if a.get("rps") and b.get("rps") else None
    if q and not a.get("client_bound") and not b.get("client_bound"):
        per.append(q)
    print("| %d | %s | %s | %s | %s / %s | %s / %s |" % (
        i, f(a.get("rps")), f(b.get("rps")), f(q, "%.2fx"), f(a.get("cpu_us_per_req")),
        f(b.get("cpu_us_per_req")), f(loop.get(("h2", i))), f(loop.get(("h1", i)))))
def med(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs), len(xs)) if xs else (None, None, None, 0)
m, lo, hi, n = med(per)
if m is not None:
    print()
    print("HTTP/2 / HTTP/1.1 req/s for 256 KiB each way: **%.2fx** (%.2f-%.2f, %d rounds)" % (m, lo, hi, n))
    rows.emit("payloads", "wide_h2_over_h1", round(m, 4),
              "wide tensors (256 KiB each way, binary): HTTP/2 / HTTP/1.1 req/s, same server",
              unit="x", lo=round(lo, 4), hi=round(hi, 4), rounds=n,
              per=[round(x, 4) for x in per], cmd=sys.argv[5])
for proto, rs in (("h2", h2), ("h1", h1)):
    m, lo, hi, n = med([r.get("cpu_us_per_req") for r in rs])
    if m is not None:
        rows.emit("payloads", "wide_%s_cpu_us" % proto, round(m, 1),
                  "wide tensors over %s: server CPU per request, us" % ("HTTP/2" if proto == "h2" else "HTTP/1.1"),
                  unit="us", lo=round(lo, 1), hi=round(hi, 1), rounds=n)
    m, lo, hi, n = med([v for (w, _), v in loop.items() if w == proto])
    if m is not None:
        rows.emit("payloads", "wide_%s_loop_us" % proto, round(m, 1),
                  "wide tensors over %s: event-loop thread CPU per request, us" % ("HTTP/2" if proto == "h2" else "HTTP/1.1"),
                  unit="us", lo=round(lo, 1), hi=round(hi, 1), rounds=n)
PYEOF
	echo
	bench_md_block "/metrics (admin port) after the run:" "$RESP"
	bench_log_problems "$T/infergw.log"
	echo
} >>"$OUT_MD"

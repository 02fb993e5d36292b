#!/usr/bin/env bash
# bench/grpc.sh - the same inference as KServe v2 gRPC (ModelInfer, raw
# contents), HTTP/2 JSON and HTTP/2 with Triton's binary tensor extension,
# on one infergw in one run: req/s and server CPU per request (from
# /proc/PID/stat around each h2load run), rounds interleaved.
#
#   digits     1 row (64 floats in, 10 out)
#   mlp-large  64 rows (1024 floats each in and out; ~3 GFLOP a request,
#              so that part is a few hundred requests)
#   wide       64 rows of 1024 floats each way through a softmax (next to
#              no compute: the wire path sets the pace), binary, gRPC and
#              gRPC streams of STREAM_MSGS messages a ModelStreamInfer call
#              (grpcs) only (JSON of 64k floats would take the part's
#              time); rows: gRPC / binary, stream / unary per message
#
# h2load drives gRPC unary calls as plain HTTP/2 POSTs of one framed
# ModelInferRequest (-d, content-type application/grpc, te: trailers); a
# gRPC error is still HTTP 200, so the gateway's own count of answers with
# grpc-status 0 (infergw_grpc_requests_total) is checked against the
# requests sent.  One request of each kind is checked against the reference
# first (grpc_bench.py check).  No --log-file: h2load's per-request log
# would cost the client more than the difference measured.
#
# The digits part runs with the server capped at BENCH_SERVER_CPU of a core
# (bench/lib.sh; 0.35 by default) so that the server, not h2load, sets the
# pace; the mlp-large and wide parts uncapped (compute-bound; payload-bound).
#
# usage: bench/grpc.sh [OUT.md]     (markdown; default stdout)
# env:   N=20000 C=16 M=16 ROUNDS=3 WARM=2000   (digits)
#        NL=48 CL=2 ML=2 ROUNDS_L=3 WARM_L=8    (mlp-large)
#        NW=2000 CW=4 MW=4 ROUNDS_W=5 WARM_W=200 (wide)
set -u
. "$(dirname "$0")/lib.sh"
bench_init grpc "gRPC vs HTTP/2 JSON vs binary tensors"

bench_cpu_budget_init || true	# unthrottled when unavailable (BENCH_CPU_NOTE says)

OUT_MD=${1:-/dev/stdout}
bench_load_params 20000 16 16 3 2000  # N C M ROUNDS WARM
NL=${NL:-48}
CL=${CL:-2}
ML=${ML:-2}
ROUNDS_L=${ROUNDS_L:-3}
WARM_L=${WARM_L:-8}
NW=${NW:-2000}
CW=${CW:-4}
MW=${MW:-4}
ROUNDS_W=${ROUNDS_W:-5}
WARM_W=${WARM_W:-200}
export STREAM_MSGS=${STREAM_MSGS:-4}	# messages a ModelStreamInfer call (grpc_bench.py table)
DIGITS="$BENCH_ROOT/config/models/digits"
LARGE="$BENCH_ROOT/config/models/mlp-large"
HELPER="$BENCH_ROOT/bench/grpc_bench.py"

bench_need_infergw
command -v "$H2LOAD" >/dev/null || bench_fail "h2load not found"
if [ ! -f "$LARGE/model.safetensors" ] || [ ! -f "$LARGE/model.yaml" ]; then
	echo "grpc: generating $LARGE" >&2
	$PY "$BENCH_ROOT/tools/gen_mlp.py" --out "$LARGE" >&2 || bench_fail "tools/gen_mlp.py failed"
fi
mkdir -p "$T/digits" "$T/large" "$T/wide"
SRC_D=$($PY "$HELPER" gen "$DIGITS" "$T/digits" 1 1) || bench_fail "cannot build the digits bodies"
SRC_L=$($PY "$HELPER" gen "$LARGE" "$T/large" 64 1) || bench_fail "cannot build the mlp-large bodies"
bench_wide_model "$T/widemodel"
SRC_W=$($PY "$HELPER" gen "$T/widemodel" "$T/wide" 64 1) || bench_fail "cannot build the wide bodies"
for _ in $(seq "$STREAM_MSGS"); do cat "$T/wide/grpc.body"; done >"$T/wide/grpcs.body"

PORT=$(bench_free_port)
APORT=$(bench_free_port)
{
	bench_gw_yaml_head "$PORT" 1 info "$APORT"
	cat <<EOF2
models:
  - {name: digits, path: $DIGITS, max_batch: 32, max_queue_delay_us: 0, max_queue: 4096}
  - {name: mlp-large, path: $LARGE, max_batch: 64, max_queue_delay_us: 0, max_queue: 4096}
  - {name: wide, path: $T/widemodel, max_batch: 64, max_queue_delay_us: 0, max_queue: 4096}
backends:
  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 1.0, models: [digits, mlp-large, wide]}
EOF2
} >"$T/infergw.yaml"
bench_start_gw "$T/infergw.log" "$T/infergw.yaml" "$PORT" 60
PID=$BENCH_LAST_PID
bench_cap "$PID" infergw
BASE="http://127.0.0.1:$PORT"

CHECKS=""
model_of() { case $1 in large) echo mlp-large ;; *) echo "$1" ;; esac; }
formats_of() { case $1 in wide) echo bin grpc grpcs ;; *) echo json bin grpc ;; esac; }
for part in digits large wide; do
	model=$(model_of $part)
	line=$($PY "$HELPER" check "$T/$part" "$PORT" "$model") || bench_fail "$model: $line"
	CHECKS="$CHECKS- $model: $line"$'\n'
	echo "grpc: $model $line" >&2
done

fmt_args() { # DIR FORMAT
	case $2 in
	json) echo "-d $1/json.body -H content-type:application/json" ;;
	bin) echo "-d $1/bin.body -H inference-header-content-length:$(cat "$1/bin.hl")" ;;
	grpc) echo "-d $1/grpc.body -H content-type:application/grpc -H te:trailers" ;;
	grpcs) echo "-d $1/grpcs.body -H content-type:application/grpc -H te:trailers" ;;
	esac
}
fmt_url() { # FORMAT MODEL
	if [ "$1" = grpc ]; then
		echo "$BASE/inference.GRPCInferenceService/ModelInfer"
	elif [ "$1" = grpcs ]; then
		echo "$BASE/inference.GRPCInferenceService/ModelStreamInfer"
	else
		echo "$BASE/v2/models/$2/infer"
	fi
}
grpc_ok() { # METHOD - the gateway's count of METHOD calls answered with grpc-status 0
	curl -s --max-time 5 "http://127.0.0.1:$APORT/metrics" |
		awk -v m="$1" '$0 ~ "^infergw_grpc_requests_total\\{method=\"" m "\",code=\"0\"\\}" { print $2 }' |
		tail -1
}

: >"$T/runs.jsonl"
GRPC_SENT=0
GRPCS_SENT=0
G0=$(grpc_ok ModelInfer)
S0=$(grpc_ok ModelStreamInfer)
run_part() { # PART MODEL N C M ROUNDS WARM
	local part=$1 model=$2 n=$3 c=$4 m=$5 rounds=$6 warm=$7 r f
	for f in $(formats_of "$part"); do
		# shellcheck disable=SC2046
		bench_h2load "$T/warm.$part.$f.out" "" -n "$warm" -c "$c" -m "$m" -t 1 \
			$(fmt_args "$T/$part" $f) "$(fmt_url $f "$model")"
		[ $f = grpc ] && GRPC_SENT=$((GRPC_SENT + warm))
		[ $f = grpcs ] && GRPCS_SENT=$((GRPCS_SENT + warm))
	done
	for r in $(seq "$rounds"); do
		# shellcheck disable=SC2046
		for f in $(bench_rotate "$r" $(formats_of "$part")); do
			# shellcheck disable=SC2046
			bench_round "$part.$f" "$PID" "$T/$part.$f.$r.out" "$T/runs.jsonl" \
				-n "$n" -c "$c" -m "$m" -t 1 $(fmt_args "$T/$part" $f) "$(fmt_url $f "$model")"
			[ $f = grpc ] && GRPC_SENT=$((GRPC_SENT + n))
			[ $f = grpcs ] && GRPCS_SENT=$((GRPCS_SENT + n))
			echo "grpc: round $r $part.$f: $(grep -o 'finished in .*req/s' "$T/$part.$f.$r.out"); $(grep -o 'status codes: .*' "$T/$part.$f.$r.out")" >&2
		done
	done
}
H2LOAD_TIMEOUT=60 run_part digits digits "$N" "$C" "$M" "$ROUNDS" "$WARM"
bench_uncap infergw	# mlp-large: compute-bound, never client-bound
H2LOAD_TIMEOUT=180 run_part large mlp-large "$NL" "$CL" "$ML" "$ROUNDS_L" "$WARM_L"
H2LOAD_TIMEOUT=120 run_part wide wide "$NW" "$CW" "$MW" "$ROUNDS_W" "$WARM_W"
bench_warn_if_dead "$PID"
G1=$(grpc_ok ModelInfer)
S1=$(grpc_ok ModelStreamInfer)
GRPC_OK=$(awk -v a="${G0:-0}" -v b="${G1:-0}" 'BEGIN { printf "%d", b - a }')
GRPCS_OK=$(awk -v a="${S0:-0}" -v b="${S1:-0}" 'BEGIN { printf "%d", b - a }')

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- server: infergw, listen.threads 1, CPU backend workers 1, threads_per_worker 1; digits max_batch 32, mlp-large and wide max_batch 64, max_queue_delay_us 0"
	echo "- CPU budget: ${BENCH_CPU_NOTE:-server unthrottled (BENCH_SERVER_CPU=$BENCH_SERVER_CPU)} for the digits part; the mlp-large and wide parts unthrottled (compute-bound; payload-bound)"
	echo "- digits input: $SRC_D; mlp-large input: $SRC_L; wide (a softmax over 1024 wide rows, bench/lib.sh bench_wide_model) input: $SRC_W"
	echo "- answers: JSON in -> JSON out; binary in -> binary out; gRPC raw_input_contents -> raw_output_contents"
	echo "- one request per format checked against the reference first:"
	printf '%s' "$CHECKS" | sed 's/^- /  - /'
	echo "- gRPC calls answered grpc-status 0 (the gateway's count): ModelInfer $GRPC_OK of $GRPC_SENT sent; ModelStreamInfer ($STREAM_MSGS messages each, every answer checked once beforehand) $GRPCS_OK of $GRPCS_SENT"
	echo "- commands (digits: $ROUNDS rounds after $WARM-request warm-ups; mlp-large: $ROUNDS_L rounds after $WARM_L; wide: $ROUNDS_W rounds after $WARM_W; formats interleaved within a round; req/s and CPU = median round):"
	echo
	echo '```'
	for part in digits large wide; do
		model=$(model_of $part) n=$N c=$C m=$M
		[ $part = large ] && n=$NL c=$CL m=$ML
		[ $part = wide ] && n=$NW c=$CW m=$MW
		for f in $(formats_of $part); do
			echo "$PIN_CLI h2load -n $n -c $c -m $m -t 1 $(fmt_args "$T/$part" $f | sed "s#$T/##g") $(fmt_url $f $model | sed "s#$BASE#http://127.0.0.1:PORT#")"
		done
	done
	echo '```'
	echo
	$PY "$HELPER" table "$T/runs.jsonl" "$(echo "$PIN_CLI h2load -n $N -c $C -m $M -t 1 $(fmt_args "$T/digits" grpc | sed "s#$T/##g") http://127.0.0.1:PORT/inference.GRPCInferenceService/ModelInfer")"
	echo
	bench_log_problems "$T/infergw.log"
	echo
} >>"$OUT_MD"
[ "$GRPC_OK" = "$GRPC_SENT" ] || bench_fail "gRPC: $GRPC_OK calls answered OK of $GRPC_SENT sent"
[ "$GRPCS_OK" = "$GRPCS_SENT" ] ||
	bench_fail "gRPC streams: $GRPCS_OK calls answered OK of $GRPCS_SENT sent"

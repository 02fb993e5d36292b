#!/usr/bin/env bash
# bench/wire_instr.sh - instructions (callgrind Ir, user space) and read/write
# syscalls per request, for infergw and the anchor servers, under a fixed
# bounded h2load run.  Neighbours on a shared machine do not move these
# counts, so they guide wire-speed work where req/s cannot.
#
# usage: bench/wire_instr.sh [CASE...]
#   cases: igw-h2 igw-h1 igw-infer h2o-h2 h2o-h1 ngh-h2   (default: these)
#          igw-bin igw-mp igw-grpc igw-grpcs: the digits infer as a Triton
#          binary tensor body, as msgpack (bench/payloads.py's bodies), as a
#          gRPC ModelInfer call (bench/grpc_bench.py's) and as the same
#          message on a ModelStreamInfer stream of its own, on request
# env:   N=20000 C=32 M=32 WARM=2000
#
# Each server runs alone under valgrind --tool=callgrind with collection off;
# collection is switched on for the measured run only (callgrind_control),
# so startup and warm-up are not counted; for infergw only what runs under
# event_base_loop (its loop threads, not the CPU backend's workers).
# Syscalls come from /proc/PID/io (inflated under valgrind: indicative only).
set -u
. "$(dirname "$0")/lib.sh"
bench_init wire_instr
N=${N:-20000}
C=${C:-32}
M=${M:-32}
WARM=${WARM:-2000}
CASES=${*:-igw-h2 igw-h1 igw-infer h2o-h2 h2o-h1 ngh-h2}
bench_health_docroot "$T"
$PY "$BENCH_ROOT/bench/digits_body.py" "$BENCH_ROOT/config/models/digits" "$T/body.json" \
	"$T/expect.json" || bench_fail "digits_body.py"
case " $CASES " in
*" igw-bin "* | *" igw-mp "*)
	mkdir -p "$T/pl" && $PY "$BENCH_ROOT/bench/payloads.py" gen "$BENCH_ROOT/config/models/digits" "$T/pl" \
		>/dev/null || bench_fail "payloads.py gen" ;;
esac
case " $CASES " in
*" igw-grpc "* | *" igw-grpcs "*)
	mkdir -p "$T/gr" && $PY "$BENCH_ROOT/bench/grpc_bench.py" gen \
		"$BENCH_ROOT/config/models/digits" "$T/gr" 1 0 >/dev/null ||
		bench_fail "grpc_bench.py gen" ;;
esac

VG=(valgrind --tool=callgrind --instr-atstart=no)

start_server() {	# KIND PORT OUTFILE
	local kind=$1 port=$2 cg=$3
	case $kind in
	igw)
		bench_digits_gw_yaml "$port" 4096 >"$T/igw.yaml"
		# One profile per thread: the CPU backend's are left out below.
		bench_start "$T/srv.log" "${VG[@]}" --separate-threads=yes \
			--callgrind-out-file="$cg" "$INFERGW" \
			--config "$T/igw.yaml" ;;
	h2o)
		bench_h2o_yaml "$T" "$port" >"$T/h2o.yaml"
		bench_start "$T/srv.log" "${VG[@]}" --callgrind-out-file="$cg" /usr/bin/h2o \
			-c "$T/h2o.yaml" ;;
	ngh)
		bench_start "$T/srv.log" "${VG[@]}" --callgrind-out-file="$cg" /usr/sbin/nghttpd \
			--no-tls -n 1 -a 127.0.0.1 -d "$T/htdocs" "$port" ;;
	esac
}

printf '%-10s %8s %12s %10s\n' case N 'Ir/req' 'sysc/req'
for cs in $CASES; do
	kind=${cs%%-*}
	what=${cs#*-}
	port=$(bench_free_port)
	cg="$T/cg.$cs"
	start_server "$kind" "$port" "$cg"
	pid=$BENCH_LAST_PID
	url="http://127.0.0.1:$port/v2/health/live"
	bench_wait_http "$url" "$pid" 60 || bench_fail "$cs did not start: $(tail -3 "$T/srv.log")"
	args=(-c "$C" -m "$M" -t 1)
	case $what in
	h1) args=(--h1 -c "$C" -m 1 -t 1) ;;
	infer)
		url="http://127.0.0.1:$port/v2/models/digits/infer"
		args+=(-d "$T/body.json" -H 'content-type: application/json') ;;
	bin)
		url="http://127.0.0.1:$port/v2/models/digits/infer"
		args+=(-d "$T/pl/bin.body" -H "inference-header-content-length: $(cat "$T/pl/bin.hl")") ;;
	grpc | grpcs)
		method=ModelInfer
		[ "$what" = grpcs ] && method=ModelStreamInfer
		url="http://127.0.0.1:$port/inference.GRPCInferenceService/$method"
		args+=(-d "$T/gr/grpc.body" -H 'content-type: application/grpc' -H 'te: trailers') ;;
	mp)
		url="http://127.0.0.1:$port/v2/models/digits/infer"
		args+=(-d "$T/pl/mp.body" -H 'content-type: application/msgpack'
			-H 'accept: application/msgpack') ;;
	esac
	H2LOAD_TIMEOUT=300 bench_h2load "$T/warm.out" "" -n "$WARM" "${args[@]}" "$url"
	s0=$(bench_syscalls "$pid")
	callgrind_control -i on "$pid" >/dev/null 2>&1
	H2LOAD_TIMEOUT=600 bench_h2load "$T/run.out" "" -n "$N" "${args[@]}" "$url"
	callgrind_control -i off "$pid" >/dev/null 2>&1
	s1=$(bench_syscalls "$pid")
	ok=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' "$T/run.out")
	callgrind_control -d "$pid" >/dev/null 2>&1
	bench_stop "$pid"
	ir=0
	for f in "$cg"*; do
		# infergw: only its loop threads; a backend worker, or an OpenMP
		# team thread spinning on its barrier (which never names
		# be_cpu_worker_main), is not the wire's work.
		if [ "$kind" = igw ]; then
			grep -q be_cpu_worker_main "$f" && continue
			grep -q 'event_base_loop' "$f" || continue
		fi
		ir=$((ir + $(awk '/^totals:/ { n += $2 } END { print n + 0 }' "$f")))
	done
	[ "${ok:-0}" -gt 0 ] || ok=1
	printf '%-10s %8s %12.0f %10.2f\n' "$cs" "$ok" "$(echo "$ir / $ok" | bc -l)" \
		"$(echo "($s1 - $s0) / $ok" | bc -l)"
	[ -n "${KEEP_CG:-}" ] && cp "$cg"* "$KEEP_CG/" 2>/dev/null
	rm -f "$cg"*
done

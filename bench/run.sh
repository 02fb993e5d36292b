#!/usr/bin/env bash
# bench/run.sh - every infergw benchmark (`make bench`); writes the run's
# full report to bench/results/YYYY-MM-DD-HHMM.md (committed) and
# bench/RESULTS.md, the summary generated from it (bench/summary.py).
#
#   1. bench/h2_health.sh  HTTP/2 anchor: GET /v2/health/live, infergw vs
#                          nghttpd vs h2o (same h2load flags, 1 server thread);
#                          HTTP/1.1 keep-alive (--h1 -m 1) vs h2o
#   2. bench/infer.sh      POST /v2/models/digits/infer vs health, same server
#   3. bench/kernel.sh     mlp-large GFLOP/s at batch 1/8/64, vs raw oneDNN;
#                          batch 64 through HTTP/2 vs raw oneDNN, same threads
#   4. bench/payloads.sh   JSON vs Triton binary vs msgpack bodies
#   5. bench/overload.sh   goodput at 2x capacity, 429 latency (slow model)
#   6. bench/reload.sh     reload request to swap, unchanged / model added
#   7. bench/remote.sh     gateway -> infergw-agent vs in-process CPU; 1/2/4
#                          agents; CPU only vs CPU + agents at one objective
#   8. bench/gpu.sh        mlp-large on gpu0 vs cpu0 through the gateway, per
#                          request size; graphs on/off; CPU vs CPU + GPU
#                          (skipped, with the reason, without a device)
#   9. bench/dpdk.sh       the DPDK fast path: software ceiling per lcore and
#                          stage cycles; UDP over veth vs HTTP/2 (root, DPDK build)
#  10. bench/int8.sh       INT8 vs FP32, digits and mlp-large: file sizes,
#                          digits held-out accuracy, batch 1/8/64 through
#                          the gateway and as raw oneDNN
#  11. bench/sim/scale.sh  the simulator at 10,000 backends: requests per wall
#                          second with the gateway's policy code
#  12. bench/instr.sh      instructions per request under callgrind: infergw
#                          vs h2o vs nghttpd (health), infergw's infer; the
#                          figures a shared machine's neighbours do not move
#   (+ bench/grpc.sh when it exists: part `grpc`)
#
# usage: bench/run.sh [PART]...   PART: h2 infer kernel payloads overload reload
#                                       remote gpu dpdk int8 sim instr grpc (default: all)
# env:   BENCH_QUICK=1 (`make bench-quick`): fewer requests and rounds in every
#        part (quick_env below), a few minutes in all; writes bench/results/quick/
#        (not committed)
#        and leaves bench/RESULTS.md alone.
#        BENCH_SERVER_CPU=0.35 (default): h2, infer and the digits parts of
#        payloads and grpc cap each server at this
#        share of a core (cgroup CFS quota, bench/lib.sh) so that h2load is not
#        the bottleneck; 0 = unthrottled (also without root or a cgroup cpu
#        controller; the report says which).
#
# How a part plugs in: a script bench/NAME.sh that appends its markdown
# section to the file named by its first argument or prints it on stdout
# (both land in the full report; progress goes to stderr), exits non-zero
# when it fails, and hands its figures to the summary as rows (bench/rows.py:
# shell `bench_row PART KEY VALUE LABEL [k=v...]`, Python `rows.emit(...)`)
# into $BENCH_ROWS, which this script sets; $BENCH_QUICK=1 asks it to be
# brief.  Add it to ALL and the case below; the summary gives a part it does
# not know a section of its own (bench/summary.py AREAS names the known ones).
#
# Raw per-round results (JSON lines) stay in bench/results/raw/ (ignored).
# Each part is bounded in requests and seconds; all traffic is 127.0.0.1.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

ALL="h2 infer kernel payloads overload reload remote gpu dpdk int8 sim instr counters"
[ -f bench/grpc.sh ] && ALL="$ALL grpc"
QUICK=${BENCH_QUICK:-0}
# The quick run leaves out dpdk (it sets up a veth pair and a network
# namespace as root); name it to run it.
[ "$QUICK" = 1 ] && [ $# = 0 ] && ALL=${ALL/ dpdk/}
PARTS=${*:-$ALL}
STAMP=$(date -u +%Y-%m-%d-%H%M)
if [ "$QUICK" = 1 ]; then
	RES=bench/results/quick
	SUMMARY=$RES/RESULTS.md
else
	RES=bench/results
	SUMMARY=bench/RESULTS.md
fi
export BENCH_QUICK=$QUICK	# a plug-in part may shrink itself on it
# quick_env PART - the smaller knobs of PART for `make bench-quick` (the
# scripts' own env variables; N means different things in different parts)
quick_env() {
	[ "$QUICK" = 1 ] || return 0
	case $1 in
	h2) echo N=20000 ROUNDS=3 WARM=2000 LAT_ROUNDS=1 ;;
	infer) echo N=10000 ROUNDS=3 WARM=2000 LAT_ROUNDS=1 ;;
	kernel) echo SLICES=5 GW_ROUNDS=4 GW_SLICES=5 GW_N=20 ;;
	payloads) echo N=5000 ROUNDS=2 WARM=500 LAT_ROUNDS=1 NL=64 ROUNDS_L=2 WARM_L=8 NW=1000 ROUNDS_W=2 ;;
	overload) echo ROUNDS=1 DUR=3 NCAP=1000 ;;
	reload) echo N=10 ;;
	remote) echo N=5000 ROUNDS=2 WARM=500 LAT_N=300 LAT_ROUNDS=1 ;;
	gpu) echo ROWS=4000 ROUNDS=1 ;;
	int8) echo SLICES=4 ROWS=512 ROUNDS=1 ;;
	dpdk) echo N=2000 SECS=2 ;;
	sim) echo SIM_QUICK=1 ;;
	instr) echo N=5000 ;;
	counters) echo N=500000 ROUNDS=3 ;;
	esac
}
mkdir -p "$RES"
OUT=$RES/$STAMP.md
TMP=$(mktemp /tmp/infergw-bench-run.XXXXXX)
export BENCH_RAW_DIR="$ROOT/bench/results/raw"
mkdir -p "$BENCH_RAW_DIR"
export BENCH_ROWS="$BENCH_RAW_DIR/rows.$STAMP.jsonl"
: >"$BENCH_ROWS"
trap 'rm -f "$TMP"' EXIT
/usr/bin/python3 bench/summary.py machine >>"$BENCH_ROWS"

{
	echo "# infergw benchmarks, full report ($STAMP UTC$([ "$QUICK" = 1 ] && echo ', quick run'))"
	echo
	echo "Generated by \`make bench$([ "$QUICK" = 1 ] && echo -quick)\` (bench/run.sh); the summary is"
	echo "$SUMMARY. The machine is shared: compare only ratios measured in the same run."
	echo
} >"$TMP"

rc=0
t0=$(date +%s)
for p in $PARTS; do
	to_stdout=0
	limit=240
	case $p in
	h2) script=bench/h2_health.sh ;;
	infer) script=bench/infer.sh ;;
	kernel) script=bench/kernel.sh ;;
	payloads) script=bench/payloads.sh ;;
	overload) script=bench/overload.sh; to_stdout=1 ;;
	reload) script=bench/reload.sh; to_stdout=1 ;;
	remote) script=bench/remote.sh ;;
	gpu) script=bench/gpu.sh ;;
	dpdk) script=bench/dpdk.sh ;;
	int8) script=bench/int8.sh ;;
	sim) script=bench/sim/scale.sh; limit=300 ;;
	instr) script=bench/instr.sh; limit=900 ;;
	grpc) script=bench/grpc.sh ;;
	counters) script=bench/counters.sh; limit=120 ;;
	*) echo "run.sh: unknown part '$p' ($ALL)" >&2; exit 2 ;;
	esac
	echo "== $script" >&2
	s0=$(date +%s)
	# Hard bound per part, whatever happens inside.
	if [ "$to_stdout" = 1 ]; then
		{ echo; echo "## $p ($script)"; echo; echo '```'; } >>"$TMP"
		# shellcheck disable=SC2046
		env $(quick_env "$p") timeout -k 10 "$limit" bash "$script" >>"$TMP"
		prc=$?
		echo '```' >>"$TMP"
	else
		# the section goes to "$TMP"; whatever the part prints on stdout too
		# shellcheck disable=SC2046
		env $(quick_env "$p") timeout -k 10 "$limit" bash "$script" "$TMP" >>"$TMP"
		prc=$?
	fi
	if [ $prc != 0 ]; then
		echo "run.sh: $script failed ($prc)" >&2
		rc=1
		/usr/bin/python3 bench/rows.py "$p" failed - "$script" \
			note="$script exited $prc (see the full report)"
	else
		/usr/bin/python3 bench/rows.py "$p" _ran - "$script" 2>/dev/null
	fi
	echo "== $script: $(($(date +%s) - s0)) s" >&2
done
echo "_Total wall time: $(($(date +%s) - t0)) s._" >>"$TMP"

cp "$TMP" "$OUT"
QFLAG=()
[ "$QUICK" = 1 ] && QFLAG=(--quick)
/usr/bin/python3 bench/summary.py write "$BENCH_ROWS" "$SUMMARY" --report "$OUT" \
	--stamp "$STAMP UTC" "${QFLAG[@]}" || rc=1
echo >&2
cat "$SUMMARY"
echo >&2
echo "run.sh: wrote $OUT and $SUMMARY (rows: $BENCH_ROWS)" >&2
exit $rc

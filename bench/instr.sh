#!/usr/bin/env bash
# bench/instr.sh - instructions per request under callgrind (bench/wire_instr.sh):
# infergw vs h2o vs nghttpd on GET /v2/health/live over HTTP/2 and
# HTTP/1.1, and infergw's digits JSON infer, in one run.  Neighbours on a
# shared machine move req/s by tens of percent from round to round (the
# spreads of bench/h2_health.sh); they do not move these counts, so the
# ratios here are the stable companion of the req/s ratios.  They count
# user-space work only: a server's system calls (h2o makes one more per
# request than infergw) are in the req/s and CPU figures, not here.
#
# Also infergw's digits infer as a Triton binary body, msgpack and gRPC,
# against the same infer in JSON.
#
# usage: bench/instr.sh [OUT.md]     (markdown section; default stdout)
# env:   N=20000 (requests per case; BENCH_QUICK=1: 5000), C=32 M=32
set -u
. "$(dirname "$0")/lib.sh"
bench_init instr "12. Instructions per request (callgrind)"
OUT_MD=${1:-/dev/stdout}
if [ "${BENCH_QUICK:-0}" = 1 ]; then N=${N:-5000}; else N=${N:-20000}; fi
C=${C:-32}
M=${M:-32}
command -v valgrind >/dev/null 2>&1 || bench_fail "valgrind not installed (apt-get install valgrind)"
bench_need_infergw

CASES="igw-h2 igw-h1 igw-infer igw-bin igw-mp igw-grpc h2o-h2 h2o-h1 ngh-h2"
# shellcheck disable=SC2086
N=$N C=$C M=$M bash "$BENCH_ROOT/bench/wire_instr.sh" $CASES >"$T/table.txt" 2>"$T/err.txt" ||
	bench_fail "bench/wire_instr.sh failed: $(tail -3 "$T/err.txt")"

# ir CASE - instructions per request of CASE in the table (empty if absent)
ir() {
	awk -v c="$1" '$1 == c { print $3 }' "$T/table.txt"
}
for cs in $CASES; do
	[ -n "$(ir "$cs")" ] || bench_fail "no count for $cs: $(cat "$T/table.txt" "$T/err.txt")"
done

# ratio A B - A / B to two decimals
ratio() {
	echo "scale=4; $1 / $2" | bc -l | awk '{ printf "%.2f", $1 }'
}

CMD="N=$N C=$C M=$M bash bench/wire_instr.sh   # h2load -n N -c C -m M -t 1 (HTTP/1.1: --h1 -m 1) under valgrind --tool=callgrind"
NOTE="callgrind, user-space instructions of the serving threads (infergw: its loop thread, not the CPU backend's worker)"
# pair KEY A B LABEL [k=v...] - the ratio of case A's count to case B's: a
# summary row, and a line of this section's table ($T/ratios.md)
pair() {
	local key=$1 r
	r=$(ratio "$(ir "$2")" "$(ir "$3")")
	bench_row instr "$key" "$r" "$4" unit=x "${@:5}"
	echo "| $4 | **${r}x** |" >>"$T/ratios.md"
}
: >"$T/ratios.md"
pair h2o_over_igw h2o-h2 igw-h2 "HTTP/2 health: h2o instructions/request / infergw's" \
	note="$NOTE" cmd="$CMD"
pair ngh_over_igw ngh-h2 igw-h2 "HTTP/2 health: nghttpd instructions/request / infergw's"
pair h1_h2o_over_igw h2o-h1 igw-h1 "HTTP/1.1 health: h2o instructions/request / infergw's"
pair health_over_infer igw-h2 igw-infer \
	"infergw: health instructions/request / digits JSON infer's (loop thread)"
pair bin_over_json igw-bin igw-infer \
	"infergw digits infer: Triton binary body / JSON, instructions per request"
pair grpc_over_json igw-grpc igw-infer \
	"infergw digits infer: gRPC ModelInfer / JSON, instructions per request"
pair mp_over_json igw-mp igw-infer "infergw digits infer: msgpack / JSON, instructions per request"
bench_row instr igw_h2 "$(ir igw-h2)" "infergw HTTP/2 health, instructions/request" unit=instr

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- what: each server alone under valgrind --tool=callgrind, counting switched on for the measured requests only (after a warm-up); infergw's loop thread only (its CPU backend's worker is left out); system calls per request read from /proc/PID/io, inflated under valgrind (indicative only)"
	echo "- command:"
	echo
	bench_cmd_block "$CMD"
	echo
	echo '```'
	cat "$T/table.txt"
	echo '```'
	echo
	echo "| ratio (same run) | value |"
	echo "|---|---:|"
	cat "$T/ratios.md"
	echo
} >>"$OUT_MD"

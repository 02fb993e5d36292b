#!/usr/bin/env bash
# bench/sim/int8_variants.sh - goodput with and without an INT8 variant
# (issue 15), in virtual time: scenarios/dpu_cpu.ini (8 CPU backends,
# profiles/cpu.conf measured FP32 mlp-large, the hetero classes: p1 30 ms,
# p2 100 ms, p3 500 ms sheddable) at 1x and 2x the FP32 fleet's capacity.
# With --int8 on, every CPU backend also holds the model's INT8 variant as
# a second queue (its own learned service time, t8(n) = t(n) / speedup) and
# the router's candidates are (backend, variant) pairs, FP32 at tier 0: the
# `accurate` policy (FP32 unless no backend can meet the deadline with it).
# Speedups: 3.77 (raw oneDNN s8 over f32 at batch 64, the first slice) and
# 1.86 (the gateway's CPU backend then, batch 64).  Both variants share a
# backend's slots, so INT8 adds capacity only as far as it is faster.
#
# usage: bench/sim/int8_variants.sh          (a few seconds)
# env:   N=200000 requests per run, SEEDS="1 2 3", LOADS="1.0 2.0"
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SIM=bench/sim/build/sim
SC=bench/sim/scenarios/dpu_cpu.ini
N=${N:-200000}
SEEDS=${SEEDS:-1 2 3}
LOADS=${LOADS:-1.0 2.0}
make -s -C bench/sim >&2

# one configuration, averaged over SEEDS: the columns the table shows
run() {
	local load=$1 int8=$2 sp=$3
	for s in $SEEDS; do
		"$SIM" --scenario "$SC" --load "$load" --requests "$N" --seed "$s" \
			--int8 "$int8" ${sp:+--int8-speedup "$sp"} --header
	done | python3 -c '
import csv, sys
rows = [r for r in csv.DictReader(sys.stdin) if r["scenario"] != "scenario"]
def mean(k):
    v = [float(r[k]) for r in rows if k in r and r[k] not in ("", "nan")]
    return sum(v) / len(v) if v else float("nan")
print("%-5s %-11s %10.0f %8.3f %7.3f %7.3f %7.3f %7.3f %10.1f %6.3f" % (
    sys.argv[1], sys.argv[2], mean("goodput_rps"), mean("goodput_per_capacity"),
    mean("slo_att"), mean("att_p1"), mean("att_p2"), mean("att_p3"),
    mean("p99_p1_ms"), mean("int8_share") if "int8_share" in rows[0] else 0.0))
' "$load" "$4"
}

printf "%-5s %-11s %10s %8s %7s %7s %7s %7s %10s %6s\n" load variants goodput/s "per cap" \
	slo_att att_p1 att_p2 att_p3 "p99 p1 ms" int8
for load in $LOADS; do
	run "$load" off "" "fp32"
	run "$load" on 1.86 "+int8 1.86x"
	run "$load" on 3.77 "+int8 3.77x"
done
echo "(scenario $(basename $SC), $N requests x seeds $SEEDS; capacity = the FP32 fleet's;" \
	"int8 = share of answers the INT8 variant served)"

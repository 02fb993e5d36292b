#!/usr/bin/env bash
# bench/sim/report.sh - run the simulator's experiments and write
#   bench/sim/results/sweep.csv     load sweep, 3 policies, Poisson + bursty, and
#                                   the slo policy with what-ifs
#                                   --reroute-displaced and --displace-last
#   bench/sim/results/overload.csv  2x capacity, slo policy, seeds 1-3, what-ifs;
#                                   bursty overload of the GPU-only fleet
#   bench/sim/results/fill.csv      filling idle GPU time with sheddable work
#   bench/sim/results/scale.csv     14 to 2000 backends, up to 5M requests
#   bench/sim/results/slo_goodput.png (and a copy at bench/sim_slo_goodput.png)
#   bench/sim/results/summary.md    the tables docs/bench-history.md quotes
# Every CSV row ends with the exact command that produced it (run from the
# repository root).  Pure computation: no network, no servers.
#
# usage: bench/sim/report.sh          (about 2-3 minutes on 2 cores)
#
# "gateway" rows run the gateway's own policy (gateway/sched/policy.c, router.c,
# squeue.c, batcher.c, svctime.c, linked as they are).  The --legacy modes
# (the gateway as of 2c48e69) are gone with the copies they patched; their
# numbers stay in docs/bench-history.md.
# env:   N=1000000 (requests per sweep point)  JOBS=2 (simulations run at
#        once, except the scale runs, which run alone so their wall times
#        mean something)  MEASURE_CPU=1 (also re-time
#        the CPU backend into results/cpu_profile_rerun.txt; needs
#        build/libinfergw.a and config/models/mlp-large)
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3
SIM=bench/sim/build/sim
SC=bench/sim/scenarios
OUT=bench/sim/results
N=${N:-1000000}
JOBS=${JOBS:-2}
T_START=$(date +%s)

make -s -C bench/sim >&2
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/infergw-sim.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
SEQ=0
PENDING=()

# run CSV ARGS... - one simulation now; append its line and the command.
run() {
	local csv=$1 line
	shift
	line=$("$SIM" "$@") || { echo "report.sh: sim failed: $SIM $*" >&2; exit 1; }
	printf '%s,"%s %s"\n' "$line" "$SIM" "$*" >>"$csv"
}

# brun CSV ARGS... - as run, but in the background (JOBS at a time); the
# lines reach CSV in submission order at the next collect.
brun() {
	local csv=$1 out
	shift
	SEQ=$((SEQ + 1))
	out="$TMP/$(printf %05d $SEQ)"
	PENDING+=("$csv|$out")
	(
		line=$("$SIM" "$@") || { echo "report.sh: sim failed: $SIM $*" >&2; exit 1; }
		printf '%s,"%s %s"\n' "$line" "$SIM" "$*" >"$out"
	) &
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
		wait -n || true
	done
}

collect() {
	local p
	wait
	for p in "${PENDING[@]}"; do
		[ -s "${p#*|}" ] || { echo "report.sh: a simulation failed (${p#*|})" >&2; exit 1; }
		cat "${p#*|}" >>"${p%%|*}"
	done
	PENDING=()
}

# header CSV - start a CSV with the simulator's column names.
header() {
	printf '%s,cmd\n' "$("$SIM" --scenario $SC/hetero.ini --requests 2 --header | head -1)" >"$1"
}

if [ "${MEASURE_CPU:-0}" = 1 ]; then
	echo "== CPU profile re-measurement" >&2
	make -s -C bench/sim cpu_profile >&2
	{
		echo "# $(date -u +%FT%TZ) $(uptime)"
		echo "# bench/sim/build/cpu_profile -t 1 -p 2 -n 30 config/models/mlp-large"
		bench/sim/build/cpu_profile -t 1 -p 2 -n 30 config/models/mlp-large
	} >"$OUT/cpu_profile_rerun.txt"
fi

echo "== 1. load sweep (hetero.ini, $N requests per point)" >&2
header "$OUT/sweep.csv"
for arr in poisson onoff; do
	for load in 0.2 0.4 0.6 0.8 0.9 1.0 1.1 1.25 1.5 1.75 2.0 2.25 2.5; do
		for pol in slo least-queue round-robin; do
			brun "$OUT/sweep.csv" --scenario $SC/hetero.ini --load $load --policy $pol \
				--arrival $arr --requests "$N" --seed 1
		done
		# the slo policy with two what-ifs
		for what in --reroute-displaced --displace-last; do
			# shellcheck disable=SC2086
			brun "$OUT/sweep.csv" --scenario $SC/hetero.ini --load $load --policy slo \
				--arrival $arr --requests "$N" --seed 1 $what
		done
	done
done
collect

echo "== 2. overload: 2x capacity, slo policy, 3 seeds, what-ifs" >&2
header "$OUT/overload.csv"
for seed in 1 2 3; do
	for what in "" "--drop-hopeless off" --exec-fill --strict-margin \
		--reroute-displaced --displace-last; do
		# shellcheck disable=SC2086
		brun "$OUT/overload.csv" --scenario $SC/hetero.ini --load 2.0 --policy slo \
			--requests 2000000 --seed $seed $what
	done
	for what in "" --reroute-displaced --displace-last; do
		# shellcheck disable=SC2086
		brun "$OUT/overload.csv" --scenario $SC/hetero.ini --load 2.0 --policy slo \
			--arrival onoff --requests 2000000 --seed $seed $what
	done
done
for pol in least-queue round-robin; do
	brun "$OUT/overload.csv" --scenario $SC/hetero.ini --load 2.0 --policy $pol \
		--requests 2000000 --seed 1
done
# bursty overload of one priority: gpu_fill's hp traffic alone, bursts of 3x
for what in "" --strict-margin --exec-fill "--drop-hopeless off" \
	"--drop-hopeless off --strict-margin"; do
	# shellcheck disable=SC2086
	brun "$OUT/overload.csv" --scenario $SC/gpu_fill.ini --share lp=0 --arrival onoff \
		--requests 2000000 --seed 1 $what
done
collect

echo "== 3. filling idle GPU time with sheddable work" >&2
header "$OUT/fill.csv"
# bursts for this experiment: 20 ms at 1.4x the mean, 80 ms at 0.9x, so that
# the hp traffic alone (65% of the GPUs) never exceeds their capacity
BURST=20,80,1.4
for sc in gpu_fill hetero_fill; do
	brun "$OUT/fill.csv" --scenario $SC/$sc.ini --share lp=0 --requests 2000000 --seed 1
	brun "$OUT/fill.csv" --scenario $SC/$sc.ini --share lp=0.2 --requests 2000000 --seed 1
	# the flood at the default shed_wait_fraction 0.5, then other fractions
	for f in 0.5 0.1 0.01; do
		brun "$OUT/fill.csv" --scenario $SC/$sc.ini --shed-frac $f --requests 2000000 --seed 1
	done
	# two what-ifs
	for what in --reroute-displaced --displace-last; do
		# shellcheck disable=SC2086
		brun "$OUT/fill.csv" --scenario $SC/$sc.ini --shed-frac 0.5 --requests 2000000 \
			--seed 1 $what
	done
	brun "$OUT/fill.csv" --scenario $SC/$sc.ini --share lp=0 --arrival onoff --burst $BURST \
		--requests 2000000 --seed 1
	brun "$OUT/fill.csv" --scenario $SC/$sc.ini --shed-frac 0.5 --arrival onoff \
		--burst $BURST --requests 2000000 --seed 1
done
collect

echo "== 4. scale" >&2
header "$OUT/scale.csv"
run "$OUT/scale.csv" --scenario $SC/hetero.ini --load 1.0 --requests 2000000 --seed 1
# hetero x 20 (160 CPU + 40 GPU + 80 DPU) at 0.9: the gateway, and with
# what-if --reroute-displaced
for what in "" --reroute-displaced; do
	# shellcheck disable=SC2086
	run "$OUT/scale.csv" --scenario $SC/hetero.ini --scale 20 --load 0.9 --requests 1000000 \
		--seed 1 $what
done
# the gateway: every backend is a candidate (since efa0c5d)
run "$OUT/scale.csv" --scenario $SC/dc2000.ini --load 0.8 --requests 300000 --seed 1 \
	--candidates gateway
# before efa0c5d: the first 32 in config order
run "$OUT/scale.csv" --scenario $SC/dc2000.ini --load 0.8 --requests 2000000 --seed 1 \
	--candidates first32
# what-if: D random candidates (power of d choices)
for d in 2 8 32; do
	run "$OUT/scale.csv" --scenario $SC/dc2000.ini --load 0.8 --requests 2000000 --seed 1 \
		--candidates sample --sample $d
done
run "$OUT/scale.csv" --scenario $SC/dc2000.ini --load 0.8 --requests 5000000 --seed 1 \
	--candidates sample --sample 8

echo "== plot and summary" >&2
$PY bench/sim/plot.py "$OUT/sweep.csv" "$OUT/slo_goodput.png"
cp "$OUT/slo_goodput.png" bench/sim_slo_goodput.png
$PY bench/sim/summarize.py "$OUT" >"$OUT/summary.md"
echo "report.sh: done in $(($(date +%s) - T_START)) s; see $OUT/summary.md" >&2

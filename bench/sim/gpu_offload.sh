#!/usr/bin/env bash
# bench/sim/gpu_offload.sh - the seed's questions for the GPU backend in the
# simulator, with profiles/h200.conf (an H200 DERIVED from its datasheet,
# not measured):
#   (a) CPU only (scenarios/dpu_cpu.ini, 8 CPU backends) vs CPU + GPU
#       (scenarios/gpu_mix.ini, the same 8 + one H200) at the SAME absolute
#       arrival rates and objectives (offload_sweep.sh, shared with
#       dpu_offload.sh): goodput, SLO attainment, p99 per class;
#   (b) low-priority backfill (scenarios/gpu_fill_h200.ini, 2 H200s): hp
#       alone at ~65% of the GPUs, then with lp at 0.2x and a 2x flood:
#       GPU throughput utilization, hp attainment and p99, lp goodput.
# Pure computation.
#
# usage: bench/sim/gpu_offload.sh [N]     (N requests per point, default 300000)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-300000}
SIM=bench/sim/build/sim
. bench/sim/offload_sweep.sh

echo "### (a) CPU only vs CPU + GPU, same arrival rates"
echo
offload_sweep dpu_cpu gpu_mix gpu "CPU only (8 CPU)" "CPU + GPU (8 CPU + 1 H200)" "$N" \
	0.6 0.8 1.0 1.2 2 4 8 12 |
	sed -e 's/| CPU only (8 CPU) |/| 8 CPU |/' -e 's/| CPU + GPU (8 CPU + 1 H200) |/| 8 CPU + 1 H200 |/'
echo
echo "### (b) low-priority backfill on the GPUs (gpu_fill_h200.ini, 2 H200)"
echo
echo "| run | GPU util (rows) | hp attainment | hp p99 ms | lp goodput req/s | 429s: shed / displaced / full |"
echo "|---|---|---|---|---|---|"
fill() {	# fill LABEL ARGS...
	local lab=$1
	shift
	"$SIM" --scenario bench/sim/scenarios/gpu_fill_h200.ini --requests "$N" --seed 1 "$@" |
		awk -F, -v lab="$lab" '{ printf "| %s | %.1f%% | %.2f%% | %.2f | %s | %d / %d / %d |\n",
			lab, 100 * $41, 100 * $18, $25, ($23 > 0 ? sprintf("%.0f", $23) : "-"), $30, $32, $29 }'
}
fill "hp alone (--share lp=0)" --share lp=0
fill "+ lp at 0.2x (--share lp=0.2)" --share lp=0.2
fill "+ lp flood 2x (--shed-frac 0.5, the default)" --shed-frac 0.5
fill "+ lp flood 2x, --shed-frac 0.1" --shed-frac 0.1
fill "bursty hp alone (--arrival onoff --burst 20,80,1.4)" --share lp=0 --arrival onoff --burst 20,80,1.4
fill "bursty hp + lp flood" --shed-frac 0.5 --arrival onoff --burst 20,80,1.4
echo
echo "command: bench/sim/gpu_offload.sh $N (seed 1; columns from bench/sim/build/sim's CSV)"

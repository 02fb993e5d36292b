#!/usr/bin/env bash
# bench/sim/dpu_offload.sh - the seed's question in the simulator: CPU only
# (scenarios/dpu_cpu.ini, 8 CPU backends) vs CPU + DPU-offload agents
# (scenarios/dpu_mix.ini, the same 8 + 4 agents), at the SAME absolute
# arrival rates and objectives: goodput, SLO attainment and p99 per class.
# The rates are fractions of the CPU-only fleet's capacity; each scenario's
# --load is set so that its offered rate equals that (the simulator's --load
# is relative to a scenario's own capacity).  Pure computation.
#
# usage: bench/sim/dpu_offload.sh [N]     (N requests per point, default 300000)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SIM=bench/sim/build/sim
N=${1:-300000}
make -s -C bench/sim >&2
cap() { "$SIM" --scenario "bench/sim/scenarios/$1.ini" --load 1 --requests 20000 --seed 1 | cut -d, -f11; }
CAP_CPU=$(cap dpu_cpu)
CAP_MIX=$(cap dpu_mix)
echo "capacity (rows/s at full batches, the simulator's estimate): CPU only $CAP_CPU, CPU + 4 DPU agents $CAP_MIX"
echo
echo "| offered req/s | fleet | goodput req/s | SLO attainment | p99 interactive ms | p99 standard ms | p99 batch ms | served by DPU |"
echo "|---|---|---|---|---|---|---|---|"
for f in 0.6 0.8 0.9 1.0 1.1 1.2 1.3; do
	for s in dpu_cpu dpu_mix; do
		c=$CAP_CPU
		[ "$s" = dpu_mix ] && c=$CAP_MIX
		load=$(awk -v f="$f" -v a="$CAP_CPU" -v c="$c" 'BEGIN { printf "%.4f", f * a / c }')
		"$SIM" --scenario "bench/sim/scenarios/$s.ini" --load "$load" --requests "$N" --seed 1 |
			awk -F, -v s="$s" '{ printf "| %.0f | %s | %.0f | %.4f | %.2f | %.2f | %.2f | %.3f |\n",
				$12, (s == "dpu_cpu" ? "8 CPU" : "8 CPU + 4 DPU"), $13, $17, $25, $26, $27, $48 }'
	done
done
echo
echo "command: bench/sim/dpu_offload.sh $N (seed 1; columns from bench/sim/build/sim's CSV)"

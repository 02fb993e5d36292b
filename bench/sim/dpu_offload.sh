#!/usr/bin/env bash
# bench/sim/dpu_offload.sh - the seed's question in the simulator: CPU only
# (scenarios/dpu_cpu.ini, 8 CPU backends) vs CPU + DPU-offload agents
# (scenarios/dpu_mix.ini, the same 8 + 4 agents), at the SAME absolute
# arrival rates and objectives: goodput, SLO attainment and p99 per class.
# The rates are fractions of the CPU-only fleet's capacity (the sweep itself:
# offload_sweep.sh, shared with gpu_offload.sh).  Pure computation.
#
# usage: bench/sim/dpu_offload.sh [N]     (N requests per point, default 300000)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${1:-300000}
. bench/sim/offload_sweep.sh
offload_sweep dpu_cpu dpu_mix dpu "CPU only" "CPU + 4 DPU agents" "$N" 0.6 0.8 0.9 1.0 1.1 1.2 1.3 |
	sed -e 's/| CPU only |/| 8 CPU |/' -e 's/| CPU + 4 DPU agents |/| 8 CPU + 4 DPU |/'
echo
echo "command: bench/sim/dpu_offload.sh $N (seed 1; columns from bench/sim/build/sim's CSV)"

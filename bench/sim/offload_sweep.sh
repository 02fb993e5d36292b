# shellcheck shell=bash
# bench/sim/offload_sweep.sh - the seed's question at equal arrival rates,
# shared by dpu_offload.sh and gpu_offload.sh (source it, then call
# offload_sweep).  Pure computation.
#
# offload_sweep BASE MIX KIND BASE_LABEL MIX_LABEL N FRACTIONS...
#   BASE, MIX: scenario names (bench/sim/scenarios/NAME.ini), the fleet
#   without and with the added backends of KIND (cpu|gpu|dpu: the "served
#   by" column); N requests per point; FRACTIONS of BASE's capacity as
#   offered rates.  Both scenarios get the SAME absolute arrival rates: the
#   simulator's --load is relative to a scenario's own capacity, so MIX's
#   --load is scaled by BASE's capacity / MIX's.  Prints the capacities and
#   a markdown table: goodput, SLO attainment, p99 per class, share served
#   by KIND.  Runs from the repository root; needs bench/sim/build/sim.
offload_sweep() {
	local base=$1 mix=$2 kind=$3 lbase=$4 lmix=$5 n=$6 sim=bench/sim/build/sim col f s c load lab
	shift 6
	case $kind in
	cpu) col=46 ;;
	gpu) col=47 ;;
	dpu) col=48 ;;
	*) echo "offload_sweep: kind $kind: cpu, gpu or dpu" >&2; return 2 ;;
	esac
	make -s -C bench/sim >&2 || return 1
	_cap() { "$sim" --scenario "bench/sim/scenarios/$1.ini" --load 1 --requests 20000 --seed 1 | cut -d, -f11; }
	local cap_base cap_mix
	cap_base=$(_cap "$base") && cap_mix=$(_cap "$mix") || return 1
	echo "capacity (rows/s at full batches, the simulator's estimate): $lbase $cap_base, $lmix $cap_mix"
	echo
	echo "| offered req/s | fleet | goodput req/s | SLO attainment | p99 interactive ms | p99 standard ms | p99 batch ms | served by ${kind^^} |"
	echo "|---|---|---|---|---|---|---|---|"
	for f in "$@"; do
		for s in "$base" "$mix"; do
			c=$cap_base lab=$lbase
			[ "$s" = "$mix" ] && c=$cap_mix lab=$lmix
			load=$(awk -v f="$f" -v a="$cap_base" -v c="$c" 'BEGIN { printf "%.4f", f * a / c }')
			"$sim" --scenario "bench/sim/scenarios/$s.ini" --load "$load" --requests "$n" --seed 1 |
				awk -F, -v lab="$lab" -v col="$col" '{ printf "| %.0f | %s | %.0f | %.4f | %.2f | %.2f | %.2f | %.3f |\n",
					$12, lab, $13, $17, $25, $26, $27, $col }' || return 1
		done
	done
}

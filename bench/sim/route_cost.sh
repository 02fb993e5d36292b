#!/usr/bin/env bash
# bench/sim/route_cost.sh - routing cost per request as the fleet grows:
# scenarios/remote64.ini (remote-like fake backends) with 4, 16 and 64
# backends, counted inside the simulator's own process:
#   - candidate views (pol_view calls) and router_pick calls per routing
#     decision (sim --route-cost: exact counts);
#   - instructions per routing decision: callgrind's Ir collected only inside
#     sim_route (--toggle-collect=sim_route: the candidates' views, the
#     router's pick and, when a sample admits nothing, the widened scan),
#     divided by the number of decisions.
# Candidate sets: "gateway" (what rt_route does: every backend, or the
# router's power-of-d sample when gateway/sched/router.h has ROUTER_SAMPLE_D) and
# the simulator's own what-if "sample" with D = 2.
#
# usage: bench/sim/route_cost.sh            (about a minute on 2 cores)
# env:   N=50000 requests per run, LOAD=0.8, COUNTS="4 16 64"
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SIM=bench/sim/build/sim
SC=bench/sim/scenarios/remote64.ini
N=${N:-50000}
LOAD=${LOAD:-0.8}
COUNTS=${COUNTS:-4 16 64}
TMP=$(mktemp -d /tmp/infergw-routecost.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

command -v valgrind >/dev/null || { echo "route_cost.sh: valgrind missing" >&2; exit 1; }
make -s -C bench/sim >&2
CMD="valgrind --tool=callgrind --toggle-collect=sim_route $SIM --scenario $SC --count {$COUNTS} --load $LOAD --requests $N --seed 1 --candidates {gateway|sample --sample 2} --route-cost"
echo "command: $CMD"
echo
printf '| candidates | backends | sampling | views / decision | picks / decision | widened | instructions / decision | slo attainment |\n'
printf '|---|---:|---|---:|---:|---:|---:|---:|\n'
for cand in "gateway" "sample --sample 2"; do
	for c in $COUNTS; do
		# shellcheck disable=SC2086
		args="--scenario $SC --count $c --load $LOAD --requests $N --seed 1 --candidates $cand"
		# shellcheck disable=SC2086
		valgrind --tool=callgrind --toggle-collect=sim_route \
			--callgrind-out-file="$TMP/cg.$c" $SIM $args --route-cost --header \
			>"$TMP/out" 2>"$TMP/err"
		rc=$(grep '^route_cost' "$TMP/err")
		ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$TMP/cg.$c")
		/usr/bin/python3 - "$rc" "$ir" "$cand" "$TMP/out" <<'PY'
import csv, sys
rc = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
ir, cand = int(sys.argv[2]), sys.argv[3].split()[0]
row = next(csv.DictReader(open(sys.argv[4])))
d = int(rc["decisions"])
print("| %s | %s | %s | %s | %s | %s | %.0f | %.2f%% |" % (
    cand if cand == "gateway" else "sample D=2", rc["backends"], rc["sampling"],
    rc["views_per_decision"], rc["picks_per_decision"], rc["widened"], ir / d,
    100 * float(row["slo_att"])))
PY
	done
done

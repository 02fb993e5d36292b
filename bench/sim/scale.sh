#!/usr/bin/env bash
# bench/sim/scale.sh - the simulator's scale (issue 18: "backends x requests
# in 60 s on this machine, with the gateway's own policy code"; target
# 10,000 backends x 10M requests): scenarios/dc10k.ini, REQUESTS requests,
# the gateway's candidate sampling (--candidates gateway: router_sample's
# power of d, widened as rt_route does); prints backends, requests, wall
# seconds, events/s, the routing cost per decision, peak memory.
# Part `sim` of bench/run.sh.
#
# usage: bench/sim/scale.sh [OUT.md]     (markdown section; default stdout)
# env:   REQUESTS=10000000 LOAD=0.8 SEED=1 SCENARIO=bench/sim/scenarios/dc10k.ini
#        SIM_QUICK=1 (make bench-quick): REQUESTS=1000000, wall time scaled
#        to 10M requests in the summary (marked so)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
OUT=${1:-/dev/stdout}
PY=/usr/bin/python3
if [ "${SIM_QUICK:-0}" = 1 ]; then
	REQUESTS=${REQUESTS:-1000000}
else
	REQUESTS=${REQUESTS:-10000000}
fi
LOAD=${LOAD:-0.8}
SEED=${SEED:-1}
SCENARIO=${SCENARIO:-bench/sim/scenarios/dc10k.ini}
T=$(mktemp -d /tmp/infergw-sim-scale.XXXXXX)
trap 'rm -rf "$T"' EXIT

make -s -C bench/sim >"$T/build.log" 2>&1 || { cat "$T/build.log" >&2; exit 1; }
CMD="bench/sim/build/sim --scenario $SCENARIO --load $LOAD --requests $REQUESTS --seed $SEED --route-cost --header"
# shellcheck disable=SC2086
/usr/bin/time -f '%e %U %M' -o "$T/time" timeout -k 5 280 $CMD >"$T/out.csv" 2>"$T/err" ||
	{ echo "scale.sh: the simulator failed: $(tail -3 "$T/err")" >&2; exit 1; }

$PY - "$T/out.csv" "$T/err" "$T/time" "$REQUESTS" "$CMD" "$ROOT/bench" >>"$OUT" <<'PYEOF'
import csv, re, sys
sys.path.insert(0, sys.argv[6])
import rows
r = list(csv.DictReader(open(sys.argv[1])))[0]
err = open(sys.argv[2]).read()
wall, user, rss_kb = open(sys.argv[3]).read().split()[-3:]
wall, user, rss_kb = float(wall), float(user), int(rss_kb)
n, cmd = int(sys.argv[4]), sys.argv[5]
rc = dict(re.findall(r"(\w+)=(\S+)", err.split("route_cost", 1)[1].splitlines()[0])) \
    if "route_cost" in err else {}
backends = int(r["backends"])
events = int(r["events"])
target = 10_000_000
# wall time for the target's 10M requests (scaled when fewer were run)
wall10m = wall * target / n
print("## Simulator scale (bench/sim/scale.sh)")
print()
print("- `%s` (%s)" % (cmd, "`/usr/bin/time`: wall, user CPU, peak RSS"))
print("- the gateway's own policy code (gateway/sched: pol_*, router_pick, router_sample) for "
      "every decision; candidates as rt_route: a sample of %s, widened to %s, then to every "
      "backend" % (rc.get("sample_d", "2"), rc.get("widen_d", "32")))
print()
print("| backends | requests | simulated s | wall s | user CPU s | events | events/s | "
      "requests/s (wall) | peak RSS MB | SLO attainment |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print("| {:,} | {:,} | {:.3f} | {:.1f} | {:.1f} | {:,} | {:,.0f} | {:,.0f} | {:.0f} | {:.2%} |".format(
    backends, n, float(r["sim_s"]), wall, user, events, events / wall, n / wall, rss_kb / 1024,
    float(r["slo_att"])))
print()
if rc:
    print("Routing cost: %s views per decision, %s widened samples (%s admitted), %s full scans "
          "(%s admitted), of %s decisions." % (
              rc.get("views_per_decision"), rc.get("widened"), rc.get("widened_ok"),
              rc.get("full_scans", "?"), rc.get("full_scans_ok", "?"), rc.get("decisions")))
    print()
scaled = n != target
print("%s: %.1f s for %s requests at %s backends%s (target <= 60 s)." % (
    "**Scale**", wall10m, "{:,}".format(target), "{:,}".format(backends),
    " (scaled from %s requests)" % "{:,}".format(n) if scaled else ""))
print()
rows.emit("sim", "scale", round(wall10m, 2),
          "wall seconds for 10M requests at {:,} backends{}".format(
              backends, " (scaled from {:,})".format(n) if scaled else ""),
          unit="s", backends=backends, requests=n, events_per_s=round(events / wall),
          target="<= 60 s", cmd=cmd,
          note="scaled from {:,} requests".format(n) if scaled else None)
rows.emit("sim", "events_per_s", round(events / wall), "events per wall second", unit="")
rows.emit("sim", "views_per_decision", float(rc.get("views_per_decision", "nan")),
          "candidate views (pol_view) per routing decision", unit="")
PYEOF

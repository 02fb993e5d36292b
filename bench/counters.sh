#!/usr/bin/env bash
# bench/counters.sh - a request's accounting (metrics series and HTTP
# response counters) and its hold on the configuration snapshot, on 1
# thread and on every CPU at once, same model (build/bench/counters,
# bench/counters.c): whether loops on several cores slow each other down by
# writing the same cache lines.  The figure is the median per-round ratio of
# ns per request on N threads to 1 thread: ~1.0x when each thread counts in
# its own cache lines (metrics.c) and lends the snapshot from its own lease
# (rt_lease); ~14x with one set of counters for all (measured before, 2
# threads).  A second run holds the snapshot as loops did before rt_lease
# (-s ref: an atomic reference per request on the shared snapshot), for
# the difference.
#
# usage: bench/counters.sh [OUT.md]     (markdown section; default stdout)
# env:   N=2000000 (requests per thread per round; BENCH_QUICK=1: 500000),
#        ROUNDS=7 (quick: 3)
set -u
. "$(dirname "$0")/lib.sh"
bench_init counters "13. Request accounting on several cores (bench/counters.c)"
OUT_MD=${1:-/dev/stdout}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	N=${N:-500000}
	ROUNDS=${ROUNDS:-3}
else
	N=${N:-2000000}
	ROUNDS=${ROUNDS:-7}
fi
make -C "$BENCH_ROOT" build/bench/counters >"$T/build.log" 2>&1 ||
	bench_fail "make build/bench/counters failed: $(tail -3 "$T/build.log")"
THREADS=$(nproc)
[ "$THREADS" -ge 2 ] || THREADS=2
CMD="build/bench/counters -n $N -r $ROUNDS -t $THREADS"
for mode in lease ref; do
	(cd "$BENCH_ROOT" && $CMD -s $mode) >"$T/out.$mode.txt" 2>"$T/err.txt" ||
		bench_fail "$CMD -s $mode failed: $(tail -3 "$T/err.txt")"
	grep -q '^ROUND ' "$T/out.$mode.txt" ||
		bench_fail "$CMD -s $mode printed no rounds: $(cat "$T/out.$mode.txt")"
done

$PY - "$T" "$THREADS" "$CMD" "$T/table.md" "$BENCH_ROOT/bench" <<'PYEOF' ||
import statistics
import sys

sys.path.insert(0, sys.argv[5])
import rows

d, threads, cmd, table = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def rounds(mode):
    one, many = [], []
    for line in open("%s/out.%s.txt" % (d, mode)):
        f = line.split()
        if len(f) == 4 and f[0] == "ROUND":
            one.append(float(f[2]))
            many.append(float(f[3]))
    return one, many


with open(table, "w") as t:
    t.write("| snapshot held by | threads | ns per request per thread (median round) | range "
            "| %d threads / 1 |\n|---|---:|---:|---:|---:|\n" % threads)
    for mode, key, what in (("lease", "many_over_one", "rt_lease (the gateway's calls)"),
                            ("ref", "ref_many_over_one",
                             "rt_get/rt_put on the shared snapshot (before rt_lease)")):
        one, many = rounds(mode)
        ratios = [m / o for o, m in zip(one, many) if o > 0]
        label = "request accounting, ns per request on %d threads at once / on 1" % threads
        if mode == "ref":
            label += ", snapshot held by rt_get/rt_put as before rt_lease"
        rows.emit_ratios("counters", key, ratios, label, cmd="%s -s %s" % (cmd, mode),
                         note="same series, same calls as a loop's per answered inference")
        t.write("| %s | 1 | %.1f | %.1f-%.1f | |\n" % (what, statistics.median(one), min(one),
                                                       max(one)))
        t.write("| | %d | %.1f | %.1f-%.1f | **%s** |\n" % (threads, statistics.median(many),
                                                            min(many), max(many),
                                                            rows.ratio_cell(ratios)))
PYEOF
	bench_fail "summarising the rounds failed"

# not pinned: the threads take every CPU (read by bench_env_md)
# shellcheck disable=SC2034
PIN_SRV='' PIN_CLI=''
{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- what: api_account and access_record of an answered 200 (what a loop thread counts per inference), on one (backend, model) series, and the call's hold on the configuration snapshot, $N times per thread per round; each round 1 thread, then $THREADS threads at once; \`-s ref\` holds the snapshot by an atomic reference per request, as loops did before rt_lease"
	echo "- command:"
	echo
	bench_cmd_block "$CMD -s lease"$'\n'"$CMD -s ref"
	echo
	cat "$T/table.md"
	echo
} >>"$OUT_MD"

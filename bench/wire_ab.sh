#!/usr/bin/env bash
# bench/wire_ab.sh - wall-clock A/B of two gateway builds, h2o and nghttpd
# (HTTP/2 only) on the health route: HTTP/2 (-c32 -m32) and HTTP/1.1
# keep-alive (--h1 -c32 -m1),
# servers pinned to one CPU, h2load to the other, rounds interleaved with
# the order rotating, no --log-file.  Prints median req/s and the medians
# of per-round ratios.  Provisional on a shared machine.
#
# usage: bench/wire_ab.sh BASE_BINARY [NEW_BINARY]   (NEW: build/infergw)
# env:   N=100000 N1=50000 ROUNDS=5
set -u
. "$(dirname "$0")/lib.sh"
bench_init wire_ab
BASE=$1
NEW=${2:-$INFERGW}
N=${N:-100000}
N1=${N1:-50000}
ROUNDS=${ROUNDS:-5}
bench_health_docroot "$T"

gw_start() {	# NAME BINARY
	local port
	port=$(bench_free_port)
	bench_digits_gw_yaml "$port" 4096 >"$T/$1.yaml"
	bench_start "$T/$1.log" "$2" --config "$T/$1.yaml"
	eval "URL_$1=http://127.0.0.1:$port/v2/health/live"
	bench_wait_http "http://127.0.0.1:$port/v2/health/live" "$BENCH_LAST_PID" 30 ||
		bench_fail "$1 did not start"
}
gw_start base "$BASE"
gw_start new "$NEW"
P_H2O=$(bench_free_port)
bench_h2o_yaml "$T" "$P_H2O" >"$T/h2o.yaml"
bench_start "$T/h2o.log" /usr/bin/h2o -c "$T/h2o.yaml"
URL_h2o="http://127.0.0.1:$P_H2O/v2/health/live"
bench_wait_http "$URL_h2o" "$BENCH_LAST_PID" 10 || bench_fail "h2o did not start"
P_NGH=$(bench_free_port)
bench_start "$T/ngh.log" /usr/sbin/nghttpd --no-tls -n 1 -a 127.0.0.1 -d "$T/htdocs" "$P_NGH"
URL_ngh="http://127.0.0.1:$P_NGH/v2/health/live"
bench_wait_http "$URL_ngh" "$BENCH_LAST_PID" 10 || bench_fail "nghttpd did not start"

: >"$T/rps"
for mode in h2 h1; do
	if [ $mode = h2 ]; then
		flags="-n $N -c 32 -m 32 -t 1"
		set -- base new h2o ngh
	else
		flags="--h1 -n $N1 -c 32 -m 1 -t 1"
		set -- base new h2o
	fi
	NS=$#
	for s in "$@"; do
		u_var="URL_$s"; u=${!u_var}
		# shellcheck disable=SC2086
		bench_h2load "$T/warm" "" $flags "$u"
	done
	for r in $(seq "$ROUNDS"); do
		for i in $(seq 0 $((NS - 1))); do
			eval "s=\${$(((i + r - 1) % NS + 1))}"
			u_var="URL_$s"; u=${!u_var}
			# shellcheck disable=SC2086
			bench_h2load "$T/out" "" $flags "$u"
			rps=$(sed -n 's/.*finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$T/out")
			echo "$mode $r $s ${rps:-0}" >>"$T/rps"
		done
	done
done
$PY - "$T/rps" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
d = {}
for mode, r, s, v in rows:
    d.setdefault(mode, {}).setdefault(s, {})[int(r)] = float(v)
print("%-4s %9s %9s %9s %9s %9s %9s %9s %9s" % ("mode", "base", "new", "h2o", "nghttpd",
      "new/base", "new/h2o", "new/ngh", "base/h2o"))
for mode, by in d.items():
    med = {s: statistics.median(v.values()) for s, v in by.items()}
    def rr(a, b):
        if b not in by:
            return float("nan")
        return statistics.median(by[a][k] / by[b][k] for k in by[a] if by[b].get(k))
    print("%-4s %9.0f %9.0f %9.0f %9.0f %9.2f %9.2f %9.2f %9.2f" % (mode, med["base"], med["new"],
          med["h2o"], med.get("ngh", float("nan")), rr("new", "base"), rr("new", "h2o"),
          rr("new", "ngh"), rr("base", "h2o")))
PY

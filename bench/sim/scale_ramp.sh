#!/usr/bin/env bash
# scale_ramp.sh - the autoscaling signal against rising load (scale_ramp.c):
# the default run's time series, then one line per variant: when the
# signal first asks for more replicas than are deployed, when SLO misses
# start (first 10 s window above 1%), and the lead between them.  ~5 s.
set -eu
cd "$(dirname "$0")"
make -s build/scale_ramp
echo "## time series (default: 4 replicas x 2 slots, t(B) = 2 + 0.25 B ms, max_batch 32, slo 50 ms,"
echo "## load 0.2 -> 1.3 x capacity over 600 s, scraped every 15 s, EWMA tau 30 s)"
build/scale_ramp
echo
printf '%-34s %14s %12s %8s\n' variant signal_first_s miss_first_s lead_s
while read -r name args; do
	# shellcheck disable=SC2086
	line=$(build/scale_ramp $args | tail -1)
	get() { echo "$line" | grep -oP "$1=\K[-0-9n/a]+" || echo n/a; }
	printf '%-34s %14s %12s %8s\n' "$name" "$(get signal_first_s)" "$(get miss_first_s)" "$(get lead_s)"
done <<'LIST'
default
seed-2 --seed 2
slo-12ms --slo-ms 12
16x1-slots --replicas 16 --slots 1
ramp-300s --ramp-s 300
ramp-120s --ramp-s 120
ramp-120s-tau-10s --ramp-s 120 --tau-s 10
ramp-120s-scrape-5s-tau-10s --ramp-s 120 --scrape-s 5 --tau-s 10
LIST

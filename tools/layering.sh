#!/usr/bin/env bash
# tools/layering.sh - check that #include arrows point one way (DESIGN.md §2,
# docs/architecture.md "Layout and arrows"): net -> api -> sched -> core -> backends,
# the top (gateway/main.c, gateway/control.c) may use anything, backends
# include only backends/ headers, and the agent (agent/) only its own,
# backends/ and core headers, and the DPDK fast path (dpdk/) api and below.  Every include of a header that lives in
# another layer is checked against that order.
#
# Any include against the arrows fails: an upward need is inverted (an
# interface declared below, implemented or installed from above), never
# listed as an exception.  Prints "layering: passed" or
# "layering: FAILED (...)"; exit status 0 or 1.
set -u
cd "$(dirname "$0")/.." || exit 1
rank() {	# a layer's rank: an include may only go to a higher or equal rank
	case $1 in
	top) echo 0 ;; net) echo 1 ;; api) echo 2 ;; sched) echo 3 ;; core) echo 4 ;;
	backends) echo 5 ;; *) echo 9 ;;
	esac
}
layer_of_header() {	# the layer holding header $1, or "" (system/third-party)
	local b=$1 d
	for d in net api sched core; do
		[ -f "gateway/$d/$b" ] && { echo "$d"; return; }
	done
	[ -f "gateway/$b" ] && { echo top; return; }
	[ -f "backends/$b" ] || [ -n "$(find backends -name "$b" 2>/dev/null | head -1)" ] && echo backends
}
found=""
for f in gateway/*.[ch] gateway/*/*.[ch] backends/*.[ch] backends/*/*.[ch] agent/*.[ch] dpdk/*.[ch]; do
	[ -f "$f" ] || continue
	case $f in
	gateway/*/*) from=$(basename "$(dirname "$f")") ;;
	gateway/*) from=top ;;
	backends/*) from=backends ;;
	agent/*) from=agent ;;
	dpdk/*) from=dpdk ;;
	esac
	for h in $(grep -ho '^#include "[^"]*"' "$f" | sed 's/#include "\(.*\)"/\1/'); do
		to=$(layer_of_header "$(basename "$h")")
		[ -f "agent/$(basename "$h")" ] && [ "$from" = agent ] && continue
		[ -f "dpdk/$(basename "$h")" ] && [ "$from" = dpdk ] && continue
		[ -z "$to" ] || [ "$to" = "$from" ] && continue
		# The agent (infergw-agent) sees the backends and core only.
		# The DPDK fast path is a front end beside net/: api and below.
		if [ "$from" = dpdk ]; then
			[ "$to" = net ] || [ "$to" = top ] && found+="$f -> $h (dpdk -> $to)"$'\n'
			continue
		fi
		if [ "$from" = agent ]; then
			[ "$to" = backends ] || [ "$to" = core ] || found+="$f -> $h (agent -> $to)"$'\n'
			continue
		fi
		if [ "$from" = backends ] || [ "$(rank "$to")" -lt "$(rank "$from")" ]; then
			found+="$f -> $h ($from -> $to)"$'\n'
		fi
	done
done
if [ -n "$found" ]; then
	printf 'layering: include against the arrows:\n%s' "$found" | sed 's/^/  /' >&2
	echo "layering: FAILED ($(printf '%s' "$found" | grep -c .) includes against the arrows)"
	exit 1
fi
echo "layering: passed"

#!/usr/bin/env bash
# bench/dpdk.sh - the DPDK fast path (part `dpdk` of bench/run.sh, RESULTS §9):
#   1. the software ceiling: answered requests/s on 1 lcore / 1 queue and
#      2 lcores / 2 queues with the fake backend over net_pcap (a capture
#      replayed forever), the average cycles per stage (rx, parse, route,
#      encode, tx) from /metrics, and dpdk-testpmd's forwarding rate on the
#      same vdev and capture (Debian: dpdk-dev) next to eRPC's published
#      per-core rate (bench/dpdk_bench.py);
#   2. digits over UDP on a veth pair into a namespace (net_af_packet,
#      bench/udpload: every answer checked against the float64 reference)
#      against HTTP/2 (h2load, JSON body) on the same gateway, same run,
#      one socket or connection with WINDOW requests in flight each: req/s,
#      p50, p99, each client's own CPU (a client above BENCH_CLIENT_BOUND
#      of a core makes the ratio the client's: it is then not given), and
#      the fast path's time per request by stage.
# Needs root, a DPDK build of infergw, iproute2.  Bounded: N requests.
# usage: bench/dpdk.sh [OUT.md]    env: N=20000 WINDOW=16 SECS=5 ROUNDS=5
set -u
. "$(dirname "$0")/lib.sh"	# bench_h2load (the one h2load runner), bench_row
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${1:-/dev/stdout}
PY=/usr/bin/python3
BIN=$ROOT/build/infergw
N=${N:-20000} WINDOW=${WINDOW:-16} SECS=${SECS:-5} ROUNDS=${ROUNDS:-5}
T=$(mktemp -d /tmp/infergw-bench-dpdk.XXXXXX)
NS=igwbench$$ IF=infergw-dp0 PEER=infergw-dp1 GW=
cleanup() {
	[ -n "$GW" ] && kill -TERM "$GW" 2>/dev/null && wait "$GW" 2>/dev/null
	ip link del "$IF" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "dpdk.sh: $*" >&2; exit 1; }
"$BIN" --version | grep -q ' dpdk' || fail "$BIN was built without DPDK"
[ "$(id -u)" = 0 ] || fail "needs root (af_packet, namespaces)"
freeport() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

make -C "$ROOT" build/bench/udpload >"$T/build.log" 2>&1 ||
	fail "make build/bench/udpload failed: $(tail -3 "$T/build.log")"
{
echo "## 9. DPDK fast path (bench/dpdk.sh)"
echo
$PY bench/dpdk_bench.py ceiling "$BIN" "$T" "$(freeport)" "$SECS"
} >>"$OUT"

ip link del "$IF" 2>/dev/null
ip netns add "$NS" || fail "ip netns add"
ip link add "$IF" type veth peer name "$PEER" && ip link set "$PEER" netns "$NS" &&
	ip link set "$IF" up && ip -n "$NS" addr add 198.18.0.2/24 dev "$PEER" &&
	ip -n "$NS" link set "$PEER" up && ip -n "$NS" link set lo up || fail "veth setup"
HP=$(freeport) AP=$(freeport)
cat >"$T/gw.yaml" <<YAML
listen: {address: 127.0.0.1, port: $HP, threads: 1}
admin: {address: 127.0.0.1, port: $AP}
log: {level: warn}
models:
  - {name: digits, path: $ROOT/config/models/digits, max_batch: 32, max_queue_delay_us: 0, max_queue: 4096}
backends:
  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, models: [digits]}
dpdk:
  eal: ["--no-huge", "--no-pci", "-m", "512", "--vdev=net_af_packet0,iface=$IF"]
  address: 198.18.0.1
YAML
"$BIN" --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
GW=$!
sleep 3
kill -0 "$GW" || fail "gateway did not start: $(tail -5 "$T/gw.log")"
$PY bench/digits_body.py --udp config/models/digits "$T/req.mp" "$T/expect.f32" ||
	fail "cannot write the datagram request (bench/digits_body.py --udp)"
$PY bench/digits_body.py config/models/digits "$T/body.json" "$T/expect.json" >/dev/null 2>&1 ||
	fail "cannot write the JSON body (bench/digits_body.py)"
# -k: veth leaves a partial UDP checksum (see tools/infergw-udp-client --help)
UCMD="build/bench/udpload -s 198.18.0.1:9200 -d req.mp -e expect.f32 -n $N -w $WINDOW -k -j"
udp_round() {
	local u
	u=$(ip netns exec "$NS" build/bench/udpload -s 198.18.0.1:9200 -d "$T/req.mp" \
		-e "$T/expect.f32" -n "$N" -w "$WINDOW" -k -j)
	[ -n "$u" ] || fail "udpload printed nothing"
	echo "$u" >>"$T/u.jsonl"
}
# a latency comparison too (p50/p99 per request), so with --log-file,
# unpinned like the UDP client
h2_round() {
	rm -f "$T/h2.log"	# h2load appends to its log file
	PIN_CLI="" bench_h2load "$T/h2.out" "$T/h2.log" -n "$N" -c 1 -m "$WINDOW" -t 1 \
		-H 'content-type: application/json' -d "$T/body.json" \
		"http://127.0.0.1:$HP/v2/models/digits/infer"
	$PY - "$T/h2.log" "$T/h2.out" >>"$T/h.jsonl" <<'PYEOF'
import json, re, sys
lat = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip())
ok = sum(1 for l in open(sys.argv[1]) if l.split()[1] == "200")
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", open(sys.argv[2]).read()).group(1))
u, s, e = (float(x) for x in open(sys.argv[2] + ".time").read().split()[:3])
print(json.dumps({"rps": rps, "p50_us": lat[len(lat) // 2], "p99_us": lat[int(len(lat) * .99)],
                  "ok": ok, "cpu_fraction": (u + s) / e if e > 0 else 0}))
PYEOF
}
$PY bench/dpdk_bench.py stages "$AP" "$T/m0.json" || fail "cannot read /metrics on port $AP"
: >"$T/u.jsonl"
: >"$T/h.jsonl"
for r in $(seq "$ROUNDS"); do	# interleaved, the order reversed every other round
	if [ $((r % 2)) = 1 ]; then udp_round; h2_round; else h2_round; udp_round; fi
done
S=$($PY bench/dpdk_bench.py stages "$AP" "$T/m0.json")
{
echo "### digits, one request of one row at a time per slot, window $WINDOW, $N requests"
echo
echo "Each client on one socket or connection keeps $WINDOW requests in flight (closed loop: req/s = $WINDOW / mean latency). Commands:"
echo
echo '```'
echo "ip netns exec NS $UCMD   # body: row 0 of the held-out set (bench/digits_body.py --udp)"
echo "h2load -n $N -c 1 -m $WINDOW -t 1 --log-file=LOG -H 'content-type: application/json' -d body.json http://127.0.0.1:PORT/v2/models/digits/infer"
echo '```'
echo
$PY - "$T/u.jsonl" "$T/h.jsonl" "$S" "$ROOT/bench" "$WINDOW" "$BENCH_CLIENT_BOUND" "$UCMD" <<'PYEOF'
import json, statistics, sys
us = [json.loads(l) for l in open(sys.argv[1])]
hs = [json.loads(l) for l in open(sys.argv[2])]
s = json.loads(sys.argv[3])
sys.path.insert(0, sys.argv[4]); import rows
window, bound, ucmd = sys.argv[5], float(sys.argv[6]), sys.argv[7]
med = lambda xs: statistics.median(xs)
rng = lambda xs: "%.0f%%-%.0f%%" % (100 * min(xs), 100 * max(xs))
print(f"{len(us)} rounds each, interleaved (the order reversed every other round); "
      "cells: the median round (client CPU: its range).")
print()
print("| path | client | req/s | p50 µs | p99 µs | client CPU (of a core) | outcomes, all rounds |")
print("|---|---|---:|---:|---:|---:|---|")
codes = {}
for u in us:
    for k, v in u["codes"].items():
        codes[k] = codes.get(k, 0) + v
print(f"| UDP over veth (DPDK af_packet) | bench/udpload | {med([u['req_per_s'] for u in us]):,.0f} "
      f"| {med([u['p50_us'] for u in us]):.0f} | {med([u['p99_us'] for u in us]):.0f} "
      f"| {rng([u['cpu_fraction'] for u in us])} | {codes}, lost {sum(u['lost'] for u in us)}, "
      f"wrong values {sum(u['wrong'] for u in us)} |")
print(f"| HTTP/2 JSON (loopback) | h2load | {med([h['rps'] for h in hs]):,.0f} "
      f"| {med([h['p50_us'] for h in hs]):.0f} | {med([h['p99_us'] for h in hs]):.0f} "
      f"| {rng([h['cpu_fraction'] for h in hs])} | {sum(h['ok'] for h in hs)} x 200 |")
print()
st = ", ".join(f"{k} {s[k]:.0f} ns" for k in ("rx", "parse", "route", "encode", "tx")
               if s.get(k) is not None)
print(f"Fast path time per answered request (lcore TSC, /metrics over the UDP rounds, "
      f"{s['requests']:.0f} requests; rx and tx per burst, shared out): {st}.")
print()
# a round counts when both clients stayed under the bound and every UDP
# request came back a 200 with the reference values
used = [u["req_per_s"] / h["rps"] for u, h in zip(us, hs)
        if u["cpu_fraction"] <= bound and h["cpu_fraction"] <= bound and h["rps"] > 0
        and u["answered"] == u["requests"] and not u["lost"] and not u["wrong"]]
dropped = len(us) - len(used)
if used:
    why = "UDP p50 %.0f us vs HTTP/2 %.0f us; %d of %d rounds used" % (
        med([u["p50_us"] for u in us]), med([h["p50_us"] for h in hs]), len(used), len(us))
    print(f"UDP / HTTP/2 req/s (median of per-round ratios): **{rows.ratio_cell(used)}x** "
          f"({dropped} round(s) dropped: a client above {bound:.0%} of a core, or a UDP "
          "request not answered right).")
else:
    why = "no round used: a client above %.0f%% of a core, or a UDP request not answered right" % (
        bound * 100)
    print(f"UDP / HTTP/2 req/s: not given ({why}).")
rows.emit_ratios("dpdk", "udp_over_h2", used,
                 "digits req/s, UDP over veth (DPDK af_packet, bench/udpload) / HTTP/2 JSON, "
                 "window " + window, note=why, cmd=ucmd)
PYEOF
echo
} >>"$OUT"

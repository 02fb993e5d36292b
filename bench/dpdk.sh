#!/usr/bin/env bash
# bench/dpdk.sh - the DPDK fast path (part `dpdk` of bench/run.sh, RESULTS §9):
#   1. the software ceiling: answered requests/s on 1 lcore / 1 queue and
#      2 lcores / 2 queues with the fake backend over net_pcap (a capture
#      replayed forever), the average cycles per stage (rx, parse, route,
#      encode, tx) from /metrics, and dpdk-testpmd's forwarding rate on the
#      same vdev and capture (Debian: dpdk-dev) next to eRPC's published
#      per-core rate (bench/dpdk_bench.py);
#   2. digits over UDP on a veth pair into a namespace (net_af_packet,
#      tools/infergw-udp-client) against HTTP/2 (h2load, JSON body) on the
#      same gateway, same run: req/s, p50, p99.
# Needs root, a DPDK build of infergw, iproute2.  Bounded: N requests.
# usage: bench/dpdk.sh [OUT.md]    env: N=20000 WINDOW=16 SECS=5
set -u
. "$(dirname "$0")/lib.sh"	# bench_h2load (the one h2load runner), bench_row
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${1:-/dev/stdout}
PY=/usr/bin/python3
BIN=$ROOT/build/infergw
N=${N:-20000} WINDOW=${WINDOW:-16} SECS=${SECS:-5}
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
# --no-udp-checksum: veth leaves a partial UDP checksum (see the client's --help)
U=$(ip netns exec "$NS" $PY tools/infergw-udp-client --server 198.18.0.1:9200 -n "$N" \
	--concurrency "$WINDOW" --no-udp-checksum --json)
$PY bench/digits_body.py config/models/digits "$T/body.json" "$T/expect.json" >/dev/null 2>&1
# a latency comparison (p50/p99 per request), so with --log-file, unpinned
# like the UDP client
PIN_CLI="" bench_h2load "$T/h2.out" "$T/h2.log" -n "$N" -c 1 -m "$WINDOW" -t 1 \
	-H 'content-type: application/json' -d "$T/body.json" "http://127.0.0.1:$HP/v2/models/digits/infer"
H=$($PY - "$T/h2.log" "$T/h2.out" <<'PYEOF'
import json, re, sys
lat = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip())
ok = sum(1 for l in open(sys.argv[1]) if l.split()[1] == "200")
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", open(sys.argv[2]).read()).group(1))
print(json.dumps({"rps": rps, "p50_us": lat[len(lat) // 2], "p99_us": lat[int(len(lat) * .99)], "ok": ok}))
PYEOF
)
{
echo "### digits, one request of one row at a time per slot, window $WINDOW, $N requests"
echo
echo "| path | req/s | p50 µs | p99 µs |"
echo "|---|---|---|---|"
$PY -c "import json,sys; u=json.loads(sys.argv[1]); h=json.loads(sys.argv[2]);
print(f\"| UDP over veth (DPDK af_packet), infergw-udp-client (Python) | {u['req_per_s']:,.0f} | {u['p50_us']:.0f} | {u['p99_us']:.0f} |\");
print(f\"| HTTP/2 JSON (h2load, loopback) | {h['rps']:,.0f} | {h['p50_us']:.0f} | {h['p99_us']:.0f} |\")" "$U" "$H"
echo
echo "UDP outcomes: $($PY -c "import json,sys; print(json.loads(sys.argv[1])['codes'])" "$U")"
$PY -c "import json,sys; u=json.loads(sys.argv[1]); h=json.loads(sys.argv[2]);
sys.path.insert(0, sys.argv[3]); import rows
rows.emit('dpdk', 'udp_over_h2', round(u['req_per_s'] / h['rps'], 4), 'digits req/s, UDP over veth (DPDK af_packet) / HTTP/2 JSON, window $WINDOW', unit='x',
          note='UDP p50 %.0f us vs HTTP/2 %.0f us' % (u['p50_us'], h['p50_us']))" "$U" "$H" "$ROOT/bench"
echo
} >>"$OUT"

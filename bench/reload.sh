#!/usr/bin/env bash
# bench/reload.sh - how long a configuration reload takes: the server's
# duration_ms (build + validate + swap, from the POST /admin/reload answer)
# and the client's round trip, p50/p99 over N reloads each:
#   - unchanged: the same file again (everything carried over);
#   - model added: the file plus "digits2", a second copy of the bundled
#     digits model under another name (loaded; cpu0, which hosts every
#     model, is reopened and calibrated for both);
#   - model removed: back to the base file.
# The gateway is idle (no traffic) while it reloads.
#
# usage: bench/reload.sh
# env:   N=50
set -u
. "$(dirname "$0")/lib.sh"
bench_init reload

N=${N:-50}
MODEL_DIR="$BENCH_ROOT/config/models/digits"
bench_need_infergw
PORT=$(bench_free_port)
APORT=$(bench_free_port)

write_conf() {	# write_conf FILE [EXTRA_MODEL_NAME]
	{
		echo "listen: {address: 127.0.0.1, port: $PORT, threads: 1}"
		echo "admin: {address: 127.0.0.1, port: $APORT}"
		echo "log: {level: info, access: false}"
		echo "models:"
		echo "  - {name: digits, path: $MODEL_DIR, max_batch: 32}"
		[ -n "${2:-}" ] && echo "  - {name: $2, path: $MODEL_DIR, max_batch: 32}"
		echo "backends:"
		echo "  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1}"
	} >"$1"
}
write_conf "$T/base.yaml"
write_conf "$T/alt.yaml" digits2
cp "$T/base.yaml" "$T/gateway.yaml"

bench_start_gw "$T/gw.log" "$T/gateway.yaml" "$PORT" 30
PID=$BENCH_LAST_PID

echo "## Configuration reload time"
echo
bench_env_md
echo "- gateway: listen.threads 1, one CPU backend cpu0 (workers 1) hosting every model; base file: digits; alternate file: digits + digits2 (same directory, another name)"
echo "- command: \`bench/reload_bench.py ADMIN_PORT gateway.yaml base.yaml alt.yaml $N\` (POST /admin/reload over one keep-alive HTTP/1.1 connection; files copied over gateway.yaml by rename)"
echo
echo '```'
$PY "$BENCH_ROOT/bench/reload_bench.py" "$APORT" "$T/gateway.yaml" "$T/base.yaml" "$T/alt.yaml" "$N"
rc=$?
curl -s "http://127.0.0.1:$APORT/metrics" | grep '^infergw_config_reload_total'
echo '```'
echo
bench_warn_if_dead "$PID"
exit $rc

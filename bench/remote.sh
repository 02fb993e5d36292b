#!/usr/bin/env bash
# bench/remote.sh - the DPU-offload path: gateway -> infergw-agent over TCP
# (loopback) against the in-process CPU backend, same model, same run.
#
#   inproc      gateway with cpu0 (1 worker)               } throughput rounds:
#   agents1/2/4 gateway with 1, 2 or 4 remote agents only  } h2load -c C -m M
#   lat-inproc, lat-agents1: one request at a time (-c 1 -m 1): the RPC
#               overhead per request = mean latency difference
#   slo-cpu, slo-cpu+agents: cpu0 alone vs cpu0 + 2 agents, every request
#               with x-slo-ms: SLO_MS: goodput (200s/s) and latency at the
#               same objective (what misses it is answered 429)
#
# usage: bench/remote.sh [OUT.md]
# env:   N=20000 C=16 M=16 ROUNDS=3 SLO_MS=20 LAT_N=3000 LAT_ROUNDS=1
# Every server (gateway and agents) is pinned to the server CPU, h2load to
# the other: the agents share the gateway's core, as they would share a
# host's; on a DPU they would have cores of their own (docs/dpu.md).
set -u
. "$(dirname "$0")/lib.sh"
bench_init remote "7. DPU-offload: gateway -> infergw-agent vs in-process CPU"

OUT_MD=${1:-/dev/stdout}
LAT_ROUNDS=${LAT_ROUNDS:-1}
bench_load_params 20000 16 16 3 4000  # N C M ROUNDS WARM
SLO_MS=${SLO_MS:-20}
LAT_N=${LAT_N:-3000}
MODEL_DIR="$BENCH_ROOT/config/models/digits"
AGENT="${INFERGW_AGENT_BIN:-$BENCH_ROOT/build/infergw-agent}"

bench_need_infergw
[ -x "$AGENT" ] || bench_fail "$AGENT not built (make)"
$PY "$BENCH_ROOT/bench/digits_body.py" "$MODEL_DIR" "$T/body.json" "$T/expect.json" ||
	bench_fail "cannot build the request body (bench/digits_body.py)"
mkdir -p "$T/models" "$T/logs"
ln -s "$MODEL_DIR" "$T/models/digits"

# Four agents, one worker thread each.
APORTS=()
APIDS=()
for i in 1 2 3 4; do
	p=$(bench_free_port)
	bench_start "$T/agent$i.log" "$AGENT" --listen "127.0.0.1:$p" --models "$T/models" \
		--threads 1 --log-level warn
	APORTS+=("$p")
	APIDS+=("$BENCH_LAST_PID")
done
# CPU clock ticks all agents used so far (their share of a round's cost).
agent_ticks() {
	local n=0 p
	for p in "${APIDS[@]}"; do n=$((n + $(bench_cpu_ticks "$p"))); done
	echo "$n"
}
for p in "${APORTS[@]}"; do
	for _ in $(seq 100); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1', $p), 0.2)" 2>/dev/null && break
		sleep 0.1
	done
done

remote_yaml() {	# remote_yaml NAME PORT COST
	echo "  - {name: $1, kind: remote, address: 127.0.0.1:$2, cost: $3, models: [digits]}"
}
cpu_yaml() {
	echo "  - {name: cpu0, kind: cpu, workers: 1, threads_per_worker: 1, cost: 1.0, models: [digits]}"
}

# gw NAME BACKENDS... : write NAME.yaml and start a gateway on it; its port
# in GW_PORT[NAME], pid in GW_PID[NAME].
declare -A GW_PORT GW_PID GW_APORT
gw() {
	local name=$1 port aport
	shift
	port=$(bench_free_port)
	aport=$(bench_free_port)	# /metrics: admin port only
	{
		bench_gw_yaml_head "$port" 1 warn "$aport"
		echo "models:"
		echo "  - {name: digits, path: $MODEL_DIR, max_batch: 32, max_queue_delay_us: 0, max_queue: 4096}"
		echo "backends:"
		printf '%s\n' "$@"
	} >"$T/$name.yaml"
	bench_start_gw "$T/$name.log" "$T/$name.yaml" "$port" 30
	GW_PORT[$name]=$port
	GW_APORT[$name]=$aport
	GW_PID[$name]=$BENCH_LAST_PID
}

gw inproc "$(cpu_yaml)"
gw agents1 "$(remote_yaml dpu1 "${APORTS[0]}" 0.5)"
gw agents2 "$(remote_yaml dpu1 "${APORTS[0]}" 0.5)" "$(remote_yaml dpu2 "${APORTS[1]}" 0.5)"
gw agents4 "$(remote_yaml dpu1 "${APORTS[0]}" 0.5)" "$(remote_yaml dpu2 "${APORTS[1]}" 0.5)" \
	"$(remote_yaml dpu3 "${APORTS[2]}" 0.5)" "$(remote_yaml dpu4 "${APORTS[3]}" 0.5)"
gw slo-cpu "$(cpu_yaml)"
gw slo-cpu+agents "$(cpu_yaml)" "$(remote_yaml dpu1 "${APORTS[0]}" 0.5)" \
	"$(remote_yaml dpu2 "${APORTS[1]}" 0.5)"

url() { echo "http://127.0.0.1:${GW_PORT[$1]}/v2/models/digits/infer"; }
CT=(-H 'content-type: application/json' -d "$T/body.json")

# Every gateway answers one request correctly before anything is measured.
for name in "${!GW_PORT[@]}"; do
	resp=$(curl -s --max-time 5 --http2-prior-knowledge -H 'content-type: application/json' \
		--data-binary @"$T/body.json" "$(url "$name")")
	printf '%s' "$resp" | $PY "$BENCH_ROOT/bench/digits_body.py" --check "$T/expect.json" \
		>/dev/null 2>&1 || bench_fail "$name: wrong or no answer: ${resp:0:200}"
	bench_h2load "$T/warm.$name.out" "" $WARMFLAGS "${CT[@]}" "$(url "$name")"
done

: >"$T/runs.jsonl"
: >"$T/agents.jsonl"
: >"$T/lat.jsonl"
for r in $(seq "$ROUNDS"); do
	for name in $(bench_rotate "$r" inproc agents1 agents2 agents4); do
		a0=$(agent_ticks)
		bench_round "$name" "${GW_PID[$name]}" "$T/$name.$r.out" "$T/runs.jsonl" \
			$H2FLAGS "${CT[@]}" "$(url "$name")"
		echo "{\"name\": \"$name\", \"agent_ticks\": $(($(agent_ticks) - a0))}" >>"$T/agents.jsonl"
	done
	# one request at a time: latency rounds (their mean is the RPC overhead)
	for name in inproc agents1; do
		bench_latency_round "lat-$name" "${GW_PID[$name]}" "$T/lat-$name.$r.out" "$T/logs" \
			"$T/runs.jsonl" -n "$LAT_N" -c 1 -m 1 -t 1 "${CT[@]}" "$(url "$name")"
	done
	for name in $(bench_rotate "$r" slo-cpu slo-cpu+agents); do
		bench_round "$name" "${GW_PID[$name]}" "$T/$name.$r.out" "$T/runs.jsonl" \
			$H2FLAGS -H "x-slo-ms: $SLO_MS" "${CT[@]}" "$(url "$name")"
	done
done
# percentiles under load: separate rounds with --log-file
for r in $(seq "$LAT_ROUNDS"); do
	for name in inproc agents1 agents2 agents4; do
		bench_latency_round "$name" "${GW_PID[$name]}" "$T/lat.$name.$r.out" "$T/logs" \
			"$T/lat.jsonl" $H2FLAGS "${CT[@]}" "$(url "$name")"
	done
	for name in slo-cpu slo-cpu+agents; do
		bench_latency_round "$name" "${GW_PID[$name]}" "$T/lat.$name.$r.out" "$T/logs" \
			"$T/lat.jsonl" $H2FLAGS -H "x-slo-ms: $SLO_MS" "${CT[@]}" "$(url "$name")"
	done
done
[ -n "${BENCH_RAW_DIR:-}" ] && cp "$T/runs.jsonl" "$BENCH_RAW_DIR/remote.jsonl"
for name in "${!GW_PID[@]}"; do bench_warn_if_dead "${GW_PID[$name]}"; done

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md
	echo "- servers: every gateway listen.threads 1, digits max_batch 32; agents \`infergw-agent --threads 1\` (window 2), all pinned with the gateway; \`inproc\`/\`slo-cpu\`: cpu0 (1 worker); \`agentsK\`: K remote backends only; \`slo-cpu+agents\`: cpu0 + 2 agents (cost 0.5)"
	echo "- commands ($ROUNDS throughput rounds, configurations interleaved, order rotating; req/s = median round; ratios = median of per-round ratios, client-bound rounds left out; percentiles from $LAT_ROUNDS latency round(s) with --log-file; lat-* are latency rounds):"
	echo
	CMDS="$PIN_CLI h2load $H2FLAGS -d body.json -H 'content-type: application/json' URL   # inproc, agentsK"$'\n'"$PIN_CLI h2load --log-file=LOG -n $LAT_N -c 1 -m 1 -t 1 -d body.json ... URL   # lat-*"$'\n'"$PIN_CLI h2load $H2FLAGS -H 'x-slo-ms: $SLO_MS' -d body.json ... URL   # slo-*"
	bench_cmd_block "$CMDS"
	bench_row remote _cmd - "commands" cmd="$CMDS"
	echo
	$PY "$BENCH_ROOT/bench/remote_report.py" "$T/runs.jsonl" "$T/logs" "$T/agents.jsonl" "$SLO_MS"
	echo
	for name in agents1 slo-cpu+agents; do
		bench_md_block "/metrics (admin port): backend rows after the run ($name):" \
			"$(curl -s --max-time 2 "http://127.0.0.1:${GW_APORT[$name]}/metrics" |
				grep -E '^infergw_backend_(rows_total|rtt_seconds)')"
	done
	for name in inproc agents1 agents4; do
		echo "- $name: $(bench_log_problems "$T/$name.log")"
	done
	echo
} >>"$OUT_MD"

#!/usr/bin/env bash
# Run every suite and finish with one line "N passed, N failed, N skipped"
# summed over all of them.  Exit status: 0 only when nothing failed.
# SUITES="asan tsan" runs only those suites (of: unit layering lint k8s gpu integration attack h2alt
# dpdk asan tsan fuzz arm64 deploy); unset, all of them.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
pass=0 fail=0 skip=0
log_dir=build/test-logs
mkdir -p "$log_dir"
failures=()	# one line per failure: "SUITE: what failed"

# failed SUITE WHAT...: remember a failure for the list printed just above
# the closing summary line (CI shows a log's tail: the names must be there).
failed() {
	local suite=$1
	shift
	failures+=("$suite: $*")
}

# failed_pytest SUITE LOG: remember each FAILED/ERROR line of pytest's short
# summary in LOG (pytest runs with -rfEs).
failed_pytest() {
	local line
	while IFS= read -r line; do
		failed "$1" "$line"
	done < <(grep -E '^(FAILED|ERROR) ' "$2" | cut -c1-200)
}

# tally SUITE WHAT RC WORD LOG: count one check: "SUITE: WHAT WORD" when RC
# is 0, else "SUITE: WHAT FAILED (see LOG)", remembered for the summary.
tally() {
	if [ "$3" -eq 0 ]; then
		echo "$1: $2 $4"
		pass=$((pass + 1))
	else
		echo "$1: $2 FAILED (see $5)"
		fail=$((fail + 1))
		failed "$1" "$2 (see $5)"
	fi
}

# want SUITE: true when SUITE is to run.
want() {
	[ -z "${SUITES:-}" ] || [[ " $SUITES " == *" $1 "* ]]
}

# cmocka prints "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)..." / "[  SKIPPED ] N".
want unit && for t in build/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	out="$log_dir/$name.log"
	if timeout 300 "$t" >"$out" 2>&1; then rc=0; else rc=$?; fi
	p=$(grep -oP '^\[  PASSED  \] \K[0-9]+' "$out" | tail -1)
	f=$(grep -oP '^\[  FAILED  \] \K[0-9]+' "$out" | tail -1)
	s=$(grep -oP '^\[  SKIPPED \] \K[0-9]+' "$out" | tail -1)
	p=${p:-0} f=${f:-0} s=${s:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1	# crashed or timed out before cmocka could report
		echo "unit: $name exited $rc without a cmocka summary" >&2
	fi
	# cmocka lists each failed test as "[  FAILED  ] name" after its summary
	[ "$f" -gt 0 ] && failed unit "$name: $(grep -oP '^\[  FAILED  \] \K[a-z_0-9]+$' "$out" |
		sort -u | tr '\n' ' ')(see $out)"
	echo "unit: $name: $p passed, $f failed, $s skipped"
	[ "$f" -gt 0 ] && sed 's/^/    /' "$out" | grep -E 'FAIL|ERROR|error|Assert|fail' | head -20
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done

# pytest_count FILE LABEL: add the counts of pytest's closing summary in FILE
# ("3 passed, 1 failed, 2 skipped in 4.2s") to pass/fail/skip.  Returns 1
# when there is no such line (pytest died or was killed) or no test ran: the
# caller counts that run as one failure, never a pass.
pytest_count() {
	local out=$1 label=$2 summary kind n
	summary=$(grep -E '^(=+ )?(no tests ran|[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?))[^=]* in [0-9.]+s' \
		"$out" | tail -1)
	failed_pytest "$label" "$out"
	if [ -z "$summary" ] || ! echo "$summary" | grep -qE '[0-9]+ (passed|failed|errors?)'; then
		echo "$label: pytest printed no summary of tests run (died, timed out or ran none): see $out" >&2
		failed "$label" "pytest printed no summary (see $out)"
		return 1
	fi
	for kind in passed failed error skipped; do
		n=$(echo "$summary" | grep -oP "[0-9]+(?= ${kind}s?\b)" || true)
		n=${n:-0}
		case $kind in
		passed) pass=$((pass + n)) ;;
		failed|error) fail=$((fail + n)) ;;
		skipped) skip=$((skip + n)) ;;
		esac
	done
	return 0
}

if want integration && ls tests/integration/test_*.py >/dev/null 2>&1; then
	out="$log_dir/pytest.log"
	timeout 900 $PY -m pytest -q -rfEs -p no:cacheprovider tests/integration 2>&1 | tee "$out"
	pytest_count "$out" integration || fail=$((fail + 1))
fi

# The DPDK fast path (tests/dpdk): net_pcap and a veth pair into a network
# namespace, no hugepages.  Each test skips with its reason where the binary
# lacks DPDK or the host lacks root / iproute2.
if want dpdk && ls tests/dpdk/test_*.py >/dev/null 2>&1; then
	out="$log_dir/dpdk.log"
	timeout 300 $PY -m pytest -q -rfEs -p no:cacheprovider tests/dpdk 2>&1 | tee "$out" | tail -15
	pytest_count "$out" dpdk || fail=$((fail + 1))
fi

# Layering: #include arrows point one way (tools/layering.sh).
if want layering; then
	if bash tools/layering.sh; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		failed layering "tools/layering.sh"
	fi
fi

# Lint: pyflakes over the Python of the tests, benchmarks and tools (unused
# imports and variables, undefined names): one pass or one failure.
if want lint; then
	out="$log_dir/lint.log"
	if $PY -m pyflakes tests bench tools >"$out" 2>&1; then
		echo "lint: pyflakes: passed"
		pass=$((pass + 1))
	else
		echo "lint: pyflakes: FAILED"
		sed 's/^/    /' "$out" | head -20
		fail=$((fail + 1))
		failed lint "pyflakes (see $out)"
	fi
fi

# Kubernetes manifests (tests/deploy/test_k8s.sh): deploy/k8s rendered with
# Debian's kubectl kustomize and schema-checked, client side only.
if want k8s; then
	out="$log_dir/k8s.log"
	timeout 600 bash tests/deploy/test_k8s.sh >"$out" 2>&1
	cat "$out"
	line=$(grep -E '^k8s: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -1)
	if [ -z "$line" ]; then
		echo "k8s: no summary line (died or timed out): see $out" >&2
		fail=$((fail + 1))
		failed k8s "no summary line (see $out)"
	else
		set -- $(echo "${line#k8s: }" | grep -oE '[0-9]+')
		pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
		[ "$2" -gt 0 ] && failed k8s "$2 failed (see $out)"
	fi
fi

# GPU (tests/gpu/gpu_check.c, docs/gpu.md): the comparison's self-test and
# the whole harness with CPU stand-ins (digits, batch sizes 1..80) run
# everywhere, one pass each; then the GPU backend against the CPU backend,
# every batch size: exit 0 one pass, 77 one skip with its reason ("gpu:
# skipped: no CUDA device: ..." or "built without CUDA"), else one failure.
if want gpu; then
	out="$log_dir/gpu.log"
	if ! make -s build/tests/gpu_check >"$out" 2>&1; then
		echo "gpu: FAILED: build/tests/gpu_check does not build (see $out)"
		fail=$((fail + 1))
		failed gpu "build/tests/gpu_check does not build (see $out)"
	else
		for args in "--self-test" "--dut cpu --model config/models/digits --max-rows 80 --iters 2"; do
			# shellcheck disable=SC2086
			timeout 300 build/tests/gpu_check $args >>"$out" 2>&1
			tally gpu "gpu_check $args" $? passed "$out"
		done
		timeout 900 build/tests/gpu_check --csv build/test-logs/gpu_check.csv \
			>"$log_dir/gpu_check.log" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ]; then
			echo "gpu: gpu_check: passed ($(grep -c '^gpu-' "$log_dir/gpu_check.log") result lines)"
			pass=$((pass + 1))
		elif [ "$rc" -eq 77 ]; then
			echo "gpu: $(grep -m1 '^skipped' "$log_dir/gpu_check.log")"
			skip=$((skip + 1))
		else
			echo "gpu: gpu_check FAILED (exit $rc):"
			grep -E '^(MISMATCH|FAILED)' "$log_dir/gpu_check.log" | head -20 | sed 's/^/    /'
			fail=$((fail + 1))
			failed gpu "gpu_check exited $rc (see $log_dir/gpu_check.log)"
		fi
	fi
fi

# The attack suite: hostile clients (tests/attack), one pytest run.
if want attack; then
	out="$log_dir/attack.log"
	timeout 900 $PY -m pytest -q -rfEs -p no:cacheprovider tests/attack 2>&1 | tee "$out" | tail -15
	pytest_count "$out" attack || fail=$((fail + 1))
fi

# nghttp2, the HTTP/2 engine that is not the default (listen.http2_engine;
# the default is config.h's CFG_HTTP2_NGHTTP2_DEFAULT: flip both together):
# the HTTP/2 attack, protocol, gRPC and TLS tests again, with
# INFERGW_HTTP2_ENGINE choosing it for every gateway they start.
H2_ALT_ENGINE=nghttp2
if want h2alt; then
	out="$log_dir/h2alt.log"
	INFERGW_HTTP2_ENGINE=$H2_ALT_ENGINE timeout 600 $PY -m pytest -q -rfEs -p no:cacheprovider \
		tests/attack/test_h2_attacks.py tests/attack/test_h2_messaging.py \
		tests/attack/test_h2_stream_ids.py tests/attack/test_h2_indexed_fields.py \
		tests/attack/test_h2_conformance.py \
		tests/attack/test_upgrade_attacks.py tests/attack/test_grpc_attacks.py \
		tests/attack/test_read_pause.py tests/integration/test_h2_output.py \
		tests/integration/test_grpc.py tests/integration/test_http_compat.py \
		tests/integration/test_tls.py tests/integration/test_large_tensors.py 2>&1 |
		tee "$out" | tail -5
	echo "h2alt: the tests above with listen.http2_engine $H2_ALT_ENGINE"
	pytest_count "$out" h2alt || fail=$((fail + 1))
fi

# san_run NAME DIR SECONDS TESTS...: pytest on TESTS against DIR/infergw (a
# sanitizer build), its files under DIR/run-NAME: gateway logs in tmp/, and
# in reports/ the sanitizers' own reports, one file per process (log_path is
# added to each of ASAN_OPTIONS, UBSAN_OPTIONS, TSAN_OPTIONS that is set, so
# a report of a process whose stderr a test captures, --check-config, is
# seen too).
# Adds pytest's counts, then one pass when the run was clean, or one failure
# naming why it was not:
#  - pytest died, timed out (SECONDS) or printed no summary;
#  - a sanitizer report in a gateway's stderr or in reports/;
#  - a gateway that did not exit through its own exit path (killed by
#    SIGKILL or any signal: gwlib writes an "unclean exit" line), so its
#    leak check never ran; or a process of the run still alive after pytest.
# Gateways get INFERGW_STOP_GRACE_S to stop after SIGTERM before SIGKILL;
# INFERGW_SANITIZER (NAME up to a "-": asan, tsan) tells tests which
# sanitizer runs (memory bounds differ).
san_run() {
	local name=$1 dir=$2 secs=$3 run out pid rc why="" files v opts=()
	shift 3
	run=$dir/run-$name
	out="$log_dir/$name.log"
	rm -rf "$run"
	mkdir -p "$run/reports"
	for v in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
		[ -n "${!v:-}" ] && opts+=("$v=${!v}:log_path=$PWD/$run/reports/${name%%-*}")
	done
	# timeout runs pytest in a process group of its own (pgid = its pid):
	# whatever the run started and left behind is found through it.
	# The agent of the same build when there is one (tests/integration/agentproc.py).
	[ -x "$dir/infergw-agent" ] && opts+=("INFERGW_AGENT_BIN=$PWD/$dir/infergw-agent")
	env "${opts[@]}" INFERGW_BIN="$PWD/$dir/infergw" INFERGW_SANITIZER="${name%%-*}" \
		INFERGW_STOP_GRACE_S=60 \
		timeout -k 30 "$secs" $PY -m pytest -q -rfEs -p no:cacheprovider \
		--basetemp="$run/tmp" "$@" >"$out" 2>&1 &
	pid=$!
	wait "$pid"
	rc=$?
	tail -5 "$out"
	if pgrep -g "$pid" >/dev/null 2>&1; then
		why="$why; processes still running after pytest (stopped now)"
		kill -TERM -- "-$pid" 2>/dev/null
		sleep 10
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	pytest_count "$out" "$name" || why="$why; no pytest summary"
	# pytest exits 1 when tests failed (counted from the summary).
	if [ "$rc" -eq 124 ]; then
		why="$why; timed out after ${secs}s"
	elif [ "$rc" -gt 128 ]; then
		why="$why; pytest died of signal $((rc - 128))"
	elif [ "$rc" -gt 1 ]; then
		why="$why; pytest exited $rc"
	fi
	files=$(grep -rlE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$run" 2>/dev/null)
	[ -n "$files" ] && why="$why; sanitizer reports in: $(echo $files)"
	files=$(grep -rl '^gwlib: unclean exit:' "$run" 2>/dev/null)
	[ -n "$files" ] && why="$why; gateways that did not exit by themselves (no leak check): $(echo $files)"
	if [ -z "$why" ]; then
		echo "$name: clean: no sanitizer report, every gateway exited by itself"
		pass=$((pass + 1))
	else
		echo "$name: FAILED: ${why#; }" >&2
		fail=$((fail + 1))
		failed "$name" "${why#; }"
	fi
}

# ASan+UBSan (make asan): the integration suite (less the harness test that
# kills a gateway on purpose), then the attack suite, against build-asan/infergw.  Sanitizer builds never
# recycle calls or parse arenas, so a use after free is reported where it
# happens.
if ! want asan; then
	:
elif [ -x build-asan/infergw ]; then
	unset TSAN_OPTIONS
	# the parsers' unit tests (Makefile ASAN_UNIT): clean only with their
	# cmocka summary, no failure and no sanitizer report
	for t in build-asan/tests/test_*; do
		[ -x "$t" ] || continue
		out="build-asan/$(basename "$t").log"
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			timeout 600 "$t" >"$out" 2>&1 && grep -q '^\[  PASSED  \]' "$out" &&
			! grep -q '^\[  FAILED  \]' "$out" &&
			! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"
		tally asan "$(basename "$t")" $? clean "$out"
	done
	export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
	san_run asan build-asan 900 tests/integration \
		--ignore tests/integration/test_harness.py
	# A second run: the attack suite has its own conftest.  A smaller
	# quarantine keeps its memory bounds meaningful (attacklib.RSS_SCALE).
	ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=32 san_run asan-attack build-asan 900 tests/attack
	unset ASAN_OPTIONS UBSAN_OPTIONS
else
	echo "asan: build-asan/infergw missing (make asan): sanitizer suites skipped"
	skip=$((skip + 2))
fi

# ThreadSanitizer (make tsan): the concurrency-heavy tests (reload storms,
# h2load, SLO and queue policies, shutdown, remote agents and their
# failover) against build-tsan/infergw and build-tsan/infergw-agent.
# Each process writes its reports to build-tsan/run-tsan/reports/tsan.PID;
# third-party frames TSan cannot follow (libgomp, libdnnl) are in
# tests/tsan.supp.
if ! want tsan; then
	:
elif [ -x build-tsan/infergw ]; then
	unset ASAN_OPTIONS UBSAN_OPTIONS
	# the scheduler's completion contract against the fake backend, and
	# the remote backend (its I/O thread) against a fake agent
	for t in test_scheduler test_be_remote; do
		if [ ! -x "build-tsan/tests/$t" ]; then
			echo "tsan: $t FAILED (build-tsan/tests/$t missing: make tsan)"
			fail=$((fail + 1))
			failed tsan "$t: build-tsan/tests/$t missing"
		else
			TSAN_OPTIONS="halt_on_error=1:suppressions=$PWD/tests/tsan.supp" \
				timeout 300 "build-tsan/tests/$t" >"build-tsan/$t.log" 2>&1
			tally tsan "$t" $? clean "build-tsan/$t.log"
		fi
	done
	TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
	san_run tsan build-tsan 900 \
		tests/integration/test_reload.py tests/integration/test_load.py \
		tests/integration/test_slo.py tests/integration/test_shutdown.py \
		tests/integration/test_remote.py tests/integration/test_agent.py
else
	echo "tsan: build-tsan/infergw missing (make tsan): ThreadSanitizer suite skipped"
	skip=$((skip + 1))
fi

# Fuzzing: each libFuzzer target of tests/fuzz/ for a bounded time from its
# seed corpus; "fuzz: NAME: passed" is one pass, "fuzz: NAME: FAILED (...)"
# one failure, and a missing clang/libFuzzer toolchain one skip.
if want fuzz; then
	out="$log_dir/fuzz.log"
	if timeout 300 bash tests/fuzz/run.sh >"$out" 2>&1; then rc=0; else rc=$?; fi
	cat "$out"
	n=$(grep -cE '^fuzz: [a-z0-9_]+: passed$' "$out"); pass=$((pass + n))
	f=$(grep -cE '^fuzz: [a-z0-9_]+: FAILED' "$out"); fail=$((fail + f))
	while IFS= read -r line; do failed fuzz "${line#fuzz: }"; done < <(grep -E '^fuzz: [a-z0-9_]+: FAILED' "$out")
	if grep -q '^fuzz: skipped:' "$out"; then
		skip=$((skip + 1))
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "fuzz: tests/fuzz/run.sh exited $rc without a FAILED line" >&2
		fail=$((fail + 1))
		failed fuzz "tests/fuzz/run.sh exited $rc (see $out)"
	fi
fi

# arm64: the agent and the backends cross-built for a DPU's Arm cores, their
# unit tests under qemu-user (tools/arm64.sh); "arm64: NAME: passed" is one
# pass, "arm64: NAME: FAILED (...)" one failure, and a toolchain or library
# that cannot be installed one skip.
if want arm64; then
	out="$log_dir/arm64.log"
	if timeout 900 bash tools/arm64.sh >"$out" 2>&1; then rc=0; else rc=$?; fi
	cat "$out"
	n=$(grep -cE '^arm64: [A-Za-z0-9_.-]+: passed$' "$out"); pass=$((pass + n))
	f=$(grep -cE '^arm64: [A-Za-z0-9_.-]+: FAILED' "$out"); fail=$((fail + f))
	while IFS= read -r line; do failed arm64 "${line#arm64: }"; done < <(grep -E '^arm64: [A-Za-z0-9_.-]+: FAILED' "$out")
	if grep -q '^arm64: skipped:' "$out"; then
		skip=$((skip + 1))
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "arm64: tools/arm64.sh exited $rc without a FAILED line" >&2
		fail=$((fail + 1))
		failed arm64 "tools/arm64.sh exited $rc (see $out)"
	fi
fi

# deploy: deploy/Dockerfile and docker-compose.yml for real (tests/deploy):
# podman from Debian (installed when missing), a debootstrap'd base image,
# the image built, `up`, values, a reload, an agent killed, `down`.  A few
# minutes on a fresh machine (cached in build/deploy-test after); skipped
# with its reason only where podman cannot be installed or run.
if want deploy && ls tests/deploy/test_*.py >/dev/null 2>&1; then
	out="$log_dir/deploy.log"
	timeout -k 30 1800 $PY -m pytest -q -s -rfEs -p no:cacheprovider tests/deploy >"$out" 2>&1
	grep -oE 'deploy: .*' "$out" | awk '!seen[$0]++'	# phases, timings, mirror, a skip's reason
	grep -vE 'deploy: ' "$out" | tail -3
	pytest_count "$out" deploy || fail=$((fail + 1))
fi

# What failed, last but one: a log's tail names it.  At most 20 lines.
if [ "${#failures[@]}" -gt 0 ]; then
	echo "failures (${#failures[@]}; logs in $log_dir):"
	printf '  %s\n' "${failures[@]:0:20}"
	[ "${#failures[@]}" -gt 20 ] && echo "  ... and $((${#failures[@]} - 20)) more"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

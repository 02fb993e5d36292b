#!/usr/bin/env bash
# Run every suite and finish with one line "N passed, N failed, N skipped"
# summed over all of them.  Exit status: 0 only when nothing failed.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
pass=0 fail=0 skip=0
log_dir=build/test-logs
mkdir -p "$log_dir"

# cmocka prints "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)..." / "[  SKIPPED ] N".
for t in build/tests/test_*; do
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
	echo "unit: $name: $p passed, $f failed, $s skipped"
	[ "$f" -gt 0 ] && sed 's/^/    /' "$out" | grep -E 'FAIL|ERROR|error|Assert|fail' | head -20
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done

# pytest: parse its closing summary ("3 passed, 1 failed, 2 skipped in 4.2s").
if ls tests/integration/test_*.py >/dev/null 2>&1; then
	out="$log_dir/pytest.log"
	timeout 900 $PY -m pytest -q -rs -p no:cacheprovider tests/integration 2>&1 | tee "$out"
	summary=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$out" | tail -1)
	for kind in passed failed error skipped; do
		n=$(echo "$summary" | grep -oP "[0-9]+(?= $kind)" || true)
		n=${n:-0}
		case $kind in
		passed) pass=$((pass + n)) ;;
		failed|error) fail=$((fail + n)) ;;
		skipped) skip=$((skip + n)) ;;
		esac
	done
	if [ -z "$summary" ]; then
		echo "integration: pytest printed no summary" >&2
		fail=$((fail + 1))
	fi
fi

# The attack suite: hostile clients (tests/attack), one pytest run.
out="$log_dir/attack.log"
timeout 900 $PY -m pytest -q -rs -p no:cacheprovider tests/attack 2>&1 | tee "$out" | tail -15
summary=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$out" | tail -1)
for kind in passed failed error skipped; do
	n=$(echo "$summary" | grep -oP "[0-9]+(?= $kind)" || true)
	n=${n:-0}
	case $kind in
	passed) pass=$((pass + n)) ;;
	failed|error) fail=$((fail + n)) ;;
	skipped) skip=$((skip + n)) ;;
	esac
done
if [ -z "$summary" ] || ! echo "$summary" | grep -qE '[0-9]+ (passed|failed)'; then
	echo "attack: pytest printed no summary" >&2
	fail=$((fail + 1))
fi

# Sanitizers: the protocol, error and shutdown tests again against the
# ASan+UBSan build (make asan); any sanitizer report in a gateway's stderr
# is one more failure.
if [ -x build-asan/infergw ]; then
	out="$log_dir/asan.log"
	rm -rf build-asan/run
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	INFERGW_BIN="$PWD/build-asan/infergw" timeout 600 $PY -m pytest -q -p no:cacheprovider \
		--basetemp=build-asan/run tests/integration/test_api.py tests/integration/test_infer.py \
		tests/integration/test_errors.py tests/integration/test_http1.py \
		tests/integration/test_binary.py tests/integration/test_shutdown.py 2>&1 | tee "$out" | tail -3
	summary=$(grep -E '(passed|failed|error)' "$out" | tail -1)
	n=$(echo "$summary" | grep -oP '[0-9]+(?= passed)' || true); pass=$((pass + ${n:-0}))
	n=$(echo "$summary" | grep -oP '[0-9]+(?= failed)' || true); fail=$((fail + ${n:-0}))
	n=$(echo "$summary" | grep -oP '[0-9]+(?= error)' || true); fail=$((fail + ${n:-0}))
	reports=$(grep -rlE 'AddressSanitizer|LeakSanitizer|runtime error:' build-asan/run 2>/dev/null)
	if [ -n "$reports" ]; then
		echo "asan: sanitizer reports in: $reports" >&2
		fail=$((fail + 1))
	else
		echo "asan: no sanitizer reports"
		pass=$((pass + 1))
	fi
else
	echo "asan: build-asan/infergw missing (make asan): sanitizer suite skipped"
	skip=$((skip + 1))
fi

# Fuzzing: each libFuzzer target of tests/fuzz/ for a bounded time from its
# seed corpus; "fuzz: NAME: passed" is one pass, "fuzz: NAME: FAILED (...)"
# one failure, and a missing clang/libFuzzer toolchain one skip.
out="$log_dir/fuzz.log"
if timeout 300 bash tests/fuzz/run.sh >"$out" 2>&1; then rc=0; else rc=$?; fi
cat "$out"
n=$(grep -cE '^fuzz: [a-z_]+: passed$' "$out"); pass=$((pass + n))
f=$(grep -cE '^fuzz: [a-z_]+: FAILED' "$out"); fail=$((fail + f))
if grep -q '^fuzz: skipped:' "$out"; then
	skip=$((skip + 1))
elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
	echo "fuzz: tests/fuzz/run.sh exited $rc without a FAILED line" >&2
	fail=$((fail + 1))
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# Build the fuzz targets, then fuzz each (FUZZ_TARGETS, default all fourteen)
# for FUZZ_SECONDS (default 15), all at once, each from
# a scratch copy of its seed corpus in build/fuzz/corpus/ (new inputs never
# dirty the tree).  One line per target:
#   fuzz: <name>: passed
#   fuzz: <name>: FAILED (<crash file>)
# and exit 1 if any failed.  Without a fuzzer toolchain it prints
# "fuzz: skipped: <reason>" and exits 0.
#
# Known crashing inputs live in tests/fuzz/crashes/<name>/: each is run
# first; one that still crashes fails the target (keep it until the bug is
# fixed, then move it into corpus/<name>/ as a regression seed).
set -u
cd "$(dirname "$0")/../.."
OUT=build/fuzz
SECS=${FUZZ_SECONDS:-15}
TARGETS=${FUZZ_TARGETS:-"kserve mpcodec safetensors config h1 zcodec repository agentframe dgram pkt grpc h2check hpack h2w"}
mkdir -p "$OUT/logs"

bash tests/fuzz/build.sh >"$OUT/logs/build.log" 2>&1
rc=$?
if [ "$rc" -eq 77 ]; then
	echo "fuzz: skipped: $(tail -1 "$OUT/logs/build.log")"
	exit 0
elif [ "$rc" -ne 0 ]; then
	sed 's/^/    /' "$OUT/logs/build.log" | tail -20 >&2
	for t in $TARGETS; do echo "fuzz: $t: FAILED (build failed, see $OUT/logs/build.log)"; done
	exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
pids=()
# The targets run in parallel (one core each) to keep the total near SECS.
for t in $TARGETS; do
	(
		bin=$OUT/fuzz_$t log=$OUT/logs/$t.log
		corpus=$OUT/corpus/$t art=$OUT/artifacts/$t
		rm -rf "$corpus" "$art"
		mkdir -p "$corpus" "$art"
		cp tests/fuzz/corpus/$t/* "$corpus/"
		dict=() ; [ -f tests/fuzz/$t.dict ] && dict=(-dict=tests/fuzz/$t.dict)
		: >"$log"
		# Known crashes first: each must now run clean.
		for c in tests/fuzz/crashes/$t/*; do
			[ -f "$c" ] || continue
			if ! timeout 60 "$bin" -rss_limit_mb=1024 -malloc_limit_mb=1024 "$c" >>"$log" 2>&1; then
				echo "fuzz: $t: FAILED ($c)"
				exit 1
			fi
		done
		timeout $((SECS + 60)) "$bin" "${dict[@]}" -max_total_time="$SECS" -rss_limit_mb=1024 -malloc_limit_mb=1024 \
			-timeout=10 -max_len=4096 -print_final_stats=1 -artifact_prefix="$art/" \
			"$corpus" >>"$log" 2>&1
		rc=$?
		crash=$(ls "$art" 2>/dev/null | head -1)
		if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
			echo "fuzz: $t: passed"
		else
			[ -n "$crash" ] && what=$art/$crash || what="exit $rc, see $log"
			echo "fuzz: $t: FAILED ($what)"
			exit 1
		fi
	) >"$OUT/logs/$t.result" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
for t in $TARGETS; do
	cat "$OUT/logs/$t.result"
	# The first report and its stack, then the sanitizer's summary line.
	grep -q ': FAILED' "$OUT/logs/$t.result" &&
		awk '/ERROR: |runtime error:|invariant failed/ { on = 1 } /^SUMMARY/ { exit }
		     on && /^    #|ERROR|error|invariant|leak/ && n++ < 14' "$OUT/logs/$t.log" |
		sed 's/^/    /' &&
		grep -m1 '^SUMMARY' "$OUT/logs/$t.log" | sed 's/^/    /'
done
exit "$failed"

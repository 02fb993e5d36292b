#!/usr/bin/env bash
# tests/gpu/device_run.sh - everything a lent GPU machine should run, in one
# go, bounded to about 8 minutes: build, generate mlp-large, gpu-check
# (FP32/TF32 against the CPU backend, then INT8 through cuBLASLt against
# model_forward_ref and INT8 vs FP32 throughput at batch 64), bench-gpu.  Written for a fresh copy of the working tree on a machine with
# a device (an H200, 16 cores, no network); results go to $OUT:
#
#   $OUT/summary.md       what ran, exit codes, device, the gpu-check table
#                         and the bench section (paste into docs/bench-history.md §8; make bench-gpu / bench/gpu.sh feeds RESULTS.md)
#   $OUT/gpu_check.txt, gpu_check.csv, bench_gpu.md, logs/*.log
#
# usage: OUT=/some/dir tests/gpu/device_run.sh     (default OUT: ./device-out)
# Each step has its own timeout; a failed step is recorded and the next one
# still runs (a bench without a passing check is still data, marked so).
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT/logs"
S="$OUT/summary.md"
T0=$(date +%s)
NP=$(nproc)
J=$((NP > 16 ? 16 : NP))

# step NAME SECS CMD... - run CMD with a timeout, its output in logs/NAME.log;
# records "| NAME | rc | seconds |" in the summary.  Returns CMD's status.
declare -a STEPS
step() {
	local name=$1 secs=$2 rc t
	shift 2
	t=$(date +%s)
	echo "== $name ($*), at most ${secs}s" >&2
	timeout -k 10 "$secs" "$@" >"$OUT/logs/$name.log" 2>&1
	rc=$?
	STEPS+=("| $name | $rc$([ $rc -eq 124 ] && echo ' (timed out)') | $(($(date +%s) - t)) |")
	echo "== $name: exit $rc" >&2
	return $rc
}

{
	echo "# GPU device run ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
	echo
	echo "- git: $(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "- machine: nproc=$NP, $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
	echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | head -3 | tr '\n' ';')"
	echo "- nvcc: $(/usr/local/cuda/bin/nvcc --version 2>/dev/null | tail -1)"
	echo
} >"$S"
nvidia-smi >"$OUT/logs/nvidia-smi.log" 2>&1

# 1. packages: only when something is missing and apt can reach a mirror
#    (no network there, usually: then the build says what it lacks).
step deps 90 make deps
# 2. build (the gateway, the CUDA backend, the check), the large model
step build 180 make -j"$J" all build/tests/gpu_check
"./build/infergw" --version >"$OUT/logs/version.log" 2>&1
grep -qw cuda "$OUT/logs/version.log" && CUDA_IN=yes || CUDA_IN=no
echo "- infergw --version: $(head -2 "$OUT/logs/version.log" | tr '\n' ' ') (cuda built in: $CUDA_IN)" >>"$S"
step models 60 make models
# 3. the device check: every batch size 1..256, FP32/TF32, graphs on/off;
#    then mlp-large's INT8 variant (quantized inside the check) on gpu0
#    against the float64 INT8 reference, and its speed against FP32
step gpu_check 210 ./build/tests/gpu_check --csv "$OUT/gpu_check.csv"
GC_RC=$?
cp "$OUT/logs/gpu_check.log" "$OUT/gpu_check.txt"
# 4. through the gateway: smaller rounds than the defaults, to fit the time
left=$((480 - ($(date +%s) - T0)))
[ "$left" -gt 240 ] && left=240
if [ "$left" -gt 60 ]; then
	step bench_gpu "$left" env ROWS="${ROWS:-20000}" ROUNDS="${ROUNDS:-2}" \
		bash bench/gpu.sh "$OUT/bench_gpu.md"
else
	STEPS+=("| bench_gpu | not run: ${left}s left | 0 |")
fi

{
	echo
	echo "| step | exit | seconds |"
	echo "|---|---|---|"
	printf '%s\n' "${STEPS[@]}"
	echo
	echo "gpu_check: $([ $GC_RC -eq 0 ] && echo passed || { [ $GC_RC -eq 77 ] && echo skipped || echo "FAILED (exit $GC_RC)"; })"
	echo
	echo '```'
	head -120 "$OUT/gpu_check.txt"
	echo '```'
	echo
	echo "INT8 (cuBLASLt) part of gpu_check:"
	echo
	echo '```'
	sed -n '/^int8: /,/^model .*INT8 through/p' "$OUT/gpu_check.txt" | head -40
	grep -E '^MISMATCH .*int8' "$OUT/gpu_check.txt" | head -10
	echo '```'
	echo
	[ -f "$OUT/bench_gpu.md" ] && cat "$OUT/bench_gpu.md"
	echo
	echo "_total: $(($(date +%s) - T0)) s_"
} >>"$S"
cat "$S"

#!/usr/bin/env bash
# bench/kernel.sh - CPU kernel throughput of the large synthetic MLP
# (config/models/mlp-large, 1024-4096-4096-1024) at batch 1, 8, 64 through
# infergw's CPU backend, against raw oneDNN primitives in the same program
# (bench/kernel.c).
#
# usage: bench/kernel.sh [OUT.md]     (markdown section; default stdout)
# env:   THREADS=2 SLICES=25 SLICE_SECS=0.05 BATCHES=1,8,64
set -u
. "$(dirname "$0")/lib.sh"
bench_init kernel "3. Kernel throughput: mlp-large, infergw CPU backend vs raw oneDNN"

OUT_MD=${1:-/dev/stdout}
THREADS=${THREADS:-2}
SLICES=${SLICES:-25}
SLICE_SECS=${SLICE_SECS:-0.05}
BATCHES=${BATCHES:-1,8,64}
MODEL="$BENCH_ROOT/config/models/mlp-large"

[ -f "$MODEL/model.safetensors" ] || bench_fail "$MODEL/model.safetensors missing (make models)"

# Linked like the unit tests (Makefile rule build/bench/%: with the CUDA
# runtime libraries when the library holds CUDA objects; a plain gcc line
# without them no longer links).
BUILD_CMD="make build/bench/kernel"
make -C "$BENCH_ROOT" build/bench/kernel >"$T/build.log" 2>&1 ||
	bench_fail "bench/kernel.c does not build: $(tail -5 "$T/build.log")"

# Not pinned: it uses both cores (THREADS OpenMP threads); nothing else of
# ours runs meanwhile.
CMD="kernel -t $THREADS -r $SLICES -s $SLICE_SECS -b $BATCHES config/models/mlp-large"
timeout -k 5 120 "$BENCH_ROOT/build/bench/kernel" -t "$THREADS" -r "$SLICES" -s "$SLICE_SECS" -b "$BATCHES" "$MODEL" \
	>"$T/kernel.out" 2>"$T/kernel.err"
rc=$?
[ $rc -eq 0 ] || bench_fail "kernel exited $rc: $(tail -5 "$T/kernel.err")"
grep -E '^kernel: batch [0-9]+: max' "$T/kernel.err" >&2

{
	echo "## $BENCH_TITLE"
	echo
	bench_env_md | grep -v '^- h2load\|^- pinning'
	echo "- oneDNN: $(sed -n 's/^#define DNNL_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' /usr/include/oneapi/dnnl/dnnl_version.h 2>/dev/null | paste -sd.), threads_per_slot = $THREADS (OpenMP threads inside one batch; raw oneDNN runs with the same team size), 1 slot, not pinned"
	echo "- infergw: be_cpu_ops.submit of one request of B rows (gather + matmul chain + softmax + scatter). raw oneDNN (the anchor): matmul primitives made for exactly B rows with weights in format_any, nn.Linear's weights reordered ahead of time into the layout each asks for, fused bias+ReLU, oneDNN softmax. unpacked: the same reading the [out][in] array in place (tag ba)"
	echo "- ratio = median over slices of infergw / raw from neighbouring slices; cells = median slice"
	echo "- build: \`$BUILD_CMD\`"
	echo "- run: \`$CMD\`"
	echo
	grep -v '^RESULT\|^CPU ' "$T/kernel.out"
	grep '^WARNING' "$T/kernel.err" || true
	echo
} >>"$OUT_MD"

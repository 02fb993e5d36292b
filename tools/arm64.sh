#!/usr/bin/env bash
# tools/arm64.sh - build infergw for arm64 (a BlueField-class DPU's Arm
# cores) with Debian's cross toolchain into build-arm64/, and run the unit
# tests that matter on the DPU under qemu-user (docs/dpu.md).
#
#   bash tools/arm64.sh          (make arm64 runs the same)
#
# One line per test binary: "arm64: NAME: passed" / "arm64: NAME: FAILED
# (...)", and agent_help (build-arm64/infergw-agent --help runs); exit 1
# when any failed.  When the toolchain or the arm64
# libraries are missing and cannot be installed (not root, no mirror, a
# package that will not install): "arm64: skipped: <reason>", exit 0.
#
# Environment:
#   ARM64_INSTALL=0   never install packages: skip when something is missing
#   ARM64_TESTS="..." test binaries to run (default below; those whose
#                     tests/unit/NAME.c is absent are left out)
#   ARM64_TIMEOUT=N   seconds per test binary under emulation (default 300)
#
# What it installs when missing (root, apt; arm64 added as a foreign
# architecture first): gcc-aarch64-linux-gnu, qemu-user (qemu-aarch64 is
# called directly: no binfmt_misc needed), and the :arm64 -dev packages the
# gateway and the agent link, never when apt would remove anything.
# libdnnl-dev:arm64 and libevent-dev:arm64 cannot be installed beside their
# amd64 selves (apt removes those), so their .debs are fetched with
# apt-get download and unpacked into build-arm64/sysroot/ instead; their
# runtime libraries (libdnnl2:arm64, libevent-*:arm64) are installed.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=build-arm64
TRIPLE=aarch64-linux-gnu
TESTS=${ARM64_TESTS:-"test_agp test_mpread test_agent test_model test_safetensors test_be_cpu"}
TMO=${ARM64_TIMEOUT:-300}
PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libc6:arm64 libmsgpack-dev:arm64
      libnghttp2-dev:arm64 libjansson-dev:arm64 libyaml-dev:arm64 libssl-dev:arm64
      zlib1g-dev:arm64 libcmocka-dev:arm64 libdnnl2:arm64 libevent-2.1-7:arm64
      libevent-core-2.1-7:arm64 libevent-extra-2.1-7:arm64 libevent-pthreads-2.1-7:arm64
      libevent-openssl-2.1-7:arm64 libprotobuf-c-dev:arm64"
# -dev packages that cannot sit beside their amd64 selves (an arch-specific
# header at the same path: dnnl_config.h, event2/event-config.h): installing
# the :arm64 one would REMOVE the amd64 one and break the host's build.
# They are unpacked into $OUT/sysroot instead (their runtime libraries,
# Multi-Arch: same, are in PKGS).
SYSROOT_DEBS="libdnnl-dev libevent-dev"
mkdir -p "$OUT/logs"

skip() {
	echo "arm64: skipped: $*"
	exit 0
}

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed'
}

# The packages, installed when missing and allowed.
ensure_packages() {
	local missing="" p log=$OUT/logs/apt.log

	command -v dpkg-query >/dev/null 2>&1 || skip "not a Debian system (no dpkg)"
	for p in $PKGS; do
		installed "$p" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	[ "${ARM64_INSTALL:-1}" = 0 ] && skip "missing:$missing (ARM64_INSTALL=0)"
	[ "$(id -u)" -eq 0 ] || skip "missing:$missing (not root: apt-get install them)"
	echo "arm64: installing:$missing" >&2
	: >"$log"
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64 >>"$log" 2>&1 || skip "dpkg --add-architecture arm64 failed"
	fi
	# shellcheck disable=SC2086
	apt-get update -q >>"$log" 2>&1 || skip "apt-get update failed (see $log)"
	# Never at the host's expense: a plan that removes a package is refused.
	# shellcheck disable=SC2086
	if ! apt-get install -s -q --no-install-recommends $missing >"$log.plan" 2>&1; then
		skip "apt-get cannot install:$missing: $(grep -E '^E:' "$log.plan" | tail -1)"
	fi
	if grep -q '^Remv ' "$log.plan"; then
		skip "installing$missing would remove $(grep '^Remv ' "$log.plan" | awk '{print $2}' | tr '\n' ' ')(see $log.plan)"
	fi
	# shellcheck disable=SC2086
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		$missing >>"$log" 2>&1; then
		skip "apt-get install failed: $(grep -E '^E:' "$log" | tail -1) (see $log)"
	fi
}

# The SYSROOT_DEBS (:arm64) unpacked into $OUT/sysroot; their .so links
# for the linker in $OUT/lib, pointing at the installed runtime libraries.
ensure_sysroot() {
	local sys=$OUT/sysroot log=$OUT/logs/sysroot.log p deb so target

	for p in $SYSROOT_DEBS; do
		[ -f "$sys/.$p" ] && continue
		mkdir -p "$OUT/deb" "$sys"
		rm -f "$OUT"/deb/${p}_*_arm64.deb
		if ! (cd "$OUT/deb" && apt-get download "$p:arm64") >>"$log" 2>&1; then
			skip "cannot fetch $p:arm64: $(tail -1 "$log")"
		fi
		deb=$(ls "$OUT"/deb/${p}_*_arm64.deb 2>/dev/null | head -1)
		[ -n "$deb" ] && dpkg-deb -x "$deb" "$sys" >>"$log" 2>&1 ||
			skip "cannot unpack $p:arm64 (see $log)"
		: >"$sys/.$p"
	done
	mkdir -p "$OUT/lib"
	for so in "$sys"/usr/lib/$TRIPLE/*.so; do
		[ -L "$so" ] || continue
		target=/usr/lib/$TRIPLE/$(basename "$(readlink "$so")")
		[ -e "$target" ] || skip "$(basename "$so"): $target missing (runtime :arm64 package not installed?)"
		ln -sfn "$target" "$OUT/lib/$(basename "$so")"
	done
}

ensure_packages
command -v $TRIPLE-gcc >/dev/null 2>&1 || skip "$TRIPLE-gcc not found after install"
command -v qemu-aarch64 >/dev/null 2>&1 || skip "qemu-aarch64 not found after install"
ensure_sysroot

# The project's Makefile with the cross compiler: arm64 .pc files, the
# unpacked dnnl headers, and an `ar` that knows arm64 objects (the
# Makefile calls plain ar; the host's may not index foreign ELF).
mkdir -p "$OUT/bin"
ln -sfn "$(command -v $TRIPLE-ar)" "$OUT/bin/ar"
export PATH="$PWD/$OUT/bin:$PATH"
export PKG_CONFIG_LIBDIR=$PWD/$OUT/sysroot/usr/lib/$TRIPLE/pkgconfig:/usr/lib/$TRIPLE/pkgconfig:/usr/share/pkgconfig
export PKG_CONFIG_PATH=
export CFLAGS="-O2 -g -isystem $PWD/$OUT/sysroot/usr/include"
export LDFLAGS="-L$PWD/$OUT/lib"

targets="$OUT/infergw" tests=""
[ -f agent/main.c ] && targets="$targets $OUT/infergw-agent"
for t in $TESTS; do
	[ -f "tests/unit/$t.c" ] || continue
	tests="$tests $t"
	targets="$targets $OUT/tests/$t"
done
# USE_CUDA=0: the host's nvcc would build x86-64 kernels into the arm64
# archives (the DPU's cores have no CUDA device anyway).
if ! make -j2 BUILD=$OUT CC=$TRIPLE-gcc USE_CUDA=0 $targets >"$OUT/logs/build.log" 2>&1; then
	grep -E 'error|Error' "$OUT/logs/build.log" | head -10 | sed 's/^/    /' >&2
	for t in $tests; do echo "arm64: $t: FAILED (build failed, see $OUT/logs/build.log)"; done
	exit 1
fi
for b in $targets; do
	file -b "$b" 2>/dev/null | grep -q 'ARM aarch64' || {
		echo "arm64: $(basename "$b"): FAILED (not an aarch64 binary: $(file -b "$b" | cut -c1-60))"
		exit 1
	}
done

# Under emulation, loader and libc must come from the same package: the
# binaries link the multiarch libraries (/lib/aarch64-linux-gnu, libc6:arm64),
# so the loader is libc6:arm64's too (-L /).  With -L /usr/aarch64-linux-gnu
# the loader is libc6-arm64-cross's (another glibc build) while libc.so.6
# is libc6:arm64's: their private layout differs and the first
# pthread_create spins forever (seen with 2.36-8cross1 vs 2.36-9+deb12u14).
QEMU_PREFIX=/usr/$TRIPLE
[ -e /lib/ld-linux-aarch64.so.1 ] && QEMU_PREFIX=/
failed=0
for t in $tests; do
	log=$OUT/logs/$t.log
	if timeout "$TMO" qemu-aarch64 -L "$QEMU_PREFIX" "$OUT/tests/$t" >"$log" 2>&1; then
		echo "arm64: $t: passed"
	else
		rc=$?
		[ "$rc" -eq 124 ] && why="timed out after ${TMO}s" || why="exit $rc"
		# which cmocka tests, and the first failing line: CI shows only
		# the summary's tail, where this line is repeated
		which=$(sed -n 's/^\[  FAILED  \] \([A-Za-z0-9_]*\)$/\1/p' "$log" | sort -u | tr '\n' ' ')
		where=$(grep -m1 -oE '[A-Za-z0-9_/.-]+\.c:[0-9]+' "$log")
		[ -n "$which" ] && why="$why: ${which% }${where:+ at $where}"
		echo "arm64: $t: FAILED ($why, see $log)"
		grep -E 'FAIL|ERROR|error' "$log" | head -5 | sed 's/^/    /'
		failed=1
	fi
done
if [ -f "$OUT/infergw-agent" ]; then
	# the agent binary starts and answers --help on the emulated CPU
	if timeout 60 qemu-aarch64 -L "$QEMU_PREFIX" "$OUT/infergw-agent" --help >"$OUT/logs/agent-help.log" 2>&1; then
		echo "arm64: agent_help: passed"
	else
		echo "arm64: agent_help: FAILED (exit $?, see $OUT/logs/agent-help.log)"
		failed=1
	fi
fi
exit $failed

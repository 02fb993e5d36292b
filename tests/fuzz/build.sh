#!/usr/bin/env bash
# Build the libFuzzer targets into build/fuzz/: the parsers' sources are
# compiled here with clang and fuzzer + ASan + UBSan instrumentation (the
# gcc-built libinfergw.a has no coverage feedback), archived so each target
# links only what it uses.  A gateway source the parsers have come to call
# and SRC does not name is found by symbol in make's build/obj and added.
#
# Exit 0 when built; 77 (with the reason on stderr) when the toolchain is
# missing (clang, or its libFuzzer runtime: apt-get install libclang-rt-14-dev);
# anything else is a build failure.
set -eu
cd "$(dirname "$0")/../.."
CC=${FUZZ_CC:-clang}
OUT=build/fuzz
TARGETS="kserve mpcodec safetensors config h1 zcodec repository agentframe dgram pkt grpc h2check hpack h2w"
SRC="gateway/net/h1parse.c gateway/net/h2check.c gateway/net/hpack.c gateway/net/h2w.c gateway/net/zcodec.c gateway/api/repository.c gateway/api/kserve.c gateway/api/jsonfast.c gateway/api/mpcodec.c
     gateway/core/config.c gateway/core/cpus.c backends/model/ytree.c gateway/sched/router.c gateway/core/log.c backends/model/dtype.c backends/model/safetensors.c backends/model/model.c
     backends/registry.c backends/gpu/gpuconf.c backends/cpu/cpu.c backends/cpu/rowk.c backends/fake/fake.c gateway/sched/slice.c
     backends/remote/rconf.c backends/remote/remote.c backends/remote/eject.c backends/remote/proto.c
     backends/mpread.c backends/secret.c gateway/api/dgram.c dpdk/pkt.c
     gateway/api/grpccodec.c $OUT/gen/grpc_service.pb-c.c"
PKGS="jansson yaml-0.1 msgpack libevent libprotobuf-c"

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "$CC not found" >&2
	exit 77
fi
mkdir -p "$OUT/obj"
probe=$OUT/obj/probe
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$probe.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" 2>"$probe.log"; then
	echo "$CC cannot link -fsanitize=fuzzer,address,undefined (libFuzzer runtime missing?): $(head -1 "$probe.log")" >&2
	exit 77
fi
if ! pkg-config --exists $PKGS 2>/dev/null; then
	echo "pkg-config cannot find: $PKGS" >&2
	exit 77
fi

# The gRPC messages' C (fuzz_grpc), generated from the repo's .proto as make does.
mkdir -p "$OUT/gen"
if [ ! -f "$OUT/gen/grpc_service.pb-c.c" ] || [ proto/grpc_service.proto -nt "$OUT/gen/grpc_service.pb-c.c" ]; then
	if ! command -v protoc-c >/dev/null 2>&1; then
		echo "protoc-c not found (protobuf-c-compiler)" >&2
		exit 77
	fi
	protoc-c --c_out="$OUT/gen" --proto_path=proto proto/grpc_service.proto
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=gnu11 -pthread -fno-strict-aliasing $SAN -I. -Igateway -Igateway/net -Igateway/api -Igateway/sched -Igateway/core -Ibackends -Itests/fuzz -I$OUT/gen $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lz -ldnnl -lgomp -lm -pthread"	# the config parser knows the backend kinds (registry)

# fuzz_obj SRC - compile SRC into $OUT/obj unless up to date; its object
# appended to objs.
objs=()
fuzz_obj() {
	local s=$1 o
	o=$OUT/obj/$(echo "${s%.c}" | tr / _ | tr . _).o
	if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$0" -nt "$o" ] || \
	   [ -n "$(find gateway backends -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
		$CC $CFLAGS -fsanitize=fuzzer-no-link -c "$s" -o "$o"
	fi
	objs+=("$o")
}

# fuzz_missing_srcs - the gateway sources (those make compiled into
# build/obj) defining a symbol that the objects so far use and none
# defines, one per line; nothing when make has not built them yet.
fuzz_missing_srcs() {
	local und
	und=$(comm -23 <(nm -u --format=just-symbols "${objs[@]}" | sort -u) \
		<(nm --defined-only -g --format=just-symbols "${objs[@]}" | sort -u))
	[ -n "$und" ] || return 0
	find build/obj/gateway build/obj/backends build/obj/dpdk -name '*.o' 2>/dev/null |
		while read -r o; do
			s=${o#build/obj/}
			s=${s%.o}.c
			[ -f "$s" ] && [ "$s" != gateway/main.c ] || continue
			nm --defined-only -g --format=just-symbols "$o" 2>/dev/null | sed "s|\$| $s|"
		done | sort -k1,1 | join - <(echo "$und") | awk '{ print $2 }' | sort -u
}

for s in $SRC; do
	fuzz_obj "$s"
done
# SRC names the parsers and what they are known to call; a source they
# have come to depend on since (as config.c on cpus.c once) is added here
# from the gateway's own objects, so that a new dependency does not break
# the fuzz build, late in make test.  Each one added is said, so that SRC
# can be brought up to date.
for round in 1 2 3 4 5 6 7 8; do
	more=$(fuzz_missing_srcs)
	[ -n "$more" ] || break
	for s in $more; do
		echo "fuzz build: adding $s (defines a symbol the parsers use; not in build.sh's SRC)" >&2
		fuzz_obj "$s"
	done
done
rm -f "$OUT/libparsers.a"
ar rcs "$OUT/libparsers.a" "${objs[@]}"
for t in $TARGETS; do
	$CC $CFLAGS -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "$OUT/libparsers.a" $LIBS -o "$OUT/fuzz_$t"
done

# infergw - build, run, test, bench.
#
#   make            build/infergw, build/infergw-agent (the DPU-offload worker),
#                   build/infergw-gpu.so (the GPU plugin, with nvcc)
#   make run        install missing packages, build, serve config/gateway.yaml
#   make test       install missing packages, build, run every suite
#   make bench      benchmarks: HTTP/2 anchors, inference, kernels, payloads,
#                   overload, reloads, agents, INT8, DPDK, GPU, simulator scale;
#                   regenerates bench/RESULTS.md, writes bench/results/DATE.md
#   make bench-quick the same with few rounds (minutes; provisional numbers,
#                   bench/results/quick/, RESULTS.md left alone)
#   make sim        the data-centre simulator (bench/sim); make sim-report runs it
#   make models     generate the large synthetic MLP for benchmarks
#   make gpu-check  the GPU backend against the CPU backend on a device
#                   (tests/gpu/gpu_check.c; says so and passes without one)
#   make bench-gpu  GPU vs CPU through the gateway (bench/gpu.sh; needs a device)
#
#   make asan       build-asan/infergw with ASan+UBSan, and the parsers' unit
#                   tests (ASAN_UNIT) under it (run by make test)
#   make tsan       build-tsan/infergw with ThreadSanitizer (run by make test)
#   make soak       SOAK_SECONDS (120) of mixed loads, hostile clients and
#                   reloads against one gateway (tools/soak.sh; INFERGW_BIN=
#                   build-asan/infergw for the ASan build)
#   make floatcheck every float32 bit pattern through the JSON number writer
#                   and readers, against printf (tools/floatcheck.c; ~30
#                   minutes on 2 CPUs; test_jsonfast samples a stride of it)
#
# Options: V=1 (show commands) SANITIZE=1 (ASan+UBSan) TSAN=1 (ThreadSanitizer)
# USE_CUDA=1 USE_DPDK=1 (forced: the build stops when the toolkit is missing;
# default: auto-detect; USE_CUDA=0 builds without the GPU backend even where
# nvcc exists).  Sanitizer builds define INFERGW_NO_RECYCLE: memory
# is freed, never recycled through free lists or arenas, so a use after free
# is the sanitizer's report instead of a quiet read of a recycled object.

CC      ?= gcc
PYTHON  := /usr/bin/python3
BUILD   := build
CONFIG  ?= config/gateway.yaml

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS_C  := libevent libevent_pthreads libevent_openssl libnghttp2 jansson yaml-0.1 msgpack openssl \
           libprotobuf-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS_C) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS_C) 2>/dev/null)
# Without them a build would link without its libraries: say so, and how to
# fix it, unless every goal of this make is one that installs them first or
# builds nothing (run, test, bench... re-run make after deps).
NO_PKG_GOALS := deps run test bench bench-quick bench-gpu help clean arm64 sim
ifeq ($(PKG_LIBS),)
ifneq ($(or $(filter-out $(NO_PKG_GOALS),$(MAKECMDGOALS)),$(if $(MAKECMDGOALS),,all)),)
$(error pkg-config does not find $(PKGS_C): run `make deps` first (make run, make test and make bench install them themselves))
endif
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread -fno-strict-aliasing \
           -I. -Igateway -Igateway/net -Igateway/api -Igateway/sched -Igateway/core -Ibackends \
           -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -ldnnl -lgomp -lz -lm -pthread

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -O1 -DINFERGW_NO_RECYCLE
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
ifeq ($(SANITIZE),1)
$(error SANITIZE=1 and TSAN=1 cannot be combined (ASan and TSan exclude each other))
endif
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer -O1 -DINFERGW_NO_RECYCLE
LDFLAGS += -fsanitize=thread
endif

# Optional features: auto-detected, or forced with USE_X=1 (then required)
# or off with USE_X=0.
# CUDA (backends/gpu/): nvcc found (or USE_CUDA=1) builds the GPU backend's
# host code with $(CC) -DUSE_CUDA and its kernels with nvcc into the plugin
# $(BUILD)/infergw-gpu.so, the only thing linked with cudart + cuBLAS(Lt):
# the programs load it when a gpu backend opens (gpuload.c; linked in,
# cuBLASLt cost every process ~150 MB resident and ~80 ms at exec) and
# export their symbols for it (-rdynamic).  Without nvcc everything else
# builds and kind gpu stays down.
CUDA_HOME ?= /usr/local/cuda
NVCC := $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
ifeq ($(USE_CUDA),1)
ifeq ($(NVCC),)
$(error USE_CUDA=1 but nvcc was not found (install the CUDA toolkit in /usr/local/cuda))
endif
endif
HAVE_CUDA :=
ifneq ($(USE_CUDA),0)
ifneq ($(NVCC),)
HAVE_CUDA := 1
endif
endif
ifeq ($(HAVE_CUDA),1)
# sm_80 (A100), sm_90 (H100/H200) code, compute_90 PTX for what comes later
NVCC_GENCODE ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O2
NVCCFLAGS += -std=c++17 $(NVCC_GENCODE) -Xcompiler -fPIC,-Wall -Ibackends
CFLAGS  += -DUSE_CUDA -I$(CUDA_HOME)/include
# -lstdc++: nvcc objects register their kernels through the C++ runtime
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -Wl,-rpath,$(CUDA_HOME)/lib64 -lstdc++
# the programs: the plugin's loader, and their symbols exported for it
GPU_SRC := backends/gpu/gpuhost.c backends/gpu/gpuconf.c backends/gpu/gpuload.c
PROG_LDFLAGS := -rdynamic
# the backend itself: the plugin, and an archive for the tests and bench
# programs that drive it directly (they link CUDA only when they use it)
GPU_CU  := $(wildcard backends/gpu/*.cu)
GPU_OBJ := $(BUILD)/obj/backends/gpu/gpu.o $(GPU_CU:%.cu=$(BUILD)/obj/%.cu.o)
GPU_PLUGIN := $(BUILD)/infergw-gpu.so
GPU_TEST_DEP := $(BUILD)/libinfergw-gpu.a
GPU_TEST_LIBS := $(GPU_TEST_DEP) -Wl,--as-needed $(CUDA_LIBS) -Wl,--no-as-needed
else
# the host logic and the kind's keys build everywhere (unit-tested)
GPU_SRC := backends/gpu/gpuhost.c backends/gpu/gpuconf.c
GPU_OBJ :=
GPU_PLUGIN :=
GPU_TEST_DEP :=
GPU_TEST_LIBS :=
PROG_LDFLAGS :=
endif
HAVE_DPDK := $(shell pkg-config --exists libdpdk 2>/dev/null && echo 1)
ifeq ($(USE_DPDK),1)
ifneq ($(HAVE_DPDK),1)
$(error USE_DPDK=1 but pkg-config cannot find libdpdk (apt-get install libdpdk-dev))
endif
endif
# DPDK (dpdk/dp*.c): on when found, unless USE_DPDK=0.  Linked shared (the
# static archives are hundreds of MB); the PMDs (net_pcap, net_af_packet,
# net_null, net_ring) are plugins EAL loads from its driver directory.
# The DPDK headers go only to dpdk/ objects (-isystem: their warnings are
# not ours), so the rest of the tree never sees rte_config.h.
ifneq ($(USE_DPDK),0)
ifeq ($(HAVE_DPDK),1)
DPDK_ON     := 1
DPDK_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags libdpdk))
LDLIBS      += $(shell pkg-config --libs libdpdk)
CFLAGS      += -DUSE_DPDK
endif
endif

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)
FEATURES := http2 http1.1 tls-alpn kserve-v2 binary-tensor msgpack cpu-onednn hot-reload remote-agent
ifeq ($(HAVE_CUDA),1)
FEATURES += cuda
endif
ifeq ($(DPDK_ON),1)
FEATURES += dpdk
endif

LIB_SRC := gateway/control.c $(wildcard gateway/*/*.c) \
           $(wildcard backends/*.c) $(wildcard backends/model/*.c) $(wildcard backends/cpu/*.c) \
           $(wildcard backends/fake/*.c) $(wildcard backends/remote/*.c) $(GPU_SRC) dpdk/pkt.c
ifeq ($(DPDK_ON),1)
LIB_SRC += $(wildcard dpdk/dp*.c)
endif
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/version.o \
           $(BUILD)/obj/gen/grpc_service.pb-c.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test unit asan tsan arm64 soak floatcheck integration bench bench-quick sim sim-report models clean help FORCE \
	gpu-check bench-gpu
all: $(BUILD)/infergw $(BUILD)/infergw-agent $(BUILD)/infergw-quantize $(GPU_PLUGIN)

# floatcheck: all 2^32 float32 patterns through jsonfast's number paths,
# one thread a CPU (tools/floatcheck.c); built by `unit` so it cannot rot.
$(BUILD)/floatcheck: $(BUILD)/obj/tools/floatcheck.o $(BUILD)/libinfergw.a
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

floatcheck: $(BUILD)/floatcheck
	$(BUILD)/floatcheck

# infergw-quantize: the INT8 variant of a model (backends/model/quant.c)
$(BUILD)/infergw-quantize: $(BUILD)/obj/tools/quantize.o $(BUILD)/libinfergw.a
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/cuda.stamp
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The CPU backend splits its INT8 and softmax row loops over the slot's
# OpenMP threads and vectorizes them (#pragma omp parallel for / simd in
# cpu.c and rowk.c; libgomp is linked); no-trapping-math lets floorf vectorize (nothing there
# reads the floating-point exception flags).
$(BUILD)/obj/backends/cpu/cpu.o $(BUILD)/obj/backends/cpu/rowk.o: CFLAGS += -fopenmp -fno-trapping-math

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC  $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

# Objects compiled with and without -DUSE_CUDA differ (backend.h): this
# file changes when that does, so toggling USE_CUDA rebuilds them.
$(BUILD)/gen/cuda.stamp: FORCE
	@mkdir -p $(dir $@)
	@if [ ! -f $@ ] || [ "$$(cat $@)" != "cuda=$(HAVE_CUDA)" ]; then echo "cuda=$(HAVE_CUDA)" > $@; fi

# dpdk/dp*.c: the only objects that see the DPDK headers.
DP_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard dpdk/dp*.c))
$(DP_OBJ): $(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) $(DPDK_CFLAGS) -MMD -MP -c $< -o $@

# Rewritten only when the version or features change, so objects agree.
$(BUILD)/gen/version.c: FORCE
	@mkdir -p $(dir $@)
	@v='const char infergw_version[] = "$(VERSION)";\nconst char infergw_features[] = "$(FEATURES)";'; \
	if [ ! -f $@ ] || [ "$$(cat $@)" != "$$(printf "$$v")" ]; then printf "$$v\n" > $@; fi

$(BUILD)/obj/gen/version.o: $(BUILD)/gen/version.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# gRPC (gateway/api/grpc.c): C for proto/grpc_service.proto, generated by
# protoc-c at build time (never committed); the objects that include it
# wait for it (order-only: -MMD records the real dependency after).
PROTOC_C := protoc-c
$(BUILD)/gen/grpc_service.pb-c.c $(BUILD)/gen/grpc_service.pb-c.h &: proto/grpc_service.proto
	@mkdir -p $(BUILD)/gen
	@$(if $(Q),echo "  PROTO $<")
	$(Q)$(PROTOC_C) --c_out=$(BUILD)/gen --proto_path=proto $<

$(BUILD)/obj/gen/grpc_service.pb-c.o: $(BUILD)/gen/grpc_service.pb-c.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/gateway/api/grpc.o $(BUILD)/obj/gateway/api/api.o $(BUILD)/obj/gateway/api/grpccodec.o: | $(BUILD)/gen/grpc_service.pb-c.h

$(BUILD)/libinfergw.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/infergw: $(BUILD)/obj/gateway/main.o $(BUILD)/libinfergw.a
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) $(PROG_LDFLAGS) $^ $(LDLIBS) -o $@

# The GPU plugin (HAVE_CUDA): gpu.o, the kernels and the host logic, with
# cudart and cuBLAS(Lt); the rest (be_log, be_strdupf, be_state_epoch, ...)
# comes from the program that loads it.  Position-independent objects.
$(BUILD)/obj/backends/gpu/gpu.o $(BUILD)/obj/backends/gpu/gpuhost.o: CFLAGS += -fPIC
# The plugin's stamp and the loader's check (backend.h be_plugin_stamp): the
# build's version, recompiled when it changes (gen/version.c is rewritten then).
$(BUILD)/obj/backends/gpu/gpu.o $(BUILD)/obj/backends/gpu/gpuload.o: CFLAGS += -DIGW_BUILD_VERSION='"$(VERSION)"'
$(BUILD)/obj/backends/gpu/gpu.o $(BUILD)/obj/backends/gpu/gpuload.o: $(BUILD)/gen/version.c
$(BUILD)/infergw-gpu.so: $(GPU_OBJ) $(BUILD)/obj/backends/gpu/gpuhost.o
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) -shared $(LDFLAGS) $^ $(CUDA_LIBS) -o $@

$(BUILD)/libinfergw-gpu.a: $(GPU_OBJ)
	@$(if $(Q),echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# infergw-agent (agent/): the DPU-offload worker.  It links the backends and
# the logger, not the gateway (it implements be_slice_live itself), from
# its own archive so the linker takes only what the agent uses;
# tests/unit/test_agent.c links the same archive.
AGENT_SRC := $(filter-out agent/main.c,$(wildcard agent/*.c)) gateway/core/log.c \
             $(wildcard backends/*.c) $(wildcard backends/model/*.c) $(wildcard backends/cpu/*.c) \
             $(wildcard backends/fake/*.c) $(wildcard backends/remote/*.c) $(GPU_SRC) dpdk/pkt.c
AGENT_OBJ := $(AGENT_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/version.o

$(BUILD)/libagent.a: $(AGENT_OBJ)
	@$(if $(Q),echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/infergw-agent: $(BUILD)/obj/agent/main.o $(BUILD)/libagent.a
	@$(if $(Q),echo "  LD    $@")
	$(Q)$(CC) $(LDFLAGS) $(PROG_LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/test_agent: tests/unit/test_agent.c $(BUILD)/libagent.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/libagent.a $(LDLIBS) -lcmocka -o $@

# Unit tests link the GPU backend's archive too: only those that drive it
# (test_be_gpu) take it, and CUDA with it (--as-needed).
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libinfergw.a $(GPU_TEST_DEP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(GPU_TEST_LIBS) $(BUILD)/libinfergw.a $(LDLIBS) -lcmocka -o $@

# Bench programs that drive the library directly (bench/int8.sh builds
# build/bench/int8): linked like the unit tests (the GPU backend's archive
# and CUDA only for those that drive it).
# -MMD: a change to bench/bench_*.h rebuilds them too.
$(BUILD)/bench/%: bench/%.c $(BUILD)/libinfergw.a $(GPU_TEST_DEP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $@")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -MF $@.d $(LDFLAGS) $< $(GPU_TEST_LIBS) $(BUILD)/libinfergw.a $(LDLIBS) -o $@
-include $(wildcard $(BUILD)/bench/*.d)

# tests/gpu/gpu_check: be_gpu_ops against be_cpu_ops, every batch size
# (docs/gpu.md).  Built with or without CUDA (without it, or without a
# device, it exits 77 "skipped: ..."); tests/run_all.sh's gpu suite runs it.
$(BUILD)/tests/gpu_check: tests/gpu/gpu_check.c $(BUILD)/libinfergw.a $(GPU_TEST_DEP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(GPU_TEST_LIBS) $(BUILD)/libinfergw.a $(LDLIBS) -o $@

# make gpu-check [GPU_CHECK_ARGS="--device 1 ..."]: mlp-large when generated
# (make models), else digits.  Exit 77 (no CUDA, no device) is a skip: said,
# not an error; any mismatch fails.
gpu-check: $(BUILD)/tests/gpu_check
	@rc=0; ./$(BUILD)/tests/gpu_check $(GPU_CHECK_ARGS) || rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "gpu-check: skipped (see the line above)"; \
	elif [ $$rc -ne 0 ]; then echo "gpu-check: FAILED (exit $$rc)"; exit $$rc; fi

# GPU vs CPU through the gateway on mlp-large (bench/gpu.sh); without a
# device it writes why it skipped.  Also part `gpu` of bench/run.sh.
bench-gpu: deps
	@$(MAKE) --no-print-directory all models
	@mkdir -p bench/results
	bash bench/gpu.sh bench/results/gpu-latest.md; rc=$$?; cat bench/results/gpu-latest.md; exit $$rc

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# One list of Debian packages, installed when missing (apt-get update first).
DEB_PKGS := build-essential pkg-config libevent-dev libnghttp2-dev libmsgpack-dev \
            libjansson-dev libyaml-dev libdnnl-dev libssl-dev libcmocka-dev zlib1g-dev apache2-utils \
            python3-pytest python3-h2 python3-httpx python3-msgpack python3-numpy \
            python3-sklearn python3-matplotlib nghttp2-client nghttp2-server h2o curl valgrind \
            clang libclang-rt-14-dev libtsan2 libdpdk-dev dpdk dpdk-dev \
            libprotobuf-c-dev protobuf-c-compiler python3-grpcio python3-protobuf python3-grpc-tools \
            python3-pyflakes
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

# run, test, bench, bench-quick and bench-gpu install what is missing, then
# build in a second make: the pkg-config queries at the top of this file are
# read when make parses it, which on a fresh machine is before deps has
# installed pkg-config and the -dev packages (the first make would link
# without them).

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/infergw --config $(CONFIG)

unit: $(UNIT_BIN) $(BUILD)/floatcheck

# The same binary with ASan+UBSan, for the sanitizer suite of `make test`.
# The unit tests of the code that reads client bytes (parsers, codecs, the
# inline string helpers) under ASan+UBSan too: their blocks are sized
# exactly, so a read past one's end is a report there, not luck.
ASAN_UNIT := test_strutil test_jsonfast test_kserve test_mpcodec test_mpread test_grpccodec \
	test_hpack test_h2check test_h1parse test_call test_secret
asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 build-asan/infergw build-asan/infergw-agent \
		$(ASAN_UNIT:%=build-asan/tests/%) $(if $(HAVE_CUDA),build-asan/infergw-gpu.so)

# The same binary with ThreadSanitizer (gcc's libtsan2), for the
# concurrency tests of `make test` (suppressions: tests/tsan.supp), and the
# scheduler's contract test (tests/unit/test_scheduler.c) under it.
tsan:
	$(MAKE) BUILD=build-tsan TSAN=1 build-tsan/infergw build-tsan/infergw-agent \
		build-tsan/tests/test_scheduler build-tsan/tests/test_be_remote \
		$(if $(HAVE_CUDA),build-tsan/infergw-gpu.so)

# arm64 (a DPU's cores): cross-build into build-arm64/ and run the agent's
# unit tests under qemu-user (docs/dpu.md); installs the cross toolchain.
arm64:
	@bash tools/arm64.sh

# soak [SOAK_SECONDS=120] [INFERGW_BIN=build-asan/infergw]: mixed loads,
# hostile clients and reloads against one gateway (tools/soak.sh); not part
# of make test (minutes, by design).
soak: deps
	@$(MAKE) --no-print-directory all
	@bash tools/soak.sh $(or $(SOAK_SECONDS),120)

# models: the 100 MB synthetic mlp-large (1 s, deterministic) so that the
# INT8 tests on a large model run rather than skip.
test: deps
	@$(MAKE) --no-print-directory all unit asan tsan models
	@bash tests/run_all.sh

models: config/models/mlp-large/model.safetensors
config/models/mlp-large/model.safetensors: tools/gen_mlp.py
	$(PYTHON) tools/gen_mlp.py --out config/models/mlp-large

bench: deps
	@$(MAKE) --no-print-directory all models sim
	bash bench/run.sh

bench-quick: deps
	@$(MAKE) --no-print-directory all models sim
	BENCH_QUICK=1 bash bench/run.sh

sim:
	$(MAKE) -C bench/sim

sim-report: sim models
	bash bench/sim/report.sh

clean:
	rm -rf $(BUILD) build-asan build-tsan

help:
	@sed -n '1,/^$$/p' Makefile

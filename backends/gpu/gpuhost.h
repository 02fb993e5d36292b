/*
 * gpuhost.h - the GPU backend's host-side logic, in plain C (gpu_ prefix).
 *
 * Everything the GPU backend (gpu.c) decides without the device lives here
 * so it builds and is unit-tested on a machine without CUDA
 * (tests/unit/test_gpuhost.c): batch-size buckets, the per-slot staging
 * layout, the CUDA Graph cache (warm-up, capture, replay, per key), row
 * packing and unpacking, which CUDA errors are sticky, and what a
 * completion does to a batch and to the backend's state.
 *
 * No CUDA header is included: CUDA error codes are ints, the values of
 * cudaError_t copied below (gpu.c static_asserts that they match).
 */
#ifndef INFERGW_GPUHOST_H
#define INFERGW_GPUHOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* cudaError_t values (driver_types.h, CUDA 12/13) the backend names. */
enum {
	GPU_ERR_CUBLAS = -1,	/* not CUDA's: a cuBLAS call failed (not sticky by itself) */
	GPU_ERR_SUCCESS = 0,
	GPU_ERR_MEMORY_ALLOCATION = 2,
	GPU_ERR_INITIALIZATION = 3,
	GPU_ERR_CUDART_UNLOADING = 4,
	GPU_ERR_INSUFFICIENT_DRIVER = 35,
	GPU_ERR_DEVICES_UNAVAILABLE = 46,
	GPU_ERR_NO_DEVICE = 100,
	GPU_ERR_INVALID_DEVICE = 101,
	GPU_ERR_DEVICE_UNINITIALIZED = 201,
	GPU_ERR_ECC_UNCORRECTABLE = 214,
	GPU_ERR_NVLINK_UNCORRECTABLE = 220,
	GPU_ERR_NOT_READY = 600,
	GPU_ERR_ILLEGAL_ADDRESS = 700,
	GPU_ERR_LAUNCH_OUT_OF_RESOURCES = 701,
	GPU_ERR_LAUNCH_TIMEOUT = 702,
	GPU_ERR_CONTEXT_IS_DESTROYED = 709,
	GPU_ERR_ASSERT = 710,
	GPU_ERR_HARDWARE_STACK_ERROR = 714,
	GPU_ERR_ILLEGAL_INSTRUCTION = 715,
	GPU_ERR_MISALIGNED_ADDRESS = 716,
	GPU_ERR_INVALID_ADDRESS_SPACE = 717,
	GPU_ERR_INVALID_PC = 718,
	GPU_ERR_LAUNCH_FAILURE = 719,
	GPU_ERR_UNKNOWN = 999,
};

/*
 * gpu_err_sticky - true when CUDA error code leaves the device (context)
 * unusable: every later call fails too (illegal address, ECC, a lost or
 * missing device...).  The backend then goes down and fails over; any
 * other error fails one batch (500) and the backend stays up.
 */
bool gpu_err_sticky(int code);

/*
 * gpu_open_hint - what to do about CUDA error code when the backend finds
 * no usable device at open, for the log line that leaves it down: driver
 * and runtime are cudaDriverGetVersion's and cudaRuntimeGetVersion's
 * (1000 x major + 10 x minor; driver 0: no NVIDIA driver is installed),
 * visible is CUDA_VISIBLE_DEVICES (NULL when unset).  Writes one sentence
 * into buf (n > 0 bytes; "" when there is nothing to add) and returns buf.
 */
const char *gpu_open_hint(int code, int driver, int runtime, const char *visible, char *buf,
			  size_t n);

/* ---- buckets ---- */

#define GPU_MAX_BUCKETS 16
#define GPU_DEFAULT_MAX_BATCH 256

/*
 * gpu_buckets - the batch-size buckets for max rows: 1, 2, 4, ... below
 * max, then max (max < 1 counts as 1), into out[GPU_MAX_BUCKETS].
 * Returns how many.
 */
int gpu_buckets(int max, int *out);
/* gpu_bucket_of - the index of the smallest bucket holding rows (1 <= rows
 * <= the last bucket), or -1 when rows is out of range. */
int gpu_bucket_of(const int *buckets, int n, int rows);
/*
 * gpu_preferred - the batch sizes a GPU prefers within limit: multiples of
 * 8 doubling from 8 (8, 16, 32, ... 256), and limit itself when it is not
 * one of them, at most BE_MAX_PREFERRED ascending sizes, into out.
 * Returns how many (limit < 8: just limit).
 */
int gpu_preferred(int limit, int *out);

/* ---- staging ---- */

#define GPU_ALIGN 256	/* cudaMalloc's alignment; pinned offsets match it */

/* One slot's pinned staging for one model: rows x in_dim floats in, rows x
 * out_dim floats out, in one allocation. */
struct gpu_layout {
	int rows, in_dim, out_dim;
	size_t in_off, in_bytes;
	size_t out_off, out_bytes;
	size_t bytes;			/* the whole allocation */
};

/* gpu_align_up - n rounded up to a multiple of a (a power of two). */
size_t gpu_align_up(size_t n, size_t a);
/* gpu_layout_plan - fill *l for rows x in_dim in and rows x out_dim out,
 * each part GPU_ALIGN-aligned.  -EINVAL when a dimension is < 1 or the
 * sizes overflow. */
int gpu_layout_plan(struct gpu_layout *l, int rows, int in_dim, int out_dim);

/* ---- INT8 (cuBLASLt) ---- */

/*
 * cuBLASLt runs s8 x s8 -> s32 on the tensor cores (IMMA) in the regular
 * column-major order only as "TN" (A transposed, B not) with m and k
 * multiples of 4, leading dimensions multiples of 4 and 4-byte aligned
 * pointers (16 preferred); Hopper has no IMMA-specific orders.  The layer
 * y[n][out] = q(x)[n][in] . W[out][in]^T is exactly that with A = W (op
 * T), B = q(x) (op N), m = out, k = in.  Rather than refuse a layer whose
 * widths miss the multiples (digits' last layer is 10 wide), the backend
 * pads: the weights to m x k with zero rows and columns, the quantized
 * input rows to k with zeros, the s32 output rows to m; zeros add nothing
 * to an integer dot product, so the answer is the unpadded one.
 */
#define GPU_Q8_PAD_K 16		/* s8 rows of 16 bytes: the preferred alignment */
#define GPU_Q8_PAD_M 4		/* s32 rows of 16 bytes already */
/* k * 127 * 127 must fit the s32 accumulator: INT32_MAX / 16129 */
#define GPU_Q8_MAX_K 133144

/* One INT8 dense layer as cuBLASLt runs it. */
struct gpu_q8_plan {
	int out, in;		/* the layer's widths */
	int m, k;		/* padded to GPU_Q8_PAD_M / GPU_Q8_PAD_K */
	size_t w_bytes;		/* m x k s8 weights, row r = output channel r */
};

/*
 * gpu_q8_plan - plan an INT8 dense layer out x in (weights [out][in]).
 * 0, or -EINVAL with why (at most why_len bytes, NUL-terminated) saying
 * what cuBLASLt cannot run: a width < 1, k past GPU_Q8_MAX_K (the s32
 * sum could overflow), or sizes past what an int and size_t hold.
 */
int gpu_q8_plan(struct gpu_q8_plan *p, int out, int in, char *why, size_t why_len);
/*
 * gpu_q8_pack - w ([p->out][p->in] s8) into dst (p->w_bytes): row r is
 * channel r's weights then zeros up to p->k; rows out..m-1 all zeros.
 * Column-major, dst is cuBLASLt's A: k x m, ld k.
 */
void gpu_q8_pack(const struct gpu_q8_plan *p, const signed char *w, signed char *dst);

/* Per-slot device scratch of an INT8 model, for its widest layer. */
struct gpu_q8_scratch {
	size_t q_bytes;		/* rows x max k s8: the quantized input */
	size_t acc_bytes;	/* rows x max m s32: cuBLASLt's output */
	size_t scale_bytes;	/* rows floats: each row's input scale */
};

/*
 * gpu_q8_scratch - the scratch for n planned layers at rows rows.  0, or
 * -EINVAL when n < 1, rows < 1 or a size overflows.
 */
int gpu_q8_scratch(const struct gpu_q8_plan *plans, int n, int rows, struct gpu_q8_scratch *s);

/* ---- graphs ---- */

/* What a graph is captured for: one model on one slot at one bucket in
 * one math mode (the handles it bakes in differ in each). */
struct gpu_graph_key {
	const void *model;
	int slot, bucket, tf32;
};

enum gpu_graph_state { GPU_G_COLD, GPU_G_WARM, GPU_G_READY, GPU_G_FAILED };

/* What submit does for a key (gpu_graph_step). */
enum gpu_graph_do {
	GPU_G_RUN,		/* run the plain sequence (graphs off, cold, failed) */
	GPU_G_CAPTURE,		/* warm: capture it now, then launch the graph */
	GPU_G_REPLAY,		/* launch the captured graph */
};

struct gpu_graph_entry {
	struct gpu_graph_key key;
	enum gpu_graph_state state;
	void *exec;			/* cudaGraphExec_t once READY */
};

/* A fixed-size cache, one per (model, slot) in gpu.c: touched by one
 * batch at a time (the slot's), so it needs no lock. */
struct gpu_graph_cache {
	int n, cap;
	struct gpu_graph_entry *e;
};

/* gpu_graph_cache_init - room for cap keys.  0 or -ENOMEM. */
int gpu_graph_cache_init(struct gpu_graph_cache *c, int cap);
/* gpu_graph_cache_free - frees the table; call free_exec(exec) for each
 * READY entry first (gpu.c: cudaGraphExecDestroy).  NULL-safe fn. */
void gpu_graph_cache_free(struct gpu_graph_cache *c, void (*free_exec)(void *exec));
/* gpu_graph_find - the entry for k (added COLD when new), or NULL when
 * the cache is full. */
struct gpu_graph_entry *gpu_graph_find(struct gpu_graph_cache *c, const struct gpu_graph_key *k);
/*
 * gpu_graph_step - what to do for e now, advancing COLD -> WARM (the first
 * run is the warm-up: cuBLAS picks its kernels, lazy module loading
 * happens outside any capture).  enabled false (graphs: false) or e NULL:
 * always GPU_G_RUN.
 */
enum gpu_graph_do gpu_graph_step(struct gpu_graph_entry *e, bool enabled);
/* gpu_graph_captured - the capture of e ended: exec (non-NULL: READY) or
 * NULL (FAILED: never captured again, runs plain). */
void gpu_graph_captured(struct gpu_graph_entry *e, void *exec);

/* ---- packing ---- */

/*
 * gpu_live - live[i] = be_slice_live(&b->slices[i]), decided once per
 * batch.  Returns the live rows (the rows to run).
 */
int gpu_live(const struct batch *b, bool *live);
/*
 * gpu_pack - gather the live slices' input rows of b into dst (rows x
 * in_dim, densely, in slice order).  Returns the rows written.
 */
int gpu_pack(const struct batch *b, const bool *live, float *dst, int in_dim);
/*
 * gpu_unpack - scatter src (the packed output rows, out_dim wide) to the
 * live slices' outputs, in the order gpu_pack gathered them; rows past
 * the live ones (padding up to the bucket) are never read.  Returns the
 * rows read.
 */
int gpu_unpack(struct batch *b, const bool *live, const float *src, int out_dim);

/* ---- completion ---- */

/* A backend's health: down once a sticky error was seen, with why. */
struct gpu_health {
	atomic_bool down;
	atomic_flag logged;		/* the first trip logs; the rest do not */
	char reason[160];		/* written once, before down is set */
};

/* gpu_health_init - up, no reason. */
void gpu_health_init(struct gpu_health *h);
/*
 * gpu_health_trip - mark h down with reason (kept: the first one wins).
 * true for the first caller only (who logs and sets the backend's state).
 */
bool gpu_health_trip(struct gpu_health *h, const char *reason);

/* What a completion leads to (gpu_complete). */
enum gpu_verdict {
	GPU_V_OK,		/* live slices status 0: outputs to unpack */
	GPU_V_FAILED,		/* live slices 500, errmsg set; backend stays up */
	GPU_V_DOWN,		/* sticky: live slices BE_RETRY, backend goes down */
};

/*
 * gpu_complete - settle b after its run ended with CUDA code (0 = success;
 * what: the step that failed, e.g. "cublasSgemm", and detail the error's
 * text, both used in b->errmsg).  Live slices get status 0, 500, or
 * BE_RETRY (sticky: nothing was written, the scheduler places them
 * elsewhere); slices not live keep theirs.  Returns the verdict.
 */
enum gpu_verdict gpu_complete(struct batch *b, const bool *live, int code, const char *what,
			      const char *detail);
/*
 * gpu_settle - gpu_complete, then on GPU_V_DOWN trip h with b->errmsg and,
 * the first time, set be's state BE_DOWN and log it (once per backend).
 * The caller unpacks outputs on GPU_V_OK, then calls b->done.
 */
enum gpu_verdict gpu_settle(struct backend *be, struct gpu_health *h, struct batch *b,
			    const bool *live, int code, const char *what, const char *detail);

#endif

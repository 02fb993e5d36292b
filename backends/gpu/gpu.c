/*
 * gpu.c - the GPU backend (kind "gpu", be_gpu_): dense layers as cuBLAS
 * SGEMMs on CUDA streams, built only with CUDA (USE_CUDA).
 *
 * Credits are streams: slot s owns stream s, a cuBLAS handle bound to it
 * (with its own workspace, which graph capture needs), two timing events
 * and, per hosted model, pinned staging (input and output rows, one
 * cudaHostAlloc laid out by gpuhost) and two device activation buffers
 * the layers ping-pong between.  Weights and biases are uploaded once per
 * model and shared by every slot.
 *
 * submit gathers the live rows into the slot's pinned input and enqueues,
 * without waiting: H2D copy of the live rows, per dense layer an SGEMM
 * plus the fused bias + activation kernel, the softmax kernel, D2H copy of
 * the live rows, an event, and cudaLaunchHostFunc.  The host function may
 * not call CUDA (and done() may submit the next batch, which does), so it
 * only queues the slot for the backend's completion thread, which checks
 * the stream's status, scatters the live rows' outputs (padding rows never
 * leave staging) and calls b->done with no lock held.  Batches on
 * different streams overlap: one's copies run under another's GEMMs.
 *
 * CUDA Graphs: per (model, slot, bucket, math) the first batch of a
 * bucket runs plainly (warm-up: cuBLAS picks and loads its kernels), the
 * second captures the compute (GEMMs and kernels over the bucket's rows;
 * the copies stay outside with the live row count) and every later one
 * replays it.  graphs: false runs plainly over the exact rows.
 *
 * INT8 models (variant int8, model.h): weights stay s8 on the device
 * (padded for cuBLASLt, gpuhost gpu_q8_plan) with their F32 per-channel
 * scales; per dense layer a kernel quantizes the input rows (per-row
 * dynamic scales or the layer's static one, the CPU backend's and the
 * reference's semantics and rounding), cublasLtMatmul multiplies s8 x s8
 * into s32 (TN, tensor cores), and a kernel dequantizes with bias and
 * ReLU into the next layer's floats.  cuBLASLt's algorithm is chosen at
 * load per (layer, bucket), so an INT8 batch always runs over its
 * bucket's rows, and never in a CUDA Graph (not yet checked on a device:
 * kept out until gpu_check compares the two).  A layer cuBLASLt cannot
 * run is refused at load, naming it: the model then stays on other
 * backends.  Nothing of this path has run on a device yet (docs/gpu.md).
 *
 * Errors: every CUDA and cuBLAS call is checked.  A sticky error (gpuhost
 * gpu_err_sticky: illegal address, ECC, lost device...) takes the backend
 * down once, with the reason in stats (/admin/backends), fails the batch's
 * slices over (BE_RETRY), and later submits get -ENODEV; others fail the
 * batch (500) and the backend stays up.  A fault may keep a host function
 * from ever running, so the completion thread also polls streams whose
 * batch is overdue and settles them from cudaStreamQuery's error.
 */
#define _GNU_SOURCE
#include "backend.h"
#include "model/model.h"
#include "gpu/gpu.h"
#include "gpu/gpu_kernels.h"
#include "gpu/gpuhost.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* gpuhost.h copies cudaError_t's values so it needs no CUDA header. */
#define GPU_SAME(a, b) _Static_assert((int)(a) == (b), #a " changed: update gpuhost.h")
GPU_SAME(cudaSuccess, GPU_ERR_SUCCESS);
GPU_SAME(cudaErrorMemoryAllocation, GPU_ERR_MEMORY_ALLOCATION);
GPU_SAME(cudaErrorInitializationError, GPU_ERR_INITIALIZATION);
GPU_SAME(cudaErrorCudartUnloading, GPU_ERR_CUDART_UNLOADING);
GPU_SAME(cudaErrorInsufficientDriver, GPU_ERR_INSUFFICIENT_DRIVER);
GPU_SAME(cudaErrorDevicesUnavailable, GPU_ERR_DEVICES_UNAVAILABLE);
GPU_SAME(cudaErrorNoDevice, GPU_ERR_NO_DEVICE);
GPU_SAME(cudaErrorInvalidDevice, GPU_ERR_INVALID_DEVICE);
GPU_SAME(cudaErrorDeviceUninitialized, GPU_ERR_DEVICE_UNINITIALIZED);
GPU_SAME(cudaErrorECCUncorrectable, GPU_ERR_ECC_UNCORRECTABLE);
GPU_SAME(cudaErrorNvlinkUncorrectable, GPU_ERR_NVLINK_UNCORRECTABLE);
GPU_SAME(cudaErrorNotReady, GPU_ERR_NOT_READY);
GPU_SAME(cudaErrorIllegalAddress, GPU_ERR_ILLEGAL_ADDRESS);
GPU_SAME(cudaErrorLaunchOutOfResources, GPU_ERR_LAUNCH_OUT_OF_RESOURCES);
GPU_SAME(cudaErrorLaunchTimeout, GPU_ERR_LAUNCH_TIMEOUT);
GPU_SAME(cudaErrorContextIsDestroyed, GPU_ERR_CONTEXT_IS_DESTROYED);
GPU_SAME(cudaErrorAssert, GPU_ERR_ASSERT);
GPU_SAME(cudaErrorHardwareStackError, GPU_ERR_HARDWARE_STACK_ERROR);
GPU_SAME(cudaErrorIllegalInstruction, GPU_ERR_ILLEGAL_INSTRUCTION);
GPU_SAME(cudaErrorMisalignedAddress, GPU_ERR_MISALIGNED_ADDRESS);
GPU_SAME(cudaErrorInvalidAddressSpace, GPU_ERR_INVALID_ADDRESS_SPACE);
GPU_SAME(cudaErrorInvalidPc, GPU_ERR_INVALID_PC);
GPU_SAME(cudaErrorLaunchFailure, GPU_ERR_LAUNCH_FAILURE);
GPU_SAME(cudaErrorUnknown, GPU_ERR_UNKNOWN);

#define GPU_WORKSPACE_BYTES (4u << 20)	/* per stream; cuBLAS's default for sm_90 */
#define GPU_POLL_NS 100000000ull	/* the completion thread looks at overdue streams... */
#define GPU_OVERDUE_NS 1000000000ull	/* ...whose batch is older than this */
#define GPU_DELAY_US 200		/* the kind's default max queue delay */

/* One dense layer's weights and bias on the device. */
struct be_gpu_layer {
	float *w, *b;
	/* INT8 layers: s8 weights (plan.m x plan.k), per-channel scales, and
	 * cuBLASLt's descriptors: the op, A, and per bucket B, C/D and the
	 * algorithm (NULLs for FP32 layers) */
	signed char *qw;
	float *ws;
	struct gpu_q8_plan plan;
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t la;
	cublasLtMatrixLayout_t *lb, *lc;
	cublasLtMatmulAlgo_t *algo;
};

/* One model on one slot. */
struct be_gpu_smodel {
	void *host;			/* pinned staging (gpu_layout) */
	float *h_in, *h_out;
	float *d_act[2];		/* max_batch x max width each */
	signed char *d_q;		/* INT8: quantized input (gpu_q8_scratch) */
	int *d_acc;			/* INT8: cuBLASLt's s32 output */
	float *d_rs;			/* INT8: each row's input scale */
	struct gpu_graph_cache graphs;
};

struct be_gpu_model {
	const struct model *m;
	struct be_gpu_layer *layers;	/* per layer; softmax: NULLs */
	int n_buckets;
	int buckets[GPU_MAX_BUCKETS];
	int *src_buf;			/* per layer: which activation buffer it reads */
	int out_buf;
	struct gpu_layout lay;
	struct gpu_q8_scratch q8;	/* INT8: per-slot scratch sizes; zeros for FP32 */
	struct be_gpu_smodel *slots;
	struct be_gpu_model *next;
};

struct be_gpu;

/* One credit: a stream and what a batch on it needs. */
struct be_gpu_slot {
	struct be_gpu *g;
	int idx;
	cudaStream_t stream;
	cublasHandle_t blas;
	cublasLtHandle_t lt;		/* INT8 matmuls; shares blas's workspace (same stream) */
	void *workspace;
	cudaEvent_t ev0, ev1;
	bool *live;			/* max_batch entries: a batch has at most that many slices */
	/* the batch in flight (written by submit before armed is set) */
	struct batch *b;
	struct be_gpu_model *gm;
	int rows;
	uint64_t t_submit;
	int err;			/* a failure seen while enqueueing; 0 = none */
	char what[64];
	atomic_int armed;		/* 1: in flight; whoever swaps it to 0 completes b */
	struct be_gpu_slot *cq_next;
};

struct be_gpu {
	struct backend *be;
	int device, n_slots, max_batch;
	bool tf32, graphs;
	char dev_name[256];
	struct be_gpu_slot *slots;
	pthread_mutex_t models_mu;	/* the model list, load and unload */
	cublasLtHandle_t lt;		/* cuBLASLt's heuristics at load (under models_mu) */
	struct be_gpu_model *models;
	pthread_mutex_t cq_mu;		/* the completion queue */
	pthread_cond_t cq_cv;
	struct be_gpu_slot *cq_head, *cq_tail;
	bool cq_stop, cq_started;
	pthread_t cq_thread;
	atomic_int inject;
	struct gpu_health health;
	atomic_uint_fast64_t batches, rows, busy_ns;
};

static const char *be_gpu_name(const struct be_gpu *g)
{
	return g->be->conf.name ? g->be->conf.name : "gpu";
}

/* "gpu: CUDA: <text> (<name>)" for open's *err. */
static char *be_gpu_cuda_msg(const char *what, cudaError_t e)
{
	return be_strdupf("gpu: CUDA: %s%s%s (%s)", what ? what : "", what ? ": " : "",
			  cudaGetErrorString(e), cudaGetErrorName(e));
}

/* be_gpu_cuda_msg for cudaGetDeviceCount's failure at open, with what to
 * do about it (gpu_open_hint): "gpu: CUDA: <text> (<name>): <hint>". */
static char *be_gpu_no_device_msg(cudaError_t e)
{
	int driver = 0, runtime = 0;
	char hint[256];

	(void)cudaDriverGetVersion(&driver);	/* 0 when no driver is installed */
	(void)cudaRuntimeGetVersion(&runtime);
	gpu_open_hint((int)e, driver, runtime, getenv("CUDA_VISIBLE_DEVICES"), hint, sizeof(hint));
	return be_strdupf("gpu: CUDA: %s (%s)%s%s", cudaGetErrorString(e), cudaGetErrorName(e),
			  hint[0] ? ": " : "", hint);
}

/* ---- models ---- */

static void be_gpu_exec_free(void *exec)
{
	cudaGraphExecDestroy((cudaGraphExec_t)exec);
}

static void be_gpu_model_free(struct be_gpu *g, struct be_gpu_model *gm)
{
	if (!gm)
		return;
	for (int s = 0; gm->slots && s < g->n_slots; s++) {
		struct be_gpu_smodel *sm = &gm->slots[s];

		gpu_graph_cache_free(&sm->graphs, be_gpu_exec_free);
		if (sm->host)
			cudaFreeHost(sm->host);
		cudaFree(sm->d_act[0]);
		cudaFree(sm->d_act[1]);
		cudaFree(sm->d_q);
		cudaFree(sm->d_acc);
		cudaFree(sm->d_rs);
	}
	for (int i = 0; gm->layers && i < gm->m->n_layers; i++) {
		struct be_gpu_layer *gl = &gm->layers[i];

		cudaFree(gl->w);
		cudaFree(gl->b);
		cudaFree(gl->qw);
		cudaFree(gl->ws);
		for (int k = 0; k < gm->n_buckets; k++) {
			if (gl->lb && gl->lb[k])
				cublasLtMatrixLayoutDestroy(gl->lb[k]);
			if (gl->lc && gl->lc[k])
				cublasLtMatrixLayoutDestroy(gl->lc[k]);
		}
		if (gl->la)
			cublasLtMatrixLayoutDestroy(gl->la);
		if (gl->desc)
			cublasLtMatmulDescDestroy(gl->desc);
		free(gl->lb);
		free(gl->lc);
		free(gl->algo);
	}
	free(gm->slots);
	free(gm->layers);
	free(gm->src_buf);
	free(gm);
}

static struct be_gpu_model *be_gpu_find(struct be_gpu *g, const struct model *m)
{
	struct be_gpu_model *gm;

	pthread_mutex_lock(&g->models_mu);
	for (gm = g->models; gm && gm->m != m; gm = gm->next)
		;
	pthread_mutex_unlock(&g->models_mu);
	return gm;
}

/* Upload n floats to a new device buffer *d. */
static cudaError_t be_gpu_upload(float **d, const float *h, size_t n)
{
	cudaError_t e = cudaMalloc((void **)d, sizeof(float) * n);

	if (e == cudaSuccess)
		e = cudaMemcpy(*d, h, sizeof(float) * n, cudaMemcpyHostToDevice);
	return e;
}

/* The device weights of every dense layer of gm. */
static cudaError_t be_gpu_load_weights(struct be_gpu_model *gm, const char **what)
{
	const struct model *m = gm->m;
	cudaError_t e = cudaSuccess;

	for (int i = 0; i < m->n_layers && e == cudaSuccess; i++) {
		const struct layer *l = &m->layers[i];

		if (l->kind != LAYER_DENSE)
			continue;
		*what = "weights upload";
		if (!l->qweight)	/* INT8: be_gpu_load_q8 */
			e = be_gpu_upload(&gm->layers[i].w, l->weight,
					  (size_t)l->out * (size_t)l->in);
		if (e == cudaSuccess && l->bias)
			e = be_gpu_upload(&gm->layers[i].b, l->bias, (size_t)l->out);
	}
	return e;
}

/* "gpu: model M: layers[I] (dense OUTxIN): INT8: <what><detail>; ..." for
 * load's *err: the layer a refusal is about, and what that leaves. */
static char *be_gpu_q8_msg(const struct model *m, int i, const char *what, const char *detail)
{
	return be_strdupf("gpu: model %s: layers[%d] (dense %dx%d): INT8: %s%s; not loaded here "
			  "(this backend can serve the FP32 variant)", m->name, i,
			  m->layers[i].out, m->layers[i].in, what, detail);
}

/* cuBLASLt status -> -errno for load. */
static int be_gpu_lt_errno(cublasStatus_t st)
{
	return st == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO;
}

/*
 * One INT8 layer's device side: padded s8 weights and scales uploaded, the
 * TN matmul's descriptors, and per bucket an algorithm from cuBLASLt's
 * heuristic (no algorithm: refused, naming the layer).  0 or -errno with
 * *err.  Called under models_mu (g->lt).
 */
static int be_gpu_load_q8_layer(struct be_gpu *g, struct be_gpu_model *gm, int i,
				cublasLtMatmulPreference_t pref, char **err)
{
	const struct model *m = gm->m;
	const struct layer *l = &m->layers[i];
	struct be_gpu_layer *gl = &gm->layers[i];
	cublasOperation_t opa = CUBLAS_OP_T, opb = CUBLAS_OP_N;
	cublasStatus_t st;
	signed char *packed;
	char why[160];
	cudaError_t e;

	if (gpu_q8_plan(&gl->plan, l->out, l->in, why, sizeof(why))) {
		*err = be_gpu_q8_msg(m, i, "", why);
		return -EINVAL;
	}
	packed = malloc(gl->plan.w_bytes);
	if (!packed) {
		*err = be_strdupf("gpu: model %s: out of memory", m->name);
		return -ENOMEM;
	}
	gpu_q8_pack(&gl->plan, (const signed char *)l->qweight, packed);
	e = cudaMalloc((void **)&gl->qw, gl->plan.w_bytes);
	if (e == cudaSuccess)
		e = cudaMemcpy(gl->qw, packed, gl->plan.w_bytes, cudaMemcpyHostToDevice);
	free(packed);
	if (e == cudaSuccess)
		e = be_gpu_upload(&gl->ws, l->wscale, (size_t)l->out);
	if (e != cudaSuccess) {
		*err = be_strdupf("gpu: model %s: CUDA: INT8 weights upload: %s (%s)", m->name,
				  cudaGetErrorString(e), cudaGetErrorName(e));
		return e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
	}
	gl->lb = calloc((size_t)gm->n_buckets, sizeof(*gl->lb));
	gl->lc = calloc((size_t)gm->n_buckets, sizeof(*gl->lc));
	gl->algo = calloc((size_t)gm->n_buckets, sizeof(*gl->algo));
	if (!gl->lb || !gl->lc || !gl->algo) {
		*err = be_strdupf("gpu: model %s: out of memory", m->name);
		return -ENOMEM;
	}
	/* s8 x s8 -> s32, alpha/beta int32 (host pointer mode, the default);
	 * TN: A = weights k x m (ld k) transposed, B = rows k x n (ld k) */
	st = cublasLtMatmulDescCreate(&gl->desc, CUBLAS_COMPUTE_32I, CUDA_R_32I);
	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatmulDescSetAttribute(gl->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa,
						    sizeof(opa));
	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatmulDescSetAttribute(gl->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb,
						    sizeof(opb));
	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatrixLayoutCreate(&gl->la, CUDA_R_8I, (uint64_t)gl->plan.k,
						(uint64_t)gl->plan.m, gl->plan.k);
	if (st != CUBLAS_STATUS_SUCCESS) {
		*err = be_gpu_q8_msg(m, i, "cuBLASLt descriptor: ", cublasGetStatusString(st));
		return be_gpu_lt_errno(st);
	}
	for (int b = 0; b < gm->n_buckets; b++) {
		cublasLtMatmulHeuristicResult_t res;
		int found = 0;

		memset(&res, 0, sizeof(res));
		st = cublasLtMatrixLayoutCreate(&gl->lb[b], CUDA_R_8I, (uint64_t)gl->plan.k,
						(uint64_t)gm->buckets[b], gl->plan.k);
		if (st == CUBLAS_STATUS_SUCCESS)
			st = cublasLtMatrixLayoutCreate(&gl->lc[b], CUDA_R_32I, (uint64_t)gl->plan.m,
							(uint64_t)gm->buckets[b], gl->plan.m);
		if (st != CUBLAS_STATUS_SUCCESS) {
			*err = be_gpu_q8_msg(m, i, "cuBLASLt layout: ", cublasGetStatusString(st));
			return be_gpu_lt_errno(st);
		}
		st = cublasLtMatmulAlgoGetHeuristic(g->lt, gl->desc, gl->la, gl->lb[b], gl->lc[b],
						    gl->lc[b], pref, 1, &res, &found);
		if (st != CUBLAS_STATUS_SUCCESS || found < 1 || res.state != CUBLAS_STATUS_SUCCESS) {
			/* with the status: NOT_SUPPORTED, ARCH_MISMATCH... */
			snprintf(why, sizeof(why), "%dx%d (padded) at %d rows on this device (%s)",
				 gl->plan.m, gl->plan.k, gm->buckets[b],
				 cublasGetStatusString(st != CUBLAS_STATUS_SUCCESS ? st : res.state));
			*err = be_gpu_q8_msg(m, i, "cuBLASLt has no s8 x s8 -> s32 algorithm for ",
					     why);
			return -EINVAL;
		}
		gl->algo[b] = res.algo;
	}
	return 0;
}

/* Every INT8 layer of gm (be_gpu_load_q8_layer), then the per-slot
 * scratch sizes.  0 or -errno with *err. */
static int be_gpu_load_q8(struct be_gpu *g, struct be_gpu_model *gm, char **err)
{
	const struct model *m = gm->m;
	cublasLtMatmulPreference_t pref = NULL;
	uint64_t ws = GPU_WORKSPACE_BYTES;
	struct gpu_q8_plan *plans;
	cublasStatus_t st;
	int n = 0, rc = 0;

	plans = calloc((size_t)m->n_layers, sizeof(*plans));
	if (!plans) {
		*err = be_strdupf("gpu: model %s: out of memory", m->name);
		return -ENOMEM;
	}
	st = cublasLtMatmulPreferenceCreate(&pref);
	if (st == CUBLAS_STATUS_SUCCESS)	/* the slot's workspace, shared with cuBLAS */
		st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
							  &ws, sizeof(ws));
	if (st != CUBLAS_STATUS_SUCCESS) {
		*err = be_strdupf("gpu: model %s: cuBLASLt preference: %s", m->name,
				  cublasGetStatusString(st));
		rc = be_gpu_lt_errno(st);
	}
	for (int i = 0; i < m->n_layers && !rc; i++) {
		if (m->layers[i].kind != LAYER_DENSE)
			continue;
		if (!m->layers[i].qweight) {	/* model.c makes every dense layer of int8 s8 */
			*err = be_gpu_q8_msg(m, i, "an FP32 layer in an INT8 model", "");
			rc = -EINVAL;
			break;
		}
		rc = be_gpu_load_q8_layer(g, gm, i, pref, err);
		if (!rc)
			plans[n++] = gm->layers[i].plan;
	}
	if (!rc && gpu_q8_scratch(plans, n, g->max_batch, &gm->q8)) {
		*err = be_strdupf("gpu: model %s: INT8 scratch for %d rows: too large", m->name,
				  g->max_batch);
		rc = -EINVAL;
	}
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	free(plans);
	return rc;
}

/* Slot s's staging, activations and graph cache for gm. */
static cudaError_t be_gpu_load_slot(struct be_gpu *g, struct be_gpu_model *gm,
				    struct be_gpu_smodel *sm, const char **what)
{
	const struct model *m = gm->m;
	int width = m->max_width;
	size_t act;
	cudaError_t e;

	width = m->in_dim > width ? m->in_dim : width;
	width = m->out_dim > width ? m->out_dim : width;
	act = sizeof(float) * (size_t)g->max_batch * (size_t)width;
	*what = "cudaHostAlloc (staging)";
	e = cudaHostAlloc(&sm->host, gm->lay.bytes, cudaHostAllocPortable);
	if (e != cudaSuccess)
		return e;
	sm->h_in = (float *)((char *)sm->host + gm->lay.in_off);
	sm->h_out = (float *)((char *)sm->host + gm->lay.out_off);
	*what = "cudaMalloc (activations)";
	for (int p = 0; p < 2 && e == cudaSuccess; p++) {
		e = cudaMalloc((void **)&sm->d_act[p], act);
		/* padding rows past the live ones start (and stay) finite */
		if (e == cudaSuccess)
			e = cudaMemset(sm->d_act[p], 0, act);
	}
	if (e == cudaSuccess && gm->q8.q_bytes) {
		*what = "cudaMalloc (INT8 scratch)";
		e = cudaMalloc((void **)&sm->d_q, gm->q8.q_bytes);
		if (e == cudaSuccess)
			e = cudaMalloc((void **)&sm->d_acc, gm->q8.acc_bytes);
		if (e == cudaSuccess)
			e = cudaMalloc((void **)&sm->d_rs, gm->q8.scale_bytes);
		if (e == cudaSuccess)
			e = cudaMemset(sm->d_q, 0, gm->q8.q_bytes);
	}
	if (e == cudaSuccess && gpu_graph_cache_init(&sm->graphs, gm->n_buckets * 2))
		e = cudaErrorMemoryAllocation;
	return e;
}

/*
 * be_gpu_load_model - see backend.h.  Uploads m's weights once, and for
 * every slot allocates staging and activations for g->max_batch rows.
 * Loading a loaded model again is a no-op.  -ENODEV when the backend is
 * down, -ENOMEM / -EIO with *err on a CUDA failure.
 */
static int be_gpu_load_model(struct backend *be, const struct model *m, char **err)
{
	struct be_gpu *g = be->priv;
	struct be_gpu_model *gm;
	const char *what = "cudaSetDevice";
	cudaError_t e;
	int p = 0;

	if (!g || atomic_load(&g->health.down)) {
		*err = be_strdupf("gpu: backend not open or down");
		return -ENODEV;
	}
	if (!m || m->n_layers < 1 || m->in_dim < 1 || m->out_dim < 1) {
		*err = be_strdupf("gpu: model %s: nothing to execute", m ? m->name : "(none)");
		return -EINVAL;
	}
	if (m->variant != VARIANT_FP32 && m->variant != VARIANT_INT8) {
		*err = be_strdupf("gpu: model %s: variant %s not supported", m->name,
				  model_variant_name(m->variant));
		return -EINVAL;
	}
	pthread_mutex_lock(&g->models_mu);
	for (gm = g->models; gm && gm->m != m; gm = gm->next)
		;
	if (gm) {
		pthread_mutex_unlock(&g->models_mu);
		return 0;
	}
	gm = calloc(1, sizeof(*gm));
	if (!gm || !(gm->layers = calloc((size_t)m->n_layers, sizeof(*gm->layers))) ||
	    !(gm->src_buf = calloc((size_t)m->n_layers, sizeof(*gm->src_buf))) ||
	    !(gm->slots = calloc((size_t)g->n_slots, sizeof(*gm->slots))) ||
	    gpu_layout_plan(&gm->lay, g->max_batch, m->in_dim, m->out_dim)) {
		pthread_mutex_unlock(&g->models_mu);
		be_gpu_model_free(g, gm);
		*err = be_strdupf("gpu: model %s: out of memory", m->name);
		return -ENOMEM;
	}
	gm->m = m;
	gm->n_buckets = gpu_buckets(g->max_batch, gm->buckets);
	for (int i = 0; i < m->n_layers; i++) {
		gm->src_buf[i] = p;
		if (m->layers[i].kind == LAYER_DENSE)
			p = 1 - p;
	}
	gm->out_buf = p;
	e = cudaSetDevice(g->device);
	if (e == cudaSuccess)
		e = be_gpu_load_weights(gm, &what);
	if (e == cudaSuccess && m->variant == VARIANT_INT8) {
		int rc = be_gpu_load_q8(g, gm, err);

		if (rc) {	/* *err names the layer; the caller logs it */
			pthread_mutex_unlock(&g->models_mu);
			be_gpu_model_free(g, gm);
			return rc;
		}
	}
	for (int s = 0; s < g->n_slots && e == cudaSuccess; s++)
		e = be_gpu_load_slot(g, gm, &gm->slots[s], &what);
	if (e != cudaSuccess) {
		pthread_mutex_unlock(&g->models_mu);
		be_gpu_model_free(g, gm);
		*err = be_strdupf("gpu: model %s: CUDA: %s: %s (%s)", m->name, what,
				  cudaGetErrorString(e), cudaGetErrorName(e));
		return e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
	}
	gm->next = g->models;
	g->models = gm;
	pthread_mutex_unlock(&g->models_mu);
	be_log(BE_LOG_INFO, "backend=%s model=%s variant=%s buckets=%d max_batch=%d "
	       "staging_bytes=%zu msg=\"weights on the device%s\"", be_gpu_name(g), m->name,
	       model_variant_name(m->variant), gm->n_buckets, g->max_batch, gm->lay.bytes,
	       m->variant == VARIANT_INT8 ? " (INT8 through cuBLASLt, no CUDA Graphs)" : "");
	return 0;
}

/* be_gpu_unload_model - see backend.h: no batch of m is in flight, so its
 * device memory, staging and graphs go now. */
static void be_gpu_unload_model(struct backend *be, const struct model *m)
{
	struct be_gpu *g = be->priv;
	struct be_gpu_model **pp, *gm = NULL;

	if (!g)
		return;
	pthread_mutex_lock(&g->models_mu);
	for (pp = &g->models; *pp; pp = &(*pp)->next)
		if ((*pp)->m == m) {
			gm = *pp;
			*pp = gm->next;
			break;
		}
	pthread_mutex_unlock(&g->models_mu);
	if (gm) {
		cudaSetDevice(g->device);
		be_gpu_model_free(g, gm);
	}
}

/* ---- execution ---- */

/* INT8 layer k over bucket bi's rows (n): quantize, s8 matmul, dequantize
 * + bias + ReLU, src -> dst.  As be_gpu_forward. */
static int be_gpu_forward_q8(struct be_gpu_slot *s, struct be_gpu_model *gm,
			     struct be_gpu_smodel *sm, int k, int n, int bi, const float *src,
			     float *dst, const char **what)
{
	const struct layer *l = &gm->m->layers[k];
	const struct be_gpu_layer *gl = &gm->layers[k];
	const int32_t one = 1, zero = 0;
	cublasStatus_t st;
	int e;

	*what = "INT8 quantize kernel";
	e = gpu_q8_quantize_rows(src, n, l->in, gl->plan.k, l->in_scale, sm->d_q, sm->d_rs,
				 s->stream);
	if (e)
		return e;
	/* D (m x n, ld m) = W^T' . Q: row r of the output is d_acc + r * m */
	*what = "cublasLtMatmul (INT8)";
	st = cublasLtMatmul(s->lt, gl->desc, &one, gl->qw, gl->la, sm->d_q, gl->lb[bi], &zero,
			    sm->d_acc, gl->lc[bi], sm->d_acc, gl->lc[bi], &gl->algo[bi],
			    s->workspace, GPU_WORKSPACE_BYTES, s->stream);
	if (st != CUBLAS_STATUS_SUCCESS) {
		e = (int)cudaGetLastError();
		return e ? e : GPU_ERR_CUBLAS;
	}
	*what = "INT8 dequantize kernel";
	return gpu_q8_dequant_rows(sm->d_acc, n, gl->plan.m, l->out, sm->d_rs, gl->ws, gl->b,
				   l->act == ACT_RELU, dst, s->stream);
}

/* The layer chain over n rows on slot s (captured or not); bi is n's
 * bucket (INT8 layers: n is the bucket's rows).  cudaSuccess, or the
 * error with *what (GPU_ERR_CUBLAS for cuBLAS's). */
static int be_gpu_forward(struct be_gpu_slot *s, struct be_gpu_model *gm,
			  struct be_gpu_smodel *sm, int n, int bi, const char **what)
{
	const struct model *m = gm->m;
	const float one = 1.0f, zero = 0.0f;

	for (int k = 0; k < m->n_layers; k++) {
		const struct layer *l = &m->layers[k];
		float *src = sm->d_act[gm->src_buf[k]], *dst = sm->d_act[1 - gm->src_buf[k]];
		cublasStatus_t st;
		int e;

		if (l->kind == LAYER_SOFTMAX) {
			*what = "softmax kernel";
			e = gpu_softmax(src, n, l->in, s->stream);
			if (e)
				return e;
			continue;
		}
		if (gm->layers[k].qw) {
			e = be_gpu_forward_q8(s, gm, sm, k, n, bi, src, dst, what);
			if (e)
				return e;
			continue;
		}
		/*
		 * Row-major Y[n][out] = X[n][in] . W^T with W [out][in]: in
		 * cuBLAS's column-major terms Y^T (out x n) = W (out x in) .
		 * X^T (in x n), where W's buffer read column-major is W^T
		 * (in x out, ld in): op T on it gives W.
		 */
		*what = "cublasSgemm";
		st = cublasSgemm(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, l->out, n, l->in, &one,
				 gm->layers[k].w, l->in, src, l->in, &zero, dst, l->out);
		if (st != CUBLAS_STATUS_SUCCESS) {
			e = (int)cudaGetLastError();
			return e ? e : GPU_ERR_CUBLAS;
		}
		if (!gm->layers[k].b && l->act != ACT_RELU)
			continue;
		*what = "bias/activation kernel";
		e = gpu_bias_act(dst, gm->layers[k].b, n, l->out, l->act == ACT_RELU, s->stream);
		if (e)
			return e;
	}
	return 0;
}

/* Capture the chain over n rows into a graph; NULL when capture fails (the
 * bucket then runs plainly from now on). */
static cudaGraphExec_t be_gpu_capture(struct be_gpu_slot *s, struct be_gpu_model *gm,
				      struct be_gpu_smodel *sm, int n, int bi)
{
	const char *what = NULL;
	cudaGraph_t graph = NULL;
	cudaGraphExec_t exec = NULL;
	cudaError_t e;
	int rc;

	/* thread-local: other threads' CUDA calls (other streams, loads)
	 * neither join nor break this capture */
	e = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal);
	if (e != cudaSuccess)
		return NULL;
	rc = be_gpu_forward(s, gm, sm, n, bi, &what);
	e = cudaStreamEndCapture(s->stream, &graph);
	if (rc == 0 && e == cudaSuccess && graph)
		e = cudaGraphInstantiate(&exec, graph, 0);
	if (graph)
		cudaGraphDestroy(graph);
	if (rc || e != cudaSuccess) {
		(void)cudaGetLastError();	/* a failed capture is not the batch's error */
		be_log(BE_LOG_WARN, "backend=%s model=%s rows=%d msg=\"graph capture failed (%s); "
		       "this bucket runs without a graph\"", be_gpu_name(s->g), gm->m->name, n,
		       rc ? what : cudaGetErrorString(e));
		if (exec)
			cudaGraphExecDestroy(exec);
		return NULL;
	}
	return exec;
}

static void be_gpu_cq_push(struct be_gpu *g, struct be_gpu_slot *s)
{
	pthread_mutex_lock(&g->cq_mu);
	s->cq_next = NULL;
	if (g->cq_tail)
		g->cq_tail->cq_next = s;
	else
		g->cq_head = s;
	g->cq_tail = s;
	pthread_cond_signal(&g->cq_cv);
	pthread_mutex_unlock(&g->cq_mu);
}

/* Queue s's completion unless someone else (host function, poll) did. */
static void be_gpu_claim(struct be_gpu *g, struct be_gpu_slot *s)
{
	if (atomic_exchange_explicit(&s->armed, 0, memory_order_acq_rel))
		be_gpu_cq_push(g, s);
}

/* The stream reached the end of s's batch: no CUDA here (CUDA forbids it
 * in a host function), only the hand-off to the completion thread. */
static void CUDART_CB be_gpu_host_fn(void *arg)
{
	struct be_gpu_slot *s = arg;

	be_gpu_claim(s->g, s);
}

/* Enqueue s's batch (rows packed in staging) on its stream.  0, or the
 * error code with s->what set. */
static int be_gpu_enqueue(struct be_gpu *g, struct be_gpu_slot *s)
{
	struct be_gpu_model *gm = s->gm;
	struct be_gpu_smodel *sm = &gm->slots[s->idx];
	const struct model *m = gm->m;
	int bi = gpu_bucket_of(gm->buckets, gm->n_buckets, s->rows), rc;
	struct gpu_graph_key key = { m, s->idx, bi, g->tf32 };
	struct gpu_graph_entry *ge;
	bool q8 = m->variant == VARIANT_INT8;
	const char *what = "cudaSetDevice";
	cudaError_t e;

#define GPU_TRY(call, name)                    \
	do {                                   \
		what = (name);                 \
		if ((e = (call)) != cudaSuccess) \
			goto fail;             \
	} while (0)
	GPU_TRY(cudaSetDevice(g->device), "cudaSetDevice");
	GPU_TRY(cudaEventRecord(s->ev0, s->stream), "cudaEventRecord");
	GPU_TRY(cudaMemcpyAsync(sm->d_act[0], sm->h_in,
				sizeof(float) * (size_t)s->rows * (size_t)m->in_dim,
				cudaMemcpyHostToDevice, s->stream), "cudaMemcpyAsync (in)");
	/* INT8: no graphs (not yet compared on a device), the bucket's rows
	 * (its cuBLASLt algorithm was chosen for them at load) */
	ge = q8 ? NULL : gpu_graph_find(&sm->graphs, &key);
	switch (gpu_graph_step(ge, g->graphs && !q8)) {
	case GPU_G_CAPTURE:
		gpu_graph_captured(ge, be_gpu_capture(s, gm, sm, gm->buckets[bi], bi));
		if (ge->state == GPU_G_READY)
			GPU_TRY(cudaGraphLaunch((cudaGraphExec_t)ge->exec, s->stream),
				"cudaGraphLaunch");
		else if ((rc = be_gpu_forward(s, gm, sm, gm->buckets[bi], bi, &what)))
			goto fail_rc;
		break;
	case GPU_G_REPLAY:
		GPU_TRY(cudaGraphLaunch((cudaGraphExec_t)ge->exec, s->stream), "cudaGraphLaunch");
		break;
	default:
		/* graphs on: the bucket's shape, the one captured next time */
		rc = be_gpu_forward(s, gm, sm, g->graphs || q8 ? gm->buckets[bi] : s->rows, bi,
				    &what);
		if (rc)
			goto fail_rc;
		break;
	}
	GPU_TRY(cudaMemcpyAsync(sm->h_out, sm->d_act[gm->out_buf],
				sizeof(float) * (size_t)s->rows * (size_t)m->out_dim,
				cudaMemcpyDeviceToHost, s->stream), "cudaMemcpyAsync (out)");
	GPU_TRY(cudaEventRecord(s->ev1, s->stream), "cudaEventRecord");
	GPU_TRY(cudaLaunchHostFunc(s->stream, be_gpu_host_fn, s), "cudaLaunchHostFunc");
#undef GPU_TRY
	return 0;
fail:
	rc = (int)e;
fail_rc:
	snprintf(s->what, sizeof(s->what), "%s", what);
	return rc;
}

/*
 * be_gpu_submit - see backend.h.  Packs b's live rows into the slot's
 * pinned staging and enqueues it; done comes from the completion thread.
 * -ENODEV (down), -ENOENT (model not loaded here) or -EINVAL (bad batch,
 * slot out of range, more rows than the backend's max batch) leave b
 * untouched and do not call done.
 */
static int be_gpu_submit(struct backend *be, struct batch *b)
{
	struct be_gpu *g = be->priv;
	struct be_gpu_model *gm;
	struct be_gpu_slot *s;
	int rows = 0, rc;

	if (!g || atomic_load_explicit(&g->health.down, memory_order_acquire) ||
	    be_state_get(be) == BE_DOWN)
		return -ENODEV;
	if (b->slot < 0 || b->slot >= g->n_slots || b->n_slices < 0 ||
	    b->n_slices > g->max_batch)
		return -EINVAL;
	if (!(gm = be_gpu_find(g, b->model)))
		return -ENOENT;
	for (int i = 0; i < b->n_slices; i++) {
		const struct infer_slice *sl = &b->slices[i];

		if (sl->rows < 1 || sl->row0 < 0 || !sl->input || !sl->output)
			return -EINVAL;
		rows += sl->rows;
	}
	if (rows > g->max_batch)
		return -EINVAL;
	s = &g->slots[b->slot];
	s->b = b;
	s->gm = gm;
	s->err = 0;
	s->what[0] = '\0';
	s->t_submit = be_now_ns();
	b->exec_start_ns = s->t_submit;
	/* which slices run is decided once, here (cancelled ones never do) */
	s->rows = gpu_live(b, s->live);
	gpu_pack(b, s->live, gm->slots[s->idx].h_in, gm->m->in_dim);
	atomic_store_explicit(&s->armed, 1, memory_order_release);
	if (s->rows == 0) {
		be_gpu_claim(g, s);	/* nothing to run: done from the thread */
		return 0;
	}
	rc = be_gpu_enqueue(g, s);
	if (rc) {
		s->err = rc;
		be_gpu_claim(g, s);
	}
	return 0;
}

/* Settle s's batch and hand it back (the completion thread). */
static void be_gpu_finish(struct be_gpu *g, struct be_gpu_slot *s)
{
	struct batch *b = s->b;
	struct be_gpu_model *gm = s->gm;
	int code = s->err, inj;
	const char *what = s->what[0] ? s->what : "batch";
	uint64_t gpu_ns = 0, now;
	float ms = 0;

	if (code) {
		/* a failed enqueue may have left work on the stream that still
		 * reads or writes this slot's staging: let it drain first */
		cudaStreamSynchronize(s->stream);
		(void)cudaGetLastError();
	} else if (s->rows > 0) {
		/* ev1 precedes the host function: complete, unless the
		 * context died (then every call returns the sticky error) */
		code = (int)cudaEventQuery(s->ev1);
		what = "stream";
		if (code == cudaSuccess && cudaEventElapsedTime(&ms, s->ev0, s->ev1) == cudaSuccess)
			gpu_ns = (uint64_t)((double)ms * 1e6);
	}
	inj = atomic_exchange(&g->inject, 0);
	if (inj && !code) {
		code = inj;
		what = "injected";
	}
	if (gpu_settle(g->be, &g->health, b, s->live, code, what,
		       code == GPU_ERR_CUBLAS ? "cuBLAS call failed" :
		       code ? cudaGetErrorString((cudaError_t)code) : NULL) == GPU_V_OK &&
	    s->rows > 0)
		gpu_unpack(b, s->live, gm->slots[s->idx].h_out, gm->m->out_dim);
	now = be_now_ns();
	b->exec_end_ns = now;
	/* the device's own time when measured: not the wait behind other streams */
	if (gpu_ns && gpu_ns < now - b->exec_start_ns)
		b->exec_start_ns = now - gpu_ns;
	atomic_fetch_add_explicit(&g->batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&g->rows, (uint64_t)s->rows, memory_order_relaxed);
	atomic_fetch_add_explicit(&g->busy_ns, b->exec_end_ns - b->exec_start_ns,
				  memory_order_relaxed);
	s->b = NULL;
	b->done(b);	/* may submit the next batch on this slot: not ours after */
}

/* A faulted context may never run a host function: settle overdue batches
 * whose stream reports a sticky error. */
static void be_gpu_poll(struct be_gpu *g)
{
	uint64_t now = be_now_ns();

	for (int i = 0; i < g->n_slots; i++) {
		struct be_gpu_slot *s = &g->slots[i];
		cudaError_t e;

		if (!atomic_load_explicit(&s->armed, memory_order_acquire) ||
		    now - s->t_submit < GPU_OVERDUE_NS)
			continue;
		e = cudaStreamQuery(s->stream);
		if (e == cudaSuccess || e == cudaErrorNotReady || !gpu_err_sticky((int)e))
			continue;
		if (atomic_exchange_explicit(&s->armed, 0, memory_order_acq_rel)) {
			s->err = (int)e;
			snprintf(s->what, sizeof(s->what), "stream");
			be_gpu_finish(g, s);
		}
	}
}

static void *be_gpu_cq_main(void *arg)
{
	struct be_gpu *g = arg;
	char name[16];

	snprintf(name, sizeof(name), "igw-%.6s.cq", be_gpu_name(g));
	pthread_setname_np(pthread_self(), name);
	cudaSetDevice(g->device);
	pthread_mutex_lock(&g->cq_mu);
	for (;;) {
		struct be_gpu_slot *s = g->cq_head;

		if (!s) {
			struct timespec ts;

			if (g->cq_stop)
				break;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)GPU_POLL_NS;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			if (pthread_cond_timedwait(&g->cq_cv, &g->cq_mu, &ts) == ETIMEDOUT) {
				pthread_mutex_unlock(&g->cq_mu);
				be_gpu_poll(g);
				pthread_mutex_lock(&g->cq_mu);
			}
			continue;
		}
		g->cq_head = s->cq_next;
		if (!g->cq_head)
			g->cq_tail = NULL;
		pthread_mutex_unlock(&g->cq_mu);
		be_gpu_finish(g, s);
		pthread_mutex_lock(&g->cq_mu);
	}
	pthread_mutex_unlock(&g->cq_mu);
	return NULL;
}

/* ---- open / close ---- */

static void be_gpu_slot_free(struct be_gpu_slot *s)
{
	if (s->blas)
		cublasDestroy(s->blas);
	if (s->lt)
		cublasLtDestroy(s->lt);
	if (s->workspace)
		cudaFree(s->workspace);
	if (s->ev0)
		cudaEventDestroy(s->ev0);
	if (s->ev1)
		cudaEventDestroy(s->ev1);
	if (s->stream)
		cudaStreamDestroy(s->stream);
	free(s->live);
	memset(s, 0, sizeof(*s));
}

/* Stream, cuBLAS handle (bound to the stream, own workspace, math mode),
 * events and slice flags of slot s. */
static int be_gpu_slot_init(struct be_gpu *g, struct be_gpu_slot *s, int idx, char **err)
{
	const char *what = "cudaStreamCreateWithFlags";
	cublasStatus_t bst;
	cudaError_t e;

	s->g = g;
	s->idx = idx;
	atomic_init(&s->armed, 0);
	s->live = calloc((size_t)g->max_batch, sizeof(*s->live));
	if (!s->live) {
		*err = be_strdupf("gpu: out of memory");
		return -ENOMEM;
	}
	e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
	if (e == cudaSuccess) {
		what = "cudaEventCreate";
		e = cudaEventCreate(&s->ev0);
	}
	if (e == cudaSuccess)
		e = cudaEventCreate(&s->ev1);
	if (e == cudaSuccess) {
		what = "cudaMalloc (cuBLAS workspace)";
		e = cudaMalloc(&s->workspace, GPU_WORKSPACE_BYTES);
	}
	if (e != cudaSuccess) {
		*err = be_gpu_cuda_msg(what, e);
		return -ENODEV;
	}
	what = "cublasCreate";
	bst = cublasCreate(&s->blas);
	if (bst == CUBLAS_STATUS_SUCCESS) {
		what = "cublasSetStream";
		bst = cublasSetStream(s->blas, s->stream);
	}
	if (bst == CUBLAS_STATUS_SUCCESS) {
		/* its own workspace: graph capture may not allocate one */
		what = "cublasSetWorkspace";
		bst = cublasSetWorkspace(s->blas, s->workspace, GPU_WORKSPACE_BYTES);
	}
	if (bst == CUBLAS_STATUS_SUCCESS) {
		/* DEFAULT is plain FP32 (no TF32 unless NVIDIA_TF32_OVERRIDE) */
		what = "cublasSetMathMode";
		bst = cublasSetMathMode(s->blas, g->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
							 : CUBLAS_DEFAULT_MATH);
	}
	if (bst == CUBLAS_STATUS_SUCCESS) {
		what = "cublasLtCreate";
		bst = cublasLtCreate(&s->lt);
	}
	if (bst != CUBLAS_STATUS_SUCCESS) {
		*err = be_strdupf("gpu: cuBLAS: %s: %s", what, cublasGetStatusString(bst));
		return -ENODEV;
	}
	return 0;
}

static void be_gpu_free(struct be_gpu *g)
{
	struct be_gpu_model *gm, *next;

	if (g->cq_started) {
		pthread_mutex_lock(&g->cq_mu);
		g->cq_stop = true;
		pthread_cond_broadcast(&g->cq_cv);
		pthread_mutex_unlock(&g->cq_mu);
		pthread_join(g->cq_thread, NULL);
	}
	for (gm = g->models; gm; gm = next) {
		next = gm->next;
		be_gpu_model_free(g, gm);
	}
	for (int i = 0; g->slots && i < g->n_slots; i++)
		be_gpu_slot_free(&g->slots[i]);
	free(g->slots);
	if (g->lt)
		cublasLtDestroy(g->lt);
	pthread_mutex_destroy(&g->models_mu);
	pthread_mutex_destroy(&g->cq_mu);
	pthread_cond_destroy(&g->cq_cv);
	free(g);
}

/*
 * be_gpu_open - see backend.h.  Credits = conf->slots streams (default 4)
 * on device conf->device.  Without a usable device (no driver, no GPU, a
 * bad ordinal) -ENODEV with *err "gpu: CUDA: <text> (<cudaError name>)":
 * the runtime leaves the backend down with that reason.
 */
static int be_gpu_open(struct backend *be, const struct backend_conf *conf, char **err)
{
	struct be_gpu *g;
	struct cudaDeviceProp prop;
	pthread_condattr_t ca;
	cudaError_t e;
	int count = 0, rc;

	be->priv = NULL;
	be_state_set(be, BE_DOWN);
	e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess) {
		*err = be_gpu_no_device_msg(e);
		return -ENODEV;
	}
	if (conf->device < 0 || conf->device >= count) {
		char hint[256];

		gpu_open_hint(GPU_ERR_INVALID_DEVICE, 0, 0, getenv("CUDA_VISIBLE_DEVICES"), hint,
			      sizeof(hint));
		*err = be_strdupf("gpu: CUDA: device %d not present (%d device%s)%s%s",
				  conf->device, count, count == 1 ? "" : "s", hint[0] ? ": " : "",
				  hint);
		return -ENODEV;
	}
	e = cudaSetDevice(conf->device);
	if (e == cudaSuccess)
		e = cudaGetDeviceProperties(&prop, conf->device);
	if (e != cudaSuccess) {
		*err = be_gpu_cuda_msg("device setup", e);
		return -ENODEV;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		*err = be_strdupf("gpu: out of memory");
		return -ENOMEM;
	}
	g->be = be;
	g->device = conf->device;
	g->n_slots = conf->slots > 0 ? conf->slots : 4;
	g->max_batch = conf->gpu.max_batch > 0 ? conf->gpu.max_batch : GPU_DEFAULT_MAX_BATCH;
	g->tf32 = conf->gpu.tf32;
	g->graphs = conf->gpu.graphs;
	snprintf(g->dev_name, sizeof(g->dev_name), "%s", prop.name);
	pthread_mutex_init(&g->models_mu, NULL);
	pthread_mutex_init(&g->cq_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cq_cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&g->inject, 0);
	atomic_init(&g->batches, 0);
	atomic_init(&g->rows, 0);
	atomic_init(&g->busy_ns, 0);
	gpu_health_init(&g->health);
	g->slots = calloc((size_t)g->n_slots, sizeof(*g->slots));
	if (!g->slots) {
		*err = be_strdupf("gpu: out of memory");
		rc = -ENOMEM;
		goto out_free;
	}
	for (int i = 0; i < g->n_slots; i++)
		if ((rc = be_gpu_slot_init(g, &g->slots[i], i, err)))
			goto out_free;
	if (cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
		*err = be_strdupf("gpu: cuBLAS: cublasLtCreate failed");
		rc = -ENODEV;
		goto out_free;
	}
	rc = -pthread_create(&g->cq_thread, NULL, be_gpu_cq_main, g);
	if (rc) {
		*err = be_strdupf("gpu: cannot start the completion thread: %s", strerror(-rc));
		goto out_free;
	}
	g->cq_started = true;
	be->priv = g;
	be->credits = g->n_slots;
	be_state_set(be, BE_UP);
	be_log(BE_LOG_INFO, "backend=%s device=%d name=\"%s\" cc=%d.%d memory_mib=%zu streams=%d "
	       "max_batch=%d math=%s graphs=%s msg=\"GPU open\"", be_gpu_name(g), g->device,
	       g->dev_name, prop.major, prop.minor, prop.totalGlobalMem >> 20, g->n_slots,
	       g->max_batch, g->tf32 ? "tf32" : "fp32", g->graphs ? "on" : "off");
	return 0;

out_free:
	be_gpu_free(g);
	return rc;
}

/* be_gpu_close - see backend.h: no batch in flight; joins the completion
 * thread, frees every model and stream. */
static void be_gpu_close(struct backend *be)
{
	struct be_gpu *g = be->priv;

	if (!g)
		return;
	cudaSetDevice(g->device);
	be_gpu_free(g);
	be->priv = NULL;
	be_state_set(be, BE_DOWN);
}

/*
 * be_gpu_caps - see backend.h: conf gpu.max_batch (default 256) rows per
 * batch whatever the model's max_batch_size, preferred sizes in multiples
 * of 8, FP32, and this kind's batching defaults (a short queue delay).
 */
static void be_gpu_caps(const struct backend *be, const struct model *m, struct be_caps *out)
{
	const struct be_gpu *g = be->priv;
	int mb = g ? g->max_batch
		   : be->conf.gpu.max_batch > 0 ? be->conf.gpu.max_batch : GPU_DEFAULT_MAX_BATCH;
	int unused[GPU_MAX_BUCKETS];

	out->max_batch = mb;
	out->n_preferred = gpu_preferred(mb, out->preferred);
	out->dtypes = 0;
	out->n_variants = gpu_buckets(mb, unused);
	out->batching_defaults = true;
	out->delay_us = GPU_DELAY_US;
}

static void be_gpu_stats(const struct backend *be, struct backend_stats *out)
{
	const struct be_gpu *g = be->priv;

	memset(out, 0, sizeof(*out));
	if (!g)
		return;
	out->batches = atomic_load_explicit(&g->batches, memory_order_relaxed);
	out->rows = atomic_load_explicit(&g->rows, memory_order_relaxed);
	out->busy_ns = atomic_load_explicit(&g->busy_ns, memory_order_relaxed);
	out->up = be_state_get(be) == BE_UP;
	if (atomic_load_explicit(&g->health.down, memory_order_acquire))
		snprintf(out->reason, sizeof(out->reason), "%s", g->health.reason);
}

int be_gpu_inject(struct backend *be, int code)
{
	struct be_gpu *g = be ? be->priv : NULL;

	if (!g || be->ops != &be_gpu_ops)
		return -ENODEV;
	atomic_store(&g->inject, code);
	return 0;
}

#ifndef IGW_BUILD_VERSION
#error "IGW_BUILD_VERSION: the Makefile defines it (the build's version, gpuload.c's check)"
#endif
const struct be_plugin_stamp be_gpu_stamp = { BE_PLUGIN_LAYOUT, IGW_BUILD_VERSION };

const struct backend_ops be_gpu_ops = {
	.kind = "gpu",
	.open = be_gpu_open,
	.load_model = be_gpu_load_model,
	.unload_model = be_gpu_unload_model,
	.caps = be_gpu_caps,
	.submit = be_gpu_submit,
	.parse_conf = be_gpu_parse_conf,
	.stats = be_gpu_stats,
	.close = be_gpu_close,
};

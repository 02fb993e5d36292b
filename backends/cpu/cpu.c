/*
 * cpu.c - the CPU backend: dense layers as oneDNN matmul primitives (be_cpu_).
 *
 * Execution is asynchronous: the backend owns `workers` threads (SCHED_BATCH
 * at the configured nice value) and one queue of batches; credits =
 * workers.  submit checks the batch and queues it; a worker takes it,
 * gathers its rows into the buffer of the batch's slot (the scheduler's
 * credit index: no two batches in flight share one), runs the layer chain
 * on that slot's stream with OpenMP threads_per_worker wide, scatters the
 * results and calls batch->done.  A batch whose bucket is measured to take
 * at most inline_us (threads_per_worker 1 only) runs inside submit on the
 * calling thread instead: for a model like digits (a few microseconds) the
 * hand-off to a worker and back costs more than the batch (be_cpu_inline).
 *
 * Per hosted model and per slot we keep:
 *   - two activation buffers (max_batch_size x max_width floats) that the
 *     dense layers ping-pong between, and for INT8 models two more of s8/u8
 *     (max_batch_size x max_width bytes) that ping-pong in step;
 *   - for every batch-size bucket (1, 2, 4, ... , max_batch_size) and every
 *     dense layer a matmul primitive whose memory objects are bound to those
 *     buffers once, at load time, so submit only picks a bucket and executes;
 *   - one user-mode scratchpad shared by the slot's primitives.  User mode
 *     keeps the library from sharing a hidden scratchpad between slots and
 *     keeps all memory per slot, allocated up front.
 * Weights: at load, each dense layer asks oneDNN which weights layout its
 * matmul prefers (format_tag_any at the largest bucket; the brgemm kernels
 * want a blocked layout such as BA16a64b, the same for every batch size) and
 * reorders nn.Linear's [out][in] array into it once, per model and backend,
 * shared by every slot and bucket.  The preference is not always the
 * faster: measured on mlp-large (2 threads), packed was 2.1x at batch 1 and
 * 1.1x at batch 64 over the plain array on an AVX-512 Xeon, but plain was
 * 1.75x faster at batch 64 on an AVX2 EPYC.  So by default
 * (weights_layout auto) both are timed per layer at load and the faster
 * kept (be_cpu_pack_choose); packed or plain force one.  When the
 * preferred layout is the plain one ({in, out}, tag ba) the array is used
 * in place.  Bias is {1, out}; ReLU is a fused eltwise post-op.
 *
 * INT8 models (docs/model-format.md): u8 x s8 or s8 x s8 matmuls, planned
 * per layer at load (be_cpu_plan).  Between two static (calibrated) layers
 * the activations stay 8-bit inside oneDNN; a dynamic layer's output goes
 * through one C pass per row (scale, bias, ReLU, the next layer's 8-bit
 * input).  Measured on mlp-large at batch 64 (perf, bench/int8 -p): the
 * earlier scalar per-row quantization and f32 bias/ReLU between every layer
 * took a third of the INT8 batch; vectorized and split over the threads
 * they are ~5%.
 *
 * Softmax runs in C over the live rows only (vectorized, rows split over the
 * slot's threads): it only ever ends a chain, it skips the padding rows, it
 * needs no extra primitive per bucket, and computing it like
 * model_forward_ref (max-subtracted, summed in float64) keeps the two
 * comparable.
 *
 * Hosted models live in a prepend-only list keyed by model pointer: load_model
 * publishes a fully built entry with a release store, so submit walks it
 * without a lock.  unload_model unlinks an entry (a walker standing on it
 * still finds its next) and keeps it on a retired list; entries are freed
 * in close.
 */
#define _GNU_SOURCE
#include "backend.h"
#include "model/model.h"
#include "model/quant.h"
#include "rowk.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <dnnl.h>
#include <dnnl_debug.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BE_CPU_MAX_BUCKETS 16
#define BE_CPU_ALIGN 64

/* One dense layer at one bucket size in one slot. */
struct be_cpu_exec {
	dnnl_primitive_t prim;
	dnnl_memory_t src, wei, bias, dst, scratch;
};

struct be_cpu_slot_model {
	float *buf[2];
	void *qbuf[2];			/* INT8 models: s8/u8 activations, ping-pong like buf */
	float *rscale;			/* INT8 models: per row input scale (dynamic layers) */
	void *scratchpad;
	struct be_cpu_exec *exec;	/* [n_buckets][n_layers]; prim NULL for softmax */
};

/*
 * A dense layer's weights in the layout its primitives read, and (INT8)
 * how its primitive is typed: src s8, or u8 when the input is a ReLU's
 * output (the VNNI kernels take u8 x s8 natively; s8 x s8 costs oneDNN a
 * +128 shift and a compensation term), dst f32, or s8/u8 when the next
 * layer is a static INT8 dense layer too (the requantization then happens
 * inside this primitive: see be_cpu_chained).
 *
 * Split layers (be_cpu_split): on a CPU without VNNI an s8 input is fed as
 * two u8 halves, x+ = max(x, 0) and x- = max(-x, 0), against [W | -W]:
 * W x = W x+ - W x-, with K = 2 x in.  Without VNNI oneDNN multiplies u8 x
 * s8 pairs into a saturating int16 (vpmaddubsw) and runs s8 x s8 as
 * (x + 128) x w: up to 2 x 255 x 127 > 32767, so wrong answers (measured
 * on an AVX2 EPYC, oneDNN 2.6 gemm:jit: digits-int8 probabilities off by
 * 3x).  u8 halves of at most 127 stay below: exact, at twice the work of
 * that layer.
 */
struct be_cpu_weights {
	dnnl_memory_desc_t md;
	int k;				/* the matmul's K: the layer's in, 2 x in when split */
	int8_t *splitw;			/* split: [W | -W], [out][2 in] (owned), else NULL */
	void *packed;			/* owned reordered copy; NULL: the model's array */
	uint32_t plain_mask;		/* with packed: buckets (bit i: buckets[i]) that
					 * read the model's array instead (auto) */
	void *small;			/* owned second copy, in small_md, for the buckets
					 * (small_mask) whose matmul on packed would run
					 * oneDNN's reference code; else NULL */
	dnnl_memory_desc_t small_md;
	uint32_t small_mask;
	float *qbias;			/* static INT8: bias / (in_scale x w_scale) (owned), else NULL */
	float *oscale;			/* INT8: per output channel output scales (owned) */
	dnnl_data_type_t sdt, ddt;	/* src and dst data types */
	bool split;			/* s8 input fed as u8 halves (see above) */
};

struct be_cpu_model {
	const struct model *m;
	struct be_cpu_weights *wei;	/* per layer */
	int n_buckets;
	int buckets[BE_CPU_MAX_BUCKETS];	/* ascending; last = max_batch_size */
	/* per bucket: smoothed time of a batch (gather + layers), 0 = never
	 * run; relaxed, a lost update is harmless (be_cpu_inline) */
	_Atomic uint64_t run_ns[BE_CPU_MAX_BUCKETS];
	int *src_buf;			/* per layer: which buffer it reads (softmax: in place) */
	int *qsrc;			/* INT8, per layer: which qbuf holds its s8/u8 input */
	int out_buf;			/* the buffer holding the final activations */
	struct be_cpu_slot_model *slots;
	struct be_cpu_model *_Atomic next;
};

struct be_cpu {
	dnnl_engine_t engine;
	int n_slots, threads;
	enum be_wlayout wlayout;	/* backends[].weights_layout */
	uint64_t inline_ns;		/* backends[].inline_us; 0: never inline (be_cpu_inline) */
	bool vnni;			/* the CPU multiplies u8 x s8 without saturating */
	dnnl_stream_t *streams;		/* one per slot */
	pthread_mutex_t load_lock;	/* serialises load_model / unload_model */
	struct be_cpu_model *_Atomic models;
	struct be_cpu_model *retired;	/* unloaded, freed in close */
	atomic_uint_fast64_t batches, rows, busy_ns, inlined;
	/* the workers and their queue of submitted batches */
	pthread_mutex_t q_mu;
	pthread_cond_t q_cv;
	struct batch *q_head, *q_tail;
	bool q_stop;
	int n_workers;
	pthread_t *workers;
	struct backend *be;
};

static void be_cpu_workers_stop(struct be_cpu *c);
static bool be_cpu_fused(const struct layer *l);
static int be_cpu_workers_start(struct be_cpu *c, char **err);

static int be_cpu_err(char **err, int rc, const char *what, dnnl_status_t st)
{
	if (err)
		*err = be_strdupf("cpu backend: %s: %s", what, dnnl_status2str(st));
	return rc;
}

static void *be_cpu_alloc(size_t bytes)
{
	void *p = aligned_alloc(BE_CPU_ALIGN, (bytes + BE_CPU_ALIGN - 1) / BE_CPU_ALIGN *
			       BE_CPU_ALIGN + BE_CPU_ALIGN);

	if (p)
		memset(p, 0, bytes);
	return p;
}

static void be_cpu_exec_free(struct be_cpu_exec *e)
{
	if (e->prim)
		dnnl_primitive_destroy(e->prim);
	if (e->src)
		dnnl_memory_destroy(e->src);
	if (e->wei)
		dnnl_memory_destroy(e->wei);
	if (e->bias)
		dnnl_memory_destroy(e->bias);
	if (e->dst)
		dnnl_memory_destroy(e->dst);
	if (e->scratch)
		dnnl_memory_destroy(e->scratch);
	memset(e, 0, sizeof(*e));
}

static void be_cpu_model_free(struct be_cpu_model *cm, int n_slots)
{
	int s, i;

	if (!cm)
		return;
	for (s = 0; cm->slots && s < n_slots; s++) {
		struct be_cpu_slot_model *sm = &cm->slots[s];

		for (i = 0; sm->exec && i < cm->n_buckets * cm->m->n_layers; i++)
			be_cpu_exec_free(&sm->exec[i]);
		free(sm->exec);
		free(sm->buf[0]);
		free(sm->buf[1]);
		free(sm->qbuf[0]);
		free(sm->qbuf[1]);
		free(sm->rscale);
		free(sm->scratchpad);
	}
	free(cm->slots);
	free(cm->src_buf);
	free(cm->qsrc);
	for (i = 0; cm->wei && i < cm->m->n_layers; i++) {
		free(cm->wei[i].packed);
		free(cm->wei[i].small);
		free(cm->wei[i].splitw);
		free(cm->wei[i].qbias);
		free(cm->wei[i].oscale);
	}
	free(cm->wei);
	free(cm);
}

/* The backend's name for log lines. */
static const char *be_cpu_name(const struct be_cpu *c)
{
	return c->be && c->be->conf.name ? c->be->conf.name : "cpu";
}

/* be_cpu_vnni - see backend.h. */
bool be_cpu_vnni(void)
{
	const char *e = getenv("INFERGW_CPU_NO_VNNI");
	unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();

	if (e && *e && strcmp(e, "0"))
		return false;
	return (isa & (unsigned)dnnl_cpu_isa_avx512_core_vnni) ==
		       (unsigned)dnnl_cpu_isa_avx512_core_vnni ||
	       (isa & (unsigned)dnnl_cpu_isa_avx2_vnni) == (unsigned)dnnl_cpu_isa_avx2_vnni;
}

/* Free c (its streams and engine, as far as they were made; no worker
 * running, no model left) and mark be down. */
static void be_cpu_free(struct backend *be, struct be_cpu *c)
{
	for (int s = 0; c->streams && s < c->n_slots; s++)
		if (c->streams[s])
			dnnl_stream_destroy(c->streams[s]);
	free(c->streams);
	if (c->engine)
		dnnl_engine_destroy(c->engine);
	pthread_mutex_destroy(&c->load_lock);
	pthread_mutex_destroy(&c->q_mu);
	pthread_cond_destroy(&c->q_cv);
	free(c);
	be->priv = NULL;
	be_state_set(be, BE_DOWN);
}

/*
 * be_cpu_open - see backend.h.  conf->slots and conf->threads_per_slot
 * default to 1 when not positive.
 */
static int be_cpu_open(struct backend *be, const struct backend_conf *conf, char **err)
{
	struct be_cpu *c;
	dnnl_status_t st;
	int s;

	c = calloc(1, sizeof(*c));
	if (!c) {
		*err = be_strdupf("cpu backend: out of memory");
		return -ENOMEM;
	}
	c->n_slots = conf->slots > 0 ? conf->slots : 1;
	c->threads = conf->threads_per_slot > 0 ? conf->threads_per_slot : 1;
	c->wlayout = conf->weights_layout;
	/* a team of one only: an OpenMP team would be the caller's own */
	c->inline_ns = c->threads == 1 && conf->inline_us > 0 ? (uint64_t)conf->inline_us * 1000 : 0;
	c->vnni = be_cpu_vnni();
	pthread_mutex_init(&c->load_lock, NULL);
	pthread_mutex_init(&c->q_mu, NULL);
	pthread_cond_init(&c->q_cv, NULL);
	atomic_init(&c->models, NULL);
	atomic_init(&c->batches, 0);
	atomic_init(&c->rows, 0);
	atomic_init(&c->busy_ns, 0);
	atomic_init(&c->inlined, 0);

	st = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
	if (st != dnnl_success) {
		be_cpu_err(err, -ENODEV, "dnnl_engine_create", st);
		goto out_free;
	}
	c->streams = calloc((size_t)c->n_slots, sizeof(*c->streams));
	if (!c->streams) {
		*err = be_strdupf("cpu backend: out of memory");
		goto out_free;
	}
	for (s = 0; s < c->n_slots; s++) {
		st = dnnl_stream_create(&c->streams[s], c->engine, dnnl_stream_default_flags);
		if (st != dnnl_success) {
			be_cpu_err(err, -ENODEV, "dnnl_stream_create", st);
			goto out_free;
		}
	}
	c->be = be;
	be->priv = c;
	if (be_cpu_workers_start(c, err))
		goto out_free;
	be->credits = c->n_slots;
	be_state_set(be, BE_UP);
	be_log(BE_LOG_INFO, "backend=%s weights_layout=%s inline_us=%llu int8=%s msg=\"cpu "
	       "backend open%s\"", be_cpu_name(c), be_wlayout_name(c->wlayout),
	       (unsigned long long)(c->inline_ns / 1000), c->vnni ? "vnni" : "split",
	       c->vnni ? "" : ": no VNNI here, an INT8 layer whose input may be negative "
	       "runs as two u8 halves (exact, twice its work: docs/int8.md)");
	return 0;

out_free:
	be_cpu_free(be, c);
	return -ENODEV;
}

/*
 * Create the matmul primitive for layer l at batch size rows (memory bound
 * later).  wmd: the weights layout to use; NULL = the plain {in, out} ba.
 * With e NULL, only the descriptor is made and *pd_out returned instead.
 */
static dnnl_status_t be_cpu_matmul(struct be_cpu *c, const struct layer *l,
				   const struct be_cpu_weights *w, int rows,
				   const dnnl_memory_desc_t *wmd, struct be_cpu_exec *e,
				   dnnl_memory_desc_t md[4], dnnl_primitive_desc_t *pd_out)
{
	dnnl_dims_t sd = { rows, w->k }, wd = { w->k, l->out }, bd = { 1, l->out },
		    dd = { rows, l->out };
	dnnl_data_type_t dt = l->qweight ? dnnl_s8 : dnnl_f32;
	bool fuse = be_cpu_fused(l), qdst = w->ddt != dnnl_f32;
	dnnl_primitive_attr_t attr = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_matmul_desc_t desc;
	dnnl_status_t st;

	if ((st = dnnl_memory_desc_init_by_tag(&md[0], 2, sd, w->sdt, dnnl_ab)) ||
	    (st = dnnl_memory_desc_init_by_tag(&md[1], 2, wd, dt, dnnl_ba)) ||
	    (st = dnnl_memory_desc_init_by_tag(&md[2], 2, bd, dnnl_f32, dnnl_ab)) ||
	    (st = dnnl_memory_desc_init_by_tag(&md[3], 2, dd, w->ddt, dnnl_ab)))
		return st;
	if (wmd)
		md[1] = *wmd;
	st = dnnl_matmul_desc_init(&desc, &md[0], &md[1], l->bias && fuse ? &md[2] : NULL, &md[3]);
	if (st)
		return st;
	if ((st = dnnl_primitive_attr_create(&attr)))
		return st;
	st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	if (!st && l->qweight)	/* per output channel: mask dim 1 (N) */
		st = dnnl_primitive_attr_set_output_scales(attr, l->out, 1 << 1, w->oscale);
	if (!st && fuse && (l->act == ACT_RELU || qdst)) {
		/* an s8/u8 dst is the next layer's q(x): clamp to the +-127 of
		 * model_q8 (the ReLU's lower bound is 0), not the type's range */
		float lo = l->act == ACT_RELU ? 0.f : -MODEL_Q8_MAX;

		st = dnnl_post_ops_create(&po);
		if (!st && qdst)
			st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, lo,
							  MODEL_Q8_MAX);
		else if (!st)
			st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f);
		if (!st)
			st = dnnl_primitive_attr_set_post_ops(attr, po);
	}
	if (!st)
		st = dnnl_primitive_desc_create(&pd, &desc, attr, c->engine, NULL);
	if (!st && e)
		st = dnnl_primitive_create(&e->prim, pd);
	if (pd && !st && pd_out)
		*pd_out = pd;
	else if (pd)
		dnnl_primitive_desc_destroy(pd);
	if (po)
		dnnl_post_ops_destroy(po);
	dnnl_primitive_attr_destroy(attr);
	return st;
}

/* The plain {in, out} (tag ba) weights of layer l: the model's array, or
 * the split copy. */
static const void *be_cpu_plain(const struct layer *l, const struct be_cpu_weights *w)
{
	return w->splitw ? (const void *)w->splitw
	       : l->qweight ? (const void *)l->qweight : (const void *)l->weight;
}

/* Run one layer's primitive (its memory bound) on stream and wait for it. */
static dnnl_status_t be_cpu_exec_run(dnnl_stream_t stream, const struct be_cpu_exec *e)
{
	dnnl_exec_arg_t args[5];
	dnnl_status_t st;
	int n = 0;

	args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, e->src };
	args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, e->wei };
	if (e->bias)
		args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, e->bias };
	args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, e->dst };
	if (e->scratch)
		args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, e->scratch };
	st = dnnl_primitive_execute(e->prim, stream, n, args);
	return st != dnnl_success ? st : dnnl_stream_wait(stream);
}

/* The scratchpad descriptor of a primitive (NULL when it needs none). */
static const dnnl_memory_desc_t *be_cpu_scratch_md(dnnl_primitive_t prim)
{
	const_dnnl_primitive_desc_t pd;

	if (dnnl_primitive_get_primitive_desc(prim, &pd) != dnnl_success)
		return NULL;
	return dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
}

/* Reorder src (plain ba weights) into dst's layout, once, synchronously. */
static dnnl_status_t be_cpu_reorder(struct be_cpu *c, const dnnl_memory_desc_t *src_md,
				    const void *src, const dnnl_memory_desc_t *dst_md, void *dst)
{
	dnnl_primitive_desc_t rpd = NULL;
	dnnl_primitive_t r = NULL;
	dnnl_memory_t ms = NULL, md = NULL;
	dnnl_exec_arg_t args[2];
	dnnl_status_t st;

	st = dnnl_reorder_primitive_desc_create(&rpd, src_md, c->engine, dst_md, c->engine, NULL);
	if (!st)
		st = dnnl_primitive_create(&r, rpd);
	if (!st)
		st = dnnl_memory_create(&ms, src_md, c->engine, (void *)src);
	if (!st)
		st = dnnl_memory_create(&md, dst_md, c->engine, dst);
	if (!st) {
		args[0] = (dnnl_exec_arg_t){ DNNL_ARG_FROM, ms };
		args[1] = (dnnl_exec_arg_t){ DNNL_ARG_TO, md };
		st = dnnl_primitive_execute(r, c->streams[0], 2, args);
	}
	if (!st)
		st = dnnl_stream_wait(c->streams[0]);
	if (md)
		dnnl_memory_destroy(md);
	if (ms)
		dnnl_memory_destroy(ms);
	if (r)
		dnnl_primitive_destroy(r);
	if (rpd)
		dnnl_primitive_desc_destroy(rpd);
	return st;
}

/*
 * Subnormal floats (|x| < 2^-126) as zero while this thread computes: on
 * x86-64 MXCSR's FTZ and DAZ bits, on aarch64 FPCR.FZ (inputs and results).
 * An arithmetic instruction that reads or makes a subnormal (a product of
 * one and an activation, say) can take a microcode assist of ~100+ cycles
 * on Intel cores: one such value in a weight or an input slows every
 * vector instruction that touches it.  Measured (h2load A/B,
 * digits, whose weights hold 9 subnormals; 1 loop, batches of 32 inline):
 * the held-out row +10% req/s flushed, rows of 0.5 +15%, rows of 1e-40
 * 3.4x, so one client's subnormal inputs no longer slow every batch they
 * share with others several times over.  What it changes: a
 * subnormal contributes 0 instead of < 2^-126 times its weight, below any
 * float32 output's resolution unless a weight is ~1e30 (as in
 * test_be_cpu's test_subnormal_inputs_flushed).  A thread is flushed only
 * while it computes (be_cpu_forward; be_cpu_load_model's layout probes):
 * parsing and formatting keep IEEE subnormals.  OpenMP threads created by
 * a thread while it is flushed inherit the mode (clone copies the control
 * register); a worker's team is flushed for good (be_cpu_flush_team).
 * Returns the mode to restore.
 */
static inline unsigned long be_cpu_flush_enter(void)
{
#if defined(__x86_64__)
	unsigned int csr = __builtin_ia32_stmxcsr();

	__builtin_ia32_ldmxcsr(csr | 0x8040u);	/* FTZ (bit 15) | DAZ (bit 6) */
	return csr;
#elif defined(__aarch64__)
	unsigned long fpcr;

	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	__asm__ volatile("msr fpcr, %0" : : "r"(fpcr | 1ul << 24));	/* FZ */
	return fpcr;
#else
	return 0;
#endif
}

static inline void be_cpu_flush_leave(unsigned long saved)
{
#if defined(__x86_64__)
	__builtin_ia32_ldmxcsr((unsigned int)saved);
#elif defined(__aarch64__)
	__asm__ volatile("msr fpcr, %0" : : "r"(saved));
#else
	(void)saved;
#endif
}

/*
 * backends[].weights_layout auto: the preferred (packed) layout and the
 * plain array of one layer are timed against each other at load, on this
 * machine with this team size.  Which is faster depends on the CPU: on
 * mlp-large the packed layout was 2.1x faster at batch 1 on an AVX-512
 * Xeon, the plain one 1.75x faster at batch 64 on an AVX2 EPYC (oneDNN
 * 2.6, 2 threads; bench/kernel.c's raw-any vs raw-ba).
 */
#define BE_CPU_TIME_REPS 5			/* timed runs per candidate, at most */
#define BE_CPU_TIME_BUDGET_NS 30000000ull	/* per layer and bucket, past 2 timed runs */
#define BE_CPU_PLAIN_MARGIN 1.03		/* plain must win by 3% (noise) */

/* One candidate weights layout of a layer at one batch size, to time. */
struct be_cpu_probe {
	struct be_cpu_exec e;
	void *src, *dst, *scratch;	/* owned, zeroed */
	uint64_t best_ns;		/* fastest timed run */
};

static void be_cpu_probe_free(struct be_cpu_probe *p)
{
	be_cpu_exec_free(&p->e);
	free(p->src);
	free(p->dst);
	free(p->scratch);
	memset(p, 0, sizeof(*p));
}

/* Whether pd is oneDNN's reference (scalar) implementation. */
static bool be_cpu_pd_is_ref(const_dnnl_primitive_desc_t pd)
{
	const char *impl = NULL;

	return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
	       !impl || !strncmp(impl, "ref", 3);
}

/* Whether prim runs oneDNN's reference (scalar) code: never worth timing. */
static bool be_cpu_is_ref(dnnl_primitive_t prim)
{
	const_dnnl_primitive_desc_t pd;

	return dnnl_primitive_get_primitive_desc(prim, &pd) != dnnl_success ||
	       be_cpu_pd_is_ref(pd);
}

/* Whether layer l's matmul at rows, weights in wmd, would run the
 * reference code (or cannot be made). */
static bool be_cpu_ref_with(struct be_cpu *c, const struct layer *l,
			    const struct be_cpu_weights *w, const dnnl_memory_desc_t *wmd, int rows)
{
	dnnl_memory_desc_t md[4];
	dnnl_primitive_desc_t pd = NULL;
	bool ref;

	if (be_cpu_matmul(c, l, w, rows, wmd, NULL, md, &pd) || !pd)
		return true;
	ref = be_cpu_pd_is_ref(pd);
	dnnl_primitive_desc_destroy(pd);
	return ref;
}

/* Layer l's primitive at rows with weights wdata in layout wmd, on zeroed
 * scratch data (matmul time does not depend on the values).  -1 when it
 * cannot be made or is the reference implementation. */
static int be_cpu_probe_init(struct be_cpu *c, const struct layer *l,
			     const struct be_cpu_weights *w, const dnnl_memory_desc_t *wmd,
			     const void *wdata, int rows, struct be_cpu_probe *p)
{
	dnnl_memory_desc_t md[4];
	const dnnl_memory_desc_t *smd;

	memset(p, 0, sizeof(*p));
	p->best_ns = UINT64_MAX;
	p->src = be_cpu_alloc(sizeof(float) * (size_t)rows * (size_t)w->k);
	p->dst = be_cpu_alloc(sizeof(float) * (size_t)rows * (size_t)l->out);
	if (!p->src || !p->dst || be_cpu_matmul(c, l, w, rows, wmd, &p->e, md, NULL) ||
	    be_cpu_is_ref(p->e.prim) ||
	    dnnl_memory_create(&p->e.src, &md[0], c->engine, p->src) ||
	    dnnl_memory_create(&p->e.wei, &md[1], c->engine, (void *)wdata) ||
	    (l->bias && be_cpu_fused(l) &&	/* the values do not matter here */
	     dnnl_memory_create(&p->e.bias, &md[2], c->engine, (void *)l->bias)) ||
	    dnnl_memory_create(&p->e.dst, &md[3], c->engine, p->dst))
		return -1;
	smd = be_cpu_scratch_md(p->e.prim);
	if (smd && dnnl_memory_desc_get_size(smd) > 0 &&
	    (!(p->scratch = be_cpu_alloc(dnnl_memory_desc_get_size(smd))) ||
	     dnnl_memory_create(&p->e.scratch, smd, c->engine, p->scratch)))
		return -1;
	return 0;
}

/* Time p[0] and p[1] interleaved (order alternating): a warm-up run each,
 * then up to BE_CPU_TIME_REPS timed runs each (at least 2 when the budget
 * runs out); each keeps its fastest.  -1 when a run fails. */
static int be_cpu_probe_race(struct be_cpu *c, struct be_cpu_probe p[2])
{
	uint64_t t0 = be_now_ns();

	for (int r = 0; r <= BE_CPU_TIME_REPS; r++) {
		for (int k = 0; k < 2; k++) {
			struct be_cpu_probe *q = &p[(r + k) & 1];
			uint64_t a = be_now_ns(), d;

			if (be_cpu_exec_run(c->streams[0], &q->e) != dnnl_success)
				return -1;
			d = be_now_ns() - a;
			if (r > 0 && d < q->best_ns)
				q->best_ns = d;
		}
		if (r >= 2 && be_now_ns() - t0 > BE_CPU_TIME_BUDGET_NS)
			break;
	}
	return 0;
}

/* n times in ns as microseconds, comma separated, into buf. */
static void be_cpu_us_list(char *buf, size_t len, const uint64_t *ns, int n)
{
	size_t o = 0;

	buf[0] = 0;
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%.1f", i ? "," : "", ns[i] / 1e3);
}

/* Time layer li with w's packed weights against the plain array (plain_md,
 * plain) at every bucket of cm; a bucket where plain is faster by
 * BE_CPU_PLAIN_MARGIN reads the plain array (w->plain_mask; it costs no
 * memory: the model's own array); the packed copy is dropped when no
 * bucket keeps it.  A layout that cannot be timed loses (both: packed
 * stays).  Logs the times. */
static void be_cpu_pack_choose(struct be_cpu *c, const struct be_cpu_model *cm, int li,
			       const dnnl_memory_desc_t *plain_md, const void *plain,
			       struct be_cpu_weights *w)
{
	const struct layer *l = &cm->m->layers[li];
	uint64_t tk[BE_CPU_MAX_BUCKETS], tl[BE_CPU_MAX_BUCKETS];
	char ks[BE_CPU_MAX_BUCKETS * 12], ls[BE_CPU_MAX_BUCKETS * 12];
	int nb = cm->n_buckets, b, bad = -1;

	w->plain_mask = 0;
	for (b = 0; b < nb && bad < 0; b++) {
		struct be_cpu_probe p[2];

		memset(p, 0, sizeof(p));	/* freeable when one is never made */
		if (be_cpu_probe_init(c, l, w, &w->md, w->packed, cm->buckets[b], &p[0]))
			bad = 0;
		else if (be_cpu_probe_init(c, l, w, plain_md, plain, cm->buckets[b], &p[1]) ||
			 be_cpu_probe_race(c, p))
			bad = 1;
		tk[b] = p[0].best_ns;
		tl[b] = p[1].best_ns;
		if (bad < 0 && (double)tl[b] * BE_CPU_PLAIN_MARGIN < (double)tk[b])
			w->plain_mask |= 1u << b;
		be_cpu_probe_free(&p[0]);
		be_cpu_probe_free(&p[1]);
	}
	if (bad >= 0)	/* the packed one cannot run: plain everywhere */
		w->plain_mask = bad == 0 ? (1u << nb) - 1 : 0;
	if (w->plain_mask == (1u << nb) - 1) {
		free(w->packed);
		w->packed = NULL;
		w->md = *plain_md;
	}
	if (bad >= 0) {
		be_log(BE_LOG_INFO, "backend=%s model=%s layer=%d weights=%s msg=\"weights "
		       "layout: the %s layout cannot be timed here\"", be_cpu_name(c),
		       cm->m->name, li, w->packed ? "packed" : "plain", bad ? "plain" : "packed");
		return;
	}
	be_cpu_us_list(ks, sizeof(ks), tk, nb);
	be_cpu_us_list(ls, sizeof(ls), tl, nb);
	be_log(BE_LOG_INFO, "backend=%s model=%s layer=%d weights=%s plain_buckets=0x%x "
	       "packed_us=%s plain_us=%s msg=\"weights layout timed at load per batch bucket "
	       "(1, 2, 4, ... %d rows): the faster kept\"", be_cpu_name(c), cm->m->name, li,
	       !w->packed ? "plain" : w->plain_mask ? "mixed" : "packed", w->plain_mask, ks, ls,
	       cm->m->max_batch_size);
}

/*
 * Whether layer l may read its plain weights array: FP32, or INT8 with a
 * u8 input (u8 x s8, the classic integer GEMM: checked against the
 * reference in both layouts by test_be_cpu).  An s8-input INT8 layer (the
 * first layer on a VNNI CPU) keeps the layout oneDNN asks for, which may
 * carry the s8 x s8 compensation: reading the plain s8 array there was
 * never checked against the reference.
 */
static bool be_cpu_plain_ok(const struct layer *l, const struct be_cpu_weights *w)
{
	return !l->qweight || w->sdt == dnnl_u8;
}

/*
 * The packed layout is what the matmul at the largest bucket prefers; at
 * small buckets oneDNN may have no optimized kernel for it and run its
 * reference code (seen: digits' INT8 first layer, s8 input, on a VNNI
 * Xeon with oneDNN 2.6: AB16a64b4a weights at 1, 2 and 4 rows, ~100x
 * slower than FP32).  For those buckets, a second copy of w in the layout
 * the matmul prefers at the smallest of them, kept for the buckets where
 * it is not the reference code (w->small, small_mask).  Nothing changes
 * when it cannot be made.  Logged.
 */
static void be_cpu_small_layout(struct be_cpu *c, const struct be_cpu_model *cm, int li,
				const dnnl_memory_desc_t *plain_md, const void *plain,
				struct be_cpu_weights *w)
{
	const struct layer *l = &cm->m->layers[li];
	dnnl_memory_desc_t any, md[4];
	dnnl_primitive_desc_t pd = NULL;
	const dnnl_memory_desc_t *pref;
	uint32_t ref = 0;
	int b, first;

	for (b = 0; b < cm->n_buckets; b++)
		if (!(w->plain_mask >> b & 1) && be_cpu_ref_with(c, l, w, &w->md, cm->buckets[b]))
			ref |= 1u << b;
	if (!ref)
		return;
	first = __builtin_ctz(ref);
	if (dnnl_memory_desc_init_by_tag(&any, 2, plain_md->dims, plain_md->data_type,
					 dnnl_format_tag_any) ||
	    be_cpu_matmul(c, l, w, cm->buckets[first], &any, NULL, md, &pd) || !pd)
		return;
	pref = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	if (pref && (w->small = be_cpu_alloc(dnnl_memory_desc_get_size(pref)))) {
		w->small_md = *pref;
		if (be_cpu_reorder(c, plain_md, plain, pref, w->small) != dnnl_success) {
			free(w->small);
			w->small = NULL;
		}
	}
	dnnl_primitive_desc_destroy(pd);
	for (b = 0; w->small && b < cm->n_buckets; b++)
		if ((ref >> b & 1) && !be_cpu_ref_with(c, l, w, &w->small_md, cm->buckets[b]))
			w->small_mask |= 1u << b;
	if (!w->small_mask) {
		free(w->small);
		w->small = NULL;
	}
	be_log(BE_LOG_INFO, "backend=%s model=%s layer=%d ref_buckets=0x%x small_buckets=0x%x "
	       "msg=\"the packed weights layout runs oneDNN's reference code at some batch "
	       "buckets: %s\"", be_cpu_name(c), cm->m->name, li, ref, w->small_mask,
	       w->small_mask ? "a second copy in the layout their matmul prefers serves them"
			     : "no layout found without it");
}

/*
 * Choose layer li's weights layout (backends[].weights_layout): plain, or
 * what its matmul prefers at the largest bucket (rows), reordered once,
 * or (auto) the faster of the two per bucket.  Layers that may not read
 * the plain array (be_cpu_plain_ok) are always packed.  On any failure the
 * plain layout is kept (slower, never wrong).  Measured on mlp-large's
 * INT8 variant on an AVX2 EPYC without VNNI (bench/int8.c, oneDNN 2.6, 2
 * threads): the plain u8 x s8 chain ran 1.4-1.6x faster than the packed
 * one at batch 1, 8 and 64.
 */
static void be_cpu_pack(struct be_cpu *c, const struct be_cpu_model *cm, int li, int rows,
			struct be_cpu_weights *w)
{	/* w: sdt, ddt and oscale already set (be_cpu_plan) */
	const struct layer *l = &cm->m->layers[li];
	dnnl_dims_t wd = { w->k, l->out };
	dnnl_data_type_t dt = l->qweight ? dnnl_s8 : dnnl_f32;
	const void *plain = be_cpu_plain(l, w);
	dnnl_memory_desc_t any, md[4], plain_md;
	dnnl_primitive_desc_t pd = NULL;
	const dnnl_memory_desc_t *pref;

	dnnl_memory_desc_init_by_tag(&w->md, 2, wd, dt, dnnl_ba);
	plain_md = w->md;
	w->packed = NULL;
	if ((c->wlayout == BE_WLAYOUT_PLAIN && be_cpu_plain_ok(l, w)) ||
	    dnnl_memory_desc_init_by_tag(&any, 2, wd, dt, dnnl_format_tag_any) ||
	    be_cpu_matmul(c, l, w, rows, &any, NULL, md, &pd))
		return;
	pref = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	if (pref && !dnnl_memory_desc_equal(pref, &w->md)) {
		void *buf = be_cpu_alloc(dnnl_memory_desc_get_size(pref));

		if (buf && be_cpu_reorder(c, &w->md, plain, pref, buf) == dnnl_success) {
			w->md = *pref;
			w->packed = buf;
		} else {
			free(buf);
		}
	}
	dnnl_primitive_desc_destroy(pd);
	if (w->packed && c->wlayout == BE_WLAYOUT_AUTO && be_cpu_plain_ok(l, w))
		be_cpu_pack_choose(c, cm, li, &plain_md, plain, w);
	if (w->packed)
		be_cpu_small_layout(c, cm, li, &plain_md, plain, w);
}

/* Whether bias and ReLU run inside the primitive: always but for dynamic
 * INT8 layers, whose per-row input scale applies before the bias. */
static bool be_cpu_fused(const struct layer *l)
{
	return !l->qweight || l->in_scale > 0;
}

static bool be_cpu_static_q8(const struct layer *l)
{
	return l->kind == LAYER_DENSE && l->qweight && l->in_scale > 0;
}

/*
 * Whether layer i of m writes the next layer's s8/u8 input itself: both
 * static INT8 dense layers.  The output scale then folds in the next
 * layer's input scale (y / s_next = acc x s_in x w_scale / s_next + bias /
 * s_next) and oneDNN rounds and saturates: the activations stay 8-bit
 * between layers instead of f32 out, quantized again in C.  oneDNN rounds
 * half to even in float32, model_q8 half away from zero in float64: a value
 * within rounding error of a .5 boundary may land one step apart.
 */

/* Whether INT8 dense layer i takes its s8 input as u8 halves (struct
 * be_cpu_weights): no VNNI, and the input may be negative. */
static bool be_cpu_split(const struct be_cpu *c, const struct model *m, int i)
{
	return !c->vnni && m->layers[i].qweight && !model_after_relu(m, i);
}

/* ... and a split next layer is fed from C (rowk_q8), not by oneDNN. */
static bool be_cpu_chained(const struct be_cpu *c, const struct model *m, int i)
{
	return be_cpu_static_q8(&m->layers[i]) && i + 1 < m->n_layers &&
	       be_cpu_static_q8(&m->layers[i + 1]) && !be_cpu_split(c, m, i + 1);
}

/* [W | -W] of layer l, [out][2 in], for a split layer.  NULL: no memory. */
static int8_t *be_cpu_split_weights(const struct layer *l)
{
	int8_t *w = be_cpu_alloc((size_t)l->out * 2 * (size_t)l->in);

	if (w)
		quant_split_weights(l, w);
	return w;
}

/*
 * Types and output scales of every dense layer of cm (struct
 * be_cpu_weights), before the weights are packed (the packed layout
 * depends on the types: s8 x s8 weights carry oneDNN's compensation).
 */
static int be_cpu_plan(const struct be_cpu *c, struct be_cpu_model *cm, char **err)
{
	const struct model *m = cm->m;

	for (int i = 0; i < m->n_layers; i++) {
		const struct layer *l = &m->layers[i];
		struct be_cpu_weights *w = &cm->wei[i];

		w->sdt = w->ddt = dnnl_f32;
		w->k = l->in;
		if (l->kind != LAYER_DENSE || !l->qweight)
			continue;
		w->split = be_cpu_split(c, m, i);
		w->sdt = model_after_relu(m, i) || w->split ? dnnl_u8 : dnnl_s8;
		if (be_cpu_chained(c, m, i))
			w->ddt = model_after_relu(m, i + 1) ? dnnl_u8 : dnnl_s8;
		if (w->split) {
			w->k = 2 * l->in;
			w->splitw = be_cpu_split_weights(l);
		}
		w->oscale = malloc(sizeof(float) * (size_t)l->out);
		if (!w->oscale || (w->split && !w->splitw)) {
			*err = be_strdupf("cpu backend: model %s: out of memory (scales)", m->name);
			return -ENOMEM;
		}
		/* s32 accumulator x w_scale (x the static input scale, / the
		 * next layer's when chained) */
		for (int k = 0; k < l->out; k++)
			w->oscale[k] = (float)((double)l->wscale[k] *
					       (l->in_scale > 0 ? l->in_scale : 1.0) /
					       (w->ddt != dnnl_f32 ? m->layers[i + 1].in_scale : 1.0));
	}
	return 0;
}

/*
 * oneDNN 2.x int8 matmul computes dst = output_scale * (acc + bias) (the
 * bias joins the s32 accumulator's scale; measured: an f32 bias given as
 * is came out scaled), so a static INT8 layer's bias is stored divided by
 * its output scale, once per model.
 */
static int be_cpu_qbias(const struct layer *l, struct be_cpu_weights *w, char **err)
{
	if (!l->qweight || !(l->in_scale > 0) || !l->bias)
		return 0;
	w->qbias = be_cpu_alloc(sizeof(float) * (size_t)l->out);
	if (!w->qbias) {
		*err = be_strdupf("cpu backend: out of memory (bias)");
		return -ENOMEM;
	}
	for (int k = 0; k < l->out; k++)
		w->qbias[k] = (float)((double)l->bias[k] / ((double)l->in_scale * l->wscale[k]));
	return 0;
}

/* Layer l's weights at bucket index b: their layout (NULL: the plain
 * array's) and data: the small-bucket copy, the packed one, or the model's
 * array. */
static const dnnl_memory_desc_t *be_cpu_wmd_at(const struct be_cpu_weights *w, int b)
{
	if (w->small && (w->small_mask >> b & 1))
		return &w->small_md;
	return w->packed && !(w->plain_mask >> b & 1) ? &w->md : NULL;
}

static const void *be_cpu_wdata_at(const struct layer *l, const struct be_cpu_weights *w, int b)
{
	if (w->small && (w->small_mask >> b & 1))
		return w->small;
	return w->packed && !(w->plain_mask >> b & 1) ? w->packed : be_cpu_plain(l, w);
}

/* Primitives and buffers of one slot. */
static int be_cpu_load_slot(struct be_cpu *c, struct be_cpu_model *cm,
			    struct be_cpu_slot_model *sm, char **err)
{
	const struct model *m = cm->m;
	size_t buf_bytes = sizeof(float) * (size_t)m->max_batch_size * (size_t)m->max_width;
	size_t scratch_bytes = 0;
	dnnl_memory_desc_t md[4];
	dnnl_status_t st;
	int b, i;

	sm->buf[0] = be_cpu_alloc(buf_bytes);
	sm->buf[1] = be_cpu_alloc(buf_bytes);
	sm->exec = calloc((size_t)cm->n_buckets * (size_t)m->n_layers, sizeof(*sm->exec));
	if (m->variant == VARIANT_INT8) {
		/* x 2: a split layer's input is twice its width */
		sm->qbuf[0] = be_cpu_alloc((size_t)m->max_batch_size * 2 * (size_t)m->max_width);
		sm->qbuf[1] = be_cpu_alloc((size_t)m->max_batch_size * 2 * (size_t)m->max_width);
		sm->rscale = be_cpu_alloc(sizeof(float) * (size_t)m->max_batch_size);
	}
	if (!sm->buf[0] || !sm->buf[1] || !sm->exec ||
	    (m->variant == VARIANT_INT8 && (!sm->qbuf[0] || !sm->qbuf[1] || !sm->rscale))) {
		*err = be_strdupf("cpu backend: model %s: out of memory", m->name);
		return -ENOMEM;
	}

	/* Pass 1: primitives, data memory bound to the slot's buffers. */
	for (b = 0; b < cm->n_buckets; b++) {
		for (i = 0; i < m->n_layers; i++) {
			const struct layer *l = &m->layers[i];
			struct be_cpu_exec *e = &sm->exec[b * m->n_layers + i];
			const dnnl_memory_desc_t *smd;
			int p = cm->src_buf[i];

			if (l->kind != LAYER_DENSE)
				continue;
			st = be_cpu_matmul(c, l, &cm->wei[i], cm->buckets[b],
					   be_cpu_wmd_at(&cm->wei[i], b), e, md, NULL);
			if (!st)	/* INT8: the quantized copy of buf[p] */
				st = dnnl_memory_create(&e->src, &md[0], c->engine,
							l->qweight ? sm->qbuf[cm->qsrc[i]] : sm->buf[p]);
			if (!st)	/* oneDNN only reads weights and bias */
				st = dnnl_memory_create(&e->wei, &md[1], c->engine,
							(void *)be_cpu_wdata_at(l, &cm->wei[i], b));
			if (!st && l->bias && be_cpu_fused(l))
				st = dnnl_memory_create(&e->bias, &md[2], c->engine,
							cm->wei[i].qbias ? cm->wei[i].qbias
									 : (void *)l->bias);
			if (!st)	/* chained INT8: the next layer's s8/u8 input */
				st = dnnl_memory_create(&e->dst, &md[3], c->engine,
							cm->wei[i].ddt != dnnl_f32
							? sm->qbuf[1 - cm->qsrc[i]] : (void *)sm->buf[1 - p]);
			if (st) {
				*err = be_strdupf("cpu backend: model %s: layers[%d] (%d x %d, batch %d): %s",
						  m->name, i, l->out, l->in, cm->buckets[b],
						  dnnl_status2str(st));
				return -EINVAL;
			}
			smd = be_cpu_scratch_md(e->prim);
			if (smd && dnnl_memory_desc_get_size(smd) > scratch_bytes)
				scratch_bytes = dnnl_memory_desc_get_size(smd);
		}
	}

	/* Pass 2: one scratchpad for the slot, the size of the largest need. */
	if (scratch_bytes) {
		sm->scratchpad = be_cpu_alloc(scratch_bytes);
		if (!sm->scratchpad) {
			*err = be_strdupf("cpu backend: model %s: out of memory (scratchpad %zu bytes)",
					  m->name, scratch_bytes);
			return -ENOMEM;
		}
	}
	for (i = 0; i < cm->n_buckets * m->n_layers; i++) {
		struct be_cpu_exec *e = &sm->exec[i];
		const dnnl_memory_desc_t *smd;

		if (!e->prim)
			continue;
		smd = be_cpu_scratch_md(e->prim);
		if (!smd || dnnl_memory_desc_get_size(smd) == 0)
			continue;
		st = dnnl_memory_create(&e->scratch, smd, c->engine, sm->scratchpad);
		if (st)
			return be_cpu_err(err, -EINVAL, "scratchpad memory", st);
	}
	return 0;
}

/*
 * be_cpu_load_model - see backend.h.  Builds every slot's primitives for
 * every bucket; loading the same model again is a no-op.  The model must
 * outlive the backend (or at least its last submit): weights are used in place.
 */
static int be_cpu_load_model(struct backend *be, const struct model *m, char **err)
{
	struct be_cpu *c = be->priv;
	struct be_cpu_model *cm;
	int i, p, s, rows, rc = 0, saved_threads;
	unsigned long fp;

	if (!c) {
		*err = be_strdupf("cpu backend: not open");
		return -ENODEV;
	}
	if (!m) {
		*err = be_strdupf("cpu backend: no such model");
		return -EINVAL;
	}
	pthread_mutex_lock(&c->load_lock);
	for (cm = atomic_load_explicit(&c->models, memory_order_acquire); cm; cm = cm->next)
		if (cm->m == m)
			goto out_unlock;
	if (m->max_batch_size < 1 || m->n_layers < 1) {
		*err = be_strdupf("cpu backend: model %s: nothing to execute", m->name);
		rc = -EINVAL;
		goto out_unlock;
	}

	cm = calloc(1, sizeof(*cm));
	if (!cm)
		goto out_nomem;
	cm->m = m;
	for (rows = 1; rows < m->max_batch_size && cm->n_buckets < BE_CPU_MAX_BUCKETS - 1; rows *= 2)
		cm->buckets[cm->n_buckets++] = rows;
	cm->buckets[cm->n_buckets++] = m->max_batch_size;
	cm->src_buf = calloc((size_t)m->n_layers, sizeof(*cm->src_buf));
	cm->qsrc = calloc((size_t)m->n_layers, sizeof(*cm->qsrc));
	cm->slots = calloc((size_t)c->n_slots, sizeof(*cm->slots));
	cm->wei = calloc((size_t)m->n_layers, sizeof(*cm->wei));
	if (!cm->src_buf || !cm->qsrc || !cm->slots || !cm->wei)
		goto out_nomem;
	for (i = 0, p = 0; i < m->n_layers; i++) {
		cm->src_buf[i] = p;
		cm->qsrc[i] = p;	/* the s8/u8 buffers ping-pong in step */
		if (m->layers[i].kind == LAYER_DENSE)
			p = 1 - p;
	}
	cm->out_buf = p;
	rc = be_cpu_plan(c, cm, err);
	if (rc) {
		be_cpu_model_free(cm, c->n_slots);
		goto out_unlock;
	}

	/* Primitives pick their blocking for the thread count they will run with. */
	saved_threads = omp_get_max_threads();
	omp_set_num_threads(c->threads);
	fp = be_cpu_flush_enter();	/* the layout probes time what submit will run */
	for (i = 0; i < m->n_layers && !rc; i++)
		if (m->layers[i].kind == LAYER_DENSE) {
			be_cpu_pack(c, cm, i, m->max_batch_size, &cm->wei[i]);
			rc = be_cpu_qbias(&m->layers[i], &cm->wei[i], err);
		}
	for (s = 0; s < c->n_slots && !rc; s++)
		rc = be_cpu_load_slot(c, cm, &cm->slots[s], err);
	be_cpu_flush_leave(fp);
	omp_set_num_threads(saved_threads);
	if (rc) {
		be_cpu_model_free(cm, c->n_slots);
		goto out_unlock;
	}
	cm->next = atomic_load_explicit(&c->models, memory_order_relaxed);
	atomic_store_explicit(&c->models, cm, memory_order_release);
out_unlock:
	pthread_mutex_unlock(&c->load_lock);
	return rc;

out_nomem:
	be_cpu_model_free(cm, c->n_slots);
	pthread_mutex_unlock(&c->load_lock);
	*err = be_strdupf("cpu backend: model %s: out of memory", m->name);
	return -ENOMEM;
}


/*
 * The team for this file's own parallel loops: the slot's threads, but one
 * (the worker alone) under ThreadSanitizer.  libgomp's barriers are not
 * instrumented, so a value an OpenMP thread wrote here and the worker (or
 * whoever frees the buffer after joining it) reads later looks like a race
 * with no stack TSan can restore to match tests/tsan.supp; oneDNN's
 * threads touch only uninstrumented code and never show.
 */
#if defined(__has_feature)	/* clang (tests/fuzz/build.sh) */
#if __has_feature(thread_sanitizer)
#define BE_CPU_TSAN 1
#endif
#endif
#ifdef __SANITIZE_THREAD__		/* gcc */
#define BE_CPU_TSAN 1
#endif
#ifdef BE_CPU_TSAN
#define BE_CPU_TEAM(c) 1
#else
#define BE_CPU_TEAM(c) ((c)->threads)
#endif

/*
 * Whether a row loop runs on the calling thread, without an OpenMP region:
 * one row, or a team of one.  libgomp ends every parallel region, a team
 * of one's too (an if clause that is false still makes one), at its team
 * barrier with a futex wake-all: one syscall per region.  Measured on
 * digits (1 worker x 1 thread, softmax the only C loop): that wake was 0.75
 * of the gateway's futex calls, one per batch.
 */
static inline bool be_cpu_serial(const struct be_cpu *c, int rows)
{
	(void)c;	/* unused where BE_CPU_TEAM is 1 (TSan) */
	return rows < 2 || BE_CPU_TEAM(c) < 2;
}

/*
 * Row r of the s8/u8 input of INT8 layer l from its float32 values x: the
 * layer's static scale, or the row's own (max|x| / 127, into rscale[r]:
 * per row, not per batch, so that an answer never depends on what it was
 * batched with).  mx: max |x| when the caller has it, < 0 to compute it.
 */
static void be_cpu_quantize_row(const struct layer *l, const struct be_cpu_weights *w,
				const float *x, float mx, void *q, float *rscale, int r)
{
	double s = l->in_scale;

	if (!(s > 0)) {
		if (mx < 0)
			mx = rowk_absmax(x, l->in);
		/* model_q8_scale's arithmetic, on the float max */
		s = (float)(mx > 0 && isfinite(mx) ? (double)mx / MODEL_Q8_MAX : 1.0);
	}
	rscale[r] = (float)s;
	rowk_q8(x, l->in, (float)(1.0 / s), (char *)q + (size_t)r * w->k,
		      w->split ? ROWK_Q8_SPLIT : w->sdt == dnnl_u8 ? ROWK_Q8_U8 : ROWK_Q8_S8);
}

/*
 * The s8/u8 input of dense layer k (INT8) from x, the float32 activations:
 * rows live rows, the padding rows up to bucket zero.  Rows are split over
 * the slot's OpenMP threads, as the matmuls are.
 */
static void be_cpu_quantize(struct be_cpu *c, const struct be_cpu_model *cm, int k,
			    const float *x, int rows, int bucket, struct be_cpu_slot_model *sm)
{
	const struct layer *l = &cm->m->layers[k];
	const struct be_cpu_weights *w = &cm->wei[k];
	void *q = sm->qbuf[cm->qsrc[k]];

if (be_cpu_serial(c, rows)) {
		for (int r = 0; r < rows; r++)
			be_cpu_quantize_row(l, w, x + (size_t)r * l->in, -1.f, q, sm->rscale, r);
	} else {
#pragma omp parallel for num_threads(BE_CPU_TEAM(c)) schedule(static)
		for (int r = 0; r < rows; r++)
			be_cpu_quantize_row(l, w, x + (size_t)r * l->in, -1.f, q, sm->rscale, r);
	}
	memset((char *)q + (size_t)rows * w->k, 0, (size_t)(bucket - rows) * (size_t)w->k);
}

/* Row r of be_cpu_requantize: scale, bias, ReLU; nl's input when q (nl
 * INT8 dense). */
static inline void be_cpu_requantize_row(const struct layer *l, const struct layer *nl,
					 const struct be_cpu_weights *nw, float *y, int r,
					 void *q, float *rscale)
{
	float *yr = y + (size_t)r * l->out;
	float mx = rowk_dequant(yr, l->bias, l->out, rscale[r], l->act == ACT_RELU);

	if (q)
		be_cpu_quantize_row(nl, nw, yr, mx, q, rscale, r);
}

/*
 * After dynamic INT8 layer k's matmul (y holds acc x w_scale): each row x
 * its input scale, + bias, ReLU; and when layer k + 1 is INT8 dense, its
 * s8/u8 input straight away, from the row while it is in cache (true
 * returned: the input is ready).
 */
static bool be_cpu_requantize(struct be_cpu *c, const struct be_cpu_model *cm, int k, float *y,
			      int rows, int bucket, struct be_cpu_slot_model *sm)
{
	const struct model *m = cm->m;
	const struct layer *l = &m->layers[k];
	const struct layer *nl = k + 1 < m->n_layers ? &m->layers[k + 1] : NULL;
	bool next = nl && nl->kind == LAYER_DENSE && nl->qweight;
	const struct be_cpu_weights *nw = next ? &cm->wei[k + 1] : NULL;
	void *q = next ? sm->qbuf[cm->qsrc[k + 1]] : NULL;

if (be_cpu_serial(c, rows)) {
		for (int r = 0; r < rows; r++)
			be_cpu_requantize_row(l, nl, nw, y, r, q, sm->rscale);
	} else {
#pragma omp parallel for num_threads(BE_CPU_TEAM(c)) schedule(static)
		for (int r = 0; r < rows; r++)
			be_cpu_requantize_row(l, nl, nw, y, r, q, sm->rscale);
	}
	if (next)
		memset((char *)q + (size_t)rows * nw->k, 0, (size_t)(bucket - rows) * (size_t)nw->k);
	return next;
}

/* Softmax over each of rows rows of width w, in place, rows split over the
 * slot's OpenMP threads; only the live rows (the padding is never read). */
static void be_cpu_softmax(struct be_cpu *c, float *x, int rows, int w)
{
if (be_cpu_serial(c, rows)) {
		for (int r = 0; r < rows; r++)
			rowk_softmax(x + (size_t)r * w, w);
		return;
	}
#pragma omp parallel for num_threads(BE_CPU_TEAM(c)) schedule(static)
	for (int r = 0; r < rows; r++)
		rowk_softmax(x + (size_t)r * w, w);
}

/* Index of the bucket that runs rows (1 <= rows <= max_batch_size). */
static int be_cpu_bucket(const struct be_cpu_model *cm, int rows)
{
	int bi = 0;

	while (bi < cm->n_buckets - 1 && cm->buckets[bi] < rows)
		bi++;
	return bi;
}

/* be_cpu_forward's work, on the calling thread's floating-point mode. */
static const char *be_cpu_chain(struct be_cpu *c, int slot, struct be_cpu_model *cm,
				struct be_cpu_slot_model *sm, int rows, int bi, dnnl_status_t *st)
{
	const struct model *m = cm->m;
	bool qready = false;	/* the next INT8 layer's s8/u8 input is written */
	int k;

	/* Zero padding keeps the unused rows finite (no NaN/denormal garbage). */
	memset(sm->buf[0] + (size_t)rows * m->in_dim, 0,
	       sizeof(float) * (size_t)(cm->buckets[bi] - rows) * m->in_dim);
	for (k = 0; k < m->n_layers; k++) {
		struct be_cpu_exec *e = &sm->exec[bi * m->n_layers + k];
		const struct layer *l = &m->layers[k];

		if (l->kind == LAYER_SOFTMAX) {
			be_cpu_softmax(c, sm->buf[cm->src_buf[k]], rows, l->in);
			continue;
		}
		if (l->qweight && !qready)
			be_cpu_quantize(c, cm, k, sm->buf[cm->src_buf[k]], rows, cm->buckets[bi], sm);
		*st = be_cpu_exec_run(c->streams[slot], e);
		if (*st != dnnl_success)
			return "matmul";
		qready = cm->wei[k].ddt != dnnl_f32;	/* chained: written by oneDNN */
		if (!be_cpu_fused(l))
			qready = be_cpu_requantize(c, cm, k, sm->buf[1 - cm->src_buf[k]], rows,
						   cm->buckets[bi], sm);
	}
	return NULL;
}

/* Run the layer chain over rows gathered rows of cm on slot sm, at bucket
 * index bi (be_cpu_bucket), subnormals flushed (be_cpu_flush_enter).  NULL,
 * or which primitive failed (with *st). */
static const char *be_cpu_forward(struct be_cpu *c, int slot, struct be_cpu_model *cm,
				  struct be_cpu_slot_model *sm, int rows, int bi,
				  dnnl_status_t *st)
{
	unsigned long fp = be_cpu_flush_enter();
	const char *failed = be_cpu_chain(c, slot, cm, sm, rows, bi, st);

	be_cpu_flush_leave(fp);
	return failed;
}

static struct be_cpu_model *be_cpu_find(struct be_cpu *c, const struct model *m)
{
	struct be_cpu_model *cm;

	for (cm = atomic_load_explicit(&c->models, memory_order_acquire); cm; cm = cm->next)
		if (cm->m == m)
			return cm;
	return NULL;
}

/*
 * This thread's CPU time in ns (0 if the clock fails): a worker's sample for
 * be_cpu_note_run.  A syscall (~0.7 us here), unlike be_now_ns's vDSO read.
 */
static uint64_t be_cpu_thread_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A worker run's sample for be_cpu_note_run: the CPU time since cpu0 when
 * cpu_clock, unless either clock read failed (0); else wall_ns. */
static uint64_t be_cpu_run_ns(bool cpu_clock, uint64_t cpu0, uint64_t wall_ns)
{
	uint64_t cpu1 = cpu_clock && cpu0 ? be_cpu_thread_ns() : 0;

	return cpu1 >= cpu0 && cpu1 ? cpu1 - cpu0 : wall_ns;
}

/*
 * Fold one run of a bucket (t ns) into its estimate *rn, the input of
 * be_cpu_inline: 3/4 old + 1/4 new.  What the estimate is for is the
 * batch's own cost, not the pauses around it: a worker yields to the loops
 * (SCHED_BATCH) and, on a core it shares with one, is preempted by every
 * request that arrives; a CPU quota (a container's cpu limit) stops any
 * thread for milliseconds.  So with inline_us on, a worker's t is its
 * thread's CPU time (here false; be_cpu_run), and a batch run here (on the
 * loop: two CPU-clock syscalls would cost as much as the batch) is timed
 * by the wall clock with t counted at most twice the estimate: one paused
 * batch does not move its bucket to the worker; a lasting slowdown raises
 * the estimate by at most 1.25x a batch (5 to 20 us in 7 batches), and on
 * the worker the CPU clock decides whether it comes back.  A bucket's
 * first estimate comes from a worker: a run here does not seed it (an
 * inline batch whose cancelled slices left fewer rows lands in a bucket
 * that may not have run).  Timed in wall time alone, a bucket measured
 * once during a pause stayed on the worker.
 */
static void be_cpu_note_run(_Atomic uint64_t *rn, uint64_t t, bool here)
{
	uint64_t old = atomic_load_explicit(rn, memory_order_relaxed);

	if (here && !old)
		return;
	if (t < 1)
		t = 1;	/* 0 means "not run yet" */
	if (here && t > 2 * old)
		t = 2 * old;
	atomic_store_explicit(rn, old ? (3 * old + t) / 4 : t, memory_order_relaxed);
}

/*
 * Run b on its slot: on a worker thread, or here (true: inline on the
 * thread that submitted it, be_cpu_run_here).  Slices of requests
 * cancelled (or expired) when it starts are neither read nor written (their
 * status and output stay as they are); the others get status 0, or 500
 * with b->errmsg when oneDNN fails.
 */
static void be_cpu_run(struct be_cpu *c, struct batch *b, bool here)
{
	const struct model *m = b->model;
	struct be_cpu_model *cm = be_cpu_find(c, m);
	struct be_cpu_slot_model *sm = &cm->slots[b->slot];
	bool live[b->n_slices > 0 ? b->n_slices : 1];
	dnnl_status_t st = dnnl_success;
	const char *failed = NULL;
	int i, bi = 0, rows = 0;
	uint64_t t0, t1, cpu0 = 0;
	bool cpu_clock = !here && c->inline_ns;	/* be_cpu_note_run */
	const float *out;

	/* Which slices run is decided once, here: one whose request is
	 * cancelled later still gets its output (it is ours until done). */
	for (i = 0; i < b->n_slices; i++)
		live[i] = be_slice_live(&b->slices[i]);	/* cancelled, expired: never run */
	if (cpu_clock)
		cpu0 = be_cpu_thread_ns();
	t0 = be_now_ns();
	b->exec_start_ns = t0;
	for (i = 0; i < b->n_slices; i++) {
		const struct infer_slice *sl = &b->slices[i];

		if (!live[i])
			continue;
		memcpy(sm->buf[0] + (size_t)rows * m->in_dim,
		       sl->input,
		       sizeof(float) * (size_t)sl->rows * m->in_dim);
		rows += sl->rows;
	}
	if (rows > 0)
		failed = be_cpu_forward(c, b->slot, cm, sm, rows, bi = be_cpu_bucket(cm, rows),
					&st);

	/* Scatter. */
	t1 = be_now_ns();
	if (rows > 0 && !failed)
		be_cpu_note_run(&cm->run_ns[bi], be_cpu_run_ns(cpu_clock, cpu0, t1 - t0), here);
	out = sm->buf[cm->out_buf];
	if (failed)
		snprintf(b->errmsg, sizeof(b->errmsg), "cpu backend: oneDNN %s failed: %s", failed,
			 dnnl_status2str(st));
	for (i = 0; i < b->n_slices; i++) {
		struct infer_slice *sl = &b->slices[i];
		size_t n = (size_t)sl->rows * m->out_dim;

		if (!live[i])
			continue;
		sl->status = failed ? 500 : 0;
		if (!failed)
			memcpy(sl->output, out, sizeof(float) * n);
		out += n;
	}
	b->exec_end_ns = t1;
	atomic_fetch_add_explicit(&c->batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->rows, (uint64_t)rows, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->busy_ns, t1 - t0, memory_order_relaxed);
}

/*
 * Compute yields to the event loops: a worker (and the OpenMP threads it
 * spawns, which inherit this) runs SCHED_BATCH at the backend's nice value,
 * so a loop woken by a request preempts a running batch at once instead of
 * waiting out its time slice - a 429 or a health check is not queued behind
 * milliseconds of matrix multiply.  Best effort: a refusal is logged.
 */
static void be_cpu_lower_priority(const struct backend *be)
{
	struct sched_param sp = { 0 };
	int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);

	if (rc == 0 && setpriority(PRIO_PROCESS, (id_t)gettid(), be->conf.nice) != 0)
		rc = errno;
	if (rc)
		fprintf(stderr, "backend=%s msg=\"cannot lower worker priority (SCHED_BATCH, "
			"nice %d): %s\"\n", be->conf.name ? be->conf.name : "cpu", be->conf.nice,
			strerror(rc));
}

/*
 * A worker's OpenMP team (threads_per_worker), not the worker itself,
 * flushed for good (be_cpu_flush_enter): team threads run only compute.
 * be_cpu_forward flushes the worker while it computes, so threads the team
 * adds then inherit the mode; this covers the ones made before.
 */
static void be_cpu_flush_team(const struct be_cpu *c)
{
	(void)c;	/* unused where BE_CPU_TEAM is 1 (TSan) */
	if (BE_CPU_TEAM(c) < 2)
		return;
#pragma omp parallel num_threads(BE_CPU_TEAM(c))
	if (omp_get_thread_num() > 0)
		(void)be_cpu_flush_enter();
}

struct be_cpu_worker_arg {
	struct be_cpu *c;
	int idx;
};

static void *be_cpu_worker_main(void *arg)
{
	struct be_cpu *c = ((struct be_cpu_worker_arg *)arg)->c;
	int idx = ((struct be_cpu_worker_arg *)arg)->idx;
	char name[16];

	free(arg);
	/* "igw-<backend>.<worker>", cut to the 15 characters Linux keeps */
	snprintf(name, sizeof(name), "igw-%.6s.%d", c->be->conf.name ? c->be->conf.name : "cpu",
		 idx);
	pthread_setname_np(pthread_self(), name);
	be_cpu_lower_priority(c->be);
	omp_set_num_threads(c->threads);
	be_cpu_flush_team(c);
	pthread_mutex_lock(&c->q_mu);
	for (;;) {
		struct batch *b = c->q_head;

		if (!b) {
			if (c->q_stop)
				break;
			pthread_cond_wait(&c->q_cv, &c->q_mu);
			continue;
		}
		c->q_head = b->be_next;
		if (!c->q_head)
			c->q_tail = NULL;
		pthread_mutex_unlock(&c->q_mu);
		if (b->topup)	/* what arrived while this batch waited for us */
			b->topup(b);
		be_cpu_run(c, b, false);
		b->done(b);	/* b is not ours any more (backend.h) */
		pthread_mutex_lock(&c->q_mu);
	}
	pthread_mutex_unlock(&c->q_mu);
	return NULL;
}

static int be_cpu_workers_start(struct be_cpu *c, char **err)
{
	c->workers = calloc((size_t)c->n_slots, sizeof(*c->workers));
	if (!c->workers) {
		*err = be_strdupf("cpu backend: out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_slots; i++) {
		struct be_cpu_worker_arg *a = malloc(sizeof(*a));
		int rc = a ? 0 : ENOMEM;

		if (a) {
			*a = (struct be_cpu_worker_arg){ c, i };
			rc = pthread_create(&c->workers[i], NULL, be_cpu_worker_main, a);
		}
		if (rc) {
			free(a);
			*err = be_strdupf("cpu backend: cannot start worker %d: %s", i, strerror(rc));
			be_cpu_workers_stop(c);	/* joins the ones started */
			return -rc;
		}
		c->n_workers = i + 1;
	}
	return 0;
}

/* Stop and join the workers; batches still queued run first. */
static void be_cpu_workers_stop(struct be_cpu *c)
{
	pthread_mutex_lock(&c->q_mu);
	c->q_stop = true;
	pthread_cond_broadcast(&c->q_cv);
	pthread_mutex_unlock(&c->q_mu);
	for (int i = 0; i < c->n_workers; i++)
		pthread_join(c->workers[i], NULL);
	c->n_workers = 0;
	free(c->workers);
	c->workers = NULL;
}

/*
 * Whether a batch of rows of cm runs on the thread that submits it
 * (backends[].inline_us): its bucket has run before and took at most
 * inline_ns, smoothed (be_cpu_note_run: CPU time, not pauses).  Below
 * that the hand-off costs more than the batch: the worker's futex wake, two
 * context switches when loop and worker share a core, and the loop's
 * eventfd wake (perf on digits, 1 loop + 1 worker on one core: a third of
 * the server's cycles in the scheduler's switch code).
 */
static bool be_cpu_inline(const struct be_cpu *c, struct be_cpu_model *cm, int rows)
{
	uint64_t t;

	if (!c->inline_ns || !cm)
		return false;
	t = atomic_load_explicit(&cm->run_ns[be_cpu_bucket(cm, rows)], memory_order_relaxed);
	return t && t <= c->inline_ns;
}

/* Run b on the calling thread (an event loop, the timer, a worker that just
 * finished one) as a team of one, then done (be_cpu_inline). */
static void be_cpu_run_here(struct be_cpu *c, struct batch *b)
{
	int saved = omp_get_max_threads();

	if (saved != 1)
		omp_set_num_threads(1);
	atomic_fetch_add_explicit(&c->inlined, 1, memory_order_relaxed);
	be_cpu_run(c, b, true);
	if (saved != 1)
		omp_set_num_threads(saved);
	b->done(b);	/* b is not ours any more (backend.h) */
}

/*
 * be_cpu_submit - see backend.h.  Checks b and queues it to the workers
 * (b->done comes from a worker thread), or runs it here when it is that
 * small (be_cpu_inline: done before submit returns).  -ENOENT (model not loaded here),
 * -EINVAL (bad batch, slot out of range) or -ENODEV leave b untouched and
 * do not call done.
 */
static int be_cpu_submit(struct backend *be, struct batch *b)
{
	struct be_cpu *c = be->priv;
	const struct model *m = b->model;
	struct be_cpu_model *cm;
	int i, rows = 0;

	if (!c)
		return -ENODEV;
	if (b->slot < 0 || b->slot >= c->n_slots || b->n_slices < 0)
		return -EINVAL;
	if (!(cm = be_cpu_find(c, m)))
		return -ENOENT;
	for (i = 0; i < b->n_slices; i++) {
		const struct infer_slice *sl = &b->slices[i];

		if (sl->rows < 1 || sl->row0 < 0 || !sl->input || !sl->output)
			return -EINVAL;
		rows += sl->rows;
	}
	if (rows > m->max_batch_size)
		return -EINVAL;
	if (be_cpu_inline(c, cm, rows)) {
		be_cpu_run_here(c, b);
		return 0;
	}
	b->be_next = NULL;
	pthread_mutex_lock(&c->q_mu);
	if (c->q_tail)
		c->q_tail->be_next = b;
	else
		c->q_head = b;
	c->q_tail = b;
	pthread_cond_signal(&c->q_cv);
	pthread_mutex_unlock(&c->q_mu);
	return 0;
}

/* be_cpu_caps - see backend.h: every bucket up to the model's max_batch_size. */
static void be_cpu_caps(const struct backend *be, const struct model *m, struct be_caps *out)
{
	out->max_batch = m->max_batch_size;
	out->n_variants = 0;
}

/* be_cpu_unload_model - see backend.h.  Freed in close (a worker may still
 * be walking past it). */
static void be_cpu_unload_model(struct backend *be, const struct model *m)
{
	struct be_cpu *c = be->priv;
	struct be_cpu_model *_Atomic *pp, *cm;

	if (!c)
		return;
	pthread_mutex_lock(&c->load_lock);
	for (pp = &c->models; (cm = atomic_load(pp)); pp = &cm->next)
		if (cm->m == m) {
			atomic_store_explicit(pp, cm->next, memory_order_release);
			cm->next = c->retired;
			c->retired = cm;
			break;
		}
	pthread_mutex_unlock(&c->load_lock);
}

static void be_cpu_stats(const struct backend *be, struct backend_stats *out)
{
	const struct be_cpu *c = be->priv;

	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	out->batches = atomic_load_explicit(&c->batches, memory_order_relaxed);
	out->rows = atomic_load_explicit(&c->rows, memory_order_relaxed);
	out->busy_ns = atomic_load_explicit(&c->busy_ns, memory_order_relaxed);
	out->inline_batches = atomic_load_explicit(&c->inlined, memory_order_relaxed);
	out->up = be_state_get(be) == BE_UP;
}

/* be_cpu_close - see backend.h.  No batch in flight and no submit may
 * follow; joins the workers. */
static void be_cpu_close(struct backend *be)
{
	struct be_cpu *c = be->priv;
	struct be_cpu_model *cm, *next;

	if (!c)
		return;
	be_cpu_workers_stop(c);
	for (cm = atomic_load(&c->models); cm; cm = next) {
		next = cm->next;
		be_cpu_model_free(cm, c->n_slots);
	}
	for (cm = c->retired; cm; cm = next) {
		next = cm->next;
		be_cpu_model_free(cm, c->n_slots);
	}
	be_cpu_free(be, c);
}

/*
 * be_cpu_parse_conf - see backend.h: threads_per_worker (OpenMP threads in
 * one batch, 1..256), nice (the workers' nice value, 0..19),
 * weights_layout (auto | packed | plain, enum be_wlayout) and inline_us
 * (0..1000; the default is the caller's conf->inline_us).
 */
int be_cpu_parse_conf(struct backend_conf *conf, const struct be_conf_src *src, char **err)
{
	int64_t tpw = conf->threads_per_slot > 0 ? conf->threads_per_slot : 1, nice = conf->nice;
	int64_t inl = conf->inline_us;

	char *layout = NULL;
	int rc;

	if (src->get_int(src->ctx, "threads_per_worker", 1, 256, &tpw, err) ||
	    src->get_int(src->ctx, "nice", 0, 19, &nice, err) ||
	    src->get_int(src->ctx, "inline_us", 0, 1000, &inl, err) ||
	    src->get_str(src->ctx, "weights_layout", &layout, err))
		return -EINVAL;
	rc = layout ? be_wlayout_parse(layout, &conf->weights_layout) : 0;
	free(layout);
	if (rc)
		return src->error(src->ctx, err, "weights_layout: expected auto, packed or plain");
	conf->threads_per_slot = (int)tpw;
	conf->nice = (int)nice;
	conf->inline_us = (int)inl;
	return 0;
}

const struct backend_ops be_cpu_ops = {
	.kind = "cpu",
	.open = be_cpu_open,
	.load_model = be_cpu_load_model,
	.unload_model = be_cpu_unload_model,
	.caps = be_cpu_caps,
	.submit = be_cpu_submit,
	.parse_conf = be_cpu_parse_conf,
	.stats = be_cpu_stats,
	.close = be_cpu_close,
};

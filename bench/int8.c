/*
 * int8.c - INT8 against FP32 on the CPU, in one run: raw oneDNN matmul
 * chains (INT8 typed as the CPU backend types them, vs f32) and infergw's
 * CPU backend (the INT8 variant made by infergw-quantize vs the FP32
 * model), at each batch size.
 *
 * usage: int8 [-t THREADS] [-s SLICE_SECS] [-r SLICES] [-b 1,8,64] [-p VARIANT] FP32_DIR INT8_DIR
 *
 * -p VARIANT (igw-f32, igw-s8, raw-f32, raw-s8): run only that variant for
 * SLICES x SLICE_SECS per batch size and print its median, and its GFLOP
 * per second of process CPU time (all threads; with OMP_WAIT_POLICY=passive
 * no barrier spinning counts, and the neighbours' load on a shared machine
 * does not); for `perf record`, whose profile would otherwise mix the four,
 * and for A/B builds.
 *
 * Variants, each timed on B rows per execution:
 *   igw-f32   be_cpu_ops.submit of one request of B rows on the FP32 model
 *             (gather + matmul chain + softmax + scatter);
 *   igw-s8    the same on the INT8 variant (the backend quantizes each
 *             layer's input to 8 bits, 8-bit matmul with s32 accumulation,
 *             f32 out);
 *   raw-f32   oneDNN f32 matmul primitives for exactly B rows, bias + ReLU
 *             fused;
 *   raw-s8    oneDNN INT8 matmul primitives with the INT8 file's weights,
 *             typed as the backend types them (raw_q8_types: u8 inputs
 *             after a ReLU; without VNNI the first layer's input as u8
 *             halves against [W | -W]), per-channel output scales and ReLU
 *             fused, 8-bit out between layers (requantized in the
 *             primitive), f32 out of the last: the best plain use of the
 *             library's INT8 path on this CPU.
 * Each raw chain reads its weights in the faster layout for its batch size,
 * reordered into format_any or in place (raw_build_best: what the backend's
 * weights_layout auto picks per bucket).
 * The raw chains are matmuls only (no softmax, no input copy): the kernel
 * rate the backend's figures are to be read against.  Slices interleave
 * as in bench/kernel.c (shared machine: per-slice ratios from neighbouring
 * slices, medians reported).  GFLOP/s counts the FP32 model's 2*in*out per
 * row for every variant, so the columns compare as rows per second.
 *
 * Output: a markdown table on stdout, then "RESULT B igw_f32 igw_s8 raw_f32
 * raw_s8 igw_ratio raw_ratio" lines (GFLOP/s medians, median paired ratios).
 */
#define _GNU_SOURCE
#include "backend.h"
#include "infer.h"
#include "model/model.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bench/bench_be.h"
#include "bench/bench_raw.h"
#include "bench/bench_util.h"

#define MAX_BS 16
/* ---- raw oneDNN chains (bench/bench_raw.h) ---- */

/*
 * The types of INT8 layer i as the CPU backend runs it (backends/cpu/cpu.c,
 * struct be_cpu_weights): src u8 after a ReLU; else s8 on VNNI, or, without
 * VNNI, u8 halves against [W | -W] (K = 2 x in: s8 x s8 would saturate
 * there).  dst u8 between layers (the backend's chained static layers),
 * f32 out of the last.
 */
static struct raw_types raw_q8_types(const struct model *q, int i, int last, bool vnni)
{
	struct raw_types t = { .wei = dnnl_s8 };

	t.split = !vnni && !model_after_relu(q, i);
	t.src = model_after_relu(q, i) || t.split ? dnnl_u8 : dnnl_s8;
	t.dst = i == last ? dnnl_f32 : model_after_relu(q, i + 1) || !vnni ? dnnl_u8 : dnnl_s8;
	return t;
}

/*
 * The dense layers of m (FP32) or q (INT8, when q is not NULL) as oneDNN
 * matmuls for rows rows (no softmax, no input copy), weights reordered
 * into format_any (pack) or read in place.  INT8: the backend's types
 * (raw_q8_types), kept 8-bit between layers with the channel's weight
 * scale as output scale (the values are not what a calibrated model would
 * use; the kernel's speed does not depend on them).
 */
static void raw_build(struct raw_chain *rc, const struct model *m, const struct model *q,
		      int rows, bool pack, dnnl_engine_t eng, dnnl_stream_t strm)
{
	int i, last = -1;
	bool vnni = be_cpu_vnni();

	raw_init(rc, m, rows, pack);
	for (i = 0; i < m->n_layers; i++)
		if (m->layers[i].kind == LAYER_DENSE)
			last = i;
	for (i = 0; i <= last; i++) {
		struct raw_types t = q ? raw_q8_types(q, i, last, vnni) : RAW_F32;

		if (m->layers[i].kind == LAYER_DENSE)
			raw_dense(rc, i, q ? &q->layers[i] : &m->layers[i], &t, eng, strm);
	}
}

/* Seconds per run of rc: the best of a few after one to warm up. */
static double raw_time(struct raw_chain *rc, dnnl_stream_t strm)
{
	double best = 1e30;

	raw_exec(rc, strm);
	for (int i = 0; i < 5; i++) {
		double t0 = bench_now_s();

		raw_exec(rc, strm);
		best = fmin(best, bench_now_s() - t0);
	}
	return best;
}

/*
 * raw_build with the faster weight layout for this batch size, packed
 * (format_any) or plain (tag ba), as the CPU backend's weights_layout auto
 * times it per bucket: on an AVX2 machine oneDNN 2.6's packed f32 matmul is
 * the slower at batch 64 (bench/kernel.sh), so a packed-only anchor would
 * flatter the backend.
 */
static void raw_build_best(struct raw_chain *rc, const struct model *m, const struct model *q,
			   int rows, dnnl_engine_t eng, dnnl_stream_t strm)
{
	struct raw_chain plain;
	double tp, tq;

	raw_build(rc, m, q, rows, true, eng, strm);
	raw_build(&plain, m, q, rows, false, eng, strm);
	tq = raw_time(rc, strm);
	tp = raw_time(&plain, strm);
	fprintf(stderr, "int8: raw %s batch %d: packed %.3f ms, plain %.3f ms a run\n",
		q ? "INT8" : "f32", rows, tq * 1e3, tp * 1e3);
	if (tp < tq) {
		raw_free(rc);
		*rc = plain;
	} else {
		raw_free(&plain);
	}
}

static const char *raw_layout(const struct raw_chain *rc)
{
	return rc->packed_w ? "packed" : "plain";
}

/* ---- infergw backend ---- */

static void igw_run(struct backend *be, const struct model *m, int rows, const float *in,
		    float *out)
{
	struct infer_req r = { .model = m, .rows = rows, .input = in, .output = out };

	bench_be_run("int8", be, m, &r);
}

/* ---- measurement ---- */

enum variant { V_IGW_F32, V_IGW_S8, V_RAW_F32, V_RAW_S8, N_VARIANTS };

struct ctx {
	const struct model *m, *q;
	struct backend *be;
	struct raw_chain *raw[2];	/* f32, s8 for the current batch size */
	int rows;
	long runs;		/* run_once calls */
	float *in, *out;
	dnnl_stream_t strm;
};

static void run_once(struct ctx *c, enum variant v)
{
	c->runs++;
	switch (v) {
	case V_IGW_F32: igw_run(c->be, c->m, c->rows, c->in, c->out); break;
	case V_IGW_S8: igw_run(c->be, c->q, c->rows, c->in, c->out); break;
	case V_RAW_F32: raw_exec(c->raw[0], c->strm); break;
	default: raw_exec(c->raw[1], c->strm); break;
	}
}

static double slice(struct ctx *c, enum variant v, double secs, double *ms_per)
{
	double t0 = bench_now_s(), t;
	long it = 0;

	do {
		run_once(c, v);
		it++;
		t = bench_now_s() - t0;
	} while (t < secs);
	*ms_per = t * 1e3 / it;
	return c->m->flops_per_row * c->rows * it / t / 1e9;
}

static const char *const variant_names[N_VARIANTS] = { "igw-f32", "igw-s8", "raw-f32",
							   "raw-s8" };

static void usage(void)
{
	fprintf(stderr, "usage: int8 [-t THREADS] [-s SLICE_SECS] [-r SLICES] [-b 1,8,64] "
		"[-p igw-f32|igw-s8|raw-f32|raw-s8] FP32_DIR INT8_DIR\n");
	exit(2);
}

static struct model *load(const char *dir)
{
	char *err = NULL;
	struct model *m = model_load(dir, &err);

	if (!m) {
		fprintf(stderr, "int8: %s\n", err ? err : "model_load failed");
		exit(1);
	}
	return m;
}

int main(int argc, char **argv)
{
	int threads = 2, rounds = 15, bs[MAX_BS], n_bs, opt, i, k, v, r, max_rows = 0, only = -1;
	double secs = 0.05;
	const char *blist = "1,8,64";
	char *err = NULL;
	struct model *m, *q;
	struct backend be;
	dnnl_engine_t eng;
	static double g[MAX_BS][N_VARIANTS][BENCH_MAX_SLICES], msp[MAX_BS][N_VARIANTS][BENCH_MAX_SLICES];
	static struct raw_chain chains[MAX_BS][2];
	double *ref;

	while ((opt = getopt(argc, argv, "t:s:r:b:p:")) != -1) {
		switch (opt) {
		case 'p':
			for (only = 0; only < N_VARIANTS && strcmp(optarg, variant_names[only]); only++)
				;
			if (only == N_VARIANTS)
				usage();
			break;
		case 't': threads = atoi(optarg); break;
		case 's': secs = atof(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'b': blist = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 2 || threads < 1 || rounds < 1 || rounds > BENCH_MAX_SLICES || secs <= 0)
		usage();
	n_bs = bench_parse_list(blist, bs, MAX_BS);
	m = load(argv[optind]);
	q = load(argv[optind + 1]);
	if (m->variant != VARIANT_FP32 || q->variant != VARIANT_INT8 || m->in_dim != q->in_dim ||
	    m->out_dim != q->out_dim || m->n_layers != q->n_layers) {
		fprintf(stderr, "int8: %s must be FP32 and %s its INT8 variant\n", argv[optind],
			argv[optind + 1]);
		return 1;
	}
	for (k = 0; k < n_bs; k++) {
		if (bs[k] < 1 || bs[k] > m->max_batch_size || bs[k] > q->max_batch_size) {
			fprintf(stderr, "int8: batch %d outside 1..%d\n", bs[k], m->max_batch_size);
			return 1;
		}
		max_rows = bs[k] > max_rows ? bs[k] : max_rows;
	}

	omp_set_num_threads(threads);
	bench_be_open("int8", &be, threads);
	if (be_cpu_ops.load_model(&be, m, &err) ||
	    be_cpu_ops.load_model(&be, q, &err)) {
		fprintf(stderr, "int8: %s\n", err ? err : "cpu backend failed");
		return 1;
	}
	omp_set_num_threads(threads);
	BENCH_DNNL_CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));

	struct ctx c = { .m = m, .q = q, .be = &be };

	BENCH_DNNL_CHECK(dnnl_stream_create(&c.strm, eng, dnnl_stream_default_flags));
	c.in = bench_xalloc(sizeof(float) * (size_t)max_rows * m->in_dim);
	c.out = bench_xalloc(sizeof(float) * (size_t)max_rows * m->out_dim);
	ref = bench_xalloc(sizeof(double) * (size_t)max_rows * m->out_dim);
	srand(1);
	for (i = 0; i < max_rows * m->in_dim; i++)
		c.in[i] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;

	printf("model %s: %d layers, %d -> %d, %.1f MFLOP/row; threads_per_slot %d (OpenMP); "
	       "%d interleaved slices of %.3f s per variant and batch size\n\n",
	       m->name, m->n_layers, m->in_dim, m->out_dim, m->flops_per_row / 1e6, threads, rounds,
	       secs);

	/* Correctness: the backend's INT8 answers against the INT8 reference
	 * (the raw s8 chain is not checked: its scales are not a model's). */
	if (only < 0)	/* profiling: the float64 reference would dominate the profile */
		model_forward_ref(q, c.in, max_rows, ref);
	for (k = 0; k < n_bs && only < 0; k++) {
		double d = 0;

		c.rows = bs[k];
		run_once(&c, V_IGW_S8);
		for (i = 0; i < bs[k] * m->out_dim; i++)
			d = fmax(d, fabs(c.out[i] - ref[i]));
		fprintf(stderr, "int8: batch %d: max |infergw int8 - int8 reference| %.3g\n", bs[k], d);
		if (d > 1e-3)
			printf("WARNING: batch %d: infergw INT8 differs from the INT8 reference by "
			       "%.3g\n\n", bs[k], d);
	}

	for (k = 0; k < n_bs; k++) {
		raw_build_best(&chains[k][0], m, NULL, bs[k], eng, c.strm);
		raw_build_best(&chains[k][1], m, q, bs[k], eng, c.strm);
	}
	for (k = 0; k < n_bs; k++) {
		c.rows = bs[k];
		c.raw[0] = &chains[k][0];
		c.raw[1] = &chains[k][1];
		if (only >= 0) {	/* profiling: one variant alone */
			struct timespec c0, c1;
			double fl;

			run_once(&c, only);
			c.runs = 0;
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
			for (r = 0; r < rounds; r++)
				g[k][only][r] = slice(&c, only, secs, &msp[k][only][r]);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
			fl = m->flops_per_row * bs[k] * (double)c.runs / 1e9;
			printf("%s batch %d: %.2f GFLOP/s (median of %d slices), %.2f GFLOP per CPU "
			       "second\n", variant_names[only], bs[k], bench_median(g[k][only], rounds),
			       rounds, fl / ((double)(c1.tv_sec - c0.tv_sec) +
					     (c1.tv_nsec - c0.tv_nsec) * 1e-9));
			continue;
		}
		for (v = 0; v < N_VARIANTS; v++)
			run_once(&c, v);	/* warm caches, OpenMP team */
		for (r = 0; r < rounds; r++) {
			for (v = 0; v < N_VARIANTS; v++) {
				int vv = (v + r) % N_VARIANTS;	/* rotate: none always first */

				g[k][vv][r] = slice(&c, vv, secs, &msp[k][vv][r]);
			}
			fprintf(stderr, "int8: batch %2d slice %2d: infergw f32 %7.2f s8 %7.2f, raw "
				"f32 %7.2f s8 %7.2f GFLOP/s\n", bs[k], r + 1, g[k][V_IGW_F32][r],
				g[k][V_IGW_S8][r], g[k][V_RAW_F32][r], g[k][V_RAW_S8][r]);
		}
	}

	if (only >= 0)
		goto out;	/* nothing to compare */
	double qi[MAX_BS], qr[MAX_BS];

	printf("| batch | infergw FP32 GFLOP/s | infergw INT8 GFLOP/s | **infergw INT8 / FP32** "
	       "| raw oneDNN f32 GFLOP/s (weights) | raw oneDNN INT8 GFLOP/s (weights) "
	       "| **raw INT8 / f32** | ms/batch infergw FP32 / INT8 |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (k = 0; k < n_bs; k++) {
		qi[k] = bench_ratio_median(g[k][V_IGW_S8], g[k][V_IGW_F32], rounds);
		qr[k] = bench_ratio_median(g[k][V_RAW_S8], g[k][V_RAW_F32], rounds);
		printf("| %d | %.2f | %.2f | **%.2fx** | %.2f (%s) | %.2f (%s) | **%.2fx** | %.3f / %.3f |\n",
		       bs[k], bench_median(g[k][V_IGW_F32], rounds), bench_median(g[k][V_IGW_S8], rounds), qi[k],
		       bench_median(g[k][V_RAW_F32], rounds), raw_layout(&chains[k][0]),
		       bench_median(g[k][V_RAW_S8], rounds), raw_layout(&chains[k][1]), qr[k],
		       bench_median(msp[k][V_IGW_F32], rounds), bench_median(msp[k][V_IGW_S8], rounds));
	}
	printf("\nraw INT8 types (as the CPU backend's, backends/cpu/cpu.c): %s\n",
	       be_cpu_vnni() ? "VNNI: s8 input to the first layer, u8 after each ReLU, u8 between layers"
			  : "no VNNI: the first layer's input as two u8 halves against [W | -W] (K = 2 x in), "
			    "u8 after each ReLU and between layers (s8 x s8 saturates without VNNI: docs/int8.md)");
	printf("\n");
	for (k = 0; k < n_bs; k++)
		printf("RESULT %d %.3f %.3f %.3f %.3f %.3f %.3f\n", bs[k],
		       bench_median(g[k][V_IGW_F32], rounds), bench_median(g[k][V_IGW_S8], rounds),
		       bench_median(g[k][V_RAW_F32], rounds), bench_median(g[k][V_RAW_S8], rounds), qi[k], qr[k]);

out:
	for (k = 0; k < n_bs; k++) {
		raw_free(&chains[k][0]);
		raw_free(&chains[k][1]);
	}
	dnnl_stream_destroy(c.strm);
	dnnl_engine_destroy(eng);
	be_cpu_ops.close(&be);
	free(c.in);
	free(c.out);
	free(ref);
	model_free(q);
	model_free(m);
	return 0;
}

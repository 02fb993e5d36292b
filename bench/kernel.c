/*
 * kernel.c - CPU kernel throughput: infergw's CPU backend (be_cpu_ops) against
 * the same matmul chain done directly with raw oneDNN primitives, in GFLOP/s.
 *
 * usage: kernel [-t THREADS] [-s SLICE_SECS] [-r SLICES] [-b 1,8,64] MODEL_DIR
 *
 * For every batch size B the program times repeated executions of the whole
 * model (dense layers + softmax) on B rows:
 *   infergw  be_cpu_ops.submit of one request of B rows (slots 1,
 *            threads_per_slot THREADS), gather + chain + softmax + scatter
 *            (THREADS 1: on the calling thread, no hand-off: bench_be.h);
 *   raw-any  the anchor: oneDNN matmul primitives (bias, fused ReLU) created
 *            for exactly B rows with weights in format_any, nn.Linear's
 *            weights reordered once, ahead of time, into the layout each
 *            primitive asks for, then a oneDNN softmax primitive: the best
 *            plain use of the library, no gateway code;
 *   raw-ba   as raw-any but reading nn.Linear's [out][in] array in place
 *            (tag ba, no repacking): what skipping the reorder costs.
 * On a shared machine throughput swings several-fold within seconds (another
 * process on one of the cores stalls a whole OpenMP team), so the variants
 * are measured in short interleaved slices: for each B, SLICES times, each
 * variant runs for SLICE_SECS (order rotating).  A variant's figure is its
 * median slice (and its best slice); the anchor ratio is the median of the
 * per-slice ratios infergw/raw, each from neighbouring slices that saw the
 * same machine.  GFLOP/s = model->flops_per_row * B * iterations / seconds.
 *
 * Output: a markdown table on stdout, then one line per batch size
 * "RESULT B infergw raw_any raw_ba infergw/raw_any infergw/raw_ba" (GFLOP/s
 * medians, median paired ratios) for scripts, and "CPU B infergw raw_any
 * raw_ba": GFLOP per second of the process's CPU time (all its threads),
 * medians over slices: on a machine shared with other work a slice's wall
 * time includes the time the neighbours took, its CPU time does not (run
 * with OMP_WAIT_POLICY=passive so that threads waiting at a barrier sleep
 * instead of spinning CPU time away).
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
/* ---- raw oneDNN chain (bench/bench_raw.h) ---- */

/* Append m's softmax layer l, in place on the activations. */
static void raw_softmax(struct raw_chain *rc, const struct layer *l, dnnl_engine_t eng)
{
	struct raw_step *s = &rc->steps[rc->n_steps++];
	dnnl_dims_t dd = { rc->rows, l->in };
	dnnl_primitive_desc_t pd;
	dnnl_memory_desc_t md;
	dnnl_softmax_desc_t sd;
	dnnl_memory_t mm;

	BENCH_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&md, 2, dd, dnnl_f32, dnnl_ab));
	BENCH_DNNL_CHECK(dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, &md, 1));
	BENCH_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &sd, NULL, eng, NULL));
	BENCH_DNNL_CHECK(dnnl_primitive_create(&s->prim, pd));
	dnnl_primitive_desc_destroy(pd);
	mm = raw_mem(rc, eng, &md, rc->buf[rc->cur]);
	s->args[s->n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, mm };
	s->args[s->n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, mm };
}

/* Build the whole model (dense layers, softmax) for `rows` rows; pack =
 * reorder the weights to format_any (raw-any), else read them in place
 * (raw-ba). */
static void raw_build(struct raw_chain *rc, const struct model *m, int rows, bool pack,
		      dnnl_engine_t eng, dnnl_stream_t strm)
{
	raw_init(rc, m, rows, pack);
	for (int i = 0; i < m->n_layers; i++) {
		if (m->layers[i].kind == LAYER_SOFTMAX)
			raw_softmax(rc, &m->layers[i], eng);
		else
			raw_dense(rc, i, &m->layers[i], &RAW_F32, eng, strm);
	}
}

/* Where the answer of the last run is. */
static const float *raw_out(const struct raw_chain *rc)
{
	return rc->buf[rc->cur];
}

/* One forward pass: copy the input in (like the backend's gather), run. */
static void raw_run(struct raw_chain *rc, const struct model *m, const float *in, dnnl_stream_t strm)
{
	memcpy(rc->buf[0], in, sizeof(float) * (size_t)rc->rows * m->in_dim);
	raw_exec(rc, strm);
}

/* ---- infergw backend ---- */

static void igw_run(struct backend *be, const struct model *m, struct infer_req *r)
{
	bench_be_run("kernel", be, m, r);
}

/* ---- measurement ---- */

enum variant { V_IGW, V_RAW_BA, V_RAW_ANY, N_VARIANTS };

struct ctx {
	const struct model *m;
	struct backend *be;
	struct infer_req req;
	struct raw_chain raw[2];	/* ba, any */
	float *in;
	dnnl_stream_t strm;
};

static void run_once(struct ctx *c, enum variant v)
{
	if (v == V_IGW)
		igw_run(c->be, c->m, &c->req);
	else
		raw_run(&c->raw[v - 1], c->m, c->in, c->strm);
}

/* One slice: run variant v for at least secs seconds (and 1 iteration);
 * returns GFLOP/s. */
static double cpu_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double slice(struct ctx *c, enum variant v, int rows, double secs, double *ms_per,
		    double *cpu_gflops)
{
	double t0, c0, t;
	long it = 0;

	t0 = bench_now_s();
	c0 = cpu_now_s();
	do {
		run_once(c, v);
		it++;
		t = bench_now_s() - t0;
	} while (t < secs);
	*ms_per = t * 1e3 / it;
	*cpu_gflops = c->m->flops_per_row * rows * it / (cpu_now_s() - c0) / 1e9;
	return c->m->flops_per_row * rows * it / t / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: kernel [-t THREADS] [-s SLICE_SECS] [-r SLICES] [-b 1,8,64] MODEL_DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int threads = 2, rounds = 25, bs[MAX_BS], n_bs = 0, opt, i, k, v, r;
	double secs = 0.05;
	const char *blist = "1,8,64";
	char *err = NULL;
	struct model *m;
	struct backend be;
	dnnl_engine_t eng;
	static double g[MAX_BS][N_VARIANTS][BENCH_MAX_SLICES], msp[MAX_BS][N_VARIANTS][BENCH_MAX_SLICES];
	static double cg[MAX_BS][N_VARIANTS][BENCH_MAX_SLICES];	/* per CPU second */

	while ((opt = getopt(argc, argv, "t:s:r:b:")) != -1) {
		switch (opt) {
		case 't': threads = atoi(optarg); break;
		case 's': secs = atof(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'b': blist = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || threads < 1 || rounds < 1 || rounds > BENCH_MAX_SLICES || secs <= 0)
		usage();
	n_bs = bench_parse_list(blist, bs, MAX_BS);

	m = model_load(argv[optind], &err);
	if (!m) {
		fprintf(stderr, "kernel: %s\n", err ? err : "model_load failed");
		return 1;
	}
	for (k = 0; k < n_bs; k++)
		if (bs[k] < 1 || bs[k] > m->max_batch_size) {
			fprintf(stderr, "kernel: batch %d outside 1..%d\n", bs[k], m->max_batch_size);
			return 1;
		}

	/* Same OpenMP team size for both: the backend sets it per submit, the
	 * raw chain inherits it from here. */
	omp_set_num_threads(threads);

	bench_be_open("kernel", &be, threads);
	if (be_cpu_ops.load_model(&be, m, &err)) {
		fprintf(stderr, "kernel: %s\n", err ? err : "cpu backend failed");
		return 1;
	}
	omp_set_num_threads(threads);

	BENCH_DNNL_CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));

	struct ctx c = { .m = m, .be = &be };
	int max_rows = 0;

	for (k = 0; k < n_bs; k++)
		max_rows = bs[k] > max_rows ? bs[k] : max_rows;
	BENCH_DNNL_CHECK(dnnl_stream_create(&c.strm, eng, dnnl_stream_default_flags));
	c.in = bench_xalloc(sizeof(float) * (size_t)max_rows * m->in_dim);
	srand(1);
	for (i = 0; i < max_rows * m->in_dim; i++)
		c.in[i] = (float)rand() / (float)RAND_MAX;
	c.req.model = m;
	c.req.input = c.in;
	c.req.output = bench_xalloc(sizeof(float) * (size_t)max_rows * m->out_dim);

	printf("model %s: %d layers, %d -> %d, %.1f MFLOP/row; threads_per_slot %d (OpenMP); "
	       "%d interleaved slices of %.3f s per variant and batch size\n\n",
	       m->name, m->n_layers, m->in_dim, m->out_dim, m->flops_per_row / 1e6, threads, rounds,
	       secs);

	struct raw_chain chains[MAX_BS][2];

	for (k = 0; k < n_bs; k++) {
		raw_build(&chains[k][0], m, bs[k], 0, eng, c.strm);
		raw_build(&chains[k][1], m, bs[k], 1, eng, c.strm);
	}

	/* Correctness: the backend and the raw chains agree. */
	for (k = 0; k < n_bs; k++) {
		double d_ba = 0, d_any = 0;

		c.req.rows = bs[k];
		c.raw[0] = chains[k][0];
		c.raw[1] = chains[k][1];
		run_once(&c, V_IGW);
		run_once(&c, V_RAW_BA);
		run_once(&c, V_RAW_ANY);
		for (i = 0; i < bs[k] * m->out_dim; i++) {
			d_ba = fmax(d_ba, fabs(c.req.output[i] - raw_out(&chains[k][0])[i]));
			d_any = fmax(d_any, fabs(c.req.output[i] - raw_out(&chains[k][1])[i]));
		}
		fprintf(stderr, "kernel: batch %d: max |infergw - raw-ba| %.3g, |infergw - raw-any| %.3g\n",
			bs[k], d_ba, d_any);
		if (d_ba > 1e-3 || d_any > 1e-3)
			printf("WARNING: batch %d: outputs differ: max |infergw - raw-ba| %.3g, "
			       "|infergw - raw-any| %.3g\n\n", bs[k], d_ba, d_any);
	}

	for (k = 0; k < n_bs; k++) {
		c.req.rows = bs[k];
		c.raw[0] = chains[k][0];
		c.raw[1] = chains[k][1];
		for (v = 0; v < N_VARIANTS; v++)
			run_once(&c, v);	/* warm caches, OpenMP team */
		for (r = 0; r < rounds; r++) {
			for (v = 0; v < N_VARIANTS; v++) {
				/* Rotate the order so none always runs first. */
				int vv = (v + r) % N_VARIANTS;

				g[k][vv][r] = slice(&c, vv, bs[k], secs, &msp[k][vv][r],
						    &cg[k][vv][r]);
			}
			fprintf(stderr, "kernel: batch %2d slice %2d: infergw %7.2f raw-ba %7.2f "
				"raw-any %7.2f GFLOP/s\n", bs[k], r + 1, g[k][V_IGW][r],
				g[k][V_RAW_BA][r], g[k][V_RAW_ANY][r]);
		}
	}

	double q_ba[MAX_BS], q_any[MAX_BS];

	printf("| batch | infergw GFLOP/s | raw oneDNN GFLOP/s | **infergw / raw** "
	       "| raw oneDNN, unpacked (ba) GFLOP/s | infergw / unpacked | infergw ms/batch "
	       "| best slice: infergw / raw / unpacked |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (k = 0; k < n_bs; k++) {
		q_ba[k] = bench_ratio_median(g[k][V_IGW], g[k][V_RAW_BA], rounds);
		q_any[k] = bench_ratio_median(g[k][V_IGW], g[k][V_RAW_ANY], rounds);
		printf("| %d | %.2f | %.2f | **%.2fx** | %.2f | %.2fx | %.3f | %.1f / %.1f / %.1f |\n",
		       bs[k], bench_median(g[k][V_IGW], rounds), bench_median(g[k][V_RAW_ANY], rounds), q_any[k],
		       bench_median(g[k][V_RAW_BA], rounds), q_ba[k], bench_median(msp[k][V_IGW], rounds),
		       bench_maxof(g[k][V_IGW], rounds), bench_maxof(g[k][V_RAW_ANY], rounds),
		       bench_maxof(g[k][V_RAW_BA], rounds));
	}
	printf("\n");
	for (k = 0; k < n_bs; k++)
		printf("RESULT %d %.3f %.3f %.3f %.3f %.3f\n", bs[k], bench_median(g[k][V_IGW], rounds),
		       bench_median(g[k][V_RAW_ANY], rounds), bench_median(g[k][V_RAW_BA], rounds), q_any[k],
		       q_ba[k]);
	for (k = 0; k < n_bs; k++)
		printf("CPU %d %.3f %.3f %.3f\n", bs[k], bench_median(cg[k][V_IGW], rounds),
		       bench_median(cg[k][V_RAW_ANY], rounds), bench_median(cg[k][V_RAW_BA], rounds));

	for (k = 0; k < n_bs; k++) {
		raw_free(&chains[k][0]);
		raw_free(&chains[k][1]);
	}
	dnnl_stream_destroy(c.strm);
	dnnl_engine_destroy(eng);
	be_cpu_ops.close(&be);
	free(c.in);
	free(c.req.output);
	model_free(m);
	return 0;
}

/*
 * cpu_profile.c - measure the service-time profile t(n) of infergw's CPU
 * backend (be_cpu_ops) on one model, for the simulator's profiles/cpu.conf.
 *
 * usage: cpu_profile [-t THREADS_PER_SLOT] [-p CONCURRENT_SLOTS] [-n REPS]
 *                    [-b 1,2,4,...] MODEL_DIR
 *
 * The backend is opened with slots = P and threads_per_slot = T.  For each
 * batch size B, P threads (one per slot) each submit REPS batches of one
 * request of B rows at the same time, so with P > 1 the slots contend for
 * memory bandwidth and caches the way a busy backend's workers do.  The time
 * of a batch is exec_end_ns - exec_start_ns as the backend reports it: the
 * very figure the scheduler feeds to svc_observe.  Two warm-up batches per
 * slot and size are dropped.
 *
 * Output: "B median_us p10_us p90_us min_us" per batch size, then the
 * least-squares line through the medians ("fit a_us b_us").
 */
#define _GNU_SOURCE
#include "backend.h"
#include "infer.h"
#include "model/model.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench/bench_util.h"

#define MAX_BS 16
#define MAX_P 16
#define MAX_REPS 1000

struct slot_ctx {
	struct backend *be;
	const struct model *m;
	int slot, rows, reps;
	float *in, *out;
	uint64_t t[MAX_REPS + 2];
	pthread_barrier_t *bar;
};

/* The CPU backend completes on its own worker thread: owner is a flag. */
static void on_done(struct batch *b)
{
	atomic_store_explicit((_Atomic int *)b->owner, 1, memory_order_release);
}

static void *slot_main(void *arg)
{
	struct slot_ctx *c = arg;
	struct infer_req r;
	struct infer_slice sl = { .r = &r };

	pthread_barrier_wait(c->bar);
	for (int i = 0; i < c->reps + 2; i++) {
		struct batch b = { .model = c->m, .be = c->be, .slot = c->slot, .n_slices = 1,
				   .slices = &sl, .rows = c->rows, .done = on_done };
		_Atomic int done = 0;

		memset(&r, 0, sizeof(r));
		r.model = c->m;
		r.rows = c->rows;
		r.input = c->in;
		r.output = c->out;
		sl.rows = c->rows;
		sl.input = r.input;	/* the rows' views, as the scheduler sets them */
		sl.output = r.output;
		atomic_store(&r.state, REQ_RUNNING);
		b.owner = &done;
		if (c->be->ops->submit(c->be, &b)) {
			fprintf(stderr, "cpu_profile: submit failed\n");
			exit(1);
		}
		while (!atomic_load_explicit(&done, memory_order_acquire))
			sched_yield();
		if (sl.status) {
			fprintf(stderr, "cpu_profile: batch failed: %s\n", b.errmsg);
			exit(1);
		}
		c->t[i] = b.exec_end_ns - b.exec_start_ns;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int threads = 1, par = 1, reps = 20, bs[MAX_BS], n_bs = 0, opt;
	const char *blist = "1,2,4,8,16,32,64";
	double med[MAX_BS];
	struct backend be = { 0 };
	struct backend_conf conf = { 0 };
	struct model *m;
	char *err = NULL;

	while ((opt = getopt(argc, argv, "t:p:n:b:")) != -1) {
		switch (opt) {
		case 't': threads = atoi(optarg); break;
		case 'p': par = atoi(optarg); break;
		case 'n': reps = atoi(optarg); break;
		case 'b': blist = optarg; break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || threads < 1 || par < 1 || par > MAX_P || reps < 1 ||
	    reps > MAX_REPS)
		goto usage;
	n_bs = bench_parse_list(blist, bs, MAX_BS);
	m = model_load(argv[optind], &err);
	if (!m) {
		fprintf(stderr, "cpu_profile: %s\n", err ? err : "model_load failed");
		return 1;
	}
	conf.name = "profile";
	conf.kind = BE_CPU;
	conf.slots = par;
	conf.threads_per_slot = threads;
	conf.cost = 1.0;
	be.ops = &be_cpu_ops;
	be.conf = conf;
	if (be_cpu_ops.open(&be, &conf, &err) || be_cpu_ops.load_model(&be, m, &err)) {
		fprintf(stderr, "cpu_profile: %s\n", err ? err : "cpu backend failed");
		return 1;
	}
	printf("# model %s: %.1f MFLOP/row; slots %d running concurrently, threads_per_slot %d, "
	       "%d batches per slot and size (2 warm-up dropped)\n",
	       m->name, m->flops_per_row / 1e6, par, threads, reps);
	printf("# rows median_us p10_us p90_us min_us\n");
	for (int k = 0; k < n_bs; k++) {
		struct slot_ctx ctx[MAX_P];
		pthread_t th[MAX_P];
		pthread_barrier_t bar;
		static uint64_t all[MAX_P * MAX_REPS];
		int na = 0;

		if (bs[k] < 1 || bs[k] > m->max_batch_size) {
			fprintf(stderr, "cpu_profile: batch %d outside 1..%d\n", bs[k],
				m->max_batch_size);
			return 1;
		}
		pthread_barrier_init(&bar, NULL, par);
		for (int s = 0; s < par; s++) {
			ctx[s] = (struct slot_ctx){ .be = &be, .m = m, .slot = s, .rows = bs[k],
						    .reps = reps, .bar = &bar };
			ctx[s].in = calloc((size_t)bs[k] * m->in_dim, sizeof(float));
			ctx[s].out = calloc((size_t)bs[k] * m->out_dim, sizeof(float));
			for (int i = 0; i < bs[k] * m->in_dim; i++)
				ctx[s].in[i] = (float)((i * 7919) % 1000) / 1000.0f;
			pthread_create(&th[s], NULL, slot_main, &ctx[s]);
		}
		for (int s = 0; s < par; s++) {
			pthread_join(th[s], NULL);
			for (int i = 2; i < reps + 2; i++)
				all[na++] = ctx[s].t[i];
			free(ctx[s].in);
			free(ctx[s].out);
		}
		pthread_barrier_destroy(&bar);
		qsort(all, na, sizeof(all[0]), cmp_u64);
		med[k] = all[na / 2] / 1e3;
		printf("%d %.1f %.1f %.1f %.1f\n", bs[k], med[k], all[na / 10] / 1e3,
		       all[(na * 9) / 10] / 1e3, all[0] / 1e3);
		fflush(stdout);
	}
	{
		double sx = 0, sy = 0, sxx = 0, sxy = 0, a, b;

		for (int k = 0; k < n_bs; k++) {
			sx += bs[k];
			sy += med[k];
			sxx += (double)bs[k] * bs[k];
			sxy += bs[k] * med[k];
		}
		b = n_bs > 1 ? (n_bs * sxy - sx * sy) / (n_bs * sxx - sx * sx) : 0;
		a = (sy - b * sx) / n_bs;
		printf("fit %.1f %.3f\n", a, b);
	}
	be_cpu_ops.close(&be);
	model_free(m);
	return 0;
usage:
	fprintf(stderr, "usage: cpu_profile [-t THREADS] [-p SLOTS] [-n REPS] [-b 1,2,4] MODEL_DIR\n");
	return 2;
}

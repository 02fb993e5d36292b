/*
 * scale_ramp.c - does the autoscaling signal lead the SLO misses?
 *
 * A pool of a fixed number of replicas (what is deployed before the
 * autoscaler reacts), each running `slots` batches at once, batch time
 * t(B) = a + b*B, greedy batching (a free slot takes up to max_batch of
 * the oldest waiting requests, as the gateway does with
 * max_queue_delay_us 0), one FIFO for the pool (the router's least-wait
 * pick approximated by "any free slot").  Poisson arrivals whose rate
 * ramps linearly from --from to --to times the pool's capacity (rows/s at
 * full batches) over --ramp-s seconds.  A request that has waited past
 * its objective is dropped (504) and counts as a miss, as does one
 * answered late.
 *
 * Every --scrape-s seconds the pool's cumulative counters go through the
 * gateway's own code (gateway/sched/scale.c: scale_track_update,
 * scale_plan_batch, scale_desired, with autoscale.h's constants), as a
 * Prometheus scrape of /metrics would make it.
 *
 * Prints a CSV time series (one line per --window-s window) and then
 * "signal_first_s" (first scrape whose desired count exceeds the replicas
 * deployed), "miss_first_s" (first window with more than 1% misses)
 * and "lead_s" = the difference: positive when the signal rose first.
 *
 *   make -C bench/sim build/scale_ramp && bench/sim/build/scale_ramp
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale.h"

/* gateway/sched/autoscale.h's constants (that header needs the runtime's) */
#define ASC_TAU_S 30.0
#define ASC_RHO_MAX 0.8
#define ASC_P_MISS 0.01

struct opts {
	int replicas, slots, max_batch;
	double a_ms, b_ms, slo_ms, from, to, ramp_s, scrape_s, window_s, miss_frac, tau_s;
	uint64_t seed;
} o = { .replicas = 4, .slots = 2, .max_batch = 32, .a_ms = 2.0, .b_ms = 0.25,
	.slo_ms = 50, .from = 0.2, .to = 1.3, .ramp_s = 600, .scrape_s = 15,
	.window_s = 10, .miss_frac = 0.01, .tau_s = ASC_TAU_S, .seed = 1 };

static uint64_t rng_state;

static double unif(void)
{
	/* xorshift64*: enough for arrival times */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0) + 1e-18;
}

static double t_batch(int rows)
{
	return (o.a_ms + o.b_ms * rows) / 1e3;
}

/* B* and S as autoscale.c plans them: the batch sizes 1, 2, 4, ... up to
 * max_batch and max_batch, t from the profile (what svctime learns of a
 * deterministic one), scale_plan_batch. */
static void plan(struct scale_in *in)
{
	int rows[32], n = 0;
	double t[32];

	for (int r = 1; n < 32; r = r * 2 < o.max_batch ? r * 2 : o.max_batch) {
		rows[n] = r;
		t[n++] = t_batch(r);
		if (r == o.max_batch)
			break;
	}
	n = scale_plan_batch(t, n, o.slo_ms / 1e3);
	in->batch_rows = rows[n];
	in->batch_s = t[n];
}

struct fifo {
	double *t;
	size_t head, n, cap;
};

static void fifo_push(struct fifo *f, double t)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4096;
		double *nt = malloc(cap * sizeof(*nt));

		if (!nt) {
			perror("malloc");
			exit(1);
		}
		for (size_t i = 0; i < f->n; i++)
			nt[i] = f->t[(f->head + i) % f->cap];
		free(f->t);
		f->t = nt;
		f->head = 0;
		f->cap = cap;
	}
	f->t[(f->head + f->n++) % f->cap] = t;
}

static double fifo_pop(struct fifo *f)
{
	double t = f->t[f->head];

	f->head = (f->head + 1) % f->cap;
	f->n--;
	return t;
}

static void usage(void)
{
	fprintf(stderr, "usage: scale_ramp [--replicas N] [--slots K] [--max-batch B] [--a-ms A] "
		"[--b-ms B] [--slo-ms MS] [--from F] [--to F] [--ramp-s S] [--scrape-s S] "
		"[--window-s S] [--tau-s S] [--seed N]\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i];
		char *v = i + 1 < argc ? argv[++i] : NULL;

		if (!v)
			usage();
		if (!strcmp(k, "--replicas")) o.replicas = atoi(v);
		else if (!strcmp(k, "--slots")) o.slots = atoi(v);
		else if (!strcmp(k, "--max-batch")) o.max_batch = atoi(v);
		else if (!strcmp(k, "--a-ms")) o.a_ms = atof(v);
		else if (!strcmp(k, "--b-ms")) o.b_ms = atof(v);
		else if (!strcmp(k, "--slo-ms")) o.slo_ms = atof(v);
		else if (!strcmp(k, "--from")) o.from = atof(v);
		else if (!strcmp(k, "--to")) o.to = atof(v);
		else if (!strcmp(k, "--ramp-s")) o.ramp_s = atof(v);
		else if (!strcmp(k, "--scrape-s")) o.scrape_s = atof(v);
		else if (!strcmp(k, "--window-s")) o.window_s = atof(v);
		else if (!strcmp(k, "--tau-s")) o.tau_s = atof(v);
		else if (!strcmp(k, "--seed")) o.seed = strtoull(v, NULL, 10);
		else usage();
	}
	if (o.replicas < 1 || o.slots < 1 || o.max_batch < 1 || o.ramp_s <= 0 ||
	    o.scrape_s <= 0 || o.window_s <= 0 || o.slo_ms <= 0 || o.tau_s <= 0)
		usage();
}

int main(int argc, char **argv)
{
	int c;
	double cap_rps, t = 0, next_arr, next_scrape, next_window, *busy;
	struct fifo q = { 0 };
	struct scale_track trk;
	struct scale_obs obs = { 0 };
	struct scale_in in = { 0 };
	struct scale_out out = { 0 };
	uint64_t w_done = 0, w_miss = 0;
	double signal_first = -1, miss_first = -1, slo = o.slo_ms / 1e3;

	parse(argc, argv);
	rng_state = o.seed * 0x9E3779B97F4A7C15ull + 1;
	c = o.replicas * o.slots;
	busy = calloc((size_t)c, sizeof(*busy));
	if (!busy)
		return 1;
	cap_rps = c * o.max_batch / t_batch(o.max_batch);
	scale_track_init(&trk, o.tau_s);
	next_arr = 0;
	next_scrape = 0;
	next_window = o.window_s;
	printf("# replicas=%d slots=%d t(B)=%.3g+%.3gB ms max_batch=%d slo_ms=%g capacity=%.0f req/s "
	       "ramp %.2f..%.2f x capacity over %g s\n", o.replicas, o.slots, o.a_ms, o.b_ms,
	       o.max_batch, o.slo_ms, cap_rps, o.from, o.to, o.ramp_s);
	printf("t_s,offered_rps,rate_est,batch_rows_seen,batch_rows,batch_ms,load,desired,miss_frac\n");
	while (t < o.ramp_s) {
		double lam = cap_rps * (o.from + (o.to - o.from) * t / o.ramp_s);
		double t_free = INFINITY;
		int s_free = -1;

		for (int s = 0; s < c; s++)
			if (busy[s] < t_free) {
				t_free = busy[s];
				s_free = s;
			}
		/* the earliest of: an arrival, a slot that can start a batch, a
		 * scrape, a window's end */
		double t_start = q.n ? fmax(t_free, t) : INFINITY;
		double tn = fmin(fmin(next_arr, t_start), fmin(next_scrape, next_window));

		t = tn;
		if (t == next_arr) {
			fifo_push(&q, t);
			obs.requests++;
			next_arr = t - log(unif()) / lam;
		} else if (t == t_start) {
			int rows = 0;
			double end;

			/* drop what can no longer finish in time (drop_hopeless) */
			while (q.n && t - q.t[q.head] + t_batch(1) > slo) {
				fifo_pop(&q);
				w_done++;
				w_miss++;
			}
			if (!q.n)
				continue;
			rows = (int)(q.n < (size_t)o.max_batch ? q.n : (size_t)o.max_batch);
			end = t + t_batch(rows);
			busy[s_free] = end;
			obs.batches++;
			obs.batch_rows += (uint64_t)rows;
			for (int i = 0; i < rows; i++) {
				double arr = fifo_pop(&q);

				w_done++;
				w_miss += end - arr > slo;
				obs.ok_requests += end - arr <= slo;
				obs.ok_rows += end - arr <= slo;
			}
		} else if (t == next_scrape) {
			obs.now_ns = (uint64_t)(t * 1e9);
			memset(&in, 0, sizeof(in));
			scale_track_update(&trk, &obs, &in);
			plan(&in);
			if (!trk.req.valid)
				in.batch_s = 0;
			in.slots = o.slots;
			in.objective_s = slo;
			in.rho_max = ASC_RHO_MAX;
			in.p_miss = ASC_P_MISS;
			in.current = o.replicas;
			in.min = 1;
			in.max = 1024;
			scale_desired(&in, &out);
			if (signal_first < 0 && out.desired > o.replicas)
				signal_first = t;
			next_scrape += o.scrape_s;
		} else {
			double frac = w_done ? (double)w_miss / w_done : 0;

			printf("%.0f,%.0f,%.0f,%.2f,%.0f,%.3f,%.2f,%d,%.4f\n", t, lam, in.lambda,
			       in.batch_rows_seen, in.batch_rows, in.batch_s * 1e3, out.load,
			       out.desired, frac);
			if (miss_first < 0 && frac > o.miss_frac)
				miss_first = t;
			w_done = w_miss = 0;
			next_window += o.window_s;
		}
	}
	printf("signal_first_s=%.0f miss_first_s=%.0f", signal_first, miss_first);
	if (signal_first >= 0 && miss_first >= 0)
		printf(" lead_s=%.0f (offered load then: %.2f and %.2f x capacity)\n",
		       miss_first - signal_first, o.from + (o.to - o.from) * signal_first / o.ramp_s,
		       o.from + (o.to - o.from) * miss_first / o.ramp_s);
	else
		printf(" lead_s=n/a\n");
	free(busy);
	free(q.t);
	return 0;
}

/*
 * counters.c - what a request's accounting costs when loops on several
 * cores serve the same model: api_account (outcome, answer time, queue /
 * execute / end-to-end histograms, SLO) and access_record (status code and
 * body bytes) of one answered 200, the same calls a loop thread makes per
 * inference, on one (backend, model) series; and the request's hold on the
 * configuration snapshot (a call borrows it from its loop's rt_lease and
 * gives it back).  -s ref holds it as loops did before rt_lease: rt_get and
 * rt_put on the one shared snapshot, an atomic add on its cache line each.
 *
 * usage: counters [-n REQUESTS] [-r ROUNDS] [-t THREADS] [-s lease|ref]
 *
 * Each round times REQUESTS accountings on 1 thread, then on THREADS
 * threads at once (each REQUESTS), and prints one line
 * "ROUND r ns1 nsT": nanoseconds per request per thread.  Counters that
 * all threads add to (one cache line per counter, moved between cores on
 * every add) make nsT many times ns1 (measured before metrics.c's
 * per-thread counts, 2 threads on a 2-core Xeon: 505-725 ns against
 * 46 ns); per-thread counts keep nsT near ns1.  THREADS defaults to the
 * number of online CPUs (at least 2).  Run with the machine otherwise
 * quiet: a thread that is not running while the others count shows no
 * sharing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "api.h"
#include "http.h"
#include "infer.h"
#include "metrics.h"
#include "runtime.h"

#define COUNTERS_MAX_THREADS 64

static struct met_series *counters_series;
static long counters_n = 2000000;
static struct runtime counters_rt = { .refs = 1 };	/* the shared snapshot: never freed */
static bool counters_ref;				/* -s ref */

static double counters_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* counters_n answered requests accounted as a loop accounts them. */
static void *counters_thread(void *arg)
{
	struct rt_lease lease = { .rt = &counters_rt };	/* the thread's: no reference taken */
	struct infer_req r;
	struct call c;

	memset(&r, 0, sizeof(r));
	memset(&c, 0, sizeof(c));
	r.met = counters_series;
	r.rows = 1;
	c.status = 200;
	c.stream_id = 1;
	for (long i = 0; i < counters_n; i++) {
		uint64_t t = 1000000 + (uint64_t)i * 1000;

		r.arrival_ns = t;
		r.dequeue_ns = t + 20000 + (uint64_t)(i & 1023) * 50;
		r.exec_start_ns = r.dequeue_ns;
		r.exec_end_ns = r.dequeue_ns + 3000;
		r.deadline_ns = t + 10000000;
		c.rt = counters_ref ? rt_get(&counters_rt) : rt_lease_borrow(&lease);
		api_account(&r, 200, r.exec_end_ns + 1000);
		access_record(&c);
		if (counters_ref)
			rt_put(c.rt);
		else
			rt_lease_return(&lease, c.rt);
	}
	return arg;
}

/* ns per request per thread with nt threads accounting at once. */
static double counters_round(int nt)
{
	pthread_t t[COUNTERS_MAX_THREADS];
	double t0 = counters_now();

	for (int i = 0; i < nt; i++)
		if (pthread_create(&t[i], NULL, counters_thread, NULL)) {
			fprintf(stderr, "counters: pthread_create failed\n");
			exit(1);
		}
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	return (counters_now() - t0) / (double)counters_n * 1e9;
}

int main(int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rounds = 5, nt = cpus < 2 ? 2 : cpus > COUNTERS_MAX_THREADS ? COUNTERS_MAX_THREADS
									 : (int)cpus;
	int opt;

	while ((opt = getopt(argc, argv, "n:r:t:s:h")) != -1) {
		switch (opt) {
		case 's':
			if (strcmp(optarg, "ref") && strcmp(optarg, "lease")) {
				fprintf(stderr, "counters: -s takes lease or ref, not %s\n", optarg);
				return 2;
			}
			counters_ref = !strcmp(optarg, "ref");
			break;
		case 'n':
			counters_n = atol(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 't':
			nt = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-n REQUESTS] [-r ROUNDS] [-t THREADS (2..%d)] "
				"[-s lease|ref]\n",
				argv[0], COUNTERS_MAX_THREADS);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (counters_n < 1 || rounds < 1 || nt < 2 || nt > COUNTERS_MAX_THREADS) {
		fprintf(stderr, "counters: -n and -r must be positive, -t 2..%d\n",
			COUNTERS_MAX_THREADS);
		return 2;
	}
	counters_series = met_lookup("cpu0", "digits");
	if (!counters_series) {
		fprintf(stderr, "counters: out of memory\n");
		return 1;
	}
	printf("# %ld requests per thread per round, 1 thread then %d threads, ns per request "
	       "per thread; snapshot held by %s\n", counters_n, nt,
	       counters_ref ? "rt_get/rt_put" : "rt_lease");
	for (int r = 0; r < rounds; r++) {
		double one = counters_round(1), many = counters_round(nt);

		printf("ROUND %d %.1f %.1f\n", r, one, many);
	}
	met_free_all();
	return 0;
}

/* Unit tests for gateway/core/metrics.c: the registry has no cap, label values
 * are escaped, latency buckets are the seconds bounds' (as doubles). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* s's rendering as a NUL-terminated string (malloc'd). */
static char *render(struct met_series **s, int n)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *out;

	met_render(b, s, n);
	len = evbuffer_get_length(b);
	out = malloc(len + 1);
	evbuffer_remove(b, out, len);
	out[len] = 0;
	evbuffer_free(b);
	return out;
}

/* 1500 (backend, model) series: more than the old 1024-entry registry. */
static void test_every_series_exported(void **state)
{
	char b[32], m[32], *text;
	struct met_series **all, *last = NULL;
	int n;

	for (int i = 0; i < 1500; i++) {
		snprintf(b, sizeof(b), "b%d", i % 30);
		snprintf(m, sizeof(m), "m%d", i);
		last = met_lookup(b, m);
		assert_non_null(last);
	}
	assert_ptr_equal(met_lookup("b29", "m1499"), last);	/* found, not created */
	met_count(met_cnt_of(last), OUT_SUCCESS);
	all = met_all(&n);
	assert_int_equal(n, 1500);
	assert_ptr_equal(all[1499], last);
	text = render(all, n);
	assert_non_null(strstr(text, "infergw_requests_total{backend=\"b29\",model=\"m1499\","
				     "outcome=\"success\"} 1\n"));
	free(text);
	free(all);
	met_free_all();
	all = met_all(&n);
	assert_int_equal(n, 0);
	free(all);
}

static void test_label_values_escaped(void **state)
{
	struct met_series *s = met_lookup("b\"x\\y", "m\nz");
	char *text, *e;
	int n;
	struct met_series **all;

	assert_non_null(s);
	e = met_label_escape("a\"b\\c\nd");
	assert_string_equal(e, "a\\\"b\\\\c\\nd");
	free(e);
	all = met_all(&n);
	assert_int_equal(n, 1);
	text = render(all, n);
	assert_non_null(strstr(text, "infergw_slo_total{backend=\"b\\\"x\\\\y\",model=\"m\\nz\","
				     "result=\"met\"} 0\n"));
	/* Every sample line is one line: no raw newline inside a label. */
	assert_null(strstr(text, "m\nz"));
	free(text);
	free(all);
	met_free_all();
}

/* A model with variants: one series per variant, labelled in every family;
 * the unlabelled series of the same (backend, model) stays another one. */
static void test_variant_series(void **state)
{
	struct met_series *plain = met_lookup("cpu0", "d");
	struct met_series *v32 = met_lookup_variant("cpu0", "d", "fp32");
	struct met_series *v8 = met_lookup_variant("cpu0", "d", "int8");
	struct met_series **all;
	char *text;
	int n;

	assert_non_null(plain);
	assert_non_null(v32);
	assert_non_null(v8);
	assert_true(plain != v32 && v32 != v8 && plain != v8);
	assert_ptr_equal(met_lookup_variant("cpu0", "d", "int8"), v8);	/* found */
	assert_ptr_equal(met_lookup_variant("cpu0", "d", NULL), plain);
	assert_null(plain->variant);
	assert_string_equal(v8->variant, "int8");
	met_count(met_cnt_of(v8), OUT_SUCCESS);
	met_count(met_cnt_of(v8), OUT_SUCCESS);
	met_count(met_cnt_of(v32), OUT_REJECTED);
	all = met_all(&n);
	assert_int_equal(n, 3);
	text = render(all, n);
	assert_non_null(strstr(text, "infergw_requests_total{backend=\"cpu0\",model=\"d\","
				     "variant=\"int8\",outcome=\"success\"} 2\n"));
	assert_non_null(strstr(text, "infergw_requests_total{backend=\"cpu0\",model=\"d\","
				     "variant=\"fp32\",outcome=\"rejected\"} 1\n"));
	assert_non_null(strstr(text, "infergw_requests_total{backend=\"cpu0\",model=\"d\","
				     "outcome=\"success\"} 0\n"));
	assert_non_null(strstr(text, "infergw_batch_rows_count{backend=\"cpu0\",model=\"d\","
				     "variant=\"int8\"} 0\n"));
	free(text);
	free(all);
	met_free_all();
}

/* The latency buckets' upper bounds in seconds: the exposition's le values. */
static const double lat_le[MET_LAT_BUCKETS] = {
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
	50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0,
};

/* The bucket a sample of ns belongs to, by the seconds as a double: the
 * first bound >= ns / 1e9 (MET_LAT_BUCKETS: +Inf). */
static int lat_bucket_ref(uint64_t ns)
{
	double s = ns / 1e9;
	int b = 0;

	while (b < MET_LAT_BUCKETS && s > lat_le[b])
		b++;
	return b;
}

/* The one bucket met_observe_ns counted ns in (sum and count checked). */
static int lat_bucket_got(uint64_t ns)
{
	struct met_hist h;
	int got = -1;

	memset(&h, 0, sizeof(h));
	met_observe_ns(&h, ns);
	assert_int_equal(met_hist_count(&h), 1);
	assert_true(atomic_load(&h.sum) == ns);
	for (int b = 0; b <= MET_LAT_BUCKETS; b++) {
		if (!atomic_load(&h.bucket[b]))
			continue;
		assert_int_equal(got, -1);
		got = b;
	}
	return got;
}

/* Each bound and 1 ns either side, 0, and the huge: the bucket is the one
 * the seconds (double) compare gives. */
static void test_lat_buckets_exact(void **state)
{
	uint64_t odd[] = { 0, 1, 2, 999, (1ull << 53) - 1, 1ull << 53, (1ull << 53) + 1,
			   UINT64_MAX / 2, UINT64_MAX - 1, UINT64_MAX };

	for (int b = 0; b < MET_LAT_BUCKETS; b++) {
		uint64_t t = (uint64_t)llround(lat_le[b] * 1e9);

		for (uint64_t ns = t - 1; ns <= t + 1; ns++) {
			assert_int_equal(lat_bucket_got(ns), lat_bucket_ref(ns));
			assert_int_equal(lat_bucket_got(ns), ns <= t ? b : b + 1);
		}
	}
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		assert_int_equal(lat_bucket_got(odd[i]), lat_bucket_ref(odd[i]));
	assert_int_equal(lat_bucket_got(0), 0);
	assert_int_equal(lat_bucket_got(UINT64_MAX), MET_LAT_BUCKETS);
}

/* The latency families' le labels are the bounds in seconds, as %g. */
static void test_lat_le_rendered(void **state)
{
	struct met_series *s = met_lookup("b", "m");
	struct met_series **all;
	char *text, want[160];
	int n;

	assert_non_null(s);
	all = met_all(&n);
	text = render(all, n);
	for (int b = 0; b < MET_LAT_BUCKETS; b++) {
		snprintf(want, sizeof(want),
			 "infergw_request_seconds_bucket{backend=\"b\",model=\"m\",le=\"%g\"} 0\n",
			 lat_le[b]);
		assert_non_null(strstr(text, want));
	}
	free(text);
	free(all);
	met_free_all();
}

/* A histogram's count is its buckets' sum: +Inf and _count agree with the
 * samples, the out-of-range ones (+Inf) included, in both kinds. */
static void test_hist_count_rendered(void **state)
{
	struct met_series *series = met_lookup("b", "m");
	struct met_series **all;
	struct met_cnt *s;
	char *text;
	int n;

	assert_non_null(series);
	s = met_cnt_of(series);
	met_observe_ns(&s->e2e, 1000);
	met_observe_ns(&s->e2e, 2000000);
	met_observe_ns(&s->e2e, UINT64_MAX / 2);	/* past 10 s: +Inf */
	met_observe_rows(&s->batch, 1);
	met_observe_rows(&s->batch, 5000);		/* past 2048 rows: +Inf */
	assert_int_equal(met_hist_count(&s->e2e), 3);
	assert_int_equal(met_hist_count(&s->batch), 2);
	assert_int_equal(met_hist_count(&s->queue), 0);
	all = met_all(&n);
	text = render(all, n);
	assert_non_null(strstr(text, "infergw_request_seconds_bucket{backend=\"b\",model=\"m\","
				     "le=\"10\"} 2\n"));
	assert_non_null(strstr(text, "infergw_request_seconds_bucket{backend=\"b\",model=\"m\","
				     "le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "infergw_request_seconds_count{backend=\"b\",model=\"m\"} 3\n"));
	assert_non_null(strstr(text, "infergw_batch_rows_bucket{backend=\"b\",model=\"m\","
				     "le=\"2048\"} 1\n"));
	assert_non_null(strstr(text, "infergw_batch_rows_bucket{backend=\"b\",model=\"m\","
				     "le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(text, "infergw_batch_rows_count{backend=\"b\",model=\"m\"} 2\n"));
	assert_non_null(strstr(text, "infergw_batch_rows_sum{backend=\"b\",model=\"m\"} 5001\n"));
	free(text);
	free(all);
	met_free_all();
}

/* Counts from more threads than MET_SHARDS at once (all live together: the
 * last 6 share the series' first), each adding to its own: met_read and the
 * exposition sum them exactly, and the latest answer's time wins. */
#define SHARD_THREADS (MET_SHARDS + 6)
#define SHARD_ADDS 2000
struct shard_arg {
	struct met_series *s;
	int id;
	struct met_cnt *mine;
	int shard;			/* met_thread_shard's */
	pthread_barrier_t *all;		/* every thread has its shard before any counts */
};

static void *shard_thread(void *p)
{
	struct shard_arg *a = p;
	struct met_cnt *k = met_cnt_of(a->s);

	a->mine = k;
	a->shard = met_thread_shard();
	if (a->all)
		pthread_barrier_wait(a->all);
	for (int i = 0; i < SHARD_ADDS; i++) {
		met_count(k, i % 2 ? OUT_SUCCESS : OUT_REJECTED);
		met_observe_ns(&k->e2e, 1000);
		met_finish(k, true, 2, 1000, 1000 + (uint64_t)a->id);
	}
	met_batch(a->s, 3, 500);
	return NULL;
}

static void test_threads_summed(void **state)
{
	struct met_series *s = met_lookup("shards", "m");
	struct shard_arg args[SHARD_THREADS];
	pthread_t t[SHARD_THREADS];
	pthread_barrier_t all;
	struct met_series **all_series;
	struct met_cnt sum;
	char line[256], *text;
	int n, shared = 0;

	assert_non_null(s);
	met_thread_shard();	/* this thread holds a number too: one less free */
	assert_int_equal(pthread_barrier_init(&all, NULL, SHARD_THREADS), 0);
	for (int i = 0; i < SHARD_THREADS; i++) {
		args[i] = (struct shard_arg){ .s = s, .id = i, .all = &all };
		assert_int_equal(pthread_create(&t[i], NULL, shard_thread, &args[i]), 0);
	}
	for (int i = 0; i < SHARD_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&all);
	/* a numbered thread writes its own counts alone (plain adds); the
	 * threads past the numbers share the series' first (atomic adds) */
	for (int i = 0; i < SHARD_THREADS; i++) {
		bool over = args[i].shard == MET_SHARDS;

		shared += over;
		assert_true(over == (args[i].mine == &s->first));
		assert_true(args[i].mine->own == !over && args[i].mine->e2e.own == !over);
		for (int j = 0; j < i; j++)
			assert_true(over || args[j].shard != args[i].shard);
	}
	assert_int_equal(shared, SHARD_THREADS - MET_SHARDS + 1);
	met_read(s, &sum);
	assert_int_equal(sum.outcome[OUT_SUCCESS], SHARD_THREADS * SHARD_ADDS / 2);
	assert_int_equal(sum.outcome[OUT_REJECTED], SHARD_THREADS * SHARD_ADDS / 2);
	assert_int_equal(met_hist_count(&sum.e2e), SHARD_THREADS * SHARD_ADDS);
	assert_int_equal(sum.e2e.sum, 1000ull * SHARD_THREADS * SHARD_ADDS);
	assert_int_equal(sum.rows_ok, 2ull * SHARD_THREADS * SHARD_ADDS);
	assert_int_equal(sum.last_ns, 1000 + SHARD_THREADS - 1);
	assert_int_equal(met_hist_count(&sum.batch), SHARD_THREADS);
	assert_int_equal(met_bsizes(s)[2].count, SHARD_THREADS);
	all_series = met_all(&n);
	text = render(all_series, n);
	snprintf(line, sizeof(line), "infergw_requests_total{backend=\"shards\",model=\"m\","
		 "outcome=\"success\"} %d\n", SHARD_THREADS * SHARD_ADDS / 2);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof(line), "infergw_request_seconds_count{backend=\"shards\","
		 "model=\"m\"} %d\n", SHARD_THREADS * SHARD_ADDS);
	assert_non_null(strstr(text, line));
	free(text);
	free(all_series);
	met_free_all();
}

static void *shard_once(void *p)
{
	struct shard_arg *a = p;

	a->mine = met_cnt_of(a->s);
	met_count(a->mine, OUT_SUCCESS);
	a->id = met_thread_shard();
	return NULL;
}

/* A thread's number goes back when it exits: threads started one after
 * another (a backend's workers restarted by reloads) all take the same
 * one, and count in the same place, rather than using the numbers up. */
static void test_shard_numbers_reused(void **state)
{
	struct met_series *s = met_lookup("reuse", "m");
	struct shard_arg a[3 * MET_SHARDS];
	struct met_cnt sum;
	pthread_t t;

	assert_non_null(s);
	for (int i = 0; i < 3 * MET_SHARDS; i++) {
		a[i] = (struct shard_arg){ .s = s };
		assert_int_equal(pthread_create(&t, NULL, shard_once, &a[i]), 0);
		pthread_join(t, NULL);
		assert_int_equal(a[i].id, a[0].id);
		assert_ptr_equal(a[i].mine, a[0].mine);
	}
	assert_int_not_equal(a[0].id, met_thread_shard());	/* this thread holds its own */
	met_read(s, &sum);
	assert_int_equal(sum.outcome[OUT_SUCCESS], 3 * MET_SHARDS);
	met_free_all();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variant_series),
		cmocka_unit_test(test_every_series_exported),
		cmocka_unit_test(test_label_values_escaped),
		cmocka_unit_test(test_lat_buckets_exact),
		cmocka_unit_test(test_lat_le_rendered),
		cmocka_unit_test(test_hist_count_rendered),
		cmocka_unit_test(test_threads_summed),
		cmocka_unit_test(test_shard_numbers_reused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for gateway/sched/runtime.c: snapshots over many models and
 * backends (no fixed-size arrays), and the reaper's unbounded list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "runtime.h"
#include "model/model.h"

static char path[64];

/* A config of n_models digits models; n_backends cpu backends hosting
 * every model (no models: key) when hosted_all, else model m<i % n>. */
static struct config *load_conf(int n_models, int n_backends, bool hosted_all)
{
	char cwd[1024], *err = NULL;
	struct config *c;
	FILE *f;
	int fd;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	strcpy(path, "/tmp/infergw-rt-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs("models:\n", f);
	for (int i = 0; i < n_models; i++)
		fprintf(f, "  - {name: m%d, path: %s/config/models/digits,"
			   " service_time_us: {base: 100, per_row: 1}}\n", i, cwd);
	fputs("backends:\n", f);
	for (int i = 0; i < n_backends; i++) {
		fprintf(f, "  - {name: b%d, kind: cpu, workers: 1", i);
		if (!hosted_all)
			fprintf(f, ", models: [m%d]", i % n_models);
		fputs("}\n", f);
	}
	fclose(f);
	c = cfg_load(path, &err);
	if (!c)
		fail_msg("%s", err);
	unlink(path);
	return c;
}

/* The default backend hosts every model: 70 is past the old models[64]. */
static void test_backend_hosting_70_models(void **state)
{
	char *err = NULL;
	struct runtime *rt = rt_build(load_conf(70, 1, true), NULL, &err), *rt2;
	struct rt_backend *rb;

	assert_non_null(rt);
	rb = rt->backends[0];
	assert_int_equal(rb->n_models, 70);
	assert_true(rb->started);
	for (int i = 0; i < 70; i++)
		assert_ptr_equal(rb->models[i], rt->models[i]);
	/* A reload with the same settings carries the backend over. */
	rt2 = rt_build(load_conf(70, 1, true), rt, &err);
	assert_non_null(rt2);
	assert_ptr_equal(rt2->backends[0], rb);
	for (int i = 0; i < 70; i++)
		assert_ptr_equal(rt2->backends[0]->models[i], rt2->models[i]);
	assert_int_equal(rt_live_count(), 1);
	rt_put(rt);
	rt_put(rt2);
	assert_int_equal(rt_live_count(), 0);
}

/* More started backends than the old rt_live[256]: every one is tracked. */
static void test_300_backends_tracked(void **state)
{
	char *err = NULL;
	struct runtime *rt = rt_build(load_conf(1, 300, false), NULL, &err);

	assert_non_null(rt);
	assert_int_equal(rt->n_backends, 300);
	assert_int_equal(rt_live_count(), 300);
	rt_stop_all();
	rt_put(rt);
	assert_int_equal(rt_live_count(), 0);
}

/* More released snapshots than the old rt_dead[64], released back to back:
 * every one is destroyed by the reaper, none on the releasing thread. */
static void test_reaper_takes_every_release(void **state)
{
	enum { N = 200 };
	static struct runtime *rts[N];
	char *err = NULL;
	struct runtime *base = rt_build(load_conf(2, 1, true), NULL, &err);
	uint64_t before;

	assert_non_null(base);
	for (int i = 0; i < N; i++) {
		rts[i] = rt_build(load_conf(2, 1, true), base, &err);
		assert_non_null(rts[i]);
		assert_ptr_equal(rts[i]->backends[0], base->backends[0]);
	}
	assert_int_equal(rt_reaper_start(), 0);
	before = rt_retired();
	for (int i = 0; i < N; i++)
		rt_put(rts[i]);
	rt_put(base);
	rt_reaper_stop();	/* waits for every pending snapshot */
	assert_int_equal(rt_retired() - before, N + 1);
	assert_int_equal(rt_live_count(), 0);
}

/* A kind with batching defaults, as the GPU's caps say (be_gpu_caps). */
static void gpuish_caps(const struct backend *be, const struct model *m, struct be_caps *out)
{
	out->max_batch = 256;
	out->n_preferred = 2;
	out->preferred[0] = 8;
	out->preferred[1] = 256;
	out->batching_defaults = true;
	out->delay_us = 200;
}

/* Batching precedence per (backend, model): backends[].batching, then the
 * kind's defaults, then models[]. */
static void test_queue_conf_precedence(void **state)
{
	char *err = NULL;
	struct config *c;
	struct model ma = { .name = "a", .max_batch_size = 64 }, mb = { .name = "b",
									.max_batch_size = 64 };
	static const struct backend_ops gpuish = { .kind = "gpuish", .caps = gpuish_caps };
	static const struct backend_ops plain = { .kind = "plain" };
	struct backend be = { 0 };
	struct sched_q_conf qc;
	FILE *f;
	int fd;

	strcpy(path, "/tmp/infergw-rt-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs("models:\n"
	      "  - {name: a, path: /x, max_batch: 16, max_queue_delay_us: 5000,"
	      " preferred_batch_sizes: [4, 16], max_queue: 77}\n"
	      "  - {name: b, path: /x, max_batch: 16, max_queue_delay_us: 5000}\n"
	      "backends:\n"
	      "  - name: g\n    kind: cpu\n"
	      "    batching:\n      b: {max_batch: 128, max_queue_delay_us: 50}\n", f);
	fclose(f);
	c = cfg_load(path, &err);
	unlink(path);
	if (!c)
		fail_msg("%s", err);

	/* a kind without defaults: models[] as written */
	be.ops = &plain;
	rt_queue_conf(c, &c->models[0], &ma, &c->backends[0], &be, &qc);
	assert_ptr_equal(qc.model, &ma);
	assert_int_equal(qc.max_batch, 16);
	assert_int_equal(qc.delay_us, 5000);
	assert_int_equal(qc.n_preferred, 2);
	assert_int_equal(qc.preferred[1], 16);
	assert_int_equal(qc.max_queue, 77);
	/* ... and the backend's overrides over them (b: max_batch, delay) */
	rt_queue_conf(c, &c->models[1], &mb, &c->backends[0], &be, &qc);
	assert_int_equal(qc.max_batch, 128);
	assert_int_equal(qc.delay_us, 50);
	assert_int_equal(qc.n_preferred, 0);

	/* a kind with defaults (a GPU): they replace models[] batching... */
	be.ops = &gpuish;
	rt_queue_conf(c, &c->models[0], &ma, &c->backends[0], &be, &qc);
	assert_int_equal(qc.max_batch, 0);	/* the backend's own limit (caps: 256) */
	assert_int_equal(qc.delay_us, 200);
	assert_int_equal(qc.n_preferred, 0);	/* the scheduler takes caps.preferred */
	assert_int_equal(qc.max_queue, 77);	/* not a batching field: models[]'s */
	/* ... and the backend's overrides still win over the kind's */
	rt_queue_conf(c, &c->models[1], &mb, &c->backends[0], &be, &qc);
	assert_int_equal(qc.max_batch, 128);
	assert_int_equal(qc.delay_us, 50);
	assert_int_equal(qc.n_preferred, 0);
	/* the scheduler's limit for the pair: caps' 256 capped by the override */
	assert_int_equal(sched_batch_limit(&be, &mb, qc.max_batch), 128);
	rt_queue_conf(c, &c->models[0], &ma, &c->backends[0], &be, &qc);
	assert_int_equal(sched_batch_limit(&be, &ma, qc.max_batch), 256);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_hosting_70_models),
		cmocka_unit_test(test_300_backends_tracked),
		cmocka_unit_test(test_reaper_takes_every_release),
		cmocka_unit_test(test_queue_conf_precedence),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

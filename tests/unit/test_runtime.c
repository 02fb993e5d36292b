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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_hosting_70_models),
		cmocka_unit_test(test_300_backends_tracked),
		cmocka_unit_test(test_reaper_takes_every_release),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

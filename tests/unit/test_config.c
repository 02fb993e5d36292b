/* Unit tests for gateway/config.c: defaults, and messages with line:column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static struct config *load_text(const char *text, char **err)
{
	FILE *f;
	int fd;

	strcpy(path, "/tmp/infergw-cfg-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	*err = NULL;
	return cfg_load(path, err);
}

static void expect_error(const char *text, const char *where, const char *what)
{
	char *err, want[128];
	struct config *c = load_text(text, &err);

	assert_null(c);
	assert_non_null(err);
	snprintf(want, sizeof(want), "%s:%s: ", path, where);
	if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, what))
		fail_msg("got \"%s\", want prefix \"%s\" and \"%s\"", err, want, what);
	free(err);
	unlink(path);
}

static void test_defaults(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: m\n    path: /x/m\n"
				     "backends:\n  - kind: cpu\n", &err);

	assert_non_null(c);
	assert_int_equal(c->listen.port, 8000);
	assert_string_equal(c->listen.address, "0.0.0.0");
	assert_true(c->listen.threads >= 1);
	assert_int_equal(c->limits.max_body_bytes, 4 << 20);
	assert_int_equal(c->limits.max_concurrent_streams, 128);
	assert_false(c->log.access);
	assert_string_equal(c->models[0].path, "/x/m");
	assert_int_equal(c->models[0].max_queue, 1024);
	assert_string_equal(c->backends[0].name, "cpu0");
	assert_int_equal(c->backends[0].slots, 1);
	assert_int_equal(c->backends[0].nice, 10);	/* compute yields to the loops */
	assert_int_equal(c->backends[0].n_models, 1);	/* hosts every model by default */
	assert_string_equal(c->backends[0].models[0], "m");
	cfg_free(c);
	unlink(path);
}

/* Kind-specific keys are read by the kind's parse_conf (backends/registry.c):
 * each kind accepts its own, rejects another kind's, errors keep FILE:L:C. */
static void test_backend_kind_keys(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: m\nbackends:\n  - kind: cpu\n"
				     "    threads_per_worker: 3\n    nice: 5\n"
				     "  - kind: gpu\n    device: 2\n"
				     "  - kind: fake\n    workers: 4\n    latency_us: 250\n"
				     "    fail_every: 3\n", &err);

	assert_non_null(c);
	assert_int_equal(c->backends[0].kind, BE_CPU);
	assert_int_equal(c->backends[0].threads_per_slot, 3);
	assert_int_equal(c->backends[0].nice, 5);
	assert_int_equal(c->backends[1].kind, BE_GPU);
	assert_int_equal(c->backends[1].device, 2);
	assert_string_equal(c->backends[1].name, "gpu1");
	assert_int_equal(c->backends[2].kind, BE_FAKE);
	assert_string_equal(c->backends[2].name, "fake2");
	assert_int_equal(c->backends[2].slots, 4);
	assert_int_equal(c->backends[2].fake_latency_us, 250);
	assert_int_equal(c->backends[2].fake_fail_every, 3);
	cfg_free(c);
	unlink(path);
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    device: 1\n", "5:5",
		     "backends[0]: unknown key \"device\" (allowed: name, kind, workers, cost, "
		     "models, threads_per_worker, nice)");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    threads_per_worker: 2\n",
		     "5:5", "backends[0]: unknown key \"threads_per_worker\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    threads_per_worker: 0\n",
		     "5:25", "backends[0].threads_per_worker: expected an integer in [1, 256], got 0");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: fake\n    latency_us: -1\n",
		     "5:17", "backends[0].latency_us: expected an integer");
}

static void test_relative_model_path(void **state)
{
	char *err, want[128];
	struct config *c = load_text("models:\n  - name: m\n    path: models/m\n"
				     "backends:\n  - kind: cpu\n    workers: 2\n", &err);

	assert_non_null(c);
	snprintf(want, sizeof(want), "/tmp/models/m");
	assert_string_equal(c->models[0].path, want);
	assert_int_equal(c->backends[0].slots, 2);
	cfg_free(c);
	unlink(path);
}

static void test_errors(void **state)
{
	expect_error("listen:\n  port: 70000\n", "2:9", "listen.port: expected an integer in [0, 65535], got 70000");
	expect_error("listen:\n  prot: 80\n", "2:3", "listen: unknown key \"prot\"");
	expect_error("listen: [1\n", "2:1", "YAML syntax error");
	expect_error("log:\n  access: maybe\n", "2:11", "log.access: expected true or false");
	expect_error("listen:\n  port: 1\n", "1:1", "models: expected a list of at least one model");
	expect_error("models:\n  - name: a\n  - name: a\nbackends:\n  - kind: cpu\n", "3:11",
		     "duplicate model name \"a\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: tpu\n", "4:11",
		     "backends[0].kind: expected cpu, gpu or remote, got \"tpu\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    models: [b]\n", "5:14",
		     "backends[0].models[0]: no model named \"b\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n", "4:5",
		     "missing key \"address\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    nice: -5\n", "5:11",
		     "backends[0].nice: expected an integer in [0, 19], got -5");
	expect_error("models:\n  - name: a\n    max_batch: lots\nbackends:\n  - kind: cpu\n", "3:16",
		     "models[0].max_batch: expected an integer, got \"lots\"");
}

static const char *base = "models:\n  - name: a\nbackends:\n  - kind: cpu\n";

static void expect_error_tail(const char *tail, const char *where, const char *what)
{
	char text[1024];

	snprintf(text, sizeof(text), "%s%s", base, tail);
	expect_error(text, where, what);
}

/* The sections added for routing, the admin listener and reloads. */
static void test_routing_admin_reload(void **state)
{
	char *err, text[1024];
	struct config *c;

	snprintf(text, sizeof(text), "%s", "routing:\n  policy: least-queue\n  priority_levels: 4\n"
		 "admin:\n  port: 0\nreload:\n  watch: true\n"
		 "models:\n  - name: a\n    slo_ms: 20\n    priority: 3\n"
		 "    preferred_batch_sizes: [4, 8]\n    adaptive_batching: true\n"
		 "    service_time_us: {base: 50, per_row: 2.5}\n"
		 "backends:\n  - kind: cpu\n    cost: 0.5\n");
	c = load_text(text, &err);
	assert_non_null(c);
	assert_int_equal(c->routing.policy, 1);
	assert_int_equal(c->routing.priority_levels, 4);
	assert_int_equal(c->routing.sheddable_levels, 1);
	assert_int_equal(c->admin.port, 0);
	assert_string_equal(c->admin.address, "127.0.0.1");
	assert_true(c->reload.watch);
	assert_int_equal(c->models[0].slo_ms, 20);
	assert_int_equal(c->models[0].priority, 3);
	assert_int_equal(c->models[0].n_preferred, 2);
	assert_int_equal(c->models[0].preferred[1], 8);
	assert_true(c->models[0].adaptive);
	assert_true(c->models[0].svc_per_row_us == 2.5);
	assert_true(c->backends[0].cost == 0.5);
	cfg_free(c);
	unlink(path);
	expect_error_tail("routing:\n  policy: fastest\n", "6:11",
			  "routing.policy: expected slo, least-queue or round-robin, got \"fastest\"");
	expect_error_tail("routing:\n  sheddable_levels: 3\n", "6:21",
			  "routing.sheddable_levels: must be below priority_levels (3)");
	expect_error_tail("admin:\n  port: -5\n", "6:9", "admin.port: expected an integer in [-1, 65535]");
	expect_error_tail("reload:\n  watch: sometimes\n", "6:10", "reload.watch: expected true or false");
	expect_error("models:\n  - name: a\n    preferred_batch_sizes: [8, 4]\nbackends:\n  - kind: cpu\n",
		     "3:32", "models[0].preferred_batch_sizes[1]: sizes must be ascending, got 4 after 8");
	expect_error("models:\n  - name: a\n    adaptive_batching: true\nbackends:\n  - kind: cpu\n",
		     "3:24", "adaptive_batching needs slo_ms");
	expect_error("models:\n  - name: a\n    service_time_us: {base: 1, rows: 2}\nbackends:\n  - kind: cpu\n",
		     "3:32", "models[0].service_time_us: unknown key \"rows\"");
	expect_error("models:\n  - name: a\n    priority: 9\nbackends:\n  - kind: cpu\n",
		     "3:15", "models[0].priority: expected an integer in [1, 3], got 9");
}

/* Restart-only settings are reported; the rest apply live. */
static void test_restart_diff_and_drop(void **state)
{
	char *err, *d;
	struct config *a = load_text("listen:\n  port: 8000\nmodels:\n  - name: a\n  - name: b\n"
				     "backends:\n  - kind: cpu\n", &err);
	struct config *b = load_text("listen:\n  port: 9000\nlimits:\n  max_body_bytes: 2048\n"
				     "models:\n  - name: a\n  - name: b\nbackends:\n  - kind: cpu\n", &err);

	assert_non_null(a);
	assert_non_null(b);
	d = cfg_restart_diff(a, b);
	assert_non_null(d);
	assert_string_equal(d, "listen.port: 8000 -> 9000");
	free(d);
	assert_null(cfg_restart_diff(a, a));
	assert_true(cfg_drop_model(a, "a"));
	assert_false(cfg_drop_model(a, "zzz"));
	assert_int_equal(a->n_models, 1);
	assert_string_equal(a->models[0].name, "b");
	assert_int_equal(a->backends[0].n_models, 1);
	assert_string_equal(a->backends[0].models[0], "b");
	assert_true(cfg_backend_same(&a->backends[0], &a->backends[0]));
	assert_false(cfg_backend_same(&a->backends[0], &b->backends[0]));	/* hosts a and b */
	cfg_free(a);
	cfg_free(b);
}

/* listen.tls: files resolve like models[].path and remember where they
 * were written (errors found when rt_build reads them name that place). */
static void test_listen_tls(void **state)
{
	char *err, want[160], *d;
	struct config *plain, *c = load_text("listen:\n  tls:\n    certificate: certs/s.pem\n"
					     "    key: /abs/k.pem\n    client_ca: ca.pem\n"
					     "    min_version: \"1.3\"\n"
					     "models:\n  - name: a\nbackends:\n  - kind: cpu\n", &err);

	assert_non_null(c);
	assert_string_equal(c->listen.tls.certificate, "/tmp/certs/s.pem");
	assert_string_equal(c->listen.tls.key, "/abs/k.pem");
	assert_string_equal(c->listen.tls.client_ca, "/tmp/ca.pem");
	assert_int_equal(c->listen.tls.min_version, 13);
	snprintf(want, sizeof(want), "%s:4:10: listen.tls.key", path);
	assert_string_equal(c->listen.tls.where_key, want);
	snprintf(want, sizeof(want), "%s:3:18: listen.tls.certificate", path);
	assert_string_equal(c->listen.tls.where_certificate, want);
	unlink(path);
	plain = load_text(base, &err);
	assert_non_null(plain);
	assert_null(plain->listen.tls.certificate);
	assert_int_equal(plain->listen.tls.min_version, 12);
	d = cfg_restart_diff(plain, c);
	assert_string_equal(d, "listen.tls: off -> on");
	free(d);
	d = cfg_restart_diff(c, plain);
	assert_string_equal(d, "listen.tls: on -> off");
	free(d);
	cfg_free(plain);
	cfg_free(c);
	unlink(path);
	expect_error("listen:\n  tls:\n    certificate: c.pem\n" "models:\n  - name: a\n"
		     "backends:\n  - kind: cpu\n", "3:5",
		     "listen.tls: missing key \"key\" (a PEM file)");
	expect_error("listen:\n  tls:\n    certificate: c.pem\n    key: k.pem\n"
		     "    min_version: 1.1\nmodels:\n  - name: a\nbackends:\n  - kind: cpu\n",
		     "5:18", "listen.tls.min_version: expected \"1.2\" or \"1.3\", got \"1.1\"");
	expect_error("listen:\n  tls:\n    certificate: \"\"\n    key: k.pem\n"
		     "models:\n  - name: a\nbackends:\n  - kind: cpu\n",
		     "3:18", "listen.tls.certificate: expected a file name, got an empty string");
	expect_error("listen:\n  tls: on\nmodels:\n  - name: a\nbackends:\n  - kind: cpu\n",
		     "2:8", "listen.tls: expected a mapping");
	expect_error("listen:\n  tls:\n    cert: c.pem\nmodels:\n  - name: a\n"
		     "backends:\n  - kind: cpu\n", "3:5", "listen.tls: unknown key \"cert\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_relative_model_path),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_routing_admin_reload),
		cmocka_unit_test(test_restart_diff_and_drop),
		cmocka_unit_test(test_listen_tls),
		cmocka_unit_test(test_backend_kind_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

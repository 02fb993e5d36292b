#define _GNU_SOURCE	/* asprintf */
/* Unit tests for gateway/core/config.c: defaults, and messages with line:column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "model/ytree.h"
#include "util.h"

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
	assert_int_equal(c->routing.probe_ms, 1000);
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
		     "models, batching, threads_per_worker, nice, weights_layout, inline_us)");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    threads_per_worker: 2\n",
		     "5:5", "backends[0]: unknown key \"threads_per_worker\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    threads_per_worker: 0\n",
		     "5:25", "backends[0].threads_per_worker: expected an integer in [1, 256], got 0");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: fake\n    latency_us: -1\n",
		     "5:17", "backends[0].latency_us: expected an integer");
}

/* Kind cpu's weights_layout (auto by default, packed and plain, anything
 * else an error naming the key and the choices) and inline_us (20 by
 * default, 0..1000); both shown in the effective config; a change makes
 * the backend a new one (restarted on reload). */
static void test_cpu_keys(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: m\nbackends:\n  - kind: cpu\n"
				     "  - kind: cpu\n    weights_layout: packed\n    inline_us: 0\n"
				     "  - kind: cpu\n    weights_layout: plain\n    inline_us: 1000\n"
				     "  - kind: cpu\n    weights_layout: auto\n", &err);
	struct backend_conf b;

	(void)state;
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->backends[0].weights_layout, BE_WLAYOUT_AUTO);
	assert_int_equal(c->backends[1].weights_layout, BE_WLAYOUT_PACKED);
	assert_int_equal(c->backends[2].weights_layout, BE_WLAYOUT_PLAIN);
	assert_int_equal(c->backends[3].weights_layout, BE_WLAYOUT_AUTO);
	assert_string_equal(be_wlayout_name(c->backends[1].weights_layout), "packed");
	assert_int_equal(c->backends[0].inline_us, 20);
	assert_int_equal(c->backends[1].inline_us, 0);
	assert_int_equal(c->backends[2].inline_us, 1000);
	b = c->backends[0];
	assert_true(cfg_backend_same(&c->backends[0], &b));
	b.weights_layout = BE_WLAYOUT_PLAIN;
	assert_false(cfg_backend_same(&c->backends[0], &b));
	b = c->backends[0];
	b.inline_us = 0;
	assert_false(cfg_backend_same(&c->backends[0], &b));
	{
		json_t *j = cfg_to_json(c), *bs = json_object_get(j, "backends");

		assert_string_equal(json_string_value(json_object_get(json_array_get(bs, 2),
								      "weights_layout")), "plain");
		assert_string_equal(json_string_value(json_object_get(json_array_get(bs, 0),
								      "weights_layout")), "auto");
		assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 2),
								    "inline_us")), 1000);
		json_decref(j);
	}
	cfg_free(c);
	unlink(path);
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    weights_layout: fast\n",
		     "4:5", "weights_layout: expected auto, packed or plain");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    weights_layout: plain\n",
		     "5:5", "backends[0]: unknown key \"weights_layout\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    inline_us: 1001\n",
		     "5:16", "backends[0].inline_us: expected an integer in [0, 1000], got 1001");
}

/* Kind gpu: its keys, defaults and ranges (parsed in every build). */
static void test_gpu_keys(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: m\nbackends:\n  - kind: gpu\n"
				     "  - kind: gpu\n    device: 1\n    streams: 8\n    math: tf32\n"
				     "    graphs: false\n    max_batch: 512\n"
				     "  - kind: gpu\n    workers: 2\n", &err);

	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->backends[0].kind, BE_GPU);
	assert_int_equal(c->backends[0].slots, 4);	/* streams default */
	assert_int_equal(c->backends[0].device, 0);
	assert_false(c->backends[0].gpu.tf32);
	assert_true(c->backends[0].gpu.graphs);
	assert_int_equal(c->backends[0].gpu.max_batch, 0);	/* 0 = 256 */
	assert_int_equal(c->backends[1].slots, 8);
	assert_int_equal(c->backends[1].device, 1);
	assert_true(c->backends[1].gpu.tf32);
	assert_false(c->backends[1].gpu.graphs);
	assert_int_equal(c->backends[1].gpu.max_batch, 512);
	assert_int_equal(c->backends[2].slots, 2);	/* workers means streams */
	/* a changed gpu key reopens the backend */
	assert_false(cfg_backend_same(&c->backends[0], &c->backends[1]));
	cfg_free(c);
	unlink(path);
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    streams: 17\n",
		     "5:14", "backends[0].streams: expected an integer in [1, 16], got 17");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    math: fp16\n",
		     "4:5", "backends[0]: math: expected fp32 or tf32");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    graphs: maybe\n",
		     "5:13", "backends[0].graphs");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: gpu\n    max_batch: 0\n",
		     "5:16", "backends[0].max_batch: expected an integer in [1, 4096], got 0");
}

/* backends[].batching: per hosted model, validated, deep-copied, live. */
static void test_backend_batching(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: a\n  - name: b\nbackends:\n"
				     "  - kind: cpu\n    batching:\n"
				     "      b: {max_batch: 32, preferred_batch_sizes: [8, 16],"
				     " max_queue_delay_us: 0}\n"
				     "      a: {max_batch: 4}\n", &err);
	struct backend_conf dup;

	if (!c)
		fail_msg("%s", err);
	assert_int_equal(c->backends[0].n_batching, 2);
	/* in hosted-model order */
	assert_string_equal(c->backends[0].batching[0].model, "a");
	assert_int_equal(c->backends[0].batching[0].max_batch, 4);
	assert_int_equal(c->backends[0].batching[0].n_preferred, 0);
	assert_int_equal(c->backends[0].batching[0].delay_us, -1);	/* unset */
	assert_string_equal(c->backends[0].batching[1].model, "b");
	assert_int_equal(c->backends[0].batching[1].max_batch, 32);
	assert_int_equal(c->backends[0].batching[1].n_preferred, 2);
	assert_int_equal(c->backends[0].batching[1].preferred[1], 16);
	assert_int_equal(c->backends[0].batching[1].delay_us, 0);	/* set to 0 */
	cfg_backend_dup(&dup, &c->backends[0]);
	assert_ptr_not_equal(dup.batching, c->backends[0].batching);
	assert_string_equal(dup.batching[1].model, "b");
	assert_true(cfg_backend_same(&dup, &c->backends[0]));	/* batching applies live */
	cfg_backend_free(&dup);
	cfg_free(c);
	unlink(path);
	expect_error("models:\n  - name: a\n  - name: b\nbackends:\n  - kind: cpu\n"
		     "    models: [a]\n    batching:\n      b: {max_batch: 4}\n", "8:7",
		     "backends[0].batching: unknown key \"b\" (allowed: a)");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n"
		     "    batching:\n      a: {max_batch: 0}\n", "6:22",
		     "backends[0].batching.a.max_batch: expected an integer in [1, 4096], got 0");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n"
		     "    batching:\n      a: {delay: 1}\n", "6:11",
		     "backends[0].batching.a: unknown key \"delay\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n"
		     "    batching:\n      a: {preferred_batch_sizes: [8, 4]}\n", "6:38",
		     "backends[0].batching.a.preferred_batch_sizes[1]: sizes must be ascending");
}

/* Kind remote: its keys, defaults, ranges, and the expansion of a name. */
static void test_remote_keys(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: m\nbackends:\n"
				     "  - kind: remote\n    name: dpu\n    address: 10.1.2.3:9100\n"
				     "    window: 8\n    connect_timeout_ms: 200\n    timeout_ms: 300\n"
				     "    ping_ms: 400\n    reconnect_ms: 50\n    reconnect_max_ms: 800\n"
				     "    pool: dpus\n    consecutive_failures: 2\n    ejection_ms: 1000\n"
				     "    max_ejection_ms: 9000\n    max_ejection_percent: 50\n"
				     "  - kind: remote\n    address: \"[::1]:9101\"\n", &err);
	const struct be_remote_conf *r0, *r1;
	struct backend_conf copy;

	assert_non_null(c);
	r0 = &c->backends[0].remote;
	r1 = &c->backends[1].remote;
	assert_string_equal(c->backends[0].address, "10.1.2.3:9100");
	assert_int_equal(r0->window, 8);
	assert_int_equal(r0->connect_timeout_ms, 200);
	assert_int_equal(r0->timeout_ms, 300);
	assert_int_equal(r0->ping_ms, 400);
	assert_int_equal(r0->reconnect_ms, 50);
	assert_int_equal(r0->reconnect_max_ms, 800);
	assert_string_equal(r0->pool, "dpus");
	assert_int_equal(r0->consecutive_failures, 2);
	assert_int_equal(r0->ejection_ms, 1000);
	assert_int_equal(r0->max_ejection_ms, 9000);
	assert_int_equal(r0->max_ejection_percent, 50);
	/* Defaults (docs/config.md). */
	assert_string_equal(c->backends[1].name, "remote1");
	assert_string_equal(c->backends[1].address, "[::1]:9101");
	assert_int_equal(r1->window, 0);
	assert_int_equal(r1->connect_timeout_ms, 1000);
	assert_int_equal(r1->timeout_ms, 1000);
	assert_int_equal(r1->ping_ms, 1000);
	assert_int_equal(r1->reconnect_ms, 100);
	assert_int_equal(r1->reconnect_max_ms, 5000);
	assert_null(r1->pool);		/* the entry's name */
	assert_int_equal(r1->consecutive_failures, 5);
	assert_int_equal(r1->ejection_ms, 30000);
	assert_int_equal(r1->max_ejection_ms, 300000);
	assert_int_equal(r1->max_ejection_percent, 10);
	/* A deep copy (the pool too) that compares equal; a key changed
	 * makes a different backend (reopened on reload). */
	cfg_backend_dup(&copy, &c->backends[0]);
	assert_ptr_not_equal(copy.remote.pool, r0->pool);
	assert_true(cfg_backend_same(&copy, &c->backends[0]));
	copy.remote.timeout_ms++;
	assert_false(cfg_backend_same(&copy, &c->backends[0]));
	cfg_backend_free(&copy);
	/* Numeric addresses expand to themselves, names kept. */
	assert_int_equal(cfg_expand_backends(c, &err), 0);
	assert_int_equal(c->n_backends, 2);
	assert_string_equal(c->backends[0].name, "dpu");
	assert_string_equal(c->backends[1].name, "remote1");
	assert_string_equal(c->backends[0].remote.pool, "dpus");
	cfg_free(c);
	unlink(path);

	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h:1\n"
		     "    window: 65\n", "6:13", "backends[0].window: expected an integer in [0, 64], "
		     "got 65");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h:1\n"
		     "    timeout_ms: 0\n", "6:17", "backends[0].timeout_ms: expected an integer in "
		     "[1, 3600000], got 0");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h:1\n"
		     "    max_ejection_percent: 101\n", "6:27", "backends[0].max_ejection_percent: "
		     "expected an integer in [0, 100], got 101");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h\n",
		     "4:5", "address: expected host:port or [v6]:port");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h:99999\n",
		     "4:5", "got \"h:99999\"");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h:1\n"
		     "    reconnect_ms: 500\n    reconnect_max_ms: 100\n", "4:5",
		     "reconnect_max_ms: must be at least reconnect_ms");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: remote\n    address: h:1\n"
		     "    ejection_ms: 500\n    max_ejection_ms: 100\n", "4:5",
		     "max_ejection_ms: must be at least ejection_ms");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n    window: 2\n", "5:5",
		     "backends[0]: unknown key \"window\"");
}

/* "localhost" resolves to one address or two (127.0.0.1 and ::1): one
 * stays itself by name; two are two agents, NAME-1 and NAME-2, whose
 * names must not collide with another entry's. */
static void test_remote_expand(void **state)
{
	char *err = NULL;
	struct config *c = load_text("models:\n  - name: m\nbackends:\n"
				     "  - kind: remote\n    name: dpu\n    address: localhost:9100\n"
				     "  - kind: cpu\n    name: dpu-2\n", &err);
	int n;

	assert_non_null(c);
	n = c->n_backends;
	if (cfg_expand_backends(c, &err) == 0) {
		/* one address: unchanged, by name (re-resolved at reconnect) */
		assert_int_equal(c->n_backends, n);
		assert_string_equal(c->backends[0].name, "dpu");
		assert_string_equal(c->backends[0].address, "localhost:9100");
		assert_string_equal(c->backends[1].name, "dpu-2");
	} else {
		assert_non_null(strstr(err, "duplicate backend name \"dpu-2\""));
		assert_int_equal(c->n_backends, n);	/* unchanged on error */
		free(err);
		err = NULL;
		/* without the collision: two agents, one pool, sorted addresses */
		free(c->backends[1].name);
		c->backends[1].name = strdup("cpu1");
		assert_int_equal(cfg_expand_backends(c, &err), 0);
		assert_int_equal(c->n_backends, 3);
		assert_string_equal(c->backends[0].name, "dpu-1");
		assert_string_equal(c->backends[1].name, "dpu-2");
		assert_string_equal(c->backends[0].address, "127.0.0.1:9100");
		assert_string_equal(c->backends[1].address, "[::1]:9100");
		assert_string_equal(c->backends[0].remote.pool, "dpu");
		assert_string_equal(c->backends[1].remote.pool, "dpu");
		assert_string_equal(c->backends[1].models[0], "m");
		assert_string_equal(c->backends[2].name, "cpu1");
	}
	cfg_free(c);
	unlink(path);
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

/* admin.token_file: resolved against the config's directory (/tmp here),
 * the token without its line end, the path (never the token) in the JSON;
 * a token file that cannot serve is an error at the key, naming the file. */
static void test_admin_token_file(void **state)
{
	static const char tok[] = "0123456789abcdef0123456789ABCDEF";
	char tf[] = "/tmp/infergw-token-XXXXXX", text[512], *err, *js;
	struct config *c;
	json_t *j;
	FILE *f;

	f = fdopen(mkstemp(tf), "w");
	fprintf(f, "%s\r\n", tok);
	fclose(f);
	snprintf(text, sizeof(text), "admin:\n  token_file: %s\nmodels:\n  - name: a\n"
		 "backends:\n  - kind: cpu\n", tf + 5);	/* relative: "infergw-token-..." */
	c = load_text(text, &err);
	assert_non_null(c);
	assert_string_equal(c->admin.token_file, tf);
	assert_string_equal(c->admin.token, tok);
	j = cfg_to_json(c);
	js = json_dumps(j, 0);
	assert_non_null(strstr(js, tf));
	assert_null(strstr(js, tok));
	free(js);
	json_decref(j);
	cfg_free(c);
	unlink(path);
	f = fopen(tf, "w");
	fprintf(f, "%s", "0123456789abcde");	/* 15 */
	fclose(f);
	snprintf(text, sizeof(text), "admin:\n  token_file: %s\n", tf);
	expect_error_tail(text, "6:15", "holds fewer than 16 characters");
	f = fopen(tf, "w");
	fprintf(f, "%s\t%s", tok, tok);	/* a tab inside */
	fclose(f);
	expect_error_tail(text, "6:15", "not visible ASCII");
	unlink(tf);
	expect_error_tail(text, "6:15", "No such file or directory");
	expect_error_tail("admin:\n  token_file: /tmp\n", "6:15",
			  "admin.token_file: /tmp: not a regular file");
}

/* The sections added for routing, the admin listener and reloads. */
static void test_routing_admin_reload(void **state)
{
	char *err, text[1024];
	struct config *c;

	snprintf(text, sizeof(text), "%s", "routing:\n  policy: least-queue\n  priority_levels: 4\n"
		 "  probe_ms: 2500\n"
		 "admin:\n  port: 0\nreload:\n  watch: true\n  resolve_ms: 10000\n"
		 "models:\n  - name: a\n    slo_ms: 20\n    priority: 3\n"
		 "    preferred_batch_sizes: [4, 8]\n    adaptive_batching: true\n"
		 "    service_time_us: {base: 50, per_row: 2.5}\n"
		 "backends:\n  - kind: cpu\n    cost: 0.5\n");
	c = load_text(text, &err);
	assert_non_null(c);
	assert_int_equal(c->routing.policy, 1);
	assert_int_equal(c->routing.priority_levels, 4);
	assert_int_equal(c->routing.sheddable_levels, 1);
	assert_int_equal(c->routing.probe_ms, 2500);
	assert_int_equal(c->admin.port, 0);
	assert_string_equal(c->admin.address, "127.0.0.1");
	assert_true(c->reload.watch);
	assert_int_equal(c->reload.resolve_ms, 10000);
	assert_int_equal(c->reload.debounce_ms, 200);
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
	expect_error_tail("routing:\n  probe_ms: -1\n", "6:13",
			  "routing.probe_ms: expected an integer in [0, 3600000]");
	expect_error_tail("listen:\n  http2_engine: fast\n", "6:17",
			  "listen.http2_engine: expected native or nghttp2, got \"fast\"");
	expect_error_tail("admin:\n  port: -5\n", "6:9", "admin.port: expected an integer in [-1, 65535]");
	expect_error_tail("reload:\n  watch: sometimes\n", "6:10", "reload.watch: expected true or false");
	expect_error_tail("reload:\n  resolve_ms: -1\n", "6:15",
			  "reload.resolve_ms: expected an integer in [0, 3600000]");
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
/* listen.http2_engine: native unless nghttp2 is asked for; a listen
 * section without the key leaves the default. */
static void test_http2_engine(void **state)
{
	static const struct { const char *text; bool nghttp2; } cases[] = {
		{ "listen:\n  http2_engine: nghttp2\n", true },
		{ "listen:\n  http2_engine: native\n", false },
		{ "listen:\n  port: 0\n", CFG_HTTP2_NGHTTP2_DEFAULT },
		{ "", CFG_HTTP2_NGHTTP2_DEFAULT },
	};
	char *err, text[512];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config *c;

		snprintf(text, sizeof(text), "%smodels:\n  - name: a\nbackends:\n  - kind: cpu\n",
			 cases[i].text);
		c = load_text(text, &err);
		assert_non_null(c);
		assert_int_equal(c->listen.http2_nghttp2, cases[i].nghttp2);
		cfg_free(c);
		unlink(path);
	}
}

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

/* Names: a documented character set, FILE:LINE:COL errors. */
static void test_names(void **state)
{
	char *err, text[512], long_name[70];
	struct config *c;

	expect_error("models:\n  - name: 'q\"x'\nbackends:\n  - kind: cpu\n", "2:11",
		     "models[0].name: model name: character 2 is '\"'; names are 1 to 64 "
		     "characters of A-Z a-z 0-9 _ . - (not starting with . or -)");
	expect_error("models:\n  - name: \"a\\nb\"\nbackends:\n  - kind: cpu\n", "2:11",
		     "model name: character 2 is byte 0x0a");
	expect_error("models:\n  - name: -a\nbackends:\n  - kind: cpu\n", "2:11",
		     "model name: character 1 is '-'");
	expect_error("models:\n  - name: ''\nbackends:\n  - kind: cpu\n", "2:11",
		     "model name of 0 characters: expected 1 to 64");
	memset(long_name, 'x', 65);
	long_name[65] = 0;
	snprintf(text, sizeof(text), "models:\n  - name: %s\nbackends:\n  - kind: cpu\n",
		 long_name);
	expect_error(text, "2:11", "models[0].name: model name of 65 characters: expected 1 to 64");
	expect_error("models:\n  - name: a\nbackends:\n  - kind: cpu\n  - name: 'my gpu'\n"
		     "    kind: cpu\n", "5:11", "backends[1].name: backend name: character 3 is "
		     "byte 0x20");
	expect_error("models:\n  - name: a\nbackends:\n  - name: none\n    kind: cpu\n", "4:11",
		     "backends[0].name: backend name \"none\" is reserved");
	/* The whole set, 64 characters. */
	long_name[64] = 0;
	memcpy(long_name, "Az09_.-", 7);
	snprintf(text, sizeof(text), "models:\n  - name: %s\nbackends:\n  - name: b_1.x-y\n"
		 "    kind: cpu\n", long_name);
	c = load_text(text, &err);
	assert_non_null(c);
	assert_string_equal(c->models[0].name, long_name);
	assert_string_equal(c->backends[0].name, "b_1.x-y");
	cfg_free(c);
	unlink(path);
}

/* Long restart-only values: the old fixed 1024-byte buffer overflowed. */
static void test_restart_diff_long(void **state)
{
	char *err, *d, *text_a, *text_b, *want, la[701], lb[701], aa[701], ab[701];
	struct config *a, *b;

	memset(la, 'a', 700);
	memset(lb, 'b', 700);
	memset(aa, 'c', 700);
	memset(ab, 'd', 700);
	la[700] = lb[700] = aa[700] = ab[700] = 0;
	assert_true(asprintf(&text_a, "listen:\n  address: %s\nadmin:\n  address: %s\n"
			     "models:\n  - name: a\nbackends:\n  - kind: cpu\n", la, aa) > 0);
	assert_true(asprintf(&text_b, "listen:\n  address: %s\n  port: 9000\nadmin:\n"
			     "  address: %s\nmodels:\n  - name: a\nbackends:\n  - kind: cpu\n",
			     lb, ab) > 0);
	a = load_text(text_a, &err);
	unlink(path);
	b = load_text(text_b, &err);
	unlink(path);
	assert_non_null(a);
	assert_non_null(b);
	d = cfg_restart_diff(a, b);
	assert_true(asprintf(&want, "listen.address: %s -> %s; listen.port: 8000 -> 9000; "
			     "admin.address: %s -> %s", la, lb, aa, ab) > 0);
	assert_string_equal(d, want);
	free(want);
	free(d);
	free(text_a);
	free(text_b);
	cfg_free(a);
	cfg_free(b);
}

/* Size caps: refused before the document is built, with the limit named. */
static void test_file_limits(void **state)
{
	size_t n = YT_MAX_NODES + 10, len = 0;
	char *text = malloc(2 * n + 256), *err, want[128];
	struct config *c;

	/* 250010 scalars in one flow list on line 2: refused at the 250001st
	 * node (8 before the x's: root, models, its list, the mapping, name,
	 * a, labels, the list), the 249993rd x at column 24 + 2 * 249992. */
	len = sprintf(text, "models:\n  - {name: a, labels: [");
	for (size_t i = 0; i < n; i++)
		text[len++] = 'x', text[len++] = ',';
	strcpy(text + len, "x]}\nbackends:\n  - kind: cpu\n");
	expect_error(text, "2:500008", "more than 250000 nodes (the limit for a YAML file");
	/* 65 levels of nesting (the root mapping is the first): the 64th [ at column 67. */
	len = sprintf(text, "x: ");
	for (int i = 0; i < 70; i++)
		text[len++] = '[';
	for (int i = 0; i < 70; i++)
		text[len++] = ']';
	strcpy(text + len, "\n");
	expect_error(text, "1:67", "nested more than 64 levels deep");
	free(text);
	/* Over 16 MiB: a comment is enough. */
	text = malloc(YT_MAX_BYTES + 64);
	memset(text, ' ', YT_MAX_BYTES + 8);
	text[0] = '#';
	strcpy(text + YT_MAX_BYTES + 8, "\n");
	c = load_text(text, &err);
	assert_null(c);
	snprintf(want, sizeof(want), "%s: larger than 16 MiB (the limit for a YAML file", path);
	if (!err || strncmp(err, want, strlen(want)))
		fail_msg("got \"%s\", want \"%s\"", err, want);
	free(err);
	unlink(path);
	free(text);
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

/* models[].variants and variant_policy: parsed, resolved, errors name the key. */
#define B "backends:\n  - kind: cpu\n"
static void test_variants(void **state)
{
	char *err;
	struct config *c = load_text("models:\n  - name: a\n    variants: {int8: a-int8}\n"
				     "    variant_policy: int8\n  - name: b\n" B, &err);

	if (!c)
		fail_msg("%s", err);
	unlink(path);
	assert_non_null(strstr(c->models[0].int8_path, "/a-int8"));
	assert_int_equal(c->models[0].int8_path[0], '/');
	assert_non_null(strstr(c->models[0].int8_where, "models[0].variants.int8"));
	assert_int_equal(c->models[0].variant_policy, CFG_VARPOL_INT8);
	assert_null(c->models[1].int8_path);
	assert_int_equal(c->models[1].variant_policy, CFG_VARPOL_ACCURATE);
	cfg_free(c);
	expect_error("models:\n  - name: a\n    variant_policy: int8\n" B, "3:21",
		     "models[0].variant_policy: int8 needs models[0].variants.int8");
	expect_error("models:\n  - name: a\n    variants: {int8: x}\n    variant_policy: fast\n" B,
		     "4:21", "models[0].variant_policy: expected accurate, fp32 or int8");
	expect_error("models:\n  - name: a\n    variants: {fp32: x}\n" B, "3:22",
		     "the fp32 variant is models[0].path");
	expect_error("models:\n  - name: a\n    variants: {int4: x}\n" B, "3:16",
		     "models[0].variants: unknown key \"int4\"");
	expect_error("models:\n  - name: a\n    variants: {int8: \"\"}\n" B, "3:22",
		     "models[0].variants.int8: expected a model directory");
	expect_error("models:\n  - name: a\n    variants: [x]\n" B, "3:15", "models[0].variants");
}

#undef B

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_relative_model_path),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_routing_admin_reload),
		cmocka_unit_test(test_admin_token_file),
		cmocka_unit_test(test_http2_engine),
		cmocka_unit_test(test_restart_diff_and_drop),
		cmocka_unit_test(test_restart_diff_long),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_file_limits),
		cmocka_unit_test(test_listen_tls),
		cmocka_unit_test(test_backend_kind_keys),
		cmocka_unit_test(test_cpu_keys),
		cmocka_unit_test(test_gpu_keys),
		cmocka_unit_test(test_backend_batching),
		cmocka_unit_test(test_remote_keys),
		cmocka_unit_test(test_remote_expand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

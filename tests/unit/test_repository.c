/* Unit tests for gateway/api/repository.c: the bodies tritonclient sends for
 * index, load and unload, Triton's batching keys mapped onto models[]
 * keys, and everything else refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "repository.h"

static char err[768];

static int load(const char *body, struct repo_override *ov, bool *has)
{
	err[0] = 0;
	return repo_parse_load("digits", body, body ? strlen(body) : 0, ov, has, err, sizeof(err));
}

/* A load body whose parameters.config is cfg (a JSON text, escaped here). */
static int load_config(const char *cfg, struct repo_override *ov)
{
	json_t *b = json_pack("{s:{s:s}}", "parameters", "config", cfg);
	char *body = json_dumps(b, JSON_COMPACT);
	bool has = false;
	int rc = load(body, ov, &has);

	assert_int_equal(has, rc == 0);
	free(body);
	json_decref(b);
	return rc;
}

static void expect_err(const char *want)
{
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_index(void **state)
{
	bool ready = true;

	(void)state;
	assert_int_equal(repo_parse_index(NULL, 0, &ready, err, sizeof(err)), 0);
	assert_false(ready);
	assert_int_equal(repo_parse_index("{\"ready\":true}", 14, &ready, err, sizeof(err)), 0);
	assert_true(ready);
	assert_int_equal(repo_parse_index("{}", 2, &ready, err, sizeof(err)), 0);
	assert_false(ready);
	assert_int_not_equal(repo_parse_index("{\"ready\":1}", 11, &ready, err, sizeof(err)), 0);
	expect_err("index: ready: expected true or false");
	assert_int_not_equal(repo_parse_index("{\"readyy\":true}", 15, &ready, err, sizeof(err)), 0);
	expect_err("unknown key \"readyy\"");
	assert_int_not_equal(repo_parse_index("[]", 2, &ready, err, sizeof(err)), 0);
	expect_err("expected a JSON object");
	assert_int_not_equal(repo_parse_index("{", 1, &ready, err, sizeof(err)), 0);
	expect_err("index: the body is not JSON");
}

static void test_unload(void **state)
{
	const char *ok[] = { "", "{}", "{\"parameters\":{}}",
			     "{\"parameters\":{\"unload_dependents\":false}}",
			     "{\"parameters\":{\"unload_dependents\":true}}" };

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(repo_parse_unload(ok[i], strlen(ok[i]), err, sizeof(err)), 0);
	assert_int_not_equal(repo_parse_unload("{\"parameters\":{\"unload_dependents\":\"no\"}}",
					       41, err, sizeof(err)), 0);
	expect_err("parameters.unload_dependents: expected true or false");
	assert_int_not_equal(repo_parse_unload("{\"parameters\":{\"force\":1}}", 26, err,
					       sizeof(err)), 0);
	expect_err("unload: parameters not supported by infergw: \"force\"");
	assert_int_not_equal(repo_parse_unload("{\"parameters\":[]}", 17, err, sizeof(err)), 0);
	expect_err("parameters: expected an object");
}

static void test_load_without_config(void **state)
{
	struct repo_override ov;
	bool has = true;

	(void)state;
	assert_int_equal(load(NULL, &ov, &has), 0);
	assert_false(has);
	assert_int_equal(ov.set, 0);
	assert_int_equal(load("{}", &ov, &has), 0);
	assert_false(has);
	assert_int_equal(load("{\"parameters\":{}}", &ov, &has), 0);
	assert_false(has);
}

static void test_load_batching_keys(void **state)
{
	struct repo_override ov;

	(void)state;
	/* 64-bit integers as protobuf JSON writes them (strings) or as numbers. */
	assert_int_equal(load_config("{\"name\":\"digits\",\"max_batch_size\":16,"
				     "\"dynamic_batching\":{\"max_queue_delay_microseconds\":\"2500\","
				     "\"preferred_batch_size\":[8,2,4],\"default_priority_level\":\"2\","
				     "\"priority_levels\":3,\"default_queue_policy\":"
				     "{\"default_timeout_microseconds\":\"40000\",\"max_queue_size\":7,"
				     "\"timeout_action\":\"REJECT\",\"allow_timeout_override\":true}}}",
				     &ov), 0);
	assert_int_equal(ov.set, REPO_MAX_BATCH | REPO_DELAY | REPO_PREFERRED | REPO_PRIORITY |
				 REPO_LEVELS | REPO_TIMEOUT | REPO_MAX_QUEUE);
	assert_int_equal(ov.max_batch, 16);
	assert_int_equal(ov.max_queue_delay_us, 2500);
	assert_int_equal(ov.n_preferred, 3);
	assert_int_equal(ov.preferred[0], 2);
	assert_int_equal(ov.preferred[1], 4);
	assert_int_equal(ov.preferred[2], 8);
	assert_int_equal(ov.priority, 2);
	assert_int_equal(ov.priority_levels, 3);
	assert_int_equal(ov.slo_ms, 40);
	assert_int_equal(ov.max_queue, 7);
}

static void test_load_refusals(void **state)
{
	struct repo_override ov;
	bool has;

	(void)state;
	assert_int_not_equal(load("{\"parameters\":{\"file:1/model.onnx\":\"AAAA\","
				  "\"config\":\"{}\"}}", &ov, &has), 0);
	expect_err("load: model files cannot be uploaded to infergw");
	expect_err("\"file:1/model.onnx\"");
	assert_int_not_equal(load("{\"parameters\":{\"priority\":1}}", &ov, &has), 0);
	expect_err("load: parameters not supported by infergw: \"priority\"");
	assert_int_not_equal(load("{\"model\":\"digits\"}", &ov, &has), 0);
	expect_err("load: unknown key \"model\"");
	assert_int_not_equal(load("{\"parameters\":{\"config\":{}}}", &ov, &has), 0);
	expect_err("parameters.config: expected a string");

	assert_int_not_equal(load_config("{\"input\":[],\"instance_group\":[],\"dynamic_batching\":"
					 "{\"preserve_ordering\":true,\"default_queue_policy\":"
					 "{\"x\":1}}}", &ov), 0);
	expect_err("load: config keys not supported by infergw: \"input\", \"instance_group\", "
		   "\"dynamic_batching.preserve_ordering\", "
		   "\"dynamic_batching.default_queue_policy.x\"");
	assert_int_not_equal(load_config("{\"name\":\"other\"}", &ov), 0);
	expect_err("config.name: expected \"digits\"");
	assert_int_not_equal(load_config("{\"max_batch_size\":0}", &ov), 0);
	expect_err("config.max_batch_size: expected an integer 1..4096, got 0");
	assert_int_not_equal(load_config("{\"max_batch_size\":\"-1\"}", &ov), 0);
	expect_err("config.max_batch_size: expected an integer 1..4096");
	assert_int_not_equal(load_config("{\"max_batch_size\":1.5}", &ov), 0);
	expect_err("config.max_batch_size: expected an integer");
	assert_int_not_equal(load_config("{\"dynamic_batching\":{\"preferred_batch_size\":"
					 "[4,4]}}", &ov), 0);
	expect_err("preferred_batch_size: size 4 given twice");
	assert_int_not_equal(load_config("{\"dynamic_batching\":{\"preferred_batch_size\":"
					 "[1,2,3,4,5,6,7,8,9]}}", &ov), 0);
	expect_err("expected a list of at most 8 sizes");
	assert_int_not_equal(load_config("{\"dynamic_batching\":{\"default_queue_policy\":"
					 "{\"default_timeout_microseconds\":1500}}}", &ov), 0);
	expect_err("1500 is not a whole number of milliseconds");
	assert_int_not_equal(load_config("{\"dynamic_batching\":{\"default_queue_policy\":"
					 "{\"timeout_action\":\"DELAY\"}}}", &ov), 0);
	expect_err("timeout_action: only \"REJECT\"");
	assert_int_not_equal(load_config("[1]", &ov), 0);
	expect_err("parameters.config: expected a JSON object");
	assert_int_not_equal(load_config("{\"a\":", &ov), 0);
	expect_err("parameters.config: not JSON");
}

/* Refused names are listed up to 4 and cut at 48 bytes each. */
static void test_refusal_list_bounded(void **state)
{
	char cfg[4096] = "{";
	struct repo_override ov;
	size_t off = 1;

	(void)state;
	for (int i = 0; i < 20; i++)
		off += snprintf(cfg + off, sizeof(cfg) - off, "%s\"k%02d%0100d\":1", i ? "," : "", i, 0);
	snprintf(cfg + off, sizeof(cfg) - off, "}");
	assert_int_not_equal(load_config(cfg, &ov), 0);
	expect_err("\"k00000");
	expect_err("...\", ");
	expect_err(", ...");
	expect_err("\"k03");
	assert_null(strstr(err, "k04"));
	assert_true(strlen(err) < 760);
}

static struct config *two_models(bool adaptive)
{
	struct config *c = calloc(1, sizeof(*c));

	c->routing.priority_levels = 3;
	c->n_models = 2;
	c->models = calloc(2, sizeof(*c->models));
	c->models[0].name = strdup("other");
	c->models[1].name = strdup("digits");
	c->models[1].max_batch = 32;
	c->models[1].max_queue = 1024;
	c->models[1].priority = 1;
	c->models[1].adaptive = adaptive;
	c->models[1].slo_ms = adaptive ? 20 : 0;
	return c;
}

static void test_apply(void **state)
{
	struct repo_override ov = { .set = REPO_DELAY | REPO_PREFERRED | REPO_PRIORITY | REPO_LEVELS,
				    .max_queue_delay_us = 700, .n_preferred = 2,
				    .preferred = { 4, 16 }, .priority = 2, .priority_levels = 3 };
	struct config *c = two_models(false);
	json_t *j;
	char *s;

	(void)state;
	assert_int_equal(repo_apply(c, "digits", &ov, err, sizeof(err)), 0);
	assert_int_equal(c->models[1].max_queue_delay_us, 700);
	assert_int_equal(c->models[1].n_preferred, 2);
	assert_int_equal(c->models[1].preferred[1], 16);
	assert_int_equal(c->models[1].priority, 2);
	assert_int_equal(c->models[1].max_batch, 32);		/* not set: the file's */
	assert_int_equal(c->models[0].max_queue_delay_us, 0);	/* another model: untouched */
	assert_int_equal(repo_apply(c, "gone", &ov, err, sizeof(err)), 0);
	j = repo_override_json(&ov);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"max_queue_delay_us\":700,\"preferred_batch_sizes\":[4,16],"
			       "\"priority\":2}");
	free(s);
	json_decref(j);

	ov.priority_levels = 4;
	assert_int_not_equal(repo_apply(c, "digits", &ov, err, sizeof(err)), 0);
	expect_err("priority_levels: 4, but priority levels are gateway-wide: "
		   "routing.priority_levels is 3");
	ov.priority_levels = 3;
	ov.priority = 4;
	assert_int_not_equal(repo_apply(c, "digits", &ov, err, sizeof(err)), 0);
	expect_err("default_priority_level: 4 is past routing.priority_levels (3)");
	cfg_free(c);

	c = two_models(true);
	ov = (struct repo_override){ .set = REPO_TIMEOUT, .slo_ms = 0 };
	assert_int_not_equal(repo_apply(c, "digits", &ov, err, sizeof(err)), 0);
	expect_err("adaptive_batching");
	assert_int_equal(c->models[1].slo_ms, 20);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_unload),
		cmocka_unit_test(test_load_without_config),
		cmocka_unit_test(test_load_batching_keys),
		cmocka_unit_test(test_load_refusals),
		cmocka_unit_test(test_refusal_list_bounded),
		cmocka_unit_test(test_apply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

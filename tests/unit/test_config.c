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
	assert_int_equal(c->backends[0].n_models, 1);	/* hosts every model by default */
	assert_string_equal(c->backends[0].models[0], "m");
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
	expect_error("models:\n  - name: a\n    max_batch: lots\nbackends:\n  - kind: cpu\n", "3:16",
		     "models[0].max_batch: expected an integer, got \"lots\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_relative_model_path),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for gateway/core/metrics.c: the registry has no cap, label values are escaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <event2/buffer.h>
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
	met_count(last, OUT_SUCCESS);
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
	met_count(v8, OUT_SUCCESS);
	met_count(v8, OUT_SUCCESS);
	met_count(v32, OUT_REJECTED);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variant_series),
		cmocka_unit_test(test_every_series_exported),
		cmocka_unit_test(test_label_values_escaped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

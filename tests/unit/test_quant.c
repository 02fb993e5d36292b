/* test_quant.c - quant_weights bounds and edge cases, quant_model's errors. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "model/quant.h"

#define DIGITS "config/models/digits"

/* |w - q*s| <= s/2 per channel; an all-zero channel gets scale 1, q 0;
 * the channel's largest |w| maps to +-127. */
static void test_weights_bounds(void **state)
{
	enum { OUT = 5, IN = 33 };
	float w[OUT * IN], s[OUT];
	int8_t q[OUT * IN];
	long bad = -1;

	(void)state;
	srand(7);
	for (int i = 0; i < OUT * IN; i++)
		w[i] = (float)rand() / RAND_MAX * 2 - 1;
	for (int j = 0; j < IN; j++) {
		w[1 * IN + j] = 0;		/* all zero */
		w[2 * IN + j] *= 1e-30f;	/* tiny */
		w[3 * IN + j] *= 1e30f;		/* huge */
	}
	w[4 * IN + 3] = -7.5f;			/* one outlier: only its channel coarser */
	assert_int_equal(quant_weights(w, OUT, IN, q, s, &bad), 0);
	assert_true(s[1] == 1.0f);
	for (int k = 0; k < OUT; k++) {
		int peak = 0;

		assert_true(isfinite(s[k]) && s[k] > 0);
		for (int j = 0; j < IN; j++) {
			double err = fabs((double)w[k * IN + j] - (double)q[k * IN + j] * s[k]);

			assert_true(err <= s[k] / 2 * (1 + 1e-6));
			peak = abs(q[k * IN + j]) > peak ? abs(q[k * IN + j]) : peak;
		}
		assert_int_equal(peak, k == 1 ? 0 : 127);
	}
	assert_int_equal(q[4 * IN + 3], -127);
	assert_true(s[4] > s[0]);
	w[2 * IN + 5] = NAN;
	assert_int_equal(quant_weights(w, OUT, IN, q, s, &bad), -EINVAL);
	assert_int_equal(bad, 2 * IN + 5);
	w[2 * IN + 5] = INFINITY;
	assert_int_equal(quant_weights(w, OUT, IN, q, s, &bad), -EINVAL);
}

static void test_q8_rounding(void **state)
{
	(void)state;
	assert_int_equal(model_q8(0.5, 1), 1);
	assert_int_equal(model_q8(-0.5, 1), -1);
	assert_int_equal(model_q8(0.49, 1), 0);
	assert_int_equal(model_q8(1e9, 1), 127);
	assert_int_equal(model_q8(-1e9, 1), -127);
	assert_int_equal(model_q8(NAN, 1), 0);
	float z[3] = { 0, 0, 0 }, v[3] = { 1, -254, 3 };
	assert_true(model_q8_scale(z, 3) == 1.0);
	assert_true(model_q8_scale(v, 3) == 2.0);
}

/* quant_model fails with message containing want. */
static void expect_fail(const char *in, const char *out, const struct quant_opts *o,
			const char *want)
{
	char *err = NULL;

	assert_int_not_equal(quant_model(in, out, o, &err), 0);
	assert_non_null(err);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	free(err);
}

/* [W | -W] of a 2 x 3 layer: each row its weights, then their negations;
 * -128 (which a hand-made file may hold) negates to 127, not to -128. */
static void test_split_weights(void **state)
{
	static const int8_t q[] = { 1, -2, 127, -128, 0, 5 };
	static const int8_t want[] = { 1, -2, 127, -1, 2, -127, -128, 0, 5, 127, 0, -5 };
	struct layer l = { .kind = LAYER_DENSE, .in = 3, .out = 2, .qweight = q };
	int8_t got[12];

	(void)state;
	memset(got, 0x55, sizeof(got));
	quant_split_weights(&l, got);
	assert_memory_equal(got, want, sizeof(want));
}

static void test_tool_errors(void **state)
{
	char dir[] = "/tmp/igw-quant-XXXXXX", p[256], p2[320];
	struct quant_opts o = { 0 }, cal = { .calibration = DIGITS "/model.safetensors" };
	char *err = NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	expect_fail("/nonexistent", dir, &o, "/nonexistent/model.yaml");
	/* not empty, no force */
	snprintf(p, sizeof(p), "%s/junk", dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	expect_fail(DIGITS, dir, &o, "not empty (--force");
	unlink(p);
	/* calibration file without features */
	expect_fail(DIGITS, dir, &cal, "need tensor features");
	/* unwritable: a path below a regular file */
	snprintf(p, sizeof(p), "%s/file", dir);
	f = fopen(p, "w");
	fclose(f);
	snprintf(p2, sizeof(p2), "%s/file/out", dir);
	expect_fail(DIGITS, p2, &o, "cannot create directory");
	unlink(p);
	/* good, then quantizing the INT8 model again is refused */
	snprintf(p, sizeof(p), "%s/q", dir);
	assert_int_equal(quant_model(DIGITS, p, &o, &err), 0);
	expect_fail(p, p2, &o, "already variant int8");
	/* and it exists now: refused without force, fine with it */
	expect_fail(DIGITS, p, &o, "not empty");
	o.force = true;
	assert_int_equal(quant_model(DIGITS, p, &o, &err), 0);
	snprintf(p2, sizeof(p2), "%s/model.yaml", p);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s/model.safetensors", p);
	unlink(p2);
	rmdir(p);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights_bounds),
		cmocka_unit_test(test_q8_rounding),
		cmocka_unit_test(test_split_weights),
		cmocka_unit_test(test_tool_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_rowk.c - the CPU backend's row kernels (backends/cpu/rowk.c): each
 * kernel on values whose answer is known (rounding boundaries, clamps,
 * NaN and infinities, every tail length, bytes past the row untouched),
 * under the portable and, where the CPU has AVX-512, the hand-written
 * versions; and the two against each other on random rows.  Without
 * AVX-512 the comparisons are skipped (counted as such), the portable
 * checks still run. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/rowk.h"

#define GUARD 0x5a	/* bytes past a row: must stay */
#define MAXW 48

/* The ISAs to run a check under: portable, then AVX-512 when the CPU has it. */
static int isas(bool *simd)
{
	simd[0] = false;
	simd[1] = true;
	return rowk_simd_set(true) ? 2 : 1;
}

/* Deterministic values (xorshift): uniform in [lo, hi). */
static uint64_t rng = 88172645463325252ull;

static float uni(float lo, float hi)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return lo + (hi - lo) * (float)((rng >> 11) * 0x1p-53);
}

static const float q8_in[] = { 0.f, -0.f, 0.49f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f,
			       126.4f, 126.5f, -126.5f, 127.9f, 200.f, -200.f, 1e30f, -1e30f,
			       INFINITY, -INFINITY, NAN, 3e9f, -3e9f };
static const int8_t q8_s8[] = { 0, 0, 0, 1, -1, 2, -2, 3, -3, 126, 127, -127, 127, 127, -127,
				127, -127, 127, -127, 0, 127, -127 };
static const uint8_t q8_u8[] = { 0, 0, 0, 1, 0, 2, 0, 3, 0, 126, 127, 0, 127, 127, 0, 127, 0,
				 127, 0, 0, 127, 0 };
#define NQ (sizeof(q8_in) / sizeof(q8_in[0]))

/* Every mode, every width 1..MAXW, the known values cycled through the
 * row from every offset: the known bytes, and the guard past the row. */
static void test_q8_known(void **state)
{
	bool simd[2];
	int ni = isas(simd);

	(void)state;
	for (int s = 0; s < ni; s++) {
		assert_true(rowk_simd_set(simd[s]) == simd[s]);
		for (int n = 1; n <= MAXW; n++) {
			for (int off = 0; off < (int)NQ; off++) {
				float x[MAXW];
				uint8_t q[2 * MAXW + 16];

				for (int j = 0; j < n; j++)
					x[j] = q8_in[(j + off) % NQ];
				for (int mode = ROWK_Q8_S8; mode <= ROWK_Q8_SPLIT; mode++) {
					int len = mode == ROWK_Q8_SPLIT ? 2 * n : n;

					memset(q, GUARD, sizeof(q));
					rowk_q8(x, n, 1.0f, q, mode);
					for (int j = 0; j < n; j++) {
						int k = (j + off) % NQ, want;

						want = mode == ROWK_Q8_U8 ? q8_u8[k] : q8_s8[k];
						if (mode == ROWK_Q8_SPLIT) {
							if (q[j] != (want > 0 ? want : 0) ||
							    q[n + j] != (want < 0 ? -want : 0))
								fail_msg("simd %d n %d mode split x %g: %d/%d",
									 simd[s], n, (double)x[j], q[j], q[n + j]);
						} else if ((mode == ROWK_Q8_S8 ? (int)(int8_t)q[j] : q[j]) !=
							   want) {
							fail_msg("simd %d n %d mode %d x %g: got %d want %d",
								 simd[s], n, mode, (double)x[j], q[j], want);
						}
					}
					for (int j = len; j < (int)sizeof(q); j++)
						assert_int_equal(q[j], GUARD);
				}
			}
		}
	}
	rowk_simd_set(true);
}

/* The portable and AVX-512 quantizers on random rows and scales: the same
 * bytes, but one step apart where x * inv is within float rounding of a
 * .5 boundary (the multiply and add may be fused in one and not the
 * other). */
static void test_q8_agree(void **state)
{
	(void)state;
	if (!rowk_simd_set(true))
		skip();
	for (int it = 0; it < 3000; it++) {
		int n = 1 + it % MAXW, mode = it % 3;
		float x[MAXW], inv = uni(0.01f, 3.f);
		uint8_t a[2 * MAXW], b[2 * MAXW];

		for (int j = 0; j < n; j++)
			x[j] = uni(-160.f, 160.f);
		rowk_simd_set(false);
		rowk_q8(x, n, inv, a, mode);
		rowk_simd_set(true);
		rowk_q8(x, n, inv, b, mode);
		for (int j = 0; j < (mode == ROWK_Q8_SPLIT ? 2 * n : n); j++) {
			double v = fabs((double)x[j % n] * inv), frac = v - floor(v);

			if (a[j] == b[j])
				continue;
			if (fabs(frac - 0.5) > 1e-4 || abs((int)(int8_t)a[j] - (int)(int8_t)b[j]) > 1)
				fail_msg("n %d mode %d x %.9g inv %.9g: portable %d, avx-512 %d", n,
					 mode, (double)x[j % n], (double)inv, a[j], b[j]);
		}
	}
}

/* absmax: exact (no arithmetic but |.| and max), NaN skipped, 0 for none. */
static void test_absmax(void **state)
{
	bool simd[2];
	int ni = isas(simd);

	(void)state;
	for (int s = 0; s < ni; s++) {
		rowk_simd_set(simd[s]);
		assert_true(rowk_absmax(NULL, 0) == 0.f);
		for (int n = 1; n <= MAXW; n++) {
			for (int at = 0; at < n; at++) {
				float x[MAXW + 16];
				float want = 0.f;

				for (int j = 0; j < n; j++) {
					x[j] = uni(-10.f, 10.f);
					want = fabsf(x[j]) > want ? fabsf(x[j]) : want;
				}
				for (int j = n; j < MAXW + 16; j++)
					x[j] = 1e30f;	/* past the row: never read */
				assert_true(rowk_absmax(x, n) == want);
				x[at] = NAN;	/* skipped: the max of the others */
				want = 0.f;
				for (int j = 0; j < n; j++)
					if (j != at && fabsf(x[j]) > want)
						want = fabsf(x[j]);
				assert_true(rowk_absmax(x, n) == want);
				x[at] = -INFINITY;
				assert_true(rowk_absmax(x, n) == INFINITY);
			}
		}
	}
	rowk_simd_set(true);
}

/* float32 values a and b within k ulps (both NaN counts as equal). */
static bool near_ulps(float a, float b, int k)
{
	int32_t ia, ib;

	if (isnan(a) || isnan(b))
		return isnan(a) && isnan(b);
	if (a == b)
		return true;
	memcpy(&ia, &a, 4);
	memcpy(&ib, &b, 4);
	if ((ia < 0) != (ib < 0))
		return false;
	return abs(ia - ib) <= k;
}

/* dequant: y x rs + bias, ReLU, the returned max; the guard past the row. */
static void test_dequant(void **state)
{
	bool simd[2];
	int ni = isas(simd);

	(void)state;
	for (int s = 0; s < ni; s++) {
		rowk_simd_set(simd[s]);
		for (int it = 0; it < 2000; it++) {
			int n = 1 + it % MAXW;
			bool relu = it & 1, has_bias = it & 2;
			float y[MAXW + 16], y0[MAXW], bias[MAXW], rs = uni(0.001f, 2.f), mx, want = 0.f;

			for (int j = 0; j < n; j++) {
				y0[j] = y[j] = uni(-100.f, 100.f);
				bias[j] = uni(-5.f, 5.f);
			}
			if (it % 7 == 0)
				y0[it % n] = y[it % n] = NAN;
			for (int j = n; j < MAXW + 16; j++)
				y[j] = 12345.f;
			mx = rowk_dequant(y, has_bias ? bias : NULL, n, rs, relu);
			for (int j = 0; j < n; j++) {
				double v = (double)y0[j] * rs + (has_bias ? bias[j] : 0.f);

				if (relu && v < 0)
					v = 0;
				if (isnan(y0[j])) {
					assert_true(isnan(y[j]));	/* ReLU keeps NaN */
					continue;
				}
				/* one rounding (fused) or two: the product's and the
				 * sum's, each half an ulp of what it rounded */
				if (fabs(y[j] - v) > (fabs((double)y0[j] * rs) + fabs(v)) * 0x1p-24 + 1e-30)
					fail_msg("simd %d n %d j %d: %.9g want %.9g", simd[s], n, j,
						 (double)y[j], v);
				if (relu)
					assert_false(y[j] < 0.f);
				want = fabsf(y[j]) > want ? fabsf(y[j]) : want;
			}
			assert_true(mx == want);
			for (int j = n; j < MAXW + 16; j++)
				assert_true(y[j] == 12345.f);
		}
	}
	rowk_simd_set(true);
}

/* The softmax of x[0..w) in float64 from the float32 differences x - max
 * (what the kernel subtracts in float32: that rounding is the input's). */
static void softmax_ref(const float *x, int w, double *out)
{
	float mx = -INFINITY;
	double sum = 0;

	for (int j = 0; j < w; j++)
		mx = x[j] > mx ? x[j] : mx;
	for (int j = 0; j < w; j++)
		sum += out[j] = exp((double)(x[j] - mx));
	for (int j = 0; j < w; j++)
		out[j] /= sum;
}

/* softmax: against float64 on random rows (narrow and wide widths), the
 * guard past the row, and the rows that answer NaN. */
static void test_softmax(void **state)
{
	bool simd[2];
	int ni = isas(simd);

	(void)state;
	for (int s = 0; s < ni; s++) {
		rowk_simd_set(simd[s]);
		for (int it = 0; it < 3000; it++) {
			int w = 1 + it % MAXW;
			float x[MAXW + 16], x0[MAXW], span = it % 3 == 0 ? 200.f : 20.f;
			double ref[MAXW];

			for (int j = 0; j < w; j++)
				x0[j] = x[j] = uni(-span, span);
			if (it % 5 == 0)	/* a lane that underflows to exactly 0 */
				x0[it % w] = x[it % w] = -INFINITY;
			for (int j = w; j < MAXW + 16; j++)
				x[j] = 7.f;
			softmax_ref(x0, w, ref);
			rowk_softmax(x, w);
			for (int j = 0; j < w; j++)
				if (fabs(x[j] - ref[j]) > 1e-6 * ref[j] + 1e-37)
					fail_msg("simd %d w %d j %d: %.9g want %.9g", simd[s], w, j,
						 (double)x[j], ref[j]);
			for (int j = w; j < MAXW + 16; j++)
				assert_true(x[j] == 7.f);
		}
		for (int w = 1; w <= MAXW; w++) {	/* NaN, +Inf, all -Inf: NaN throughout */
			for (int kind = 0; kind < 3; kind++) {
				float x[MAXW];

				for (int j = 0; j < w; j++)
					x[j] = kind == 2 ? -INFINITY : uni(-3.f, 3.f);
				if (kind < 2)
					x[w / 2] = kind == 0 ? NAN : INFINITY;
				rowk_softmax(x, w);
				for (int j = 0; j < w; j++)
					if (!isnan(x[j]))
						fail_msg("simd %d w %d kind %d j %d: %g, not NaN", simd[s], w,
							 kind, j, (double)x[j]);
			}
		}
	}
	rowk_simd_set(true);
}

/* The two softmaxes agree to a few ulps (same reduction and sum order;
 * the polynomial fused or not). */
static void test_softmax_agree(void **state)
{
	(void)state;
	if (!rowk_simd_set(true))
		skip();
	for (int it = 0; it < 3000; it++) {
		int w = 1 + it % ROWK_NARROW;
		float a[ROWK_NARROW], b[ROWK_NARROW];

		for (int j = 0; j < w; j++)
			a[j] = b[j] = uni(-30.f, 30.f);
		rowk_simd_set(false);
		rowk_softmax(a, w);
		rowk_simd_set(true);
		rowk_softmax(b, w);
		for (int j = 0; j < w; j++)
			if (!near_ulps(a[j], b[j], 4))
				fail_msg("w %d j %d: portable %.9g, avx-512 %.9g", w, j, (double)a[j],
					 (double)b[j]);
	}
}

/* The switch: off always takes; on only with AVX-512 (what the CPU says). */
static void test_simd_switch(void **state)
{
	bool has;

	(void)state;
#if defined(__x86_64__)
	__builtin_cpu_init();
	has = __builtin_cpu_supports("avx512f");
#else
	has = false;
#endif
	assert_false(rowk_simd_set(false));
	assert_false(rowk_simd());
	assert_true(rowk_simd_set(true) == has);
	assert_true(rowk_simd() == has);
	print_message("row kernels: %s\n", has ? "AVX-512" : "portable (no AVX-512 here)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simd_switch),
		cmocka_unit_test(test_q8_known),
		cmocka_unit_test(test_q8_agree),
		cmocka_unit_test(test_absmax),
		cmocka_unit_test(test_dequant),
		cmocka_unit_test(test_softmax),
		cmocka_unit_test(test_softmax_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * rowk.c - the CPU backend's per-row element kernels (see rowk.h): the
 * portable versions, vectorized by the compiler and cloned per ISA, and
 * hand-written AVX-512 ones, chosen once at load by the CPU.
 */
#include "rowk.h"
#include "model/model.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__has_feature)	/* clang (tests/fuzz/build.sh) */
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define ROWK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)	/* gcc */
#define ROWK_SANITIZED 1
#endif

/*
 * The INT8 element loops.  Written so that the compiler vectorizes them
 * (omp simd: no aliasing to prove, a max reduction allowed) and cloned per
 * ISA (AVX-512, AVX2, baseline) with a run-time choice: the build targets
 * plain x86-64, these loops are the only C code on the INT8 path that
 * touches every activation.  Measured on mlp-large at batch 64: the scalar
 * versions (double max per row, reloads of the layer's fields through
 * -fno-strict-aliasing) took a third of the INT8 batch.
 */
#if !defined(__x86_64__) || defined(ROWK_SANITIZED)
/* x86-64 only (the arm64 build: one ISA).  And not under a sanitizer: the
 * clones' ifunc resolvers run while the dynamic linker relocates, before the
 * sanitizer's runtime is up; instrumented, they crash (TSan does at once).
 * Sanitizer builds check correctness, not speed: baseline code only. */
#define ROWK_CLONES
#else
#define ROWK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

/*
 * Max reductions over ROWK_LANES accumulators, folded by halving.  An
 * omp simd max reduction ends in a scalar loop over the vector's lanes (a
 * dependent compare each, ~4 cycles): on rows of tens of values, as long
 * as the row itself (perf on digits: absmax and dequant_row were a third
 * of an INT8 batch, the softmax 40% of an FP32 one).  Loops of
 * ROWK_LANES fixed iterations compile to whole vectors.
 */
#define ROWK_LANES 16

/* acc[j] = the larger of acc[j], acc[j + n] for j < n: one fold. */
static inline void rowk_fold_max(float *acc, int n)
{
	for (int j = 0; j < n; j++)
		acc[j] = acc[j] > acc[j + n] ? acc[j] : acc[j + n];
}

/* The largest of acc[0..ROWK_LANES); acc is overwritten.  Each fold has
 * a constant trip count, so that it compiles to whole vectors (a loop
 * over the halving width stayed scalar: ~125 instructions a row). */
static inline float rowk_lanes_max(float *acc)
{
	_Static_assert(ROWK_LANES == 16, "four folds");
	rowk_fold_max(acc, 8);
	rowk_fold_max(acc, 4);
	rowk_fold_max(acc, 2);
	rowk_fold_max(acc, 1);
	return acc[0];
}

/* max(m, |v|); a NaN v leaves m. */
static inline float rowk_max_abs(float m, float v)
{
	v = fabsf(v);
	return v > m ? v : m;
}

/* Max |x| over n values.  A NaN may or may not be skipped, by lane: its
 * row answers garbage either way (never undefined behaviour), and rows are
 * independent. */
ROWK_CLONES
static float rowk_c_absmax(const float *restrict x, int n)
{
	float acc[ROWK_LANES] = { 0 };
	int j, k;

	for (j = 0; j + ROWK_LANES <= n; j += ROWK_LANES)
#pragma omp simd
		for (k = 0; k < ROWK_LANES; k++)
			acc[k] = rowk_max_abs(acc[k], x[j + k]);
	for (k = 0; j + k < n; k++)
		acc[k] = rowk_max_abs(acc[k], x[j + k]);
	return rowk_lanes_max(acc);
}

/*
 * x[0..n) x inv rounded half away from zero, clamped to +-127, NaN -> 0:
 * model_q8 in float32 (the reference divides in float64, so a value within
 * an ulp of a .5 boundary may round one step apart; tests allow for it),
 * stored as mode says.
 */
ROWK_CLONES
static void rowk_c_q8(const float *restrict x, int n, float inv, void *restrict q,
		      enum rowk_q8_mode mode)
{
	int8_t *qs = q;		/* both based on q: not restrict (split uses both) */
	uint8_t *qu = q;

	if (mode == ROWK_Q8_U8) {
#pragma omp simd
		for (int j = 0; j < n; j++) {
			float v = x[j] * inv + 0.5f;

			v = v > MODEL_Q8_MAX ? MODEL_Q8_MAX : v;
			qu[j] = (uint8_t)(v > 0.f ? (int)v : 0);	/* NaN, < 0: 0 */
		}
		return;
	}
#pragma omp simd
	for (int j = 0; j < n; j++) {
		float v = x[j] * inv;

		v += copysignf(0.5f, v);
		v = v > MODEL_Q8_MAX ? MODEL_Q8_MAX : v;
		v = v < -MODEL_Q8_MAX ? -MODEL_Q8_MAX : v;
		qs[j] = (int8_t)(v == v ? (int)v : 0);
	}
	if (mode != ROWK_Q8_SPLIT)
		return;
	for (int j = n - 1; j >= 0; j--) {	/* qs[j] is read before qu[j] is written */
		int v = qs[j];

		qu[n + j] = (uint8_t)(v < 0 ? -v : 0);
		qu[j] = (uint8_t)(v > 0 ? v : 0);
	}
}

/* rowk_c_dequant's element k; max(m, |its value|). */
static inline float rowk_dequant_one(float *restrict y, const float *restrict bias, int k,
				       float rs, bool relu, float m)
{
	float v = y[k] * rs + (bias ? bias[k] : 0.f);

	v = relu && v < 0.f ? 0.f : v;
	y[k] = v;
	return rowk_max_abs(m, v);
}

/* Dynamic INT8 layer output, one row in place: y x rs (the row's input
 * scale; y holds acc x w_scale) + bias, ReLU.  Returns max |y|. */
ROWK_CLONES
static float rowk_c_dequant(float *restrict y, const float *restrict bias, int n, float rs,
				bool relu)
{
	float acc[ROWK_LANES] = { 0 };
	int j, k;

	for (j = 0; j + ROWK_LANES <= n; j += ROWK_LANES)
#pragma omp simd
		for (k = 0; k < ROWK_LANES; k++)
			acc[k] = rowk_dequant_one(y + j, bias ? bias + j : NULL, k, rs, relu,
						    acc[k]);
	for (k = 0; j + k < n; k++)
		acc[k] = rowk_dequant_one(y + j, bias ? bias + j : NULL, k, rs, relu, acc[k]);
	return rowk_lanes_max(acc);
}

/*
 * e^x in float32 for the softmax, in a form the vectorizer takes (libm's
 * expf is a call per value): x = n ln2 + r with |r| <= ln2 / 2 (ln2 split
 * in two so that n ln2 is exact), e^r by Cephes' expf polynomial, 2^n put
 * into the exponent bits.  Within 2 ulp of e^x; below -87.3 (the result
 * would be a denormal) it returns 0, NaN stays NaN.  The softmax's
 * arguments are x - max <= 0.
 */
static inline float rowk_expf(float x)
{
	union { int32_t i; float f; } s;	/* 2^n built in the exponent bits */
	float x0 = x, n, r, p;

	/* selects, no branches and no bools (the vectorizer takes neither):
	 * clamp, then scale by 2^-127 -> 0 where the result would underflow
	 * and for NaN (whose conversion to int would be undefined) */
	x = x < -88.f ? -88.f : x;
	x = x > 88.3f ? 88.3f : x;
	n = floorf(x * 1.44269504f + 0.5f);
	r = x - n * 0.693359375f + n * 2.12194440e-4f;
	p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	n = x0 < -87.3f ? -127.f : n;
	n = x != x ? -127.f : n;
	s.i = ((int32_t)n + 127) << 23;
	return p * s.f;	/* NaN: p is NaN */
}

/*
 * Softmax of one row of width w, in place; max-subtracted, summed in
 * float64 like model_forward_ref.  Every loop vectorizes (rowk_expf);
 * measured on mlp-large INT8 at batch 64, the scalar loops with libm's
 * expf, on one thread while the team idled, were about 7% of the batch.
 */
ROWK_CLONES
static void rowk_c_softmax_wide(float *restrict x, int w)
{
	float mx = x[0];
	double sum = 0;
	int j;

#pragma omp simd reduction(max : mx)
	for (j = 1; j < w; j++)
		mx = x[j] > mx ? x[j] : mx;
#pragma omp simd
	for (j = 0; j < w; j++)
		x[j] = rowk_expf(x[j] - mx);
#pragma omp simd reduction(+ : sum)
	for (j = 0; j < w; j++)
		sum += x[j];
#pragma omp simd
	for (j = 0; j < w; j++)
		x[j] = (float)(x[j] / sum);
}

/*
 * rowk_c_softmax_wide for a narrow row (w <= ROWK_NARROW: digits' 10
 * classes), the same arithmetic on whole vectors.  There every loop above
 * ran as a scalar remainder (w under one AVX-512 vector): 40% of the
 * backend's time on a digits batch of 32 (perf, bench/int8 -p igw-f32).
 * Here the row is padded to ROWK_NARROW lanes of -Inf, whose rowk_expf
 * is exactly 0 (and a row of -Inf still answers NaN, as model_forward_ref
 * does), so each loop has a fixed trip count; the max (rowk_lanes_max)
 * and the float64 sum fold by halving, and the sum's reciprocal is taken
 * once.
 */
ROWK_CLONES
static void rowk_c_softmax_narrow(float *restrict x, int w)
{
	float t[ROWK_NARROW], m[ROWK_NARROW], mx;
	double d[ROWK_NARROW / 2], inv;
	int j;

	_Static_assert(ROWK_NARROW == 16, "the folds below");

	for (j = 0; j < ROWK_NARROW; j++)
		m[j] = t[j] = j < w ? x[j] : -INFINITY;
	mx = rowk_lanes_max(m);
#pragma omp simd
	for (j = 0; j < ROWK_NARROW; j++)
		t[j] = rowk_expf(t[j] - mx);
	for (j = 0; j < ROWK_NARROW / 2; j++)
		d[j] = (double)t[j] + (double)t[j + ROWK_NARROW / 2];
	/* the folds by halving, each a constant trip count (whole vectors) */
	for (j = 0; j < 4; j++)
		d[j] += d[j + 4];
	for (j = 0; j < 2; j++)
		d[j] += d[j + 2];
	inv = 1.0 / (d[0] + d[1]);
	/* every lane, then the row's w: a loop over w ran scalar */
	for (j = 0; j < ROWK_NARROW; j++)
		t[j] = (float)(t[j] * inv);
	memcpy(x, t, (size_t)w * sizeof(*x));
}

/*
 * The AVX-512 kernels.  The compiler's clones above stay at 256-bit
 * vectors with compare-and-blend chains for the clamps and the NaN test
 * (~30 instructions per 8 values in the quantize) and a call's fixed cost
 * on rows of tens of values; perf on digits INT8 at batch 64 (bench/int8
 * -p igw-s8): the quantize, dequantize, absmax and softmax loops were 73%
 * of the batch.  Here a row is whole 16-lane vectors, the tail a mask
 * (masked loads do not fault past the row), NaN lanes a mask into the
 * conversion, and the clamp then a narrowing store.
 */
#if defined(__x86_64__)
#define ROWK_512 __attribute__((target("avx512f")))

/* Lanes [0, n - j) of a vector at j, at most 16. */
ROWK_512 static inline __mmask16 rowk512_tail(int n, int j)
{
	return n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
}

/* max(|v|, m) by lane; a NaN v leaves m (MAXPS answers its second operand
 * when either is NaN). */
ROWK_512 static inline __m512 rowk512_max_abs(__m512 m, __m512 v)
{
	return _mm512_max_ps(_mm512_abs_ps(v), m);
}

ROWK_512 static float rowk512_absmax(const float *x, int n)
{
	__m512 m = _mm512_setzero_ps();

	for (int j = 0; j < n; j += 16)
		m = rowk512_max_abs(m, _mm512_maskz_loadu_ps(rowk512_tail(n, j), x + j));
	return _mm512_reduce_max_ps(m);
}

/* The s8 lanes of v = x x inv as rowk_q8 rounds them: v + copysign(0.5, v),
 * clamped to +-127 in float (so that no lane overflows the conversion),
 * truncated; NaN lanes 0. */
ROWK_512 static inline __m512i rowk512_q8_s8(__m512 v)
{
	const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
	__m512 half = _mm512_castsi512_ps(_mm512_or_si512(
		_mm512_and_si512(_mm512_castps_si512(v), sign),
		_mm512_castps_si512(_mm512_set1_ps(0.5f))));
	__mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);

	v = _mm512_add_ps(v, half);
	v = _mm512_min_ps(v, _mm512_set1_ps((float)MODEL_Q8_MAX));
	v = _mm512_max_ps(v, _mm512_set1_ps((float)-MODEL_Q8_MAX));
	return _mm512_maskz_cvttps_epi32(ord, v);
}

/* The u8 lanes: v + 0.5 clamped above to 127, truncated, then at least 0
 * (negative and NaN lanes 0; a lane below INT_MIN converts to INT_MIN). */
ROWK_512 static inline __m512i rowk512_q8_u8(__m512 v)
{
	__mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);

	v = _mm512_min_ps(_mm512_add_ps(v, _mm512_set1_ps(0.5f)), _mm512_set1_ps((float)MODEL_Q8_MAX));
	return _mm512_max_epi32(_mm512_maskz_cvttps_epi32(ord, v), _mm512_setzero_si512());
}

ROWK_512 static void rowk512_q8(const float *x, int n, float inv, void *q,
				enum rowk_q8_mode mode)
{
	const __m512 vinv = _mm512_set1_ps(inv);
	uint8_t *b = q;

	for (int j = 0; j < n; j += 16) {
		__mmask16 k = rowk512_tail(n, j);
		__m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + j), vinv);
		__m512i i;

		if (mode == ROWK_Q8_U8) {
			_mm512_mask_cvtepi32_storeu_epi8(b + j, k, rowk512_q8_u8(v));
			continue;
		}
		i = rowk512_q8_s8(v);
		if (mode == ROWK_Q8_S8) {
			_mm512_mask_cvtepi32_storeu_epi8(b + j, k, i);
			continue;
		}
		_mm512_mask_cvtepi32_storeu_epi8(b + j, k, _mm512_max_epi32(i, _mm512_setzero_si512()));
		_mm512_mask_cvtepi32_storeu_epi8(b + n + j, k,
						 _mm512_max_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), i),
								  _mm512_setzero_si512()));
	}
}

/*
 * The first min(n, 16) lanes of v at p.  A short row's tail goes through
 * the stack: a masked store's whole 64 bytes count when a later load is
 * checked against it, so the next row's load (adjacent: rows of 10 are 40
 * bytes apart) would be ordered behind it or replayed; perf on digits at
 * batch 64 put the softmax at 43% of the batch with a masked store, 29%
 * with the compiler's scalar stores.
 */
ROWK_512 static inline void rowk512_store_ps(float *p, __m512 v, int n)
{
	float tmp[16];

	if (n >= 16) {
		_mm512_storeu_ps(p, v);
		return;
	}
	_mm512_storeu_ps(tmp, v);
	memcpy(p, tmp, (size_t)n * sizeof(float));
}

ROWK_512 static float rowk512_dequant(float *y, const float *bias, int n, float rs, bool relu)
{
	const __m512 vrs = _mm512_set1_ps(rs), zero = _mm512_setzero_ps();
	__m512 m = zero;

	for (int j = 0; j < n; j += 16) {
		__mmask16 k = rowk512_tail(n, j);
		__m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, y + j), vrs,
					   bias ? _mm512_maskz_loadu_ps(k, bias + j) : zero);

		if (relu)	/* second operand: a NaN v stays NaN */
			v = _mm512_max_ps(zero, v);
		rowk512_store_ps(y + j, v, n - j);
		m = rowk512_max_abs(m, v);	/* the tail's lanes are 0 */
	}
	return _mm512_reduce_max_ps(m);
}

/*
 * rowk_expf on 16 lanes: the same reduction and polynomial (Horner by
 * fused multiply-adds), 2^n built in the exponent bits; lanes below -87.3
 * and NaN lanes scaled by 2^-127 -> 0 / NaN as there.
 */
ROWK_512 static __m512 rowk512_expf(__m512 x)
{
	__m512 x0 = x, n, r, p;
	__mmask16 tiny, nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
	__m512i e;

	/* the clamps' second operand x: a NaN x stays NaN (MAXPS, MINPS) */
	x = _mm512_max_ps(_mm512_set1_ps(-88.f), x);
	x = _mm512_min_ps(_mm512_set1_ps(88.3f), x);
	n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f),
						 _mm512_set1_ps(0.5f)),
				 _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
	p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
	tiny = _mm512_cmp_ps_mask(x0, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
	n = _mm512_mask_mov_ps(n, tiny | nan, _mm512_set1_ps((float)-MODEL_Q8_MAX));
	e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
	return _mm512_mul_ps(p, _mm512_castsi512_ps(e));	/* NaN: p is NaN */
}

/* The 8 floats of v's half hi (0, 1) as doubles. */
ROWK_512 static inline __m512d rowk512_half_pd(__m512 v, int hi)
{
	__m512d d = _mm512_castps_pd(v);

	return _mm512_cvtps_pd(_mm256_castpd_ps(hi ? _mm512_extractf64x4_pd(d, 1)
						   : _mm512_castpd512_pd256(d)));
}

/*
 * rowk_c_softmax_narrow on one vector: the row's w <= 16 lanes, -Inf past
 * them (e^-Inf is 0); the float64 sum folded in the same order (lane j
 * with j + 8, then halves), so the same sum of the same terms.
 */
ROWK_512 static void rowk512_softmax_narrow(float *x, int w)
{
	__mmask16 k = rowk512_tail(w, 0);
	__m512 t = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x);
	__m512d d, inv;
	__m256d d4;
	__m128d d2;
	__m256 lo, hi;

	t = rowk512_expf(_mm512_sub_ps(t, _mm512_set1_ps(_mm512_reduce_max_ps(t))));
	d = _mm512_add_pd(rowk512_half_pd(t, 0), rowk512_half_pd(t, 1));
	d4 = _mm256_add_pd(_mm512_castpd512_pd256(d), _mm512_extractf64x4_pd(d, 1));
	d2 = _mm_add_pd(_mm256_castpd256_pd128(d4), _mm256_extractf128_pd(d4, 1));
	inv = _mm512_set1_pd(1.0 / (_mm_cvtsd_f64(d2) + _mm_cvtsd_f64(_mm_unpackhi_pd(d2, d2))));
	lo = _mm512_cvtpd_ps(_mm512_mul_pd(rowk512_half_pd(t, 0), inv));
	hi = _mm512_cvtpd_ps(_mm512_mul_pd(rowk512_half_pd(t, 1), inv));
	rowk512_store_ps(x, _mm512_castpd_ps(_mm512_insertf64x4(
		_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1)), w);
}
#endif

/* ---- the choice ---- */

static bool rowk_avx512;

/* Whether this CPU runs the AVX-512 kernels (AVX-512F; the OS saves the
 * registers: the CPU's flags are the kernel's view via cpuid). */
static bool rowk_cpu_has512(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
#else
	return false;
#endif
}

__attribute__((constructor)) static void rowk_init(void)
{
	rowk_avx512 = rowk_cpu_has512();
}

bool rowk_simd(void)
{
	return rowk_avx512;
}

bool rowk_simd_set(bool on)
{
	rowk_avx512 = on && rowk_cpu_has512();
	return rowk_avx512;
}

#if defined(__x86_64__)
#define ROWK_PICK(simd, portable) (rowk_avx512 ? (simd) : (portable))
#else
#define ROWK_PICK(simd, portable) (portable)
#endif

float rowk_absmax(const float *x, int n)
{
	return ROWK_PICK(rowk512_absmax(x, n), rowk_c_absmax(x, n));
}

void rowk_q8(const float *x, int n, float inv, void *q, enum rowk_q8_mode mode)
{
	ROWK_PICK(rowk512_q8(x, n, inv, q, mode), rowk_c_q8(x, n, inv, q, mode));
}

float rowk_dequant(float *y, const float *bias, int n, float rs, bool relu)
{
	return ROWK_PICK(rowk512_dequant(y, bias, n, rs, relu), rowk_c_dequant(y, bias, n, rs, relu));
}

void rowk_softmax(float *x, int w)
{
	if (w > ROWK_NARROW)
		rowk_c_softmax_wide(x, w);
	else
		ROWK_PICK(rowk512_softmax_narrow(x, w), rowk_c_softmax_narrow(x, w));
}

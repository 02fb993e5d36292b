/*
 * rowk.h - the CPU backend's per-row element kernels: the INT8 layers'
 * quantize and dequantize, and the softmax (backends/cpu/cpu.c runs them
 * over the rows of a batch, split over the slot's OpenMP threads).
 *
 * Each has a portable version, vectorized by the compiler and cloned per
 * ISA, and on x86-64 CPUs with AVX-512 a hand-written one (whole 16-lane
 * vectors with masked tails, saturating 8-bit stores): chosen once, at
 * load, by the CPU (rowk_simd says which; rowk_simd_set, for tests and
 * benchmarks, switches).  Both compute the same function; where float
 * rounding may differ (a fused multiply-add) the contract below says so.
 * Rows are independent: nothing here depends on other rows.
 */
#ifndef INFERGW_ROWK_H
#define INFERGW_ROWK_H

#include <stdbool.h>

/* How rowk_q8 stores: s8; u8 (a ReLU's output, >= 0); split: u8 halves
 * max(q, 0) in q[0..n) and max(-q, 0) in q[n..2n). */
enum rowk_q8_mode { ROWK_Q8_S8, ROWK_Q8_U8, ROWK_Q8_SPLIT };

/* Rows up to this width take the softmax's narrow path (one vector). */
#define ROWK_NARROW 16

/* rowk_absmax - max |x[j]| over n >= 0 values (0 for none); a NaN is
 * skipped. */
float rowk_absmax(const float *x, int n);

/*
 * rowk_q8 - x[0..n) x inv rounded half away from zero, clamped to +-127
 * (u8: to 0..127), NaN -> 0, stored into q as mode says (split: 2n
 * bytes).  Float32 arithmetic (a value within an ulp of a .5 boundary may
 * round one step apart from a float64 reference).
 */
void rowk_q8(const float *x, int n, float inv, void *q, enum rowk_q8_mode mode);

/*
 * rowk_dequant - dynamic INT8 layer output, one row in place: y x rs (the
 * row's input scale; y holds acc x w_scale) + bias[j] (bias may be NULL),
 * then max(0, .) when relu (NaN stays NaN).  Returns max |y| after, NaN
 * skipped.  The multiply and add may be fused.
 */
float rowk_dequant(float *y, const float *bias, int n, float rs, bool relu);

/*
 * rowk_softmax - softmax of one row of width w >= 1, in place: max
 * subtracted, e^x in float32 (within 2 ulp), summed in float64 like
 * model_forward_ref.  A NaN or +Inf in the row, or a row of -Inf, answers
 * NaN throughout (as the reference does).
 */
void rowk_softmax(float *x, int w);

/* rowk_simd - whether the AVX-512 kernels are in use. */
bool rowk_simd(void);

/* rowk_simd_set - use the AVX-512 kernels (on) or the portable ones; on
 * is refused where the CPU lacks AVX-512.  Returns rowk_simd() after.
 * Not for use while kernels run on other threads. */
bool rowk_simd_set(bool on);

#endif

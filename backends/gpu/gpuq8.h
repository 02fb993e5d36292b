/*
 * gpuq8.h - the INT8 element arithmetic of the GPU backend (gpu_q8_ prefix),
 * one definition compiled twice: by nvcc into the kernels (kernels.cu)
 * and by $(CC) into the unit test that checks it against model.h's
 * reference (tests/unit/test_gpuhost.c), which is how it is verified on a
 * machine without a device.
 *
 * It reproduces model_forward_ref's INT8 steps operation for operation
 * (struct layer in model/model.h): the row scale max|x| / 127 in double,
 * rounded to float; q = clamp(round-half-away(x / s), -127, 127) with the
 * division in double; y = ((acc * s) * wscale + bias) in double, ReLU,
 * rounded to float.  Device double arithmetic is IEEE (correctly rounded
 * division, no flush to zero); the only way it could differ is nvcc
 * contracting a multiply and an add into an FMA, so the device spells the
 * operations with _rn intrinsics, which are never contracted.  The s32
 * products are exact on both sides.  So a float32 activation the device
 * computes is the one the reference computes, bit for bit, as long as the
 * host build does not contract either (no -mfma / -march in CFLAGS).
 *
 * No CUDA header is needed by C users; nvcc sees __host__ __device__.
 */
#ifndef INFERGW_GPUQ8_H
#define INFERGW_GPUQ8_H

#ifdef __CUDACC__
#define GPU_Q8_HD __host__ __device__ __forceinline__
#else
#define GPU_Q8_HD static inline
#endif

#define GPU_Q8_MAX 127		/* model.h MODEL_Q8_MAX */
#define GPU_Q8_FLT_MAX 3.40282346638528859812e+38F

/* One step of max|x| over a row: a NaN never compares greater, so it is
 * ignored (model_q8_scale's rule). */
GPU_Q8_HD float gpu_q8_absmax(float mx, float x)
{
	float a = x < 0 ? -x : x;

	return a > mx ? a : mx;
}

/* The dynamic row scale from a row's max|x|: mx / 127 in double, rounded
 * to float; 1 when the row is all zeros or holds an infinity. */
GPU_Q8_HD float gpu_q8_scale(float mx)
{
	if (!(mx > 0.0f) || mx > GPU_Q8_FLT_MAX)
		return 1.0f;
#ifdef __CUDA_ARCH__
	return __double2float_rn(__ddiv_rn((double)mx, (double)GPU_Q8_MAX));
#else
	return (float)((double)mx / GPU_Q8_MAX);
#endif
}

/* model_q8(x, s): x / s in double, half away from zero, clamped to
 * +-127; NaN -> 0. */
GPU_Q8_HD signed char gpu_q8_quant(float x, float s)
{
#ifdef __CUDA_ARCH__
	double q = __ddiv_rn((double)x, (double)s);
#else
	double q = (double)x / (double)s;
#endif

	if (q != q)
		return 0;
	q = q < 0 ? q - 0.5 : q + 0.5;
	if (q >= GPU_Q8_MAX)
		return GPU_Q8_MAX;
	if (q <= -GPU_Q8_MAX)
		return -GPU_Q8_MAX;
	return (signed char)(int)q;
}

/* One output: ((acc * s) * ws + bias) in double (bias 0 when the layer
 * has none, as the reference adds 0.0), ReLU, then float. */
GPU_Q8_HD float gpu_q8_dequant(int acc, float s, float ws, float bias, int relu)
{
#ifdef __CUDA_ARCH__
	double v = __dadd_rn(__dmul_rn(__dmul_rn((double)acc, (double)s), (double)ws),
			     (double)bias);
#else
	double v = (double)acc * (double)s * (double)ws + (double)bias;
#endif

	if (relu && v < 0)
		v = 0.0;
#ifdef __CUDA_ARCH__
	return __double2float_rn(v);
#else
	return (float)v;
#endif
}

#endif

/*
 * kernels.cu - the GPU backend's element-wise kernels (gpu_kernels.h):
 * the fused bias + activation after each GEMM and the row softmax that
 * ends a classifier.  Both are memory-bound and tiny next to the GEMMs;
 * what matters is one launch each, over the whole bucket.  INT8 layers
 * add two: quantize the input rows before cuBLASLt's s8 matmul and
 * dequantize (+ bias, ReLU) its s32 output, with gpuq8.h's arithmetic.
 */
#include "gpu/gpu_kernels.h"
#include "gpu/gpuq8.h"

#include <cuda_runtime.h>

/* One thread per element, grid-stride: any rows x width. */
__global__ static void gpu_bias_act_k(float *x, const float *bias, long long n, int width,
				      int relu)
{
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
	     i += (long long)gridDim.x * blockDim.x) {
		float v = x[i];

		if (bias)
			v += bias[i % width];
		if (relu && v < 0.0f)
			v = 0.0f;
		x[i] = v;
	}
}

extern "C" int gpu_bias_act(float *x, const float *bias, int rows, int width, int relu,
			    void *stream)
{
	long long n = (long long)rows * width;
	int threads = 256;
	long long blocks = (n + threads - 1) / threads;

	if (n <= 0)
		return (int)cudaSuccess;
	if (blocks > 65535)
		blocks = 65535;	/* grid-stride covers the rest */
	gpu_bias_act_k<<<(unsigned)blocks, threads, 0, (cudaStream_t)stream>>>(x, bias, n, width,
									   relu);
	return (int)cudaGetLastError();
}

#define SM_THREADS 128

/* One block per row: max, sum of exp(x - max), divide; shared-memory
 * reductions over SM_THREADS partials (a power of two). */
__global__ static void gpu_softmax_k(float *x, int width)
{
	__shared__ float red[SM_THREADS];
	float *row = x + (long long)blockIdx.x * width;
	float mx = -INFINITY, sum = 0.0f;
	int t = threadIdx.x;

	for (int j = t; j < width; j += SM_THREADS)
		mx = fmaxf(mx, row[j]);
	red[t] = mx;
	__syncthreads();
	for (int s = SM_THREADS / 2; s > 0; s >>= 1) {
		if (t < s)
			red[t] = fmaxf(red[t], red[t + s]);
		__syncthreads();
	}
	mx = red[0];
	__syncthreads();	/* everyone read red[0] before it is reused */
	for (int j = t; j < width; j += SM_THREADS) {
		float e = expf(row[j] - mx);

		row[j] = e;
		sum += e;
	}
	red[t] = sum;
	__syncthreads();
	for (int s = SM_THREADS / 2; s > 0; s >>= 1) {
		if (t < s)
			red[t] += red[t + s];
		__syncthreads();
	}
	sum = red[0];
	for (int j = t; j < width; j += SM_THREADS)
		row[j] = row[j] / sum;
}

extern "C" int gpu_softmax(float *x, int rows, int width, void *stream)
{
	if (rows <= 0 || width <= 0)
		return (int)cudaSuccess;
	/* rows <= 4096 (max_batch): within gridDim.x's 2^31 - 1 */
	gpu_softmax_k<<<(unsigned)rows, SM_THREADS, 0, (cudaStream_t)stream>>>(x, width);
	return (int)cudaGetLastError();
}

#define Q8_THREADS 128

/* One block per row: max|x| (shared-memory reduction, NaN ignored) unless
 * the scale is static, then every column of the k-wide s8 row. */
__global__ static void gpu_q8_quantize_k(const float *x, int in, int k, float static_scale,
					 signed char *q, float *rscale)
{
	__shared__ float red[Q8_THREADS];
	const float *row = x + (long long)blockIdx.x * in;
	signed char *qrow = q + (long long)blockIdx.x * k;
	int t = threadIdx.x;
	float s = static_scale;

	if (!(s > 0.0f)) {
		float mx = 0.0f;

		for (int j = t; j < in; j += Q8_THREADS)
			mx = gpu_q8_absmax(mx, row[j]);
		red[t] = mx;
		__syncthreads();
		for (int h = Q8_THREADS / 2; h > 0; h >>= 1) {
			if (t < h)
				red[t] = gpu_q8_absmax(red[t], red[t + h]);
			__syncthreads();
		}
		s = gpu_q8_scale(red[0]);
	}
	if (t == 0)
		rscale[blockIdx.x] = s;
	for (int j = t; j < k; j += Q8_THREADS)
		qrow[j] = j < in ? gpu_q8_quant(row[j], s) : 0;
}

extern "C" int gpu_q8_quantize_rows(const float *x, int rows, int in, int k,
				    float static_scale, signed char *q, float *rscale,
				    void *stream)
{
	if (rows <= 0 || in <= 0 || k < in)
		return rows <= 0 ? (int)cudaSuccess : (int)cudaErrorInvalidValue;
	gpu_q8_quantize_k<<<(unsigned)rows, Q8_THREADS, 0, (cudaStream_t)stream>>>(
		x, in, k, static_scale, q, rscale);
	return (int)cudaGetLastError();
}

/* One thread per output element, grid-stride. */
__global__ static void gpu_q8_dequant_k(const int *acc, long long n, int m, int out,
					const float *rscale, const float *wscale,
					const float *bias, int relu, float *y)
{
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
	     i += (long long)gridDim.x * blockDim.x) {
		long long r = i / out;
		int c = (int)(i - r * out);

		y[i] = gpu_q8_dequant(acc[r * m + c], rscale[r], wscale[c], bias ? bias[c] : 0.0f,
				      relu);
	}
}

extern "C" int gpu_q8_dequant_rows(const int *acc, int rows, int m, int out,
				   const float *rscale, const float *wscale, const float *bias,
				   int relu, float *y, void *stream)
{
	long long n = (long long)rows * out;
	int threads = 256;
	long long blocks = (n + threads - 1) / threads;

	if (n <= 0)
		return (int)cudaSuccess;
	if (m < out)
		return (int)cudaErrorInvalidValue;
	if (blocks > 65535)
		blocks = 65535;
	gpu_q8_dequant_k<<<(unsigned)blocks, threads, 0, (cudaStream_t)stream>>>(
		acc, n, m, out, rscale, wscale, bias, relu, y);
	return (int)cudaGetLastError();
}

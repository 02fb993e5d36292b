/*
 * kernels.cu - the GPU backend's element-wise kernels (gpu_kernels.h):
 * the fused bias + activation after each GEMM and the row softmax that
 * ends a classifier.  Both are memory-bound and tiny next to the GEMMs;
 * what matters is one launch each, over the whole bucket.
 */
#include "gpu/gpu_kernels.h"

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

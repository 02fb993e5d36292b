/*
 * gpu_kernels.h - the GPU backend's CUDA kernels (kernels.cu) behind a C
 * ABI, so gpu.c is plain C compiled by $(CC).  Each launches on stream (a
 * cudaStream_t) and returns the launch's cudaError_t as an int (0 =
 * cudaSuccess); a fault inside the kernel shows later, on the stream.
 */
#ifndef INFERGW_GPU_KERNELS_H
#define INFERGW_GPU_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * gpu_bias_act - x[r][c] += bias[c] (bias NULL: none), then ReLU when
 * relu, over rows x width floats in place (device memory).
 */
int gpu_bias_act(float *x, const float *bias, int rows, int width, int relu, void *stream);
/*
 * gpu_softmax - softmax over each row of rows x width floats in place,
 * max-subtracted like model_forward_ref (device memory).
 */
int gpu_softmax(float *x, int rows, int width, void *stream);

/*
 * gpu_q8_quantize_rows - the s8 input of an INT8 layer: rows x in floats x
 * (row stride in) into rows x k s8 q (row stride k >= in, columns in..k-1
 * zero: the padding cuBLASLt's k needs), each row with scale
 * static_scale when > 0, else its own (gpuq8.h: max|x| / 127), written to
 * rscale[row] either way.  The rounding is model_q8's.
 */
int gpu_q8_quantize_rows(const float *x, int rows, int in, int k, float static_scale,
			 signed char *q, float *rscale, void *stream);
/*
 * gpu_q8_dequant_rows - y[r][c] = acc[r][c] * rscale[r] * wscale[c] + bias[c]
 * (bias NULL: none), ReLU when relu, for c < out, into rows x out floats y
 * (row stride out) from rows x m s32 acc (row stride m >= out: cuBLASLt's
 * padded output).  Arithmetic: gpuq8.h's gpu_q8_dequant.
 */
int gpu_q8_dequant_rows(const int *acc, int rows, int m, int out, const float *rscale,
			const float *wscale, const float *bias, int relu, float *y, void *stream);

#ifdef __cplusplus
}
#endif

#endif

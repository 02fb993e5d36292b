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

#ifdef __cplusplus
}
#endif

#endif

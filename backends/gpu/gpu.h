/*
 * gpu.h - the GPU backend's extras beyond backend_ops (be_gpu_ops, kind
 * "gpu", declared in backend.h; built only with CUDA: USE_CUDA).
 */
#ifndef INFERGW_GPU_H
#define INFERGW_GPU_H

#include "backend.h"

#ifdef USE_CUDA
/*
 * be_gpu_inject - tests only: the next batch to complete on be ends with
 * CUDA error code (a cudaError_t value, gpuhost.h GPU_ERR_*) as if the
 * device had reported it: a sticky code takes be down and fails its
 * slices over (BE_RETRY).  0 clears.  Returns 0, or -ENODEV when be is
 * not an open GPU backend.
 */
int be_gpu_inject(struct backend *be, int code);
#endif

#endif

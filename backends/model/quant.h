/*
 * quant.h - make an INT8 variant of an FP32 model (quant_): per output
 * channel symmetric s8 weights, and optionally calibrated static input
 * scales.  The format is docs/model-format.md's "INT8 variants";
 * build/infergw-quantize (tools/quantize.c) is the command line.
 */
#ifndef INFERGW_QUANT_H
#define INFERGW_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

/*
 * quant_weights - quantize w ([out][in] row-major) per output channel:
 * scale[k] = max|w[k][:]| / 127 (1 for an all-zero channel, so every scale
 * is finite and > 0), q = model_q8(w, scale[k]); then |w - q * scale| <=
 * scale / 2 for every value.  -EINVAL when w holds a NaN or an infinity
 * (*bad: its index), q and scale then undefined.
 */
int quant_weights(const float *w, int out, int in, int8_t *q, float *scale, long *bad);

/*
 * quant_split_weights - [W | -W] of INT8 layer l into dst ([out][2 in],
 * out x 2 x in bytes): the weights against an input fed as two u8 halves,
 * x+ = max(x, 0) and x- = max(-x, 0), so that W x = W x+ - W x- (the CPU
 * backend's split layers without VNNI, docs/int8.md); -(-128) is 127.
 */
void quant_split_weights(const struct layer *l, int8_t *dst);

struct quant_opts {
	const char *calibration;	/* safetensors with `features` [N, in_dim] F32, or NULL */
	bool force;			/* OUT_DIR may exist and hold files */
};

/*
 * quant_model - read the FP32 model in in_dir and write its INT8 variant
 * to out_dir (created; model.yaml + model.safetensors).  Returns 0, or
 * -errno with *err a malloc'd message naming the file and the tensor.
 */
int quant_model(const char *in_dir, const char *out_dir, const struct quant_opts *o,
		char **err);

#endif

/*
 * model.h - the model format: model.yaml + safetensors weights.
 *
 * A model directory holds model.yaml (name, inputs, outputs, layers) and a
 * safetensors file (8-byte little-endian header length, JSON header, raw
 * little-endian data).  Layers are dense (weight [out, in], bias [out],
 * activation none|relu, as PyTorch's nn.Linear stores them) and softmax.
 *
 * A loaded model is immutable and may be read from any thread.
 */
#ifndef INFERGW_MODEL_H
#define INFERGW_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_DIMS 8

/* KServe v2 datatypes. */
enum dtype {
	DT_INVALID = 0,
	DT_BOOL, DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64,
	DT_INT8, DT_INT16, DT_INT32, DT_INT64,
	DT_FP16, DT_FP32, DT_FP64, DT_BYTES,
};

/* "FP32" -> DT_FP32; DT_INVALID when unknown. */
enum dtype dtype_from_kserve(const char *s);
/* DT_FP32 -> "FP32". */
const char *dtype_kserve_name(enum dtype t);
/* safetensors names: "F32" -> DT_FP32, "I64" -> DT_INT64 ...; DT_INVALID when unknown. */
enum dtype dtype_from_safetensors(const char *s);
/* Bytes per element; 0 for DT_BYTES / DT_INVALID. */
size_t dtype_size(enum dtype t);
/* Triton's model configuration spelling: DT_FP32 -> "TYPE_FP32", DT_BYTES ->
 * "TYPE_STRING"; "TYPE_INVALID" when unknown. */
const char *dtype_triton_name(enum dtype t);

struct tensor_spec {
	char *name;
	enum dtype dtype;
	int ndim;
	int64_t dims[MODEL_MAX_DIMS];	/* -1 = variable (the batch dimension) */
};

/* One tensor of a safetensors file: a view into the mapped file. */
struct st_tensor {
	char *name;
	enum dtype dtype;
	int ndim;
	int64_t dims[MODEL_MAX_DIMS];
	const void *data;		/* into st_file.map, or an aligned copy the st_file owns */
	size_t nbytes;
};

struct st_file {
	char *path;
	void *map;			/* whole file, read into memory */
	size_t len;
	int n_tensors;
	struct st_tensor *tensors;
};

/*
 * st_open - read and validate a safetensors file.
 * Checks: header length within the file, header is a JSON object, every
 * tensor has a known dtype, shape and data_offsets [begin, end) that lie
 * inside the data section and match shape x dtype size, no overlaps.
 * Returns a new st_file (free with st_close) or NULL with *err set to a
 * malloc'd message naming the file and the tensor ("model.safetensors:
 * tensor fc1.weight: data_offsets end 4096 past data size 1024").
 */
struct st_file *st_open(const char *path, char **err);
/* st_parse - as st_open, from a buffer the st_file takes ownership of (buf
 * must come from malloc).  name is used in messages. */
struct st_file *st_parse(const char *name, void *buf, size_t len, char **err);
/* st_find - the tensor called name, or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
void st_close(struct st_file *f);

enum layer_kind { LAYER_DENSE, LAYER_SOFTMAX };
enum activation { ACT_NONE, ACT_RELU };

/*
 * INT8 dense layers (model.yaml variant: int8): y = (q(x) . qweight^T) *
 * sx * wscale[n] + bias, where q(x) = clamp(round(x / sx), -127, 127) is the
 * symmetric s8 quantization of the layer's input with scale sx: in_scale
 * when the model says so (calibrated, static), else max|x| / 127 of each
 * row (dynamic).  Weights are symmetric per output channel: w ~= qweight *
 * wscale.  docs/model-format.md says why s8 and why per row.
 */
#define MODEL_Q8_MAX 127

enum model_variant { VARIANT_FP32, VARIANT_INT8 };

struct layer {
	enum layer_kind kind;
	enum activation act;	/* dense only */
	int in, out;		/* widths; softmax has in == out */
	const float *weight;	/* FP32 dense: [out][in], row-major, points into weights file; INT8: NULL */
	const float *bias;	/* dense: [out] or NULL */
	const int8_t *qweight;	/* INT8 dense: [out][in], into the weights file; FP32: NULL */
	const float *wscale;	/* INT8 dense: [out] scales, finite and > 0 */
	float in_scale;		/* INT8 dense: static input scale (> 0), 0 = dynamic per row */
};

struct model {
	char *name;
	char *dir;
	char *platform;		/* "infergw-mlp" */
	int version;		/* from model.yaml, default 1 */
	struct tensor_spec input;	/* exactly one input: [-1, in_dim] */
	struct tensor_spec output;	/* exactly one output: [-1, out_dim] */
	int in_dim, out_dim;
	int max_batch_size;	/* rows per execution; from model.yaml, default 64 */
	char **labels;		/* outputs[0].labels: out_dim class names, or NULL */
	int n_layers;
	struct layer *layers;
	int max_width;		/* widest activation, for scratch buffers */
	double flops_per_row;	/* 2 * sum(in*out) over dense layers */
	struct st_file *weights;
	enum model_variant variant;	/* model.yaml variant: fp32 (default) | int8 */
	char *variant_of;	/* model.yaml variant_of: the model this one was made from, or NULL */
	char *description;	/* model.yaml description, or NULL */
};

/*
 * model_load - load dir/model.yaml and its weights file.
 * Validates that the layer chain connects input to output widths, that each
 * named tensor exists with dtype F32 and the right shape.  Returns a model
 * (free with model_free) or NULL with *err set to a malloc'd message that
 * names the file (and line:column for YAML problems) and the tensor.
 */
struct model *model_load(const char *dir, char **err);
void model_free(struct model *m);

/*
 * model_forward_ref - float64 reference forward pass for rows x in_dim
 * inputs; writes rows x out_dim doubles to out.  For tests and calibration.
 * INT8 models: the same quantization as the backends (see struct layer),
 * integer products summed exactly, everything else in float64.
 */
void model_forward_ref(const struct model *m, const float *in, int rows, double *out);

/* "fp32" / "int8". */
const char *model_variant_name(enum model_variant v);

/*
 * model_q8 - symmetric s8 quantization of one value with scale s (> 0):
 * clamp(round-half-away(x / s), -127, 127).  The one rounding rule the
 * quantizer, the backends and the reference share.
 */
static inline int model_q8(double x, double s)
{
	double q = x / s;

	if (q != q)	/* NaN (a hostile input): 0, not undefined behaviour */
		return 0;
	q = q < 0 ? q - 0.5 : q + 0.5;
	if (q >= MODEL_Q8_MAX)
		return MODEL_Q8_MAX;
	if (q <= -MODEL_Q8_MAX)
		return -MODEL_Q8_MAX;
	return (int)q;	/* truncation of +-0.5-shifted value: half away from zero */
}

/* model_after_relu - whether layer i's input is a ReLU's output (never
 * negative): the layer before it is dense with a ReLU. */
static inline bool model_after_relu(const struct model *m, int i)
{
	return i > 0 && m->layers[i - 1].kind == LAYER_DENSE && m->layers[i - 1].act == ACT_RELU;
}

/* The s8 scale of n values: max|x| / 127, or 1 when all are zero (any
 * positive scale quantizes zeros exactly; 1 keeps it finite). */
double model_q8_scale(const float *x, size_t n);

#endif

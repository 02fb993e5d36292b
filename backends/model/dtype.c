/*
 * dtype.c - KServe v2 and safetensors datatype names and sizes (see model.h).
 *
 * One table keeps the two spellings and the element size of each dtype
 * together so they cannot drift apart.  BF16 and the F8 types that newer
 * safetensors files may carry have no KServe v2 equivalent and are therefore
 * unknown here (st_open rejects them with "unknown dtype").
 */
#include "model/model.h"

#include <string.h>

struct dtype_info {
	enum dtype t;
	const char *kserve;
	const char *st;		/* safetensors spelling; NULL when there is none */
	size_t size;
	const char *triton;	/* model configuration (config.proto DataType) */
};

static const struct dtype_info dtype_table[] = {
	[DT_BOOL - 1] = { DT_BOOL,   "BOOL",   "BOOL", 1, "TYPE_BOOL" },
	[DT_UINT8 - 1] = { DT_UINT8,  "UINT8",  "U8",   1, "TYPE_UINT8" },
	[DT_UINT16 - 1] = { DT_UINT16, "UINT16", "U16",  2, "TYPE_UINT16" },
	[DT_UINT32 - 1] = { DT_UINT32, "UINT32", "U32",  4, "TYPE_UINT32" },
	[DT_UINT64 - 1] = { DT_UINT64, "UINT64", "U64",  8, "TYPE_UINT64" },
	[DT_INT8 - 1] = { DT_INT8,   "INT8",   "I8",   1, "TYPE_INT8" },
	[DT_INT16 - 1] = { DT_INT16,  "INT16",  "I16",  2, "TYPE_INT16" },
	[DT_INT32 - 1] = { DT_INT32,  "INT32",  "I32",  4, "TYPE_INT32" },
	[DT_INT64 - 1] = { DT_INT64,  "INT64",  "I64",  8, "TYPE_INT64" },
	[DT_FP16 - 1] = { DT_FP16,   "FP16",   "F16",  2, "TYPE_FP16" },
	[DT_FP32 - 1] = { DT_FP32,   "FP32",   "F32",  4, "TYPE_FP32" },
	[DT_FP64 - 1] = { DT_FP64,   "FP64",   "F64",  8, "TYPE_FP64" },
	[DT_BYTES - 1] = { DT_BYTES,  "BYTES",  NULL,   0, "TYPE_STRING" },
};

#define N_DTYPES (sizeof(dtype_table) / sizeof(dtype_table[0]))

enum dtype dtype_from_kserve(const char *s)
{
	size_t i;

	for (i = 0; s && i < N_DTYPES; i++)
		if (strcmp(dtype_table[i].kserve, s) == 0)
			return dtype_table[i].t;
	return DT_INVALID;
}

/* The table's entry for t (at t - 1: designated above), or NULL. */
static const struct dtype_info *dtype_info(enum dtype t)
{
	size_t i = (size_t)t - 1;

	return i < N_DTYPES && dtype_table[i].t == t ? &dtype_table[i] : NULL;
}

const char *dtype_kserve_name(enum dtype t)
{
	const struct dtype_info *d = dtype_info(t);

	return d ? d->kserve : "INVALID";
}

enum dtype dtype_from_safetensors(const char *s)
{
	size_t i;

	for (i = 0; s && i < N_DTYPES; i++)
		if (dtype_table[i].st && strcmp(dtype_table[i].st, s) == 0)
			return dtype_table[i].t;
	return DT_INVALID;
}

size_t dtype_size(enum dtype t)
{
	const struct dtype_info *d = dtype_info(t);

	return d ? d->size : 0;
}

const char *dtype_triton_name(enum dtype t)
{
	const struct dtype_info *d = dtype_info(t);

	return d ? d->triton : "TYPE_INVALID";
}

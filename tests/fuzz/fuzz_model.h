/*
 * fuzz_model.h - the small in-memory model the request-parser fuzz targets
 * validate against (as in tests/unit/test_kserve.c): input [-1, 4] FP32,
 * output [-1, 3], max_batch_size 8.
 */
#ifndef INFERGW_FUZZ_MODEL_H
#define INFERGW_FUZZ_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "fuzz_check.h"
#include "kserve.h"
#include "model/model.h"

#define FZ_IN_DIM 4
#define FZ_OUT_DIM 3
#define FZ_MAX_BATCH 8

static struct model fz_model;

static const struct model *fz_get_model(void)
{
	if (!fz_model.name) {
		fz_model.name = "digits";
		fz_model.version = 1;
		fz_model.platform = "infergw-mlp";
		fz_model.input = (struct tensor_spec){ .name = "input", .dtype = DT_FP32, .ndim = 2,
						       .dims = { -1, FZ_IN_DIM } };
		fz_model.output = (struct tensor_spec){ .name = "probabilities", .dtype = DT_FP32,
							.ndim = 2, .dims = { -1, FZ_OUT_DIM } };
		fz_model.in_dim = FZ_IN_DIM;
		fz_model.out_dim = FZ_OUT_DIM;
		fz_model.max_batch_size = FZ_MAX_BATCH;
	}
	return &fz_model;
}


/* A malloc'd copy of exactly len bytes (at least 1 allocated, never
 * NUL-terminated past len), so reads past the end are caught by ASan. */
static char *fz_dup(const unsigned char *p, size_t len)
{
	char *b = malloc(len ? len : 1);

	if (!b)
		abort();
	if (len)
		memcpy(b, p, len);
	return b;
}

/*
 * fz_check_parsed - the invariants of any successfully parsed request: rows
 * within the model's batch, data present, id terminated, and every promised
 * input value readable and finite (ASan checks views into the body as well as decoded
 * copies).  Fills outv (rows x FZ_OUT_DIM) from those values, for encoding.
 */
static void fz_check_parsed(const struct ks_infer *ki, float *outv)
{
	float first[FZ_IN_DIM * FZ_MAX_BATCH];

	FZ_CHECK(ki->rows >= 1 && ki->rows <= FZ_MAX_BATCH);
	FZ_CHECK(ki->data != NULL);
	FZ_CHECK(!ki->has_id || strnlen(ki->id, sizeof(ki->id)) < sizeof(ki->id));
	memcpy(first, ki->data, (size_t)ki->rows * FZ_IN_DIM * sizeof(float));
	for (int i = 0; i < ki->rows * FZ_IN_DIM; i++)
		FZ_CHECK(isfinite(first[i]));	/* Inf/NaN are a 400 */
	for (int i = 0; i < ki->rows * FZ_OUT_DIM; i++)
		outv[i] = first[i % (ki->rows * FZ_IN_DIM)];
}

#endif

/* test_model.c - model.yaml loading, validation messages, reference forward. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

#define DIGITS "config/models/digits"

static char tmpdir[PATH_MAX];
static char weights[PATH_MAX];	/* absolute path of the digits weights */
static char heldout[PATH_MAX];

static const char base_yaml[] =
	"name: digits-test\n"
	"weights: WEIGHTS\n"
	"inputs:\n"
	"  - {name: input, datatype: FP32, shape: [-1, 64]}\n"
	"outputs:\n"
	"  - {name: probabilities, datatype: FP32, shape: [-1, 10]}\n"
	"layers:\n"
	"  - {type: dense, weight: fc1.weight, bias: fc1.bias, activation: relu}\n"
	"  - {type: dense, weight: fc2.weight, bias: fc2.bias}\n"
	"  - {type: softmax}\n";

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_model_XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	if (!realpath(DIGITS "/model.safetensors", weights) ||
	    !realpath(DIGITS "/heldout.safetensors", heldout)) {
		fprintf(stderr, "run from the repository root (tools/train_digits.py writes %s)\n",
			DIGITS);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	char p[PATH_MAX + 16];

	(void)state;
	snprintf(p, sizeof(p), "%s/model.yaml", tmpdir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/q8.safetensors", tmpdir);
	unlink(p);
	rmdir(tmpdir);
	return 0;
}

/* s with the first occurrence of from replaced by to; malloc'd. */
static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	size_t pre, lt = strlen(to), lf = strlen(from), ls = strlen(s);
	char *out;

	assert_non_null(at);
	pre = (size_t)(at - s);
	out = malloc(ls - lf + lt + 1);
	assert_non_null(out);
	memcpy(out, s, pre);
	memcpy(out + pre, to, lt);
	memcpy(out + pre + lt, s + pre + lf, ls - pre - lf + 1);
	return out;
}

/* "LINE:COL" (1-based) of the first occurrence of needle in text. */
static void loc(const char *text, const char *needle, char *buf, size_t len)
{
	const char *at = strstr(text, needle), *p;
	int line = 1, col = 1;

	assert_non_null(at);
	for (p = text; p < at; p++) {
		if (*p == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(buf, len, "%d:%d", line, col);
}

static void write_yaml(const char *text)
{
	char p[PATH_MAX + 16];
	FILE *f;

	snprintf(p, sizeof(p), "%s/model.yaml", tmpdir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The base model with the weights path filled in; malloc'd. */
static char *base(void)
{
	return replace(base_yaml, "WEIGHTS", weights);
}

/*
 * Load text from the temp dir; it must fail with
 * "<tmpdir>/model.yaml:<loc of needle>: <want>..." in the message.
 */
static void expect_error(const char *text, const char *needle, const char *want)
{
	char l[32], prefix[PATH_MAX + 64], *err = NULL;
	struct model *m;

	write_yaml(text);
	m = model_load(tmpdir, &err);
	assert_null(m);
	assert_non_null(err);
	if (needle) {
		loc(text, needle, l, sizeof(l));
		snprintf(prefix, sizeof(prefix), "%s/model.yaml:%s: ", tmpdir, l);
	} else {
		snprintf(prefix, sizeof(prefix), "%s/model.yaml:", tmpdir);
	}
	if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, want))
		fail_msg("got \"%s\"\nwant \"%s...%s\"", err, prefix, want);
	free(err);
}

/* Variant: base with from -> to, error at needle. */
static void expect_variant(const char *from, const char *to, const char *needle, const char *want)
{
	char *b = base(), *v = replace(b, from, to);

	expect_error(v, needle, want);
	free(v);
	free(b);
}

static void test_load_digits(void **state)
{
	char *err = NULL;
	struct model *m = model_load(DIGITS, &err);

	(void)state;
	assert_non_null(m);
	assert_null(err);
	assert_string_equal(m->name, "digits");
	assert_string_equal(m->platform, "infergw-mlp");
	assert_string_equal(m->dir, DIGITS);
	assert_int_equal(m->version, 1);
	assert_int_equal(m->max_batch_size, 64);
	assert_string_equal(m->input.name, "input");
	assert_int_equal(m->input.dtype, DT_FP32);
	assert_int_equal(m->input.ndim, 2);
	assert_int_equal(m->input.dims[0], -1);
	assert_int_equal(m->input.dims[1], 64);
	assert_string_equal(m->output.name, "probabilities");
	assert_int_equal(m->output.dims[1], 10);
	assert_int_equal(m->in_dim, 64);
	assert_int_equal(m->out_dim, 10);
	assert_int_equal(m->n_layers, 3);
	assert_int_equal(m->layers[0].kind, LAYER_DENSE);
	assert_int_equal(m->layers[0].act, ACT_RELU);
	assert_int_equal(m->layers[0].in, 64);
	assert_int_equal(m->layers[0].out, 64);
	assert_ptr_equal(m->layers[0].weight, st_find(m->weights, "fc1.weight")->data);
	assert_ptr_equal(m->layers[0].bias, st_find(m->weights, "fc1.bias")->data);
	assert_int_equal(m->layers[1].kind, LAYER_DENSE);
	assert_int_equal(m->layers[1].act, ACT_NONE);
	assert_int_equal(m->layers[1].in, 64);
	assert_int_equal(m->layers[1].out, 10);
	assert_int_equal(m->layers[2].kind, LAYER_SOFTMAX);
	assert_int_equal(m->layers[2].in, 10);
	assert_int_equal(m->layers[2].out, 10);
	assert_int_equal(m->max_width, 64);
	assert_true(m->flops_per_row == 2.0 * (64 * 64 + 64 * 10));
	assert_non_null(m->labels);
	for (int i = 0; i < 10; i++) {
		char want[4];

		snprintf(want, sizeof(want), "%d", i);
		assert_string_equal(m->labels[i], want);
	}
	model_free(m);
}

/* outputs[0].labels: optional, one string per class, not for inputs. */
static void test_labels(void **state)
{
	char *b = base(), *v, *err = NULL, longer[300];
	struct model *m;

	(void)state;
	write_yaml(b);
	m = model_load(tmpdir, &err);
	assert_non_null(m);
	assert_null(m->labels);		/* absent: no labels */
	model_free(m);
	v = replace(b, "shape: [-1, 10]}", "shape: [-1, 10], labels: [zero, one, two, three, "
		    "four, five, six, seven, eight, 'nine: 9']}");
	write_yaml(v);
	m = model_load(tmpdir, &err);
	assert_non_null(m);
	assert_string_equal(m->labels[0], "zero");
	assert_string_equal(m->labels[9], "nine: 9");
	model_free(m);
	free(v);
	free(b);
	expect_variant("shape: [-1, 10]}", "shape: [-1, 10], labels: [a, b]}", "[a, b]",
		       "outputs[0].labels: expected 10 labels (one per class of shape [-1, 10]), "
		       "got 2");
	expect_variant("shape: [-1, 10]}", "shape: [-1, 10], labels: a}", "a}",
		       "outputs[0].labels: expected a list, got \"a\"");
	expect_variant("shape: [-1, 10]}", "shape: [-1, 10], labels: [a, b, c, d, e, f, g, h, i, "
		       "{x: 1}]}", "{x: 1}", "outputs[0].labels[9]: expected a string");
	memset(longer, 'x', 257);
	longer[257] = 0;
	{
		char to[400];

		snprintf(to, sizeof(to), "shape: [-1, 10], labels: [a, b, c, d, e, f, g, h, i, %s]}",
			 longer);
		expect_variant("shape: [-1, 10]}", to, longer,
			       "outputs[0].labels[9]: longer than 256 bytes");
	}
	expect_variant("shape: [-1, 64]}", "shape: [-1, 64], labels: [a]}", "labels",
		       "inputs[0]: unknown key \"labels\"");
}

static void test_forward_ref_heldout(void **state)
{
	const struct st_tensor *x, *y;
	struct st_file *h;
	struct model *m;
	char *err = NULL;
	double *out;
	int n, r, j, ok10 = 0, ok = 0;

	(void)state;
	m = model_load(DIGITS, &err);
	assert_non_null(m);
	h = st_open(heldout, &err);
	assert_non_null(h);
	x = st_find(h, "features");
	y = st_find(h, "labels");
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(x->dtype, DT_FP32);
	assert_int_equal(y->dtype, DT_INT64);
	assert_int_equal(x->dims[1], 64);
	n = (int)x->dims[0];
	assert_int_equal(y->dims[0], n);
	assert_true(n >= 300);

	out = calloc((size_t)n * 10, sizeof(double));
	model_forward_ref(m, x->data, n, out);
	for (r = 0; r < n; r++) {
		double sum = 0;
		int best = 0;

		for (j = 0; j < 10; j++) {
			assert_true(out[r * 10 + j] >= 0.0 && out[r * 10 + j] <= 1.0);
			sum += out[r * 10 + j];
			if (out[r * 10 + j] > out[r * 10 + best])
				best = j;
		}
		assert_true(fabs(sum - 1.0) < 1e-9);
		if (best == ((const int64_t *)y->data)[r]) {
			ok++;
			ok10 += r < 10;
		}
	}
	assert_true(ok10 >= 9);
	assert_true(ok >= 0.95 * n);	/* tools/train_digits.py requires 95% */
	free(out);
	st_close(h);
	model_free(m);
}

/* The reference forward pass on a hand-computable case. */
static void test_forward_ref_values(void **state)
{
	char *b = base(), *err = NULL;
	struct model *m;
	float in[64] = { 0 };
	double out[10], hand[10], h[64], mx, sum = 0;
	const struct layer *l0, *l1;
	int i, j;

	(void)state;
	write_yaml(b);
	free(b);
	m = model_load(tmpdir, &err);
	assert_non_null(m);
	assert_string_equal(m->name, "digits-test");
	for (i = 0; i < 64; i++)
		in[i] = (float)(i % 17);
	model_forward_ref(m, in, 1, out);
	l0 = &m->layers[0];
	l1 = &m->layers[1];
	for (i = 0; i < 64; i++) {
		h[i] = l0->bias[i];
		for (j = 0; j < 64; j++)
			h[i] += (double)l0->weight[i * 64 + j] * in[j];
		h[i] = h[i] > 0 ? h[i] : 0;
	}
	for (i = 0; i < 10; i++) {
		hand[i] = l1->bias[i];
		for (j = 0; j < 64; j++)
			hand[i] += (double)l1->weight[i * 64 + j] * h[j];
	}
	for (mx = hand[0], i = 1; i < 10; i++)
		mx = hand[i] > mx ? hand[i] : mx;
	for (i = 0; i < 10; i++)
		sum += exp(hand[i] - mx);
	for (i = 0; i < 10; i++)
		assert_true(fabs(out[i] - exp(hand[i] - mx) / sum) < 1e-12);
	model_free(m);
}

static void test_defaults(void **state)
{
	char *b = base(), *v = replace(b, "name: digits-test\n", "");
	char *err = NULL, *slash;
	struct model *m;

	(void)state;
	write_yaml(v);
	m = model_load(tmpdir, &err);
	assert_non_null(m);
	assert_string_equal(m->name, strrchr(tmpdir, '/') + 1);
	assert_int_equal(m->version, 1);
	assert_int_equal(m->max_batch_size, 64);
	model_free(m);

	/* trailing slash: same name */
	assert_true(asprintf(&slash, "%s/", tmpdir) > 0);
	m = model_load(slash, &err);
	assert_non_null(m);
	assert_string_equal(m->name, strrchr(tmpdir, '/') + 1);
	model_free(m);
	free(slash);
	free(v);
	free(b);
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_variant("name: digits-test\n", "name: digits-test\ncolour: red\n",
		       "colour", "model: unknown key \"colour\" (allowed: name, platform,");
	expect_variant("activation: relu}", "activation: relu, dropout: 0.5}",
		       "dropout", "layers[0]: unknown key \"dropout\"");
	expect_variant("{type: softmax}", "{type: softmax, weight: fc2.weight}",
		       "weight: fc2.weight}", "layers[2]: unknown key \"weight\" (allowed: type)");
	expect_variant("{name: input,", "{name: input, layout: NHWC,",
		       "layout", "inputs[0]: unknown key \"layout\"");
}

static void test_shape_errors(void **state)
{
	(void)state;
	/* input width 63: fc1.weight no longer fits */
	expect_variant("shape: [-1, 64]", "shape: [-1, 63]", "fc1.weight",
		       "layers[0].weight: tensor fc1.weight has shape [64, 64], expected [64, 63]");
	/* output width 11: the last dense layer must produce it */
	expect_variant("shape: [-1, 10]", "shape: [-1, 11]", "fc2.weight",
		       "layers[1].weight: tensor fc2.weight has shape [10, 64], expected [11, 64]");
	/* bias of the wrong layer */
	expect_variant("bias: fc1.bias", "bias: fc2.bias", "fc2.bias, activation",
		       "layers[0].bias: tensor fc2.bias has shape [10], expected [64]");
	/* one dense layer left: it is the last, so it must produce 10 */
	expect_variant("  - {type: dense, weight: fc2.weight, bias: fc2.bias}\n", "",
		       "fc1.weight",
		       "layers[0].weight: tensor fc1.weight has shape [64, 64], expected [10, 64]");
	/* no dense layer at all: the chain ends at the input width */
	expect_variant("  - {type: dense, weight: fc1.weight, bias: fc1.bias, activation: relu}\n"
		       "  - {type: dense, weight: fc2.weight, bias: fc2.bias}\n", "",
		       "- {type: softmax}",
		       "layers: chain ends with width 64, but outputs[0] has shape [-1, 10]");
	/* second layer fed the first layer's weight */
	expect_variant("weight: fc2.weight", "weight: fc1.weight", "fc1.weight, bias: fc2",
		       "layers[1].weight: tensor fc1.weight has shape [64, 64], expected [10, 64]");
	expect_variant("shape: [-1, 64]", "shape: [64]", "[64]",
		       "inputs[0].shape: expected [-1, D], got 1 dimensions");
	expect_variant("shape: [-1, 64]", "shape: [8, 64]", "8, 64]",
		       "inputs[0].shape[0]: expected an integer in [-1, -1], got 8");
}

static void test_tensor_errors(void **state)
{
	char *b, *v1, *v2;

	(void)state;
	expect_variant("weight: fc2.weight", "weight: fc9.weight", "fc9.weight",
		       "layers[1].weight: tensor fc9.weight not found in ");
	expect_variant("weights: ", "weights: nope.safetensors\nx: ", "x: ",
		       "model: unknown key \"x\"");	/* keys are checked first */
	/* wrong dtype: the held-out labels are I64 */
	b = base();
	v1 = replace(b, weights, heldout);
	v2 = replace(v1, "weight: fc1.weight", "weight: labels");
	expect_error(v2, "labels", "layers[0].weight: tensor labels has dtype I64, expected F32");
	free(v2);
	free(v1);
	free(b);
}

static void test_other_errors(void **state)
{
	char *b, *v, want[PATH_MAX + 64];

	(void)state;
	/* weights file missing: the path and the reason */
	b = base();
	v = replace(b, weights, "nope.safetensors");
	snprintf(want, sizeof(want), "weights: %s/nope.safetensors: No such file", tmpdir);
	expect_error(v, "nope.safetensors", want);
	free(v);
	free(b);

	expect_variant("datatype: FP32, shape: [-1, 64]", "datatype: INT32, shape: [-1, 64]",
		       "INT32", "inputs[0].datatype: datatype \"INT32\" not supported (FP32 only)");
	expect_variant("{type: softmax}", "{type: conv}", "conv",
		       "layers[2].type: unknown layer type \"conv\"");
	expect_variant("activation: relu", "activation: gelu", "gelu",
		       "layers[0].activation: unknown activation \"gelu\"");
	expect_variant("name: digits-test\n", "name: digits-test\nmax_batch_size: 0\n", "0\n",
		       "max_batch_size: expected an integer in [1, 4096], got 0");
	expect_variant("name: digits-test\n", "name: digits-test\nplatform: onnx\n", "onnx",
		       "platform: unknown platform \"onnx\"");
	expect_variant("  - {name: input, datatype: FP32, shape: [-1, 64]}\n",
		       "  - {name: input, datatype: FP32, shape: [-1, 64]}\n"
		       "  - {name: input2, datatype: FP32, shape: [-1, 64]}\n",
		       "- {name: input,", "inputs: expected exactly one entry, got 2");
	expect_variant("  - {type: softmax}\n", "  - softmax\n", "softmax\n",
		       "layers[2]: expected a mapping");
	/* YAML syntax error */
	expect_variant("layers:\n", "layers: [\n", NULL, "YAML syntax error");
	/* missing sections */
	b = base();
	v = replace(b, "layers:\n", "x_layers:\n");
	expect_error(v, "x_layers", "model: unknown key \"x_layers\"");
	free(v);
	free(b);
}

/*
 * INT8 loader errors.  q8.safetensors (written here, in the temp dir) holds
 * a well-formed INT8 digits-shaped model (w1/s1/b1, w2/s2/b2) and, beside
 * it, one broken scale tensor per case, so each case swaps one name in
 * q8_yaml and the rest of the model stays valid.
 */
static const char q8_yaml[] =
	"name: q8-test\n"
	"variant: int8\n"
	"weights: q8.safetensors\n"
	"inputs:\n"
	"  - {name: input, datatype: FP32, shape: [-1, 64]}\n"
	"outputs:\n"
	"  - {name: probabilities, datatype: FP32, shape: [-1, 10]}\n"
	"layers:\n"
	"  - {type: dense, weight: w1, weight_scale: s1, bias: b1, activation: relu}\n"
	"  - {type: dense, weight: w2, weight_scale: s2, bias: b2}\n"
	"  - {type: softmax}\n";

struct q8_tensor {
	const char *name, *dtype;
	int ndim;
	long dims[2];
	int esize;
	const char *poison;	/* NULL, "nan", "zero" or "neg": one bad value */
	int at;			/* its index */
};

static const struct q8_tensor q8_tensors[] = {
	{ "w1", "I8", 2, { 64, 64 }, 1, NULL, 0 },
	{ "s1", "F32", 1, { 64 }, 4, NULL, 0 },
	{ "b1", "F32", 1, { 64 }, 4, NULL, 0 },
	{ "w2", "I8", 2, { 10, 64 }, 1, NULL, 0 },
	{ "s2", "F32", 1, { 10 }, 4, NULL, 0 },
	{ "b2", "F32", 1, { 10 }, 4, NULL, 0 },
	{ "wf", "F32", 2, { 64, 64 }, 4, NULL, 0 },	/* FP32 weight in an INT8 model */
	{ "s_short", "F32", 1, { 63 }, 4, NULL, 0 },
	{ "s_i8", "I8", 1, { 64 }, 1, NULL, 0 },
	{ "s_2d", "F32", 2, { 64, 1 }, 4, NULL, 0 },
	{ "s_nan", "F32", 1, { 64 }, 4, "nan", 5 },
	{ "s_zero", "F32", 1, { 64 }, 4, "zero", 7 },
	{ "s_neg", "F32", 1, { 64 }, 4, "neg", 3 },
	{ "s_inf", "F32", 1, { 64 }, 4, "inf", 63 },
};

#define Q8_N (sizeof(q8_tensors) / sizeof(q8_tensors[0]))

/* Write q8.safetensors: I8 tensors are (i % 7) - 3, F32 ones 0.01 except
 * the poisoned value. */
static void write_q8_weights(void)
{
	char p[PATH_MAX + 32], hdr[4096];
	size_t off = 0, hl = 0, n, i, k;
	uint64_t le;
	FILE *f;

	hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl, "{");
	for (i = 0; i < Q8_N; i++) {
		const struct q8_tensor *q = &q8_tensors[i];

		n = (size_t)q->dims[0] * (q->ndim == 2 ? (size_t)q->dims[1] : 1) * q->esize;
		hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl,
				       "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%ld%s%.0ld],"
				       "\"data_offsets\":[%zu,%zu]}", i ? "," : "", q->name,
				       q->dtype, q->dims[0], q->ndim == 2 ? "," : "",
				       q->ndim == 2 ? q->dims[1] : 0L, off, off + n);
		off += n;
	}
	hl += (size_t)snprintf(hdr + hl, sizeof(hdr) - hl, "}");
	assert_true(hl < sizeof(hdr));
	snprintf(p, sizeof(p), "%s/q8.safetensors", tmpdir);
	f = fopen(p, "wb");
	assert_non_null(f);
	le = hl;	/* little-endian host (x86-64, arm64) */
	fwrite(&le, 8, 1, f);
	fwrite(hdr, 1, hl, f);
	for (i = 0; i < Q8_N; i++) {
		const struct q8_tensor *q = &q8_tensors[i];

		n = (size_t)q->dims[0] * (q->ndim == 2 ? (size_t)q->dims[1] : 1);
		for (k = 0; k < n; k++) {
			if (q->esize == 1) {
				fputc((signed char)((int)(k % 7) - 3), f);
			} else {
				float v = 0.01f;

				if (q->poison && (int)k == q->at)
					v = !strcmp(q->poison, "nan") ? NAN :
					    !strcmp(q->poison, "inf") ? INFINITY :
					    !strcmp(q->poison, "neg") ? -0.5f : 0.0f;
				fwrite(&v, 4, 1, f);
			}
		}
	}
	assert_int_equal(fclose(f), 0);
}

/* q8_yaml with from -> to; it must fail at needle with want. */
static void expect_q8(const char *from, const char *to, const char *needle, const char *want)
{
	char *v = replace(q8_yaml, from, to);

	expect_error(v, needle, want);
	free(v);
}

static void test_q8_load_ok(void **state)
{
	struct model *m;
	char *err = NULL;
	float x[64];
	double y[10], sum = 0;

	(void)state;
	write_q8_weights();
	write_yaml(q8_yaml);
	m = model_load(tmpdir, &err);
	if (!m)
		fail_msg("%s", err);
	assert_int_equal(m->variant, VARIANT_INT8);
	assert_int_equal(m->n_layers, 3);
	assert_non_null(m->layers[0].qweight);
	assert_null(m->layers[0].weight);
	assert_float_equal(m->layers[1].wscale[9], 0.01f, 0);
	assert_float_equal(m->layers[0].in_scale, 0, 0);	/* dynamic */
	for (int j = 0; j < 64; j++)
		x[j] = (float)(j % 17);
	model_forward_ref(m, x, 1, y);
	for (int k = 0; k < 10; k++)
		sum += y[k];
	assert_float_equal(sum, 1.0f, 1e-5);
	model_free(m);
	/* a calibrated static scale is read */
	{
		char *v = replace(q8_yaml, "weight_scale: s2,", "weight_scale: s2, input_scale: 0.25,");

		write_yaml(v);
		free(v);
	}
	m = model_load(tmpdir, &err);
	if (!m)
		fail_msg("%s", err);
	assert_float_equal(m->layers[1].in_scale, 0.25f, 0);
	model_free(m);
}

static void test_q8_scale_errors(void **state)
{
	(void)state;
	write_q8_weights();
	/* missing: points at the layer, names the key and why */
	expect_q8("weight_scale: s1, ", "", "{type: dense, weight: w1",
		  "layers[0].weight_scale: missing (an F32 tensor [64] of per-channel scales; "
		  "required when variant is int8)");
	expect_q8("weight_scale: s2, ", "", "{type: dense, weight: w2",
		  "layers[1].weight_scale: missing (an F32 tensor [10]");
	/* wrong count, dtype, rank, or another layer's scales */
	expect_q8("s1,", "s_short,", "s_short",
		  "layers[0].weight_scale: tensor s_short has shape [63], expected [64]");
	expect_q8("s1,", "s2,", "s2, bias: b1",
		  "layers[0].weight_scale: tensor s2 has shape [10], expected [64]");
	expect_q8("s1,", "s_i8,", "s_i8",
		  "layers[0].weight_scale: tensor s_i8 has dtype I8, expected F32");
	expect_q8("s1,", "s_2d,", "s_2d",
		  "layers[0].weight_scale: tensor s_2d has shape [64, 1], expected [64]");
	expect_q8("s1,", "nope,", "nope",
		  "layers[0].weight_scale: tensor nope not found in ");
	/* bad values: which tensor, which channel, what it is */
	expect_q8("s1,", "s_nan,", "s_nan",
		  "layers[0].weight_scale: tensor s_nan: scale[5] is nan, must be finite and > 0");
	expect_q8("s1,", "s_zero,", "s_zero",
		  "layers[0].weight_scale: tensor s_zero: scale[7] is 0, must be finite and > 0");
	expect_q8("s1,", "s_neg,", "s_neg",
		  "layers[0].weight_scale: tensor s_neg: scale[3] is -0.5, must be finite and > 0");
	expect_q8("s1,", "s_inf,", "s_inf",
		  "layers[0].weight_scale: tensor s_inf: scale[63] is inf, must be finite and > 0");
	/* INT8 weights must be I8 */
	expect_q8("weight: w1", "weight: wf", "wf",
		  "layers[0].weight: tensor wf has dtype F32, expected I8");
}

static void test_q8_input_scale_errors(void **state)
{
	const char *from = "weight_scale: s2,";

	(void)state;
	write_q8_weights();
	expect_q8(from, "weight_scale: s2, input_scale: 0,", "0,",
		  "layers[1].input_scale: must be a finite number > 0, got 0");
	/* rounds to 0 as the float the backend uses */
	expect_q8(from, "weight_scale: s2, input_scale: 1e-50,", "1e-50",
		  "layers[1].input_scale: must be a finite number > 0, got 1e-50");
	expect_q8(from, "weight_scale: s2, input_scale: -0.5,", "-0.5",
		  "layers[1].input_scale: expected a number in [0, 3e+38], got -0.5");
	expect_q8(from, "weight_scale: s2, input_scale: 1e39,", "1e39",
		  "layers[1].input_scale: expected a number in [0, 3e+38], got 1e+39");
	expect_q8(from, "weight_scale: s2, input_scale: nan,", "nan,",
		  "layers[1].input_scale: expected a number, got \"nan\"");
	expect_q8(from, "weight_scale: s2, input_scale: lots,", "lots",
		  "layers[1].input_scale: expected a number, got \"lots\"");
	expect_q8(from, "weight_scale: s2, input_scale: [1],", "[1]",
		  "layers[1].input_scale: expected a number, got ");
}

static void test_q8_variant_errors(void **state)
{
	char *b, *v;

	(void)state;
	write_q8_weights();
	expect_q8("variant: int8\n", "variant: int4\n", "int4",
		  "variant: unknown variant \"int4\" (fp32 or int8)");
	expect_q8("variant: int8\n", "variant: INT8\n", "INT8",
		  "variant: unknown variant \"INT8\"");
	expect_q8("variant: int8\n", "variant: [int8]\n", "[int8]", "variant: ");
	/* an FP32 model has no scales to read: weight_scale is an unknown key */
	b = base();
	v = replace(b, "weight: fc1.weight,", "weight: fc1.weight, weight_scale: fc1.bias,");
	expect_error(v, "weight_scale", "layers[0]: unknown key \"weight_scale\"");
	free(v);
	free(b);
	/* variant int8 over FP32 weights: the weight's dtype is named */
	b = base();
	v = replace(b, "name: digits-test\n", "name: digits-test\nvariant: int8\n");
	expect_error(v, "fc1.weight", "layers[0].weight: tensor fc1.weight has dtype F32, "
		     "expected I8");
	free(v);
	free(b);
}

static void test_missing_dir(void **state)
{
	char *err = NULL;

	(void)state;
	assert_null(model_load("/nonexistent/model-dir", &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "/nonexistent/model-dir/model.yaml"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_digits),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_forward_ref_heldout),
		cmocka_unit_test(test_forward_ref_values),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_shape_errors),
		cmocka_unit_test(test_tensor_errors),
		cmocka_unit_test(test_other_errors),
		cmocka_unit_test(test_q8_load_ok),
		cmocka_unit_test(test_q8_scale_errors),
		cmocka_unit_test(test_q8_input_scale_errors),
		cmocka_unit_test(test_q8_variant_errors),
		cmocka_unit_test(test_missing_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

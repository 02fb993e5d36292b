/* kserve.c - see kserve.h. */
#include "kserve.h"

#include <errno.h>
#include <event2/buffer.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "inbuf.h"
#include "jsonfast.h"
#include "util.h"
#include "model/model.h"

#define KS_ERR(...) (snprintf(err, errlen, __VA_ARGS__), 400)
/* Append a string literal. */
#define KS_LIT(out, s) evbuffer_add(out, s, sizeof(s) - 1)
/* Write a string literal at p, and move p past it. */
#define KS_PUT(p, s) (memcpy(p, s, sizeof(s) - 1), (p) += sizeof(s) - 1)

/*
 * Parsing a request builds a jansson tree of ~70 small objects for 64
 * numbers, all freed before ks_parse_infer returns.  While a parse runs,
 * jansson allocates from a per-thread bump arena (reset after the parse,
 * frees into it are no-ops); outside a parse, and when the arena is full,
 * it uses malloc.  Nothing from the tree outlives the parse: strings are
 * copied out.  Sanitizer builds (UTIL_RECYCLE 0) keep jansson on malloc, so a
 * use of a freed node is reported.
 */
#define KS_ARENA_BYTES (512 * 1024)

struct ks_arena {
	char *buf;
	size_t used;
	bool on;
};

static __thread struct ks_arena ks_arena;
static pthread_key_t ks_arena_key;

static void *ks_alloc(size_t n)
{
	struct ks_arena *a = &ks_arena;

	n = (n + 15) & ~(size_t)15;
	if (a->on && a->buf && a->used + n <= KS_ARENA_BYTES) {
		void *p = a->buf + a->used;

		a->used += n;
		return p;
	}
	return malloc(n);
}

static void ks_dealloc(void *p)
{
	struct ks_arena *a = &ks_arena;

	if (a->buf && (char *)p >= a->buf && (char *)p < a->buf + KS_ARENA_BYTES)
		return;
	free(p);
}

static void ks_arena_begin(void)
{
	struct ks_arena *a = &ks_arena;

	if (!a->buf) {
		a->buf = malloc(KS_ARENA_BYTES);
		pthread_setspecific(ks_arena_key, a->buf);	/* freed at thread exit */
	}
	a->used = 0;
	a->on = true;
}

static void ks_arena_end(void)
{
	ks_arena.on = false;
	ks_arena.used = 0;
}

static void ks_arena_free(void *buf)
{
	free(buf);
	ks_arena.buf = NULL;
}

__attribute__((constructor)) static void ks_init(void)
{
	pthread_key_create(&ks_arena_key, ks_arena_free);
	if (UTIL_RECYCLE)
		json_set_alloc_funcs(ks_alloc, ks_dealloc);
}

void ks_format_shape(char *buf, size_t len, const int64_t *dims, int ndim)
{
	size_t off = 0;

	off += snprintf(buf + off, len - off, "[");
	for (int i = 0; i < ndim && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%lld", i ? ", " : "", (long long)dims[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
}

/* Whether the FP32 bits of one value are Inf or NaN (exponent all ones). */
static bool ks_bits_nonfinite(uint32_t bits)
{
	return (bits & 0x7f800000u) == 0x7f800000u;
}

static const char *ks_nonfinite_name(float f)
{
	return isnan(f) ? "NaN" : f > 0 ? "+Inf" : "-Inf";
}

/* Index of the first non-finite of FP32 values i..n-1 at p, or n: one
 * at a time. */
static size_t ks_first_nonfinite1(const unsigned char *p, size_t i, size_t n)
{
	for (; i < n; i++) {
		uint32_t bits;

		memcpy(&bits, p + i * sizeof(bits), sizeof(bits));
		if (ks_bits_nonfinite(bits))
			return i;
	}
	return n;
}

#ifdef __SSE2__
/* Each of the 4 FP32 values at p: all ones where it is non-finite. */
static inline __m128i ks_nonfinite4(const unsigned char *p)
{
	const __m128i e = _mm_set1_epi32(0x7f800000);
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

	return _mm_cmpeq_epi32(_mm_and_si128(v, e), e);
}

/* Bit k set: value k of the 4 at p is non-finite. */
static inline unsigned ks_nonfinite4_bits(const unsigned char *p)
{
	return (unsigned)_mm_movemask_ps(_mm_castsi128_ps(ks_nonfinite4(p)));
}

/* Index of the first non-finite of the 16 FP32 values at p, or 16. */
static inline unsigned ks_first_nonfinite16(const unsigned char *p)
{
	__m128i any = _mm_or_si128(_mm_or_si128(ks_nonfinite4(p), ks_nonfinite4(p + 16)),
				   _mm_or_si128(ks_nonfinite4(p + 32), ks_nonfinite4(p + 48)));

	if (!_mm_movemask_ps(_mm_castsi128_ps(any)))
		return 16;
	return (unsigned)__builtin_ctz(ks_nonfinite4_bits(p) | ks_nonfinite4_bits(p + 16) << 4 |
				       ks_nonfinite4_bits(p + 32) << 8 |
				       ks_nonfinite4_bits(p + 48) << 12);
}
#else
/*
 * Index of the first non-finite of the 16 FP32 values at p, or 16; two a
 * 64-bit word: adding 1 to an exponent field carries into the bit above
 * it (the sign bit's place) exactly when the field is all ones, and never
 * further.
 */
static unsigned ks_first_nonfinite16(const unsigned char *p)
{
	const uint64_t exp = 0x7f8000007f800000ULL, one = 0x0080000000800000ULL;
	uint64_t any = 0;

	for (int k = 0; k < 8; k++) {
		uint64_t w;

		memcpy(&w, p + k * sizeof(w), sizeof(w));
		any |= (w & exp) + one;
	}
	return any & 0x8000000080000000ULL ? (unsigned)ks_first_nonfinite1(p, 0, 16) : 16;
}
#endif

/* Index of the first non-finite of n FP32 values at data (may be
 * unaligned), or n: 16 at a time (SSE2 where there is SSE2), then one. */
static size_t ks_first_nonfinite(const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		unsigned k = ks_first_nonfinite16(p + i * sizeof(uint32_t));

		if (k < 16)
			return i + k;
	}
#ifdef __SSE2__
	for (; i + 4 <= n; i += 4) {
		unsigned b = ks_nonfinite4_bits(p + i * sizeof(uint32_t));

		if (b)
			return i + (unsigned)__builtin_ctz(b);
	}
#endif
	return ks_first_nonfinite1(p, i, n);
}

static float ks_float_at(const void *data, size_t i)
{
	float f;

	memcpy(&f, (const unsigned char *)data + i * sizeof(f), sizeof(f));
	return f;
}

int ks_check_finite_in(const char *field, const void *data, size_t n, char *err, size_t errlen)
{
	size_t i = ks_first_nonfinite(data, n);

	if (i == n)
		return 0;
	return KS_ERR("%s[%zu]: not a finite FP32 value (%s)", field, i,
		      ks_nonfinite_name(ks_float_at(data, i)));
}

int ks_check_finite(const void *data, size_t n, char *err, size_t errlen)
{
	return ks_check_finite_in("inputs[0].data", data, n, err, errlen);
}

int ks_check_output(const struct model *m, int rows, const float *values, char *err,
		    size_t errlen)
{
	size_t n = (size_t)rows * m->out_dim, i = ks_first_nonfinite(values, n);

	if (i == n)
		return 0;
	snprintf(err, errlen, "model %s produced %s at outputs[0].data[%zu], which JSON cannot "
		 "carry (binary_data_output or msgpack can)", m->name,
		 ks_nonfinite_name(values[i]), i);
	return 500;
}

static const char *ks_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/*
 * Flatten data into dst[*n..] (stops writing at cap).  Flat data is a list
 * of numbers (its count is checked by the caller); nested data must follow
 * the shape exactly: at depth d a list of dims[d] elements, numbers at the
 * last dimension, so ragged rows are a 400, never re-sliced.
 */
static int ks_flatten(const json_t *v, const int64_t *dims, int ndim, int depth, float *dst,
		      size_t cap, size_t *n, char *path, size_t plen, char *err, size_t errlen)
{
	bool nested = depth > 0 || json_is_array(json_array_get(v, 0));
	size_t i, base = strlen(path);
	json_t *e;

	if (nested && json_array_size(v) != (size_t)dims[depth]) {
		char shape[96];

		ks_format_shape(shape, sizeof(shape), dims, ndim);
		return KS_ERR("%s: expected %lld elements (dimension %d of shape %s), got %zu", path,
			      (long long)dims[depth], depth, shape, json_array_size(v));
	}
	json_array_foreach(v, i, e) {
		if (nested && depth < ndim - 1) {
			int rc;

			snprintf(path + base, plen - base, "[%zu]", i);
			if (!json_is_array(e))
				return KS_ERR("%s: expected a list, got %s", path, ks_json_kind(e));
			rc = ks_flatten(e, dims, ndim, depth + 1, dst, cap, n, path, plen, err, errlen);
			path[base] = 0;
			if (rc)
				return rc;
			continue;
		}
		float f;

		if (!json_is_number(e))
			return KS_ERR("%s[%zu]: expected a number, got %s", path, i, ks_json_kind(e));
		f = (float)json_number_value(e);
		if (!isfinite(f))
			return KS_ERR("%s[%zu]: not a finite FP32 value (%s)", path, i,
				      ks_nonfinite_name(f));
		if (*n < cap)
			dst[*n] = f;
		(*n)++;
	}
	return 0;
}

void ks_infer_free(struct ks_infer *ki)
{
	inbuf_free(ki->owned);
	ki->owned = NULL;
	ki->data = NULL;
}

/* Whether s (len bytes) is exactly t's KServe name: one compare, where
 * dtype_from_kserve walks the table with strcmp. */
static bool ks_is_dtype(enum dtype t, const char *s, size_t len)
{
	const char *name = dtype_kserve_name(t);

	return name && util_streqn(name, s, len);
}

int ks_check_input(const struct model *m, int n_inputs, const char *name, size_t name_len,
		   const char *datatype, size_t dt_len, const int64_t *dims, int ndim,
		   int *rows, char *err, size_t errlen)
{
	const struct tensor_spec *ts = &m->input;
	char want_s[96], got_s[96], dt[32];
	int ok = ndim == ts->ndim;

	if (n_inputs != 1)
		return KS_ERR("inputs: model %s takes 1 input, got %d", m->name, n_inputs);
	if (!name)
		return KS_ERR("inputs[0].name: expected a string");
	if (!util_streqn(ts->name, name, name_len))
		return KS_ERR("inputs[0].name: model %s has no input \"%.*s\" (expected \"%s\")",
			      m->name, (int)(name_len > 64 ? 64 : name_len), name, ts->name);
	if (!datatype)
		return KS_ERR("inputs[0].datatype: expected a string such as \"FP32\"");
	if (!ks_is_dtype(ts->dtype, datatype, dt_len) &&
	    (snprintf(dt, sizeof(dt), "%.*s", (int)(dt_len > 31 ? 31 : dt_len), datatype),
	     dtype_from_kserve(dt) != ts->dtype))
		return KS_ERR("inputs[0].datatype: expected %s, got %s (input \"%s\" of model %s)",
			      dtype_kserve_name(ts->dtype), dt, ts->name, m->name);
	if (ndim > MODEL_MAX_DIMS)
		return KS_ERR("inputs[0].shape: %d dimensions, at most %d", ndim, MODEL_MAX_DIMS);
	for (int i = 0; i < ndim; i++) {
		if (dims[i] < 0)
			return KS_ERR("inputs[0].shape[%d]: expected a non-negative integer", i);
		if (ok && ts->dims[i] >= 0 && ts->dims[i] != dims[i])
			ok = 0;
	}
	if (!ok) {
		ks_format_shape(want_s, sizeof(want_s), ts->dims, ts->ndim);
		ks_format_shape(got_s, sizeof(got_s), dims, ndim);
		return KS_ERR("inputs[0].shape: expected %s, got %s", want_s, got_s);
	}
	if (dims[0] < 1 || dims[0] > m->max_batch_size)
		return KS_ERR("inputs[0].shape[0]: batch of %lld rows, expected 1 to %d",
			      (long long)dims[0], m->max_batch_size);
	*rows = (int)dims[0];
	return 0;
}

int ks_check_output_name(const struct model *m, int idx, const char *name, size_t len,
			 char *err, size_t errlen)
{
	if (!name)
		return KS_ERR("outputs[%d].name: expected a string", idx);
	if (!util_streqn(m->output.name, name, len))
		return KS_ERR("outputs[%d].name: model %s has no output \"%.*s\" (expected \"%s\")",
			      idx, m->name, (int)(len > 64 ? 64 : len), name, m->output.name);
	return 0;
}

int ks_check_bytes(const struct model *m, const char *field, int rows, size_t got, char *err,
		   size_t errlen)
{
	size_t want = (size_t)rows * m->in_dim * sizeof(float);

	if (got != want)
		return KS_ERR("%s: %zu bytes, expected %zu for shape [%d, %d] %s", field, got, want,
			      rows, m->in_dim, dtype_kserve_name(m->input.dtype));
	return 0;
}

/* The JSON shape list into dims.  0 or 400. */
static int ks_json_shape(const json_t *shape, int64_t *dims, int *ndim, char *err, size_t errlen)
{
	size_t i;
	json_t *e;

	if (!json_is_array(shape))
		return KS_ERR("inputs[0].shape: expected a list of integers, got %s",
			      shape ? ks_json_kind(shape) : "nothing");
	if (json_array_size(shape) > MODEL_MAX_DIMS)
		return KS_ERR("inputs[0].shape: %zu dimensions, at most %d", json_array_size(shape),
			      MODEL_MAX_DIMS);
	json_array_foreach(shape, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < 0)
			return KS_ERR("inputs[0].shape[%zu]: expected a non-negative integer", i);
		dims[i] = json_integer_value(e);
	}
	*ndim = (int)json_array_size(shape);
	return 0;
}

/* Parameters of Triton's protocol that infergw does not implement, and why. */
static const struct {
	const char *key, *why;
} ks_unsupported[] = {
	{ "sequence_id", "infergw has no sequence batching" },
	{ "sequence_start", "infergw has no sequence batching" },
	{ "sequence_end", "infergw has no sequence batching" },
	{ "shared_memory_region", "infergw has no shared memory: send the tensor in the body" },
	{ "shared_memory_byte_size", "infergw has no shared memory: send the tensor in the body" },
	{ "shared_memory_offset", "infergw has no shared memory: send the tensor in the body" },
};

int ks_check_param(const char *where, const char *key, size_t len, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(ks_unsupported) / sizeof(ks_unsupported[0]); i++)
		if (len == strlen(ks_unsupported[i].key) && !memcmp(key, ks_unsupported[i].key, len))
			return KS_ERR("%s.%s: not supported (%s)", where, ks_unsupported[i].key,
				      ks_unsupported[i].why);
	return 0;
}

/* Every key of the parameters object p (at where) is one infergw implements or ignores. */
static int ks_json_params(const json_t *p, const char *where, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	int rc;

	json_object_foreach((json_t *)p, key, v) {
		if ((rc = ks_check_param(where, key, strlen(key), err, errlen)))
			return rc;
	}
	return 0;
}

/* inputs[0].parameters.binary_data_size: -1 when absent, else the size. */
static int ks_binary_size(const json_t *in, int64_t *size, char *err, size_t errlen)
{
	const json_t *p = json_object_get(in, "parameters"), *b;
	int rc;

	*size = -1;
	if (!p)
		return 0;
	if (!json_is_object(p))
		return KS_ERR("inputs[0].parameters: expected an object, got %s", ks_json_kind(p));
	if ((rc = ks_json_params(p, "inputs[0].parameters", err, errlen)))
		return rc;
	b = json_object_get(p, "binary_data_size");
	if (!b)
		return 0;
	if (!json_is_integer(b) || json_integer_value(b) < 0)
		return KS_ERR("inputs[0].parameters.binary_data_size: expected a non-negative integer");
	*size = json_integer_value(b);
	return 0;
}

/* Tensor data from the binary section: a view, no copy. */
static int ks_binary_data(const struct model *m, int64_t size, const char *bin, size_t bin_len,
			  size_t *used, struct ks_infer *out, char *err, size_t errlen)
{
	int rc;

	if (!bin)
		return KS_ERR("inputs[0].parameters.binary_data_size: set, but the request has no "
			      "Inference-Header-Content-Length header (no binary section)");
	rc = ks_check_bytes(m, "inputs[0].parameters.binary_data_size", out->rows, (size_t)size,
			    err, errlen);
	if (rc)
		return rc;
	if ((size_t)size > bin_len - *used)
		return KS_ERR("inputs[0]: binary data of %lld bytes runs past the end of the body "
			      "(%zu bytes after the JSON header)", (long long)size, bin_len - *used);
	out->data = (const float *)(bin + *used);
	*used += (size_t)size;
	return ks_check_finite(out->data, (size_t)size / sizeof(float), err, errlen);
}

static int ks_json_data(const struct model *m, const json_t *data, struct jfast_list *fast,
			struct ks_infer *out, char *err, size_t errlen)
{
	char path[256] = "inputs[0].data";
	size_t want = (size_t)out->rows * m->in_dim, n = 0;
	int64_t dims[2] = { out->rows, m->in_dim };
	int rc;

	if (!json_is_array(data))
		return KS_ERR("inputs[0].data: expected a list of numbers, got %s",
			      data ? ks_json_kind(data) : "nothing");
	if (fast->vals && json_array_size(data) == 0) {
		/* jfast_input_data read this very list (inputs[0].data), then blanked it */
		out->owned = fast->vals;
		out->data = out->owned;
		fast->vals = NULL;
		if (fast->n != want)
			return KS_ERR("inputs[0].data: expected %zu values for shape [%d, %d], got %zu",
				      want, out->rows, m->in_dim, fast->n);
		return ks_check_finite(out->data, want, err, errlen);
	}
	out->owned = inbuf_alloc(want);
	out->data = out->owned;
	if (!out->owned)
		return snprintf(err, errlen, "gateway out of memory"), 503;
	rc = ks_flatten(data, dims, 2, 0, out->owned, want, &n, path, sizeof(path), err, errlen);
	if (!rc && n != want)
		rc = KS_ERR("inputs[0].data: expected %zu values for shape [%d, %d], got %zu",
			    want, out->rows, m->in_dim, n);
	return rc;
}

static int ks_parse_input(const struct model *m, const json_t *inputs, const char *bin,
			  size_t bin_len, size_t *used, struct jfast_list *fast,
			  struct ks_infer *out, char *err, size_t errlen)
{
	const json_t *in = json_array_get(inputs, 0);
	const json_t *name, *dt;
	int64_t dims[MODEL_MAX_DIMS], bsize;
	int ndim = 0, rc;

	if (json_array_size(inputs) == 1 && !json_is_object(in))
		return KS_ERR("inputs[0]: expected an object, got %s", ks_json_kind(in));
	name = json_object_get(in, "name");
	dt = json_object_get(in, "datatype");
	if (json_array_size(inputs) == 1 &&
	    (rc = ks_json_shape(json_object_get(in, "shape"), dims, &ndim, err, errlen)))
		return rc;
	rc = ks_check_input(m, (int)json_array_size(inputs),
			    json_is_string(name) ? json_string_value(name) : NULL,
			    json_string_length(name),
			    json_is_string(dt) ? json_string_value(dt) : NULL, json_string_length(dt),
			    dims, ndim, &out->rows, err, errlen);
	if (rc || (rc = ks_binary_size(in, &bsize, err, errlen)))
		return rc;
	if (bsize >= 0)
		return ks_binary_data(m, bsize, bin, bin_len, used, out, err, errlen);
	return ks_json_data(m, json_object_get(in, "data"), fast, out, err, errlen);
}

int ks_check_class_count(int idx, const char *key, bool is_int, long long k, int *out,
			 char *err, size_t errlen)
{
	if (!is_int || k < 0)
		return KS_ERR("outputs[%d].parameters.%s: expected a non-negative integer (the number "
			      "of top classes to return)", idx, key);
	*out = k > INT_MAX ? INT_MAX : (int)k;
	return 0;
}

/* classification (Triton's HTTP name) or class_count on one requested output. */
static int ks_output_classes(const json_t *p, int idx, int *k, char *err, size_t errlen)
{
	const json_t *c = json_object_get(p, "classification"), *cc = json_object_get(p, "class_count");
	const char *key = c ? "classification" : "class_count";

	if (c && cc)
		return KS_ERR("outputs[%d].parameters: classification and class_count both given "
			      "(they are one setting)", idx);
	if (!c)
		c = cc;
	if (!c)
		return 0;
	return ks_check_class_count(idx, key, json_is_integer(c),
				    json_is_integer(c) ? json_integer_value(c) : 0, k, err, errlen);
}

/* The parameters of one requested output: binary_data, classification. 0 or 400. */
static int ks_output_params(const json_t *o, int idx, struct ks_infer *out, char *err,
			    size_t errlen)
{
	const json_t *p = json_object_get(o, "parameters"), *b;
	char where[48];
	int rc;

	if (!p)
		return 0;
	snprintf(where, sizeof(where), "outputs[%d].parameters", idx);
	if (!json_is_object(p))
		return KS_ERR("%s: expected an object, got %s", where, ks_json_kind(p));
	if ((rc = ks_json_params(p, where, err, errlen)) ||
	    (rc = ks_output_classes(p, idx, &out->class_count, err, errlen)))
		return rc;
	b = json_object_get(p, "binary_data");
	if (b && !json_is_boolean(b))
		return KS_ERR("outputs[%d].parameters.binary_data: expected true or false", idx);
	if (b)
		out->binary_output = json_is_true(b);
	return 0;
}

static int ks_parse_outputs(const struct model *m, const json_t *outs, struct ks_infer *out,
			    char *err, size_t errlen)
{
	size_t i;
	json_t *o;
	int rc;

	if (!outs)
		return 0;
	if (!json_is_array(outs))
		return KS_ERR("outputs: expected a list, got %s", ks_json_kind(outs));
	json_array_foreach(outs, i, o) {
		const json_t *name = json_object_get(o, "name");

		rc = ks_check_output_name(m, (int)i, json_is_string(name) ? json_string_value(name)
									 : NULL,
					  json_string_length(name), err, errlen);
		if (rc || (rc = ks_output_params(o, (int)i, out, err, errlen)))
			return rc;
	}
	return 0;
}

int64_t ks_clamp_timeout(uint64_t us)
{
	return us > KS_TIMEOUT_MAX_US ? KS_TIMEOUT_MAX_US : (int64_t)us;
}

int ks_check_variant(const char *s, size_t len, int *out, char *err, size_t errlen)
{
	static const enum model_variant vs[] = { VARIANT_FP32, VARIANT_INT8 };

	for (size_t i = 0; s && i < sizeof(vs) / sizeof(vs[0]); i++) {
		const char *name = model_variant_name(vs[i]);

		if (len == strlen(name) && !memcmp(s, name, len)) {
			*out = 1 + (int)vs[i];
			return 0;
		}
	}
	if (!s)
		return KS_ERR("parameters.variant: expected a string, \"fp32\" or \"int8\"");
	return KS_ERR("parameters.variant: unknown variant \"%.*s\" (expected \"fp32\" or "
		      "\"int8\")", len > 32 ? 32 : (int)len, s);
}

static int ks_parse_params(const json_t *p, struct ks_infer *out, char *err, size_t errlen)
{
	const json_t *prio, *tmo, *bo, *var;
	int rc;

	if (!p)
		return 0;
	if (!json_is_object(p))
		return KS_ERR("parameters: expected an object, got %s", ks_json_kind(p));
	if ((rc = ks_json_params(p, "parameters", err, errlen)))
		return rc;
	prio = json_object_get(p, "priority");
	tmo = json_object_get(p, "timeout");
	bo = json_object_get(p, "binary_data_output");
	var = json_object_get(p, "variant");
	if (var && ks_check_variant(json_is_string(var) ? json_string_value(var) : NULL,
				    json_is_string(var) ? json_string_length(var) : 0,
				    &out->variant, err, errlen))
		return 400;
	if (prio && (!json_is_integer(prio) || json_integer_value(prio) < 0 ||
		     json_integer_value(prio) > 1000000))
		return KS_ERR("parameters.priority: expected a non-negative integer");
	if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) < 0))
		return KS_ERR("parameters.timeout: expected a non-negative integer (microseconds)");
	if (bo && !json_is_boolean(bo))
		return KS_ERR("parameters.binary_data_output: expected true or false");
	out->priority = prio ? (int)json_integer_value(prio) : 0;
	out->timeout_us = tmo ? ks_clamp_timeout((uint64_t)json_integer_value(tmo)) : 0;
	out->binary_output = bo && json_is_true(bo);
	return 0;
}

static int ks_parse_root(const struct model *m, const json_t *root, const char *bin,
			 size_t bin_len, struct jfast_list *fast, struct ks_infer *out, char *err,
			 size_t errlen)
{
	const json_t *id = json_object_get(root, "id");
	const json_t *inputs = json_object_get(root, "inputs");
	size_t used = 0;
	int rc;

	if (!json_is_object(root))
		return KS_ERR("request body: expected a JSON object, got %s", ks_json_kind(root));
	if (id) {
		if (!json_is_string(id))
			return KS_ERR("id: expected a string, got %s", ks_json_kind(id));
		if (json_string_length(id) > KS_ID_MAX)
			return KS_ERR("id: longer than %d bytes", KS_ID_MAX);
		memcpy(out->id, json_string_value(id), json_string_length(id) + 1);
		out->has_id = true;
	}
	rc = ks_parse_params(json_object_get(root, "parameters"), out, err, errlen);
	if (rc)
		return rc;
	if (!json_is_array(inputs))
		return KS_ERR("inputs: expected a list of input tensors, got %s",
			      inputs ? ks_json_kind(inputs) : "nothing");
	rc = ks_parse_input(m, inputs, bin, bin_len, &used, fast, out, err, errlen);
	if (rc)
		return rc;
	if (bin && used != bin_len)
		return KS_ERR("request body: %zu bytes after the last binary input (binary "
			      "section is %zu bytes, inputs use %zu)", bin_len - used, bin_len, used);
	return ks_parse_outputs(m, json_object_get(root, "outputs"), out, err, errlen);
}

/*
 * With the inputs[0].data list read by jfast_input_data, the rest becomes a
 * tree of a dozen nodes, not one per number: by jfast_tree when the text
 * is in its subset, else by jansson from a copy of the body with that list
 * emptied ("[]").  When the copy is malformed, the body itself is parsed again for
 * the message (its line and column are the body's).
 */
static json_t *ks_load(const char *json, size_t json_len, struct jfast_list *fast,
		       json_error_t *jerr)
{
	size_t cut;
	char *copy;
	json_t *root;

	if (!jfast_input_data(json, json_len, fast)) {
		root = jfast_tree(json, json_len, 0, 0);
		return root ? root : json_loadb(json, json_len, JSON_REJECT_DUPLICATES, jerr);
	}
	/* The common case: the rest read without jansson's lexer. */
	root = jfast_tree(json, json_len, fast->begin, fast->end);
	if (root)
		return root;
	cut = fast->end - fast->begin;
	copy = ks_alloc(json_len - cut);
	if (!copy) {
		inbuf_free(fast->vals);
		memset(fast, 0, sizeof(*fast));
		return json_loadb(json, json_len, JSON_REJECT_DUPLICATES, jerr);
	}
	memcpy(copy, json, fast->begin);
	memcpy(copy + fast->begin, json + fast->end, json_len - fast->end);
	root = json_loadb(copy, json_len - cut, JSON_REJECT_DUPLICATES, jerr);
	ks_dealloc(copy);
	if (!root)
		root = json_loadb(json, json_len, JSON_REJECT_DUPLICATES, jerr);
	return root;
}

/*
 * Whether the input's values of a request jfast_read took (of rows rows)
 * are what ks_parse_root takes: its inputs[0].data list, or with the binary
 * tensor extension the binary section bin[0..bin_len), which they must
 * fill exactly.
 */
static bool ks_fast_data_ok(const struct model *m, const struct jfast_req *r, int rows,
			    const char *bin, size_t bin_len)
{
	char e[192];	/* not used: the message comes from the general path */

	if (!r->has_binary_size)	/* jfast_read's values are finite */
		return !bin && r->n == (size_t)rows * m->in_dim;
	/* "data" too is declined: the general path reads it (and ignores it) */
	return bin && !r->vals && (unsigned long long)r->binary_size == bin_len &&
	       !ks_check_bytes(m, "", rows, bin_len, e, sizeof(e)) &&
	       !ks_check_finite(bin, bin_len / sizeof(float), e, sizeof(e));
}

/*
 * A request jfast_read took, checked as ks_parse_root checks one: true with
 * out filled when every check passes (the values: r->vals moved to
 * out->owned, or a view of bin).  false otherwise, nothing moved, and the
 * caller parses the body the general way, which names the first failing
 * field in ks_parse_root's order.
 */
static bool ks_fast_checked(const struct model *m, struct jfast_req *r, const char *bin,
			    size_t bin_len, struct ks_infer *out)
{
	char e[1];	/* the message comes from the general path */

	if (!r->has_input || !r->has_shape || r->id.len > KS_ID_MAX ||
	    (r->has_priority && r->priority > 1000000) ||
	    (r->variant.s && ks_check_variant(r->variant.s, r->variant.len, &out->variant, e, 1)) ||
	    ks_check_input(m, 1, r->name.s, r->name.len, r->datatype.s, r->datatype.len, r->dims,
			   r->ndim, &out->rows, e, 1) ||
	    !ks_fast_data_ok(m, r, out->rows, bin, bin_len))
		return false;
	out->binary_output = r->binary_data_output;
	for (int i = 0; i < r->n_outputs; i++) {
		if (ks_check_output_name(m, i, r->out_name[i].s, r->out_name[i].len, e, 1))
			return false;
		if (r->out_binary[i])
			out->binary_output = r->out_binary[i] == 2;
	}
	if (r->id.s) {
		memcpy(out->id, r->id.s, r->id.len);
		out->id[r->id.len] = 0;
		out->has_id = true;
	}
	out->priority = (int)r->priority;
	out->timeout_us = r->has_timeout ? ks_clamp_timeout((uint64_t)r->timeout) : 0;
	if (r->has_binary_size) {
		out->data = (const float *)bin;
	} else {
		out->owned = r->vals;
		out->data = out->owned;
		r->vals = NULL;
	}
	return true;
}

int ks_parse_infer(const struct model *m, const char *json, size_t json_len, const char *bin,
		   size_t bin_len, struct ks_infer *out, char *err, size_t errlen)
{
	struct jfast_req r;

	memset(out, 0, sizeof(*out));
	if (json_len && jfast_read(json, json_len, &r)) {
		bool ok = ks_fast_checked(m, &r, bin, bin_len, out);

		inbuf_free(r.vals);
		if (ok)
			return 0;
	}
	return ks_parse_infer_general(m, json, json_len, bin, bin_len, out, err, errlen);
}

int ks_parse_infer_general(const struct model *m, const char *json, size_t json_len,
			   const char *bin, size_t bin_len, struct ks_infer *out, char *err,
			   size_t errlen)
{
	struct jfast_list fast;
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if (json_len == 0)
		return KS_ERR("request body: empty, expected a JSON object with \"inputs\"");
	ks_arena_begin();
	root = ks_load(json, json_len, &fast, &jerr);
	if (!root) {
		ks_arena_end();
		inbuf_free(fast.vals);
		return KS_ERR("malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
			      jerr.text);
	}
	rc = ks_parse_root(m, root, bin, bin_len, &fast, out, err, errlen);
	json_decref(root);
	ks_arena_end();
	inbuf_free(fast.vals);	/* unless ks_json_data took it */
	if (rc)
		ks_infer_free(out);
	return rc;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0.  s is NUL-terminated,
 * and NUL is never a continuation byte, so reads stop at the end.
 */
static size_t ks_utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;	/* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f;	/* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90;	/* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f;	/* past U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Bytes ks_escape may write for a string of len bytes: "\ufffd" or
 * "\u001f" (6) for one byte at worst. */
#define KS_ESC_MAX(len) (6 * (len))

/*
 * s as the contents of a JSON string (no quotes) at dst, which has room
 * for KS_ESC_MAX(strlen(s)): '"', '\\' and control characters escaped,
 * each byte that is not part of well-formed UTF-8 replaced by U+FFFD, so
 * the result is always valid JSON in UTF-8.  Returns the end.
 */
/* The bytes written as they are without decoding: printable ASCII and
 * DEL but '"' and '\\' (not NUL: the walk stops there). */
static const bool ks_plain[256] = {
	[0x20 ... 0x21] = true, [0x23 ... 0x5b] = true, [0x5d ... 0x7f] = true,
};

static char *ks_escape(char *dst, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;

	for (;;) {
		size_t n;

		while (ks_plain[*p])
			p++;	/* plain ASCII, the usual name: no UTF-8 decoding */
		if (!*p)
			break;
		n = ks_utf8_len(p);
		if (n && *p != '"' && *p != '\\' && *p >= 0x20) {
			p += n;
			continue;
		}
		memcpy(dst, run, (size_t)(p - run));
		dst += p - run;
		if (!n) {
			memcpy(dst, "\\ufffd", 6);
			dst += 6;
		} else if (*p == '"' || *p == '\\') {
			*dst++ = '\\';
			*dst++ = (char)*p;
		} else {
			dst += snprintf(dst, 7, "\\u%04x", *p);
		}
		run = ++p;
	}
	memcpy(dst, run, (size_t)(p - run));
	return dst + (p - run);
}

/* s as a JSON string literal, quotes included, at dst (room:
 * KS_ESC_MAX(strlen(s)) + 2); returns the end. */
static char *ks_quote(char *dst, const char *s)
{
	*dst++ = '"';
	dst = ks_escape(dst, s);
	*dst++ = '"';
	return dst;
}

/*
 * Writing straight into out's last chunk: ks_reserve gives room for max
 * bytes (NULL without memory: nothing is written), ks_commit adds the
 * bytes [v->iov_base, end) to out.
 */
static char *ks_reserve(struct evbuffer *out, size_t max, struct evbuffer_iovec *v)
{
	return evbuffer_reserve_space(out, (ev_ssize_t)max, v, 1) < 1 ? NULL : v->iov_base;
}

static void ks_commit(struct evbuffer *out, struct evbuffer_iovec *v, const char *end)
{
	v->iov_len = (size_t)(end - (const char *)v->iov_base);
	evbuffer_commit_space(out, v, 1);
}

void ks_put_str(struct evbuffer *out, const char *s)
{
	struct evbuffer_iovec v;
	char *p = ks_reserve(out, KS_ESC_MAX(strlen(s)) + 2, &v);

	if (p)
		ks_commit(out, &v, ks_quote(p, s));
}

json_t *ks_json_string(const char *s)
{
	struct evbuffer *b;
	json_t *j = json_string(s);
	size_t len;

	if (j)
		return j;
	b = evbuffer_new();
	if (!b)
		return NULL;
	/* Escaped for JSON, then read back by jansson: invalid bytes are U+FFFD. */
	ks_put_str(b, s);
	len = evbuffer_get_length(b);
	j = json_loadb((const char *)evbuffer_pullup(b, -1), len, JSON_DECODE_ANY, NULL);
	evbuffer_free(b);
	return j;
}

/* v in decimal at p; the end.  (printf's formatting costs ~600
 * instructions a number on the infer path.) */
static char *ks_itoa(char *p, long long v)
{
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, t;
	char *end;

	if (v < 0)
		*p++ = '-';
	for (end = p + 1, t = u; t >= 10; t /= 10)
		end++;	/* its digits counted: written in place, no copy */
	p = end;
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	return end;
}

/* Room ks_head needs: fixed text, an integer, three escaped strings. */
static size_t ks_head_max(const struct model *m, const char *id)
{
	return 128 + KS_ESC_MAX(strlen(m->name)) + KS_ESC_MAX(strlen(m->output.name)) +
	       (id ? KS_ESC_MAX(strlen(id)) : 0);
}

/* The response up to the output's first key: {"model_name", "model_version",
 * "id", "outputs":[{"name", at p (room: ks_head_max); returns the end. */
static char *ks_head(char *p, const struct model *m, const char *id)
{
	KS_PUT(p, "{\"model_name\":");
	p = ks_quote(p, m->name);
	KS_PUT(p, ",\"model_version\":\"");
	p = ks_itoa(p, m->version);
	*p++ = '"';
	if (id) {
		KS_PUT(p, ",\"id\":");
		p = ks_quote(p, id);
	}
	KS_PUT(p, ",\"outputs\":[{\"name\":");
	return ks_quote(p, m->output.name);
}

static void ks_encode_head(struct evbuffer *out, const struct model *m, const char *id)
{
	struct evbuffer_iovec v;
	char *p = ks_reserve(out, ks_head_max(m, id), &v);

	if (p)
		ks_commit(out, &v, ks_head(p, m, id));
}

/* The n values as a JSON list's contents at p (room: n x (JFAST_FLOAT_MAX
 * + 1)); returns the end. */
static char *ks_put_values(char *p, const float *values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		/* %.9g text (round-trips every float32 exactly); Inf and NaN are
		 * no JSON number (callers answer 500 first: ks_check_output), so null. */
		if (isfinite(values[i])) {
			p += jfast_put_float(p, values[i]);
		} else {
			KS_PUT(p, "null");
		}
	}
	return p;
}

/* The answer's JSON up to its output's datatype and shape, at p; the end. */
static char *ks_infer_start(char *p, const struct model *m, const char *id, int rows,
			    const char *dt, size_t dt_len)
{
	p = ks_head(p, m, id);
	KS_PUT(p, ",\"datatype\":\"");
	memcpy(p, dt, dt_len);
	p += dt_len;
	KS_PUT(p, "\",\"shape\":[");
	p = ks_itoa(p, rows);
	*p++ = ',';
	p = ks_itoa(p, m->out_dim);
	KS_PUT(p, "],");
	return p;
}

size_t ks_encode_infer_head(struct evbuffer *out, const struct model *m, const char *id, int rows)
{
	size_t n = (size_t)rows * m->out_dim;
	const char *dt = dtype_kserve_name(m->output.dtype);
	size_t dt_len = strlen(dt);
	struct evbuffer_iovec v;
	char *base, *p;

	base = ks_reserve(out, ks_head_max(m, id) + dt_len + 128, &v);
	if (!base)
		return 0;
	p = ks_infer_start(base, m, id, rows, dt, dt_len);
	/* Little-endian FP32, as the host stores it (x86-64, aarch64). */
	KS_PUT(p, "\"parameters\":{\"binary_data_size\":");
	p = ks_itoa(p, (long long)(n * sizeof(float)));
	KS_PUT(p, "}}]}");
	ks_commit(out, &v, p);
	return (size_t)(p - base);
}

/* The whole answer goes into one reserved space: no copy, no regrowth. */
size_t ks_encode_infer(struct evbuffer *out, const struct model *m, const char *id, int rows,
		       const float *values, bool binary)
{
	size_t n = (size_t)rows * m->out_dim, hdr;
	const char *dt = dtype_kserve_name(m->output.dtype);
	size_t dt_len = strlen(dt);
	struct evbuffer_iovec v;
	char *base, *p;

	if (binary) {
		if ((hdr = ks_encode_infer_head(out, m, id, rows)))
			evbuffer_add(out, values, n * sizeof(float));
		return hdr;
	}
	base = ks_reserve(out, ks_head_max(m, id) + dt_len + 128 + n * (JFAST_FLOAT_MAX + 1), &v);
	if (!base)
		return 0;
	p = ks_infer_start(base, m, id, rows, dt, dt_len);
	KS_PUT(p, "\"data\":[");
	p = ks_put_values(p, values, n);
	KS_PUT(p, "]}]}");
	ks_commit(out, &v, p);
	return 0;
}

static void ks_encode_spec(struct evbuffer *out, const struct tensor_spec *t)
{
	evbuffer_add(out, "{\"name\":", 8);
	ks_put_str(out, t->name);
	evbuffer_add_printf(out, ",\"datatype\":\"%s\",\"shape\":[", dtype_kserve_name(t->dtype));
	for (int i = 0; i < t->ndim; i++)
		evbuffer_add_printf(out, i ? ",%lld" : "%lld", (long long)t->dims[i]);
	evbuffer_add(out, "]}", 2);
}

void ks_encode_model(struct evbuffer *out, const struct model *m)
{
	ks_encode_model_variants(out, m, NULL);
}

void ks_encode_model_variants(struct evbuffer *out, const struct model *m,
			      const struct ks_variants *v)
{
	evbuffer_add(out, "{\"name\":", 8);
	ks_put_str(out, m->name);
	evbuffer_add_printf(out, ",\"versions\":[\"%d\"],\"platform\":", m->version);
	ks_put_str(out, m->platform ? m->platform : "infergw-mlp");
	evbuffer_add(out, ",\"inputs\":[", 11);
	ks_encode_spec(out, &m->input);
	evbuffer_add(out, "],\"outputs\":[", 13);
	ks_encode_spec(out, &m->output);
	evbuffer_add_printf(out, "],\"max_batch_size\":%d", m->max_batch_size);
	if (v && v->n > 1) {
		evbuffer_add(out, ",\"variants\":[", 13);
		for (int i = 0; i < v->n; i++)
			evbuffer_add_printf(out, "%s{\"name\":\"%s\",\"backends\":%d}", i ? "," : "",
					    v->name[i], v->hosts[i]);
		evbuffer_add(out, "],\"variant_policy\":", 19);
		ks_put_str(out, v->policy);
	}
	evbuffer_add(out, "}", 1);
}

/* ---- classification extension ---- */

struct ks_cls {
	float v;
	int i;
};

/* Best first: higher score, NaN after every number, equal scores by lower index. */
static int ks_cls_cmp(const void *a, const void *b)
{
	const struct ks_cls *x = a, *y = b;
	bool xn = isnan(x->v), yn = isnan(y->v);

	if (xn != yn)
		return xn ? 1 : -1;
	if (!xn && x->v != y->v)
		return x->v > y->v ? -1 : 1;
	return x->i - y->i;
}

int ks_class_k(const struct model *m, int class_count)
{
	return class_count < m->out_dim ? class_count : m->out_dim;
}

int ks_classes(const struct model *m, int rows, const float *values, int class_count,
	       void (*fn)(void *arg, const char *s, int len), void *arg)
{
	int n = m->out_dim, k = ks_class_k(m, class_count);
	struct ks_cls *c = malloc((size_t)n * sizeof(*c));
	char s[KS_CLASS_STR_MAX];

	if (!c)
		return -ENOMEM;
	for (int r = 0; r < rows; r++) {
		for (int j = 0; j < n; j++)
			c[j] = (struct ks_cls){ values[(size_t)r * n + j], j };
		qsort(c, (size_t)n, sizeof(*c), ks_cls_cmp);
		for (int j = 0; j < k; j++) {
			int len = m->labels ?
				snprintf(s, sizeof(s), "%f:%d:%s", (double)c[j].v, c[j].i,
					 m->labels[c[j].i]) :
				snprintf(s, sizeof(s), "%f:%d", (double)c[j].v, c[j].i);

			fn(arg, s, len < (int)sizeof(s) ? len : (int)sizeof(s) - 1);
		}
	}
	free(c);
	return 0;
}

struct ks_cls_out {
	struct evbuffer *out;
	bool first;
};

static void ks_cls_json(void *arg, const char *s, int len)
{
	struct ks_cls_out *o = arg;

	if (!o->first)
		KS_LIT(o->out, ",");
	o->first = false;
	ks_put_str(o->out, s);
}

/* Triton's BYTES serialization: 4-byte little-endian length, then the bytes. */
static void ks_cls_binary(void *arg, const char *s, int len)
{
	struct ks_cls_out *o = arg;
	unsigned char le[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff,
				(unsigned)len >> 24 };

	evbuffer_add(o->out, le, 4);
	evbuffer_add(o->out, s, (size_t)len);
}

int ks_encode_classes(struct evbuffer *out, const struct model *m, const char *id, int rows,
		      const float *values, int class_count, bool binary, size_t *hdr)
{
	size_t start = evbuffer_get_length(out);
	struct ks_cls_out o = { out, true };
	int rc;

	*hdr = 0;
	ks_encode_head(out, m, id);
	evbuffer_add_printf(out, ",\"datatype\":\"BYTES\",\"shape\":[%d,%d],", rows,
			    ks_class_k(m, class_count));
	if (!binary) {
		KS_LIT(out, "\"data\":[");
		rc = ks_classes(m, rows, values, class_count, ks_cls_json, &o);
		KS_LIT(out, "]}]}");
		return rc;
	}
	o.out = evbuffer_new();
	if (!o.out)
		return -ENOMEM;
	rc = ks_classes(m, rows, values, class_count, ks_cls_binary, &o);
	evbuffer_add_printf(out, "\"parameters\":{\"binary_data_size\":%zu}}]}",
			    evbuffer_get_length(o.out));
	*hdr = evbuffer_get_length(out) - start;
	evbuffer_add_buffer(out, o.out);
	evbuffer_free(o.out);
	return rc;
}

/* ---- model configuration extension ---- */

/* One input/output of the configuration: dims without the batch dimension. */
static void ks_config_io(struct evbuffer *out, const struct tensor_spec *t, bool input)
{
	KS_LIT(out, "{\"name\":");
	ks_put_str(out, t->name);
	evbuffer_add_printf(out, ",\"data_type\":\"%s\",%s\"dims\":[", dtype_triton_name(t->dtype),
			    input ? "\"format\":\"FORMAT_NONE\"," : "");
	for (int i = 1; i < t->ndim; i++)
		evbuffer_add_printf(out, i > 1 ? ",%lld" : "%lld", (long long)t->dims[i]);
	evbuffer_add_printf(out, "],\"is_shape_tensor\":false%s}",
			    input ? ",\"allow_ragged_batch\":false,\"optional\":false" : "");
}

static void ks_config_batching(struct evbuffer *out, const struct model_conf *mc,
			       int priority_levels)
{
	KS_LIT(out, ",\"dynamic_batching\":{\"preferred_batch_size\":[");
	for (int i = 0; i < mc->n_preferred; i++)
		evbuffer_add_printf(out, i ? ",%d" : "%d", mc->preferred[i]);
	evbuffer_add_printf(out, "],\"max_queue_delay_microseconds\":%u,\"preserve_ordering\":false,"
			    "\"priority_levels\":%d,\"default_priority_level\":%d,"
			    "\"default_queue_policy\":{\"timeout_action\":\"REJECT\","
			    "\"default_timeout_microseconds\":%llu,\"allow_timeout_override\":true,"
			    "\"max_queue_size\":%d},\"priority_queue_policy\":{}}",
			    mc->max_queue_delay_us, priority_levels, mc->priority,
			    (unsigned long long)mc->slo_ms * 1000, mc->max_queue);
}

static void ks_config_instance(struct evbuffer *out, const struct backend_conf *b)
{
	static const char *const kinds[] = { [BE_CPU] = "KIND_CPU", [BE_GPU] = "KIND_GPU",
					     [BE_REMOTE] = "KIND_MODEL",
					     [BE_FAKE] = "KIND_MODEL" };

	KS_LIT(out, "{\"name\":");
	ks_put_str(out, b->name);
	evbuffer_add_printf(out, ",\"kind\":\"%s\",\"count\":%d,\"gpus\":[", kinds[b->kind],
			    b->slots > 0 ? b->slots : 1);
	if (b->kind == BE_GPU)
		evbuffer_add_printf(out, "%d", b->device);
	KS_LIT(out, "]}");
}

void ks_encode_config(struct evbuffer *out, const struct model *m, const struct model_conf *mc,
		      int priority_levels, const struct backend_conf *const *hosts, int n)
{
	ks_encode_config_variants(out, m, mc, priority_levels, hosts, n, NULL);
}

void ks_encode_config_variants(struct evbuffer *out, const struct model *m,
			       const struct model_conf *mc, int priority_levels,
			       const struct backend_conf *const *hosts, int n,
			       const struct ks_variants *v)
{
	KS_LIT(out, "{\"name\":");
	ks_put_str(out, m->name);
	KS_LIT(out, ",\"platform\":");
	ks_put_str(out, m->platform ? m->platform : "infergw-mlp");
	evbuffer_add_printf(out, ",\"backend\":\"infergw\",\"version_policy\":{\"specific\":"
			    "{\"versions\":[%d]}},\"max_batch_size\":%d,\"input\":[",
			    m->version, m->max_batch_size);
	ks_config_io(out, &m->input, true);
	KS_LIT(out, "],\"output\":[");
	ks_config_io(out, &m->output, false);
	KS_LIT(out, "]");
	ks_config_batching(out, mc, priority_levels);
	KS_LIT(out, ",\"instance_group\":[");
	for (int i = 0; i < n; i++) {
		if (i)
			KS_LIT(out, ",");
		ks_config_instance(out, hosts[i]);
	}
	KS_LIT(out, "]");
	if (v && v->n > 1) {
		KS_LIT(out, ",\"parameters\":{\"variants\":{\"string_value\":\"");
		for (int i = 0; i < v->n; i++)
			evbuffer_add_printf(out, "%s%s", i ? "," : "", v->name[i]);
		KS_LIT(out, "\"},\"variant_policy\":{\"string_value\":");
		ks_put_str(out, v->policy);
		KS_LIT(out, "}");
		for (int i = 0; i < v->n; i++)
			evbuffer_add_printf(out, ",\"variant_%s_backends\":{\"string_value\":\"%d\"}",
					    v->name[i], v->hosts[i]);
		KS_LIT(out, "}");
	}
	KS_LIT(out, "}");
}

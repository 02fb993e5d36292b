/* kserve.c - see kserve.h. */
#include "kserve.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define KS_ERR(...) (snprintf(err, errlen, __VA_ARGS__), 400)

void ks_format_shape(char *buf, size_t len, const int64_t *dims, int ndim)
{
	size_t off = 0;

	off += snprintf(buf + off, len - off, "[");
	for (int i = 0; i < ndim && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%lld", i ? ", " : "", (long long)dims[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
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

/* Flatten nested data into dst[*n..]; stops at cap.  0 or 400. */
static int ks_flatten(const json_t *v, float *dst, size_t cap, size_t *n, char *path,
		      size_t plen, char *err, size_t errlen)
{
	size_t i, base = strlen(path);
	json_t *e;

	json_array_foreach(v, i, e) {
		if (json_is_array(e)) {
			int rc;

			snprintf(path + base, plen - base, "[%zu]", i);
			rc = ks_flatten(e, dst, cap, n, path, plen, err, errlen);
			path[base] = 0;
			if (rc)
				return rc;
			continue;
		}
		if (!json_is_number(e))
			return KS_ERR("%s[%zu]: expected a number, got %s", path, i, ks_json_kind(e));
		if (*n < cap)
			dst[*n] = (float)json_number_value(e);
		(*n)++;
	}
	return 0;
}

/* inputs[0].shape against the model's [-1, D]; sets *rows. */
static int ks_check_shape(const struct model *m, const json_t *shape, int *rows, char *err,
			  size_t errlen)
{
	const struct tensor_spec *ts = &m->input;
	int64_t got[MODEL_MAX_DIMS];
	char want_s[96], got_s[96];
	size_t i, n = json_array_size(shape);
	json_t *e;
	int ok = n == (size_t)ts->ndim;

	if (!json_is_array(shape))
		return KS_ERR("inputs[0].shape: expected a list of integers, got %s",
			      shape ? ks_json_kind(shape) : "nothing");
	if (n > MODEL_MAX_DIMS)
		return KS_ERR("inputs[0].shape: %zu dimensions, at most %d", n, MODEL_MAX_DIMS);
	json_array_foreach(shape, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < 0)
			return KS_ERR("inputs[0].shape[%zu]: expected a non-negative integer", i);
		got[i] = json_integer_value(e);
		if (ok && ts->dims[i] >= 0 && ts->dims[i] != got[i])
			ok = 0;
	}
	if (!ok) {
		ks_format_shape(want_s, sizeof(want_s), ts->dims, ts->ndim);
		ks_format_shape(got_s, sizeof(got_s), got, (int)n);
		return KS_ERR("inputs[0].shape: expected %s, got %s", want_s, got_s);
	}
	if (got[0] < 1 || got[0] > m->max_batch_size)
		return KS_ERR("inputs[0].shape[0]: batch of %lld rows, expected 1 to %d",
			      (long long)got[0], m->max_batch_size);
	*rows = (int)got[0];
	return 0;
}

static int ks_parse_input(const struct model *m, const json_t *in, struct ks_infer *out,
			  char *err, size_t errlen)
{
	const json_t *name = json_object_get(in, "name");
	const json_t *dt = json_object_get(in, "datatype");
	const json_t *data = json_object_get(in, "data");
	const char *dts;
	char path[256] = "inputs[0].data";
	size_t want, n = 0;
	int rc;

	if (!json_is_object(in))
		return KS_ERR("inputs[0]: expected an object, got %s", ks_json_kind(in));
	if (!json_is_string(name))
		return KS_ERR("inputs[0].name: expected a string");
	if (strcmp(json_string_value(name), m->input.name) != 0)
		return KS_ERR("inputs[0].name: model %s has no input \"%s\" (expected \"%s\")",
			      m->name, json_string_value(name), m->input.name);
	if (!json_is_string(dt))
		return KS_ERR("inputs[0].datatype: expected a string such as \"FP32\"");
	dts = json_string_value(dt);
	if (dtype_from_kserve(dts) != m->input.dtype)
		return KS_ERR("inputs[0].datatype: expected %s, got %s",
			      dtype_kserve_name(m->input.dtype), dts);
	rc = ks_check_shape(m, json_object_get(in, "shape"), &out->rows, err, errlen);
	if (rc)
		return rc;
	if (!json_is_array(data))
		return KS_ERR("inputs[0].data: expected a list of numbers, got %s",
			      data ? ks_json_kind(data) : "nothing");
	want = (size_t)out->rows * m->in_dim;
	out->data = malloc(want * sizeof(float));
	rc = ks_flatten(data, out->data, want, &n, path, sizeof(path), err, errlen);
	if (!rc && n != want)
		rc = KS_ERR("inputs[0].data: expected %zu values for shape [%d, %d], got %zu",
			    want, out->rows, m->in_dim, n);
	return rc;
}

static int ks_parse_outputs(const struct model *m, const json_t *outs, char *err, size_t errlen)
{
	size_t i;
	json_t *o;

	if (!outs)
		return 0;
	if (!json_is_array(outs))
		return KS_ERR("outputs: expected a list, got %s", ks_json_kind(outs));
	json_array_foreach(outs, i, o) {
		const json_t *name = json_object_get(o, "name");

		if (!json_is_string(name))
			return KS_ERR("outputs[%zu].name: expected a string", i);
		if (strcmp(json_string_value(name), m->output.name) != 0)
			return KS_ERR("outputs[%zu].name: model %s has no output \"%s\" (expected \"%s\")",
				      i, m->name, json_string_value(name), m->output.name);
	}
	return 0;
}

static int ks_parse_params(const json_t *p, struct ks_infer *out, char *err, size_t errlen)
{
	const json_t *prio, *tmo;

	if (!p)
		return 0;
	if (!json_is_object(p))
		return KS_ERR("parameters: expected an object, got %s", ks_json_kind(p));
	prio = json_object_get(p, "priority");
	tmo = json_object_get(p, "timeout");
	if (prio && (!json_is_integer(prio) || json_integer_value(prio) < 0 ||
		     json_integer_value(prio) > 1000000))
		return KS_ERR("parameters.priority: expected a non-negative integer");
	if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) < 0))
		return KS_ERR("parameters.timeout: expected a non-negative integer (microseconds)");
	out->priority = prio ? (int)json_integer_value(prio) : 0;
	out->timeout_us = tmo ? json_integer_value(tmo) : 0;
	return 0;
}

static int ks_parse_root(const struct model *m, const json_t *root, struct ks_infer *out,
			 char *err, size_t errlen)
{
	const json_t *id = json_object_get(root, "id");
	const json_t *inputs = json_object_get(root, "inputs");
	int rc;

	if (!json_is_object(root))
		return KS_ERR("request body: expected a JSON object, got %s", ks_json_kind(root));
	if (id) {
		if (!json_is_string(id))
			return KS_ERR("id: expected a string, got %s", ks_json_kind(id));
		if (json_string_length(id) > KS_ID_MAX)
			return KS_ERR("id: longer than %d bytes", KS_ID_MAX);
		memcpy(out->id, json_string_value(id), json_string_length(id) + 1);
		out->has_id = 1;
	}
	rc = ks_parse_params(json_object_get(root, "parameters"), out, err, errlen);
	if (rc)
		return rc;
	if (!json_is_array(inputs))
		return KS_ERR("inputs: expected a list of input tensors, got %s",
			      inputs ? ks_json_kind(inputs) : "nothing");
	if (json_array_size(inputs) != 1)
		return KS_ERR("inputs: model %s takes 1 input, got %zu", m->name,
			      json_array_size(inputs));
	rc = ks_parse_input(m, json_array_get(inputs, 0), out, err, errlen);
	if (rc)
		return rc;
	return ks_parse_outputs(m, json_object_get(root, "outputs"), err, errlen);
}

int ks_parse_infer(const struct model *m, const char *body, size_t len, struct ks_infer *out,
		   char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return KS_ERR("request body: empty, expected a JSON object with \"inputs\"");
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return KS_ERR("malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
			      jerr.text);
	rc = ks_parse_root(m, root, out, err, errlen);
	json_decref(root);
	if (rc) {
		free(out->data);
		out->data = NULL;
	}
	return rc;
}

void ks_put_str(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(out, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(out, "\\u%04x", ch);
		else
			evbuffer_add(out, s, 1);
	}
	evbuffer_add(out, "\"", 1);
}

void ks_encode_infer(struct evbuffer *out, const struct model *m, const char *id, int rows,
		     const float *values)
{
	size_t n = (size_t)rows * m->out_dim;
	char num[32];

	evbuffer_add_printf(out, "{\"model_name\":");
	ks_put_str(out, m->name);
	evbuffer_add_printf(out, ",\"model_version\":\"%d\"", m->version);
	if (id) {
		evbuffer_add(out, ",\"id\":", 6);
		ks_put_str(out, id);
	}
	evbuffer_add(out, ",\"outputs\":[{\"name\":", 20);
	ks_put_str(out, m->output.name);
	evbuffer_add_printf(out, ",\"datatype\":\"%s\",\"shape\":[%d,%d],\"data\":[",
			    dtype_kserve_name(m->output.dtype), rows, m->out_dim);
	for (size_t i = 0; i < n; i++) {
		/* %.9g round-trips every float32 exactly. */
		int len = snprintf(num, sizeof(num), i ? ",%.9g" : "%.9g", (double)values[i]);

		evbuffer_add(out, num, len);
	}
	evbuffer_add(out, "]}]}", 4);
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
	evbuffer_add(out, "{\"name\":", 8);
	ks_put_str(out, m->name);
	evbuffer_add_printf(out, ",\"versions\":[\"%d\"],\"platform\":", m->version);
	ks_put_str(out, m->platform ? m->platform : "infergw-mlp");
	evbuffer_add(out, ",\"inputs\":[", 11);
	ks_encode_spec(out, &m->input);
	evbuffer_add(out, "],\"outputs\":[", 13);
	ks_encode_spec(out, &m->output);
	evbuffer_add_printf(out, "],\"max_batch_size\":%d}", m->max_batch_size);
}

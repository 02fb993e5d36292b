/* grpccodec.c - see grpccodec.h. */
#include "grpccodec.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "front.h"
#include "kserve.h"
#include "model/model.h"
#include "util.h"

int gc_frame(const uint8_t *p, size_t len, uint64_t max, uint8_t *flag, size_t *mlen)
{
	if (len < GC_FRAME_HDR)
		return 0;
	*flag = p[0];
	*mlen = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
	if (*flag > 1)
		return -EPROTO;
	if (*mlen > max)
		return -EFBIG;
	return len - GC_FRAME_HDR >= *mlen ? 1 : 0;
}

void gc_frame_head(uint8_t *out, size_t len)
{
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

static size_t gc_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

size_t gc_bytes_head(uint8_t *out, uint32_t field, uint64_t n)
{
	size_t k = gc_varint(out, (uint64_t)field << 3 | 2);	/* wire type 2 */

	return k + gc_varint(out + k, n);
}

/*
 * A varint of at most max bytes at p[*off..len) into *v and *off past it;
 * false when it does not end within max bytes and len, or (minimal) when
 * it is written longer than it needs (a last byte 0 after the first).
 */
static bool gc_get_varint(const uint8_t *p, size_t len, size_t *off, unsigned max, bool minimal,
			  uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned i = 0; i < max && *off + i < len; i++) {
		uint8_t b = p[*off + i];

		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (b & 0x80)
			continue;
		if (minimal && i && !b)
			return false;
		*off += i + 1;
		*v = x;
		return true;
	}
	return false;
}

/* Past the value of a field of wire type wt at p[*off..len) (*len_v: the
 * length of a length-delimited one).  false when truncated or not read. */
static bool gc_skip_value(const uint8_t *p, size_t len, size_t *off, unsigned wt, uint64_t *len_v)
{
	uint64_t v;

	switch (wt) {
	case 0:
		return gc_get_varint(p, len, off, 10, false, &v);
	case 1:
	case 5:
		v = wt == 1 ? 8 : 4;
		break;
	case 2:
		if (!gc_get_varint(p, len, off, 5, true, &v) || v > INT_MAX)
			return false;
		*len_v = v;
		break;
	default:
		return false;	/* groups (3, 4) and 6, 7: protobuf-c's to judge */
	}
	if (v > len - *off)
		return false;
	*off += v;
	return true;
}

int gc_split_raw(const uint8_t *p, size_t len, ProtobufCBinaryData *raw, size_t *n_raw,
		 uint8_t *rest, size_t *rest_len)
{
	size_t off = 0, n = 0, r = 0;

	while (off < len) {
		size_t start = off;
		uint64_t tag, vlen = 0;

		if (!gc_get_varint(p, len, &off, 5, true, &tag) || !(tag >> 3) ||
		    !gc_skip_value(p, len, &off, tag & 7, &vlen))
			return -1;
		if (tag == (GC_RAW_INPUT_FIELD << 3 | 2)) {
			if (raw)
				raw[n] = (ProtobufCBinaryData){ .len = vlen,
								.data = (uint8_t *)p + off - vlen };
			n++;
			continue;
		}
		if (rest)
			memcpy(rest + r, p + start, off - start);
		r += off - start;
	}
	*n_raw = n;
	*rest_len = r;
	return 0;
}

/* An integer parameter (int64 or uint64) in [0, max] into *v.  0 or 400. */
static int gc_int_param(const Inference__InferParameter *p, const char *key, int64_t max,
			  int64_t *v, char *err, size_t errlen)
{
	if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM &&
	    p->int64_param >= 0) {
		*v = p->int64_param < max ? p->int64_param : max;
		return 0;
	}
	if (p && p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM) {
		*v = p->uint64_param < (uint64_t)max ? (int64_t)p->uint64_param : max;
		return 0;
	}
	snprintf(err, errlen, "parameters.%s: expected a non-negative int64_param", key);
	return 400;
}

/*
 * Keys of a parameters map (entries of any map type: key first) that
 * infergw refuses, as HTTP does (ks_check_param).  0 or 400.
 */
static int gc_check_keys(const char *where, size_t n, void *const *entries, char *err,
			   size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const Inference__ModelInferRequest__ParametersEntry *e = entries[i];

		if (ks_check_param(where, e->key, strlen(e->key), err, errlen))
			return 400;
	}
	return 0;
}

/*
 * Request parameters: priority in [0, 1000000], timeout in µs (saturated
 * at KS_TIMEOUT_MAX_US); the ones infergw refuses (sequence, shared
 * memory) on the request, the input or an output are a 400 naming them;
 * variant ("fp32" or "int8") into h->variant; others are ignored, as
 * over HTTP.  0 or 400.
 */
int gc_infer_params(const Inference__ModelInferRequest *req, struct front_hints *h,
		       char *err, size_t errlen)
{
	char where[48];

	if (gc_check_keys("parameters", req->n_parameters, (void *const *)req->parameters,
			    err, errlen))
		return 400;
	for (size_t i = 0; i < req->n_inputs; i++)
		if (gc_check_keys("inputs[0].parameters", req->inputs[i]->n_parameters,
				    (void *const *)req->inputs[i]->parameters, err, errlen))
			return 400;
	for (size_t i = 0; i < req->n_outputs; i++) {
		snprintf(where, sizeof(where), "outputs[%zu].parameters", i);
		if (gc_check_keys(where, req->outputs[i]->n_parameters,
				    (void *const *)req->outputs[i]->parameters, err, errlen))
			return 400;
	}
	for (size_t i = 0; i < req->n_parameters; i++) {
		const Inference__ModelInferRequest__ParametersEntry *e = req->parameters[i];
		int64_t v;

		if (!strcmp(e->key, "priority")) {
			if (gc_int_param(e->value, "priority", 1000000 + 1, &v, err, errlen))
				return 400;
			if (v > 1000000) {
				snprintf(err, errlen, "parameters.priority: at most 1000000");
				return 400;
			}
			h->priority = (int)v;
		} else if (!strcmp(e->key, "timeout")) {
			if (gc_int_param(e->value, "timeout", KS_TIMEOUT_MAX_US, &v, err, errlen))
				return 400;
			h->timeout_us = v;
		} else if (!strcmp(e->key, "variant")) {
			const char *s = e->value && e->value->parameter_choice_case ==
				INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM ?
				e->value->string_param : NULL;

			if (ks_check_variant(s, s ? strlen(s) : 0, &h->variant, err, errlen))
				return 400;
		}
	}
	return 0;
}

/*
 * grpc-timeout (gRPC's deadline: 1 to 8 digits and a unit H M S m u n) in
 * µs, at least 1; 0 when absent, -1 when malformed.
 */
int64_t gc_timeout_us(const char *v)
{
	static const struct { char unit; int64_t num, den; } units[] = {
		{ 'H', 3600000000LL, 1 }, { 'M', 60000000LL, 1 }, { 'S', 1000000, 1 },
		{ 'm', 1000, 1 }, { 'u', 1, 1 }, { 'n', 1, 1000 },
	};
	size_t nd;
	int64_t n = 0, us;

	if (!v)
		return 0;
	nd = strspn(v, "0123456789");
	if (nd < 1 || nd > 8 || !v[nd] || v[nd + 1])
		return -1;
	for (size_t i = 0; i < nd; i++)
		n = n * 10 + (v[i] - '0');
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (units[i].unit == v[nd]) {
			us = n * units[i].num / units[i].den;
			return us > KS_TIMEOUT_MAX_US ? KS_TIMEOUT_MAX_US : us < 1 ? 1 : us;
		}
	return -1;
}

/*
 * The input tensor's rows and FP32 data (raw_input_contents[0], or
 * contents.fp32_contents; every value finite, as over HTTP), pointing
 * into req.  0 or 400 with err.
 */
int gc_infer_input(const struct model *m, const Inference__ModelInferRequest *req, int *rows,
		      const float **data, char *err, size_t errlen)
{
	const Inference__ModelInferRequest__InferInputTensor *in;
	const Inference__InferTensorContents *tc;
	size_t want;
	int rc;

	if (req->n_inputs != 1) {
		snprintf(err, errlen, "inputs: model %s takes 1 input, got %zu", m->name, req->n_inputs);
		return 400;
	}
	in = req->inputs[0];
	if (in->n_shape > MODEL_MAX_DIMS) {
		snprintf(err, errlen, "inputs[0].shape: %zu dimensions, at most %d", in->n_shape,
			 MODEL_MAX_DIMS);
		return 400;
	}
	rc = ks_check_input(m, 1, in->name, strlen(in->name), in->datatype, strlen(in->datatype),
			    in->shape, (int)in->n_shape, rows, err, errlen);
	if (rc)
		return rc;
	for (size_t i = 0; i < req->n_outputs; i++)
		if ((rc = ks_check_output_name(m, (int)i, req->outputs[i]->name,
					       strlen(req->outputs[i]->name), err, errlen)))
			return rc;
	tc = in->contents;
	want = (size_t)*rows * m->in_dim;
	if (req->n_raw_input_contents) {
		if (req->n_raw_input_contents != 1) {
			snprintf(err, errlen, "raw_input_contents: %zu entries for 1 input",
				 req->n_raw_input_contents);
			return 400;
		}
		if (tc) {
			snprintf(err, errlen, "inputs[0].contents: not allowed with raw_input_contents");
			return 400;
		}
		rc = ks_check_bytes(m, "raw_input_contents[0]", *rows, req->raw_input_contents[0].len,
				    err, errlen);
		*data = (const float *)req->raw_input_contents[0].data;
		return rc ? rc : ks_check_finite_in("raw_input_contents[0]", *data, want, err, errlen);
	}
	if (!tc || tc->n_fp32_contents != want || tc->n_bool_contents || tc->n_int_contents ||
	    tc->n_int64_contents || tc->n_uint_contents || tc->n_uint64_contents ||
	    tc->n_fp64_contents || tc->n_bytes_contents) {
		snprintf(err, errlen, "inputs[0].contents.fp32_contents: %zu values, expected %zu for "
			 "shape [%d, %d] FP32 (and no other contents), or use raw_input_contents",
			 tc ? tc->n_fp32_contents : 0, want, *rows, m->in_dim);
		return 400;
	}
	*data = tc->fp32_contents;
	return ks_check_finite_in("inputs[0].contents.fp32_contents", *data, want, err, errlen);
}


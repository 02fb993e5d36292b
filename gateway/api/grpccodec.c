/* grpccodec.c - see grpccodec.h. */
#include "grpccodec.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- the plain ModelInferRequest without protobuf-c (gc_infer_unpack) ---- */

/* Most entries gc_infer_unpack takes of each repeated field. */
#define GC_FAST_INPUTS 4
#define GC_FAST_OUTPUTS 8
#define GC_FAST_RAW 4
#define GC_FAST_DIMS 16

/* One field as the fast reader takes it apart: number, and for a
 * length-delimited one its bytes. */
struct gc_field {
	uint32_t num;
	const uint8_t *v;
	size_t vlen;
};

/* The next field at p[*off..len): its tag (minimal, at most 5 bytes) and,
 * wire type 2 only, its length (minimal).  false on anything else. */
static inline bool gc_next_ld(const uint8_t *p, size_t len, size_t *off, struct gc_field *f)
{
	uint64_t tag, n;

	/* the usual: tag and length one byte each (a field under 16, under
	 * 128 bytes) */
	if (len - *off >= 2 && (p[*off] & 0x87) == 2 && p[*off] > 7 && p[*off + 1] < 0x80 &&
	    p[*off + 1] <= len - *off - 2) {
		f->num = p[*off] >> 3;
		f->vlen = p[*off + 1];
		f->v = p + *off + 2;
		*off += 2 + f->vlen;
		return true;
	}
	if (!gc_get_varint(p, len, off, 5, true, &tag) || (tag & 7) != 2 || !(tag >> 3) ||
	    tag >> 3 > UINT32_MAX || !gc_get_varint(p, len, off, 5, true, &n) || n > INT_MAX ||
	    n > len - *off)
		return false;
	f->num = (uint32_t)(tag >> 3);
	f->v = p + *off;
	f->vlen = (size_t)n;
	*off += (size_t)n;
	return true;
}

static void *gc_alloc(ProtobufCAllocator *a, size_t n)
{
	return a ? a->alloc(a->allocator_data, n) : malloc(n);
}

/* The string field f as protobuf-c keeps one (a NUL-terminated copy),
 * into *dst; false when out of memory. */
static bool gc_str(ProtobufCAllocator *a, const struct gc_field *f, char **dst)
{
	char *s = gc_alloc(a, f->vlen + 1);

	if (!s)
		return false;
	memcpy(s, f->v, f->vlen);
	s[f->vlen] = 0;
	*dst = s;
	return true;
}

/* shape's packed varints (at least one, minimal, up to GC_FAST_DIMS) into
 * dims; how many, or -1. */
static int gc_dims(const struct gc_field *f, int64_t *dims)
{
	size_t off = 0;
	int n = 0;

	while (off < f->vlen) {
		size_t at = off;
		uint64_t v;

		/* a tenth byte holds bit 63 only (more: declined) */
		if (n == GC_FAST_DIMS || !gc_get_varint(f->v, f->vlen, &off, 10, true, &v) ||
		    (off - at == 10 && f->v[off - 1] > 1))
			return -1;
		dims[n++] = (int64_t)v;
	}
	return n ? n : -1;
}

/* An InferInputTensor of name, datatype and shape only, each at most once
 * (anything else: false, protobuf-c's to read); allocated into *out. */
static bool gc_fast_input(ProtobufCAllocator *a, const struct gc_field *in,
			  Inference__ModelInferRequest__InferInputTensor **out)
{
	static const Inference__ModelInferRequest__InferInputTensor init =
		INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
	Inference__ModelInferRequest__InferInputTensor *t = gc_alloc(a, sizeof(*t));
	int64_t dims[GC_FAST_DIMS];
	unsigned seen = 0;
	size_t off = 0;
	int nd = 0;

	*out = t;	/* the caller frees what was made, taken or not */
	if (!t)
		return false;
	*t = init;
	while (off < in->vlen) {
		struct gc_field f;

		if (!gc_next_ld(in->v, in->vlen, &off, &f) || f.num > 3 || (seen & 1u << f.num))
			return false;
		seen |= 1u << f.num;
		if (f.num == 3) {
			if ((nd = gc_dims(&f, dims)) < 0 ||
			    !(t->shape = gc_alloc(a, sizeof(*t->shape) * (size_t)nd)))
				return false;
			memcpy(t->shape, dims, sizeof(*dims) * (size_t)nd);
			t->n_shape = (size_t)nd;
		} else if (!gc_str(a, &f, f.num == 1 ? &t->name : &t->datatype)) {
			return false;
		}
	}
	return true;
}

/* An InferRequestedOutputTensor of a name only (at most once). */
static bool gc_fast_output(ProtobufCAllocator *a, const struct gc_field *in,
			   Inference__ModelInferRequest__InferRequestedOutputTensor **out)
{
	static const Inference__ModelInferRequest__InferRequestedOutputTensor init =
		INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
	Inference__ModelInferRequest__InferRequestedOutputTensor *t = gc_alloc(a, sizeof(*t));
	size_t off = 0;
	struct gc_field f;

	*out = t;
	if (!t)
		return false;
	*t = init;
	if (in->vlen && (!gc_next_ld(in->v, in->vlen, &off, &f) || f.num != 1 ||
			 off != in->vlen || !gc_str(a, &f, &t->name)))
		return false;
	return true;
}

/* A failed entry (made, part made, or NULL): counted when made, so that
 * freeing the message frees it too.  false. */
static bool gc_fast_undo(const void *made, size_t *n)
{
	if (made)
		(*n)++;
	return false;
}

/* The repeated fields' entries, gathered before the arrays are made. */
struct gc_fast {
	struct gc_field in[GC_FAST_INPUTS], out[GC_FAST_OUTPUTS], raw[GC_FAST_RAW];
	size_t n_in, n_out, n_raw;
};

/* Fill r (INIT'd, allocated) from the fields at p; false: decline. */
static bool gc_fast_fill(ProtobufCAllocator *a, const uint8_t *p, size_t len,
			 Inference__ModelInferRequest *r, struct gc_fast *g)
{
	unsigned seen = 0;
	size_t off = 0;

	while (off < len) {
		struct gc_field f;

		if (!gc_next_ld(p, len, &off, &f))
			return false;
		switch (f.num) {
		case 1: case 2: case 3:	/* model_name, model_version, id: once */
			if ((seen & 1u << f.num) ||
			    !gc_str(a, &f, f.num == 1 ? &r->model_name :
					    f.num == 2 ? &r->model_version : &r->id))
				return false;
			seen |= 1u << f.num;
			break;
		case 5:
			if (g->n_in == GC_FAST_INPUTS)
				return false;
			g->in[g->n_in++] = f;
			break;
		case 6:
			if (g->n_out == GC_FAST_OUTPUTS)
				return false;
			g->out[g->n_out++] = f;
			break;
		case GC_RAW_INPUT_FIELD:
			if (g->n_raw == GC_FAST_RAW || !f.vlen)
				return false;
			g->raw[g->n_raw++] = f;
			break;
		default:		/* parameters (4), unknown fields */
			return false;
		}
	}
	if (g->n_in && !(r->inputs = gc_alloc(a, sizeof(*r->inputs) * g->n_in)))
		return false;
	for (; r->n_inputs < g->n_in; r->n_inputs++)
		if (!gc_fast_input(a, &g->in[r->n_inputs], &r->inputs[r->n_inputs]))
			return gc_fast_undo(r->inputs[r->n_inputs], &r->n_inputs);
	if (g->n_out && !(r->outputs = gc_alloc(a, sizeof(*r->outputs) * g->n_out)))
		return false;
	for (; r->n_outputs < g->n_out; r->n_outputs++)
		if (!gc_fast_output(a, &g->out[r->n_outputs], &r->outputs[r->n_outputs]))
			return gc_fast_undo(r->outputs[r->n_outputs], &r->n_outputs);
	if (g->n_raw && !(r->raw_input_contents = gc_alloc(a, sizeof(*r->raw_input_contents) *
								 g->n_raw)))
		return false;
	for (; r->n_raw_input_contents < g->n_raw; r->n_raw_input_contents++) {
		ProtobufCBinaryData *b = &r->raw_input_contents[r->n_raw_input_contents];
		const struct gc_field *f = &g->raw[r->n_raw_input_contents];

		if (!(b->data = gc_alloc(a, f->vlen)))
			return false;
		memcpy(b->data, f->v, f->vlen);
		b->len = f->vlen;
	}
	return true;
}

int gc_infer_unpack(const uint8_t *p, size_t len, ProtobufCAllocator *a,
		    Inference__ModelInferRequest **out)
{
	static const Inference__ModelInferRequest init = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest *r = gc_alloc(a, sizeof(*r));
	struct gc_fast g;

	if (!r)
		return -1;
	*r = init;
	g.n_in = g.n_out = g.n_raw = 0;
	if (!gc_fast_fill(a, p, len, r, &g)) {
		if (!a)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		return -1;
	}
	*out = r;
	return 0;
}

/* ---- the plain ModelInferResponse without protobuf-c (gc_pack) ---- */

static size_t gc_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A proto3 string field (number under 16) as protobuf-c packs it: left
 * out when empty. */
static size_t gc_str_size(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n ? 1 + gc_varint_size(n) + n : 0;
}

static uint8_t *gc_put_str(uint8_t *w, uint32_t field, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n)
		return w;
	w += gc_bytes_head(w, field, n);
	memcpy(w, s, n);
	return w + n;
}

/* m when it is a ModelInferResponse grpc.c makes: no parameters, outputs
 * of name, datatype and shape only, no unknown fields; else NULL. */
static const Inference__ModelInferResponse *gc_plain_resp(const ProtobufCMessage *m)
{
	const Inference__ModelInferResponse *r = (const void *)m;

	if (m->descriptor != &inference__model_infer_response__descriptor || m->n_unknown_fields ||
	    r->n_parameters)
		return NULL;
	for (size_t i = 0; i < r->n_outputs; i++) {
		const Inference__ModelInferResponse__InferOutputTensor *t = r->outputs[i];

		if (!t || t->base.n_unknown_fields || t->n_parameters || t->contents)
			return NULL;
	}
	return r;
}

/* Output tensor t's packed size, its shape's packed bytes into *shape. */
static size_t gc_out_size(const Inference__ModelInferResponse__InferOutputTensor *t, size_t *shape)
{
	size_t n = gc_str_size(t->name) + gc_str_size(t->datatype);

	*shape = 0;
	for (size_t i = 0; i < t->n_shape; i++)
		*shape += gc_varint_size((uint64_t)t->shape[i]);
	return n + (t->n_shape ? 1 + gc_varint_size(*shape) + *shape : 0);
}

static size_t gc_resp_size(const Inference__ModelInferResponse *r)
{
	size_t n = gc_str_size(r->model_name) + gc_str_size(r->model_version) +
		   gc_str_size(r->id), shape;

	for (size_t i = 0; i < r->n_outputs; i++) {
		size_t o = gc_out_size(r->outputs[i], &shape);

		n += 1 + gc_varint_size(o) + o;
	}
	for (size_t i = 0; i < r->n_raw_output_contents; i++)
		n += 1 + gc_varint_size(r->raw_output_contents[i].len) +
		     r->raw_output_contents[i].len;
	return n;
}

/* gc_pack of plain response r. */
static size_t gc_pack_resp(const Inference__ModelInferResponse *r, uint8_t *out)
{
	uint8_t *w = out;
	size_t shape;

	w = gc_put_str(w, 1, r->model_name);
	w = gc_put_str(w, 2, r->model_version);
	w = gc_put_str(w, 3, r->id);
	for (size_t i = 0; i < r->n_outputs; i++) {
		const Inference__ModelInferResponse__InferOutputTensor *t = r->outputs[i];

		w += gc_bytes_head(w, 5, gc_out_size(t, &shape));
		w = gc_put_str(w, 1, t->name);
		w = gc_put_str(w, 2, t->datatype);
		if (t->n_shape) {
			w += gc_bytes_head(w, 3, shape);
			for (size_t k = 0; k < t->n_shape; k++)
				w += gc_varint(w, (uint64_t)t->shape[k]);
		}
	}
	for (size_t i = 0; i < r->n_raw_output_contents; i++) {
		const ProtobufCBinaryData *b = &r->raw_output_contents[i];

		w += gc_bytes_head(w, GC_RAW_OUTPUT_FIELD, b->len);
		if (b->len)
			memcpy(w, b->data, b->len);
		w += b->len;
	}
	return (size_t)(w - out);
}

/* m when it is a ModelStreamInferResponse grpc.c makes: an error message,
 * a plain infer_response (gc_plain_resp), or both; else NULL. */
static const Inference__ModelStreamInferResponse *gc_plain_stream(const ProtobufCMessage *m)
{
	const Inference__ModelStreamInferResponse *s = (const void *)m;

	if (m->descriptor != &inference__model_stream_infer_response__descriptor ||
	    m->n_unknown_fields || (s->infer_response && !gc_plain_resp(&s->infer_response->base)))
		return NULL;
	return s;
}

/* The packed size of plain stream answer s. */
static size_t gc_stream_size(const Inference__ModelStreamInferResponse *s)
{
	size_t n = gc_str_size(s->error_message), inner;

	if (!s->infer_response)
		return n;
	inner = gc_resp_size(s->infer_response);
	return n + 1 + gc_varint_size(inner) + inner;
}

size_t gc_pack_size(const ProtobufCMessage *m)
{
	const Inference__ModelInferResponse *r = gc_plain_resp(m);
	const Inference__ModelStreamInferResponse *s;

	if (r)
		return gc_resp_size(r);
	if ((s = gc_plain_stream(m)))
		return gc_stream_size(s);
	return protobuf_c_message_get_packed_size(m);
}

size_t gc_pack(const ProtobufCMessage *m, uint8_t *out)
{
	const Inference__ModelInferResponse *r = gc_plain_resp(m);
	const Inference__ModelStreamInferResponse *s;
	uint8_t *w = out;
	size_t inner;

	if (r)
		return gc_pack_resp(r, out);
	if (!(s = gc_plain_stream(m)))
		return protobuf_c_message_pack(m, out);
	w = gc_put_str(w, 1, s->error_message);
	if (s->infer_response) {
		inner = gc_resp_size(s->infer_response);
		w += gc_bytes_head(w, GC_STREAM_INFER_RESPONSE_FIELD, inner);
		w += gc_pack_resp(s->infer_response, w);
	}
	return (size_t)(w - out);
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


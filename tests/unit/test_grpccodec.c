/*
 * Unit tests for gateway/api/grpccodec.c's framing helpers: gc_frame on
 * every cut of a prefix, and gc_bytes_head against protobuf-c itself (a
 * ModelInferResponse packed with its raw output, and the same packed
 * without it with the head and the bytes appended, are the same bytes);
 * gc_split_raw against protobuf-c's unpack (views, rest, every cut, what
 * it leaves to protobuf-c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grpccodec.h"

static void test_frame(void **state)
{
	uint8_t p[5 + 300] = { 0, 0, 0, 1, 44 };	/* 300 bytes follow */
	uint8_t flag = 9;
	size_t mlen = 0;

	for (size_t n = 0; n < 5; n++)
		assert_int_equal(gc_frame(p, n, 1000, &flag, &mlen), 0);
	assert_int_equal(gc_frame(p, 5, 1000, &flag, &mlen), 0);
	assert_int_equal(flag, 0);
	assert_int_equal(mlen, 300);
	assert_int_equal(gc_frame(p, 304, 1000, &flag, &mlen), 0);
	assert_int_equal(gc_frame(p, 305, 1000, &flag, &mlen), 1);
	assert_int_equal(gc_frame(p, 305, 299, &flag, &mlen), -EFBIG);
	p[0] = 2;
	assert_int_equal(gc_frame(p, 305, 1000, &flag, &mlen), -EPROTO);
	/* gc_frame_head writes what gc_frame reads */
	for (size_t len = 0; len < 0xffffffffu; len = len * 3 + 7) {
		gc_frame_head(p, len);
		assert_int_equal(gc_frame(p, 5, UINT32_MAX, &flag, &mlen), len == 0);
		assert_int_equal(flag, 0);
		assert_int_equal(mlen, len);
	}
}

/* Every length class of the varint: the head is what protobuf-c writes. */
static void test_bytes_head_is_protobufs(void **state)
{
	static const size_t sizes[] = { 0, 1, 127, 128, 16383, 16384, 262144, 2097151, 2097152,
					5000000 };
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
		&inference__model_infer_response__descriptor, "raw_output_contents");
	uint8_t *raw = malloc(5000000);

	assert_non_null(f);
	assert_int_equal(f->id, GC_RAW_OUTPUT_FIELD);
	for (unsigned i = 0; i < inference__model_infer_response__descriptor.n_fields; i++)
		assert_true(inference__model_infer_response__descriptor.fields[i].id <= f->id);
	for (size_t i = 0; i < 5000000; i++)
		raw[i] = (uint8_t)(i * 7 + 3);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		Inference__ModelInferResponse m = INFERENCE__MODEL_INFER_RESPONSE__INIT;
		Inference__ModelInferResponse__InferOutputTensor t =
			INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
		Inference__ModelInferResponse__InferOutputTensor *pt = &t;
		ProtobufCBinaryData bd = { sizes[k], raw };
		int64_t shape[2] = { 64, 1024 };
		uint8_t head[GC_BYTES_HEAD_MAX];
		size_t full, rest, hl;
		uint8_t *a, *b;

		m.model_name = "mlp-large";
		m.model_version = "1";
		m.id = "req-7";
		t.name = "probabilities";
		t.datatype = "FP32";
		t.n_shape = 2;
		t.shape = shape;
		m.n_outputs = 1;
		m.outputs = &pt;
		m.n_raw_output_contents = 1;
		m.raw_output_contents = &bd;
		full = protobuf_c_message_get_packed_size(&m.base);
		a = malloc(full);
		assert_int_equal(protobuf_c_message_pack(&m.base, a), full);
		m.n_raw_output_contents = 0;
		rest = protobuf_c_message_get_packed_size(&m.base);
		hl = gc_bytes_head(head, GC_RAW_OUTPUT_FIELD, sizes[k]);
		assert_int_equal(rest + hl + sizes[k], full);
		b = malloc(full);
		protobuf_c_message_pack(&m.base, b);
		memcpy(b + rest, head, hl);
		memcpy(b + rest + hl, raw, sizes[k]);
		assert_memory_equal(a, b, full);
		free(a);
		free(b);
	}
	free(raw);
}

/* A stream's answer (gateway/api/grpc.c grpc_owned_msg with an outer
 * field): the infer_response field's head, the answer packed without its
 * raw output, the raw field's head, the bytes - what protobuf-c packs for
 * the ModelStreamInferResponse holding the whole answer. */
static void test_stream_wrap_is_protobufs(void **state)
{
	static const size_t sizes[] = { 16384, 262144, 2097152 };
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
		&inference__model_stream_infer_response__descriptor, "infer_response");
	uint8_t *raw = malloc(2097152);

	assert_non_null(f);
	assert_int_equal(f->id, GC_STREAM_INFER_RESPONSE_FIELD);
	for (size_t i = 0; i < 2097152; i++)
		raw[i] = (uint8_t)(i * 11 + 5);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		Inference__ModelStreamInferResponse s = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
		Inference__ModelInferResponse m = INFERENCE__MODEL_INFER_RESPONSE__INIT;
		ProtobufCBinaryData bd = { sizes[k], raw };
		uint8_t head[GC_BYTES_HEAD_MAX], ohead[GC_BYTES_HEAD_MAX];
		size_t full, rest, hl, ol;
		uint8_t *a, *b;

		m.model_name = "wide";
		m.id = "stream-3";
		m.n_raw_output_contents = 1;
		m.raw_output_contents = &bd;
		s.infer_response = &m;
		full = protobuf_c_message_get_packed_size(&s.base);
		a = malloc(full);
		assert_int_equal(protobuf_c_message_pack(&s.base, a), full);
		m.n_raw_output_contents = 0;
		rest = protobuf_c_message_get_packed_size(&m.base);
		hl = gc_bytes_head(head, GC_RAW_OUTPUT_FIELD, sizes[k]);
		ol = gc_bytes_head(ohead, GC_STREAM_INFER_RESPONSE_FIELD, rest + hl + sizes[k]);
		assert_int_equal(ol + rest + hl + sizes[k], full);
		b = malloc(full);
		memcpy(b, ohead, ol);
		protobuf_c_message_pack(&m.base, b + ol);
		memcpy(b + ol + rest, head, hl);
		memcpy(b + ol + rest + hl, raw, sizes[k]);
		assert_memory_equal(a, b, full);
		free(a);
		free(b);
	}
	free(raw);
}

/* The len bytes of m packed, into a new block. */
static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *p;

	*len = protobuf_c_message_get_packed_size(m);
	p = malloc(*len ? *len : 1);
	assert_non_null(p);
	assert_int_equal(protobuf_c_message_pack(m, p), *len);
	return p;
}

/* n bytes of src appended at *end (advanced past them). */
static void put(uint8_t **end, const void *src, size_t n)
{
	memcpy(*end, src, n);
	*end += n;
}

/*
 * A request as a client may order it: header fields, a raw input, the
 * input tensor, another raw input, an output request (protobuf concatenates
 * fields; the two raw entries are 300 and 70,000 bytes).
 */
struct split_case {
	uint8_t buf[80000], *end;
	uint8_t *raw1, *raw2;		/* where each raw entry's bytes start */
	size_t n1, n2;
	uint8_t rest[4096], *rest_end;	/* the non-raw fields as they came */
};

/* A packed field (n bytes at p) into the message and into its rest. */
static void put_field(struct split_case *k, const uint8_t *p, size_t n)
{
	put(&k->end, p, n);
	put(&k->rest_end, p, n);
}

/* A raw_input_contents entry of n bytes (i * mul + 1) into the message;
 * where its bytes start. */
static uint8_t *put_raw(struct split_case *k, size_t n, unsigned mul)
{
	uint8_t head[GC_BYTES_HEAD_MAX], *at;

	put(&k->end, head, gc_bytes_head(head, GC_RAW_INPUT_FIELD, n));
	at = k->end;
	for (size_t i = 0; i < n; i++)
		*k->end++ = (uint8_t)(i * mul + 1);
	return at;
}

static void split_case_make(struct split_case *k)
{
	Inference__ModelInferRequest a = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest b = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest o = INFERENCE__MODEL_INFER_REQUEST__INIT;
	Inference__ModelInferRequest__InferInputTensor in =
		INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *pin = &in;
	Inference__ModelInferRequest__InferRequestedOutputTensor out =
		INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT, *pout = &out;
	int64_t shape[2] = { 1, 64 };
	uint8_t *pa, *pb, *po;
	size_t la, lb, lo;

	a.model_name = "digits";
	a.id = "split-1";
	in.name = "input";
	in.datatype = "FP32";
	in.n_shape = 2;
	in.shape = shape;
	b.n_inputs = 1;
	b.inputs = &pin;
	out.name = "probabilities";
	o.n_outputs = 1;
	o.outputs = &pout;
	pa = packed(&a.base, &la);
	pb = packed(&b.base, &lb);
	po = packed(&o.base, &lo);
	k->n1 = 300;
	k->n2 = 70000;
	k->end = k->buf;
	k->rest_end = k->rest;
	put_field(k, pa, la);
	k->raw1 = put_raw(k, k->n1, 13);
	put_field(k, pb, lb);
	k->raw2 = put_raw(k, k->n2, 5);
	put_field(k, po, lo);
	free(pa);
	free(pb);
	free(po);
}

/* The views, the rest's bytes, and the rest unpacked plus the views equal
 * to protobuf-c's unpack of the whole. */
static void test_split_raw(void **state)
{
	static struct split_case k;
	size_t len, n = 9, rest_len = 9, pw, pr;
	ProtobufCBinaryData raw[2];
	uint8_t rest[4096], *a, *b;
	Inference__ModelInferRequest *whole, *r;
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
		&inference__model_infer_request__descriptor, "raw_input_contents");

	assert_non_null(f);
	assert_int_equal(f->id, GC_RAW_INPUT_FIELD);
	assert_int_equal(f->type, PROTOBUF_C_TYPE_BYTES);
	split_case_make(&k);
	len = (size_t)(k.end - k.buf);
	assert_int_equal(gc_split_raw(k.buf, len, NULL, &n, NULL, &rest_len), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rest_len, (size_t)(k.rest_end - k.rest));
	memset(rest, 0xee, sizeof(rest));
	assert_int_equal(gc_split_raw(k.buf, len, raw, &n, rest, &rest_len), 0);
	assert_ptr_equal(raw[0].data, k.raw1);
	assert_int_equal(raw[0].len, k.n1);
	assert_ptr_equal(raw[1].data, k.raw2);
	assert_int_equal(raw[1].len, k.n2);
	assert_memory_equal(rest, k.rest, rest_len);
	assert_int_equal(rest[rest_len], 0xee);		/* nothing written past it */

	whole = (Inference__ModelInferRequest *)protobuf_c_message_unpack(
		&inference__model_infer_request__descriptor, NULL, len, k.buf);
	r = (Inference__ModelInferRequest *)protobuf_c_message_unpack(
		&inference__model_infer_request__descriptor, NULL, rest_len, rest);
	assert_non_null(whole);
	assert_non_null(r);
	assert_int_equal(whole->n_raw_input_contents, 2);
	assert_int_equal(r->n_raw_input_contents, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(whole->raw_input_contents[i].len, raw[i].len);
		assert_memory_equal(whole->raw_input_contents[i].data, raw[i].data, raw[i].len);
	}
	whole->n_raw_input_contents = 0;
	a = packed(&whole->base, &pw);
	b = packed(&r->base, &pr);
	assert_int_equal(pw, pr);
	assert_memory_equal(a, b, pw);
	assert_string_equal(r->model_name, "digits");
	assert_int_equal(r->n_inputs, 1);
	assert_int_equal(r->inputs[0]->shape[1], 64);
	whole->n_raw_input_contents = 2;
	protobuf_c_message_free_unpacked(&whole->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	free(a);
	free(b);
}

/* Every cut of the message: the split reads it exactly when protobuf-c
 * does (it ends on a field's end), and never reads past the cut. */
static void test_split_raw_cuts(void **state)
{
	static struct split_case k;
	size_t len, n, rest_len;

	split_case_make(&k);
	len = (size_t)(k.end - k.buf);
	for (size_t cut = 0; cut <= len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);	/* exact size: a read past it is caught */
		ProtobufCMessage *m;
		int rc;

		memcpy(p, k.buf, cut);
		m = protobuf_c_message_unpack(&inference__model_infer_request__descriptor, NULL, cut, p);
		rc = gc_split_raw(p, cut, NULL, &n, NULL, &rest_len);
		assert_int_equal(rc, m ? 0 : -1);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		free(p);
	}
}

/* What the split leaves to protobuf-c (-1: unpack it whole): lengths and
 * tags written longer than they need, groups, a raw entry of another wire
 * type (kept in the rest, where protobuf-c refuses it). */
static void test_split_raw_strict(void **state)
{
	static const uint8_t long_len[] = { 0x3a, 0x81, 0x00, 'x' };	/* raw, length 1 in 2 bytes */
	static const uint8_t long_tag[] = { 0xba, 0x00, 0x01, 'x' };	/* field 7 tag in 2 bytes */
	static const uint8_t group[] = { 0x0b, 0x0c };			/* field 1 start/end group */
	static const uint8_t field0[] = { 0x02, 0x00 };			/* field number 0 */
	static const uint8_t past[] = { 0x3a, 0x05, 'x' };		/* 5 bytes promised, 1 there */
	static const uint8_t varint7[] = { 0x0a, 0x01, 'm', 0x38, 0x01 };	/* raw as a varint */
	size_t n = 9, rest_len = 9;
	uint8_t rest[8];

	assert_int_equal(gc_split_raw(long_len, sizeof(long_len), NULL, &n, NULL, &rest_len), -1);
	assert_int_equal(gc_split_raw(long_tag, sizeof(long_tag), NULL, &n, NULL, &rest_len), -1);
	assert_int_equal(gc_split_raw(group, sizeof(group), NULL, &n, NULL, &rest_len), -1);
	assert_int_equal(gc_split_raw(field0, sizeof(field0), NULL, &n, NULL, &rest_len), -1);
	assert_int_equal(gc_split_raw(past, sizeof(past), NULL, &n, NULL, &rest_len), -1);
	assert_int_equal(gc_split_raw(varint7, sizeof(varint7), NULL, &n, rest, &rest_len), 0);
	assert_int_equal(n, 0);
	assert_int_equal(rest_len, sizeof(varint7));
	assert_memory_equal(rest, varint7, sizeof(varint7));
	assert_null(protobuf_c_message_unpack(&inference__model_infer_request__descriptor, NULL,
					      rest_len, rest));
	assert_int_equal(gc_split_raw(varint7, 0, NULL, &n, NULL, &rest_len), 0);	/* empty */
	assert_int_equal(n, 0);
	assert_int_equal(rest_len, 0);
}

/* ---- gc_infer_unpack and gc_pack against protobuf-c ---- */

static uint64_t rs = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(uint32_t n)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (uint32_t)(rs % n);
}

/* A random string into buf (room 40): empty, plain, or any bytes but NUL
 * (a string as protobuf-c would hand it back: NUL-terminated). */
static char *rnd_str(char *buf)
{
	size_t n = rnd(3) == 0 ? 0 : rnd(32);

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(rnd(2) ? 'a' + rnd(26) : 1 + rnd(255));
	buf[n] = 0;
	return buf;
}

/* A random shape: 0-5 dims, small, negative (10-byte varints) or large. */
static size_t rnd_shape(int64_t *d)
{
	size_t n = rnd(6);

	for (size_t i = 0; i < n; i++)
		d[i] = rnd(4) == 0 ? -(int64_t)rnd(1000) : rnd(4) == 0 ? (int64_t)1 << rnd(63) :
									    rnd(300);
	return n;
}

/* len random bytes at buf, as b. */
static void rnd_raw(ProtobufCBinaryData *b, uint8_t *buf, size_t len)
{
	for (size_t j = 0; j < len; j++)
		buf[j] = (uint8_t)rnd(256);
	b->len = len;
	b->data = buf;
}

/* Pack m with protobuf-c into a malloc'd buffer of *n bytes. */
static uint8_t *pc_pack(const ProtobufCMessage *m, size_t *n)
{
	uint8_t *b = malloc(protobuf_c_message_get_packed_size(m) + 1);

	assert_non_null(b);
	*n = protobuf_c_message_pack(m, b);
	return b;
}

/*
 * gc_infer_unpack on len bytes at p against protobuf-c: when it takes
 * them, protobuf-c does too and both messages pack to the same bytes;
 * true when it took them.
 */
static bool unpack_agrees(const uint8_t *p, size_t len)
{
	Inference__ModelInferRequest *fast = NULL, *ref;
	size_t nf, nr;
	uint8_t *bf, *br;

	if (gc_infer_unpack(p, len, NULL, &fast))
		return false;
	ref = inference__model_infer_request__unpack(NULL, len, p);
	assert_non_null(ref);
	bf = pc_pack(&fast->base, &nf);
	br = pc_pack(&ref->base, &nr);
	assert_int_equal(nf, nr);
	assert_memory_equal(bf, br, nf);
	/* strings as protobuf-c keeps them: NUL-terminated copies, also the
	 * bytes after an embedded NUL (not packed, so compared here) */
	assert_string_equal(fast->model_name, ref->model_name);
	assert_int_equal(fast->n_inputs, ref->n_inputs);
	free(bf);
	free(br);
	protobuf_c_message_free_unpacked(&fast->base, NULL);
	protobuf_c_message_free_unpacked(&ref->base, NULL);
	return true;
}

/* Plain requests (what gc_infer_unpack takes) and their every cut and
 * byte flip: taken exactly as protobuf-c reads them, or declined. */
static void test_infer_unpack_like_protobuf_c(void **state)
{
	int taken = 0, flips = 0;

	(void)state;
	for (int it = 0; it < 3000; it++) {
		Inference__ModelInferRequest r = INFERENCE__MODEL_INFER_REQUEST__INIT;
		Inference__ModelInferRequest__InferInputTensor in[4], *pin[4];
		Inference__ModelInferRequest__InferRequestedOutputTensor out[8], *pout[8];
		ProtobufCBinaryData raw[4];
		char str[3 + 4 * 2 + 8][40];
		uint8_t rb[4][64];
		int64_t dims[4][8];
		int k = 0;
		size_t n;
		uint8_t *b;

		r.model_name = rnd_str(str[k++]);
		r.model_version = rnd_str(str[k++]);
		r.id = rnd_str(str[k++]);
		r.n_inputs = rnd(5);
		for (size_t i = 0; i < r.n_inputs; i++) {
			inference__model_infer_request__infer_input_tensor__init(&in[i]);
			in[i].name = rnd_str(str[k++]);
			in[i].datatype = rnd_str(str[k++]);
			in[i].n_shape = rnd_shape(dims[i]);
			in[i].shape = dims[i];
			pin[i] = &in[i];
		}
		r.inputs = pin;
		r.n_outputs = rnd(9);
		for (size_t i = 0; i < r.n_outputs; i++) {
			inference__model_infer_request__infer_requested_output_tensor__init(&out[i]);
			out[i].name = rnd_str(str[k++]);
			pout[i] = &out[i];
		}
		r.outputs = pout;
		r.n_raw_input_contents = rnd(5);
		for (size_t i = 0; i < r.n_raw_input_contents; i++)
			rnd_raw(&raw[i], rb[i], 1 + rnd(64));
		r.raw_input_contents = raw;
		b = pc_pack(&r.base, &n);
		assert_true(unpack_agrees(b, n));	/* plain: taken */
		taken++;
		for (size_t cut = 0; cut < n; cut += 1 + rnd(8))
			unpack_agrees(b, cut);
		for (int f = 0; f < 8 && n; f++) {
			size_t at = rnd((uint32_t)n);
			uint8_t was = b[at];

			b[at] = (uint8_t)rnd(256);
			flips += unpack_agrees(b, n);
			b[at] = was;
		}
		free(b);
	}
	assert_int_equal(taken, 3000);
	assert_true(flips > 1000);
}

/* m packed, then declined by gc_infer_unpack. */
static void expect_declined(const ProtobufCMessage *m)
{
	Inference__ModelInferRequest *got = NULL;
	size_t n;
	uint8_t *b = pc_pack(m, &n);

	assert_int_equal(gc_infer_unpack(b, n, NULL, &got), -1);
	assert_null(got);
	free(b);
}

/* What gc_infer_unpack leaves to protobuf-c: parameters, contents, an
 * input's parameters, a field twice, an unknown field, an unpacked shape. */
static void test_infer_unpack_declines(void **state)
{
	Inference__ModelInferRequest r = INFERENCE__MODEL_INFER_REQUEST__INIT, *got = NULL;
	Inference__ModelInferRequest__ParametersEntry e =
		INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT, *pe = &e;
	Inference__InferParameter v = INFERENCE__INFER_PARAMETER__INIT;
	Inference__ModelInferRequest__InferInputTensor in =
		INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT, *pin = &in;
	Inference__InferTensorContents ct = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
	float fp[2] = { 1, 2 };
	int64_t shape[2] = { 1, 2 };
	static const uint8_t twice[] = { 0x0a, 1, 'm', 0x0a, 1, 'n' };
	static const uint8_t unknown[] = { 0x0a, 1, 'm', 0x42, 1, 'x' };	/* field 8 */
	static const uint8_t unpacked[] = { 0x2a, 4, 0x18, 1, 0x18, 2 };	/* shape: varints */
	size_t n;
	uint8_t *b;

	(void)state;
	r.model_name = "m";
	e.key = "priority";
	v.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
	v.int64_param = 3;
	e.value = &v;
	r.n_parameters = 1;
	r.parameters = &pe;
	expect_declined(&r.base);
	r.n_parameters = 0;
	in.name = "x";
	in.n_shape = 2;
	in.shape = shape;
	ct.n_fp32_contents = 2;
	ct.fp32_contents = fp;
	in.contents = &ct;
	r.n_inputs = 1;
	r.inputs = &pin;
	expect_declined(&r.base);
	in.contents = NULL;
	b = pc_pack(&r.base, &n);
	assert_true(unpack_agrees(b, n));
	free(b);
	assert_int_equal(gc_infer_unpack(twice, sizeof(twice), NULL, &got), -1);
	assert_int_equal(gc_infer_unpack(unknown, sizeof(unknown), NULL, &got), -1);
	assert_int_equal(gc_infer_unpack(unpacked, sizeof(unpacked), NULL, &got), -1);
	assert_null(got);
}

/* gc_pack_size and gc_pack of m give protobuf-c's size and bytes. */
static void expect_packs_like_protobuf_c(const ProtobufCMessage *m)
{
	size_t n, k = gc_pack_size(m);
	uint8_t *want = pc_pack(m, &n), *got;

	assert_int_equal(k, n);
	got = malloc(k + 1);
	assert_non_null(got);
	assert_int_equal(gc_pack(m, got), n);
	assert_memory_equal(got, want, n);
	free(got);
	free(want);
}

/* gc_pack and gc_pack_size give protobuf-c's bytes: plain responses of
 * random strings, shapes and raw outputs, the stream's answers around
 * them (an error message, a response, both, neither), and (by
 * protobuf-c) others. */
static void test_pack_like_protobuf_c(void **state)
{
	(void)state;
	for (int it = 0; it < 5000; it++) {
		Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
		Inference__ModelStreamInferResponse sr = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
		Inference__ModelInferResponse__InferOutputTensor t[3], *pt[3];
		Inference__ModelInferResponse__ParametersEntry e =
			INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT, *pe = &e;
		ProtobufCBinaryData raw[3];
		uint8_t rb[3][300];
		char str[10][40];
		int64_t dims[3][8];

		r.model_name = rnd_str(str[0]);
		r.model_version = rnd_str(str[1]);
		r.id = rnd(2) ? rnd_str(str[2]) : NULL;
		r.n_outputs = rnd(4);
		for (size_t i = 0; i < r.n_outputs; i++) {
			inference__model_infer_response__infer_output_tensor__init(&t[i]);
			t[i].name = rnd_str(str[3 + 2 * i]);
			t[i].datatype = rnd_str(str[4 + 2 * i]);
			t[i].n_shape = rnd_shape(dims[i]);
			t[i].shape = dims[i];
			pt[i] = &t[i];
		}
		r.outputs = pt;
		r.n_raw_output_contents = rnd(4);
		for (size_t i = 0; i < r.n_raw_output_contents; i++)
			rnd_raw(&raw[i], rb[i], rnd(300));
		r.raw_output_contents = raw;
		if (it % 10 == 9) {	/* not plain: protobuf-c packs it */
			e.key = "k";
			r.n_parameters = 1;
			r.parameters = &pe;
		}
		expect_packs_like_protobuf_c(&r.base);
		sr.error_message = rnd(2) ? rnd_str(str[9]) : NULL;
		sr.infer_response = rnd(3) ? &r : NULL;
		expect_packs_like_protobuf_c(&sr.base);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_bytes_head_is_protobufs),
		cmocka_unit_test(test_stream_wrap_is_protobufs),
		cmocka_unit_test(test_split_raw),
		cmocka_unit_test(test_split_raw_cuts),
		cmocka_unit_test(test_split_raw_strict),
		cmocka_unit_test(test_infer_unpack_like_protobuf_c),
		cmocka_unit_test(test_infer_unpack_declines),
		cmocka_unit_test(test_pack_like_protobuf_c),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
